//! Keeps the states folded from the log current: each folds the whole log at start-up
//! (off the async threads), then follows new commits live. Readers wait for a seq to get
//! read-your-writes.
//!
//! Start-up reads the log once for all of them (`replay`): one thread reads the stored
//! bytes, a thread per core decodes and opens them, each state applies the decoded records
//! on its own thread, in log order.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use avvik_events::{EventStore, RecordView, RecordedEvent, StoreError, Subscription};
use tokio::sync::watch;
use uuid::Uuid;

use crate::domain::{Deviation, DeviationEvent, EventMeta};
use crate::privacy::{ForDecode, Keyring, Spliced};

/// A state folded from the log record by record: the register, the outbox, the intake view.
pub trait LogFold: Send + Sync + 'static {
    fn apply(&mut self, rec: &RecordedEvent);
    /// A deviation event, decoded once for every state at start-up. Must leave the state
    /// as `apply` of the same record would.
    fn apply_deviation(&mut self, ev: &DecodedDeviation);
    /// A deviation event at start-up that the register folded first in the same pass
    /// (`replay_sharing`): `after` is the register's state of the deviation after it
    /// (`None`: the event left none). A fold that keeps deviations takes this state
    /// instead of evolving a copy of its own; the default ignores it.
    fn apply_evolved(&mut self, ev: &DecodedDeviation, after: Option<&Arc<Deviation>>) {
        let _ = after;
        self.apply_deviation(ev)
    }
    /// The last seq folded in.
    fn seq(&self) -> u64;
    /// Called after new records are folded in and their seq is published.
    fn published(&self) {}
    /// A record that cannot be read at all, passed over. The default logs it.
    fn skip_unreadable(&mut self, seq: u64, reason: &str) {
        tracing::error!(
            seq,
            reason,
            state = std::any::type_name::<Self>(),
            "a stored record cannot be read; skipped (avvik verify names it)"
        );
    }
}

/// A fold whose deviation states others may share (the register): folding a deviation
/// event returns the state it reached.
pub trait SharedStates: LogFold {
    /// As `apply_deviation`; returns the deviation's state after the event (`None`: the
    /// event did not decode or left no deviation).
    fn apply_shared(&mut self, ev: &DecodedDeviation) -> Option<Arc<Deviation>>;
}

/// Records per hand-over while following the log.
const FOLLOW_BATCH: usize = 4096;

/// How long a follower with a leader waits for the leader to reach a batch's seq before it
/// applies the batch anyway (then without the leader's states).
const LEAD_WAIT: Duration = Duration::from_secs(1);

/// Follows the log from `from` until `shutdown`: new records are read and opened
/// (`Keyring::open`) what is already there in one go, up to 4096, then applied under the
/// write lock, then `publish` gets the seq reached. With `lead` (the register's published
/// seq, for the outbox), a batch waits briefly until the leader has folded it, so the
/// deviation states the leader reached can be shared rather than evolved again.
/// A record that cannot be read goes to `skip_unreadable` once; other read errors are
/// logged and retried every 500 ms.
#[allow(clippy::too_many_arguments)]
pub async fn follow_log<T: LogFold>(
    store: Arc<dyn EventStore>,
    keys: Arc<Keyring>,
    from: u64,
    mut shutdown: watch::Receiver<bool>,
    state: &RwLock<T>,
    what: &'static str,
    mut lead: Option<watch::Receiver<u64>>,
    publish: impl Fn(u64),
) {
    let write = || state.write().unwrap_or_else(|p| p.into_inner());
    let mut sub = Subscription::new(store, from);
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            next = sub.next() => {
                // Each read record, or the seq and reason of one that cannot be read.
                let mut batch: Vec<Result<RecordedEvent, (u64, String)>> = Vec::new();
                match next {
                    Ok(first) => batch.push(Ok(first)),
                    Err(StoreError::Closed) => break,
                    Err(StoreError::Corrupt { seq, reason }) => batch.push(Err((seq, reason))),
                    Err(e) => {
                        tracing::error!(error = %e, "{what} could not read the log; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                }
                while batch.len() < FOLLOW_BATCH {
                    match sub.try_next() {
                        Ok(Some(rec)) => batch.push(Ok(rec)),
                        Err(StoreError::Corrupt { seq, reason }) => batch.push(Err((seq, reason))),
                        // Nothing more now, or an error `next` will meet again.
                        Ok(None) | Err(_) => break,
                    }
                }
                for rec in batch.iter_mut().flatten() {
                    keys.open_record(rec);
                }
                if let (Some(lead), Some(Ok(last))) = (lead.as_mut(), batch.last()) {
                    let last = last.seq;
                    tokio::select! {
                        _ = shutdown.changed() => break,
                        _ = tokio::time::timeout(LEAD_WAIT, lead.wait_for(|s| *s >= last)) => {}
                    }
                }
                let seq = {
                    let mut s = write();
                    for rec in &batch {
                        match rec {
                            Ok(rec) => s.apply(rec),
                            Err((seq, reason)) => s.skip_unreadable(*seq, reason),
                        }
                    }
                    s.seq()
                };
                publish(seq);
            }
        }
    }
}

/// The envelope fields a deviation's fold needs.
pub fn meta_of(rec: &RecordedEvent) -> EventMeta {
    EventMeta {
        seq: rec.seq,
        at: rec.at,
        actor: rec.actor.clone(),
    }
}

/// Runs a start-up catch-up (`fold`) off the async threads and hands its result to
/// `install`. A failure or a panic is logged; what it was to install stays not ready.
pub fn catch_up<T: Send + 'static>(
    what: &'static str,
    fold: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
    install: impl FnOnce(T) + Send + 'static,
) {
    tokio::spawn(async move {
        match tokio::task::spawn_blocking(fold).await {
            Ok(Ok(state)) => install(state),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "{what}: catching up from the log failed; not ready")
            }
            Err(e) => tracing::error!(error = %e, "{what}: catching up from the log panicked"),
        }
    });
}

/// A deviation event as start-up replay hands it over: envelope and typed payload.
#[derive(Debug)]
pub struct DecodedDeviation {
    pub meta: EventMeta,
    pub id: Uuid,
    pub stream: Uuid,
    /// The payload, or why it did not decode.
    pub event: Result<DeviationEvent, String>,
}

/// One stored record, read and decoded once for every state.
#[derive(Debug)]
pub enum Decoded {
    Deviation(DecodedDeviation),
    /// Any other record, whole (account, notice and intake events are few).
    Other(RecordedEvent),
    /// A record that cannot be read: its seq and why.
    Unreadable(u64, String),
}

impl Decoded {
    /// Decodes stored bytes, opening sealed fields. A record that is not a deviation event
    /// becomes a whole `RecordedEvent`, so a state's `apply` sees exactly what the live
    /// path gives it.
    pub fn read(seq: u64, bytes: &[u8], keys: &Keyring) -> Self {
        let view = match RecordView::parse(bytes) {
            Ok(v) => v,
            Err(e) => return Decoded::Unreadable(seq, e.to_string()),
        };
        let raw = view.data.get();
        let decoded = match keys.open_for_decode(view.stream, view.id, &view.event_type, raw) {
            ForDecode::Clear => DeviationEvent::from_raw(&view.event_type, raw),
            ForDecode::Opened(opened) => DeviationEvent::from_deserializer(
                &view.event_type,
                Spliced {
                    clear: raw,
                    opened: &opened,
                },
            ),
            ForDecode::General => {
                let data = keys.open_raw(view.stream, view.id, &view.event_type, raw);
                DeviationEvent::from_raw(&view.event_type, &data)
            }
        };
        match decoded {
            Some(event) => Decoded::Deviation(DecodedDeviation {
                meta: EventMeta {
                    seq: view.seq,
                    at: view.at,
                    actor: view.actor.into_owned(),
                },
                id: view.id,
                stream: view.stream,
                event: event.map_err(|e| e.to_string()),
            }),
            None => match view.to_record() {
                Ok(mut rec) => {
                    keys.open_record(&mut rec);
                    Decoded::Other(rec)
                }
                Err(e) => Decoded::Unreadable(seq, e.to_string()),
            },
        }
    }

    fn apply_to(&self, fold: &mut dyn LogFold) {
        match self {
            Decoded::Deviation(d) => fold.apply_deviation(d),
            Decoded::Other(rec) => fold.apply(rec),
            Decoded::Unreadable(seq, reason) => fold.skip_unreadable(*seq, reason),
        }
    }
}

/// Records decoded per hand-over between the reading thread and the folding threads.
const REPLAY_CHUNK: usize = 1024;

/// Threads that decode (and open) records at start-up: one per core, at most four.
fn decoders() -> usize {
    std::thread::available_parallelism()
        .map(std::num::NonZeroUsize::get)
        .unwrap_or(1)
        .clamp(1, 4)
}

/// A chunk of stored records as read, for a decoding thread: their bytes back to back.
struct RawChunk {
    index: usize,
    bytes: Vec<u8>,
    /// Seq and end offset in `bytes` of each record, in log order.
    records: Vec<(u64, usize)>,
}

impl RawChunk {
    fn new(index: usize) -> Self {
        Self {
            index,
            bytes: Vec::with_capacity(REPLAY_CHUNK * 1024),
            records: Vec::with_capacity(REPLAY_CHUNK),
        }
    }

    fn decode(&self, keys: &Keyring) -> Vec<Decoded> {
        let mut start = 0;
        self.records
            .iter()
            .map(|&(seq, end)| {
                let d = Decoded::read(seq, &self.bytes[start..end], keys);
                start = end;
                d
            })
            .collect()
    }
}

/// Decoded records as the folding threads get them, in log order.
struct Folded {
    decoded: Vec<Decoded>,
    /// With the register folding first: for each record, the deviation's state after it
    /// (`None` for records that are not deviation events or left no deviation).
    after: Option<Vec<Option<Arc<Deviation>>>>,
}

impl Folded {
    fn apply_to(&self, fold: &mut dyn LogFold) {
        for (i, d) in self.decoded.iter().enumerate() {
            match (&self.after, d) {
                (Some(after), Decoded::Deviation(dd)) => fold.apply_evolved(dd, after[i].as_ref()),
                _ => d.apply_to(fold),
            }
        }
    }
}

/// Folds the records `from..=to` into every one of `folds` in one pass over the log: the
/// calling thread reads the stored bytes, decoding threads (one per core) decode and open
/// them a chunk at a time, and each fold applies the decoded records on a thread of its
/// own, in log order. At most a few chunks are in flight, so memory stays bounded.
pub fn replay(
    store: &dyn EventStore,
    keys: &Keyring,
    from: u64,
    to: u64,
    folds: &mut [&mut dyn LogFold],
) -> Result<(), StoreError> {
    replay_inner(store, keys, from, to, None, folds)
}

/// As `replay`, with the register (`first`) ahead of the others: it folds each chunk on its thread and hands the
/// deviation states it reached on to `folds` (`LogFold::apply_evolved`), so a fold that
/// keeps deviations (the outbox) shares the register's states instead of holding a second
/// copy of every deviation.
pub fn replay_sharing(
    store: &dyn EventStore,
    keys: &Keyring,
    from: u64,
    to: u64,
    first: &mut dyn SharedStates,
    folds: &mut [&mut dyn LogFold],
) -> Result<(), StoreError> {
    replay_inner(store, keys, from, to, Some(first), folds)
}

fn replay_inner(
    store: &dyn EventStore,
    keys: &Keyring,
    from: u64,
    to: u64,
    first: Option<&mut dyn SharedStates>,
    folds: &mut [&mut dyn LogFold],
) -> Result<(), StoreError> {
    let workers = decoders();
    let (raw_tx, raw_rx) = mpsc::sync_channel::<RawChunk>(workers * 2);
    let raw_rx = std::sync::Mutex::new(raw_rx);
    std::thread::scope(|scope| {
        let mut senders = Vec::with_capacity(folds.len());
        for fold in folds.iter_mut() {
            let (tx, rx) = mpsc::sync_channel::<Arc<Folded>>(4);
            senders.push(tx);
            let fold: &mut dyn LogFold = &mut **fold;
            scope.spawn(move || {
                for chunk in rx {
                    chunk.apply_to(fold);
                }
            });
        }
        // A fold thread that panicked has dropped its receiver; the scope re-raises its
        // panic when it ends, so a failed send needs no handling here.
        let to_folds = move |chunk: Folded| {
            let chunk = Arc::new(chunk);
            for tx in &senders {
                let _ = tx.send(chunk.clone());
            }
        };
        let hand_over: Box<dyn Fn(Vec<Decoded>) + Send + '_> = match first {
            None => Box::new(move |decoded| {
                to_folds(Folded {
                    decoded,
                    after: None,
                })
            }),
            Some(reg) => {
                let (tx, rx) = mpsc::sync_channel::<Vec<Decoded>>(4);
                scope.spawn(move || {
                    for decoded in rx {
                        let after = decoded
                            .iter()
                            .map(|d| match d {
                                Decoded::Deviation(dd) => reg.apply_shared(dd),
                                other => {
                                    other.apply_to(&mut *reg);
                                    None
                                }
                            })
                            .collect();
                        to_folds(Folded {
                            decoded,
                            after: Some(after),
                        });
                    }
                });
                Box::new(move |decoded| {
                    let _ = tx.send(decoded);
                })
            }
        };
        let (done_tx, done_rx) = mpsc::sync_channel::<(usize, Vec<Decoded>)>(workers * 2);
        for _ in 0..workers {
            let done_tx = done_tx.clone();
            let raw_rx = &raw_rx;
            scope.spawn(move || loop {
                // The lock is held while waiting for work only, not while decoding.
                let next = raw_rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                let Ok(raw) = next else { break };
                if done_tx.send((raw.index, raw.decode(keys))).is_err() {
                    break;
                }
            });
        }
        drop(done_tx);
        // Chunks come back from the decoders in any order; the folds get them in log order.
        scope.spawn(move || {
            let mut next = 0;
            let mut waiting = std::collections::BTreeMap::new();
            for (index, decoded) in done_rx {
                waiting.insert(index, decoded);
                while let Some(d) = waiting.remove(&next) {
                    hand_over(d);
                    next += 1;
                }
            }
        });
        let mut chunk = RawChunk::new(0);
        let read = store.for_each_raw(from, to, &mut |seq, bytes| {
            chunk.bytes.extend_from_slice(bytes);
            chunk.records.push((seq, chunk.bytes.len()));
            if chunk.records.len() == REPLAY_CHUNK {
                let next = RawChunk::new(chunk.index + 1);
                // The decoders are gone only if one panicked; the scope re-raises it.
                let _ = raw_tx.send(std::mem::replace(&mut chunk, next));
            }
            Ok(())
        });
        if !chunk.records.is_empty() {
            let _ = raw_tx.send(chunk);
        }
        drop(raw_tx);
        read
    })
}

/// A fold kept current: caught up from the log at start-up, then following new commits.
pub struct Projection<T> {
    state: RwLock<T>,
    seq_tx: watch::Sender<u64>,
    ready: AtomicBool,
    what: &'static str,
}

impl<T: LogFold> Projection<T> {
    /// A projection not caught up yet: `is_ready` is false until `install`.
    pub fn pending(empty: T, what: &'static str) -> Arc<Self> {
        let (seq_tx, _) = watch::channel(0);
        Arc::new(Self {
            state: RwLock::new(empty),
            seq_tx,
            ready: AtomicBool::new(false),
            what,
        })
    }

    /// Catches up alone (its own pass over the log) and follows it from there. `empty`
    /// makes the state to fold into.
    pub fn start(
        empty: impl Fn() -> T + Send + 'static,
        what: &'static str,
        store: Arc<dyn EventStore>,
        keys: Arc<Keyring>,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<Self> {
        let this = Self::pending(empty(), what);
        let me = this.clone();
        let s2 = store.clone();
        let k2 = keys.clone();
        catch_up(
            what,
            move || {
                let mut state = empty();
                let head = s2.head().seq;
                replay(s2.as_ref(), &k2, 1, head, &mut [&mut state]).map(|()| state)
            },
            move |state| me.install(state, store, keys, shutdown),
        );
        this
    }

    /// Puts in the caught-up state, turns ready and follows the log from there.
    pub fn install(
        self: &Arc<Self>,
        state: T,
        store: Arc<dyn EventStore>,
        keys: Arc<Keyring>,
        shutdown: watch::Receiver<bool>,
    ) {
        self.install_following(state, store, keys, shutdown, None)
    }

    /// As `install`; with `lead`, each new batch first waits (briefly) until the leader's
    /// published seq covers it (`follow_log`).
    pub fn install_following(
        self: &Arc<Self>,
        state: T,
        store: Arc<dyn EventStore>,
        keys: Arc<Keyring>,
        shutdown: watch::Receiver<bool>,
        lead: Option<watch::Receiver<u64>>,
    ) {
        let seq = state.seq();
        *self.write() = state;
        // Ready first, then the (always notifying) seq update, so a waiter that sees the
        // seq also sees readiness.
        self.ready.store(true, Ordering::Release);
        self.publish(seq);
        tracing::info!(seq, "{} caught up", self.what);
        let me = self.clone();
        tokio::spawn(async move {
            follow_log(
                store,
                keys,
                seq + 1,
                shutdown,
                &me.state,
                me.what,
                lead,
                |seq| me.publish(seq),
            )
            .await;
        });
    }

    fn publish(&self, seq: u64) {
        self.read().published();
        self.seq_tx.send_replace(seq);
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, T> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The state if no writer holds it now (never waits: for a fold that shares another's
    /// states while it holds its own write lock).
    pub fn try_read(&self) -> Option<RwLockReadGuard<'_, T>> {
        match self.state.try_read() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// The last seq folded in and published.
    pub fn seq(&self) -> u64 {
        *self.seq_tx.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.seq_tx.subscribe()
    }

    /// Waits until `seq` is folded in and the projection is ready (bounded by `timeout`).
    pub async fn wait_for(&self, seq: u64, timeout: Duration) -> bool {
        let mut rx = self.seq_tx.subscribe();
        let done = async {
            let _ = rx.wait_for(|s| *s >= seq && self.is_ready()).await;
        };
        tokio::time::timeout(timeout, done).await.is_ok() && self.is_ready()
    }
}
