//! What intake needs to look up, folded from the log: attachments per deviation, the
//! quarantine list, and which Message-IDs avvik sent about which deviation (for threading
//! replies). Built at start-up and followed live, like the register.

use std::collections::HashMap;

use avvik_events::RecordedEvent;
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
    fn apply_deviation(&mut self, d: &crate::projection::DecodedDeviation) {
        // Deviation events carry nothing intake looks up.
        self.seq = d.meta.seq;
    }
    fn seq(&self) -> u64 {
        IntakeView::seq(self)
    }
    fn published(&self) {
        metrics::gauge!("avvik_intake_quarantine_open").set(self.open_quarantine() as f64);
    }
}

/// The intake view kept current, like the register.
pub type IntakeProjection = crate::projection::Projection<IntakeView>;
