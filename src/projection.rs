//! Keeps the register current: folds the whole log at start-up (off the async threads),
//! then follows new commits live. Readers wait for a seq to get read-your-writes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::Duration;

use avvik_events::{EventStore, RecordedEvent, StoreError, Subscription};
use tokio::sync::watch;

use crate::register::Register;

/// A state folded from the log record by record: the register, the outbox, the intake view.
pub trait LogFold {
    fn apply(&mut self, rec: &RecordedEvent);
    /// The last seq folded in.
    fn seq(&self) -> u64;
    /// A record that cannot be read at all, passed over. The default logs it.
    fn skip_unreadable(&mut self, seq: u64, reason: &str) {
        tracing::error!(
            seq,
            reason,
            state = std::any::type_name::<Self>(),
            "a stored record cannot be read; skipped (avvik verify names it)"
        );
    }
}

/// Follows the log from `from` until `shutdown`: new records are applied under the write
/// lock (what is already there in one go, up to 4096), then `publish` gets the seq reached.
/// A record that cannot be read goes to `skip_unreadable` once; other read errors are
/// logged and retried every 500 ms.
pub async fn follow_log<T: LogFold>(
    store: Arc<dyn EventStore>,
    from: u64,
    mut shutdown: watch::Receiver<bool>,
    state: &RwLock<T>,
    what: &'static str,
    publish: impl Fn(u64),
) {
    let write = || state.write().unwrap_or_else(|p| p.into_inner());
    let mut sub = Subscription::new(store, from);
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            next = sub.next() => {
                let seq = match next {
                    Ok(first) => {
                        let mut s = write();
                        s.apply(&first);
                        loop {
                            match sub.try_next() {
                                Ok(Some(rec)) => {
                                    s.apply(&rec);
                                    if s.seq().is_multiple_of(4096) {
                                        break;
                                    }
                                }
                                Err(StoreError::Corrupt { seq, reason }) => {
                                    s.skip_unreadable(seq, &reason)
                                }
                                // Nothing more now, or an error `next` will meet again.
                                Ok(None) | Err(_) => break,
                            }
                        }
                        s.seq()
                    }
                    Err(StoreError::Closed) => break,
                    Err(StoreError::Corrupt { seq, reason }) => {
                        let mut s = write();
                        s.skip_unreadable(seq, &reason);
                        s.seq()
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "{what} could not read the log; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                };
                publish(seq);
            }
        }
    }
}

pub struct RegisterProjection {
    register: RwLock<Register>,
    seq_tx: watch::Sender<u64>,
    ready: AtomicBool,
}

impl RegisterProjection {
    fn new() -> Self {
        let (seq_tx, _) = watch::channel(0);
        Self {
            register: RwLock::new(Register::new()),
            seq_tx,
            ready: AtomicBool::new(false),
        }
    }

    /// Starts the projection: catch-up runs in the background; `is_ready` turns true when
    /// the register has caught up with the head the store had at start.
    pub fn start(store: Arc<dyn EventStore>, shutdown: watch::Receiver<bool>) -> Arc<Self> {
        let this = Arc::new(Self::new());
        let me = this.clone();
        tokio::spawn(async move {
            let s2 = store.clone();
            let caught_up = tokio::task::spawn_blocking(move || {
                let head = s2.head().seq;
                Register::fold(s2.as_ref(), head)
            })
            .await;
            let reg = match caught_up {
                Ok(Ok(reg)) => reg,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "register catch-up failed; the service stays not ready");
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, "register catch-up panicked");
                    return;
                }
            };
            let from = reg.seq() + 1;
            let seq = reg.seq();
            *me.write() = reg;
            // Ready first, then the (always notifying) seq update, so a waiter that sees
            // the seq also sees readiness.
            me.ready.store(true, Ordering::Release);
            me.seq_tx.send_replace(seq);
            tracing::info!(seq, "register caught up");
            follow_log(store, from, shutdown, &me.register, "register", |seq| {
                me.seq_tx.send_replace(seq);
            })
            .await;
        });
        this
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Register> {
        self.register.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn read(&self) -> RwLockReadGuard<'_, Register> {
        self.register.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn seq(&self) -> u64 {
        *self.seq_tx.borrow()
    }

    /// Waits until the register has folded in `seq` (bounded by `timeout`).
    pub async fn wait_for(&self, seq: u64, timeout: Duration) -> bool {
        let mut rx = self.seq_tx.subscribe();
        let done = async {
            let _ = rx.wait_for(|s| *s >= seq && self.is_ready()).await;
        };
        tokio::time::timeout(timeout, done).await.is_ok() && self.is_ready()
    }
}
