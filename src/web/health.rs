//! Liveness and readiness.

use super::Routes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::json;

use super::AppState;

pub fn router() -> Routes {
    Routes::new()
        .get("/healthz", healthz)
        .get("/readyz", readyz)
}

async fn healthz() -> &'static str {
    "ok"
}

/// 200 once the register has caught up with the log and the store can write.
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let s = &state.services;
    let head = s.store.head();
    let ready = s.register.is_ready();
    let degraded = s.store.is_degraded();
    // Never silent: missing recipients do not make the service unready (reports are still
    // taken), but readiness says escalation cannot reach anyone.
    let missing: Vec<&str> = state
        .notify
        .recipient_lists()
        .missing()
        .into_iter()
        .map(|g| g.key())
        .collect();
    // Never silent, and like missing recipients not a reason to stop taking reports: a
    // webhook whose deliveries fail, or whose latest one was abandoned, says so here.
    let webhooks = state.webhooks.health();
    let webhooks_degraded = webhooks.iter().any(|w| !w.healthy);
    let status = if ready && !degraded {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "ready": ready && !degraded,
            "register_caught_up": ready,
            "store_degraded": degraded,
            "head_seq": head.seq,
            "register_seq": s.register.seq(),
            // Records the register could not read and went on without (`avvik verify`
            // names them); anything but 0 wants an auditor's attention.
            "unreadable_records": s.register.read().unreadable.len(),
            "escalation_ready": missing.is_empty(),
            // The access log is its own store. While it cannot write, deviations' content
            // is withheld from staff (503), but reports are still taken, so this does not
            // make the service unready; it says so instead.
            "access_log_degraded": state.access_log.is_degraded(),
            "access_log_head_seq": state.access_log.head().seq,
            "missing_recipients": missing,
            "webhooks_degraded": webhooks_degraded,
            "webhooks": webhooks,
            // The single-runner duties and whether this node runs each (true) or another
            // node sharing the store does (false).
            "duties": state.duties.held().into_iter().collect::<std::collections::BTreeMap<_, _>>(),
        })),
    )
}
