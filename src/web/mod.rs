//! HTTP: routers per area, merged over one `AppState`.

pub mod access_log;
pub mod ack;
pub mod admin;
pub mod api;
pub mod api_guard;
pub mod audit_api;
pub mod audit_ui;
pub mod body;
pub mod calendar;
pub mod commands;
pub mod consistency;
pub mod csrf;
pub mod error;
pub mod exports;
pub mod extract;
pub mod filing_commands;
pub mod filings_api;
pub mod health;
pub mod intake;
pub mod login_throttles;
pub mod metrics;
pub mod openapi;
pub mod organisation;
pub mod own_account;
pub mod pages;
pub mod privacy;
pub mod public;
pub mod recipients;
pub mod report_input;
pub mod reports;
pub mod routes;
pub mod security;
pub mod setup;
pub mod staff;
pub mod upload;

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use tower_http::timeout::TimeoutLayer;

pub use crate::state::AppState;
pub use routes::{Routes, ServedRoute};

async fn overloaded(_: tower::BoxError) -> axum::response::Response {
    ::metrics::counter!("avvik_http_shed_total").increment(1);
    axum::response::IntoResponse::into_response(error::ApiError::Unavailable(
        "overloaded: too many requests in flight".into(),
    ))
}

/// Every route of every area, and the fallback: what `router` serves.
fn served() -> Routes {
    Routes::new()
        .merge(health::router())
        .merge(metrics::router())
        .merge(api::router())
        .merge(public::router())
        .merge(pages::router())
        .merge(staff::router())
        .merge(admin::router())
        .merge(login_throttles::router())
        .merge(own_account::router())
        .merge(calendar::router())
        .merge(recipients::router())
        .merge(organisation::router())
        .merge(setup::router())
        .merge(audit_ui::router())
        .merge(access_log::pages())
        .merge(reports::pages())
        .merge(ack::router())
        .merge(privacy::pages())
        .merge(exports::pages())
        .unmatched(pages::not_found)
}

/// Every (method, path template) the service serves, sorted; the fallback as
/// `routes::FALLBACK`.
pub fn routes() -> Vec<ServedRoute> {
    served().served()
}

pub fn router(state: AppState) -> Router {
    let limit = state.config.http.body_limit;
    let timeout = Duration::from_secs(state.config.http.request_timeout_s.max(1));
    let https = state.config.http.base_url.starts_with("https://");
    let per_minute = state.config.http.rate_limit_per_minute;
    let routes = served()
        .into_router()
        .layer(DefaultBodyLimit::max(limit))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            timeout,
        ));
    // Innermost first: the rate limit, then headers on every answer (429s included), then
    // request logging by route template (never the raw URI: status tokens are in paths).
    // `Config::validate` has checked the list, so it parses.
    let proxies = security::IpNets::parse(&state.config.http.trusted_proxies).unwrap_or_default();
    let routes = routes.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        recipients::banner,
    ));
    // Nodes sharing a store: this node catches up with every node's commits first.
    let routes = routes.layer(axum::middleware::from_fn_with_state(
        state.services.clone(),
        consistency::catch_up,
    ));
    let routes = security::with_rate_limit(routes, per_minute, proxies);
    // Overload: past `max_in_flight` requests at once, answer 503 at once (load shedding)
    // rather than queue without bound.
    let shed = tower::ServiceBuilder::new()
        .layer(axum::error_handling::HandleErrorLayer::new(overloaded))
        .layer(tower::load_shed::LoadShedLayer::new())
        // Global: axum clones layers per route, so the semaphore must be shared.
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            state.config.http.max_in_flight,
        ));
    let routes = routes.layer(shed);
    let routes = security::with_security_headers(routes, https);
    security::with_request_tracing(routes).with_state(state)
}
