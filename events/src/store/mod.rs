//! The `EventStore` trait and what every backend shares: its types, the append rules
//! ([`rules`]: the hash chain, idempotency by event id, expected versions, counters and the
//! import walk, written once), subscriptions ([`subscribe`]) and [`read_all`]. The sled
//! backend is [`crate::sled`]; its types are re-exported here under their old paths.
//!
//! # Reads: synchronous, with async forms
//!
//! The trait has both. The synchronous reads (`read_batch`, `read_stream`, `for_each_raw`,
//! `verify`, `export`) stay because their heaviest callers are synchronous by nature and
//! already run off the async worker threads: the projection folds and the register's
//! search at start-up and on `spawn_blocking`, `verify`, `export` and `import` from the
//! CLI or a blocking task, and [`read_all`]'s iterator. Making them futures would box one
//! future per chunk in those loops and turn every fold into async code for no gain on sled,
//! whose reads are page-cache lookups of a few microseconds.
//!
//! Async code should call the async forms, [`EventStore::read_stream_async`] and
//! [`EventStore::read_batch_async`]. sled answers them in place, without a hop to the
//! blocking pool (which would cost more than the read). A backend whose reads cross the
//! network (PostgreSQL) implements the async forms natively and the synchronous ones by
//! blocking, which is only correct where the callers above call them: off the async
//! worker threads.

use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use uuid::Uuid;

use crate::record::{hash_hex, NewEvent, RecordedEvent};
use crate::verify::VerifyReport;

pub(crate) mod job;
pub mod rules;
pub mod subscribe;

pub use crate::sled::{SledEventStore, StoreOptions};
pub use rules::recovery_stream;
pub use subscribe::Subscription;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the caller believes the stream's version to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last version must be exactly this.
    Exact(u32),
    /// No check.
    Any,
}

impl ExpectedVersion {
    /// Whether a stream whose last version is `actual` (0: no stream) satisfies this.
    pub fn admits(self, actual: u32) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exact(v) => actual == v,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("version conflict on stream {stream}: expected {expected:?}, found version {actual}")]
    Conflict {
        stream: Uuid,
        expected: ExpectedVersion,
        actual: u32,
    },
    #[error("invalid append: {0}")]
    InvalidAppend(String),
    #[error("storage error: {0}")]
    Storage(String),
    #[error("corrupt record at seq {seq}: {reason}")]
    Corrupt { seq: u64, reason: String },
    #[error(
        "data directory {0} is in use by another avvik process (stop the server first, or point --data at a copy)"
    )]
    Locked(PathBuf),
    #[error("the event store has shut down")]
    Closed,
    #[error("import refused: {0}")]
    Import(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<::sled::Error> for StoreError {
    fn from(e: ::sled::Error) -> Self {
        StoreError::Storage(e.to_string())
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The last committed (and flushed) record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    /// Hex SHA-256 of the head record's bytes; 64 zeros for an empty log.
    pub hash: String,
    pub at: Option<DateTime<Utc>>,
}

/// Builds the events of a numbered append once the counter's next value is known.
pub type NumberedBuild = Box<dyn FnOnce(u64) -> Vec<NewEvent> + Send>;

/// Maps a stored record to the gap-free counter it advanced, if any, so an import can
/// rebuild counters from the log alone.
pub type CounterOf = dyn Fn(&RecordedEvent) -> Option<(String, u64)> + Send + Sync;

/// Files every process of an installation shares, by kind and name: what a node would
/// otherwise keep in its own data directory but every node must see alike (the data
/// keys' batches). Calls block for a round trip to the database; each write is durable
/// when it returns.
pub trait SharedFiles: Send + Sync {
    /// The file's bytes, `None` if there is no such file.
    fn read(&self, kind: &str, name: &str) -> Result<Option<Vec<u8>>>;
    /// Stores a new file; `false` (and nothing written) if it exists already.
    fn create(&self, kind: &str, name: &str, bytes: &[u8]) -> Result<bool>;
    /// Overwrites `bytes.len()` bytes at `offset` of an existing file, and has the old
    /// version removed from the database at once (vacuumed); `false` if there is no such
    /// file or it is shorter.
    fn write_at(&self, kind: &str, name: &str, offset: u64, bytes: &[u8]) -> Result<bool>;
    /// The names of the files of `kind`, sorted.
    fn list(&self, kind: &str) -> Result<Vec<String>>;
    /// Removes every file of `kind` whose name starts with `prefix` (vacuumed at once);
    /// returns how many.
    fn remove_prefix(&self, kind: &str, prefix: &str) -> Result<u64>;
}

/// A duty no other process can hold: held from the start, for good.
fn always_held() -> watch::Receiver<bool> {
    static HELD: OnceLock<watch::Sender<bool>> = OnceLock::new();
    HELD.get_or_init(|| watch::channel(true).0).subscribe()
}

/// An append-only, hash-chained event log.
///
/// A backend stores records and indexes; what an append means (the chain, idempotency,
/// expected versions, counters) is [`rules`], which every backend calls. The conformance
/// suite in `events/tests/store.rs` runs against each backend.
pub trait EventStore: Send + Sync {
    /// Appends `events` to `stream` atomically. Answered only after the events are durable.
    fn append(
        &self,
        stream: Uuid,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> BoxFuture<'_, Result<Vec<RecordedEvent>>>;

    /// Like `append`, but also advances the gap-free counter `counter` by one in the same
    /// commit; `build` receives the new counter value. A failed append uses no number.
    fn append_numbered(
        &self,
        counter: String,
        stream: Uuid,
        expected: ExpectedVersion,
        build: NumberedBuild,
    ) -> BoxFuture<'_, Result<Vec<RecordedEvent>>>;

    /// Up to `limit` records from `from_seq` on (only durable ones).
    fn read_batch(&self, from_seq: u64, limit: usize) -> Result<Vec<RecordedEvent>>;

    /// `read_batch` for async callers (see the module docs).
    fn read_batch_async(
        &self,
        from_seq: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<RecordedEvent>>>;

    /// The stored bytes of records `from_seq..=to_seq`, in order, without decoding.
    fn for_each_raw(
        &self,
        from_seq: u64,
        to_seq: u64,
        f: &mut dyn FnMut(u64, &[u8]) -> Result<()>,
    ) -> Result<()>;

    /// Events of one stream from `from_version` on.
    fn read_stream(&self, stream: Uuid, from_version: u32) -> Result<Vec<RecordedEvent>>;

    /// `read_stream` for async callers (see the module docs).
    fn read_stream_async(
        &self,
        stream: Uuid,
        from_version: u32,
    ) -> BoxFuture<'_, Result<Vec<RecordedEvent>>>;

    /// The durable head.
    fn head(&self) -> Head;

    /// Changes whenever the durable head seq advances.
    fn watch_head(&self) -> watch::Receiver<u64>;

    /// Current value of a gap-free counter (0 if never advanced).
    fn counter(&self, name: &str) -> Result<u64>;

    /// Walks the whole chain.
    fn verify(&self) -> Result<VerifyReport>;

    /// True once a storage error has occurred and writes may fail.
    fn is_degraded(&self) -> bool;

    /// Bytes the store takes on disk.
    fn size_on_disk(&self) -> Result<u64>;

    /// Writes records `from_seq..=to_seq` as NDJSON of their stored bytes; returns how many.
    fn export(&self, from_seq: u64, to_seq: u64, out: &mut dyn Write) -> Result<u64> {
        let mut n = 0u64;
        self.for_each_raw(from_seq, to_seq, &mut |_, bytes| {
            out.write_all(bytes)?;
            out.write_all(b"\n")?;
            n += 1;
            Ok(())
        })?;
        out.flush()?;
        Ok(n)
    }

    /// Fills this store, which must be empty, from an NDJSON export, byte for byte,
    /// refusing a broken chain (and then leaving the store empty). `counter_of` rebuilds
    /// the gap-free counters. Returns the new head; appends continue from it.
    /// The walk is [`rules::read_export`].
    fn import(&self, input: &mut dyn std::io::BufRead, counter_of: &CounterOf) -> Result<Head>;

    /// The files every process sharing this store sees; `None` for a store only one
    /// process opens (sled), whose processes keep such files in their data directory.
    /// They answer while the store is open (afterwards: `Closed`).
    fn shared_files(&self) -> Option<Arc<dyn SharedFiles>> {
        None
    }

    /// For a store several processes share: reads the head as any process has moved it,
    /// publishes it (so subscriptions follow at once, before the notification arrives)
    /// and returns it. `None` for a store only this process writes, whose head is always
    /// current.
    fn sync_head(&self) -> BoxFuture<'_, Result<Option<Head>>> {
        Box::pin(std::future::ready(Ok(None)))
    }

    /// Whether this process runs the single-runner duty `name` (the outbox's delivery,
    /// the IMAP collector, the scheduler): true while it holds it, false while another
    /// process sharing the store does. A store only one process opens holds every duty
    /// from the start; a shared one holds a duty for one process at a time and moves it
    /// when that process is gone (PostgreSQL: `postgres::lease`). The duty is let go when
    /// every receiver is dropped.
    fn duty(&self, name: &str) -> watch::Receiver<bool> {
        let _ = name;
        always_held()
    }
}

/// Iterates over all records from `from_seq`, fetching in chunks.
pub fn read_all(
    store: &dyn EventStore,
    from_seq: u64,
) -> impl Iterator<Item = Result<RecordedEvent>> + '_ {
    let mut next = from_seq.max(1);
    let mut buf: std::vec::IntoIter<RecordedEvent> = Vec::new().into_iter();
    let mut done = false;
    std::iter::from_fn(move || loop {
        if let Some(r) = buf.next() {
            return Some(Ok(r));
        }
        if done {
            return None;
        }
        match read_batch_past_corrupt(store, &mut next, 4096) {
            Ok(batch) if batch.is_empty() => {
                done = true;
            }
            Ok(batch) => {
                buf = batch.into_iter();
            }
            // One unreadable record: reported, and reading goes on after it.
            Err(e @ StoreError::Corrupt { .. }) => return Some(Err(e)),
            Err(e) => {
                done = true;
                return Some(Err(e));
            }
        }
    })
}

/// Reads up to `max` records from `*next` and moves `*next` past them. A record that
/// cannot be read (`Corrupt` with its seq) comes back as that error once, after the
/// readable records before it, and `*next` moves past it: readers that choose to go on
/// (the projections) do not stop at one bad record, and `verify` names it.
pub(crate) fn read_batch_past_corrupt(
    store: &dyn EventStore,
    next: &mut u64,
    max: usize,
) -> Result<Vec<RecordedEvent>> {
    let batch = match store.read_batch(*next, max) {
        Err(StoreError::Corrupt { seq, reason }) if seq >= *next => {
            let before = if seq > *next {
                store.read_batch(*next, (seq - *next) as usize)?
            } else {
                Vec::new()
            };
            if before.is_empty() {
                *next = seq + 1;
                return Err(StoreError::Corrupt { seq, reason });
            }
            before
        }
        other => other?,
    };
    if let Some(last) = batch.last() {
        *next = last.seq + 1;
    }
    Ok(batch)
}

/// Hex hash of a record's stored bytes (re-exported convenience).
pub fn record_hash(rec: &RecordedEvent) -> String {
    hash_hex(&rec.to_bytes())
}
