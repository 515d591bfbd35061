//! Application services: turn a validated request into events through the decider and the
//! store, with optimistic concurrency, then wait for the register to show the result.

use std::sync::Arc;
use std::time::Duration;

use avvik_events::{EventStore, ExpectedVersion, NewEvent, StoreError};
use rand::RngCore;
use uuid::Uuid;

use crate::clock::Clock;
use crate::domain::{
    decide, stockholm_year, Channel, Command, Deviation, DeviationEvent, DomainError, Reference,
    Reported, Reporter,
};
use crate::projection::RegisterProjection;

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

/// The parts of the application the services need.
#[derive(Clone)]
pub struct Services {
    pub store: Arc<dyn EventStore>,
    pub register: Arc<RegisterProjection>,
    pub clock: Arc<dyn Clock>,
}

/// A fresh status token: 256 random bits, hex.
pub fn new_status_token() -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// The stored form of a status token.
pub fn token_hash(token: &str) -> String {
    avvik_events::hash_hex(token.as_bytes())
}

fn to_new_events(
    events: Vec<DeviationEvent>,
    actor: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Vec<NewEvent> {
    events
        .into_iter()
        .map(|ev| NewEvent::new(ev.type_name(), ev.to_data(), actor, at))
        .collect()
}

impl Services {
    /// Files a new deviation; its reference is numbered in the same commit.
    pub async fn report(&self, r: NewReport, actor: &str) -> Result<Receipt, ServiceError> {
        let now = self.clock.now();
        let year = stockholm_year(now);
        let id = Uuid::now_v7();
        let token = new_status_token();
        let token_hash = token_hash(&token);
        let actor_owned = actor.to_string();
        let build = Box::new(move |n: u64| {
            let reported = Reported {
                reference: Reference::new(year, n),
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
            let events = decide(None, Command::Report(reported)).unwrap_or_default();
            to_new_events(events, &actor_owned, now)
        });
        let stored = self
            .store
            .append_numbered(
                Reference::counter_name(year),
                id,
                ExpectedVersion::NoStream,
                build,
            )
            .await?;
        let rec = stored.first().ok_or(ServiceError::Contention)?;
        let reference = rec
            .data
            .get("reference")
            .and_then(|v| v.as_str())
            .and_then(Reference::parse)
            .ok_or_else(|| StoreError::Corrupt {
                seq: rec.seq,
                reason: "report without reference".into(),
            })?;
        let seq = stored.last().map(|r| r.seq).unwrap_or(rec.seq);
        self.register.wait_for(seq, READ_YOUR_WRITES).await;
        Ok(Receipt {
            id,
            reference,
            status_token: token,
            seq,
        })
    }

    /// Runs a command against an existing deviation. Retries on a concurrent change.
    pub async fn execute(
        &self,
        reference: Reference,
        cmd: Command,
        actor: &str,
    ) -> Result<Deviation, ServiceError> {
        if !self.register.is_ready() {
            return Err(ServiceError::NotReady);
        }
        for _ in 0..8 {
            let current = self
                .register
                .read()
                .by_reference(reference)
                .cloned()
                .ok_or(DomainError::NotFound)?;
            let events = decide(Some(&current), cmd.clone())?;
            let now = self.clock.now();
            match self
                .store
                .append(
                    current.id,
                    ExpectedVersion::Exact(current.version),
                    to_new_events(events, actor, now),
                )
                .await
            {
                Ok(stored) => {
                    let seq = stored.last().map(|r| r.seq).unwrap_or(0);
                    self.register.wait_for(seq, READ_YOUR_WRITES).await;
                    return self
                        .register
                        .read()
                        .get(current.id)
                        .cloned()
                        .ok_or(ServiceError::NotReady);
                }
                Err(StoreError::Conflict { .. }) => {
                    let head = self.store.head().seq;
                    self.register.wait_for(head, READ_YOUR_WRITES).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Contention)
    }
}
