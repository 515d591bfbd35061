//! Staff accounts and their roles, as events in per-account streams, folded into
//! `Accounts`. Because they are events, an auditor can replay who could do what, when.

use std::collections::HashMap;

use avvik_events::RecordedEvent;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::EmailAddress;

/// Absolute lifetime of a staff session.
pub const SESSION_HOURS: i64 = 10;

/// Namespace for account ids: an account's id is UUIDv5 of its lower-cased e-mail, so the
/// same address can never be created twice (the create appends with NoStream).
const ACCOUNT_NS: Uuid = Uuid::from_u128(0x6176_7669_6b2d_6163_636f_756e_7473_0001);

pub fn account_id(email: &EmailAddress) -> Uuid {
    Uuid::new_v5(&ACCOUNT_NS, email.as_str().to_lowercase().as_bytes())
}

/// The roles of DESIGN.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything about deviations.
    Ciso,
    /// Informationssäkerhetskontakt, scoped to sectors.
    Kontakt,
    /// Dataskyddsombud: personal-data deviations.
    Dso,
    /// Systemägare/systemförvaltare: deviations where they own a measure.
    Systemagare,
    /// Ledningsgrupp/kommunstyrelsen: read major deviations.
    Ledning,
    /// Read everything, write nothing.
    Auditor,
    /// Accounts only.
    Admin,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::Ciso,
        Role::Kontakt,
        Role::Dso,
        Role::Systemagare,
        Role::Ledning,
        Role::Auditor,
        Role::Admin,
    ];

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s.trim().to_lowercase())
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ciso => "ciso",
            Role::Kontakt => "kontakt",
            Role::Dso => "dso",
            Role::Systemagare => "systemagare",
            Role::Ledning => "ledning",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }

    pub fn label_sv(self) -> &'static str {
        match self {
            Role::Ciso => "CISO",
            Role::Kontakt => "Informationssäkerhetskontakt",
            Role::Dso => "Dataskyddsombud",
            Role::Systemagare => "Systemägare",
            Role::Ledning => "Ledning",
            Role::Auditor => "Revisor",
            Role::Admin => "Administratör",
        }
    }
}

/// A role held, with its sector scope (only `kontakt` uses sectors).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleGrant {
    pub role: Role,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sectors: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountCreated {
    pub account_id: Uuid,
    pub email: EmailAddress,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleGranted {
    pub account_id: Uuid,
    pub role: Role,
    #[serde(default)]
    pub sectors: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleRevoked {
    pub account_id: Uuid,
    pub role: Role,
}

/// The argon2id PHC string. It is a salted, memory-hard hash, never the password.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PasswordChanged {
    pub account_id: Uuid,
    pub password_hash: String,
    /// How the hashed input derives from the password (`password::PEPPER_V1`); absent in
    /// events from before peppering, whose hash is of the bare password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pepper: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountDisabled {
    pub account_id: Uuid,
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountEnabled {
    pub account_id: Uuid,
}

/// An API token: only the SHA-256 of the token is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiTokenCreated {
    pub account_id: Uuid,
    pub token_id: Uuid,
    pub token_hash: String,
    #[serde(default)]
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiTokenRevoked {
    pub account_id: Uuid,
    pub token_id: Uuid,
}

/// A browser session ended by signing out: a copy of its cookie no longer works.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedOut {
    pub account_id: Uuid,
    pub session_id: Uuid,
    /// When the session began (it would have expired on its own `SESSION_HOURS` later).
    pub issued_at: DateTime<Utc>,
}

crate::domain::event_enum! {
    /// Everything that can happen to an account.
    AccountEvent {
    Created(AccountCreated) = "AccountCreated",
    RoleGranted(RoleGranted) = "RoleGranted",
    RoleRevoked(RoleRevoked) = "RoleRevoked",
    PasswordChanged(PasswordChanged) = "PasswordChanged",
    Disabled(AccountDisabled) = "AccountDisabled",
    Enabled(AccountEnabled) = "AccountEnabled",
    ApiTokenCreated(ApiTokenCreated) = "ApiTokenCreated",
    ApiTokenRevoked(ApiTokenRevoked) = "ApiTokenRevoked",
    SignedOut(SignedOut) = "SignedOut",
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiToken {
    pub id: Uuid,
    pub label: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Account {
    pub id: Uuid,
    pub email: EmailAddress,
    pub name: String,
    pub roles: Vec<RoleGrant>,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub password_changed_at: Option<DateTime<Utc>>,
    pub tokens: Vec<ApiToken>,
    pub version: u32,
    #[serde(skip)]
    pub password_hash: Option<String>,
    /// `PasswordChanged.pepper` of the current hash.
    #[serde(skip)]
    pub password_pepper: Option<String>,
    /// Sessions signed out of that would otherwise still be within their lifetime.
    #[serde(skip)]
    pub ended_sessions: HashMap<Uuid, DateTime<Utc>>,
}

impl Account {
    pub fn has(&self, role: Role) -> bool {
        self.roles.iter().any(|g| g.role == role)
    }
}

/// All accounts, folded from the log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Accounts {
    by_id: HashMap<Uuid, Account>,
    by_token_hash: HashMap<String, (Uuid, Uuid)>,
}

impl Accounts {
    /// Folds one record in; returns false if it is not an account event.
    pub fn apply(&mut self, rec: &RecordedEvent) -> bool {
        let Some(decoded) = AccountEvent::from_parts(&rec.event_type, &rec.data) else {
            return false;
        };
        let ev = match decoded {
            Ok(ev) => ev,
            Err(e) => {
                tracing::error!(seq = rec.seq, error = %e, "stored account event does not decode");
                return true;
            }
        };
        let at = rec.at;
        if let AccountEvent::Created(c) = &ev {
            self.by_id.entry(c.account_id).or_insert_with(|| Account {
                id: c.account_id,
                email: c.email.clone(),
                name: c.name.clone(),
                roles: Vec::new(),
                disabled: false,
                created_at: at,
                password_changed_at: None,
                tokens: Vec::new(),
                version: 0,
                password_hash: None,
                password_pepper: None,
                ended_sessions: HashMap::new(),
            });
        }
        let Some(a) = self.by_id.get_mut(&rec.stream) else {
            return true;
        };
        a.version = rec.version;
        match ev {
            AccountEvent::Created(_) => {}
            AccountEvent::RoleGranted(g) => {
                a.roles.retain(|x| x.role != g.role);
                a.roles.push(RoleGrant {
                    role: g.role,
                    sectors: g.sectors,
                });
                a.roles.sort_by_key(|g| g.role);
            }
            AccountEvent::RoleRevoked(r) => a.roles.retain(|x| x.role != r.role),
            AccountEvent::PasswordChanged(p) => {
                a.password_hash = Some(p.password_hash);
                a.password_pepper = p.pepper;
                a.password_changed_at = Some(at);
            }
            AccountEvent::Disabled(_) => a.disabled = true,
            AccountEvent::Enabled(_) => a.disabled = false,
            AccountEvent::ApiTokenCreated(t) => {
                self.by_token_hash
                    .insert(t.token_hash.clone(), (a.id, t.token_id));
                a.tokens.push(ApiToken {
                    id: t.token_id,
                    label: t.label,
                    created_at: at,
                    revoked_at: None,
                    hash: t.token_hash,
                });
            }
            AccountEvent::ApiTokenRevoked(r) => {
                if let Some(t) = a.tokens.iter_mut().find(|t| t.id == r.token_id) {
                    t.revoked_at = Some(at);
                    self.by_token_hash.remove(&t.hash);
                }
            }
            AccountEvent::SignedOut(o) => {
                // Sessions past their lifetime are refused anyway; forget them (by log
                // time, so every replay keeps the same set).
                let lifetime = chrono::Duration::hours(SESSION_HOURS);
                a.ended_sessions
                    .retain(|_, issued| at - *issued <= lifetime);
                a.ended_sessions.insert(o.session_id, o.issued_at);
            }
        }
        true
    }

    pub fn get(&self, id: Uuid) -> Option<&Account> {
        self.by_id.get(&id)
    }

    pub fn by_email(&self, email: &EmailAddress) -> Option<&Account> {
        self.by_id.get(&account_id(email))
    }

    /// The active account an API token belongs to.
    pub fn by_token_hash(&self, hash: &str) -> Option<&Account> {
        let (account, _) = self.by_token_hash.get(hash)?;
        self.by_id.get(account).filter(|a| !a.disabled)
    }

    pub fn list(&self) -> Vec<&Account> {
        let mut v: Vec<&Account> = self.by_id.values().collect();
        v.sort_by(|a, b| a.email.as_str().cmp(b.email.as_str()));
        v
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// What can be asked of an account. Secrets arrive hashed: hashing is salted (random),
/// so it happens before the decision, which stays pure.
#[derive(Debug, Clone)]
pub enum AccountCommand {
    Create {
        email: EmailAddress,
        name: String,
        roles: Vec<(Role, Vec<String>)>,
        password_hash: Option<(String, String)>,
    },
    GrantRole {
        role: Role,
        sectors: Vec<String>,
    },
    RevokeRole {
        role: Role,
    },
    /// The new hash and its pepper name.
    SetPassword {
        password_hash: String,
        pepper: String,
    },
    SetDisabled {
        disabled: bool,
        reason: String,
    },
    CreateToken {
        token_id: Uuid,
        token_hash: String,
        label: String,
    },
    RevokeToken {
        token_id: Uuid,
    },
    SignOut {
        session_id: Uuid,
        issued_at: DateTime<Utc>,
    },
}

/// Why an account command is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountRefusal {
    #[error("an account with this e-mail address already exists")]
    Exists,
    #[error("no such account")]
    NotFound,
    /// The Swedish message for the person who asked.
    #[error("{0}")]
    Invalid(String),
}

fn check_grant(role: Role, sectors: &[String]) -> Result<(), AccountRefusal> {
    if role == Role::Kontakt && sectors.is_empty() {
        return Err(AccountRefusal::Invalid(
            "En informationssäkerhetskontakt måste ha minst en sektor.".into(),
        ));
    }
    if role != Role::Kontakt && !sectors.is_empty() {
        return Err(AccountRefusal::Invalid(
            "Endast informationssäkerhetskontakter har sektorer.".into(),
        ));
    }
    Ok(())
}

/// The account decider: the events a command on account `id` (in state `state`; `None`
/// while it does not exist) leads to. Pure.
pub fn decide(
    state: Option<&Account>,
    id: Uuid,
    cmd: &AccountCommand,
) -> Result<Vec<AccountEvent>, AccountRefusal> {
    if let AccountCommand::Create {
        email,
        name,
        roles,
        password_hash,
    } = cmd
    {
        if state.is_some() {
            return Err(AccountRefusal::Exists);
        }
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(AccountRefusal::Invalid(
                "Ange ett namn (högst 200 tecken).".into(),
            ));
        }
        let mut events = vec![AccountEvent::Created(AccountCreated {
            account_id: id,
            email: email.clone(),
            name: name.to_string(),
        })];
        for (role, sectors) in roles {
            check_grant(*role, sectors)?;
            events.push(AccountEvent::RoleGranted(RoleGranted {
                account_id: id,
                role: *role,
                sectors: sectors.clone(),
            }));
        }
        if let Some((hash, pepper)) = password_hash {
            events.push(AccountEvent::PasswordChanged(PasswordChanged {
                account_id: id,
                password_hash: hash.clone(),
                pepper: Some(pepper.clone()),
            }));
        }
        return Ok(events);
    }
    // Signing out is recorded whatever else happened to the account meanwhile.
    if state.is_none() && !matches!(cmd, AccountCommand::SignOut { .. }) {
        return Err(AccountRefusal::NotFound);
    }
    let ev = match cmd.clone() {
        AccountCommand::Create { .. } => unreachable!("handled above"),
        AccountCommand::GrantRole { role, sectors } => {
            check_grant(role, &sectors)?;
            AccountEvent::RoleGranted(RoleGranted {
                account_id: id,
                role,
                sectors,
            })
        }
        AccountCommand::RevokeRole { role } => AccountEvent::RoleRevoked(RoleRevoked {
            account_id: id,
            role,
        }),
        AccountCommand::SetPassword {
            password_hash,
            pepper,
        } => AccountEvent::PasswordChanged(PasswordChanged {
            account_id: id,
            password_hash,
            pepper: Some(pepper),
        }),
        AccountCommand::SetDisabled { disabled, reason } => {
            if disabled {
                AccountEvent::Disabled(AccountDisabled {
                    account_id: id,
                    reason,
                })
            } else {
                AccountEvent::Enabled(AccountEnabled { account_id: id })
            }
        }
        AccountCommand::CreateToken {
            token_id,
            token_hash,
            label,
        } => AccountEvent::ApiTokenCreated(ApiTokenCreated {
            account_id: id,
            token_id,
            token_hash,
            label,
        }),
        AccountCommand::RevokeToken { token_id } => {
            AccountEvent::ApiTokenRevoked(ApiTokenRevoked {
                account_id: id,
                token_id,
            })
        }
        AccountCommand::SignOut {
            session_id,
            issued_at,
        } => AccountEvent::SignedOut(SignedOut {
            account_id: id,
            session_id,
            issued_at,
        }),
    };
    Ok(vec![ev])
}

#[cfg(test)]
mod decide_tests {
    use super::*;

    fn email() -> EmailAddress {
        EmailAddress::parse("ciso@kommunen.example").unwrap()
    }

    #[test]
    fn create_twice_is_refused_and_kontakt_needs_a_sector() {
        let id = account_id(&email());
        let create = |roles| AccountCommand::Create {
            email: email(),
            name: "Karin".into(),
            roles,
            password_hash: None,
        };
        assert_eq!(decide(None, id, &create(vec![])).unwrap().len(), 1);
        assert!(matches!(
            decide(None, id, &create(vec![(Role::Kontakt, vec![])])),
            Err(AccountRefusal::Invalid(_))
        ));
        let mut accounts = Accounts::default();
        for (i, ev) in decide(None, id, &create(vec![(Role::Ciso, vec![])]))
            .unwrap()
            .into_iter()
            .enumerate()
        {
            accounts.apply(&RecordedEvent {
                seq: i as u64 + 1,
                id: Uuid::now_v7(),
                stream: id,
                version: i as u32 + 1,
                at: Utc::now(),
                actor: "system:cli".into(),
                event_type: ev.type_name().into(),
                schema: 1,
                data: ev.to_data(),
                prev: String::new(),
            });
        }
        let a = accounts.get(id).unwrap();
        assert!(a.has(Role::Ciso));
        assert_eq!(
            decide(Some(a), id, &create(vec![])),
            Err(AccountRefusal::Exists)
        );
        assert_eq!(
            decide(None, id, &AccountCommand::RevokeRole { role: Role::Ciso }),
            Err(AccountRefusal::NotFound)
        );
    }
}
