//! The one command path. Every change to the log goes through [`CommandHandler`]: load the
//! stream's current state, let the aggregate's pure decider turn the command into events,
//! append them with the version the decision was made on, and on a concurrent change load
//! and decide again under one retry policy. A command with an id is idempotent: its events
//! get ids derived from it, and the store answers a known event id with the stored record.
//!
//! Nothing else in `src/` appends to the store (checked by `architecture_tests`); the
//! store's own import and tail recovery are the only other writers.

use std::sync::Arc;

use avvik_events::{BoxFuture, EventStore, ExpectedVersion, NewEvent, RecordedEvent, StoreError};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::clock::Clock;
use crate::domain::DomainEvent;
use crate::privacy::Keyring;

/// How often a command is decided again after a concurrent change to its stream.
pub const MAX_ATTEMPTS: usize = 8;

/// Why a command could not be recorded (the decider's own refusals come back as its error).
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("too many concurrent changes to the same stream")]
    Contention,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The state a decision is made on, and the stream version it was read at.
pub struct Current<S> {
    pub state: S,
    /// The stream's last version; `None` when the stream does not exist yet.
    pub version: Option<u32>,
}

impl<S> Current<S> {
    pub fn new(state: S, version: Option<u32>) -> Self {
        Self { state, version }
    }
}

/// What the decider may know besides the state: the time of the attempt.
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    pub now: DateTime<Utc>,
}

/// How the append checks the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The stream is still at the version the state was loaded at (the normal case).
    Loaded,
    /// No check: facts whose order against the stream's other events does not matter.
    Any,
}

/// Who sends the command, to which stream, under which id.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub stream: Uuid,
    pub actor: String,
    /// Makes the command idempotent: its first event gets this id, further ones ids
    /// derived from it. `None`: fresh ids.
    pub command_id: Option<Uuid>,
    pub expect: Expect,
    /// The time to record instead of the clock's (a job that runs for a given moment).
    pub at: Option<DateTime<Utc>>,
}

impl Envelope {
    pub fn new(stream: Uuid, actor: impl Into<String>) -> Self {
        Self {
            stream,
            actor: actor.into(),
            command_id: None,
            expect: Expect::Loaded,
            at: None,
        }
    }

    pub fn with_id(mut self, command_id: Uuid) -> Self {
        self.command_id = Some(command_id);
        self
    }

    pub fn expect_any(mut self) -> Self {
        self.expect = Expect::Any;
        self
    }

    pub fn at(mut self, at: DateTime<Utc>) -> Self {
        self.at = Some(at);
        self
    }
}

/// The result of a command.
pub enum Executed<S> {
    /// The events were stored (or, for a repeated command id, had been stored before).
    Committed {
        records: Vec<RecordedEvent>,
        /// The stream version the decision was made on.
        version: Option<u32>,
        /// The state the decision was made on.
        state: S,
    },
    /// The decider had nothing to record; the state it saw.
    Unchanged(S),
}

impl<S> Executed<S> {
    /// The stored records (none when unchanged).
    pub fn records(&self) -> &[RecordedEvent] {
        match self {
            Executed::Committed { records, .. } => records,
            Executed::Unchanged(_) => &[],
        }
    }

    /// The seq of the last stored record.
    pub fn last_seq(&self) -> Option<u64> {
        self.records().last().map(|r| r.seq)
    }

    /// False when a repeated command id got its earlier records back, or nothing changed.
    pub fn is_new(&self) -> bool {
        match self {
            Executed::Committed {
                records, version, ..
            } => records
                .first()
                .is_some_and(|r| version.is_none_or(|v| r.version > v)),
            Executed::Unchanged(_) => false,
        }
    }
}

/// The state loader of a command: reads a projection or the stream (may wait for a
/// projection to catch up first).
pub type Load<'a, S, E> = Box<dyn Fn() -> BoxFuture<'a, Result<Current<S>, E>> + Send + Sync + 'a>;

/// The loader of a command that needs no state (a fact recorded whatever came before).
pub fn stateless<'a, E: 'a>() -> Load<'a, (), E> {
    Box::new(|| Box::pin(async { Ok(Current::new((), None)) }))
}

#[derive(Clone)]
pub struct CommandHandler {
    store: Arc<dyn EventStore>,
    clock: Arc<dyn Clock>,
    /// Seals the personal fields of the events stored (see `crate::privacy`).
    keys: Option<Arc<Keyring>>,
}

impl CommandHandler {
    /// A handler for events without personal fields (accounts, schedules, reports). An
    /// event that has sealed fields is refused by it rather than stored in the clear.
    pub fn new(store: Arc<dyn EventStore>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            keys: None,
        }
    }

    /// A handler that seals what it stores with the deviations' keys.
    pub fn sealing(store: Arc<dyn EventStore>, clock: Arc<dyn Clock>, keys: Arc<Keyring>) -> Self {
        Self {
            store,
            clock,
            keys: Some(keys),
        }
    }

    /// Runs one command: load, decide, append; again on a concurrent change.
    pub async fn execute<S, Ev, Err>(
        &self,
        env: &Envelope,
        load: Load<'_, S, Err>,
        decide: impl Fn(&S, &Ctx) -> Result<Vec<Ev>, Err> + Send + Sync,
    ) -> Result<Executed<S>, Err>
    where
        Ev: DomainEvent,
        Err: From<CommandError>,
    {
        for _ in 0..MAX_ATTEMPTS {
            let current = load().await?;
            let ctx = Ctx {
                now: env.at.unwrap_or_else(|| self.clock.now()),
            };
            let events = decide(&current.state, &ctx)?;
            if events.is_empty() {
                return Ok(Executed::Unchanged(current.state));
            }
            let expected = match (env.expect, current.version) {
                (Expect::Any, _) => ExpectedVersion::Any,
                (Expect::Loaded, None) => ExpectedVersion::NoStream,
                (Expect::Loaded, Some(v)) => ExpectedVersion::Exact(v),
            };
            let new = self.to_new(env, &ctx, &events)?;
            match self.store.append(env.stream, expected, new).await {
                Ok(records) => {
                    return Ok(Executed::Committed {
                        records,
                        version: current.version,
                        state: current.state,
                    })
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(CommandError::Store(e).into()),
            }
        }
        Err(CommandError::Contention.into())
    }

    /// Like `execute` on a new stream, advancing the gap-free counter `counter` in the same
    /// commit: `decide` gets the number the stream is given. A refused or failed command
    /// uses no number.
    pub async fn execute_numbered<Ev, Err>(
        &self,
        env: &Envelope,
        counter: String,
        decide: impl FnOnce(u64, &Ctx) -> Vec<Ev> + Send + 'static,
    ) -> Result<Vec<RecordedEvent>, Err>
    where
        Ev: DomainEvent,
        Err: From<CommandError>,
    {
        let ctx = Ctx {
            now: env.at.unwrap_or_else(|| self.clock.now()),
        };
        // The new stream's data key is made before the store's commit, not inside it.
        if let Some(keys) = &self.keys {
            keys.prepare_new(env.stream)
                .map_err(|e| CommandError::Store(StoreError::Io(e)))?;
        }
        let me = self.clone();
        let env2 = env.clone();
        let build = Box::new(move |n: u64| {
            let events = decide(n, &ctx);
            // A failure to seal stores nothing: the store refuses an empty commit.
            me.to_new(&env2, &ctx, &events).unwrap_or_else(|e| {
                tracing::error!(error = %e, "sealing a new report failed; nothing stored");
                Vec::new()
            })
        });
        self.store
            .append_numbered(counter, env.stream, ExpectedVersion::NoStream, build)
            .await
            .map_err(|e| CommandError::Store(e).into())
    }

    /// The events as the store gets them: ids given, personal fields sealed.
    fn to_new<Ev: DomainEvent>(
        &self,
        env: &Envelope,
        ctx: &Ctx,
        events: &[Ev],
    ) -> Result<Vec<NewEvent>, CommandError> {
        events
            .iter()
            .enumerate()
            .map(|(i, ev)| {
                let mut e = NewEvent::new(ev.type_name(), ev.to_data(), &env.actor, ctx.now);
                if let Some(id) = env.command_id {
                    e.id = if i == 0 {
                        id
                    } else {
                        Uuid::new_v5(&id, &(i as u64).to_be_bytes())
                    };
                }
                match &self.keys {
                    Some(keys) => {
                        let data = std::mem::take(&mut e.data);
                        e.data = keys
                            .seal(self.store.as_ref(), env.stream, e.id, ev.type_name(), data)
                            .map_err(|x| CommandError::Store(StoreError::Io(x)))?;
                    }
                    None if crate::privacy::seal::spec(ev.type_name()).is_some() => {
                        return Err(CommandError::Store(StoreError::InvalidAppend(format!(
                            "{} has personal fields and must be stored by a sealing handler",
                            ev.type_name()
                        ))));
                    }
                    None => {}
                }
                Ok(e)
            })
            .collect()
    }

    /// The stream as stored, and its version (for loaders that fold the stream itself).
    pub fn read_stream(
        &self,
        stream: Uuid,
    ) -> Result<(Vec<RecordedEvent>, Option<u32>), StoreError> {
        let records = self.store.read_stream(stream, 1)?;
        let version = records.last().map(|r| r.version);
        Ok((records, version))
    }
}
