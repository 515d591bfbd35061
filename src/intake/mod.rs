//! E-mail intake: mail to the deviation address becomes deviations and comments, through
//! one pipeline fed by three channels — the IMAP collector (`imap`), the MTA pipe
//! (`avvik intake`, `client`) and the upload endpoint (`http`).
//!
//! # What happens to a message
//! `parse::analyze` (pure, fuzzed) gives a verdict:
//! - **ignore** — auto-replies and bounces (`Auto-Submitted` other than `no`,
//!   `Precedence: bulk|junk|list`, `X-Autoreply`…, delivery/disposition reports,
//!   MAILER-DAEMON/postmaster senders or an empty Return-Path, mail from avvik's own
//!   addresses): nothing is created and nothing is answered; an `EmailIgnored` event, a log
//!   line and `avvik_intake_ignored_total{reason}` record it.
//! - **quarantine** — unparseable, no usable sender, over `intake.max_message_bytes`, an
//!   attachment over `intake.max_attachment_bytes`: the raw bytes go to
//!   `quarantine/<sha256>.eml`, then an `EmailQuarantined` event (with `notify_role: ciso`)
//!   is appended; the staff API lists it for manual handling.
//! - **accept** — a comment when the subject carries `[AVV-YYYY-NNNN]` or In-Reply-To /
//!   References name a Message-ID avvik sent about a deviation, *and* the sender is that
//!   deviation's reporter or a staff user allowed to comment on it (a stranger's mail never
//!   lands in a confidential case: it becomes a new deviation instead). Otherwise a new
//!   deviation, channel e-mail: subject → title, text body (HTML-only mail rendered as
//!   text with html2text, links kept; forwarded messages appended; a text in an unknown
//!   charset read as Windows-1252) → description, From → reporter, Date → discovery time
//!   (when within the last 30 days). A reply's comment is its own words, the quoted
//!   original cut off. The notifications outbox sends the reporter the
//!   receipt, as for any report with a known e-mail address. Attachments go to
//!   `attachments/<sha256>` first; an `EmailReceived` event lists them on the deviation.
//!
//! # Exactly once, without multi-stream transactions
//! A message's key is its normalized Message-ID, or the SHA-256 of its raw bytes when it
//! has none. Everything intake writes has an id derived from the key (UUIDv5):
//! - the new deviation's stream (appended with `ExpectedVersion::NoStream`) and its
//!   `DeviationReported` event id — a second filing is impossible, across restarts and
//!   copies of the message, because the store answers a known event id with the stored
//!   record and refuses an existing stream;
//! - a comment's event id (from key and deviation) — the store stores it once;
//! - the message's own stream and its disposition event (`EmailReceived`, `EmailIgnored`,
//!   `EmailQuarantined`).
//!
//! The disposition event is written after the deviation or comment. A crash in between
//! leaves the message unacknowledged (still in the mailbox; the MTA got no 202), and the
//! retry repeats both writes, the first of which the store answers from what it has. So
//! correctness never depends on the second write; it only makes the repeat cheap: a message
//! whose disposition is recorded answers `duplicate` at once. Files an event names are
//! fsynced before the event is appended. Messages are handled one at a time in a process
//! (the `serial` lock), so the answer (`created` vs `duplicate`) is exact too.
//!
//! The IMAP collector moves (or flags) a message only after `process` returned, i.e. after
//! its events are durable; a SIGKILL before that means the message is handled again,
//! which the keys make a duplicate. A transient failure (store, disk) is an error, never a
//! quarantine: the message stays and is retried.
//!
//! MIME, transfer encodings, charsets and RFC 2047/2231 are mail-parser's; a panic inside
//! it quarantines the message (see `parse::analyze`). An mbox envelope line before the
//! headers (Postfix local(8) pipes) is skipped.
//!
//! # For the staff UI
//! `Intake::view()` folds what intake wrote: `attachments(deviation_id)` (download at
//! `GET /api/v1/deviations/{reference}/attachments/{sha256}`), `quarantine()`,
//! `quarantined(id)` and `open_quarantine()` (raw message at
//! `GET /api/v1/intake/quarantine/{id}/raw`); `Intake::resolve_quarantined` records that a
//! person handled one; `Intake::release_quarantined` files one as a deviation (or a
//! comment) after all, without the size limits. Quarantine is for
//! `Action::HandleQuarantine` (the CISO).
//!
//! Known limits: sender addresses are taken as written (SPF/DKIM/DMARC are the receiving
//! MTA's job); the same Message-ID from two senders counts as one message; winmail.dat
//! (TNEF) is kept as an attachment, not unpacked.

/// How much larger than `intake.max_message_bytes` an upload may be: up to this factor it
/// is read and quarantined (raw bytes kept); beyond it the upload is refused with 413.
pub const UPLOAD_FACTOR: usize = 4;
/// The media type of a message handed to the intake endpoint.
pub const RFC822: &str = "message/rfc822";

pub mod blobs;
pub mod client;
pub mod imap;
pub mod parse;
pub mod projection;
pub mod record;
pub mod sender_auth;
pub mod text;

use std::sync::Arc;
use std::time::Duration;

use avvik_events::{RecordedEvent, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use self::blobs::BlobStore;
use self::parse::{Accepted, Analysis, Limits, Verdict};
use self::projection::IntakeProjection;
use self::record::*;
use crate::auth::{authorize, Action, Principal};
use crate::command::{CommandError, Current, Envelope, Executed, Load};
use crate::config::Config;
use crate::domain::deviation::CommentAdded;
use crate::domain::{Channel, Command, Deviation, EmailAddress, Fact, Reference};
use crate::service::{NewReport, ServiceError, Services};

/// How long a write waits for the intake view to show it.
const READ_YOUR_WRITES: Duration = Duration::from_secs(10);
/// A Date header older than this is not taken as the discovery time.
const DATE_TRUST_DAYS: i64 = 30;

/// What a message became, as the upload answers and the metrics count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Created,
    Comment,
    Duplicate,
    Ignored,
    Quarantined,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Comment => "comment",
            Outcome::Duplicate => "duplicate",
            Outcome::Ignored => "ignored",
            Outcome::Quarantined => "quarantined",
        }
    }
}

/// The answer to one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IntakeResult {
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<Reference>,
}

/// A failure that is worth retrying later (the message is not lost: it stays in the
/// mailbox, or the MTA keeps it queued).
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("the service is still starting")]
    NotReady,
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write {what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("intake task failed: {0}")]
    Task(String),
}

/// The actor prefix of a comment from an e-mail whose sender could not be verified
/// (followed by the address it claimed).
pub const UNVERIFIED_EMAIL_ACTOR: &str = crate::domain::Actor::UNVERIFIED_EMAIL_PREFIX;

/// Who is commenting by e-mail.
enum Commenter {
    Reporter,
    Staff(Principal),
}

/// The intake pipeline of one running application.
pub struct Intake {
    services: Services,
    limits: Limits,
    own_addresses: Vec<String>,
    /// `intake.trusted_authserv_ids`: whose `Authentication-Results` are believed.
    trusted_authserv_ids: Vec<String>,
    blobs: BlobStore,
    view: Arc<IntakeProjection>,
    serial: tokio::sync::Mutex<()>,
}

impl Intake {
    pub fn new(services: Services, config: &Config, view: Arc<IntakeProjection>) -> Self {
        let mut own: Vec<String> = [
            config.mail.from.as_str(),
            config.mail.reply_to.as_str(),
            config.intake.imap.user.as_str(),
        ]
        .into_iter()
        .filter_map(EmailAddress::parse)
        .map(|a| a.as_str().to_lowercase())
        .collect();
        own.dedup();
        let blobs = BlobStore::for_store(services.store.as_ref(), &config.store.data_dir);
        Self {
            services,
            limits: Limits {
                max_message_bytes: config.intake.max_message_bytes,
                max_attachment_bytes: config.intake.max_attachment_bytes,
            },
            own_addresses: own,
            trusted_authserv_ids: config.intake.trusted_authserv_ids.clone(),
            blobs,
            view,
            serial: tokio::sync::Mutex::new(()),
        }
    }

    /// Waits until the register and the intake view have caught up with the log (at
    /// start-up), so the first messages are not answered "not ready".
    pub async fn ready(&self) {
        while !(self.services.register.is_ready() && self.view.is_ready()) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    pub fn view(&self) -> &Arc<IntakeProjection> {
        &self.view
    }

    /// Handles one raw message. `Ok` means its outcome is durable (and the message can be
    /// acknowledged); `Err` means try again later.
    pub async fn process(&self, raw: Vec<u8>, source: Source) -> Result<IntakeResult, IntakeError> {
        let limits = self.limits;
        let own = self.own_addresses.clone();
        let (analysis, raw) =
            tokio::task::spawn_blocking(move || (parse::analyze(&raw, &limits, &own), raw))
                .await
                .map_err(|e| IntakeError::Task(e.to_string()))?;
        self.handle(analysis, raw, source).await
    }

    /// Handles a message of which only the headers could be fetched (too large to fetch
    /// whole): it is quarantined with those headers, unless it is an auto-reply.
    pub async fn process_headers_only(
        &self,
        header_bytes: Vec<u8>,
        full_size: usize,
        source: Source,
    ) -> Result<IntakeResult, IntakeError> {
        let analysis = parse::analyze_headers_only(&header_bytes, full_size, &self.own_addresses);
        self.handle(analysis, header_bytes, source).await
    }

    async fn handle(
        &self,
        a: Analysis,
        raw: Vec<u8>,
        source: Source,
    ) -> Result<IntakeResult, IntakeError> {
        let _one_at_a_time = self.serial.lock().await;
        if !self.services.register.is_ready() || !self.view.is_ready() {
            return Err(IntakeError::NotReady);
        }
        let stream = message_stream(&a.key);
        let result = if let Some(first) = self.services.store.read_stream(stream, 1)?.first() {
            IntakeResult {
                outcome: Outcome::Duplicate,
                reference: first
                    .data
                    .get("reference")
                    .and_then(|v| v.as_str())
                    .and_then(Reference::parse),
            }
        } else {
            let facts = MessageFacts {
                key: a.key.clone(),
                message_id: a.message_id.clone(),
                source,
                raw_sha256: a.raw_sha256.clone(),
                raw_size: a.raw_size as u64,
                from: a.from.clone(),
                subject: a.subject.clone(),
            };
            match a.verdict {
                Verdict::Ignore(reason) => {
                    let rec = EmailIgnored {
                        message: facts,
                        reason,
                    };
                    self.record(&a.key, EMAIL_IGNORED, &rec).await?;
                    metrics::counter!("avvik_intake_ignored_total", "reason" => reason.as_str())
                        .increment(1);
                    tracing::info!(key = %a.key, reason = reason.as_str(), "e-mail ignored: machine-generated, not answered");
                    IntakeResult {
                        outcome: Outcome::Ignored,
                        reference: None,
                    }
                }
                Verdict::Quarantine(reason) => {
                    let blobs = self.blobs.clone();
                    let sha = a.raw_sha256.clone();
                    on_disk("the quarantined message", move || {
                        blobs.put_quarantined(&sha, &raw)
                    })
                    .await?;
                    let kind = reason.as_str();
                    let rec = EmailQuarantined {
                        message: facts,
                        reason_sv: reason.message_sv(),
                        reason,
                        file: BlobStore::quarantine_name(&a.raw_sha256),
                        notify_role: "ciso".into(),
                    };
                    self.record(&a.key, EMAIL_QUARANTINED, &rec).await?;
                    metrics::counter!("avvik_intake_quarantined_total", "reason" => kind)
                        .increment(1);
                    tracing::warn!(key = %a.key, reason = kind, "e-mail quarantined for manual handling");
                    IntakeResult {
                        outcome: Outcome::Quarantined,
                        reference: None,
                    }
                }
                Verdict::Accept(accepted) => self.accept(&a.key, facts, *accepted).await?,
            }
        };
        metrics::counter!(
            "avvik_intake_messages_total",
            "source" => source.as_str(),
            "outcome" => result.outcome.as_str()
        )
        .increment(1);
        tracing::info!(
            key = %a.key,
            source = source.as_str(),
            outcome = result.outcome.as_str(),
            reference = result.reference.map(|r| r.to_string()).unwrap_or_default(),
            "e-mail handled"
        );
        Ok(result)
    }

    async fn accept(
        &self,
        key: &str,
        facts: MessageFacts,
        a: Accepted,
    ) -> Result<IntakeResult, IntakeError> {
        let filed = self.file(key, a).await?;
        let outcome = filed.outcome();
        let reference = filed.reference;
        self.record(key, EMAIL_RECEIVED, &filed.into_record(facts))
            .await?;
        Ok(IntakeResult {
            outcome,
            reference: Some(reference),
        })
    }

    /// Files an accepted message: its attachments kept, then a comment on the deviation
    /// it answers or a new report.
    async fn file(&self, key: &str, a: Accepted) -> Result<Filed, IntakeError> {
        let target = self.thread_target(&a);
        let attachments: Vec<AttachmentRef> = a
            .attachments
            .iter()
            .map(|x| AttachmentRef {
                sha256: x.sha256.clone(),
                filename: x.filename.clone(),
                content_type: x.content_type.clone(),
                size: x.bytes.len() as u64,
                inline: x.inline,
            })
            .collect();
        // Kept under the deviation they came with, sealed with its key (gallring removes them).
        let deviation_id = target
            .as_ref()
            .map(|(d, _)| d.id)
            .unwrap_or_else(|| deviation_stream(key));
        let blobs = self.blobs.clone();
        let files = a.attachments;
        let keys = self.services.keys.clone();
        let store = self.services.store.clone();
        on_disk("an attachment", move || {
            files.iter().try_for_each(|f| {
                let sealed = keys.seal_file(store.as_ref(), deviation_id, &f.sha256, &f.bytes)?;
                blobs.put_deviation_attachment(deviation_id, &f.sha256, &sealed)
            })
        })
        .await?;
        let (disposition, deviation, reference) = match target {
            Some((d, who)) => {
                // A From address is only who it claims to be when the trusted MTA says so;
                // otherwise the comment is kept as an unverified e-mail, never as the
                // staff member's (or, unmarked, the reporter's) own words.
                let verdict = sender_auth::verify(
                    &a.authentication_results,
                    a.reporter.email.as_str(),
                    &self.trusted_authserv_ids,
                );
                let unverified = !verdict.is_verified();
                if let sender_auth::Verdict::Unverified(why) = &verdict {
                    tracing::info!(reference = %d.reference, reason = why, "e-mail comment kept as unverified");
                }
                let (actor, from_reporter) = match (&who, unverified) {
                    (Commenter::Reporter, _) => (crate::domain::Actor::REPORTER.to_string(), true),
                    (Commenter::Staff(p), false) => (p.actor(), false),
                    (Commenter::Staff(_), true) => (
                        format!("{UNVERIFIED_EMAIL_ACTOR}{}", a.reporter.email.as_str()),
                        false,
                    ),
                };
                let cmd = Command::Comment(CommentAdded {
                    text: a.reply_text,
                    to_reporter: false,
                    from_reporter,
                    unverified_email: unverified,
                });
                self.services
                    .execute_once(d.reference, cmd, &actor, comment_event_id(key, d.id))
                    .await?;
                (Disposition::Comment, d.id, d.reference)
            }
            None => {
                let now = self.services.clock.now();
                // Who reported is in the sealed report, not in the clear envelope.
                let actor = crate::domain::Actor::REPORTER.to_string();
                let report = NewReport {
                    title: a.title,
                    description: a.description,
                    occurred_at: None,
                    discovered_at: Some(discovered_at(a.sent_at, now)),
                    sector: None,
                    asset: None,
                    personal_data: false,
                    reporter: Some(a.reporter),
                    channel: Channel::Email,
                };
                let filed = self
                    .services
                    .report_once(report, &actor, deviation_stream(key), report_event_id(key))
                    .await?;
                (Disposition::Created, filed.id, filed.reference)
            }
        };
        Ok(Filed {
            disposition,
            deviation,
            reference,
            attachments,
        })
    }

    /// The deviation a reply belongs to, if the sender may add to it.
    fn thread_target(&self, a: &Accepted) -> Option<(Deviation, Commenter)> {
        let reg = self.services.register.read();
        let view = self.view.read();
        let named = a
            .subject_references
            .iter()
            .filter_map(|r| reg.by_reference(*r))
            .chain(
                a.replied_to
                    .iter()
                    .filter_map(|id| view.sent_about(id))
                    .filter_map(|id| reg.get(id)),
            );
        for d in named {
            // A gallrad deviation takes nothing more: mail about it becomes a new report.
            if d.shredded.is_some() {
                continue;
            }
            let is_reporter = d.reporter.as_ref().is_some_and(|r| {
                r.email
                    .as_str()
                    .eq_ignore_ascii_case(a.reporter.email.as_str())
            });
            if is_reporter {
                return Some((d.clone(), Commenter::Reporter));
            }
            let staff = reg
                .accounts
                .by_email(&a.reporter.email)
                .filter(|acc| !acc.disabled)
                .map(Principal::from_account);
            if let Some(p) = staff {
                if authorize(&p, Action::Comment, Some(d)) {
                    return Some((d.clone(), Commenter::Staff(p)));
                }
            }
        }
        None
    }

    /// Appends the message's disposition (idempotent: derived stream and event id).
    async fn record<T: Serialize>(
        &self,
        key: &str,
        event_type: &'static str,
        data: &T,
    ) -> Result<RecordedEvent, IntakeError> {
        let fact = Fact {
            type_name: event_type,
            data: to_data(event_type, data)?,
        };
        let stream = message_stream(key);
        let env = Envelope::new(stream, INTAKE_ACTOR).with_id(disposition_event_id(key));
        // A message is disposed of once: a stream that exists already holds its disposition.
        let outcome = self
            .services
            .commands()
            .execute(&env, self.message_loader(stream), |records, _ctx| {
                Ok(if records.is_empty() {
                    vec![fact.clone()]
                } else {
                    Vec::new()
                })
            })
            .await?;
        let rec = match outcome {
            Executed::Committed { records, .. } => records.into_iter().next(),
            Executed::Unchanged(records) => records.into_iter().next(),
        }
        .ok_or_else(|| IntakeError::Task("append returned no record".into()))?;
        self.view.wait_for(rec.seq, READ_YOUR_WRITES).await;
        Ok(rec)
    }

    /// Marks a quarantined message as handled, with a note.
    pub async fn resolve_quarantined(
        &self,
        id: Uuid,
        note: String,
        actor: &str,
    ) -> Result<bool, IntakeError> {
        let fact = Fact {
            type_name: EMAIL_QUARANTINE_RESOLVED,
            data: to_data(EMAIL_QUARANTINE_RESOLVED, &EmailQuarantineResolved { note })?,
        };
        let resolved = match self.view.read().quarantined(id) {
            None => return Ok(false),
            Some(e) => e.resolved.is_some(),
        };
        if resolved {
            return Ok(true);
        }
        let env = Envelope::new(id, actor);
        let outcome = self
            .services
            .commands()
            .execute(&env, self.message_loader(id), |records, _ctx| {
                // Someone may have resolved it a moment ago.
                Ok(if is_resolved(records) {
                    Vec::new()
                } else {
                    vec![fact.clone()]
                })
            })
            .await?;
        if let Some(rec) = outcome.records().last() {
            self.view.wait_for(rec.seq, READ_YOUR_WRITES).await;
        }
        Ok(true)
    }

    /// Releases a quarantined message (the CISO's decision): it is filed as if it had
    /// passed, without the size limits. A message that still cannot be read as a report
    /// (no sender, not parseable, only its headers fetched) becomes a new deviation made
    /// from what is known of it, reported by `actor`, pointing to the original in the
    /// quarantine. The filing and the resolution (`note`, and the reference) are stored
    /// together on the message's stream. Safe to retry: the deviation's ids come from the
    /// message, so a second try after a crash files the same one.
    pub async fn release_quarantined(
        &self,
        id: Uuid,
        note: String,
        actor: &str,
    ) -> Result<Released, IntakeError> {
        let _one_at_a_time = self.serial.lock().await;
        if !self.services.register.is_ready() || !self.view.is_ready() {
            return Err(IntakeError::NotReady);
        }
        let Some(entry) = self.view.read().quarantined(id).cloned() else {
            return Ok(Released::NotFound);
        };
        if entry.resolved.is_some() {
            return Ok(Released::AlreadyHandled);
        }
        let q = entry.record;
        let key = q.message.key.clone();
        let blobs = self.blobs.clone();
        let sha = q.message.raw_sha256.clone();
        let own = self.own_addresses.clone();
        let unlimited = Limits {
            max_message_bytes: usize::MAX,
            max_attachment_bytes: usize::MAX,
        };
        let headers_only = matches!(q.reason, parse::QuarantineReason::HeadersOnly { .. });
        let analysis = on_disk("the quarantined message", move || {
            blobs
                .read_quarantined(&sha)
                .map(|raw| (!headers_only).then(|| parse::analyze(&raw, &unlimited, &own)))
        })
        .await?;
        let filed = match analysis.map(|a| a.verdict) {
            Some(Verdict::Accept(accepted)) => self.file(&key, *accepted).await?,
            _ => {
                let from = q.message.from.as_deref().unwrap_or("okänd");
                let report = NewReport {
                    title: quarantine_title(q.message.subject.as_deref()),
                    description: format!(
                        "Registrerad från ett e-postmeddelande i karantänen, som inte kunde \
                         tas emot automatiskt: {} Avsändare: {from}. Originalet finns i \
                         karantänen (e-postkarantänen, mottaget {}).",
                        q.reason_sv,
                        entry.received_at.format("%Y-%m-%d %H:%M UTC")
                    ),
                    occurred_at: None,
                    discovered_at: Some(entry.received_at),
                    sector: None,
                    asset: None,
                    personal_data: false,
                    reporter: None,
                    channel: Channel::Email,
                };
                let filed = self
                    .services
                    .report_once(report, actor, deviation_stream(&key), report_event_id(&key))
                    .await?;
                Filed {
                    disposition: Disposition::Created,
                    deviation: filed.id,
                    reference: filed.reference,
                    attachments: Vec::new(),
                }
            }
        };
        let result = IntakeResult {
            outcome: filed.outcome(),
            reference: Some(filed.reference),
        };
        let what = match filed.disposition {
            Disposition::Created => "ny avvikelse",
            Disposition::Comment => "kommentar till",
        };
        let resolution = EmailQuarantineResolved {
            note: format!(
                "Släppt ur karantänen som {what} {}. {note}",
                filed.reference
            )
            .trim_end()
            .to_string(),
        };
        let events = vec![
            Fact {
                type_name: EMAIL_RECEIVED,
                data: to_data(EMAIL_RECEIVED, &filed.into_record(q.message))?,
            },
            Fact {
                type_name: EMAIL_QUARANTINE_RESOLVED,
                data: to_data(EMAIL_QUARANTINE_RESOLVED, &resolution)?,
            },
        ];
        let env = Envelope::new(id, actor);
        let outcome = self
            .services
            .commands()
            .execute(&env, self.message_loader(id), |records, _ctx| {
                // Resolved by someone else a moment ago; the filing above is idempotent.
                Ok(if is_resolved(records) {
                    Vec::new()
                } else {
                    events.clone()
                })
            })
            .await?;
        if matches!(outcome, Executed::Unchanged(_)) {
            return Ok(Released::AlreadyHandled);
        }
        if let Some(rec) = outcome.records().last() {
            self.view.wait_for(rec.seq, READ_YOUR_WRITES).await;
        }
        let reference = result.reference.map(|r| r.to_string()).unwrap_or_default();
        tracing::info!(%id, %reference, %actor, "quarantined e-mail released");
        Ok(Released::Filed(result))
    }
}

/// Runs blob I/O off the async threads; `what` names the file in the error.
async fn on_disk<T: Send + 'static>(
    what: &'static str,
    io: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, IntakeError> {
    tokio::task::spawn_blocking(io)
        .await
        .map_err(|e| IntakeError::Task(e.to_string()))?
        .map_err(|source| IntakeError::Io { what, source })
}

/// Has a quarantined message's stream been resolved?
fn is_resolved(records: &[RecordedEvent]) -> bool {
    records
        .iter()
        .any(|r| r.event_type == EMAIL_QUARANTINE_RESOLVED)
}

impl From<CommandError> for IntakeError {
    fn from(e: CommandError) -> Self {
        IntakeError::Service(e.into())
    }
}

impl Intake {
    /// Loads a message's stream as stored.
    fn message_loader(&self, stream: Uuid) -> Load<'_, Vec<RecordedEvent>, IntakeError> {
        Box::new(move || {
            Box::pin(async move {
                let (records, version) = self.services.commands().read_stream(stream)?;
                Ok(Current::new(records, version))
            })
        })
    }
}

fn to_data<T: Serialize>(event_type: &str, data: &T) -> Result<serde_json::Value, IntakeError> {
    serde_json::to_value(data).map_err(|e| IntakeError::Task(format!("encoding {event_type}: {e}")))
}

/// What filing a message did.
struct Filed {
    disposition: Disposition,
    deviation: Uuid,
    reference: Reference,
    attachments: Vec<AttachmentRef>,
}

impl Filed {
    fn outcome(&self) -> Outcome {
        match self.disposition {
            Disposition::Created => Outcome::Created,
            Disposition::Comment => Outcome::Comment,
        }
    }

    fn into_record(self, message: MessageFacts) -> EmailReceived {
        EmailReceived {
            message,
            disposition: self.disposition,
            deviation: self.deviation,
            reference: self.reference,
            attachments: self.attachments,
        }
    }
}

/// What releasing a quarantined message came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    /// Filed: a new deviation, or a comment on the one it answers.
    Filed(IntakeResult),
    /// Someone has handled it already (resolved or released).
    AlreadyHandled,
    NotFound,
}

/// The title of a deviation made from a quarantined message that could not be read as a
/// report: its subject on one line, bounded, or a Swedish stand-in.
fn quarantine_title(subject: Option<&str>) -> String {
    let title = text::bounded_line(subject.unwrap_or_default(), parse::TITLE_MAX);
    if title.is_empty() {
        "E-postmeddelande från karantänen".into()
    } else {
        title
    }
}

/// The entry point of the fuzz target (`fuzz/fuzz_targets/intake.rs`) and of the test
/// that replays its corpus: everything intake does to untrusted bytes before any I/O.
pub fn fuzz_target(raw: &[u8], limits: &Limits) -> Analysis {
    let a = parse::analyze(raw, limits, &["avvik@kommunen.example".to_string()]);
    if let Verdict::Accept(acc) = &a.verdict {
        // The pieces a comment and a thread lookup use, too.
        let _ = parse::strip_quoted(&acc.description);
        let _ = parse::references_in(&acc.title);
    }
    a
}

/// The Date header, when it is plausible, else now: mail can sit in queues, and the
/// statutory clocks run from discovery.
fn discovered_at(sent: Option<DateTime<Utc>>, now: DateTime<Utc>) -> DateTime<Utc> {
    match sent {
        Some(t) if t <= now && now - t <= chrono::Duration::days(DATE_TRUST_DAYS) => t,
        _ => now,
    }
}
