//! `/metrics` in Prometheus text format. Counters are recorded anywhere with the `metrics`
//! macros; gauges about the log and the register are set when scraped.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use super::AppState;

/// The process-wide recorder (one per process; tests run many apps in one process).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (e.g. by an embedding program); then
        // our handle still renders whatever was recorded through it: nothing, honestly.
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed");
        }
        handle
    })
}

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(render))
}

async fn render(State(state): State<AppState>) -> impl IntoResponse {
    let handle = handle();
    let s = &state.services;
    metrics::gauge!("avvik_log_head_seq").set(s.store.head().seq as f64);
    metrics::gauge!("avvik_register_seq").set(s.register.seq() as f64);
    metrics::gauge!("avvik_register_ready").set(if s.register.is_ready() { 1.0 } else { 0.0 });
    metrics::gauge!("avvik_store_degraded").set(if s.store.is_degraded() { 1.0 } else { 0.0 });
    metrics::gauge!("avvik_deviations").set(s.register.read().len() as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
}
