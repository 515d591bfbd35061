//! What intake needs to look up, folded from the log: attachments per deviation, the
//! quarantine list, and which Message-IDs avvik sent about which deviation (for threading
//! replies). Built at start-up and followed live, like the register.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::Duration;

use avvik_events::{read_all, EventStore, RecordedEvent, StoreError};
use tokio::sync::watch;
use uuid::Uuid;

use super::parse::normalize_message_id;
use super::record::{
    EmailQuarantineResolved, EmailQuarantined, EmailReceived, ListedAttachment, QuarantineEntry,
    Resolution, EMAIL_QUARANTINED, EMAIL_QUARANTINE_RESOLVED, EMAIL_RECEIVED,
};

#[derive(Debug, Default)]
pub struct IntakeView {
    attachments: HashMap<Uuid, Vec<ListedAttachment>>,
    quarantine: HashMap<Uuid, QuarantineEntry>,
    sent: HashMap<String, Uuid>,
    seq: u64,
}

impl IntakeView {
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Folds one record in; records of other types only move the seq.
    pub fn apply(&mut self, rec: &RecordedEvent) {
        self.seq = rec.seq;
        match rec.event_type.as_str() {
            EMAIL_RECEIVED => match rec.decode::<EmailReceived>() {
                Ok(r) => {
                    let list = self.attachments.entry(r.deviation).or_default();
                    for a in r.attachments {
                        list.push(ListedAttachment {
                            attachment: a,
                            received_at: rec.at,
                            message_id: r.message.message_id.clone(),
                            disposition: r.disposition,
                        });
                    }
                }
                Err(e) => {
                    tracing::error!(seq = rec.seq, error = %e, "EmailReceived does not decode")
                }
            },
            EMAIL_QUARANTINED => match rec.decode::<EmailQuarantined>() {
                Ok(q) => {
                    self.quarantine.insert(
                        rec.stream,
                        QuarantineEntry {
                            id: rec.stream,
                            seq: rec.seq,
                            received_at: rec.at,
                            record: q,
                            resolved: None,
                        },
                    );
                }
                Err(e) => {
                    tracing::error!(seq = rec.seq, error = %e, "EmailQuarantined does not decode")
                }
            },
            EMAIL_QUARANTINE_RESOLVED => {
                if let (Some(entry), Ok(r)) = (
                    self.quarantine.get_mut(&rec.stream),
                    rec.decode::<EmailQuarantineResolved>(),
                ) {
                    entry.resolved = Some(Resolution {
                        by: rec.actor.clone(),
                        at: rec.at,
                        note: r.note,
                    });
                }
            }
            _ => {
                if let Some((id, deviation)) = sent_message(rec) {
                    self.sent.insert(id, deviation);
                }
            }
        }
    }

    /// Attachments that came with e-mail about `deviation`, oldest first.
    pub fn attachments(&self, deviation: Uuid) -> &[ListedAttachment] {
        self.attachments
            .get(&deviation)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Every quarantined message, newest first.
    pub fn quarantine(&self) -> Vec<&QuarantineEntry> {
        let mut v: Vec<&QuarantineEntry> = self.quarantine.values().collect();
        v.sort_by_key(|e| std::cmp::Reverse(e.seq));
        v
    }

    pub fn quarantined(&self, id: Uuid) -> Option<&QuarantineEntry> {
        self.quarantine.get(&id)
    }

    /// Quarantined messages no one has handled yet.
    pub fn open_quarantine(&self) -> usize {
        self.quarantine
            .values()
            .filter(|e| e.resolved.is_none())
            .count()
    }

    /// The deviation an e-mail avvik sent was about, by its normalized Message-ID.
    pub fn sent_about(&self, message_id: &str) -> Option<Uuid> {
        self.sent.get(message_id).copied()
    }
}

/// A record of an e-mail avvik sent about a deviation: its Message-ID and the deviation.
/// The notifications outbox records deliveries as `NotificationSent` with the Message-ID
/// and the deviation's id; any record of that shape counts, whatever stream it is on.
fn sent_message(rec: &RecordedEvent) -> Option<(String, Uuid)> {
    if rec.event_type != "NotificationSent" {
        return None;
    }
    let id = rec
        .data
        .get("message_id")
        .and_then(|v| v.as_str())
        .and_then(normalize_message_id)?;
    let deviation = ["deviation_id", "deviation", "stream"]
        .iter()
        .find_map(|k| rec.data.get(*k).and_then(|v| v.as_str()))
        .and_then(|s| Uuid::parse_str(s).ok())?;
    Some((id, deviation))
}

impl crate::projection::LogFold for IntakeView {
    fn apply(&mut self, rec: &RecordedEvent) {
        IntakeView::apply(self, rec)
    }
    fn seq(&self) -> u64 {
        IntakeView::seq(self)
    }
}

pub struct IntakeProjection {
    view: RwLock<IntakeView>,
    seq_tx: watch::Sender<u64>,
    ready: AtomicBool,
}

impl IntakeProjection {
    /// Starts folding: catch-up off the async threads, then live until `shutdown`.
    pub fn start(store: Arc<dyn EventStore>, shutdown: watch::Receiver<bool>) -> Arc<Self> {
        let (seq_tx, _) = watch::channel(0);
        let this = Arc::new(Self {
            view: RwLock::new(IntakeView::default()),
            seq_tx,
            ready: AtomicBool::new(false),
        });
        let me = this.clone();
        tokio::spawn(async move {
            let s2 = store.clone();
            let caught_up = tokio::task::spawn_blocking(move || {
                let head = s2.head().seq;
                let mut view = IntakeView::default();
                for rec in read_all(s2.as_ref(), 1) {
                    let rec = match rec {
                        Ok(rec) => rec,
                        Err(StoreError::Corrupt { seq, reason }) => {
                            tracing::error!(seq, %reason, "intake view: a stored record cannot be read; skipped");
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                    if rec.seq > head {
                        break;
                    }
                    view.apply(&rec);
                }
                Ok::<_, StoreError>(view)
            })
            .await;
            let view = match caught_up {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "intake catch-up failed");
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, "intake catch-up panicked");
                    return;
                }
            };
            let seq = view.seq();
            *me.write() = view;
            me.publish(seq);
            me.ready.store(true, Ordering::Release);
            crate::projection::follow_log(
                store,
                seq + 1,
                shutdown,
                &me.view,
                "intake view",
                |seq| me.publish(seq),
            )
            .await;
        });
        this
    }

    fn publish(&self, seq: u64) {
        metrics::gauge!("avvik_intake_quarantine_open").set(self.read().open_quarantine() as f64);
        self.seq_tx.send_replace(seq);
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, IntakeView> {
        self.view.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn read(&self) -> RwLockReadGuard<'_, IntakeView> {
        self.view.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Waits until `seq` is folded in (bounded by `timeout`).
    pub async fn wait_for(&self, seq: u64, timeout: Duration) -> bool {
        let mut rx = self.seq_tx.subscribe();
        let done = async {
            let _ = rx.wait_for(|s| *s >= seq).await;
        };
        tokio::time::timeout(timeout, done).await.is_ok() && self.is_ready()
    }
}
