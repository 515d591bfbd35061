//! The recipient lists' stream: seeding it from the configuration at the first start,
//! changing a list (read, decide, append with the expected version), and the lists as they
//! stood at any point of the log.

use std::sync::Arc;

use avvik_events::{EventStore, RecordedEvent, StoreError};
use chrono::{DateTime, Utc};

use crate::clock::SystemClock;
use crate::command::{CommandError, CommandHandler, Current, Envelope, Load};
use crate::config::Config;
use crate::domain::recipients::{
    decide, evolve, RecipientGroup, RecipientLists, Recipients, RecipientsCommand,
    RecipientsContext, RecipientsError, RecipientsEvent, RECIPIENTS_STREAM,
};

/// Actor of the seeding event.
const SEED_ACTOR: &str = "system";

#[derive(Debug, thiserror::Error)]
pub enum RecipientsWriteError {
    #[error(transparent)]
    Invalid(#[from] RecipientsError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The stream's records up to `to_seq` (all with `None`), folded; and the stream's version.
pub fn load(
    store: &dyn EventStore,
    to_seq: Option<u64>,
) -> Result<(Recipients, u32, Vec<RecordedEvent>), StoreError> {
    let records: Vec<RecordedEvent> = store
        .read_stream(RECIPIENTS_STREAM, 1)?
        .into_iter()
        .filter(|r| to_seq.is_none_or(|s| r.seq <= s))
        .collect();
    let mut state = Recipients::default();
    let mut version = 0;
    for r in &records {
        version = r.version;
        match RecipientsEvent::from_parts(&r.event_type, &r.data) {
            Some(Ok(ev)) => state = evolve(state, &ev),
            _ => tracing::error!(seq = r.seq, "stored recipient list event does not decode"),
        }
    }
    Ok((state, version, records))
}

/// The configuration's lists, in the stream's terms.
pub fn from_config(config: &Config) -> RecipientLists {
    let r = &config.recipients;
    RecipientLists {
        ciso: r.ciso.clone(),
        dataskyddsombud: r.dataskyddsombud.clone(),
        ledningsgrupp: r.ledningsgrupp.clone(),
        kommunstyrelsen: r.kommunstyrelsen.clone(),
        kontakt: r.kontakt.clone(),
    }
}

async fn write(
    store: &Arc<dyn EventStore>,
    actor: &str,
    now: DateTime<Utc>,
    sectors: &[String],
    cmd: impl Fn() -> RecipientsCommand + Send + Sync,
) -> Result<Option<u64>, RecipientsWriteError> {
    let commands = CommandHandler::new(store.clone(), std::sync::Arc::new(SystemClock));
    let load: Load<'_, Recipients, RecipientsWriteError> = Box::new(|| {
        let store = store.clone();
        Box::pin(async move {
            let (state, version, _) = load(store.as_ref(), None)?;
            Ok(Current::new(state, (version > 0).then_some(version)))
        })
    });
    // A concurrent change makes the append conflict; the handler decides again.
    let env = Envelope::new(RECIPIENTS_STREAM, actor).at(now);
    let outcome = commands
        .execute(&env, load, |state, _ctx| {
            Ok(decide(state, cmd(), &RecipientsContext { sectors })?)
        })
        .await?;
    Ok(outcome.last_seq())
}

impl From<CommandError> for RecipientsWriteError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Store(e) => RecipientsWriteError::Store(e),
            CommandError::Contention => RecipientsWriteError::Store(StoreError::Storage(
                "the recipient lists changed too often at once; try again".into(),
            )),
        }
    }
}

/// At start-up: the configuration's lists become the first event, once; after that the
/// configuration is not consulted for recipients.
pub async fn seed(
    store: &Arc<dyn EventStore>,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<Option<u64>, RecipientsWriteError> {
    let lists = from_config(config);
    write(store, SEED_ACTOR, now, &config.report.sectors, || {
        RecipientsCommand::Seed(lists.clone())
    })
    .await
}

/// The admin replaces one list. `Ok(None)`: nothing changed.
pub async fn set_list(
    store: &Arc<dyn EventStore>,
    config: &Config,
    group: RecipientGroup,
    sector: Option<String>,
    addresses: Vec<String>,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Option<u64>, RecipientsWriteError> {
    write(store, actor, now, &config.report.sectors, || {
        RecipientsCommand::Set {
            group,
            sector: sector.clone(),
            addresses: addresses.clone(),
        }
    })
    .await
}
