//! Read-your-writes across nodes: with several nodes on one store (PostgreSQL), a report
//! made on one node and looked at, classified or followed on another a moment later must
//! be there. Before a request is handled, this node reads the store's head as any node has
//! moved it and waits until its register has folded that far. A node alone on its store
//! (sled) skips this; so do health checks and static files, and a store that cannot be
//! reached (the request then answers from what the node has). Bounded by [`CATCH_UP`].

use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::service::Services;

/// The longest a request waits for its node to catch up.
pub const CATCH_UP: Duration = Duration::from_secs(1);

/// Paths that need no catching up.
fn exempt(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics") || path.starts_with("/static/")
}

pub async fn catch_up(State(services): State<Services>, req: Request, next: Next) -> Response {
    if !exempt(req.uri().path()) && services.register.is_ready() && !services.store.is_degraded() {
        if let Ok(Ok(Some(head))) = tokio::time::timeout(CATCH_UP, services.store.sync_head()).await
        {
            if head.seq > services.register.seq() {
                services.register.wait_for(head.seq, CATCH_UP).await;
            }
        }
    }
    next.run(req).await
}
