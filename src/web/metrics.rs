//! `/metrics` in Prometheus text format. Counters are recorded anywhere with the `metrics`
//! macros; gauges about the log and the register are set when scraped.

use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;

use super::Routes;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
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

pub fn router() -> Routes {
    Routes::new().get("/metrics", render)
}

/// Who asks for the metrics: the TCP peer, or behind a trusted proxy the forwarded client.
/// A forwarded request from a peer that is not a trusted proxy names nobody we can check
/// (a reverse proxy on loopback must not open `/metrics` to the world), so it is refused.
fn scraper(state: &AppState, req: &Request) -> Option<IpAddr> {
    let ConnectInfo(peer) = req.extensions().get::<ConnectInfo<SocketAddr>>()?;
    // Both lists were validated at start-up.
    let proxies =
        super::security::IpNets::parse(&state.config.http.trusted_proxies).unwrap_or_default();
    let headers = req.headers();
    let forwarded = headers.contains_key("x-forwarded-for") || headers.contains_key("forwarded");
    if proxies.contains(peer.ip()) {
        Some(proxies.client_ip(peer.ip(), headers))
    } else if forwarded {
        None
    } else {
        Some(peer.ip())
    }
}

async fn render(State(state): State<AppState>, req: Request) -> Response {
    let allowed =
        super::security::IpNets::parse(&state.config.http.metrics_allow).unwrap_or_default();
    if !scraper(&state, &req).is_some_and(|ip| allowed.contains(ip)) {
        return (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "metrics are served only to the addresses in http.metrics_allow\n",
        )
            .into_response();
    }
    let handle = handle();
    let s = &state.services;
    metrics::gauge!("avvik_log_head_seq").set(s.store.head().seq as f64);
    metrics::gauge!("avvik_register_seq").set(s.register.seq() as f64);
    metrics::gauge!("avvik_register_ready").set(if s.register.is_ready() { 1.0 } else { 0.0 });
    metrics::gauge!("avvik_store_degraded").set(if s.store.is_degraded() { 1.0 } else { 0.0 });
    metrics::gauge!("avvik_access_log_degraded").set(if state.access_log.is_degraded() {
        1.0
    } else {
        0.0
    });
    {
        let lists = state.notify.recipient_lists();
        let missing = lists.missing();
        for g in crate::domain::recipients::RecipientGroup::REQUIRED {
            let empty = if missing.contains(&g) { 1.0 } else { 0.0 };
            metrics::gauge!("avvik_recipient_list_empty", "list" => g.key()).set(empty);
        }
        metrics::gauge!("avvik_escalation_ready").set(if missing.is_empty() { 1.0 } else { 0.0 });
        metrics::gauge!("avvik_notifications_owed").set(state.notify.owed_count() as f64);
    }
    {
        let webhooks = state.webhooks.health();
        for w in &webhooks {
            let name = w.name.clone();
            metrics::gauge!("avvik_webhook_pending", "webhook" => name.clone())
                .set(w.pending as f64);
            metrics::gauge!("avvik_webhook_failing", "webhook" => name.clone())
                .set(w.failing as f64);
            metrics::gauge!("avvik_webhook_healthy", "webhook" => name).set(if w.healthy {
                1.0
            } else {
                0.0
            });
        }
        let degraded = webhooks.iter().any(|w| !w.healthy);
        metrics::gauge!("avvik_webhooks_degraded").set(if degraded { 1.0 } else { 0.0 });
    }
    {
        let reg = s.register.read();
        metrics::gauge!("avvik_deviations").set(reg.len() as f64);
        metrics::gauge!("avvik_log_unreadable_records").set(reg.unreadable.len() as f64);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}
