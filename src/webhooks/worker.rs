//! Delivery: the handle the application keeps (`Webhooks`), one delivery round tests can
//! drive (`deliver_pending_once`), the background loop around it, and recording what
//! happened to each delivery as an event. Mirrors the e-mail worker (`notify::worker`):
//! the same retry policy and knobs, the same round, the same recording.

use std::sync::Arc;
use std::time::Duration;

use avvik_events::EventStore;
use avvik_notifiers::RetryPolicy;
use chrono::{DateTime, Utc};
use tokio::sync::watch;
use uuid::Uuid;

use super::events::{
    DeliveryHead, WebhookAbandoned, WebhookDelivered, WebhookFailed, WEBHOOK_ABANDONED,
    WEBHOOK_DELIVERED, WEBHOOK_FAILED,
};
use super::outbox::{
    DueDelivery, Intent, Subscription, WebhookHealth, WebhookOutbox, WebhookOutboxProjection,
};
use super::payload::{
    clear_data, signature, Payload, DELIVERY_HEADER, EVENT_HEADER, PAYLOAD_VERSION,
    SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
use crate::clock::Clock;
use crate::command::{stateless, CommandError, CommandHandler, Envelope};
use crate::config::{Config, ConfigError};
use crate::domain::Fact;

/// Actor of the events delivery writes.
const ACTOR: &str = crate::domain::System::Webhooks.as_str();
/// How long a round waits for the outbox to fold the log's head (or its own events).
const CATCH_UP: Duration = Duration::from_secs(10);

/// One configured webhook, ready to send.
pub struct Webhook {
    pub name: String,
    url: reqwest::Url,
    secret: Vec<u8>,
    max_attempts: u32,
    timeout: Duration,
    client: reqwest::Client,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("name", &self.name)
            .field("url", &"<redacted>")
            .field("secret", &"<redacted>")
            .field("max_attempts", &self.max_attempts)
            .finish()
    }
}

/// What one delivery round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WebhookReport {
    pub delivered: usize,
    pub failed: usize,
    pub abandoned: usize,
    /// Never tried before the give-up time; logged, not sent.
    pub expired: usize,
}

struct Inner {
    store: Arc<dyn EventStore>,
    clock: Arc<dyn Clock>,
    outbox: Arc<WebhookOutboxProjection>,
    hooks: Vec<Webhook>,
    policy: RetryPolicy,
    concurrency: usize,
    poll_interval: Duration,
    /// Serialises rounds (the background loop and tests driving rounds).
    round: tokio::sync::Mutex<()>,
}

/// Webhook delivery for the running application. Cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

/// How an attempt ended, as far as HTTP goes.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    Status(u16),
    /// No answer: English, without the URL.
    Transport(String),
}

/// What an answer means for the delivery.
#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    Delivered(u16),
    /// Worth another attempt: 5xx, 408, 425, 429, a timeout, no connection.
    Retry {
        error: String,
        status: Option<u16>,
    },
    /// The receiver will not take it (another 4xx, a redirect): no retry helps.
    Refused {
        error: String,
        status: u16,
    },
}

fn verdict(answer: Answer) -> Verdict {
    match answer {
        Answer::Status(s) if (200..300).contains(&s) => Verdict::Delivered(s),
        Answer::Status(s) if s >= 500 || matches!(s, 408 | 425 | 429) => Verdict::Retry {
            error: format!("HTTP {s}"),
            status: Some(s),
        },
        Answer::Status(s) => Verdict::Refused {
            error: format!("HTTP {s}: refused by the receiver"),
            status: s,
        },
        Answer::Transport(error) => Verdict::Retry {
            error,
            status: None,
        },
    }
}

/// A transport error in words, without the URL (it may carry a token).
fn describe(e: reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {} s", timeout.as_secs());
    }
    let what = if e.is_connect() {
        "could not connect"
    } else {
        "the request failed"
    };
    let mut out = what.to_string();
    let e = e.without_url();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Delivered,
    Failed,
    Abandoned,
}

impl Webhooks {
    /// The configured webhooks (secrets read now: a missing file or variable is an error
    /// naming the key) over `outbox`, and the delivery loop when there is any webhook,
    /// while this node holds the webhooks duty.
    pub fn start(
        config: &Config,
        store: Arc<dyn EventStore>,
        clock: Arc<dyn Clock>,
        outbox: Arc<WebhookOutboxProjection>,
        duties: &crate::duty::Duties,
    ) -> Result<Self, ConfigError> {
        let me = Self::new(config, store, clock, outbox)?;
        if !me.inner.hooks.is_empty() {
            let w = me.clone();
            duties.run(crate::duty::WEBHOOKS, move |stop| {
                tokio::spawn(w.clone().run(stop))
            });
        }
        Ok(me)
    }

    /// The same without the background loop: rounds run only when called (tests).
    pub fn new(
        config: &Config,
        store: Arc<dyn EventStore>,
        clock: Arc<dyn Clock>,
        outbox: Arc<WebhookOutboxProjection>,
    ) -> Result<Self, ConfigError> {
        let mut hooks = Vec::with_capacity(config.webhooks.len());
        for (i, w) in config.webhooks.iter().enumerate() {
            let secret = w.resolve_secret(i)?.into_bytes();
            // Validated by `Config::validate`.
            let url = reqwest::Url::parse(&w.url).map_err(|_| {
                ConfigError(format!("key `webhooks[{i}].url`: expected an https:// URL"))
            })?;
            let timeout = Duration::from_secs(w.timeout_s.max(1));
            let client = reqwest::Client::builder()
                .timeout(timeout)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("avvik/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| ConfigError(format!("webhook {:?}: HTTP client: {e}", w.name)))?;
            hooks.push(Webhook {
                name: w.name.clone(),
                url,
                secret,
                max_attempts: w.max_attempts.max(1),
                timeout,
                client,
            });
        }
        let n = &config.notifications;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                clock,
                outbox,
                hooks,
                policy: RetryPolicy {
                    first: Duration::from_secs(n.retry_first_s),
                    max: Duration::from_secs(n.retry_max_s),
                    give_up_after: Duration::from_secs(n.give_up_after_h.saturating_mul(3600)),
                },
                concurrency: n.concurrency.max(1),
                poll_interval: Duration::from_secs(n.poll_interval_s.max(1)),
                round: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The fold's view of the configured webhooks.
    pub fn subscriptions(config: &Config) -> Arc<Vec<Subscription>> {
        Arc::new(Subscription::from_config(&config.webhooks))
    }

    /// An outbox projection that catches up on its own (for `new` in tests; the service
    /// catches it up with the other projections).
    pub fn outbox(
        config: &Config,
        store: Arc<dyn EventStore>,
        keys: Arc<crate::privacy::Keyring>,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<WebhookOutboxProjection> {
        let subs = Self::subscriptions(config);
        WebhookOutboxProjection::start(
            move || WebhookOutbox::new(subs.clone()),
            "webhook outbox",
            store,
            keys,
            shutdown,
        )
    }

    pub fn is_ready(&self) -> bool {
        self.inner.outbox.is_ready()
    }

    /// Every configured webhook's standing (none configured: empty).
    pub fn health(&self) -> Vec<WebhookHealth> {
        self.inner.outbox.read().health()
    }

    /// Waits (a bounded time) until the outbox has folded `seq`.
    pub async fn wait_for(&self, seq: u64) -> bool {
        self.inner.outbox.wait_for(seq, CATCH_UP).await
    }

    async fn caught_up(&self) -> bool {
        let head = self.inner.store.head().seq;
        self.inner.outbox.wait_for(head, CATCH_UP).await
    }

    fn give_up_after(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.inner.policy.give_up_after)
            .unwrap_or(chrono::Duration::hours(48))
    }

    /// One delivery round at `now`: every due delivery gets one attempt, and each outcome
    /// is stored (and folded) before this returns.
    pub async fn deliver_pending_once(&self, now: DateTime<Utc>) -> WebhookReport {
        let _round = self.inner.round.lock().await;
        let mut report = WebhookReport::default();
        if self.inner.hooks.is_empty() {
            return report;
        }
        // A round on a stale outbox could send what is already settled.
        if !self.caught_up().await {
            tracing::warn!(
                "the webhook outbox is behind the log; delivery waits for the next round"
            );
            return report;
        }
        let (due, expired) = self.inner.outbox.read().due(now, self.give_up_after());
        let expired_ids: Vec<Uuid> = expired.iter().map(|i| i.delivery_id).collect();
        // Forgotten right after, so each is logged once (again after a restart).
        self.log_expired(&expired, &mut report);
        self.inner.outbox.write().forget(&expired_ids);
        let mut last_seq = 0;
        let me = self.clone();
        let done = crate::notify::run_bounded(due, self.inner.concurrency, "webhook", move |d| {
            let me = me.clone();
            async move { me.deliver_one(d, now).await }
        })
        .await;
        for (outcome, seq) in done {
            last_seq = last_seq.max(seq.unwrap_or(0));
            match outcome {
                Outcome::Delivered => report.delivered += 1,
                Outcome::Failed => report.failed += 1,
                Outcome::Abandoned => report.abandoned += 1,
            }
        }
        if last_seq > 0 {
            self.inner.outbox.wait_for(last_seq, CATCH_UP).await;
        }
        report
    }

    /// Deliveries never tried in time: one warning per webhook and round (not one per
    /// delivery: a webhook added to a long log would flood the log), counted per webhook.
    fn log_expired(&self, expired: &[Intent], report: &mut WebhookReport) {
        let mut per_hook = vec![0usize; self.inner.hooks.len()];
        for i in expired {
            if let Some(n) = per_hook.get_mut(i.hook) {
                *n += 1;
            }
        }
        for (hook, n) in per_hook.into_iter().enumerate() {
            if n == 0 {
                continue;
            }
            report.expired += n;
            let name = self.inner.hooks[hook].name.clone();
            metrics::counter!("avvik_webhook_expired_total", "webhook" => name.clone())
                .increment(n as u64);
            tracing::warn!(
                webhook = %name,
                deliveries = n,
                give_up_after_h = self.inner.policy.give_up_after.as_secs() / 3600,
                "webhook deliveries not sent: their events are older than the give-up time and were never tried"
            );
        }
    }

    /// The body of a delivery: the event's clear fields from its stored record.
    async fn payload(&self, intent: &Intent) -> Result<Payload, String> {
        let hook = &self.inner.hooks[intent.hook];
        let records = self
            .inner
            .store
            .read_batch_async(intent.trigger_seq, 1)
            .await
            .map_err(|e| format!("reading event seq {}: {e}", intent.trigger_seq))?;
        let rec = records
            .into_iter()
            .next()
            .filter(|r| r.id == intent.trigger_event_id)
            .ok_or_else(|| format!("event seq {} is not in the log", intent.trigger_seq))?;
        Ok(Payload {
            version: PAYLOAD_VERSION,
            delivery_id: intent.delivery_id,
            webhook: hook.name.clone(),
            event_type: intent.event_type.to_string(),
            event_id: intent.trigger_event_id,
            seq: intent.trigger_seq,
            at: rec.at,
            deviation_id: intent.deviation_id,
            reference: intent.reference.map(|r| r.to_string()).unwrap_or_default(),
            data: clear_data(intent.event_type, &rec.data),
        })
    }

    /// One POST of a payload; what came back.
    async fn post(hook: &Webhook, intent: &Intent, body: Vec<u8>, now: DateTime<Utc>) -> Answer {
        let ts = now.timestamp();
        let sig = signature(&hook.secret, ts, &body);
        let sent = hook
            .client
            .post(hook.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(EVENT_HEADER, intent.event_type)
            .header(DELIVERY_HEADER, intent.delivery_id.to_string())
            .header(TIMESTAMP_HEADER, ts.to_string())
            .header(SIGNATURE_HEADER, sig)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(resp) => Answer::Status(resp.status().as_u16()),
            Err(e) => Answer::Transport(describe(e, hook.timeout)),
        }
    }

    /// One attempt for one delivery, and its event. Returns the seq of the stored event.
    async fn deliver_one(&self, due: DueDelivery, now: DateTime<Utc>) -> (Outcome, Option<u64>) {
        let me = &self.inner;
        let intent = &due.intent;
        let hook = &me.hooks[intent.hook];
        let attempt = due.attempts.saturating_add(1);
        let answer = match self.payload(intent).await {
            Ok(p) => Self::post(hook, intent, p.to_body(), now).await,
            Err(e) => Answer::Transport(e),
        };
        let head = DeliveryHead {
            delivery_id: intent.delivery_id,
            webhook: hook.name.clone(),
            deviation_id: intent.deviation_id,
            trigger_event_id: intent.trigger_event_id,
            trigger_seq: intent.trigger_seq,
            event_type: intent.event_type.to_string(),
            due_at: intent.due_at,
        };
        let reference = intent.reference.map(|r| r.to_string()).unwrap_or_default();
        let name = hook.name.clone();
        let age = (now - intent.due_at).to_std().unwrap_or_default();
        let (outcome, fact) = match verdict(answer) {
            Verdict::Delivered(status) => {
                metrics::counter!("avvik_webhook_delivered_total", "webhook" => name.clone())
                    .increment(1);
                tracing::info!(webhook = %name, %reference, event_type = intent.event_type, delivery_id = %intent.delivery_id, attempt, status, "webhook delivered");
                let e = WebhookDelivered {
                    head,
                    attempt,
                    status,
                };
                (Outcome::Delivered, Fact::new(WEBHOOK_DELIVERED, &e))
            }
            Verdict::Retry { error, status }
                if attempt < hook.max_attempts && !me.policy.gives_up(age) =>
            {
                let wait = chrono::Duration::from_std(me.policy.delay(attempt))
                    .unwrap_or(chrono::Duration::hours(1));
                metrics::counter!("avvik_webhook_failed_total", "webhook" => name.clone())
                    .increment(1);
                tracing::warn!(
                    webhook = %name, %reference, delivery_id = %intent.delivery_id, attempt,
                    %error, retry_in_s = wait.num_seconds(),
                    "webhook delivery failed; will retry"
                );
                let e = WebhookFailed {
                    head,
                    attempt,
                    error,
                    status,
                    next_retry_at: now + wait,
                };
                (Outcome::Failed, Fact::new(WEBHOOK_FAILED, &e))
            }
            Verdict::Retry { error, status } => {
                self.abandoned(&name, &reference, intent, attempt, &error);
                let e = WebhookAbandoned {
                    head,
                    attempts: attempt,
                    last_error: error,
                    status,
                };
                (Outcome::Abandoned, Fact::new(WEBHOOK_ABANDONED, &e))
            }
            Verdict::Refused { error, status } => {
                self.abandoned(&name, &reference, intent, attempt, &error);
                let e = WebhookAbandoned {
                    head,
                    attempts: attempt,
                    last_error: error,
                    status: Some(status),
                };
                (Outcome::Abandoned, Fact::new(WEBHOOK_ABANDONED, &e))
            }
        };
        let env = Envelope::new(intent.delivery_id, ACTOR)
            .expect_any()
            .at(now);
        let commands = CommandHandler::new(me.store.clone(), me.clock.clone());
        match commands
            .execute(&env, stateless(), |_, _ctx| {
                Ok::<_, CommandError>(vec![fact.clone()])
            })
            .await
        {
            Ok(stored) => (outcome, stored.last_seq()),
            Err(e) => {
                // The POST may have been taken; the delivery stays pending and the next
                // round sends it again with the same delivery id, for the receiver to
                // deduplicate.
                tracing::error!(webhook = %name, delivery_id = %intent.delivery_id, error = %e, "could not record the webhook delivery outcome");
                (outcome, None)
            }
        }
    }

    fn abandoned(&self, name: &str, reference: &str, intent: &Intent, attempts: u32, error: &str) {
        metrics::counter!("avvik_webhook_abandoned_total", "webhook" => name.to_string())
            .increment(1);
        tracing::warn!(
            webhook = %name, %reference, event_type = intent.event_type,
            delivery_id = %intent.delivery_id, attempts, %error,
            "webhook delivery abandoned"
        );
    }

    /// The background loop: a round whenever the log grows and every `poll_interval_s`
    /// (retries coming due), until shutdown.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_delivered_retried_or_refused() {
        assert_eq!(verdict(Answer::Status(200)), Verdict::Delivered(200));
        assert_eq!(verdict(Answer::Status(204)), Verdict::Delivered(204));
        for s in [500, 502, 503, 408, 425, 429] {
            assert!(
                matches!(verdict(Answer::Status(s)), Verdict::Retry { status: Some(x), .. } if x == s),
                "{s}"
            );
        }
        for s in [301, 400, 401, 403, 404, 410] {
            assert!(
                matches!(verdict(Answer::Status(s)), Verdict::Refused { status: x, .. } if x == s),
                "{s}"
            );
        }
        assert!(matches!(
            verdict(Answer::Transport("could not connect".into())),
            Verdict::Retry { status: None, .. }
        ));
    }
}
