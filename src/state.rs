//! What a request handler may use: the application's parts, below the routers, so that no
//! feature needs `web` to reach them. Handlers that need one part take it as a sub-state
//! (`State<Services>`, `State<Arc<Config>>` …) through `FromRef`.

use std::sync::Arc;

use axum::extract::FromRef;

use crate::access_log::AccessLog;
use crate::auth::LoginGuard;
use crate::config::Config;
use crate::intake::Intake;
use crate::notify::Notify;
use crate::secret::Secret;
use crate::service::Services;
use crate::webhooks::Webhooks;

/// Everything a request handler may use.
#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    pub config: Arc<Config>,
    pub secret: Secret,
    /// Encrypts and signs session cookies (derived from `secret`).
    pub session_key: axum_extra::extract::cookie::Key,
    /// Failed staff logins per account.
    pub login_guard: Arc<LoginGuard>,
    /// E-mail notices: acknowledgement links, and what was sent about each deviation.
    pub notify: Notify,
    /// Webhooks: signed POSTs of chosen events, and how each webhook stands.
    pub webhooks: Webhooks,
    /// E-mail intake: the pipeline (shared with the IMAP collector), attachments, quarantine.
    pub intake: Arc<Intake>,
    /// The läslogg: who saw which deviation's content (its own chain in `<data_dir>/access`).
    pub access_log: AccessLog,
    /// Passkey (WebAuthn) ceremonies in progress.
    pub passkeys: Arc<crate::auth::passkey::Ceremonies>,
    /// The identity providers staff may sign in with (`[[auth.oidc]]`).
    pub oidc: Arc<crate::auth::oidc::Providers>,
    /// The single-runner duties (outbox, webhooks, IMAP, scheduler) and which this node
    /// holds.
    pub duties: crate::duty::Duties,
}

impl FromRef<AppState> for Services {
    fn from_ref(s: &AppState) -> Self {
        s.services.clone()
    }
}

impl FromRef<AppState> for Arc<Config> {
    fn from_ref(s: &AppState) -> Self {
        s.config.clone()
    }
}

impl FromRef<AppState> for Notify {
    fn from_ref(s: &AppState) -> Self {
        s.notify.clone()
    }
}

impl FromRef<AppState> for Webhooks {
    fn from_ref(s: &AppState) -> Self {
        s.webhooks.clone()
    }
}

impl FromRef<AppState> for Arc<Intake> {
    fn from_ref(s: &AppState) -> Self {
        s.intake.clone()
    }
}

impl FromRef<AppState> for AccessLog {
    fn from_ref(s: &AppState) -> Self {
        s.access_log.clone()
    }
}

/// The session cookie key, for `PrivateCookieJar`.
impl FromRef<AppState> for axum_extra::extract::cookie::Key {
    fn from_ref(s: &AppState) -> Self {
        s.session_key.clone()
    }
}
