//! Single-runner duties between the processes sharing one database: a duty is held by
//! the process whose connection holds the session advisory lock named after it. The lock
//! goes with the connection: a process that dies (or is SIGKILLed) loses its connection
//! at once and another process takes the lock at its next try, within a second or two.
//!
//! The holder checks its connection every [`CHECK`]; a check that fails or does not
//! answer within [`CHECK_TIMEOUT`] gives the duty up at once (the server may still hold
//! the lock until it notices the connection is gone; nobody else runs the duty meanwhile,
//! which is the safe side). The session asks the server to probe the connection with TCP
//! keepalives every few seconds, so a holder whose machine vanished without closing the
//! connection is let go within about ten seconds.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio_postgres::types::Type;
use tokio_postgres::Client;

use super::Shared;
use crate::store::Result;

/// How often a holder checks its connection, and a waiting process tries the lock.
pub(crate) const CHECK: Duration = Duration::from_secs(1);
/// How long a check may take before the holder gives the duty up.
pub(crate) const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// How long the lock may be out of reach before it is said at warn, and how often then.
const UNREACHABLE_WARN: Duration = Duration::from_secs(10);
const UNREACHABLE_SAY: Duration = Duration::from_secs(60);

/// The advisory lock key of a duty: the first 8 bytes of SHA-256("avvik-duty\0" + name).
pub(crate) fn lock_key(name: &str) -> i64 {
    let mut h = Sha256::new();
    h.update(b"avvik-duty\0");
    h.update(name.as_bytes());
    let d = h.finalize();
    i64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

/// Holds (or waits for) the duty `name` until every receiver of `held` is gone; `held`
/// says whether this process holds it now. A waiting process keeps its connection and
/// tries the lock on it every [`CHECK`].
pub(crate) async fn hold(shared: Arc<Shared>, name: String, held: watch::Sender<bool>) {
    let key = lock_key(&name);
    let mut conn: Option<Client> = None;
    // Since when the lock could not even be tried, and when that was last said.
    let mut failing: Option<(std::time::Instant, Option<std::time::Instant>)> = None;
    while !held.is_closed() {
        if conn.as_ref().is_none_or(|c| c.is_closed()) {
            conn = match connect(&shared).await {
                Ok(c) => {
                    failing = None;
                    Some(c)
                }
                Err(e) => {
                    // Never silent: nobody here runs the duty, and this node cannot tell
                    // whether another does.
                    let now = std::time::Instant::now();
                    let (since, said) = failing.get_or_insert((now, None));
                    if now - *since >= UNREACHABLE_WARN
                        && said.is_none_or(|t| now - t >= UNREACHABLE_SAY)
                    {
                        *said = Some(now);
                        tracing::warn!(duty = %name, error = %e, "cannot reach the database to take the duty; this node does not run it");
                    } else {
                        tracing::debug!(duty = %name, error = %e, "cannot try the duty's lock yet");
                    }
                    None
                }
            };
        }
        if let Some(client) = conn.take() {
            let tried = tokio::time::timeout(
                CHECK_TIMEOUT,
                client.query_typed_one("SELECT pg_try_advisory_lock($1)", &[(&key, Type::INT8)]),
            )
            .await;
            match tried {
                Ok(Ok(row)) if row.get::<_, bool>(0) => {
                    run_while_held(&client, &name, &held).await;
                    // Dropping the connection releases the lock, if the server still
                    // counts it as held.
                    drop(client);
                }
                Ok(Ok(_)) => conn = Some(client),
                _ => drop(client),
            }
        }
        tokio::time::sleep(CHECK).await;
    }
}

/// Marks the duty held and checks the lock's connection until it fails (or nobody
/// listens any more); then marks it not held.
async fn run_while_held(client: &Client, name: &str, held: &watch::Sender<bool>) {
    held.send_replace(true);
    tracing::warn!(duty = %name, "this process now runs the duty");
    loop {
        tokio::time::sleep(CHECK).await;
        if held.is_closed() {
            return;
        }
        let alive = tokio::time::timeout(CHECK_TIMEOUT, client.simple_query("")).await;
        if !matches!(alive, Ok(Ok(_))) {
            break;
        }
    }
    held.send_replace(false);
    tracing::warn!(
        duty = %name,
        "lost the database connection that holds the duty; stopped running it until the lock is held again"
    );
}

/// A connection for a duty's lock.
async fn connect(shared: &Arc<Shared>) -> Result<Client> {
    let attempt = async {
        let client = shared.target.connect(None).await?;
        // Ask the server to notice a vanished holder within seconds, not hours.
        client
            .batch_execute(
                "SET tcp_keepalives_idle = 2; SET tcp_keepalives_interval = 1; \
                 SET tcp_keepalives_count = 3; SET application_name = 'avvik duty'",
            )
            .await
            .map_err(|e| shared.health.failed("duty lock", &e))?;
        Ok(client)
    };
    shared
        .health
        .within(
            CHECK_TIMEOUT.max(shared.timeout.min(Duration::from_secs(10))),
            "duty lock",
            attempt,
        )
        .await
}

#[cfg(test)]
mod tests {
    #[test]
    fn duties_have_distinct_fixed_keys() {
        assert_eq!(super::lock_key("outbox"), super::lock_key("outbox"));
        assert_ne!(super::lock_key("outbox"), super::lock_key("scheduler"));
    }
}
