//! The outbox: a fold of the log into the e-mails the rules call for and how far each got.
//! A notice that no `NotificationSent` / `NotificationAbandoned` has settled is pending;
//! nothing else is stored. Rebuilt from the log at start-up, then follows it live.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use avvik_events::{EventStore, RecordedEvent, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::events::{
    EscalationAcknowledged, NotificationAbandoned, NotificationFailed, NotificationSent,
    NotificationUndeliverable, ESCALATION_ACKNOWLEDGED, NOTIFICATION_ABANDONED,
    NOTIFICATION_FAILED, NOTIFICATION_SENT, NOTIFICATION_UNDELIVERABLE,
};
use super::rules::{self, notice_id, EscalationRound, Group, Notice, Rule, Rules};
use crate::domain::recipients::{self, RecipientLists, Recipients, RecipientsEvent};
use crate::domain::{evolve, Deviation, DeviationEvent, EventMeta};
use crate::intake::record::{EmailQuarantined, EMAIL_QUARANTINED};
use crate::report::{IssuedReport, ANNUAL_REPORT_ISSUED};
use crate::scheduler::{PolicyReviewReminderDue, POLICY_REVIEW_REMINDER_DUE};

/// A notice an event called for, kept for the deviation's notice list.
#[derive(Debug, Clone)]
struct Triggered {
    notice: Notice,
    /// The deviation as it was when the rule fired (what the e-mail reports); dropped once
    /// the notice is settled.
    snapshot: Option<Arc<Deviation>>,
}

/// An e-mail a rule called for while its group's list was empty.
#[derive(Debug, Clone)]
struct Owed {
    /// The placeholder: rule, group, trigger, deviation; no recipient.
    notice: Notice,
    snapshot: Option<Arc<Deviation>>,
    /// When `NotificationUndeliverable` was stored for it.
    recorded_at: Option<DateTime<Utc>>,
    /// When addresses were added, and which: from then the e-mails to them are pending.
    resolved: Option<(DateTime<Utc>, Vec<String>)>,
}

/// An owed e-mail, for people (the deviation page) and the API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OwedStatus {
    pub notification_id: Uuid,
    pub deviation_id: Option<Uuid>,
    pub rule: Rule,
    pub rule_label: &'static str,
    pub group: Group,
    pub group_label: &'static str,
    pub due_at: DateTime<Utc>,
    pub recorded_at: Option<DateTime<Utc>>,
    /// When the list got addresses (the e-mails then went out to them, see the notices).
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_to: Vec<String>,
}

/// How far delivery of one notice got, from its events.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub deviation_id: Option<Uuid>,
    pub rule: Rule,
    pub group: Group,
    pub recipient: String,
    pub trigger_event_id: Option<Uuid>,
    pub due_at: DateTime<Utc>,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub next_retry_at: Option<DateTime<Utc>>,
    pub sent: Option<SentInfo>,
    pub abandoned: Option<AbandonedInfo>,
}

impl Delivery {
    fn settled(&self) -> bool {
        self.sent.is_some() || self.abandoned.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SentInfo {
    pub at: DateTime<Utc>,
    pub attempt: u32,
    pub message_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AbandonedInfo {
    pub at: DateTime<Utc>,
    pub attempts: u32,
    pub last_error: String,
}

/// A recorded acknowledgement of an escalation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Acknowledgement {
    pub deviation_id: Uuid,
    pub notification_id: Uuid,
    pub escalation_event_id: Uuid,
    pub recipient: String,
    pub group: Group,
    pub at: DateTime<Utc>,
    pub seq: u64,
}

/// A notice due for a delivery attempt now.
#[derive(Debug, Clone)]
pub struct DueNotice {
    pub notice: Notice,
    /// What the e-mail reports: the snapshot for event-triggered notices, the current
    /// state for reminders; none for notices about no deviation.
    pub deviation: Option<Arc<Deviation>>,
    /// Attempts made so far.
    pub attempts: u32,
}

/// Where one notice stands, for people (the staff deviation page).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not sent yet; `attempts` failed so far.
    Pending {
        attempts: u32,
        next_retry_at: Option<DateTime<Utc>>,
        last_error: Option<String>,
    },
    Sent(SentInfo),
    Abandoned(AbandonedInfo),
    /// Never tried before the give-up time (avvik was down longer, or the address was
    /// added to the configuration later); not sent.
    Expired,
    /// Tried, but the rule no longer calls for it (e.g. a deadline reminder after the
    /// filing was recorded, or replaced by a later reminder).
    Cancelled {
        attempts: u32,
        last_error: Option<String>,
    },
}

impl DeliveryState {
    pub fn label_sv(&self) -> &'static str {
        match self {
            DeliveryState::Pending { attempts: 0, .. } => "väntar på att skickas",
            DeliveryState::Pending { .. } => "misslyckades, försöker igen",
            DeliveryState::Sent(_) => "skickat",
            DeliveryState::Abandoned(_) => "gick inte att skicka, uppgivet",
            DeliveryState::Expired => "inte skickat (för gammalt)",
            DeliveryState::Cancelled { .. } => "inte längre aktuellt",
        }
    }
}

/// One e-mail about a deviation, as the staff page shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NoticeStatus {
    pub notification_id: Uuid,
    pub deviation_id: Option<Uuid>,
    pub rule: Rule,
    pub rule_label: &'static str,
    pub group: Group,
    pub group_label: &'static str,
    pub recipient: String,
    pub due_at: DateTime<Utc>,
    pub state: DeliveryState,
    /// For escalations: the recipient's acknowledgement, if given.
    pub acknowledged: Option<Acknowledgement>,
}

/// What the acknowledgement page needs to know about one escalation e-mail.
#[derive(Debug, Clone)]
pub struct EscalationNotice {
    pub notification_id: Uuid,
    pub deviation_id: Uuid,
    pub escalation_event_id: Uuid,
    pub recipient: String,
    pub group: Group,
    pub reference: Option<crate::domain::Reference>,
    pub title: Option<String>,
    pub acknowledged: Option<Acknowledgement>,
}

/// Where the outbox finds a deviation's state to share after start-up: the register's,
/// when it holds one (never waiting for it).
#[derive(Clone, Default)]
struct Peer(Option<Arc<StateOf>>);

/// A deviation's current state, by id.
type StateOf = dyn Fn(Uuid) -> Option<Arc<Deviation>> + Send + Sync;

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Peer(register)"
        } else {
            "Peer(none)"
        })
    }
}

/// The fold.
#[derive(Debug)]
pub struct Outbox {
    rules: Arc<Rules>,
    /// The register's states, shared instead of evolved again when they are the same.
    peer: Peer,
    seq: u64,
    deviations: HashMap<Uuid, Arc<Deviation>>,
    triggered: HashMap<Uuid, Triggered>,
    /// Event-triggered notices not settled yet: a delivery round looks only at these and
    /// at `watched`, never at the whole history.
    open_triggered: HashSet<Uuid>,
    deliveries: HashMap<Uuid, Delivery>,
    /// Notice ids per deviation (triggered or delivered), for the deviation page.
    by_deviation: HashMap<Uuid, Vec<Uuid>>,
    /// Ids of notices about no deviation per triggering event (an annual report issue, a
    /// policy reminder, a quarantined e-mail).
    by_trigger: HashMap<Uuid, Vec<Uuid>>,
    escalations: HashMap<Uuid, Vec<EscalationRound>>,
    acks: HashMap<Uuid, Vec<Acknowledgement>>,
    ack_by_notice: HashMap<Uuid, Acknowledgement>,
    /// Deviations that may still call for a reminder.
    watched: HashSet<Uuid>,
    /// The streams holding each deviation's notification records (its notices' and their
    /// acknowledgements'), for its timeline: the records stay in the log, not in memory.
    streams: HashMap<Uuid, Vec<Uuid>>,
    /// The recipient lists, from their stream (the configuration's until it has events).
    recipients: Recipients,
    owed: HashMap<Uuid, Owed>,
    /// Owed e-mails no address was added for yet.
    owed_open: std::collections::BTreeSet<Uuid>,
    owed_by_deviation: HashMap<Uuid, Vec<Uuid>>,
    /// Stored records of our types that did not decode (never expected; counted so it is
    /// visible rather than silent).
    pub undecodable: u64,
}

impl Outbox {
    pub fn new(rules: Arc<Rules>) -> Self {
        Self {
            rules,
            peer: Peer::default(),
            seq: 0,
            deviations: HashMap::new(),
            triggered: HashMap::new(),
            open_triggered: HashSet::new(),
            deliveries: HashMap::new(),
            by_deviation: HashMap::new(),
            by_trigger: HashMap::new(),
            escalations: HashMap::new(),
            acks: HashMap::new(),
            ack_by_notice: HashMap::new(),
            watched: HashSet::new(),
            streams: HashMap::new(),
            recipients: Recipients::default(),
            owed: HashMap::new(),
            owed_open: Default::default(),
            owed_by_deviation: HashMap::new(),
            undecodable: 0,
        }
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// From now on, a deviation event whose result `peer` already holds (the same stream
    /// at the same seq) takes that state instead of evolving a copy: after start-up the
    /// outbox then still shares the register's deviations.
    pub fn share_with(
        &mut self,
        peer: impl Fn(Uuid) -> Option<Arc<Deviation>> + Send + Sync + 'static,
    ) {
        self.peer = Peer(Some(Arc::new(peer)));
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    pub fn deviation(&self, id: Uuid) -> Option<&Arc<Deviation>> {
        self.deviations.get(&id)
    }

    /// Folds one record in (at-least-once safe: re-applying a seq already folded is a no-op).
    pub fn apply(&mut self, rec: &RecordedEvent) {
        if rec.seq <= self.seq {
            return;
        }
        self.seq = rec.seq;
        match rec.event_type.as_str() {
            NOTIFICATION_SENT | NOTIFICATION_FAILED | NOTIFICATION_ABANDONED => {
                self.apply_delivery(rec)
            }
            ESCALATION_ACKNOWLEDGED => self.apply_ack(rec),
            NOTIFICATION_UNDELIVERABLE => self.apply_undeliverable(rec),
            ty if RecipientsEvent::TYPES.contains(&ty) => {
                match RecipientsEvent::from_parts(ty, &rec.data) {
                    Some(Ok(ev)) => self.apply_recipients(&ev, rec.at),
                    _ => {
                        self.undecodable += 1;
                        tracing::error!(seq = rec.seq, event_type = %ty, "stored recipient list event does not decode");
                    }
                }
            }
            ANNUAL_REPORT_ISSUED => match IssuedReport::from_record(rec) {
                Some(issue) => {
                    let notices = rules::on_annual_report(&self.rules, &issue);
                    self.add_triggered(notices, None);
                }
                None => self.undecodable_trigger(rec),
            },
            POLICY_REVIEW_REMINDER_DUE => match rec.decode::<PolicyReviewReminderDue>() {
                Ok(r) => {
                    let notices = rules::on_policy_review(&self.rules, &r, rec.id, rec.at);
                    self.add_triggered(notices, None);
                }
                Err(_) => self.undecodable_trigger(rec),
            },
            EMAIL_QUARANTINED => match rec.decode::<EmailQuarantined>() {
                Ok(q) => {
                    let notices = rules::on_quarantine(&self.rules, &q, rec.id, rec.at);
                    self.add_triggered(notices, None);
                }
                Err(_) => self.undecodable_trigger(rec),
            },
            ty => match DeviationEvent::from_parts(ty, &rec.data) {
                Some(Ok(ev)) => {
                    let meta = crate::projection::meta_of(rec);
                    self.apply_deviation(&meta, rec.id, rec.stream, &ev)
                }
                Some(Err(e)) => Self::undecodable_deviation(rec.seq, &e),
                None => {}
            },
        }
    }

    /// A deviation event decoded at start-up: as `apply` of its record. With `shared`, the
    /// register folded it first and this is the state it reached (`Some(None)`: none),
    /// which the outbox keeps instead of evolving a copy of its own.
    fn apply_decoded(
        &mut self,
        d: &crate::projection::DecodedDeviation,
        shared: Option<Option<&Arc<Deviation>>>,
    ) {
        if d.meta.seq <= self.seq {
            return;
        }
        self.seq = d.meta.seq;
        match (&d.event, shared) {
            (Ok(ev), None) => self.apply_deviation(&d.meta, d.id, d.stream, ev),
            (Ok(ev), Some(after)) => {
                let before = self.deviations.remove(&d.stream);
                self.evolved(&d.meta, d.id, d.stream, ev, before, after.cloned())
            }
            (Err(e), _) => Self::undecodable_deviation(d.meta.seq, e),
        }
    }

    fn undecodable_deviation(seq: u64, error: &dyn std::fmt::Display) {
        // The register logs these too; here they only cannot trigger notices.
        tracing::debug!(seq, %error, "deviation event does not decode");
    }

    fn apply_deviation(&mut self, meta: &EventMeta, id: Uuid, stream: Uuid, ev: &DeviationEvent) {
        let before = self.deviations.remove(&stream);
        // The register's state after this very event is what evolving would give.
        let shared = (self.peer.0.as_ref())
            .and_then(|peer| peer(stream))
            .filter(|d| d.last_seq == meta.seq);
        let next = match shared {
            Some(d) => Some(d),
            None => {
                evolve(before.clone().map(Arc::unwrap_or_clone), stream, ev, meta).map(Arc::new)
            }
        };
        self.evolved(meta, id, stream, ev, before, next)
    }

    /// A deviation went from `before` to `next` by event `id`: the notices it calls for.
    fn evolved(
        &mut self,
        meta: &EventMeta,
        id: Uuid,
        stream: Uuid,
        ev: &DeviationEvent,
        before: Option<Arc<Deviation>>,
        next: Option<Arc<Deviation>>,
    ) {
        let Some(next) = next else {
            return;
        };
        self.deviations.insert(stream, next.clone());
        if let DeviationEvent::Classified(c) = ev {
            let was = before.as_ref().and_then(|d| d.severity);
            if c.severity == crate::domain::Severity::Major
                && was != Some(crate::domain::Severity::Major)
            {
                self.escalations
                    .entry(stream)
                    .or_default()
                    .push(EscalationRound {
                        event_id: id,
                        at: meta.at,
                    });
            }
        }
        let notices = rules::on_event(&self.rules, before.as_deref(), &next, ev, id, meta.at);
        self.add_triggered(notices, Some(next));
        self.rewatch(stream);
    }

    /// A record of a type that triggers notices did not decode: it cannot trigger any.
    fn undecodable_trigger(&mut self, rec: &RecordedEvent) {
        self.undecodable += 1;
        tracing::error!(seq = rec.seq, event_type = %rec.event_type, "stored event does not decode; no e-mail for it");
    }

    /// The recipient lists changed: the rules use the new ones from here on, and e-mails
    /// owed to a list that now has addresses become pending, due now (so they are not
    /// expired for their age), each to each new address once.
    fn apply_recipients(&mut self, ev: &RecipientsEvent, at: DateTime<Utc>) {
        self.recipients = recipients::evolve(std::mem::take(&mut self.recipients), ev);
        Arc::make_mut(&mut self.rules).set_lists(&self.recipients.lists);
        let open: Vec<Uuid> = self.owed_open.iter().copied().collect();
        for id in open {
            let Some(o) = self.owed.get(&id) else {
                continue;
            };
            let members = self.rules.members(o.notice.group, None);
            let (Some(trigger), false) = (o.notice.trigger_event_id, members.is_empty()) else {
                continue;
            };
            let notices: Vec<Notice> = members
                .iter()
                .map(|r| Notice {
                    id: notice_id(trigger, o.notice.rule.key(), r),
                    recipient: r.clone(),
                    due_at: at,
                    ..o.notice.clone()
                })
                .collect();
            let snapshot = o.snapshot.clone();
            self.add_triggered(notices, snapshot);
            if let Some(o) = self.owed.get_mut(&id) {
                o.resolved = Some((at, members));
                o.snapshot = None;
            }
            self.owed_open.remove(&id);
        }
    }

    fn apply_undeliverable(&mut self, rec: &RecordedEvent) {
        let e = match rec.decode::<NotificationUndeliverable>() {
            Ok(e) => e,
            Err(err) => {
                self.undecodable += 1;
                tracing::error!(seq = rec.seq, error = %err, "stored undeliverable notice does not decode");
                return;
            }
        };
        if let Some(o) = self.owed.get_mut(&e.notification_id) {
            o.recorded_at.get_or_insert(rec.at);
        }
        if let Some(d) = e.deviation_id {
            self.note_stream(d, rec.stream);
        }
    }

    /// Keeps an e-mail a rule called for with nobody to send it to.
    fn add_owed(&mut self, n: Notice, snapshot: Option<Arc<Deviation>>) {
        if self.owed.contains_key(&n.id) {
            return;
        }
        self.owed_open.insert(n.id);
        if let Some(d) = n.deviation_id {
            self.owed_by_deviation.entry(d).or_default().push(n.id);
        }
        self.owed.insert(
            n.id,
            Owed {
                notice: n,
                snapshot,
                recorded_at: None,
                resolved: None,
            },
        );
    }

    /// The recipient lists the rules use now.
    pub fn recipient_lists(&self) -> RecipientLists {
        self.rules.lists()
    }

    /// Owed e-mails (no address yet) not recorded as `NotificationUndeliverable` yet.
    pub fn unrecorded_owed(&self) -> Vec<Notice> {
        self.owed_open
            .iter()
            .filter_map(|id| self.owed.get(id))
            .filter(|o| o.recorded_at.is_none())
            .map(|o| o.notice.clone())
            .collect()
    }

    /// How many e-mails wait for an address.
    pub fn owed_count(&self) -> usize {
        self.owed_open.len()
    }

    /// Deviations with an e-mail waiting for an address (the register marks them).
    pub fn deviations_owed(&self) -> HashSet<Uuid> {
        self.owed_open
            .iter()
            .filter_map(|id| self.owed.get(id).and_then(|o| o.notice.deviation_id))
            .collect()
    }

    /// The e-mails about a deviation that had nobody to go to, open or resolved.
    pub fn owed_for(&self, deviation_id: Uuid) -> Vec<OwedStatus> {
        self.owed_by_deviation
            .get(&deviation_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.owed.get(id))
            .map(|o| OwedStatus {
                notification_id: o.notice.id,
                deviation_id: o.notice.deviation_id,
                rule: o.notice.rule,
                rule_label: o.notice.rule.label_sv(),
                group: o.notice.group,
                group_label: o.notice.group.label_sv(),
                due_at: o.notice.due_at,
                recorded_at: o.recorded_at,
                resolved_at: o.resolved.as_ref().map(|r| r.0),
                resolved_to: o.resolved.as_ref().map(|r| r.1.clone()).unwrap_or_default(),
            })
            .collect()
    }

    /// Keeps the notices an event called for; `snapshot` is the deviation they report.
    fn add_triggered(&mut self, notices: Vec<Notice>, snapshot: Option<Arc<Deviation>>) {
        for n in notices {
            if n.is_owed() {
                self.add_owed(n, snapshot.clone());
                continue;
            }
            if self.triggered.contains_key(&n.id) {
                continue;
            }
            let settled = self.deliveries.get(&n.id).is_some_and(Delivery::settled);
            if !settled {
                self.open_triggered.insert(n.id);
            }
            self.index(n.deviation_id, n.trigger_event_id, n.id);
            self.triggered.insert(
                n.id,
                Triggered {
                    snapshot: if settled { None } else { snapshot.clone() },
                    notice: n,
                },
            );
        }
    }

    fn index(&mut self, deviation_id: Option<Uuid>, trigger: Option<Uuid>, notice_id: Uuid) {
        let ids = match (deviation_id, trigger) {
            (Some(d), _) => self.by_deviation.entry(d).or_default(),
            (None, Some(t)) => self.by_trigger.entry(t).or_default(),
            (None, None) => return,
        };
        if !ids.contains(&notice_id) {
            ids.push(notice_id);
        }
    }

    fn apply_delivery(&mut self, rec: &RecordedEvent) {
        // The three payloads share their head; decode the specific one for the rest.
        let decoded = match rec.event_type.as_str() {
            NOTIFICATION_SENT => rec
                .decode::<NotificationSent>()
                .map(|e| (e.head(), Outcome::Sent(e))),
            NOTIFICATION_FAILED => rec
                .decode::<NotificationFailed>()
                .map(|e| (e.head(), Outcome::Failed(e))),
            _ => rec
                .decode::<NotificationAbandoned>()
                .map(|e| (e.head(), Outcome::Abandoned(e))),
        };
        let ((id, deviation_id, rule, group, recipients, trigger, due_at), outcome) = match decoded
        {
            Ok(x) => x,
            Err(e) => {
                self.undecodable += 1;
                tracing::error!(seq = rec.seq, error = %e, "stored notification event does not decode");
                return;
            }
        };
        let d = self.deliveries.entry(id).or_insert_with(|| Delivery {
            deviation_id,
            rule,
            group,
            recipient: recipients.first().cloned().unwrap_or_default(),
            trigger_event_id: trigger,
            due_at,
            attempts: 0,
            last_error: None,
            next_retry_at: None,
            sent: None,
            abandoned: None,
        });
        match outcome {
            Outcome::Sent(e) => {
                d.attempts = d.attempts.max(e.attempt);
                d.next_retry_at = None;
                d.sent.get_or_insert(SentInfo {
                    at: rec.at,
                    attempt: e.attempt,
                    message_id: e.message_id,
                });
            }
            Outcome::Failed(e) => {
                if !d.settled() {
                    d.attempts = d.attempts.max(e.attempt);
                    d.last_error = Some(e.error);
                    d.next_retry_at = Some(e.next_retry_at);
                }
            }
            Outcome::Abandoned(e) => {
                d.attempts = d.attempts.max(e.attempts);
                d.next_retry_at = None;
                if d.sent.is_none() {
                    d.abandoned.get_or_insert(AbandonedInfo {
                        at: rec.at,
                        attempts: e.attempts,
                        last_error: e.last_error,
                    });
                }
            }
        }
        if d.settled() {
            self.open_triggered.remove(&id);
            if let Some(t) = self.triggered.get_mut(&id) {
                t.snapshot = None;
            }
        }
        self.index(deviation_id, trigger, id);
        if let Some(deviation_id) = deviation_id {
            self.note_stream(deviation_id, rec.stream);
        }
    }

    fn apply_ack(&mut self, rec: &RecordedEvent) {
        let e = match rec.decode::<EscalationAcknowledged>() {
            Ok(e) => e,
            Err(err) => {
                self.undecodable += 1;
                tracing::error!(seq = rec.seq, error = %err, "stored acknowledgement does not decode");
                return;
            }
        };
        let ack = Acknowledgement {
            deviation_id: e.deviation_id,
            notification_id: e.notification_id,
            escalation_event_id: e.escalation_event_id,
            recipient: e.recipient,
            group: e.group,
            at: rec.at,
            seq: rec.seq,
        };
        if self.ack_by_notice.contains_key(&ack.notification_id) {
            return;
        }
        self.ack_by_notice.insert(ack.notification_id, ack.clone());
        self.acks.entry(ack.deviation_id).or_default().push(ack);
        self.note_stream(e.deviation_id, rec.stream);
        self.rewatch(e.deviation_id);
    }

    fn latest_round(&self, deviation_id: Uuid) -> Option<&EscalationRound> {
        self.escalations.get(&deviation_id).and_then(|r| r.last())
    }

    fn acked(&self, deviation_id: Uuid, round: Option<&EscalationRound>, group: Group) -> bool {
        let Some(round) = round else { return true };
        self.acks.get(&deviation_id).is_some_and(|acks| {
            acks.iter()
                .any(|a| a.escalation_event_id == round.event_id && a.group == group)
        })
    }

    fn rewatch(&mut self, deviation_id: Uuid) {
        let watch = self.deviations.get(&deviation_id).is_some_and(|d| {
            let round = self.latest_round(deviation_id);
            let unacked = round.is_some()
                && Group::BOARD
                    .iter()
                    .any(|g| !self.acked(deviation_id, round, *g));
            rules::may_remind(&self.rules, d, unacked)
        });
        if watch {
            self.watched.insert(deviation_id);
        } else {
            self.watched.remove(&deviation_id);
        }
    }

    /// The reminders a deviation calls for at `now`.
    fn reminders_for(&self, d: &Deviation, now: DateTime<Utc>) -> Vec<Notice> {
        let round = self.latest_round(d.id);
        rules::reminders(&self.rules, d, round, |g| self.acked(d.id, round, g), now)
    }

    /// Whether a never-tried notice has run out of time.
    fn expired(&self, notice: &Notice, attempts: u32, now: DateTime<Utc>) -> bool {
        attempts == 0 && now - notice.due_at >= self.rules.give_up_after
    }

    /// Every notice due for an attempt at `now`, oldest first. Expired ones are returned
    /// separately (they are not tried; the caller logs them and calls `forget`).
    pub fn due(&self, now: DateTime<Utc>) -> (Vec<DueNotice>, Vec<Notice>) {
        let mut due = Vec::new();
        let mut expired = Vec::new();
        let mut consider = |n: &Notice, deviation: Option<Arc<Deviation>>| {
            let delivery = self.deliveries.get(&n.id);
            if delivery.is_some_and(Delivery::settled) || now < n.due_at {
                return;
            }
            if delivery
                .and_then(|d| d.next_retry_at)
                .is_some_and(|t| now < t)
            {
                return;
            }
            let attempts = delivery.map_or(0, |d| d.attempts);
            if self.expired(n, attempts, now) {
                expired.push(n.clone());
                return;
            }
            due.push(DueNotice {
                notice: n.clone(),
                deviation,
                attempts,
            });
        };
        for id in &self.open_triggered {
            let Some(t) = self.triggered.get(id) else {
                continue;
            };
            match t.notice.deviation_id {
                None => consider(&t.notice, None),
                Some(id) => {
                    let current = self.deviations.get(&id);
                    if let Some(d) = t.snapshot.as_ref().or(current) {
                        consider(&t.notice, Some(d.clone()));
                    }
                }
            }
        }
        for id in &self.watched {
            let Some(d) = self.deviations.get(id) else {
                continue;
            };
            for n in self.reminders_for(d, now) {
                consider(&n, Some(d.clone()));
            }
        }
        due.sort_by_key(|d| (d.notice.due_at, d.notice.id));
        (due, expired)
    }

    /// Stops looking at event-triggered notices that expired (in memory only: after a
    /// restart they are found, logged once and forgotten again).
    pub fn forget(&mut self, ids: &[Uuid]) {
        for id in ids {
            if self.open_triggered.remove(id) {
                if let Some(t) = self.triggered.get_mut(id) {
                    t.snapshot = None;
                }
            }
        }
    }

    /// Every e-mail about one deviation: sent, failed, pending, abandoned, in due order.
    pub fn notices_for(&self, deviation_id: Uuid, now: DateTime<Utc>) -> Vec<NoticeStatus> {
        let current: Vec<Notice> = self
            .deviations
            .get(&deviation_id)
            .map(|d| self.reminders_for(d, now))
            .unwrap_or_default();
        let known = self.by_deviation.get(&deviation_id).into_iter().flatten();
        self.statuses(known, &current, Some(deviation_id), now)
    }

    /// Every e-mail an event about no deviation called for (an annual report issue, a
    /// policy reminder, a quarantined e-mail), by the event's id.
    pub fn notices_for_trigger(&self, event_id: Uuid, now: DateTime<Utc>) -> Vec<NoticeStatus> {
        let known = self.by_trigger.get(&event_id).into_iter().flatten();
        self.statuses(known, &[], None, now)
    }

    fn statuses<'a>(
        &self,
        known: impl Iterator<Item = &'a Uuid>,
        current: &'a [Notice],
        deviation_id: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Vec<NoticeStatus> {
        let mut out: Vec<NoticeStatus> = Vec::new();
        let mut seen = HashSet::new();
        for id in known.chain(current.iter().map(|n| &n.id)) {
            if !seen.insert(*id) {
                continue;
            }
            let notice = self
                .triggered
                .get(id)
                .map(|t| t.notice.clone())
                .or_else(|| current.iter().find(|n| n.id == *id).cloned());
            let delivery = self.deliveries.get(id);
            let called_for = self.open_triggered.contains(id)
                || self.triggered.contains_key(id)
                || current.iter().any(|n| n.id == *id);
            let (rule, group, recipient, due_at) = match (&notice, delivery) {
                (Some(n), _) => (n.rule, n.group, n.recipient.clone(), n.due_at),
                (None, Some(d)) => (d.rule, d.group, d.recipient.clone(), d.due_at),
                (None, None) => continue,
            };
            let attempts = delivery.map_or(0, |d| d.attempts);
            let state = match delivery {
                Some(Delivery { sent: Some(s), .. }) => DeliveryState::Sent(s.clone()),
                Some(Delivery {
                    abandoned: Some(a), ..
                }) => DeliveryState::Abandoned(a.clone()),
                _ if !called_for => DeliveryState::Cancelled {
                    attempts,
                    last_error: delivery.and_then(|d| d.last_error.clone()),
                },
                _ if attempts == 0 && now - due_at >= self.rules.give_up_after => {
                    DeliveryState::Expired
                }
                _ => DeliveryState::Pending {
                    attempts,
                    next_retry_at: delivery.and_then(|d| d.next_retry_at),
                    last_error: delivery.and_then(|d| d.last_error.clone()),
                },
            };
            out.push(NoticeStatus {
                notification_id: *id,
                deviation_id,
                rule,
                rule_label: rule.label_sv(),
                group,
                group_label: group.label_sv(),
                recipient,
                due_at,
                state,
                acknowledged: self.ack_by_notice.get(id).cloned(),
            });
        }
        out.sort_by_key(|s| (s.due_at, s.rule, s.recipient.clone()));
        out
    }

    pub fn acknowledgements_for(&self, deviation_id: Uuid) -> Vec<Acknowledgement> {
        self.acks.get(&deviation_id).cloned().unwrap_or_default()
    }

    /// The streams holding a deviation's notification records (sent, failed, abandoned,
    /// undeliverable, acknowledged), for its timeline.
    pub fn timeline_streams(&self, deviation_id: Uuid) -> Vec<Uuid> {
        self.streams.get(&deviation_id).cloned().unwrap_or_default()
    }

    fn note_stream(&mut self, deviation_id: Uuid, stream: Uuid) {
        let streams = self.streams.entry(deviation_id).or_default();
        if !streams.contains(&stream) {
            streams.push(stream);
        }
    }

    /// The escalation e-mail a signed acknowledgement link names, if it exists.
    pub fn escalation(&self, notification_id: Uuid) -> Option<EscalationNotice> {
        let (deviation_id, escalation_event_id, recipient, group) =
            match self.triggered.get(&notification_id) {
                Some(Triggered {
                    notice:
                        Notice {
                            rule: Rule::Escalation,
                            deviation_id: Some(deviation_id),
                            trigger_event_id: Some(trigger),
                            recipient,
                            group,
                            ..
                        },
                    ..
                }) => (*deviation_id, *trigger, recipient.clone(), *group),
                _ => match self.deliveries.get(&notification_id) {
                    Some(Delivery {
                        rule: Rule::Escalation,
                        deviation_id: Some(deviation_id),
                        trigger_event_id: Some(trigger),
                        recipient,
                        group,
                        ..
                    }) => (*deviation_id, *trigger, recipient.clone(), *group),
                    _ => return None,
                },
            };
        let d = self.deviations.get(&deviation_id);
        Some(EscalationNotice {
            notification_id,
            deviation_id,
            escalation_event_id,
            recipient,
            group,
            reference: d.map(|d| d.reference),
            title: d.map(|d| d.title.clone()),
            acknowledged: self.ack_by_notice.get(&notification_id).cloned(),
        })
    }

    /// Folds the whole log up to `to_seq`.
    pub fn fold(
        store: &dyn EventStore,
        keys: &crate::privacy::Keyring,
        rules: Arc<Rules>,
        to_seq: u64,
    ) -> Result<Self, StoreError> {
        let mut outbox = Outbox::new(rules);
        crate::projection::replay(store, keys, 1, to_seq, &mut [&mut outbox])?;
        Ok(outbox)
    }
}

/// What every delivery event says about its notice: id, deviation, rule, group,
/// recipients, trigger and due time.
type DeliveryHead = (
    Uuid,
    Option<Uuid>,
    Rule,
    Group,
    Vec<String>,
    Option<Uuid>,
    DateTime<Utc>,
);

trait HasDeliveryHead {
    fn head(&self) -> DeliveryHead;
}

macro_rules! delivery_head {
    ($($t:ty),*) => {$(
        impl HasDeliveryHead for $t {
            fn head(&self) -> DeliveryHead {
                (
                    self.notification_id,
                    self.deviation_id,
                    self.rule,
                    self.group,
                    self.recipients.clone(),
                    self.trigger_event_id,
                    self.due_at,
                )
            }
        }
    )*};
}

delivery_head!(NotificationSent, NotificationFailed, NotificationAbandoned);

impl crate::projection::LogFold for Outbox {
    fn apply(&mut self, rec: &RecordedEvent) {
        Outbox::apply(self, rec)
    }
    fn apply_deviation(&mut self, d: &crate::projection::DecodedDeviation) {
        self.apply_decoded(d, None)
    }
    fn apply_evolved(
        &mut self,
        d: &crate::projection::DecodedDeviation,
        after: Option<&Arc<Deviation>>,
    ) {
        self.apply_decoded(d, Some(after))
    }
    fn seq(&self) -> u64 {
        Outbox::seq(self)
    }
}

enum Outcome {
    Sent(NotificationSent),
    Failed(NotificationFailed),
    Abandoned(NotificationAbandoned),
}

/// The outbox kept current, like the register.
pub type OutboxProjection = crate::projection::Projection<Outbox>;
