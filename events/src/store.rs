//! The `EventStore` trait and its sled implementation: one writer thread owns the head and
//! commits queued appends in one atomic batch and one `flush()` (group commit).

use std::collections::HashMap;
use std::fs::File;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, SubsecRound, Utc};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use crate::record::{hash_hex, NewEvent, RecordedEvent, GENESIS_HASH};
use crate::verify::{ChainChecker, VerifyReport};

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

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
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

/// An append-only, hash-chained event log.
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

    /// The stored bytes of records `from_seq..=to_seq`, in order, without decoding.
    fn for_each_raw(
        &self,
        from_seq: u64,
        to_seq: u64,
        f: &mut dyn FnMut(u64, &[u8]) -> Result<()>,
    ) -> Result<()>;

    /// Events of one stream from `from_version` on.
    fn read_stream(&self, stream: Uuid, from_version: u32) -> Result<Vec<RecordedEvent>>;

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
fn read_batch_past_corrupt(
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

/// A live feed of records: catches up from the log, then follows new commits. A slow
/// subscriber only falls behind; it never holds up writers.
pub struct Subscription {
    store: Arc<dyn EventStore>,
    head: watch::Receiver<u64>,
    next_seq: u64,
    buf: std::collections::VecDeque<RecordedEvent>,
}

impl Subscription {
    pub fn new(store: Arc<dyn EventStore>, from_seq: u64) -> Self {
        let head = store.watch_head();
        Self {
            store,
            head,
            next_seq: from_seq.max(1),
            buf: Default::default(),
        }
    }

    /// The next record, waiting for one if the subscriber is caught up. `Err(Closed)` once
    /// the store has shut down. `Err(Corrupt)` for a record that cannot be read, once; the
    /// next call goes on after it.
    pub async fn next(&mut self) -> Result<RecordedEvent> {
        loop {
            if let Some(r) = self.buf.pop_front() {
                return Ok(r);
            }
            let batch = read_batch_past_corrupt(self.store.as_ref(), &mut self.next_seq, 1024)?;
            if !batch.is_empty() {
                self.buf.extend(batch);
                continue;
            }
            // Caught up: wait until the head moves past what we have read.
            let target = self.next_seq;
            if self
                .head
                .wait_for(|h| *h >= target)
                .await
                .map_err(|_| StoreError::Closed)
                .is_err()
            {
                return Err(StoreError::Closed);
            }
        }
    }

    /// Records available right now without waiting (empty when caught up).
    pub fn try_next(&mut self) -> Result<Option<RecordedEvent>> {
        if let Some(r) = self.buf.pop_front() {
            return Ok(Some(r));
        }
        let batch = read_batch_past_corrupt(self.store.as_ref(), &mut self.next_seq, 1024)?;
        self.buf.extend(batch);
        Ok(self.buf.pop_front())
    }
}

// Key layout, all in one sled tree so a commit is one atomic batch.
const K_LOG: u8 = b'L'; // L seq(be64)              -> record bytes
const K_STREAM: u8 = b'S'; // S stream(16) ver(be32) -> seq(be64)
const K_ID: u8 = b'I'; // I id(16)                   -> seq(be64)
const K_COUNTER: u8 = b'C'; // C name                -> value(be64)
const K_HEAD: &[u8] = b"H"; // H -> seq(be64) hash(32) at_micros(be64)

fn log_key(seq: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = K_LOG;
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn stream_key(stream: Uuid, version: u32) -> [u8; 21] {
    let mut k = [0u8; 21];
    k[0] = K_STREAM;
    k[1..17].copy_from_slice(stream.as_bytes());
    k[17..].copy_from_slice(&version.to_be_bytes());
    k
}

fn id_key(id: Uuid) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = K_ID;
    k[1..].copy_from_slice(id.as_bytes());
    k
}

fn counter_key(name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + name.len());
    k.push(K_COUNTER);
    k.extend_from_slice(name.as_bytes());
    k
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    let n = b.len().min(8);
    a[..n].copy_from_slice(&b[..n]);
    u64::from_be_bytes(a)
}

/// The head entry: the head, plus the head before this commit (`floor`): records up to the
/// floor were flushed by an earlier commit, so only records above it can be cut short by a
/// crash.
fn encode_head(h: &HeadRaw, floor: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(56);
    v.extend_from_slice(&h.seq.to_be_bytes());
    v.extend_from_slice(&h.hash);
    v.extend_from_slice(&h.at_micros.to_be_bytes());
    v.extend_from_slice(&floor.to_be_bytes());
    v
}

/// The floor stored with the head (the head itself for entries written without one).
fn head_floor(b: &[u8]) -> u64 {
    if b.len() == 56 {
        be_u64(&b[48..56])
    } else {
        be_u64(&b[..8.min(b.len())])
    }
}

#[derive(Clone, Copy)]
struct HeadRaw {
    seq: u64,
    hash: [u8; 32],
    at_micros: i64,
}

impl HeadRaw {
    fn decode(b: &[u8]) -> Option<HeadRaw> {
        if b.len() != 48 && b.len() != 56 {
            return None;
        }
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&b[8..40]);
        Some(HeadRaw {
            seq: be_u64(&b[..8]),
            hash,
            at_micros: be_u64(&b[40..48]) as i64,
        })
    }

    fn to_head(self) -> Head {
        Head {
            seq: self.seq,
            hash: hex::encode(self.hash),
            at: (self.seq > 0)
                .then(|| DateTime::<Utc>::from_timestamp_micros(self.at_micros))
                .flatten(),
        }
    }
}

/// Settings for opening a sled store.
#[derive(Clone)]
pub struct StoreOptions {
    /// sled page cache in bytes.
    pub cache_capacity: u64,
    /// Most appends committed in one batch.
    pub max_batch: usize,
    /// Queue length before `append` waits (backpressure).
    pub queue: usize,
    /// Which gap-free counter a record advanced; lets tail recovery rebuild counters.
    pub counter_of: Option<Arc<CounterOf>>,
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOptions")
            .field("cache_capacity", &self.cache_capacity)
            .field("max_batch", &self.max_batch)
            .field("queue", &self.queue)
            .field("counter_of", &self.counter_of.is_some())
            .finish()
    }
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            cache_capacity: 256 * 1024 * 1024,
            max_batch: 1024,
            queue: 8192,
            counter_of: None,
        }
    }
}

enum Job {
    Append {
        stream: Uuid,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        reply: oneshot::Sender<Result<Vec<RecordedEvent>>>,
    },
    Numbered {
        counter: String,
        stream: Uuid,
        expected: ExpectedVersion,
        build: NumberedBuild,
        reply: oneshot::Sender<Result<Vec<RecordedEvent>>>,
    },
}

struct Shared {
    /// The open database. `None` while the writer reopens it after a storage error
    /// (sled keeps failing once an I/O error occurred; a fresh open recovers from its log).
    db: RwLock<Option<(sled::Db, sled::Tree)>>,
    dir: PathBuf,
    config: sled::Config,
    counter_of: Option<Arc<CounterOf>>,
    durable_seq: AtomicU64,
    head: Mutex<Head>,
    head_tx: watch::Sender<u64>,
    degraded: AtomicBool,
}

impl Shared {
    /// The current tree (a cheap handle), or an error while the database is reopened.
    fn tree(&self) -> Result<sled::Tree> {
        match &*self.db.read().unwrap_or_else(|p| p.into_inner()) {
            Some((_, tree)) => Ok(tree.clone()),
            None => Err(StoreError::Storage(format!(
                "the event store in {} is being reopened after an error",
                self.dir.display()
            ))),
        }
    }
}

/// The sled-backed store.
pub struct SledEventStore {
    shared: Arc<Shared>,
    jobs: mpsc::Sender<Job>,
    writer: Option<std::thread::JoinHandle<()>>,
    // Declared last so the lock is released only after sled has closed.
    _lock: File,
}

impl Drop for SledEventStore {
    fn drop(&mut self) {
        // Close the queue so the writer finishes its batch and exits, then wait for it, so
        // the database is closed when the store is gone (a reopen in the same process works).
        let (closed, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.jobs, closed));
        if let Some(h) = self.writer.take() {
            let _ = h.join();
        }
        drop(
            self.shared
                .db
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
    }
}

/// The database and head, before any writer runs.
struct Opened {
    lock: File,
    db: sled::Db,
    tree: sled::Tree,
    head: HeadRaw,
    config: sled::Config,
}

fn open_raw(dir: &Path, opts: &StoreOptions) -> Result<Opened> {
    let lock = lock_dir(dir)?;
    let config = sled::Config::new()
        .path(dir.join("events"))
        .cache_capacity(opts.cache_capacity)
        .mode(sled::Mode::HighThroughput);
    let (db, tree, head) = open_db(&config, opts.counter_of.as_deref())?;
    Ok(Opened {
        lock,
        db,
        tree,
        head,
        config,
    })
}

/// Opens the database and reads the head (the lock file is the caller's).
fn open_db(
    config: &sled::Config,
    counter_of: Option<&CounterOf>,
) -> Result<(sled::Db, sled::Tree, HeadRaw)> {
    let db = open_sled(config)?;
    let tree = db.open_tree("log")?;
    let (stored, floor) = match tree.get(K_HEAD)? {
        Some(b) => (
            Some(HeadRaw::decode(&b).ok_or(StoreError::Corrupt {
                seq: 0,
                reason: "head record has the wrong length".into(),
            })?),
            head_floor(&b),
        ),
        None => (None, 0),
    };
    let head = recover_tail(&tree, stored, floor, counter_of)?;
    Ok((db, tree, head))
}

/// How far below the stored head the tail is checked on every open. Larger than any one
/// commit, so a commit cut short by a crash is always inside it.
const RECOVERY_WINDOW: u64 = 1 << 16;

/// Makes the tail of the log consistent after a crash. sled's batches are not reliably
/// atomic across a crash (a cut-short commit can leave the head or index entries without
/// their records, or records without the head), and nothing of a cut-short commit was
/// acknowledged. So the head is re-derived: the longest contiguous, hash-linked run of
/// records from below the stored head. Records past it are removed, index entries that
/// point past it are dropped, the tail's index entries are re-asserted, and counters are
/// rebuilt from the records. A healthy log costs one scan of the window.
fn recover_tail(
    tree: &sled::Tree,
    stored: Option<HeadRaw>,
    floor: u64,
    counter_of: Option<&CounterOf>,
) -> Result<HeadRaw> {
    let start = match stored {
        Some(h) => h.seq.saturating_sub(RECOVERY_WINDOW).max(1),
        None => 1,
    };
    let mut head = HeadRaw {
        seq: start - 1,
        hash: [0; 32],
        at_micros: 0,
    };
    if start > 1 {
        let below = tree.get(log_key(start - 1))?.ok_or(StoreError::Corrupt {
            seq: start - 1,
            reason: "a record below the recent tail is missing; restore from an export".into(),
        })?;
        let rec = decode(start - 1, &below)?;
        head.hash = Sha256::digest(&below).into();
        head.at_micros = rec.at.timestamp_micros();
    }
    let mut tail: Vec<RecordedEvent> = Vec::new();
    // A crash only ever loses records (sled drops log entries that fail their checksum);
    // it never alters one. So only a gap is a cut-short commit; a record that does not
    // decode or link is damage, and is left for `verify` to name.
    let mut damaged = false;
    for item in tree.range(log_key(start)..=log_key(u64::MAX)) {
        let (k, v) = item?;
        let seq = be_u64(&k[1..]);
        if seq != head.seq + 1 {
            break;
        }
        let prev = if head.seq == 0 {
            GENESIS_HASH.to_string()
        } else {
            hex::encode(head.hash)
        };
        let rec = match serde_json::from_slice::<RecordedEvent>(&v) {
            Ok(rec) if rec.seq == seq && rec.prev == prev => rec,
            _ => {
                damaged = true;
                break;
            }
        };
        head = HeadRaw {
            seq,
            hash: Sha256::digest(&v).into(),
            at_micros: rec.at.timestamp_micros(),
        };
        tail.push(rec);
        if stored.is_some_and(|s| s.seq == seq && s.hash != head.hash) {
            // A crash cannot change a record the head entry hashed in the same commit:
            // this is an altered record. Repair nothing; `verify` names it.
            tracing::error!(
                seq,
                "the head record does not match the stored head hash; run `avvik verify`"
            );
            return stored.ok_or(StoreError::Closed);
        }
    }
    if let (true, Some(s)) = (damaged, stored) {
        tracing::error!(
            first_bad_seq = head.seq + 1,
            "a record of the event log does not decode or link; run `avvik verify`"
        );
        return Ok(s);
    }
    if let Some(s) = stored {
        if head.seq < floor.min(s.seq) {
            // A break below the last commit is damage, not a cut-short commit: repair
            // nothing, so `verify` names it and no acknowledged record is dropped.
            tracing::error!(
                first_bad_seq = head.seq + 1,
                "the event log is damaged below its last commit; run `avvik verify`"
            );
            return Ok(s);
        }
    }
    let orphans: Vec<sled::IVec> = tree
        .range(log_key(head.seq + 1)..=log_key(u64::MAX))
        .keys()
        .collect::<std::result::Result<_, _>>()?;
    // The head entry agrees with the records (an empty log needs no entry).
    let head_ok = match stored {
        Some(h) => h.seq == head.seq && h.hash == head.hash,
        None => head.seq == 0,
    };
    // Re-assert the index entries of the newest records (a commit is at most a few
    // thousand records); cheap and idempotent.
    let mut batch = sled::Batch::default();
    let mut changes = 0usize;
    for rec in tail.iter().rev().take(8192) {
        let seq = rec.seq.to_be_bytes();
        for key in [
            stream_key(rec.stream, rec.version).to_vec(),
            id_key(rec.id).to_vec(),
        ] {
            if tree.get(&key)?.as_deref() != Some(&seq[..]) {
                batch.insert(key, &seq);
                changes += 1;
            }
        }
    }
    if head_ok && orphans.is_empty() && changes == 0 {
        return Ok(head);
    }
    tracing::warn!(
        stored_head = stored.map(|h| h.seq),
        recovered_head = head.seq,
        removed_records = orphans.len(),
        reindexed = changes,
        "repairing the tail of the event log after an interrupted commit"
    );
    for k in &orphans {
        batch.remove(k.clone());
    }
    // Index entries pointing past the head belong to removed records.
    for prefix in [K_STREAM, K_ID] {
        for item in tree.scan_prefix([prefix]) {
            let (k, v) = item?;
            if be_u64(&v) > head.seq {
                batch.remove(k);
            }
        }
    }
    if let Some(counter_of) = counter_of {
        let mut counters: HashMap<String, u64> = HashMap::new();
        for item in tree.range(log_key(1)..=log_key(head.seq)) {
            let (k, v) = item?;
            let rec = decode(be_u64(&k[1..]), &v)?;
            if let Some((name, value)) = counter_of(&rec) {
                let c = counters.entry(name).or_default();
                *c = (*c).max(value);
            }
        }
        for item in tree.scan_prefix([K_COUNTER]) {
            let (k, _) = item?;
            let name = String::from_utf8_lossy(&k[1..]).to_string();
            if !counters.contains_key(&name) {
                batch.remove(k);
            }
        }
        for (name, value) in counters {
            batch.insert(counter_key(&name), &value.to_be_bytes());
        }
    }
    // The repair itself goes on the record, so an auditor sees that (and where) the tail
    // was cut back, whether by a crash or by someone deleting records.
    if !head_ok || !orphans.is_empty() {
        let stream = recovery_stream();
        let version = tree
            .range(stream_key(stream, 0)..=stream_key(stream, u32::MAX))
            .keys()
            .next_back()
            .transpose()?
            .map(|k| {
                let mut b = [0u8; 4];
                b.copy_from_slice(&k[17..21]);
                u32::from_be_bytes(b)
            })
            .unwrap_or(0)
            + 1;
        let last_at = DateTime::<Utc>::from_timestamp_micros(head.at_micros).unwrap_or_default();
        let now = DateTime::<Utc>::from_timestamp_micros(Utc::now().timestamp_micros())
            .unwrap_or_default();
        let rec = RecordedEvent {
            seq: head.seq + 1,
            id: Uuid::now_v7(),
            stream,
            version,
            at: now.max(last_at),
            actor: "system".into(),
            event_type: "LogTailRecovered".into(),
            schema: 1,
            data: serde_json::json!({
                "stored_head_seq": stored.map(|h| h.seq),
                "stored_head_hash": stored.map(|h| hex::encode(h.hash)),
                "recovered_head_seq": head.seq,
                "removed_records": orphans.len(),
                "reindexed_entries": changes,
            }),
            prev: if head.seq == 0 {
                GENESIS_HASH.to_string()
            } else {
                hex::encode(head.hash)
            },
        };
        let bytes = rec.to_bytes();
        batch.insert(&log_key(rec.seq), bytes.clone());
        batch.insert(&stream_key(stream, version), &rec.seq.to_be_bytes());
        batch.insert(&id_key(rec.id), &rec.seq.to_be_bytes());
        head = HeadRaw {
            seq: rec.seq,
            hash: Sha256::digest(&bytes).into(),
            at_micros: rec.at.timestamp_micros(),
        };
    }
    batch.insert(K_HEAD, encode_head(&head, head.seq));
    tree.apply_batch(batch)?;
    tree.flush()?;
    Ok(head)
}

/// The stream that records repairs of the log itself.
pub fn recovery_stream() -> Uuid {
    Uuid::from_u128(0x6176_7669_6b2d_6c6f_672d_7265_636f_7672)
}

/// Opens sled, waiting briefly while a handle to the same database that was just dropped
/// in this process releases sled's own file lock: sled 0.34's background threads let go of
/// it shortly after `Db` is dropped, not when it is. We hold `avvik.lock` here, so no other
/// avvik process can be the holder; a lock that stays taken is still reported.
fn open_sled(config: &sled::Config) -> Result<sled::Db> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match config.open() {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            r => return Ok(r?),
        }
    }
}

const LOCK_FILE: &str = "avvik.lock";

/// Takes the data directory's lock file so two processes never open one store.
fn lock_dir(dir: &Path) -> Result<File> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked(dir.to_path_buf())),
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Io(e)),
    }
}

impl SledEventStore {
    /// Opens (or creates) the store in `dir`. Fails at once with `Locked` if another
    /// process holds it.
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<Self> {
        let Opened {
            lock,
            db,
            tree,
            head: head_raw,
            config,
        } = open_raw(dir, &opts)?;
        let head = head_raw.to_head();
        let (head_tx, _) = watch::channel(head.seq);
        let shared = Arc::new(Shared {
            db: RwLock::new(Some((db, tree))),
            dir: dir.to_path_buf(),
            config,
            counter_of: opts.counter_of.clone(),
            durable_seq: AtomicU64::new(head.seq),
            head: Mutex::new(head),
            head_tx,
            degraded: AtomicBool::new(false),
        });
        let (tx, rx) = mpsc::channel(opts.queue.max(1));
        let writer = Writer {
            shared: shared.clone(),
            head: head_raw,
            max_batch: opts.max_batch.max(1),
        };
        let handle = std::thread::Builder::new()
            .name("avvik-writer".into())
            .spawn(move || writer.run(rx))?;
        Ok(Self {
            shared,
            jobs: tx,
            writer: Some(handle),
            _lock: lock,
        })
    }

    /// Bytes the database takes on disk.
    pub fn size_on_disk(&self) -> Result<u64> {
        match &*self.shared.db.read().unwrap_or_else(|p| p.into_inner()) {
            Some((db, _)) => Ok(db.size_on_disk()?),
            None => Err(StoreError::Storage(
                "the event store is being reopened".into(),
            )),
        }
    }

    /// Writes records `from_seq..=to_seq` as NDJSON of their stored bytes.
    pub fn export(&self, from_seq: u64, to_seq: u64, out: &mut dyn Write) -> Result<u64> {
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

    /// Rebuilds an empty store from an NDJSON export, refusing a broken chain. `counter_of`
    /// recovers the gap-free counters. Returns the new head.
    pub fn import(
        dir: &Path,
        opts: StoreOptions,
        input: &mut dyn std::io::BufRead,
        counter_of: &CounterOf,
    ) -> Result<Head> {
        let opened = open_raw(dir, &opts)?;
        if opened.head.seq != 0 || opened.tree.first()?.is_some() {
            return Err(StoreError::Import(
                "the target store is not empty; import only into a new data directory".into(),
            ));
        }
        let raw = match import_records(&opened.tree, input, counter_of) {
            Ok(raw) => raw,
            Err(e) => {
                // Records are written in chunks as they are checked; a refused import
                // must not leave the early chunks behind (the target was empty).
                let tree = &opened.tree;
                if let Err(ce) = tree.clear().and_then(|()| tree.flush().map(|_| ())) {
                    tracing::error!(error = %ce, "could not clear a refused import");
                }
                return Err(e);
            }
        };
        drop(opened.tree);
        drop(opened.db);
        drop(opened.lock);
        Ok(raw.to_head())
    }

    fn read_one(&self, seq: u64) -> Result<Option<RecordedEvent>> {
        match self.shared.tree()?.get(log_key(seq))? {
            Some(bytes) => Ok(Some(decode(seq, &bytes)?)),
            None => Ok(None),
        }
    }
}

/// Writes the records of an NDJSON export into an empty `tree`, checking the chain as it
/// goes, then the rebuilt counters and the head. Returns the head.
fn import_records(
    tree: &sled::Tree,
    input: &mut dyn std::io::BufRead,
    counter_of: &CounterOf,
) -> Result<HeadRaw> {
    let mut checker = ChainChecker::new();
    let mut counters: HashMap<String, u64> = HashMap::new();
    let mut batch = sled::Batch::default();
    let mut in_batch = 0usize;
    let mut line = Vec::new();
    let mut last: Option<RecordedEvent> = None;
    let mut last_hash = [0u8; 32];
    loop {
        line.clear();
        let n = input.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if line.is_empty() {
            continue;
        }
        let rec = checker
            .check(&line)
            .map_err(|bad| StoreError::Import(bad.to_string()))?;
        batch.insert(&log_key(rec.seq), line.as_slice());
        batch.insert(&stream_key(rec.stream, rec.version), &rec.seq.to_be_bytes());
        batch.insert(&id_key(rec.id), &rec.seq.to_be_bytes());
        if let Some((name, value)) = counter_of(&rec) {
            let c = counters.entry(name).or_default();
            *c = (*c).max(value);
        }
        last_hash.copy_from_slice(&Sha256::digest(&line));
        last = Some(rec);
        in_batch += 1;
        if in_batch >= 10_000 {
            tree.apply_batch(std::mem::take(&mut batch))?;
            in_batch = 0;
        }
    }
    let Some(last) = last else {
        return Err(StoreError::Import("the export holds no records".into()));
    };
    for (name, value) in &counters {
        batch.insert(counter_key(name), &value.to_be_bytes());
    }
    let raw = HeadRaw {
        seq: last.seq,
        hash: last_hash,
        at_micros: last.at.timestamp_micros(),
    };
    batch.insert(K_HEAD, encode_head(&raw, raw.seq));
    tree.apply_batch(batch)?;
    tree.flush()?;
    Ok(raw)
}

fn decode(seq: u64, bytes: &[u8]) -> Result<RecordedEvent> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        seq,
        reason: e.to_string(),
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl EventStore for SledEventStore {
    fn append(
        &self,
        stream: Uuid,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> BoxFuture<'_, Result<Vec<RecordedEvent>>> {
        Box::pin(async move {
            let (reply, rx) = oneshot::channel();
            self.jobs
                .send(Job::Append {
                    stream,
                    expected,
                    events,
                    reply,
                })
                .await
                .map_err(|_| StoreError::Closed)?;
            rx.await.map_err(|_| StoreError::Closed)?
        })
    }

    fn append_numbered(
        &self,
        counter: String,
        stream: Uuid,
        expected: ExpectedVersion,
        build: NumberedBuild,
    ) -> BoxFuture<'_, Result<Vec<RecordedEvent>>> {
        Box::pin(async move {
            let (reply, rx) = oneshot::channel();
            self.jobs
                .send(Job::Numbered {
                    counter,
                    stream,
                    expected,
                    build,
                    reply,
                })
                .await
                .map_err(|_| StoreError::Closed)?;
            rx.await.map_err(|_| StoreError::Closed)?
        })
    }

    fn read_batch(&self, from_seq: u64, limit: usize) -> Result<Vec<RecordedEvent>> {
        let durable = self.shared.durable_seq.load(Ordering::Acquire);
        let from = from_seq.max(1);
        if from > durable || limit == 0 {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity(limit.min((durable - from + 1) as usize));
        for item in self.shared.tree()?.range(log_key(from)..=log_key(durable)) {
            let (k, v) = item?;
            let seq = be_u64(&k[1..]);
            out.push(decode(seq, &v)?);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    fn for_each_raw(
        &self,
        from_seq: u64,
        to_seq: u64,
        f: &mut dyn FnMut(u64, &[u8]) -> Result<()>,
    ) -> Result<()> {
        let durable = self.shared.durable_seq.load(Ordering::Acquire);
        let to = to_seq.min(durable);
        let from = from_seq.max(1);
        if from > to {
            return Ok(());
        }
        for item in self.shared.tree()?.range(log_key(from)..=log_key(to)) {
            let (k, v) = item?;
            f(be_u64(&k[1..]), &v)?;
        }
        Ok(())
    }

    fn read_stream(&self, stream: Uuid, from_version: u32) -> Result<Vec<RecordedEvent>> {
        let durable = self.shared.durable_seq.load(Ordering::Acquire);
        let start = stream_key(stream, from_version.max(1));
        let end = stream_key(stream, u32::MAX);
        let mut out = Vec::new();
        for item in self.shared.tree()?.range(start..=end) {
            let (_, v) = item?;
            let seq = be_u64(&v);
            if seq > durable {
                break;
            }
            match self.read_one(seq)? {
                Some(r) => out.push(r),
                None => {
                    return Err(StoreError::Corrupt {
                        seq,
                        reason: "stream index points at a missing record".into(),
                    })
                }
            }
        }
        Ok(out)
    }

    fn head(&self) -> Head {
        lock(&self.shared.head).clone()
    }

    fn watch_head(&self) -> watch::Receiver<u64> {
        self.shared.head_tx.subscribe()
    }

    fn counter(&self, name: &str) -> Result<u64> {
        Ok(self
            .shared
            .tree()?
            .get(counter_key(name))?
            .map(|v| be_u64(&v))
            .unwrap_or(0))
    }

    fn verify(&self) -> Result<VerifyReport> {
        // Pin the head first: appends go on while we walk, and a record committed after
        // this point must not be mistaken for one that is missing. The head entry stored in
        // sled must agree with the published one (or be ahead of it, by commits made since).
        let tree = self.shared.tree()?;
        let head = self.head();
        let mut checker = ChainChecker::new();
        for item in tree.scan_prefix([K_LOG]) {
            let (k, v) = item?;
            let key_seq = be_u64(&k[1..]);
            if key_seq > head.seq {
                break;
            }
            if checker.check_keyed(key_seq, &v).is_err() {
                break;
            }
        }
        let stored = tree.get(K_HEAD)?.and_then(|b| HeadRaw::decode(&b));
        let behind = match stored {
            None => head.seq > 0,
            Some(h) => h.seq < head.seq,
        };
        if behind {
            // The stored head entry fell behind the published head: it was altered.
            let s = stored.map(|h| h.seq).unwrap_or(0);
            let mut report = checker.finish(Some((head.seq, head.hash.clone())));
            if report.ok {
                report.ok = false;
                report.first_bad_seq = Some(s + 1);
                report.reason = Some(format!(
                    "the stored head entry says {s}, the log holds {}",
                    head.seq
                ));
            }
            return Ok(report);
        }
        Ok(checker.finish(Some((head.seq, head.hash))))
    }

    fn is_degraded(&self) -> bool {
        self.shared.degraded.load(Ordering::Relaxed)
    }
}

/// The single writer: owns the head, turns queued jobs into one batch and one flush.
struct Writer {
    shared: Arc<Shared>,
    head: HeadRaw,
    max_batch: usize,
}

type Reply = oneshot::Sender<Result<Vec<RecordedEvent>>>;

/// State of one batch being assembled: what earlier jobs in the same batch wrote.
#[derive(Default)]
struct Pending {
    batch: sled::Batch,
    versions: HashMap<Uuid, u32>,
    /// Seq and stored bytes of each record staged so far, by id. Kept as bytes (shared with
    /// the batch) rather than a cloned record: a re-sent id inside one batch is rare, so it
    /// pays the decode instead of every append paying a deep clone.
    ids: HashMap<Uuid, (u64, sled::IVec)>,
    counters: HashMap<String, u64>,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        let mut jobs: Vec<Job> = Vec::with_capacity(self.max_batch);
        while let Some(first) = rx.blocking_recv() {
            jobs.push(first);
            while jobs.len() < self.max_batch {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            self.commit(&mut jobs);
        }
        tracing::debug!("event store writer stopped");
    }

    fn commit(&mut self, jobs: &mut Vec<Job>) {
        // If a reopen failed earlier, try again; if it fails still, staging answers each
        // job with the storage error.
        self.ensure_open();
        let start_head = self.head;
        let mut pending = Pending::default();
        let mut answers: Vec<(Reply, Result<Vec<RecordedEvent>>)> = Vec::with_capacity(jobs.len());
        for job in jobs.drain(..) {
            match job {
                Job::Append {
                    stream,
                    expected,
                    events,
                    reply,
                } => {
                    let r = self.stage(&mut pending, stream, expected, events, None);
                    answers.push((reply, r));
                }
                Job::Numbered {
                    counter,
                    stream,
                    expected,
                    build,
                    reply,
                } => {
                    let r = self.stage_numbered(&mut pending, counter, stream, expected, build);
                    answers.push((reply, r));
                }
            }
        }
        if self.head.seq != start_head.seq {
            pending
                .batch
                .insert(K_HEAD, encode_head(&self.head, start_head.seq));
            let written = self.shared.tree().and_then(|tree| {
                tree.apply_batch(std::mem::take(&mut pending.batch))
                    .and_then(|()| tree.flush().map(|_| ()))
                    .map_err(StoreError::from)
            });
            if let Err(e) = written {
                tracing::error!(error = %e, "event store commit failed; reopening the database");
                self.shared.degraded.store(true, Ordering::Relaxed);
                // sled fails every later operation once an I/O error occurred, and the
                // batch may or may not be in it. Drop the database and open it again from
                // disk: that recovers what was flushed, and the head read then keeps the
                // chain consistent. Nothing of this batch was acknowledged; callers get an
                // error and may retry with the same event ids (idempotent).
                self.head = self.reopen().unwrap_or(start_head);
                for (reply, r) in answers {
                    let r = match r {
                        Ok(_) => Err(StoreError::Storage(e.to_string())),
                        Err(err) => Err(err),
                    };
                    let _ = reply.send(r);
                }
                self.publish();
                return;
            }
            self.shared.degraded.store(false, Ordering::Relaxed);
            self.publish();
        }
        for (reply, r) in answers {
            let _ = reply.send(r);
        }
    }

    /// Closes and reopens the database; returns the head it holds. On failure the store
    /// stays closed (`tree()` errors) and the next commit tries again.
    fn reopen(&mut self) -> Option<HeadRaw> {
        let mut guard = self.shared.db.write().unwrap_or_else(|p| p.into_inner());
        drop(guard.take());
        match open_db(&self.shared.config, self.shared.counter_of.as_deref()) {
            Ok((db, tree, head)) => {
                *guard = Some((db, tree));
                tracing::info!(seq = head.seq, "event store reopened");
                Some(head)
            }
            Err(e) => {
                tracing::error!(error = %e, "event store could not be reopened; retrying with the next write");
                None
            }
        }
    }

    /// Before staging: a store left closed by a failed reopen is opened again.
    fn ensure_open(&mut self) -> bool {
        let open = self
            .shared
            .db
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        if open {
            return true;
        }
        match self.reopen() {
            Some(head) => {
                self.head = head;
                self.publish();
                true
            }
            None => false,
        }
    }

    fn publish(&self) {
        let head = self.head.to_head();
        self.shared
            .durable_seq
            .store(self.head.seq, Ordering::Release);
        *lock(&self.shared.head) = head;
        self.shared.head_tx.send_replace(self.head.seq);
    }

    fn stage_numbered(
        &mut self,
        pending: &mut Pending,
        counter: String,
        stream: Uuid,
        expected: ExpectedVersion,
        build: NumberedBuild,
    ) -> Result<Vec<RecordedEvent>> {
        let current = match pending.counters.get(&counter) {
            Some(v) => *v,
            None => self
                .shared
                .tree()?
                .get(counter_key(&counter))?
                .map(|v| be_u64(&v))
                .unwrap_or(0),
        };
        let next = current + 1;
        let events = build(next);
        self.stage(pending, stream, expected, events, Some((counter, next)))
    }

    fn current_version(&self, pending: &Pending, stream: Uuid) -> Result<u32> {
        if let Some(v) = pending.versions.get(&stream) {
            return Ok(*v);
        }
        let last = self
            .shared
            .tree()?
            .range(stream_key(stream, 0)..=stream_key(stream, u32::MAX))
            .next_back()
            .transpose()?;
        Ok(last
            .map(|(k, _)| {
                let mut b = [0u8; 4];
                b.copy_from_slice(&k[17..21]);
                u32::from_be_bytes(b)
            })
            .unwrap_or(0))
    }

    fn stored_by_id(&self, pending: &Pending, id: Uuid) -> Result<Option<RecordedEvent>> {
        if let Some((seq, bytes)) = pending.ids.get(&id) {
            return Ok(Some(decode(*seq, bytes)?));
        }
        match self.shared.tree()?.get(id_key(id))? {
            Some(seq) => {
                let seq = be_u64(&seq);
                match self.shared.tree()?.get(log_key(seq))? {
                    Some(bytes) => Ok(Some(decode(seq, &bytes)?)),
                    None => Err(StoreError::Corrupt {
                        seq,
                        reason: "id index points at a missing record".into(),
                    }),
                }
            }
            None => Ok(None),
        }
    }

    fn stage(
        &mut self,
        pending: &mut Pending,
        stream: Uuid,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        counter: Option<(String, u64)>,
    ) -> Result<Vec<RecordedEvent>> {
        if events.is_empty() {
            return Err(StoreError::InvalidAppend("no events to append".into()));
        }
        // Idempotency: a re-sent batch of known ids returns what is stored.
        let mut known = Vec::new();
        for e in &events {
            if let Some(r) = self.stored_by_id(pending, e.id)? {
                known.push(r);
            }
        }
        if !known.is_empty() {
            if known.len() == events.len() && known.iter().all(|r| r.stream == stream) {
                return Ok(known);
            }
            return Err(StoreError::InvalidAppend(
                "some event ids are already stored, others are not".into(),
            ));
        }
        let actual = self.current_version(pending, stream)?;
        let ok = match expected {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exact(v) => actual == v,
        };
        if !ok {
            return Err(StoreError::Conflict {
                stream,
                expected,
                actual,
            });
        }
        let mut out = Vec::with_capacity(events.len());
        let mut version = actual;
        for e in events {
            version += 1;
            let seq = self.head.seq + 1;
            let last_at = DateTime::<Utc>::from_timestamp_micros(self.head.at_micros)
                .unwrap_or(DateTime::<Utc>::MIN_UTC);
            // Stored times have microsecond precision; truncate here so the record
            // returned to the caller is the record that is stored (and hashed).
            let at = e.at.trunc_subsecs(6);
            let at = if self.head.seq > 0 && at < last_at {
                last_at
            } else {
                at
            };
            let rec = RecordedEvent {
                seq,
                id: e.id,
                stream,
                version,
                at,
                actor: e.actor,
                event_type: e.event_type,
                schema: e.schema,
                data: e.data,
                prev: if self.head.seq == 0 {
                    GENESIS_HASH.to_string()
                } else {
                    hex::encode(self.head.hash)
                },
            };
            let bytes = sled::IVec::from(rec.to_bytes());
            let hash: [u8; 32] = Sha256::digest(&bytes).into();
            pending.batch.insert(&log_key(seq), bytes.clone());
            pending
                .batch
                .insert(&stream_key(stream, version), &seq.to_be_bytes());
            pending.batch.insert(&id_key(rec.id), &seq.to_be_bytes());
            pending.ids.insert(rec.id, (seq, bytes));
            self.head = HeadRaw {
                seq,
                hash,
                at_micros: rec.at.timestamp_micros(),
            };
            out.push(rec);
        }
        pending.versions.insert(stream, version);
        if let Some((name, value)) = counter {
            pending
                .batch
                .insert(counter_key(&name), &value.to_be_bytes());
            pending.counters.insert(name, value);
        }
        Ok(out)
    }
}

/// Hex hash of a record's stored bytes (re-exported convenience).
pub fn record_hash(rec: &RecordedEvent) -> String {
    hash_hex(&rec.to_bytes())
}
