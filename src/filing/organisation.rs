//! The organisation details' stream: until the admin first changes them, the details are
//! `[organisation]`'s; the first change records those as the seed, then the change (read,
//! decide, append with the expected version). Nothing is written at start-up, so a fresh
//! log holds only what people did.

use std::sync::Arc;

use avvik_events::{EventStore, RecordedEvent, StoreError};
use chrono::{DateTime, Utc};

use crate::clock::SystemClock;
use crate::command::{CommandError, CommandHandler, Current, Envelope, Load};
use crate::domain::organisation::{
    decide, evolve, Organisation, OrganisationCommand, OrganisationDetails, OrganisationError,
    OrganisationEvent, ORGANISATION_STREAM,
};

#[derive(Debug, thiserror::Error)]
pub enum OrganisationWriteError {
    #[error(transparent)]
    Invalid(#[from] OrganisationError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<CommandError> for OrganisationWriteError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Store(e) => OrganisationWriteError::Store(e),
            CommandError::Contention => OrganisationWriteError::Store(StoreError::Storage(
                "the organisation details changed too often at once; try again".into(),
            )),
        }
    }
}

/// The stream folded, its version and its records (for the page's list of changes).
pub fn load(store: &dyn EventStore) -> Result<(Organisation, u32, Vec<RecordedEvent>), StoreError> {
    let records = store.read_stream(ORGANISATION_STREAM, 1)?;
    let (mut state, mut version) = (None, 0);
    for r in &records {
        version = r.version;
        match OrganisationEvent::from_parts(&r.event_type, &r.data) {
            Some(Ok(ev)) => state = evolve(state, &ev),
            _ => tracing::error!(seq = r.seq, "stored organisation event does not decode"),
        }
    }
    Ok((state, version, records))
}

/// The current details: the stream's, or the configuration's before the first seed.
pub fn current(store: &dyn EventStore, config: &OrganisationDetails) -> OrganisationDetails {
    match load(store) {
        Ok((Some(d), _, _)) => d,
        Ok((None, _, _)) => config.clone(),
        Err(e) => {
            tracing::warn!(error = %e, "reading the organisation details; using the configuration's");
            config.clone()
        }
    }
}

async fn write(
    store: &Arc<dyn EventStore>,
    actor: &str,
    now: DateTime<Utc>,
    cmd: OrganisationCommand,
) -> Result<Option<u64>, OrganisationWriteError> {
    let commands = CommandHandler::new(store.clone(), Arc::new(SystemClock));
    let load: Load<'_, Organisation, OrganisationWriteError> = Box::new(|| {
        let store = store.clone();
        Box::pin(async move {
            let (state, version, _) = load(store.as_ref())?;
            Ok(Current::new(state, (version > 0).then_some(version)))
        })
    });
    let env = Envelope::new(ORGANISATION_STREAM, actor).at(now);
    let outcome = commands
        .execute(&env, load, |state, _ctx| Ok(decide(state, cmd.clone())?))
        .await?;
    Ok(outcome.last_seq())
}

/// The admin changes them (the configuration's are recorded first, once). `Ok(None)`:
/// nothing changed.
pub async fn change(
    store: &Arc<dyn EventStore>,
    config: &OrganisationDetails,
    details: OrganisationDetails,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Option<u64>, OrganisationWriteError> {
    let seed = OrganisationCommand::Seed(config.clone());
    write(store, "system", now, seed).await?;
    write(store, actor, now, OrganisationCommand::Change(details)).await
}
