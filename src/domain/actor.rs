//! Who caused an event: a staff account, the reporter, or a part of avvik itself. Stored
//! as a string in the envelope's `actor` (`user:EMAIL`, `reporter`, `system:NAME`).

use std::fmt;

/// The parts of avvik that record events on their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum System {
    /// The command line (`avvik user …`, `avvik report --issue`).
    Cli,
    /// Scheduled jobs (annual report, reminders).
    Scheduler,
    /// E-mail intake.
    Intake,
    /// E-mail notices.
    Notify,
    /// The first-run set-up.
    Setup,
    /// Webhook delivery.
    Webhooks,
}

impl System {
    pub const fn as_str(self) -> &'static str {
        match self {
            System::Cli => "system:cli",
            System::Scheduler => "system:scheduler",
            System::Intake => "system:intake",
            System::Notify => "system:notify",
            System::Setup => "system:setup",
            System::Webhooks => "system:webhooks",
        }
    }

    fn label_sv(self) -> &'static str {
        match self {
            System::Cli => "avvik (kommandorad)",
            System::Scheduler => "avvik (schemalagt)",
            System::Intake => "avvik (e-postmottagning)",
            System::Notify => "avvik (utskick)",
            System::Setup => "avvik (första start)",
            System::Webhooks => "avvik (webhookar)",
        }
    }
}

/// Who did something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A staff account, by its e-mail address.
    User(String),
    /// The person who reported the deviation (status page, e-mail reply).
    Reporter,
    System(System),
    /// An e-mail whose sender could not be verified, by the address it claims.
    UnverifiedEmail(String),
    /// Anything else found in a stored record (kept as stored).
    Other(String),
}

impl Actor {
    pub const REPORTER: &'static str = "reporter";
    /// The stored form of `UnverifiedEmail` is this prefix and the claimed address.
    pub const UNVERIFIED_EMAIL_PREFIX: &'static str = "unverified-email:";

    /// The stored form.
    pub fn as_stored(&self) -> String {
        match self {
            Actor::User(email) => format!("user:{email}"),
            Actor::Reporter => Self::REPORTER.to_string(),
            Actor::System(s) => s.as_str().to_string(),
            Actor::UnverifiedEmail(a) => format!("{}{a}", Self::UNVERIFIED_EMAIL_PREFIX),
            Actor::Other(s) => s.clone(),
        }
    }

    /// Reads a stored actor. Records written before actors were typed said `cli` for the
    /// command line; it reads as `system:cli`.
    pub fn parse(s: &str) -> Actor {
        if let Some(email) = s.strip_prefix("user:") {
            return Actor::User(email.to_string());
        }
        if let Some(address) = s.strip_prefix(Self::UNVERIFIED_EMAIL_PREFIX) {
            return Actor::UnverifiedEmail(address.to_string());
        }
        if s == Self::REPORTER || s.starts_with("reporter:") {
            return Actor::Reporter;
        }
        let system = match s {
            "system:cli" | "cli" => Some(System::Cli),
            "system:scheduler" => Some(System::Scheduler),
            "system:intake" => Some(System::Intake),
            "system:notify" => Some(System::Notify),
            "system:setup" => Some(System::Setup),
            "system:webhooks" => Some(System::Webhooks),
            _ => None,
        };
        system.map_or_else(|| Actor::Other(s.to_string()), Actor::System)
    }

    /// For people: the account's address, "rapportören", or which part of avvik.
    pub fn label_sv(&self) -> String {
        match self {
            Actor::User(email) => email.clone(),
            Actor::Reporter => "rapportören".into(),
            Actor::System(s) => s.label_sv().into(),
            Actor::UnverifiedEmail(a) => {
                format!("okänd avsändare (e-post som påstår sig vara från {a})")
            }
            Actor::Other(s) => s.clone(),
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_stored())
    }
}

impl From<System> for Actor {
    fn from(s: System) -> Self {
        Actor::System(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_forms_round_trip() {
        for a in [
            Actor::User("ciso@kommunen.example".into()),
            Actor::Reporter,
            Actor::System(System::Cli),
            Actor::System(System::Scheduler),
            Actor::System(System::Intake),
            Actor::System(System::Notify),
            Actor::System(System::Setup),
            Actor::System(System::Webhooks),
            Actor::UnverifiedEmail("ciso@kommunen.example".into()),
        ] {
            assert_eq!(Actor::parse(&a.as_stored()), a);
        }
        assert_eq!(Actor::parse("cli"), Actor::System(System::Cli));
        assert_eq!(Actor::parse("cli").label_sv(), "avvik (kommandorad)");
    }
}
