//! The sled backend: one sled tree holds records and indexes ([`keys`]); one writer thread
//! owns the chain tip and commits queued appends in one atomic batch and one `flush()`
//! ([`writer`]); every open repairs a tail cut short by a crash ([`recovery`]); import
//! fills an empty store from an export ([`transfer`]). The rules of an append are
//! [`crate::store::rules`], shared with every backend.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use crate::record::{NewEvent, RecordedEvent};
use crate::store::rules::ChainTip;
use crate::store::{
    BoxFuture, CounterOf, EventStore, ExpectedVersion, Head, NumberedBuild, Result, StoreError,
};
use crate::verify::{ChainChecker, VerifyReport};

mod keys;
mod recovery;
mod transfer;
mod writer;

use keys::{be_u64, counter_key, decode_head, head_floor, log_key, stream_key, K_HEAD, K_LOG};
use writer::{Job, Writer};

pub use crate::store::rules::recovery_stream;

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

pub(crate) struct Shared {
    /// The open database. `None` while the writer reopens it after a storage error
    /// (sled keeps failing once an I/O error occurred; a fresh open recovers from its log).
    pub(crate) db: RwLock<Option<(sled::Db, sled::Tree)>>,
    dir: PathBuf,
    pub(crate) config: sled::Config,
    pub(crate) counter_of: Option<Arc<CounterOf>>,
    pub(crate) durable_seq: AtomicU64,
    head: Mutex<Head>,
    head_tx: watch::Sender<u64>,
    pub(crate) degraded: AtomicBool,
    /// Held by the writer for each commit and by an import for its whole run, so the two
    /// never write at once. An import leaves the head it wrote here for the writer.
    pub(crate) gate: Mutex<Option<ChainTip>>,
}

impl Shared {
    /// The current tree (a cheap handle), or an error while the database is reopened.
    pub(crate) fn tree(&self) -> Result<sled::Tree> {
        match &*self.db.read().unwrap_or_else(|p| p.into_inner()) {
            Some((_, tree)) => Ok(tree.clone()),
            None => Err(StoreError::Storage(format!(
                "the event store in {} is being reopened after an error",
                self.dir.display()
            ))),
        }
    }

    /// Makes `tip` the durable head readers see.
    pub(crate) fn publish(&self, tip: ChainTip) {
        let head = tip.to_head();
        self.durable_seq.store(tip.seq, Ordering::Release);
        *lock(&self.head) = head;
        self.head_tx.send_replace(tip.seq);
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

/// Opens the database and reads the head (the lock file is the caller's).
pub(crate) fn open_db(
    config: &sled::Config,
    counter_of: Option<&CounterOf>,
) -> Result<(sled::Db, sled::Tree, ChainTip)> {
    let db = open_sled(config)?;
    let tree = db.open_tree("log")?;
    let (stored, floor) = match tree.get(K_HEAD)? {
        Some(b) => (
            Some(decode_head(&b).ok_or(StoreError::Corrupt {
                seq: 0,
                reason: "head record has the wrong length".into(),
            })?),
            head_floor(&b),
        ),
        None => (None, 0),
    };
    let head = recovery::recover_tail(&tree, stored, floor, counter_of)?;
    Ok((db, tree, head))
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
        let lock = lock_dir(dir)?;
        let config = sled::Config::new()
            .path(dir.join("events"))
            .cache_capacity(opts.cache_capacity)
            .mode(sled::Mode::HighThroughput);
        let (db, tree, tip) = open_db(&config, opts.counter_of.as_deref())?;
        let head = tip.to_head();
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
            gate: Mutex::new(None),
        });
        let (tx, rx) = mpsc::channel(opts.queue.max(1));
        let writer = Writer {
            shared: shared.clone(),
            head: tip,
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

    fn read_one(&self, seq: u64) -> Result<Option<RecordedEvent>> {
        match self.shared.tree()?.get(log_key(seq))? {
            Some(bytes) => Ok(Some(decode(seq, &bytes)?)),
            None => Ok(None),
        }
    }

    async fn submit(
        &self,
        job: Job,
        rx: oneshot::Receiver<Result<Vec<RecordedEvent>>>,
    ) -> Result<Vec<RecordedEvent>> {
        self.jobs.send(job).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

pub(crate) fn decode(seq: u64, bytes: &[u8]) -> Result<RecordedEvent> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        seq,
        reason: e.to_string(),
    })
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
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
            let job = Job::Append {
                stream,
                expected,
                events,
                reply,
            };
            self.submit(job, rx).await
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
            let job = Job::Numbered {
                counter,
                stream,
                expected,
                build,
                reply,
            };
            self.submit(job, rx).await
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

    fn read_batch_async(
        &self,
        from_seq: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<RecordedEvent>>> {
        // Read in place: a page-cache lookup, cheaper than a hop to the blocking pool.
        let r = self.read_batch(from_seq, limit);
        Box::pin(std::future::ready(r))
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

    fn read_stream_async(
        &self,
        stream: Uuid,
        from_version: u32,
    ) -> BoxFuture<'_, Result<Vec<RecordedEvent>>> {
        // Read in place, as `read_batch_async`.
        let r = self.read_stream(stream, from_version);
        Box::pin(std::future::ready(r))
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
        let stored = tree.get(K_HEAD)?.and_then(|b| decode_head(&b));
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

    fn size_on_disk(&self) -> Result<u64> {
        match &*self.shared.db.read().unwrap_or_else(|p| p.into_inner()) {
            Some((db, _)) => Ok(db.size_on_disk()?),
            None => Err(StoreError::Storage(
                "the event store is being reopened".into(),
            )),
        }
    }

    fn import(&self, input: &mut dyn std::io::BufRead, counter_of: &CounterOf) -> Result<Head> {
        transfer::import(&self.shared, input, counter_of)
    }
}
