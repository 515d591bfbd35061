//! Following the head when another process commits: `LISTEN` on the channel every commit
//! notifies, with a read of the head row every poll interval as well, for a notification
//! lost with a dropped connection.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_postgres::Client;

use super::schema;
use super::Shared;

/// A connection listening on the head channel, and what it hears.
pub(crate) type Listener = (Client, mpsc::UnboundedReceiver<String>);

/// Runs on the store's runtime until it stops. `listener` was opened before the store read
/// its head, so no commit falls between the two.
pub(crate) async fn follow_head(
    shared: Arc<Shared>,
    interval: Duration,
    listener: Option<Listener>,
) {
    let mut listener = listener;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let notified = async {
            match &mut listener {
                Some((_, rx)) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            payload = notified => match payload {
                Some(payload) => {
                    // Our own commits are published already; only a newer head is read.
                    let newer = payload.parse::<u64>().map_or(true, |seq| seq > shared.published_seq());
                    if newer {
                        refresh(&shared).await;
                    }
                }
                None => listener = None,
            },
            _ = tick.tick() => {
                if listener.as_ref().is_none_or(|(c, _)| c.is_closed()) {
                    listener = listen(&shared).await;
                }
                refresh(&shared).await;
            }
        }
    }
}

/// A connection listening on the head channel, or `None` while the database cannot be
/// reached (the poll goes on, and the next tick tries again).
pub(crate) async fn listen(shared: &Shared) -> Option<Listener> {
    let (tx, rx) = mpsc::unbounded_channel();
    let connect = async {
        let client = shared.target.connect(Some(tx)).await?;
        client
            .batch_execute(&format!("LISTEN {}", shared.target.channel))
            .await
            .map_err(|e| shared.health.failed("LISTEN", &e))?;
        Ok(client)
    };
    match shared
        .health
        .within(shared.timeout, "LISTEN", connect)
        .await
    {
        Ok(client) => Some((client, rx)),
        Err(e) => {
            tracing::debug!(error = %e, "event store cannot listen for other writers' commits yet");
            None
        }
    }
}

/// Reads the head row and publishes it if it moved; marks the store degraded while the
/// database cannot be reached, and healthy again once it answers.
async fn refresh(shared: &Arc<Shared>) {
    let read = async {
        let reader = shared.reader().await?;
        let tip = schema::read_head(&reader, false)
            .await
            .map_err(|e| e.into_store(&shared.health))?;
        Ok(tip)
    };
    match shared.health.within(shared.timeout, "head", read).await {
        Ok(tip) => {
            shared.health.reached();
            shared.publish(tip);
        }
        Err(e) => tracing::debug!(error = %e, "event store could not read the head"),
    }
}
