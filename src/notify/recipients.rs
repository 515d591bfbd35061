//! The recipient lists' stream: seeding it from the configuration at the first start,
//! changing a list (read, decide, append with the expected version), and the lists as they
//! stood at any point of the log.

use avvik_events::{EventStore, ExpectedVersion, NewEvent, RecordedEvent, StoreError};
use chrono::{DateTime, Utc};

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
    store: &dyn EventStore,
    actor: &str,
    now: DateTime<Utc>,
    sectors: &[String],
    cmd: impl Fn() -> RecipientsCommand,
) -> Result<Option<u64>, RecipientsWriteError> {
    // A concurrent change makes the append conflict; decide again on what is stored then.
    let mut tries = 0;
    loop {
        let (state, version, _) = load(store, None)?;
        let events = decide(&state, cmd(), &RecipientsContext { sectors })?;
        if events.is_empty() {
            return Ok(None);
        }
        let new = events
            .iter()
            .map(|e| NewEvent::new(e.type_name(), e.to_data(), actor, now))
            .collect();
        let expected = if version == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(version)
        };
        match store.append(RECIPIENTS_STREAM, expected, new).await {
            Ok(stored) => return Ok(stored.last().map(|r| r.seq)),
            Err(StoreError::Conflict { .. }) if tries < 5 => tries += 1,
            Err(e) => return Err(e.into()),
        }
    }
}

/// At start-up: the configuration's lists become the first event, once; after that the
/// configuration is not consulted for recipients.
pub async fn seed(
    store: &dyn EventStore,
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
    store: &dyn EventStore,
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
