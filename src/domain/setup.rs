//! First run: the one-time setup link that creates the first admin and CISO in the
//! browser. Its own stream; only the link's hash is stored.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The one stream of the setup link.
pub const SETUP_STREAM: Uuid = Uuid::from_u128(0x0191_0000_7365_7475_705f_6c69_6e6b_0001);

/// How long a link is valid.
pub fn link_lifetime() -> Duration {
    Duration::hours(1)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetupLinkIssued {
    /// Hex SHA-256 of the token in the link.
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetupCompleted {
    pub token_hash: String,
    pub admin_email: String,
    pub ciso_email: String,
}

super::event_enum! {
    /// The events of the setup stream.
    SetupEvent {
        LinkIssued(SetupLinkIssued) = "SetupLinkIssued",
        Completed(SetupCompleted) = "SetupCompleted",
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Setup {
    /// The latest link; an earlier one stops working when a new one is issued.
    pub current: Option<SetupLinkIssued>,
    pub completed: bool,
}

pub enum SetupCommand {
    Issue {
        token_hash: String,
        now: DateTime<Utc>,
    },
    Complete {
        token_hash: String,
        admin_email: String,
        ciso_email: String,
        now: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    #[error("the first accounts were already created with a setup link")]
    Used,
    #[error("the setup link is not known or was replaced by a newer one")]
    Unknown,
    #[error("the setup link has expired")]
    Expired,
}

impl SetupError {
    pub fn message_sv(self) -> &'static str {
        match self {
            SetupError::Used => {
                "Länken har redan använts. De första kontona är skapade; logga in i stället."
            }
            SetupError::Unknown => {
                "Länken gäller inte. Starta om avvik för att få en ny länk, eller skapa kontot med kommandot avvik user add."
            }
            SetupError::Expired => {
                "Länken har gått ut (den gäller en timme). Starta om avvik för att få en ny länk."
            }
        }
    }
}

/// Checks a link's hash against the state at `now`.
pub fn check(state: &Setup, token_hash: &str, now: DateTime<Utc>) -> Result<(), SetupError> {
    if state.completed {
        return Err(SetupError::Used);
    }
    match &state.current {
        Some(l) if l.token_hash == token_hash => {
            if now >= l.expires_at {
                Err(SetupError::Expired)
            } else {
                Ok(())
            }
        }
        _ => Err(SetupError::Unknown),
    }
}

pub fn decide(state: &Setup, cmd: SetupCommand) -> Result<Vec<SetupEvent>, SetupError> {
    match cmd {
        SetupCommand::Issue { token_hash, now } => {
            if state.completed {
                return Err(SetupError::Used);
            }
            Ok(vec![SetupEvent::LinkIssued(SetupLinkIssued {
                token_hash,
                expires_at: now + link_lifetime(),
            })])
        }
        SetupCommand::Complete {
            token_hash,
            admin_email,
            ciso_email,
            now,
        } => {
            check(state, &token_hash, now)?;
            Ok(vec![SetupEvent::Completed(SetupCompleted {
                token_hash,
                admin_email,
                ciso_email,
            })])
        }
    }
}

pub fn evolve(mut state: Setup, event: &SetupEvent) -> Setup {
    match event {
        SetupEvent::LinkIssued(l) => state.current = Some(l.clone()),
        SetupEvent::Completed(_) => state.completed = true,
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_link_works_once_within_the_hour_and_only_the_latest() {
        let now = t("2026-03-01T10:00:00Z");
        let issue = |h: &str| SetupCommand::Issue {
            token_hash: h.into(),
            now,
        };
        let complete = |h: &str, at| SetupCommand::Complete {
            token_hash: h.into(),
            admin_email: "a@kommunen.example".into(),
            ciso_email: "c@kommunen.example".into(),
            now: at,
        };
        let s = decide(&Setup::default(), issue("aa"))
            .unwrap()
            .iter()
            .fold(Setup::default(), evolve);
        assert_eq!(
            decide(&s, complete("aa", t("2026-03-01T11:00:00Z"))),
            Err(SetupError::Expired)
        );
        assert_eq!(decide(&s, complete("bb", now)), Err(SetupError::Unknown));
        let s2 = decide(&s, issue("bb")).unwrap().iter().fold(s, evolve);
        assert_eq!(decide(&s2, complete("aa", now)), Err(SetupError::Unknown));
        let done = decide(&s2, complete("bb", t("2026-03-01T10:59:59Z")))
            .unwrap()
            .iter()
            .fold(s2, evolve);
        assert_eq!(decide(&done, complete("bb", now)), Err(SetupError::Used));
        assert_eq!(decide(&done, issue("cc")), Err(SetupError::Used));
    }
}
