//! The first-run setup link: issued at start when there is no staff account, printed once,
//! only its hash stored; used once in the browser to create the first admin and CISO.

use avvik_events::{EventStore, StoreError};
use chrono::{DateTime, Utc};

use super::service::AccountError;
use super::Role;
use crate::command::{CommandError, Current, Envelope, Executed, Load};
use crate::domain::setup::SetupEvent;
use crate::domain::setup::{decide, evolve, Setup, SetupCommand, SetupError, SETUP_STREAM};
use crate::domain::{EmailAddress, System};
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

/// The loader of the setup stream, for the command path.
fn loader<E: From<StoreError>>(services: &Services) -> Load<'_, Setup, E> {
    Box::new(move || {
        Box::pin(async move {
            let (state, version) = load(services.store.as_ref())?;
            Ok(Current::new(state, (version > 0).then_some(version)))
        })
    })
}

/// A failed command on the setup stream, as a store error.
struct SetupStoreError(StoreError);

impl From<StoreError> for SetupStoreError {
    fn from(e: StoreError) -> Self {
        SetupStoreError(e)
    }
}

impl From<CommandError> for SetupStoreError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Store(e) => SetupStoreError(e),
            CommandError::Contention => {
                SetupStoreError(StoreError::Storage("setup stream contended".into()))
            }
        }
    }
}

impl From<CommandError> for SetupFailure {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Store(e) => SetupFailure::Store(e),
            // Another request changed the stream each time: someone else used the link.
            CommandError::Contention => SetupFailure::Link(SetupError::Used),
        }
    }
}

/// Issues a new link when nobody can log in yet (no account, setup not done). Returns
/// the token (for the link, shown once); `None` when setup is not needed.
pub async fn issue_if_needed(services: &Services) -> Result<Option<String>, StoreError> {
    if !services.register.read().accounts.is_empty() {
        return Ok(None);
    }
    let token = crate::service::new_status_token();
    let token_hash = avvik_events::hash_hex(token.as_bytes());
    let env = Envelope::new(SETUP_STREAM, System::Setup.as_str());
    let outcome = services
        .commands()
        .execute(&env, loader::<SetupStoreError>(services), |state, ctx| {
            if state.completed {
                return Ok(Vec::new());
            }
            let cmd = SetupCommand::Issue {
                token_hash: token_hash.clone(),
                now: ctx.now,
            };
            Ok(decide(state, cmd).unwrap_or_default())
        })
        .await
        .map_err(|e| e.0)?;
    Ok(matches!(outcome, Executed::Committed { .. }).then_some(token))
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
    let ciso_email = who.ciso.map_or(who.admin_email, |c| c.0);
    let token_hash = avvik_events::hash_hex(token.as_bytes());
    let env = Envelope::new(SETUP_STREAM, "setup-link").at(now);
    // Two uses at once: the second is decided again on the used link and refused.
    services
        .commands()
        .execute(&env, loader::<SetupFailure>(services), |state, _ctx| {
            let cmd = SetupCommand::Complete {
                token_hash: token_hash.clone(),
                admin_email: who.admin_email.to_string(),
                ciso_email: ciso_email.to_string(),
                now,
            };
            Ok(decide(state, cmd)?)
        })
        .await?;
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
