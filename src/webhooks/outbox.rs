//! The webhook outbox: a fold of the log into the deliveries the configured webhooks call
//! for and how far each got. A delivery no `WebhookDelivered` / `WebhookAbandoned` settled
//! is pending; nothing else is stored. Rebuilt from the log at start-up (in the same pass
//! as the register and the e-mail outbox), then follows it live.

use std::collections::HashMap;
use std::sync::Arc;

use avvik_events::RecordedEvent;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::events::{
    delivery_id, WebhookAbandoned, WebhookDelivered, WebhookFailed, WEBHOOK_ABANDONED,
    WEBHOOK_DELIVERED, WEBHOOK_FAILED,
};
use crate::config::WebhookConfig;
use crate::domain::{DeviationEvent, Reference};
use crate::projection::{DecodedDeviation, LogFold};

/// What the fold needs to know of one configured webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub name: String,
    /// The event types it takes (validated: deviation event types).
    pub events: Vec<&'static str>,
}

impl Subscription {
    pub fn from_config(webhooks: &[WebhookConfig]) -> Vec<Subscription> {
        webhooks
            .iter()
            .map(|w| Subscription {
                name: w.name.clone(),
                events: DeviationEvent::TYPES
                    .iter()
                    .copied()
                    .filter(|t| w.events.iter().any(|e| e == t))
                    .collect(),
            })
            .collect()
    }
}

/// One delivery an event called for.
#[derive(Debug, Clone, PartialEq)]
pub struct Intent {
    pub delivery_id: Uuid,
    /// Index into the subscriptions (and `[[webhooks]]`).
    pub hook: usize,
    pub trigger_event_id: Uuid,
    pub trigger_seq: u64,
    pub event_type: &'static str,
    pub deviation_id: Uuid,
    pub reference: Option<Reference>,
    /// When the event was stored.
    pub due_at: DateTime<Utc>,
}

/// How far a pending delivery got.
#[derive(Debug, Clone, Default, PartialEq)]
struct Progress {
    attempts: u32,
    last_error: Option<String>,
    next_retry_at: Option<DateTime<Utc>>,
}

/// A delivery due for an attempt now.
#[derive(Debug, Clone, PartialEq)]
pub struct DueDelivery {
    pub intent: Intent,
    /// Attempts made so far.
    pub attempts: u32,
}

/// What the log says about one webhook over all time.
#[derive(Debug, Clone, Default, PartialEq)]
struct Totals {
    delivered: u64,
    abandoned: u64,
    /// The latest settled delivery: when, and whether it was abandoned.
    last_settled: Option<(DateTime<Utc>, bool)>,
    last_abandoned_at: Option<DateTime<Utc>>,
}

/// Where one webhook stands, for `/readyz` and `/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookHealth {
    pub name: String,
    /// Deliveries not settled yet.
    pub pending: usize,
    /// Pending deliveries whose last attempt failed.
    pub failing: usize,
    pub delivered_total: u64,
    pub abandoned_total: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_abandoned_at: Option<DateTime<Utc>>,
    /// No delivery is failing, and the latest settled one was delivered (an abandoned one
    /// keeps it false until a later delivery to the same webhook goes through).
    pub healthy: bool,
}

/// The fold.
#[derive(Debug)]
pub struct WebhookOutbox {
    hooks: Arc<Vec<Subscription>>,
    seq: u64,
    /// The reference of every deviation, for the bodies.
    references: HashMap<Uuid, Reference>,
    pending: HashMap<Uuid, Intent>,
    progress: HashMap<Uuid, Progress>,
    totals: Vec<Totals>,
    /// Stored delivery events that did not decode (never expected; counted so it is
    /// visible rather than silent).
    pub undecodable: u64,
}

impl WebhookOutbox {
    pub fn new(hooks: Arc<Vec<Subscription>>) -> Self {
        let totals = vec![Totals::default(); hooks.len()];
        Self {
            hooks,
            seq: 0,
            references: HashMap::new(),
            pending: HashMap::new(),
            progress: HashMap::new(),
            totals,
            undecodable: 0,
        }
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn hooks(&self) -> &[Subscription] {
        &self.hooks
    }

    /// Folds one record in (at-least-once safe: a seq already folded is a no-op).
    pub fn apply(&mut self, rec: &RecordedEvent) {
        if rec.seq <= self.seq {
            return;
        }
        self.seq = rec.seq;
        // No webhook configured: nothing to keep (not even the references).
        if self.hooks.is_empty() {
            return;
        }
        match rec.event_type.as_str() {
            WEBHOOK_DELIVERED | WEBHOOK_FAILED | WEBHOOK_ABANDONED => self.apply_delivery(rec),
            ty => {
                let Some(ty) = DeviationEvent::TYPES.iter().copied().find(|t| *t == ty) else {
                    return;
                };
                if ty == "DeviationReported" {
                    let reference = rec
                        .data
                        .get("reference")
                        .and_then(|v| v.as_str())
                        .and_then(Reference::parse);
                    if let Some(r) = reference {
                        self.references.insert(rec.stream, r);
                    }
                }
                self.called_for(ty, rec.id, rec.seq, rec.stream, rec.at);
            }
        }
    }

    /// A deviation event decoded at start-up: as `apply` of its record.
    fn apply_decoded(&mut self, d: &DecodedDeviation) {
        if d.meta.seq <= self.seq {
            return;
        }
        self.seq = d.meta.seq;
        if self.hooks.is_empty() {
            return;
        }
        // One that does not decode has no type to match (the register reports it).
        let Ok(ev) = &d.event else { return };
        if let DeviationEvent::Reported(r) = ev {
            self.references.insert(d.stream, r.reference);
        }
        self.called_for(ev.type_name(), d.id, d.meta.seq, d.stream, d.meta.at);
    }

    /// The deliveries a deviation event calls for: one to each webhook taking its type.
    fn called_for(
        &mut self,
        ty: &'static str,
        id: Uuid,
        seq: u64,
        deviation_id: Uuid,
        at: DateTime<Utc>,
    ) {
        for (hook, sub) in self.hooks.iter().enumerate() {
            if !sub.events.contains(&ty) {
                continue;
            }
            let delivery_id = delivery_id(id, &sub.name);
            self.pending.insert(
                delivery_id,
                Intent {
                    delivery_id,
                    hook,
                    trigger_event_id: id,
                    trigger_seq: seq,
                    event_type: ty,
                    deviation_id,
                    reference: self.references.get(&deviation_id).copied(),
                    due_at: at,
                },
            );
        }
    }

    fn apply_delivery(&mut self, rec: &RecordedEvent) {
        enum Outcome {
            Delivered(WebhookDelivered),
            Failed(WebhookFailed),
            Abandoned(WebhookAbandoned),
        }
        let decoded = match rec.event_type.as_str() {
            WEBHOOK_DELIVERED => rec.decode().map(Outcome::Delivered),
            WEBHOOK_FAILED => rec.decode().map(Outcome::Failed),
            _ => rec.decode().map(Outcome::Abandoned),
        };
        let outcome = match decoded {
            Ok(o) => o,
            Err(e) => {
                self.undecodable += 1;
                tracing::error!(seq = rec.seq, error = %e, "stored webhook delivery event does not decode");
                return;
            }
        };
        let head = match &outcome {
            Outcome::Delivered(e) => &e.head,
            Outcome::Failed(e) => &e.head,
            Outcome::Abandoned(e) => &e.head,
        };
        let id = head.delivery_id;
        let hook = self.hooks.iter().position(|h| h.name == head.webhook);
        let pending = self.pending.contains_key(&id);
        match outcome {
            Outcome::Failed(e) => {
                if pending {
                    let p = self.progress.entry(id).or_default();
                    p.attempts = p.attempts.max(e.attempt);
                    p.last_error = Some(e.error);
                    p.next_retry_at = Some(e.next_retry_at);
                }
            }
            Outcome::Delivered(_) | Outcome::Abandoned(_) => {
                let abandoned = matches!(outcome, Outcome::Abandoned(_));
                // A delivery is settled once: a second outcome (a duplicate after a crash)
                // changes no totals.
                if pending {
                    self.pending.remove(&id);
                    self.progress.remove(&id);
                    if let Some(t) = hook.and_then(|h| self.totals.get_mut(h)) {
                        if abandoned {
                            t.abandoned += 1;
                            t.last_abandoned_at = Some(rec.at);
                        } else {
                            t.delivered += 1;
                        }
                        t.last_settled = Some((rec.at, abandoned));
                    }
                }
            }
        }
    }

    /// Every delivery due for an attempt at `now`, oldest event first, and (separately)
    /// those never tried within `give_up_after` of their event: they are not sent (the
    /// caller logs them and calls `forget`).
    pub fn due(
        &self,
        now: DateTime<Utc>,
        give_up_after: Duration,
    ) -> (Vec<DueDelivery>, Vec<Intent>) {
        let mut due = Vec::new();
        let mut expired = Vec::new();
        for (id, intent) in &self.pending {
            if now < intent.due_at {
                continue;
            }
            let progress = self.progress.get(id);
            if progress
                .and_then(|p| p.next_retry_at)
                .is_some_and(|t| now < t)
            {
                continue;
            }
            let attempts = progress.map_or(0, |p| p.attempts);
            if attempts == 0 && now - intent.due_at >= give_up_after {
                expired.push(intent.clone());
                continue;
            }
            due.push(DueDelivery {
                intent: intent.clone(),
                attempts,
            });
        }
        due.sort_by_key(|d| (d.intent.trigger_seq, d.intent.hook));
        expired.sort_by_key(|i| (i.trigger_seq, i.hook));
        (due, expired)
    }

    /// Stops looking at deliveries that expired (in memory only: after a restart they are
    /// found, logged once and forgotten again).
    pub fn forget(&mut self, ids: &[Uuid]) {
        for id in ids {
            self.pending.remove(id);
            self.progress.remove(id);
        }
    }

    /// The last error of a pending delivery, if an attempt failed.
    pub fn last_error(&self, delivery_id: Uuid) -> Option<&str> {
        self.progress
            .get(&delivery_id)
            .and_then(|p| p.last_error.as_deref())
    }

    /// Is this delivery still pending?
    pub fn is_pending(&self, delivery_id: Uuid) -> bool {
        self.pending.contains_key(&delivery_id)
    }

    /// Every webhook's standing.
    pub fn health(&self) -> Vec<WebhookHealth> {
        self.hooks
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let pending = self.pending.values().filter(|p| p.hook == i).count();
                let failing = self
                    .pending
                    .values()
                    .filter(|p| p.hook == i)
                    .filter(|p| {
                        self.progress
                            .get(&p.delivery_id)
                            .is_some_and(|x| x.attempts > 0)
                    })
                    .count();
                let t = self.totals.get(i).cloned().unwrap_or_default();
                let last_abandoned = t.last_settled.is_some_and(|(_, abandoned)| abandoned);
                WebhookHealth {
                    name: h.name.clone(),
                    pending,
                    failing,
                    delivered_total: t.delivered,
                    abandoned_total: t.abandoned,
                    last_abandoned_at: t.last_abandoned_at,
                    healthy: failing == 0 && !last_abandoned,
                }
            })
            .collect()
    }
}

impl LogFold for WebhookOutbox {
    fn apply(&mut self, rec: &RecordedEvent) {
        WebhookOutbox::apply(self, rec)
    }
    fn apply_deviation(&mut self, d: &DecodedDeviation) {
        self.apply_decoded(d)
    }
    fn seq(&self) -> u64 {
        WebhookOutbox::seq(self)
    }
}

/// The webhook outbox kept current, like the register.
pub type WebhookOutboxProjection = crate::projection::Projection<WebhookOutbox>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhooks::events::DeliveryHead;

    fn hooks() -> Arc<Vec<Subscription>> {
        Arc::new(vec![
            Subscription {
                name: "siem".into(),
                events: vec!["DeviationReported", "DeviationClassified"],
            },
            Subscription {
                name: "chat".into(),
                events: vec!["DeviationClosed"],
            },
        ])
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn rec(seq: u64, ty: &str, stream: Uuid, at: &str, data: serde_json::Value) -> RecordedEvent {
        RecordedEvent {
            seq,
            id: Uuid::from_u128(1000 + seq as u128),
            stream,
            version: 1,
            at: t(at),
            actor: "test".into(),
            event_type: ty.into(),
            schema: 1,
            data,
            prev: String::new(),
        }
    }

    fn head(i: &Intent, name: &str) -> DeliveryHead {
        DeliveryHead {
            delivery_id: i.delivery_id,
            webhook: name.into(),
            deviation_id: i.deviation_id,
            trigger_event_id: i.trigger_event_id,
            trigger_seq: i.trigger_seq,
            event_type: i.event_type.into(),
            due_at: i.due_at,
        }
    }

    #[test]
    fn each_subscribed_event_is_owed_once_until_settled() {
        let dev = Uuid::from_u128(1);
        let mut o = WebhookOutbox::new(hooks());
        o.apply(&rec(
            1,
            "DeviationReported",
            dev,
            "2026-03-02T08:00:00Z",
            serde_json::json!({"reference": "AVV-2026-0001"}),
        ));
        o.apply(&rec(
            2,
            "CommentAdded",
            dev,
            "2026-03-02T08:01:00Z",
            serde_json::json!({}),
        ));
        o.apply(&rec(
            3,
            "DeviationClosed",
            dev,
            "2026-03-02T08:02:00Z",
            serde_json::json!({}),
        ));
        // Re-applying a folded seq changes nothing.
        o.apply(&rec(
            3,
            "DeviationClosed",
            dev,
            "2026-03-02T08:02:00Z",
            serde_json::json!({}),
        ));
        let now = t("2026-03-02T09:00:00Z");
        let (due, expired) = o.due(now, Duration::hours(48));
        assert!(expired.is_empty());
        let got: Vec<(&str, usize)> = due
            .iter()
            .map(|d| (d.intent.event_type, d.intent.hook))
            .collect();
        assert_eq!(got, [("DeviationReported", 0), ("DeviationClosed", 1)]);
        assert_eq!(
            due[1].intent.reference.unwrap().to_string(),
            "AVV-2026-0001"
        );
        assert_eq!(
            due[0].intent.delivery_id,
            delivery_id(Uuid::from_u128(1001), "siem")
        );

        // A failure: not due before its retry time, due after, with its attempts.
        let first = due[0].intent.clone();
        let failed = WebhookFailed {
            head: head(&first, "siem"),
            attempt: 1,
            error: "HTTP 500".into(),
            status: Some(500),
            next_retry_at: t("2026-03-02T09:01:00Z"),
        };
        o.apply(&rec(
            4,
            WEBHOOK_FAILED,
            first.delivery_id,
            "2026-03-02T09:00:00Z",
            serde_json::to_value(&failed).unwrap(),
        ));
        let (due, _) = o.due(now, Duration::hours(48));
        assert_eq!(due.len(), 1);
        assert!(!o.health()[0].healthy && o.health()[0].failing == 1);
        let (due, _) = o.due(t("2026-03-02T09:01:00Z"), Duration::hours(48));
        assert_eq!(due.len(), 2);
        assert_eq!(due[0].attempts, 1);

        // Delivered: settled, healthy again; a duplicate outcome counts once.
        let delivered = WebhookDelivered {
            head: head(&first, "siem"),
            attempt: 2,
            status: 200,
        };
        for seq in [5, 6] {
            o.apply(&rec(
                seq,
                WEBHOOK_DELIVERED,
                first.delivery_id,
                "2026-03-02T09:01:00Z",
                serde_json::to_value(&delivered).unwrap(),
            ));
        }
        let h = &o.health()[0];
        assert_eq!(
            (h.pending, h.failing, h.delivered_total, h.healthy),
            (0, 0, 1, true)
        );
        assert!(!o.is_pending(first.delivery_id));

        // Abandoned: settled, and unhealthy until a later delivery goes through.
        let (due, _) = o.due(t("2026-03-02T09:02:00Z"), Duration::hours(48));
        let closed = due[0].intent.clone();
        let abandoned = WebhookAbandoned {
            head: head(&closed, "chat"),
            attempts: 1,
            last_error: "HTTP 410".into(),
            status: Some(410),
        };
        o.apply(&rec(
            7,
            WEBHOOK_ABANDONED,
            closed.delivery_id,
            "2026-03-02T09:02:00Z",
            serde_json::to_value(&abandoned).unwrap(),
        ));
        let h = &o.health()[1];
        assert_eq!((h.pending, h.abandoned_total, h.healthy), (0, 1, false));
        assert!(o
            .due(t("2026-03-03T00:00:00Z"), Duration::hours(48))
            .0
            .is_empty());
    }

    #[test]
    fn deliveries_never_tried_in_time_expire() {
        let dev = Uuid::from_u128(1);
        let mut o = WebhookOutbox::new(hooks());
        o.apply(&rec(
            1,
            "DeviationReported",
            dev,
            "2026-03-02T08:00:00Z",
            serde_json::json!({"reference": "AVV-2026-0001"}),
        ));
        let (due, expired) = o.due(t("2026-03-04T08:00:00Z"), Duration::hours(48));
        assert!(due.is_empty());
        assert_eq!(expired.len(), 1);
        o.forget(&[expired[0].delivery_id]);
        assert_eq!(o.health()[0].pending, 0);
        // Not due before its event was stored (a clock behind the log).
        o.apply(&rec(
            2,
            "DeviationClassified",
            dev,
            "2026-03-05T08:00:00Z",
            serde_json::json!({}),
        ));
        assert!(o
            .due(t("2026-03-05T07:00:00Z"), Duration::hours(48))
            .0
            .is_empty());
    }
}
