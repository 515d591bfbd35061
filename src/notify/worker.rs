//! Delivery: the handle the application keeps (`Notify`), one delivery round that tests can
//! drive (`deliver_pending_once`), the background loop around it, and recording what
//! happened to each e-mail as an event.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use avvik_events::{EventStore, RecordedEvent, StoreError};
use avvik_notifiers::{
    message_id_for, render, InlineImage, Mailer, MailerError, MailerSettings, NoticeContent,
    OutgoingEmail, Rendered, RetryPolicy, SendError, SmtpSettings, SmtpTls, TransportSettings,
};
use chrono::{DateTime, Utc};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::content::{content, ContentContext};

/// Runs `work` on every item, at most `concurrency` at a time, and answers what each
/// gave (a task that panicked is logged and left out): one delivery round of the e-mail
/// outbox or the webhooks.
pub(crate) async fn run_bounded<I, T, F, Fut>(
    items: Vec<I>,
    concurrency: usize,
    what: &'static str,
    work: F,
) -> Vec<T>
where
    F: Fn(I) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for item in items {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let job = work(item);
        tasks.spawn(async move {
            let _permit = permit;
            job.await
        });
    }
    let mut out = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(t) => out.push(t),
            Err(e) => tracing::error!(error = %e, what, "a delivery task failed"),
        }
    }
    out
}
use super::events::{
    acknowledgement_stream, EscalationAcknowledged, NotificationAbandoned, NotificationFailed,
    NotificationSent, NotificationUndeliverable, ESCALATION_ACKNOWLEDGED, NOTIFICATION_ABANDONED,
    NOTIFICATION_FAILED, NOTIFICATION_SENT, NOTIFICATION_UNDELIVERABLE,
};
use super::links;
use super::outbox::{
    Acknowledgement, DueNotice, EscalationNotice, NoticeStatus, Outbox, OutboxProjection,
};
use super::rules::{Rules, Subject};
use crate::clock::Clock;
use crate::command::{stateless, CommandError, CommandHandler, Current, Envelope, Executed, Load};
use crate::config::{Config, MailTransport, TlsMode};
use crate::domain::Fact;
use crate::report::{build_report, content_hash, render_email, IssuedReport};
use crate::secret::Secret;

/// Actor of the events delivery writes.
const ACTOR: &str = crate::domain::System::Notify.as_str();
/// How long a round waits for the outbox to fold the log's head (or its own events).
const CATCH_UP: Duration = Duration::from_secs(10);

/// What one delivery round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryReport {
    pub sent: usize,
    pub failed: usize,
    pub abandoned: usize,
    /// Never tried before the give-up time; logged, not sent.
    pub expired: usize,
}

/// The result of using an acknowledgement link.
#[derive(Debug, Clone, PartialEq)]
pub enum AckOutcome {
    /// Recorded now.
    Recorded(Acknowledgement),
    /// Recorded earlier (by this link); nothing new was stored.
    AlreadyRecorded(Option<Acknowledgement>),
    /// The link is signed but names no escalation e-mail this installation knows.
    Unknown,
}

/// The configured mail transport, in the notifier crate's terms.
pub fn mailer_settings(config: &Config) -> MailerSettings {
    let m = &config.mail;
    let transport = match m.transport {
        MailTransport::File => TransportSettings::File {
            dir: m.outbox_dir.clone(),
        },
        MailTransport::Smtp => TransportSettings::Smtp(SmtpSettings {
            host: m.smtp.host.clone(),
            port: m.smtp.port,
            tls: match m.smtp.tls {
                TlsMode::None => SmtpTls::None,
                TlsMode::Starttls => SmtpTls::Starttls,
                TlsMode::Tls => SmtpTls::Tls,
            },
            user: m.smtp.user.clone(),
            password: m.smtp.password.clone(),
            timeout: Duration::from_secs(m.smtp.timeout_s.max(1)),
            pool_max: m.smtp.pool_max,
        }),
    };
    MailerSettings {
        transport,
        from: m.from.clone(),
        reply_to: Some(m.reply_to.clone()).filter(|r| !r.trim().is_empty()),
    }
}

impl Inner {
    fn commands(&self) -> CommandHandler {
        CommandHandler::sealing(self.store.clone(), self.clock.clone(), self.keys.clone())
    }
}

struct Inner {
    store: Arc<dyn EventStore>,
    keys: Arc<crate::privacy::Keyring>,
    outbox: Arc<OutboxProjection>,
    mailer: Mailer,
    clock: Arc<dyn Clock>,
    secret: Secret,
    base_url: String,
    from: String,
    policy: RetryPolicy,
    concurrency: usize,
    poll_interval: Duration,
    board_includes_description: bool,
    /// Serialises delivery rounds (the background loop and tests driving rounds), and
    /// remembers which expired notices were already logged.
    round: tokio::sync::Mutex<HashSet<Uuid>>,
    /// The annual report e-mail last rendered, by issue event id: the report is rebuilt
    /// from the log once for all its recipients (and retries), not once per e-mail.
    report_email: tokio::sync::Mutex<Option<(Uuid, Arc<Rendered>)>>,
}

/// E-mail notices for the running application. Cheap to clone.
#[derive(Clone)]
pub struct Notify {
    inner: Arc<Inner>,
}

impl Notify {
    /// Builds the configured transport and runs the delivery loop over `outbox` (caught
    /// up by start-up together with the other projections) while this node holds the
    /// outbox duty.
    pub fn start(
        config: &Config,
        store: Arc<dyn EventStore>,
        clock: Arc<dyn Clock>,
        secret: Secret,
        keys: Arc<crate::privacy::Keyring>,
        outbox: Arc<OutboxProjection>,
        duties: &crate::duty::Duties,
    ) -> Result<Self, MailerError> {
        let mailer = Mailer::new(&mailer_settings(config))?;
        let notify = Self::with_outbox(config, store, clock, secret, keys, mailer, outbox);
        // One node at a time delivers (the outbox duty); every node folds the outbox.
        let n = notify.clone();
        duties.run(crate::duty::OUTBOX, move |stop| {
            tokio::spawn(n.clone().run(stop))
        });
        Ok(notify)
    }

    /// The outbox projection without the background loop, over a given mailer: rounds run
    /// only when called (unit tests with lettre's stub transport).
    pub fn with_mailer(
        config: &Config,
        store: Arc<dyn EventStore>,
        clock: Arc<dyn Clock>,
        secret: Secret,
        keys: Arc<crate::privacy::Keyring>,
        mailer: Mailer,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let rules = Arc::new(Rules::from_config(config));
        let outbox = OutboxProjection::start(
            move || Outbox::new(rules.clone()),
            "outbox",
            store.clone(),
            keys.clone(),
            shutdown,
        );
        Self::with_outbox(config, store, clock, secret, keys, mailer, outbox)
    }

    fn with_outbox(
        config: &Config,
        store: Arc<dyn EventStore>,
        clock: Arc<dyn Clock>,
        secret: Secret,
        keys: Arc<crate::privacy::Keyring>,
        mailer: Mailer,
        outbox: Arc<OutboxProjection>,
    ) -> Self {
        let n = &config.notifications;
        let policy = RetryPolicy {
            first: Duration::from_secs(n.retry_first_s),
            max: Duration::from_secs(n.retry_max_s),
            give_up_after: Duration::from_secs(n.give_up_after_h.saturating_mul(3600)),
        };
        Self {
            inner: Arc::new(Inner {
                store,
                keys,
                outbox,
                mailer,
                clock,
                secret,
                base_url: config.http.base_url.clone(),
                from: config.mail.from.clone(),
                policy,
                concurrency: n.concurrency.max(1),
                poll_interval: Duration::from_secs(n.poll_interval_s.max(1)),
                board_includes_description: n.board_includes_description,
                round: tokio::sync::Mutex::new(HashSet::new()),
                report_email: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// True once the outbox has folded the log it found at start.
    pub fn is_ready(&self) -> bool {
        self.inner.outbox.is_ready()
    }

    /// The mailer (for `send-test-email`-like uses and tests).
    pub fn mailer(&self) -> &Mailer {
        &self.inner.mailer
    }

    pub fn secret(&self) -> &Secret {
        &self.inner.secret
    }

    /// Waits until the outbox shows everything the log held when called.
    async fn caught_up(&self) -> bool {
        let head = self.inner.store.head().seq;
        self.inner.outbox.wait_for(head, CATCH_UP).await
    }

    /// Every e-mail about a deviation, for the staff page: who was notified, what failed
    /// and why, what is still pending, who acknowledged an escalation.
    pub fn notices_for(&self, deviation_id: Uuid) -> Vec<NoticeStatus> {
        let now = self.inner.clock.now();
        self.inner.outbox.read().notices_for(deviation_id, now)
    }

    /// Every e-mail an event about no deviation called for (an `AnnualReportIssued`, a
    /// `PolicyReviewReminderDue`, an `EmailQuarantined`), by the event's id: for the staff
    /// pages of reports and quarantined e-mail.
    pub fn notices_for_trigger(&self, event_id: Uuid) -> Vec<NoticeStatus> {
        let now = self.inner.clock.now();
        self.inner.outbox.read().notices_for_trigger(event_id, now)
    }

    /// The acknowledgements of a deviation's escalations, in the order they were given.
    pub fn acknowledgements_for(&self, deviation_id: Uuid) -> Vec<Acknowledgement> {
        self.inner.outbox.read().acknowledgements_for(deviation_id)
    }

    /// The stored notification events about a deviation (sent, failed, abandoned,
    /// acknowledged), in log order, for its timeline.
    /// Read from the log (the outbox keeps only which streams hold them) and opened.
    pub fn timeline_for(&self, deviation_id: Uuid) -> Result<Vec<RecordedEvent>, StoreError> {
        let streams = self.inner.outbox.read().timeline_streams(deviation_id);
        let mut records = Vec::new();
        for stream in streams {
            records.extend(self.inner.store.read_stream(stream, 1)?);
        }
        records.sort_by_key(|r| r.seq);
        for r in &mut records {
            self.inner.keys.open_record(r);
        }
        Ok(records)
    }

    /// The escalation e-mail an acknowledgement link names.
    pub fn escalation(&self, notification_id: Uuid) -> Option<EscalationNotice> {
        self.inner.outbox.read().escalation(notification_id)
    }

    /// Records that the recipient of an escalation e-mail acknowledged it. At most once:
    /// the event goes into a stream that can only be created once.
    pub async fn acknowledge(&self, notification_id: Uuid) -> Result<AckOutcome, StoreError> {
        self.caught_up().await;
        let Some(esc) = self.escalation(notification_id) else {
            return Ok(AckOutcome::Unknown);
        };
        if let Some(a) = esc.acknowledged {
            return Ok(AckOutcome::AlreadyRecorded(Some(a)));
        }
        let data = EscalationAcknowledged {
            deviation_id: esc.deviation_id,
            notification_id,
            escalation_event_id: esc.escalation_event_id,
            recipient: esc.recipient.clone(),
            group: esc.group,
        };
        let fact = Fact::new(ESCALATION_ACKNOWLEDGED, &data);
        let stream = acknowledgement_stream(notification_id);
        let env = Envelope::new(stream, format!("recipient:{}", esc.recipient));
        let commands = self.inner.commands();
        let load: Load<'_, bool, CommandError> = Box::new(|| {
            Box::pin(async {
                let (records, version) = commands.read_stream(stream)?;
                Ok(Current::new(!records.is_empty(), version))
            })
        });
        // At most once: a stream that exists already holds the acknowledgement.
        let outcome = commands
            .execute(&env, load, |recorded, _ctx| {
                Ok(if *recorded {
                    Vec::new()
                } else {
                    vec![fact.clone()]
                })
            })
            .await;
        match outcome {
            Ok(Executed::Committed { records, .. }) => {
                let seq = records.last().map_or(0, |r| r.seq);
                self.inner.outbox.wait_for(seq, CATCH_UP).await;
                let ack = self
                    .escalation(notification_id)
                    .and_then(|e| e.acknowledged);
                Ok(match ack {
                    Some(a) => AckOutcome::Recorded(a),
                    None => AckOutcome::AlreadyRecorded(None),
                })
            }
            Ok(Executed::Unchanged(_)) | Err(CommandError::Contention) => {
                self.caught_up().await;
                Ok(AckOutcome::AlreadyRecorded(
                    self.escalation(notification_id)
                        .and_then(|e| e.acknowledged),
                ))
            }
            Err(CommandError::Store(e)) => Err(e),
        }
    }

    /// One delivery round at `now`: every due notice gets one attempt, and each outcome is
    /// stored before this returns (and folded, so the next round sees it).
    pub async fn deliver_pending_once(&self, now: DateTime<Utc>) -> DeliveryReport {
        let mut logged_expired = self.inner.round.lock().await;
        let mut report = DeliveryReport::default();
        // A round on a stale outbox could send what is already settled.
        if !self.caught_up().await {
            tracing::warn!("the outbox is behind the log; delivery waits for the next round");
            return report;
        }
        self.record_owed(now).await;
        let (due, expired) = self.inner.outbox.read().due(now);
        let expired_ids: Vec<Uuid> = expired.iter().map(|n| n.id).collect();
        for n in expired {
            if logged_expired.insert(n.id) {
                report.expired += 1;
                metrics::counter!("avvik_notifications_expired_total", "rule" => n.rule.key())
                    .increment(1);
                tracing::warn!(
                    notification_id = %n.id,
                    deviation_id = ?n.deviation_id,
                    rule = n.rule.key(),
                    due_at = %n.due_at,
                    "e-mail not sent: never tried before the give-up time"
                );
            }
        }
        self.inner.outbox.write().forget(&expired_ids);
        let mut last_seq = 0;
        let me = self.clone();
        let done = run_bounded(due, self.inner.concurrency, "e-mail", move |notice| {
            let me = me.clone();
            async move { me.deliver_one(notice, now).await }
        })
        .await;
        for (outcome, seq) in done {
            last_seq = last_seq.max(seq.unwrap_or(0));
            match outcome {
                Outcome::Sent => report.sent += 1,
                Outcome::Failed => report.failed += 1,
                Outcome::Abandoned => report.abandoned += 1,
            }
        }
        if last_seq > 0 {
            self.inner.outbox.wait_for(last_seq, CATCH_UP).await;
        }
        report
    }

    /// Records each e-mail a rule called for with nobody in its group, once: an event (in a
    /// stream of its own, created once), a warning in the log, a count in `/metrics`.
    async fn record_owed(&self, now: DateTime<Utc>) {
        let (owed, open) = {
            let o = self.inner.outbox.read();
            (o.unrecorded_owed(), o.owed_count())
        };
        metrics::gauge!("avvik_notifications_owed").set(open as f64);
        let mut last_seq = 0;
        for n in owed {
            let list = n.group.label_sv();
            let e = NotificationUndeliverable {
                notification_id: n.id,
                deviation_id: n.deviation_id,
                rule: n.rule,
                group: n.group,
                trigger_event_id: n.trigger_event_id,
                due_at: n.due_at,
                reason: format!(
                    "the recipient list {:?} is empty; the e-mail goes out when an address is added",
                    n.group
                ),
            };
            let fact = Fact::new(NOTIFICATION_UNDELIVERABLE, &e);
            let env = Envelope::new(n.id, ACTOR).at(now);
            let commands = self.inner.commands();
            let load: Load<'_, bool, CommandError> = Box::new(|| {
                Box::pin(async {
                    let (records, version) = commands.read_stream(n.id)?;
                    Ok(Current::new(!records.is_empty(), version))
                })
            });
            // Recorded once: a notice whose stream exists has its record already.
            let outcome = commands
                .execute(&env, load, |recorded, _ctx| {
                    Ok(if *recorded {
                        Vec::new()
                    } else {
                        vec![fact.clone()]
                    })
                })
                .await;
            match outcome {
                Ok(Executed::Unchanged(_)) => {}
                Ok(stored) => {
                    last_seq = last_seq.max(stored.last_seq().unwrap_or(0));
                    metrics::counter!(
                        "avvik_notifications_undeliverable_total",
                        "rule" => n.rule.key(),
                        "group" => format!("{:?}", n.group).to_lowercase()
                    )
                    .increment(1);
                    tracing::warn!(
                        notification_id = %n.id,
                        deviation_id = ?n.deviation_id,
                        rule = n.rule.key(),
                        group = list,
                        "no address for the group: e-mail not sent; it goes out when an address is added"
                    );
                }
                Err(err) => {
                    tracing::error!(notification_id = %n.id, error = %err, "could not record an undeliverable e-mail")
                }
            }
        }
        if last_seq > 0 {
            self.inner.outbox.wait_for(last_seq, CATCH_UP).await;
        }
    }

    /// The recipient lists the rules use now.
    pub fn recipient_lists(&self) -> crate::domain::recipients::RecipientLists {
        self.inner.outbox.read().recipient_lists()
    }

    /// Waits (a bounded time) until the outbox has folded `seq`.
    pub async fn wait_for(&self, seq: u64) -> bool {
        self.inner.outbox.wait_for(seq, CATCH_UP).await
    }

    /// The e-mails about a deviation that had nobody to go to.
    pub fn owed_for(&self, deviation_id: Uuid) -> Vec<super::outbox::OwedStatus> {
        self.inner.outbox.read().owed_for(deviation_id)
    }

    /// How many e-mails wait for an address.
    pub fn owed_count(&self) -> usize {
        self.inner.outbox.read().owed_count()
    }

    /// Deviations with an e-mail waiting for an address.
    pub fn deviations_owed(&self) -> HashSet<Uuid> {
        self.inner.outbox.read().deviations_owed()
    }

    /// One attempt for one notice, and its event. Returns the seq of the stored event.
    async fn deliver_one(&self, due: DueNotice, now: DateTime<Utc>) -> (Outcome, Option<u64>) {
        let me = &self.inner;
        let n = &due.notice;
        let cx = ContentContext {
            base_url: &me.base_url,
            secret: &me.secret,
            board_includes_description: me.board_includes_description,
        };
        let message_id = message_id_for(n.id, &me.from);
        let attempt = due.attempts.saturating_add(1);
        let rendered = match &n.subject {
            Subject::AnnualReport(issue) => self.annual_report_email(issue).await,
            _ => content(n, due.deviation.as_deref(), &cx)
                .map_err(SendError::Build)
                .and_then(|c| render(&c).map_err(|e| SendError::Build(e.to_string())))
                .map(Arc::new),
        };
        let result = match rendered {
            Ok(rendered) => {
                let subject = rendered.subject.clone();
                let email = OutgoingEmail {
                    to: n.recipient.clone(),
                    message_id: message_id.clone(),
                    rendered: Arc::unwrap_or_clone(rendered),
                };
                me.mailer.send(&email).await.map(|()| subject)
            }
            Err(e) => Err(e),
        };
        let recipients = vec![n.recipient.clone()];
        let reference = due
            .deviation
            .as_ref()
            .map(|d| d.reference.to_string())
            .unwrap_or_default();
        let (outcome, event_type, data) = match result {
            Ok(subject) => {
                metrics::counter!("avvik_notifications_sent_total", "rule" => n.rule.key())
                    .increment(1);
                tracing::info!(%reference, rule = n.rule.key(), notification_id = %n.id, attempt, "e-mail sent");
                let e = NotificationSent {
                    notification_id: n.id,
                    deviation_id: n.deviation_id,
                    rule: n.rule,
                    group: n.group,
                    recipients,
                    trigger_event_id: n.trigger_event_id,
                    due_at: n.due_at,
                    subject,
                    message_id,
                    attempt,
                };
                (Outcome::Sent, NOTIFICATION_SENT, serde_json::to_value(e))
            }
            Err(err) => {
                let age = (now - n.due_at).to_std().unwrap_or_default();
                if me.policy.gives_up(age) {
                    metrics::counter!("avvik_notifications_abandoned_total", "rule" => n.rule.key())
                        .increment(1);
                    tracing::error!(
                        %reference, rule = n.rule.key(), notification_id = %n.id,
                        attempts = attempt, error = %err,
                        "e-mail abandoned: not delivered before the give-up time"
                    );
                    let e = NotificationAbandoned {
                        notification_id: n.id,
                        deviation_id: n.deviation_id,
                        rule: n.rule,
                        group: n.group,
                        recipients,
                        trigger_event_id: n.trigger_event_id,
                        due_at: n.due_at,
                        attempts: attempt,
                        last_error: err.to_string(),
                    };
                    (
                        Outcome::Abandoned,
                        NOTIFICATION_ABANDONED,
                        serde_json::to_value(e),
                    )
                } else {
                    let wait = chrono::Duration::from_std(me.policy.delay(attempt))
                        .unwrap_or(chrono::Duration::hours(1));
                    metrics::counter!("avvik_notifications_failed_total", "rule" => n.rule.key())
                        .increment(1);
                    tracing::warn!(
                        %reference, rule = n.rule.key(), notification_id = %n.id,
                        attempt, error = %err, retry_in_s = wait.num_seconds(),
                        "e-mail delivery failed; will retry"
                    );
                    let e = NotificationFailed {
                        notification_id: n.id,
                        deviation_id: n.deviation_id,
                        rule: n.rule,
                        group: n.group,
                        recipients,
                        trigger_event_id: n.trigger_event_id,
                        due_at: n.due_at,
                        attempt,
                        error: err.to_string(),
                        next_retry_at: now + wait,
                    };
                    (
                        Outcome::Failed,
                        NOTIFICATION_FAILED,
                        serde_json::to_value(e),
                    )
                }
            }
        };
        let data = data.unwrap_or_default();
        let fact = Fact {
            type_name: event_type,
            data,
        };
        let env = Envelope::new(n.id, ACTOR).expect_any().at(now);
        match me
            .commands()
            .execute(&env, stateless(), |_, _ctx| {
                Ok::<_, CommandError>(vec![fact.clone()])
            })
            .await
        {
            Ok(stored) => (outcome, stored.last_seq()),
            Err(e) => {
                // The e-mail may have gone out; the notice stays pending and the next round
                // sends it again with the same Message-ID, which receivers deduplicate.
                tracing::error!(notification_id = %n.id, error = %e, "could not record the delivery outcome");
                (outcome, None)
            }
        }
    }

    /// The annual report e-mail for an issue: the report rebuilt from the log as of the
    /// issue (blocking, so off the async threads), checked against the recorded content
    /// hash, and rendered with its charts as inline images. A report that no longer hashes
    /// to what was issued (the report code changed since) is not sent as if it were the
    /// issued one: the attempt fails, visibly, with that reason.
    async fn annual_report_email(&self, issue: &IssuedReport) -> Result<Arc<Rendered>, SendError> {
        let me = &self.inner;
        let mut cached = me.report_email.lock().await;
        if let Some((id, r)) = cached.as_ref() {
            if *id == issue.id {
                return Ok(r.clone());
            }
        }
        let store = me.store.clone();
        let keys = me.keys.clone();
        let year = issue.event.year;
        let as_of = issue.event.as_of_seq;
        let report =
            tokio::task::spawn_blocking(move || build_report(store.as_ref(), &keys, year, as_of))
                .await
                .map_err(|e| SendError::Build(format!("building the report failed: {e}")))?
                .map_err(|e| SendError::Build(format!("building the report failed: {e}")))?;
        if content_hash(&report) != issue.event.content_hash {
            tracing::error!(
                year,
                seq = issue.seq,
                "the rebuilt annual report does not match its recorded content hash; not mailed"
            );
            return Err(SendError::Build(format!(
                "the annual report for {year} rebuilt as of seq {as_of} does not match the content hash recorded when it was issued"
            )));
        }
        let mail = render_email(&report, issue, &links::report_link(&me.base_url, year));
        let rendered = Arc::new(Rendered {
            subject: avvik_notifiers::one_line(&mail.subject, 400),
            text: mail.text,
            html: mail.html,
            images: mail
                .images
                .into_iter()
                .map(|i| InlineImage {
                    content_id: i.content_id,
                    filename: i.filename,
                    content_type: i.content_type.to_string(),
                    body: i.body,
                })
                .collect(),
        });
        *cached = Some((issue.id, rendered.clone()));
        Ok(rendered)
    }

    /// The background loop: a round whenever the log grows (new reports, classifications)
    /// and every `poll_interval_s` (reminders coming due, retries), until shutdown.
    async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut changes = self.inner.outbox.subscribe();
        let mut tick = tokio::time::interval(self.inner.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = changes.changed() => {}
                _ = tick.tick() => {}
            }
            if *shutdown.borrow() {
                break;
            }
            if !self.is_ready() {
                continue;
            }
            let now = self.inner.clock.now();
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = self.deliver_pending_once(now) => {}
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Sent,
    Failed,
    Abandoned,
}

/// `avvik send-test-email --to ADDRESS`: one e-mail through the configured transport,
/// nothing recorded. Returns where it went.
pub async fn send_test_email(config: &Config, to: &str) -> anyhow::Result<String> {
    use anyhow::Context;
    let to = crate::domain::EmailAddress::parse(to)
        .with_context(|| format!("`{to}` is not an e-mail address"))?;
    let mailer = Mailer::new(&mailer_settings(config))?;
    let rendered = render(&NoticeContent::Test {
        sent_at: avvik_notifiers::time::stockholm(Utc::now()),
    })?;
    let email = OutgoingEmail {
        to: to.to_string(),
        message_id: message_id_for(Uuid::now_v7(), &config.mail.from),
        rendered,
    };
    mailer
        .send(&email)
        .await
        .context("sending the test e-mail")?;
    Ok(match config.mail.transport {
        MailTransport::File => format!(
            "written to {} (mail.transport = \"file\")",
            config.mail.outbox_dir.display()
        ),
        MailTransport::Smtp => format!(
            "accepted by {}:{}",
            config.mail.smtp.host, config.mail.smtp.port
        ),
    })
}
