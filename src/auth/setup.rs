//! The first-run setup link: issued at start when there is no staff account, printed once,
//! only its hash stored; used once in the browser to create the first admin and CISO.

use avvik_events::{EventStore, ExpectedVersion, NewEvent, StoreError};
use chrono::{DateTime, Utc};

use super::service::AccountError;
use super::Role;
use crate::domain::setup::SetupEvent;
use crate::domain::setup::{decide, evolve, Setup, SetupCommand, SetupError, SETUP_STREAM};
use crate::domain::EmailAddress;
use crate::service::Services;

/// The path of a link, for a token.
pub fn link_path(token: &str) -> String {
    format!("/setup/{token}")
}

/// The stream folded, and its version.
pub fn load(store: &dyn EventStore) -> Result<(Setup, u32), StoreError> {
    let mut s = Setup::default();
    let mut version = 0;
    for r in store.read_stream(SETUP_STREAM, 1)? {
        version = r.version;
        if let Some(Ok(ev)) = SetupEvent::from_parts(&r.event_type, &r.data) {
            s = evolve(s, &ev);
        }
    }
    Ok((s, version))
}

fn expected(version: u32) -> ExpectedVersion {
    if version == 0 {
        ExpectedVersion::NoStream
    } else {
        ExpectedVersion::Exact(version)
    }
}

/// Issues a new link when nobody can log in yet (no account, setup not done). Returns
/// the token (for the link, shown once); `None` when setup is not needed.
pub async fn issue_if_needed(services: &Services) -> Result<Option<String>, StoreError> {
    if !services.register.read().accounts.is_empty() {
        return Ok(None);
    }
    let store = services.store.as_ref();
    let (state, version) = load(store)?;
    if state.completed {
        return Ok(None);
    }
    let token = crate::service::new_status_token();
    let cmd = SetupCommand::Issue {
        token_hash: avvik_events::hash_hex(token.as_bytes()),
        now: services.clock.now(),
    };
    let Ok(events) = decide(&state, cmd) else {
        return Ok(None);
    };
    let now = services.clock.now();
    let new = events
        .iter()
        .map(|e| NewEvent::new(e.type_name(), e.to_data(), "system", now))
        .collect();
    store.append(SETUP_STREAM, expected(version), new).await?;
    Ok(Some(token))
}

#[derive(Debug, thiserror::Error)]
pub enum SetupFailure {
    #[error(transparent)]
    Link(#[from] SetupError),
    /// Accounts exist already (made with the CLI meanwhile).
    #[error("staff accounts exist already")]
    AccountsExist,
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SetupFailure {
    pub fn message_sv(&self) -> String {
        match self {
            SetupFailure::Link(e) => e.message_sv().to_string(),
            SetupFailure::AccountsExist => {
                "Det finns redan konton. Logga in, eller be en administratör om ett konto.".into()
            }
            SetupFailure::Account(e) => e.message_sv(),
            SetupFailure::Store(_) => "Det gick inte att spara just nu. Försök igen.".into(),
        }
    }
}

/// Whether the link with `token` may be used at `now`.
pub fn check(services: &Services, token: &str, now: DateTime<Utc>) -> Result<(), SetupFailure> {
    let (state, _) = load(services.store.as_ref())?;
    crate::domain::setup::check(&state, &avvik_events::hash_hex(token.as_bytes()), now)?;
    if !services.register.read().accounts.is_empty() {
        return Err(SetupFailure::AccountsExist);
    }
    Ok(())
}

/// The people the setup form names.
pub struct FirstAccounts<'a> {
    pub admin_email: &'a EmailAddress,
    pub admin_name: &'a str,
    pub admin_password: &'a str,
    /// None: the admin is the CISO too.
    pub ciso: Option<(&'a EmailAddress, &'a str, &'a str)>,
}

/// Uses the link: first marks it used (so a second use is refused by the store's version
/// check even when two arrive at once), then creates the accounts.
pub async fn complete(
    services: &Services,
    token: &str,
    who: FirstAccounts<'_>,
) -> Result<(), SetupFailure> {
    let now = services.clock.now();
    check(services, token, now)?;
    // Refuse a weak password before the link is spent.
    for pw in std::iter::once(who.admin_password).chain(who.ciso.map(|c| c.2)) {
        super::password::check_strength(pw).map_err(|m| AccountError::Invalid(m.into()))?;
    }
    let store = services.store.as_ref();
    let (state, version) = load(store)?;
    let ciso_email = who.ciso.map_or(who.admin_email, |c| c.0);
    let events = decide(
        &state,
        SetupCommand::Complete {
            token_hash: avvik_events::hash_hex(token.as_bytes()),
            admin_email: who.admin_email.to_string(),
            ciso_email: ciso_email.to_string(),
            now,
        },
    )?;
    let new = events
        .iter()
        .map(|e| NewEvent::new(e.type_name(), e.to_data(), "setup-link", now))
        .collect();
    match store.append(SETUP_STREAM, expected(version), new).await {
        Ok(_) => {}
        Err(StoreError::Conflict { .. }) => return Err(SetupError::Used.into()),
        Err(e) => return Err(e.into()),
    }
    let actor = "setup-link";
    match who.ciso {
        None => {
            services
                .create_account(
                    who.admin_email,
                    who.admin_name,
                    &[(Role::Admin, Vec::new()), (Role::Ciso, Vec::new())],
                    Some(who.admin_password),
                    actor,
                )
                .await?;
        }
        Some((email, name, pw)) => {
            services
                .create_account(
                    who.admin_email,
                    who.admin_name,
                    &[(Role::Admin, Vec::new())],
                    Some(who.admin_password),
                    actor,
                )
                .await?;
            services
                .create_account(email, name, &[(Role::Ciso, Vec::new())], Some(pw), actor)
                .await?;
        }
    }
    Ok(())
}
