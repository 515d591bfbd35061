//! Application services: turn a validated request into events through the decider and the
//! store, with optimistic concurrency, then wait for the register to show the result.

use std::sync::Arc;
use std::time::Duration;

use avvik_events::{EventStore, StoreError};
use rand::RngCore;
use uuid::Uuid;

use crate::clock::Clock;
use crate::command::{CommandError, CommandHandler, Ctx, Current, Envelope, Executed, Load};
use crate::domain::{
    decide, stockholm_year, Channel, Command, Deviation, DeviationEvent, DomainError, Reference,
    Reported, Reporter,
};
use crate::register::RegisterProjection;

/// How long a request waits for the register to show its own write.
const READ_YOUR_WRITES: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("the register is still being rebuilt")]
    NotReady,
    #[error("too many concurrent changes to the same deviation")]
    Contention,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A validated report from the form, the API or e-mail.
#[derive(Debug, Clone)]
pub struct NewReport {
    pub title: String,
    pub description: String,
    pub occurred_at: Option<chrono::DateTime<chrono::Utc>>,
    pub discovered_at: Option<chrono::DateTime<chrono::Utc>>,
    pub sector: Option<String>,
    pub asset: Option<String>,
    pub personal_data: bool,
    pub reporter: Option<Reporter>,
    pub channel: Channel,
}

/// What the reporter gets back.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Receipt {
    pub id: Uuid,
    pub reference: Reference,
    /// The private status token (shown once; only its hash is stored).
    pub status_token: String,
    pub seq: u64,
}

/// A report filed at most once (see `Services::report_once`).
#[derive(Debug, Clone)]
pub struct ReportedOnce {
    pub id: Uuid,
    pub reference: Reference,
    pub seq: u64,
    /// The private status token when this call filed the report; `None` when the report
    /// was already stored (only the token's hash is kept, so it cannot be shown again).
    pub status_token: Option<String>,
}

/// A command applied at most once (see `Services::execute_once`).
#[derive(Debug, Clone)]
pub struct ExecutedOnce {
    pub deviation: Deviation,
    /// False when the event was already stored by an earlier call.
    pub new: bool,
}

/// The parts of the application the services need.
#[derive(Clone)]
pub struct Services {
    pub store: Arc<dyn EventStore>,
    pub register: Arc<RegisterProjection>,
    pub clock: Arc<dyn Clock>,
    /// Derives status tokens (see `status_token_for`).
    pub secret: crate::secret::Secret,
    /// Seals and opens the personal fields of events (`crate::privacy`).
    pub keys: Arc<crate::privacy::Keyring>,
}

/// A fresh status token: 256 random bits, hex.
pub fn new_status_token() -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// The private status token of a deviation: hex HMAC-SHA256 of its id under a subkey of
/// the installation secret. Unguessable without the secret, yet derivable again later, so
/// the receipt e-mail (built by the outbox from the log, possibly after a restart) can
/// carry the status link although only the token's hash is stored.
pub fn status_token_for(secret: &crate::secret::Secret, deviation_id: Uuid) -> String {
    use hmac::{Hmac, Mac};
    let key = secret.derive("status-token");
    let mut mac =
        <Hmac<sha2::Sha256> as Mac>::new_from_slice(&key).expect("HMAC takes keys of any length");
    mac.update(deviation_id.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The reference a stored `DeviationReported` record carries.
fn reported_reference(rec: &avvik_events::RecordedEvent) -> Result<Reference, ServiceError> {
    rec.data
        .get("reference")
        .and_then(|v| v.as_str())
        .and_then(Reference::parse)
        .ok_or_else(|| {
            StoreError::Corrupt {
                seq: rec.seq,
                reason: "report without reference".into(),
            }
            .into()
        })
}

/// The stored form of a status token.
pub fn token_hash(token: &str) -> String {
    avvik_events::hash_hex(token.as_bytes())
}

impl Services {
    /// The one command path, over this store and clock.
    pub fn commands(&self) -> CommandHandler {
        CommandHandler::sealing(self.store.clone(), self.clock.clone(), self.keys.clone())
    }

    /// Loads a deviation from the register once the register has caught up with the log.
    fn load_deviation(&self, reference: Reference) -> Load<'_, Deviation, ServiceError> {
        Box::new(move || {
            Box::pin(async move {
                let head = self.store.head().seq;
                self.register.wait_for(head, READ_YOUR_WRITES).await;
                let d = self
                    .register
                    .read()
                    .by_reference(reference)
                    .cloned()
                    .ok_or(DomainError::NotFound)?;
                let version = d.version;
                Ok(Current::new(d, Some(version)))
            })
        })
    }

    /// A report as events on a new stream, numbered `n` of the reporting year.
    fn report_events(r: NewReport, token_hash: String, n: u64, ctx: &Ctx) -> Vec<DeviationEvent> {
        let now = ctx.now;
        let reported = Reported {
            reference: Reference::new(stockholm_year(now), n),
            title: r.title,
            description: r.description,
            occurred_at: r.occurred_at,
            discovered_at: r.discovered_at.unwrap_or(now),
            sector: r.sector,
            asset: r.asset,
            personal_data: r.personal_data,
            reporter: r.reporter,
            channel: r.channel,
            status_token_hash: token_hash,
            reported_at: now,
        };
        // A report on a new stream cannot be refused by the decider.
        decide(None, Command::Report(reported)).unwrap_or_default()
    }

    /// Files a new deviation; its reference is numbered in the same commit.
    pub async fn report(&self, r: NewReport, actor: &str) -> Result<Receipt, ServiceError> {
        let now = self.clock.now();
        let year = stockholm_year(now);
        let id = Uuid::now_v7();
        let token = status_token_for(&self.secret, id);
        let hash = token_hash(&token);
        let env = Envelope::new(id, actor).at(now);
        let stored: Vec<avvik_events::RecordedEvent> = self
            .commands()
            .execute_numbered::<_, ServiceError>(
                &env,
                Reference::counter_name(year),
                move |n, ctx| Self::report_events(r, hash, n, ctx),
            )
            .await?;
        let rec = stored.first().ok_or(ServiceError::Contention)?;
        let reference = reported_reference(rec)?;
        let seq = stored.last().map(|r| r.seq).unwrap_or(rec.seq);
        self.register.wait_for(seq, READ_YOUR_WRITES).await;
        Ok(Receipt {
            id,
            reference,
            status_token: token,
            seq,
        })
    }

    /// Files a new deviation on a stream and with an event id the caller derives from its
    /// input (e-mail intake: from the Message-ID), so the same input can never file two:
    /// a repeat gets the stored report back (the store is idempotent by event id, and the
    /// stream must not exist yet). The reference is numbered in the same commit; a repeat
    /// uses no number.
    pub async fn report_once(
        &self,
        r: NewReport,
        actor: &str,
        stream: Uuid,
        event_id: Uuid,
    ) -> Result<ReportedOnce, ServiceError> {
        let existing =
            |stored: &[avvik_events::RecordedEvent]| -> Result<ReportedOnce, ServiceError> {
                let rec = stored.first().ok_or(ServiceError::Contention)?;
                Ok(ReportedOnce {
                    id: stream,
                    reference: reported_reference(rec)?,
                    seq: rec.seq,
                    status_token: None,
                })
            };
        let commands = self.commands();
        let (before, _) = commands.read_stream(stream)?;
        if !before.is_empty() {
            return existing(&before);
        }
        let now = self.clock.now();
        let year = stockholm_year(now);
        let token = status_token_for(&self.secret, stream);
        let hash = token_hash(&token);
        let env = Envelope::new(stream, actor).with_id(event_id).at(now);
        let stored = match commands
            .execute_numbered::<_, ServiceError>(
                &env,
                Reference::counter_name(year),
                move |n, ctx| Self::report_events(r, hash, n, ctx),
            )
            .await
        {
            Ok(stored) => stored,
            // Filed meanwhile by a concurrent caller: still this input's one deviation.
            Err(ServiceError::Store(StoreError::Conflict { .. })) => {
                return existing(&commands.read_stream(stream)?.0);
            }
            Err(e) => return Err(e),
        };
        let rec = stored.first().ok_or(ServiceError::Contention)?;
        let reference = reported_reference(rec)?;
        let seq = stored.last().map(|r| r.seq).unwrap_or(rec.seq);
        self.register.wait_for(seq, READ_YOUR_WRITES).await;
        Ok(ReportedOnce {
            id: stream,
            reference,
            seq,
            // A concurrent identical call may also get the stored record back; only one
            // caller at a time per input (as intake does) makes this exact.
            status_token: Some(token),
        })
    }

    /// Like `execute`, but the command's event gets the caller's `event_id` (further events
    /// of the same command ids derived from it), so a repeat of the same input is stored
    /// once: the store answers a known event id with the stored record.
    pub async fn execute_once(
        &self,
        reference: Reference,
        cmd: Command,
        actor: &str,
        event_id: Uuid,
    ) -> Result<ExecutedOnce, ServiceError> {
        self.run(reference, cmd, actor, Some(event_id)).await
    }

    /// Runs a command against an existing deviation. Retries on a concurrent change.
    pub async fn execute(
        &self,
        reference: Reference,
        cmd: Command,
        actor: &str,
    ) -> Result<Deviation, ServiceError> {
        Ok(self.run(reference, cmd, actor, None).await?.deviation)
    }

    async fn run(
        &self,
        reference: Reference,
        cmd: Command,
        actor: &str,
        command_id: Option<Uuid>,
    ) -> Result<ExecutedOnce, ServiceError> {
        if !self.register.is_ready() {
            return Err(ServiceError::NotReady);
        }
        let id = self
            .register
            .read()
            .by_reference(reference)
            .map(|d| d.id)
            .ok_or(DomainError::NotFound)?;
        let mut env = Envelope::new(id, actor);
        env.command_id = command_id;
        let outcome = self
            .commands()
            .execute(&env, self.load_deviation(reference), |d, _ctx| {
                decide(Some(d), cmd.clone()).map_err(ServiceError::from)
            })
            .await?;
        let new = outcome.is_new();
        match outcome {
            Executed::Unchanged(deviation) => Ok(ExecutedOnce { deviation, new }),
            Executed::Committed { records, .. } => {
                let seq = records.last().map(|r| r.seq).unwrap_or(0);
                self.register.wait_for(seq, READ_YOUR_WRITES).await;
                let deviation = self
                    .register
                    .read()
                    .get(id)
                    .cloned()
                    .ok_or(ServiceError::NotReady)?;
                Ok(ExecutedOnce { deviation, new })
            }
        }
    }
}

impl Services {
    /// Gallring under a gallringsbeslut: records `DeviationShredded`, then destroys the
    /// deviation's data key and attachment files. An intent written first makes the
    /// destruction finish at the next start if the process dies in between.
    pub async fn shred(
        &self,
        reference: Reference,
        decision: &str,
        class: Option<String>,
        actor: &str,
    ) -> Result<Deviation, ServiceError> {
        use crate::privacy::gallring;
        let (id, shredded) = self
            .register
            .read()
            .by_reference(reference)
            .map(|d| (d.id, d.shredded.is_some()))
            .ok_or(DomainError::NotFound)?;
        if shredded {
            return Err(DomainError::Shredded.into());
        }
        let data_dir = self.keys.data_dir().map(std::path::Path::to_path_buf);
        let keys_dir = data_dir
            .as_ref()
            .map(|d| d.join(crate::privacy::keys::KEYS_DIR));
        let kids = self.keys.key_ids_of(self.store.as_ref(), id);
        if let Some(dir) = &keys_dir {
            gallring::begin(&self.keys, dir, id, &kids, self.clock.now(), decision)
                .map_err(StoreError::Io)?;
        }
        let cmd = Command::Shred(crate::domain::deviation::Shredded {
            decision: decision.to_string(),
            class,
        });
        let d = match self.execute(reference, cmd, actor).await {
            Ok(d) => d,
            Err(e) => {
                if let Some(dir) = &keys_dir {
                    gallring::abandon(&self.keys, dir, id);
                }
                return Err(e);
            }
        };
        gallring::failpoint("gallring-after-event");
        let at = d
            .shredded
            .as_ref()
            .map(|s| s.at)
            .unwrap_or_else(|| self.clock.now());
        if let (Some(data_dir), Some(keys_dir)) = (&data_dir, &keys_dir) {
            let tomb = crate::privacy::Tombstone {
                at,
                decision: decision.to_string(),
            };
            if let Err(e) = gallring::finish(&self.keys, keys_dir, data_dir, id, &kids, &tomb) {
                metrics::counter!("avvik_gallring_unfinished_total").increment(1);
                tracing::warn!(%reference, error = %e, "gallring recorded but its key could not be destroyed yet; finished at the next start");
            }
        }
        metrics::counter!("avvik_gallring_total").increment(1);
        Ok(d)
    }
}

impl From<CommandError> for ServiceError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Contention => ServiceError::Contention,
            CommandError::Store(e) => ServiceError::Store(e),
        }
    }
}
