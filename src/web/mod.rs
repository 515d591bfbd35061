//! HTTP: routers per area, merged over one `AppState`.

pub mod api;
pub mod error;
pub mod health;
pub mod input;
pub mod openapi;
pub mod report_input;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::service::Services;

/// Everything a request handler may use.
#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    pub config: Arc<Config>,
    pub secret: crate::secret::Secret,
    /// Encrypts and signs session cookies (derived from `secret`).
    pub session_key: axum_extra::extract::cookie::Key,
}

pub fn router(state: AppState) -> Router {
    let limit = state.config.http.body_limit;
    let timeout = Duration::from_secs(state.config.http.request_timeout_s.max(1));
    Router::new()
        .merge(health::router())
        .merge(api::router())
        .layer(DefaultBodyLimit::max(limit))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
