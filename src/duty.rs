//! Single-runner duties: the work only one node of an installation may do at a time —
//! delivering the outbox's e-mails, delivering webhooks, collecting mail over IMAP,
//! running the schedule, and on a shared store finishing the gallrings a dead node began. The store says which process holds each
//! ([`EventStore::duty`]): on sled the one process that has the data directory, from the
//! start; on PostgreSQL one process at a time through an advisory lock, moved to another
//! node within seconds when the holder dies.
//!
//! [`Duties::run`] starts a duty's task while the duty is held and stops it, through the
//! task's own shutdown signal, when the duty is lost; it starts again when the duty comes
//! back. Every node takes reports and commands either way; only these loops wait.
//! Taking or losing a duty is logged at warn (by the store) and shown in `/readyz` and in
//! the gauge `avvik_duty_held{duty}`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use avvik_events::EventStore;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Delivering the e-mail outbox.
pub const OUTBOX: &str = "outbox";
/// Delivering webhooks.
pub const WEBHOOKS: &str = "webhooks";
/// Collecting mail from the IMAP mailbox.
pub const IMAP: &str = "imap-collector";
/// Running the scheduled jobs (the annual report, reminders, deadlines).
pub const SCHEDULER: &str = "scheduler";
/// On a shared store: finishing the gallrings a node that died began (its intent is in the
/// database), every few minutes.
pub const GALLRING: &str = "gallring";

/// Each duty asked for, with whether this node holds it.
type Held = Arc<Mutex<Vec<(&'static str, watch::Receiver<bool>)>>>;

/// The duties this node runs or waits for.
#[derive(Clone)]
pub struct Duties {
    store: Arc<dyn EventStore>,
    shutdown: watch::Receiver<bool>,
    held: Held,
}

impl Duties {
    /// Duties over `store`, all stopped when `shutdown` turns true.
    pub fn new(store: Arc<dyn EventStore>, shutdown: watch::Receiver<bool>) -> Self {
        Self {
            store,
            shutdown,
            held: Default::default(),
        }
    }

    /// Each duty asked for, and whether this node holds it now.
    pub fn held(&self) -> Vec<(&'static str, bool)> {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(n, h)| (*n, *h.borrow()))
            .collect()
    }

    /// Runs `start` (given a stop signal) whenever this node holds the duty `name`, until
    /// shutdown. The returned task ends after shutdown, once the duty's task has stopped.
    pub fn run(
        &self,
        name: &'static str,
        mut start: impl FnMut(watch::Receiver<bool>) -> JoinHandle<()> + Send + 'static,
    ) -> JoinHandle<()> {
        let mut held = self.store.duty(name);
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((name, held.clone()));
        let mut shutdown = self.shutdown.clone();
        let gauge = metrics::gauge!("avvik_duty_held", "duty" => name);
        tokio::spawn(async move {
            gauge.set(0.0);
            loop {
                // Until the duty is ours (or the service stops).
                let ours = tokio::select! {
                    r = held.wait_for(|h| *h) => r.is_ok(),
                    _ = shutdown.wait_for(|s| *s) => false,
                };
                if !ours || *shutdown.borrow() {
                    return;
                }
                gauge.set(1.0);
                let (stop, stopped) = watch::channel(false);
                let mut task = start(stopped);
                let (ended, by_shutdown) = tokio::select! {
                    r = held.wait_for(|h| !*h) => (false, r.is_err()),
                    _ = shutdown.wait_for(|s| *s) => (false, true),
                    _ = &mut task => (true, false),
                };
                let _ = stop.send(true);
                if !ended {
                    let _ = task.await;
                }
                gauge.set(0.0);
                if by_shutdown || *shutdown.borrow() {
                    return;
                }
                if ended {
                    // A duty's loop runs until it is told to stop; one that ended by
                    // itself (a panic) starts again, never silently.
                    tracing::error!(
                        duty = name,
                        "the duty's task ended by itself; starting it again"
                    );
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_duty_held_from_the_start_runs_until_shutdown_and_then_stops() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn EventStore> =
            Arc::new(avvik_events::SledEventStore::open(dir.path(), Default::default()).unwrap());
        let (tx, rx) = watch::channel(false);
        let duties = Duties::new(store, rx);
        let started = Arc::new(AtomicUsize::new(0));
        let stopped = Arc::new(AtomicUsize::new(0));
        let (s1, s2) = (started.clone(), stopped.clone());
        let runner = duties.run(OUTBOX, move |mut stop| {
            s1.fetch_add(1, Ordering::SeqCst);
            let s2 = s2.clone();
            tokio::spawn(async move {
                let _ = stop.wait_for(|s| *s).await;
                s2.fetch_add(1, Ordering::SeqCst);
            })
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(started.load(Ordering::SeqCst), 1);
        assert_eq!(duties.held(), vec![(OUTBOX, true)]);
        tx.send(true).unwrap();
        runner.await.unwrap();
        assert_eq!(
            stopped.load(Ordering::SeqCst),
            1,
            "the task was told to stop"
        );
    }
}
