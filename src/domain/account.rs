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

/// A personal calendar feed (ICS) of the owner's deadlines: only the SHA-256 of its secret
/// URL token is stored. A new feed replaces the owner's earlier one (revoked in the same
/// commit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalendarFeedCreated {
    pub account_id: Uuid,
    pub feed_id: Uuid,
    pub token_hash: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalendarFeedRevoked {
    pub account_id: Uuid,
    pub feed_id: Uuid,
}

/// A browser session ended by signing out: a copy of its cookie no longer works.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedOut {
    pub account_id: Uuid,
    pub session_id: Uuid,
    /// When the session began (it would have expired on its own `SESSION_HOURS` later).
    pub issued_at: DateTime<Utc>,
}

/// A role that needs a second admin's approval was asked for (`duties`); nothing is
/// granted until `RoleGrantApproved`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleGrantRequested {
    pub account_id: Uuid,
    pub request_id: Uuid,
    pub role: Role,
    #[serde(default)]
    pub sectors: Vec<String>,
    /// The admin who asked (an approval must come from someone else).
    pub requested_by: Uuid,
}

/// A second admin approved a pending request; the `RoleGranted` follows in the same commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleGrantApproved {
    pub account_id: Uuid,
    pub request_id: Uuid,
}

/// A pending request was turned down or withdrawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleGrantRejected {
    pub account_id: Uuid,
    pub request_id: Uuid,
}

/// An authenticator app (TOTP, RFC 6238) confirmed with a current code. The secret is
/// sealed (XChaCha20-Poly1305 under a key derived from the installation secret, the
/// account id as associated data); `step` is the time step of the confirming code, so
/// that code is not accepted again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TotpEnrolled {
    pub account_id: Uuid,
    pub totp_id: Uuid,
    pub secret_sealed: String,
    pub step: u64,
}

/// The authenticator app removed by its owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TotpRemoved {
    pub account_id: Uuid,
    pub totp_id: Uuid,
}

/// A new set of one-time recovery codes (only their keyed hashes); it replaces the set
/// issued before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoveryCodesIssued {
    pub account_id: Uuid,
    pub batch_id: Uuid,
    pub code_hashes: Vec<String>,
}

/// A recovery code used as the second factor: it no longer works.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoveryCodeUsed {
    pub account_id: Uuid,
    pub batch_id: Uuid,
    pub code_hash: String,
}

/// A passkey (WebAuthn credential) registered by its owner: its credential id
/// (base64url) and the stored credential (public key, counter, flags; no secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PasskeyRegistered {
    pub account_id: Uuid,
    pub passkey_id: Uuid,
    pub name: String,
    pub credential_id: String,
    pub credential: serde_json::Value,
}

/// A passkey removed by its owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PasskeyRemoved {
    pub account_id: Uuid,
    pub passkey_id: Uuid,
}

/// How a second factor was given at sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecondFactorMethod {
    Totp,
    Passkey,
}

/// A sign-in completed with the authenticator app (its time step, never accepted again)
/// or a passkey (its credential as updated by the use: sign counter, backup state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecondFactorUsed {
    pub account_id: Uuid,
    pub method: SecondFactorMethod,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp_step: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passkey_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<serde_json::Value>,
}

/// An admin removed every second factor of the account (a lost phone or key), with a
/// reason: the authenticator app, the passkeys and the recovery codes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecondFactorsReset {
    pub account_id: Uuid,
    pub reason: String,
}

/// The account is the user `subject` of an identity provider (`[[auth.oidc]]` `provider`,
/// whose issuer is `issuer`): it signs in there, and its roles follow the provider's claim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdentityLinked {
    pub account_id: Uuid,
    pub provider: String,
    pub issuer: String,
    pub subject: String,
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
    RoleGrantRequested(RoleGrantRequested) = "RoleGrantRequested",
    RoleGrantApproved(RoleGrantApproved) = "RoleGrantApproved",
    RoleGrantRejected(RoleGrantRejected) = "RoleGrantRejected",
    CalendarFeedCreated(CalendarFeedCreated) = "CalendarFeedCreated",
    CalendarFeedRevoked(CalendarFeedRevoked) = "CalendarFeedRevoked",
    TotpEnrolled(TotpEnrolled) = "TotpEnrolled",
    TotpRemoved(TotpRemoved) = "TotpRemoved",
    RecoveryCodesIssued(RecoveryCodesIssued) = "RecoveryCodesIssued",
    RecoveryCodeUsed(RecoveryCodeUsed) = "RecoveryCodeUsed",
    PasskeyRegistered(PasskeyRegistered) = "PasskeyRegistered",
    PasskeyRemoved(PasskeyRemoved) = "PasskeyRemoved",
    SecondFactorUsed(SecondFactorUsed) = "SecondFactorUsed",
    SecondFactorsReset(SecondFactorsReset) = "SecondFactorsReset",
    IdentityLinked(IdentityLinked) = "IdentityLinked",
    }
}

/// An identity provider's user an account is (`IdentityLinked`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkedIdentity {
    pub provider: String,
    pub issuer: String,
    pub subject: String,
    pub linked_at: DateTime<Utc>,
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

/// A calendar feed of an account (its token only as a hash).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CalendarFeed {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub hash: String,
}

/// The account's authenticator app (its sealed secret never serialized).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TotpFactor {
    pub id: Uuid,
    pub enrolled_at: DateTime<Utc>,
    #[serde(skip)]
    pub secret_sealed: String,
    /// The latest time step accepted: a code of this step or an earlier one is refused.
    #[serde(skip)]
    pub last_step: u64,
}

/// A registered passkey.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PasskeyFactor {
    pub id: Uuid,
    pub name: String,
    pub registered_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub credential_id: String,
    #[serde(skip)]
    pub credential: serde_json::Value,
}

/// The recovery codes not used yet, as keyed hashes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecoveryCodes {
    pub batch_id: Uuid,
    pub issued_at: DateTime<Utc>,
    #[serde(skip)]
    pub unused: Vec<String>,
}

/// A role grant waiting for a second admin.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PendingGrant {
    pub request_id: Uuid,
    pub role: Role,
    pub sectors: Vec<String>,
    pub requested_by: Uuid,
    pub requested_at: DateTime<Utc>,
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
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub calendar_feeds: Vec<CalendarFeed>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pending_grants: Vec<PendingGrant>,
    pub version: u32,
    #[serde(skip)]
    pub password_hash: Option<String>,
    /// `PasswordChanged.pepper` of the current hash.
    #[serde(skip)]
    pub password_pepper: Option<String>,
    /// Sessions signed out of that would otherwise still be within their lifetime.
    #[serde(skip)]
    pub ended_sessions: HashMap<Uuid, DateTime<Utc>>,
    /// Second factors: the authenticator app, passkeys, and recovery codes (usable only
    /// while the account has an app or a passkey).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub totp: Option<TotpFactor>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub passkeys: Vec<PasskeyFactor>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_codes: Option<RecoveryCodes>,
    /// The identity providers' users this account is (it signs in through them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub identities: Vec<LinkedIdentity>,
}

impl Account {
    pub fn has(&self, role: Role) -> bool {
        self.roles.iter().any(|g| g.role == role)
    }

    /// The calendar feed in use, if any.
    pub fn active_calendar_feed(&self) -> Option<&CalendarFeed> {
        self.calendar_feeds.iter().find(|f| f.revoked_at.is_none())
    }

    /// Has the account an authenticator app or a passkey (so signing in takes a second
    /// step)?
    pub fn has_second_factor(&self) -> bool {
        self.totp.is_some() || !self.passkeys.is_empty()
    }

    /// Recovery codes left to use.
    pub fn recovery_codes_left(&self) -> usize {
        self.recovery_codes.as_ref().map_or(0, |r| r.unused.len())
    }

    /// Without an app or a passkey the recovery codes have nothing to stand in for.
    fn forget_codes_without_factor(&mut self) {
        if !self.has_second_factor() {
            self.recovery_codes = None;
        }
    }
}

/// All accounts, folded from the log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Accounts {
    by_id: HashMap<Uuid, Account>,
    by_token_hash: HashMap<String, (Uuid, Uuid)>,
    by_calendar_hash: HashMap<String, (Uuid, Uuid)>,
    /// Passkey credential id (base64url) → account: one credential, one account.
    by_passkey_credential: HashMap<String, Uuid>,
    /// (issuer, subject) → account: one provider user, one account.
    by_identity: HashMap<(String, String), Uuid>,
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
                calendar_feeds: Vec::new(),
                pending_grants: Vec::new(),
                version: 0,
                password_hash: None,
                password_pepper: None,
                ended_sessions: HashMap::new(),
                totp: None,
                passkeys: Vec::new(),
                recovery_codes: None,
                identities: Vec::new(),
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
            AccountEvent::CalendarFeedCreated(f) => {
                self.by_calendar_hash
                    .insert(f.token_hash.clone(), (a.id, f.feed_id));
                a.calendar_feeds.push(CalendarFeed {
                    id: f.feed_id,
                    created_at: at,
                    revoked_at: None,
                    hash: f.token_hash,
                });
            }
            AccountEvent::CalendarFeedRevoked(r) => {
                if let Some(f) = a
                    .calendar_feeds
                    .iter_mut()
                    .find(|f| f.id == r.feed_id && f.revoked_at.is_none())
                {
                    f.revoked_at = Some(at);
                    self.by_calendar_hash.remove(&f.hash);
                }
            }
            AccountEvent::RoleGrantRequested(r) => a.pending_grants.push(PendingGrant {
                request_id: r.request_id,
                role: r.role,
                sectors: r.sectors,
                requested_by: r.requested_by,
                requested_at: at,
            }),
            AccountEvent::RoleGrantApproved(r) => {
                a.pending_grants.retain(|p| p.request_id != r.request_id)
            }
            AccountEvent::RoleGrantRejected(r) => {
                a.pending_grants.retain(|p| p.request_id != r.request_id)
            }
            AccountEvent::TotpEnrolled(t) => {
                a.totp = Some(TotpFactor {
                    id: t.totp_id,
                    enrolled_at: at,
                    secret_sealed: t.secret_sealed,
                    last_step: t.step,
                })
            }
            AccountEvent::TotpRemoved(r) => {
                if a.totp.as_ref().is_some_and(|t| t.id == r.totp_id) {
                    a.totp = None;
                }
                a.forget_codes_without_factor();
            }
            AccountEvent::RecoveryCodesIssued(r) => {
                a.recovery_codes = Some(RecoveryCodes {
                    batch_id: r.batch_id,
                    issued_at: at,
                    unused: r.code_hashes,
                })
            }
            AccountEvent::RecoveryCodeUsed(u) => {
                if let Some(codes) = a
                    .recovery_codes
                    .as_mut()
                    .filter(|c| c.batch_id == u.batch_id)
                {
                    codes.unused.retain(|h| *h != u.code_hash);
                }
            }
            AccountEvent::PasskeyRegistered(p) => {
                self.by_passkey_credential
                    .insert(p.credential_id.clone(), a.id);
                a.passkeys.push(PasskeyFactor {
                    id: p.passkey_id,
                    name: p.name,
                    registered_at: at,
                    last_used_at: None,
                    credential_id: p.credential_id,
                    credential: p.credential,
                });
            }
            AccountEvent::PasskeyRemoved(r) => {
                if let Some(i) = a.passkeys.iter().position(|p| p.id == r.passkey_id) {
                    let p = a.passkeys.remove(i);
                    self.by_passkey_credential.remove(&p.credential_id);
                }
                a.forget_codes_without_factor();
            }
            AccountEvent::SecondFactorUsed(u) => match u.method {
                SecondFactorMethod::Totp => {
                    if let (Some(t), Some(step)) = (a.totp.as_mut(), u.totp_step) {
                        t.last_step = t.last_step.max(step);
                    }
                }
                SecondFactorMethod::Passkey => {
                    if let Some(p) = a.passkeys.iter_mut().find(|p| Some(p.id) == u.passkey_id) {
                        p.last_used_at = Some(at);
                        if let Some(c) = u.credential {
                            p.credential = c;
                        }
                    }
                }
            },
            AccountEvent::SecondFactorsReset(_) => {
                for p in a.passkeys.drain(..) {
                    self.by_passkey_credential.remove(&p.credential_id);
                }
                a.totp = None;
                a.recovery_codes = None;
            }
            AccountEvent::IdentityLinked(l) => {
                self.by_identity
                    .insert((l.issuer.clone(), l.subject.clone()), a.id);
                a.identities.push(LinkedIdentity {
                    provider: l.provider,
                    issuer: l.issuer,
                    subject: l.subject,
                    linked_at: at,
                });
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

    /// The active account a calendar feed token belongs to, and the feed's id.
    pub fn by_calendar_hash(&self, hash: &str) -> Option<(&Account, Uuid)> {
        let (account, feed) = self.by_calendar_hash.get(hash)?;
        let a = self.by_id.get(account).filter(|a| !a.disabled)?;
        Some((a, *feed))
    }

    /// The account a passkey credential (base64url id) is registered to.
    pub fn by_passkey_credential(&self, credential_id: &str) -> Option<Uuid> {
        self.by_passkey_credential.get(credential_id).copied()
    }

    /// The account an identity provider's user (issuer, subject) is linked to.
    pub fn by_identity(&self, issuer: &str, subject: &str) -> Option<&Account> {
        let id = self
            .by_identity
            .get(&(issuer.to_string(), subject.to_string()))?;
        self.by_id.get(id)
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
    /// A new calendar feed; the one in use (if any) is revoked with it.
    CreateCalendarFeed {
        feed_id: Uuid,
        token_hash: String,
    },
    RevokeCalendarFeed {
        feed_id: Uuid,
    },
    SignOut {
        session_id: Uuid,
        issued_at: DateTime<Utc>,
    },
    /// An authenticator app confirmed with a code of time step `step`. `recovery`: new
    /// recovery codes, recorded when the account had no second factor before.
    EnrolTotp {
        totp_id: Uuid,
        secret_sealed: String,
        step: u64,
        recovery: Option<(Uuid, Vec<String>)>,
    },
    RemoveTotp,
    /// A new set of recovery codes replacing the old.
    IssueRecoveryCodes {
        batch_id: Uuid,
        code_hashes: Vec<String>,
    },
    /// A sign-in code of time step `step` was right.
    UseTotp {
        step: u64,
    },
    UseRecoveryCode {
        code_hash: String,
    },
    /// A passkey registered; `recovery` as for `EnrolTotp`.
    RegisterPasskey {
        passkey_id: Uuid,
        name: String,
        credential_id: String,
        credential: serde_json::Value,
        recovery: Option<(Uuid, Vec<String>)>,
    },
    RemovePasskey {
        passkey_id: Uuid,
    },
    /// A sign-in with a passkey; `credential` when the use changed it (counter, flags).
    UsePasskey {
        passkey_id: Uuid,
        credential: Option<serde_json::Value>,
    },
    /// An admin removes every second factor of the account.
    ResetSecondFactors {
        reason: String,
    },
}

/// The most passkeys one account may register.
pub const MAX_PASSKEYS: usize = 10;

fn refuse<T>(msg: &str) -> Result<T, AccountRefusal> {
    Err(AccountRefusal::Invalid(msg.into()))
}

/// New recovery codes go with a first second factor only (a second one keeps the set).
fn first_factor_codes(
    a: &Account,
    id: Uuid,
    recovery: &Option<(Uuid, Vec<String>)>,
) -> Option<AccountEvent> {
    let (batch_id, code_hashes) = recovery.as_ref()?;
    (!a.has_second_factor() || a.recovery_codes.is_none()).then(|| {
        AccountEvent::RecoveryCodesIssued(RecoveryCodesIssued {
            account_id: id,
            batch_id: *batch_id,
            code_hashes: code_hashes.clone(),
        })
    })
}

/// The second-factor commands on an existing account; `None` for the others.
fn decide_second_factor(
    a: &Account,
    id: Uuid,
    cmd: &AccountCommand,
) -> Option<Result<Vec<AccountEvent>, AccountRefusal>> {
    let events = match cmd {
        AccountCommand::EnrolTotp {
            totp_id,
            secret_sealed,
            step,
            recovery,
        } => {
            if a.totp.is_some() {
                return Some(refuse(
                    "Du har redan en autentiseringsapp. Ta bort den först om du vill byta.",
                ));
            }
            let mut events = vec![AccountEvent::TotpEnrolled(TotpEnrolled {
                account_id: id,
                totp_id: *totp_id,
                secret_sealed: secret_sealed.clone(),
                step: *step,
            })];
            events.extend(first_factor_codes(a, id, recovery));
            events
        }
        AccountCommand::RemoveTotp => match &a.totp {
            Some(t) => vec![AccountEvent::TotpRemoved(TotpRemoved {
                account_id: id,
                totp_id: t.id,
            })],
            None => return Some(refuse("Kontot har ingen autentiseringsapp.")),
        },
        AccountCommand::IssueRecoveryCodes {
            batch_id,
            code_hashes,
        } => {
            if !a.has_second_factor() {
                return Some(refuse(
                    "Lägg först till en autentiseringsapp eller en nyckel (passkey).",
                ));
            }
            vec![AccountEvent::RecoveryCodesIssued(RecoveryCodesIssued {
                account_id: id,
                batch_id: *batch_id,
                code_hashes: code_hashes.clone(),
            })]
        }
        AccountCommand::UseTotp { step } => match &a.totp {
            None => return Some(refuse("Kontot har ingen autentiseringsapp.")),
            // RFC 6238 5.2: a code is accepted once; so is every earlier step's.
            Some(t) if *step <= t.last_step => {
                return Some(refuse(
                    "Koden har redan använts. Vänta på nästa kod i appen och försök igen.",
                ))
            }
            Some(_) => vec![AccountEvent::SecondFactorUsed(SecondFactorUsed {
                account_id: id,
                method: SecondFactorMethod::Totp,
                totp_step: Some(*step),
                passkey_id: None,
                credential: None,
            })],
        },
        AccountCommand::UseRecoveryCode { code_hash } => match &a.recovery_codes {
            Some(c) if a.has_second_factor() && c.unused.contains(code_hash) => {
                vec![AccountEvent::RecoveryCodeUsed(RecoveryCodeUsed {
                    account_id: id,
                    batch_id: c.batch_id,
                    code_hash: code_hash.clone(),
                })]
            }
            _ => return Some(refuse("Återställningskoden är fel eller redan använd.")),
        },
        AccountCommand::RegisterPasskey {
            passkey_id,
            name,
            credential_id,
            credential,
            recovery,
        } => {
            let name = name.trim();
            if name.chars().count() > 100 {
                return Some(refuse("Ge nyckeln ett kortare namn (högst 100 tecken)."));
            }
            if a.passkeys.len() >= MAX_PASSKEYS {
                return Some(refuse(
                    "Du har redan tio nycklar. Ta bort en innan du lägger till en ny.",
                ));
            }
            if a.passkeys.iter().any(|p| p.credential_id == *credential_id) {
                return Some(refuse("Nyckeln är redan registrerad."));
            }
            let mut events = vec![AccountEvent::PasskeyRegistered(PasskeyRegistered {
                account_id: id,
                passkey_id: *passkey_id,
                name: if name.is_empty() {
                    "Nyckel".into()
                } else {
                    name.to_string()
                },
                credential_id: credential_id.clone(),
                credential: credential.clone(),
            })];
            events.extend(first_factor_codes(a, id, recovery));
            events
        }
        AccountCommand::RemovePasskey { passkey_id } => {
            if !a.passkeys.iter().any(|p| p.id == *passkey_id) {
                return Some(refuse("Nyckeln finns inte."));
            }
            vec![AccountEvent::PasskeyRemoved(PasskeyRemoved {
                account_id: id,
                passkey_id: *passkey_id,
            })]
        }
        AccountCommand::UsePasskey {
            passkey_id,
            credential,
        } => {
            if !a.passkeys.iter().any(|p| p.id == *passkey_id) {
                return Some(refuse("Nyckeln finns inte."));
            }
            vec![AccountEvent::SecondFactorUsed(SecondFactorUsed {
                account_id: id,
                method: SecondFactorMethod::Passkey,
                totp_step: None,
                passkey_id: Some(*passkey_id),
                credential: credential.clone(),
            })]
        }
        AccountCommand::ResetSecondFactors { reason } => {
            let reason = reason.trim();
            if reason.is_empty() || reason.chars().count() > 500 {
                return Some(refuse("Ange ett skäl (högst 500 tecken)."));
            }
            if !a.has_second_factor() && a.recovery_codes.is_none() {
                return Some(refuse("Kontot har ingen andra faktor att ta bort."));
            }
            vec![AccountEvent::SecondFactorsReset(SecondFactorsReset {
                account_id: id,
                reason: reason.to_string(),
            })]
        }
        _ => return None,
    };
    Some(Ok(events))
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

/// A role's sector scope: only `kontakt` has sectors, and needs at least one.
pub fn check_grant(role: Role, sectors: &[String]) -> Result<(), AccountRefusal> {
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
    if let Some(decided) = state.and_then(|a| decide_second_factor(a, id, cmd)) {
        return decided;
    }
    match (state, cmd) {
        (
            Some(a),
            AccountCommand::CreateCalendarFeed {
                feed_id,
                token_hash,
            },
        ) => {
            let mut events: Vec<AccountEvent> = a
                .calendar_feeds
                .iter()
                .filter(|f| f.revoked_at.is_none())
                .map(|f| {
                    AccountEvent::CalendarFeedRevoked(CalendarFeedRevoked {
                        account_id: id,
                        feed_id: f.id,
                    })
                })
                .collect();
            events.push(AccountEvent::CalendarFeedCreated(CalendarFeedCreated {
                account_id: id,
                feed_id: *feed_id,
                token_hash: token_hash.clone(),
            }));
            return Ok(events);
        }
        (Some(a), AccountCommand::RevokeCalendarFeed { feed_id }) => {
            if !a
                .calendar_feeds
                .iter()
                .any(|f| f.id == *feed_id && f.revoked_at.is_none())
            {
                return Err(AccountRefusal::Invalid(
                    "Kalenderlänken finns inte eller är redan återkallad.".into(),
                ));
            }
            return Ok(vec![AccountEvent::CalendarFeedRevoked(
                CalendarFeedRevoked {
                    account_id: id,
                    feed_id: *feed_id,
                },
            )]);
        }
        _ => {}
    }
    let ev = match cmd.clone() {
        AccountCommand::Create { .. }
        | AccountCommand::CreateCalendarFeed { .. }
        | AccountCommand::RevokeCalendarFeed { .. }
        | AccountCommand::EnrolTotp { .. }
        | AccountCommand::RemoveTotp
        | AccountCommand::IssueRecoveryCodes { .. }
        | AccountCommand::UseTotp { .. }
        | AccountCommand::UseRecoveryCode { .. }
        | AccountCommand::RegisterPasskey { .. }
        | AccountCommand::RemovePasskey { .. }
        | AccountCommand::UsePasskey { .. }
        | AccountCommand::ResetSecondFactors { .. } => unreachable!("handled above"),
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

    #[test]
    fn a_new_calendar_feed_replaces_the_old_and_a_revoked_one_is_gone() {
        let id = account_id(&email());
        let mut accounts = Accounts::default();
        let mut seq = 0u64;
        let mut apply = |accounts: &mut Accounts, events: Vec<AccountEvent>| {
            for ev in events {
                seq += 1;
                accounts.apply(&RecordedEvent {
                    seq,
                    id: Uuid::now_v7(),
                    stream: id,
                    version: seq as u32,
                    at: Utc::now(),
                    actor: "test".into(),
                    event_type: ev.type_name().into(),
                    schema: 1,
                    data: ev.to_data(),
                    prev: String::new(),
                });
            }
        };
        let create = AccountCommand::Create {
            email: email(),
            name: "Karin".into(),
            roles: vec![],
            password_hash: None,
        };
        apply(&mut accounts, decide(None, id, &create).unwrap());
        let feed = |n: u128| AccountCommand::CreateCalendarFeed {
            feed_id: Uuid::from_u128(n),
            token_hash: format!("hash{n}"),
        };
        let ev = decide(accounts.get(id), id, &feed(1)).unwrap();
        assert_eq!(ev.len(), 1);
        apply(&mut accounts, ev);
        assert_eq!(
            accounts.by_calendar_hash("hash1").map(|(_, f)| f),
            Some(Uuid::from_u128(1))
        );
        let ev = decide(accounts.get(id), id, &feed(2)).unwrap();
        assert!(matches!(
            ev[..],
            [
                AccountEvent::CalendarFeedRevoked(_),
                AccountEvent::CalendarFeedCreated(_)
            ]
        ));
        apply(&mut accounts, ev);
        assert!(accounts.by_calendar_hash("hash1").is_none());
        assert!(accounts.by_calendar_hash("hash2").is_some());
        let revoke = |n: u128| AccountCommand::RevokeCalendarFeed {
            feed_id: Uuid::from_u128(n),
        };
        assert!(decide(accounts.get(id), id, &revoke(1)).is_err());
        let ev = decide(accounts.get(id), id, &revoke(2)).unwrap();
        apply(&mut accounts, ev);
        assert!(accounts.by_calendar_hash("hash2").is_none());
        assert!(accounts.get(id).unwrap().active_calendar_feed().is_none());
        assert_eq!(accounts.get(id).unwrap().calendar_feeds.len(), 2);
    }
}
