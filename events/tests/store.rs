//! The event store's conformance suite, and the tests only sled can run.
//!
//! `conformance` holds what every backend must do (the hash chain, optimistic concurrency,
//! idempotency, concurrent appends, gap-free counters, durability across reopen,
//! subscriptions, export/import, tamper detection on exports, reads), each test a function
//! over a [`Backend`]. A backend runs all of it with one line:
//!
//! ```ignore
//! conformance_suite!(on_postgres, PostgresBackend::new());
//! ```
//!
//! after implementing `Backend` (where a store lives between opens, and how to open it).
//! It runs here on sled, on PostgreSQL (a throw-away cluster, [`pg_cluster`]) and on an
//! in-memory backend built from the shared rules alone. `sled_only` holds what only makes
//! sense for sled: changing its database's bytes directly, its tail recovery, its
//! directory lock, and the import that opens a directory itself. `postgres_only` holds
//! what only makes sense for PostgreSQL: two processes on one database, a lost or
//! unreachable server, rows changed in the database.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use avvik_events::{
    hash_hex, read_all, verify_export, EventStore, ExpectedVersion, NewEvent, PostgresEventStore,
    PostgresOptions, RecordedEvent, SledEventStore, StoreError, StoreOptions, Subscription,
    VerifyReport, GENESIS_HASH,
};
use chrono::Utc;
use serde_json::{json, Value};
use tempfile::TempDir;
use uuid::Uuid;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn opts() -> StoreOptions {
    StoreOptions {
        cache_capacity: 16 * 1024 * 1024,
        ..StoreOptions::default()
    }
}

fn tempdir() -> TempDir {
    tempfile::tempdir().expect("create temp dir")
}

fn open(dir: &Path) -> SledEventStore {
    SledEventStore::open(dir, opts()).expect("open store")
}

fn ev(event_type: &str, data: Value) -> NewEvent {
    NewEvent::new(event_type, data, "user:ciso@kommunen.example", Utc::now())
}

/// `(seq, stored bytes)` of every durable record.
fn raw_log(store: &dyn EventStore) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    store
        .for_each_raw(1, u64::MAX, &mut |seq, bytes| {
            out.push((seq, bytes.to_vec()));
            Ok(())
        })
        .expect("read raw log");
    out
}

fn all_records(store: &dyn EventStore) -> Vec<RecordedEvent> {
    read_all(store, 1)
        .collect::<Result<Vec<_>, _>>()
        .expect("read all records")
}

fn export_bytes(store: &dyn EventStore) -> Vec<u8> {
    let mut out = Vec::new();
    let n = store.export(1, u64::MAX, &mut out).expect("export");
    assert_eq!(n, store.head().seq, "export writes every record");
    out
}

fn lines_of(export: &[u8]) -> Vec<Vec<u8>> {
    export
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn join_lines(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

fn verify_bytes(bytes: &[u8], head: Option<(u64, String)>) -> VerifyReport {
    verify_export(&mut &bytes[..], head).expect("reading from memory cannot fail")
}

/// Replaces the first occurrence of `from` in `bytes` with `to` (same length), so the
/// record stays valid JSON but its bytes change.
fn replace_once(bytes: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let pos = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("pattern present in record");
    bytes[pos..pos + to.len()].copy_from_slice(to);
}

/// Appends `n` single-event appends, round robin over three streams; record `i` (1-based)
/// carries `{"name": "alpha-<i>"}`.
async fn seed(store: &dyn EventStore, n: usize) -> Vec<RecordedEvent> {
    let streams = [Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7()];
    let mut out = Vec::new();
    for i in 1..=n {
        let stream = streams[i % streams.len()];
        let recs = store
            .append(
                stream,
                ExpectedVersion::Any,
                vec![ev("Noted", json!({ "name": format!("alpha-{i}"), "i": i }))],
            )
            .await
            .expect("seed append");
        out.extend(recs);
    }
    out
}

/// Checks the chain by hand: contiguous seq, `prev` links, head.
fn assert_chain(store: &dyn EventStore, expected_len: u64) {
    let raw = raw_log(store);
    assert_eq!(raw.len() as u64, expected_len);
    let mut prev = GENESIS_HASH.to_string();
    for (i, (seq, bytes)) in raw.iter().enumerate() {
        assert_eq!(*seq, i as u64 + 1, "seq is contiguous from 1");
        let rec: RecordedEvent = serde_json::from_slice(bytes).expect("stored bytes are a record");
        assert_eq!(rec.seq, *seq);
        assert_eq!(rec.prev, prev, "prev of seq {seq}");
        assert_eq!(rec.to_bytes(), *bytes, "stored bytes re-serialize exactly");
        prev = hash_hex(bytes);
    }
    let head = store.head();
    assert_eq!(head.seq, expected_len);
    assert_eq!(head.hash, prev, "head hash is the hash of the last record");
}

fn counter_of(rec: &RecordedEvent) -> Option<(String, u64)> {
    if rec.event_type != "CaseNumbered" {
        return None;
    }
    Some((
        rec.data["counter"].as_str()?.to_string(),
        rec.data["number"].as_u64()?,
    ))
}

fn numbered(counter: &str) -> Box<dyn FnOnce(u64) -> Vec<NewEvent> + Send> {
    let counter = counter.to_string();
    Box::new(move |n| {
        vec![ev(
            "CaseNumbered",
            json!({ "counter": counter, "number": n }),
        )]
    })
}

fn number_of(recs: &[RecordedEvent]) -> u64 {
    recs[0].data["number"].as_u64().expect("number in data")
}

// ---------------------------------------------------------------------------------------
// 7. Subscriptions
// ---------------------------------------------------------------------------------------

async fn next_within(sub: &mut Subscription) -> RecordedEvent {
    tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("subscription delivered within 5 s")
        .expect("subscription record")
}

// ---------------------------------------------------------------------------------------
// 8. Export and import
// ---------------------------------------------------------------------------------------

/// A store with numbered cases, a multi-version stream and a second counter.
async fn populated(store: &dyn EventStore) -> (Uuid, Vec<Uuid>) {
    let mut case_streams = Vec::new();
    for _ in 0..10 {
        let s = Uuid::now_v7();
        store
            .append_numbered(
                "case".into(),
                s,
                ExpectedVersion::NoStream,
                numbered("case"),
            )
            .await
            .expect("numbered");
        case_streams.push(s);
    }
    let long = Uuid::now_v7();
    for v in 0..5 {
        store
            .append(
                long,
                ExpectedVersion::Exact(v),
                vec![ev("Step", json!({ "v": v }))],
            )
            .await
            .expect("append");
    }
    for _ in 0..3 {
        store
            .append_numbered(
                "invoice".into(),
                Uuid::now_v7(),
                ExpectedVersion::Any,
                numbered("invoice"),
            )
            .await
            .expect("numbered");
    }
    (long, case_streams)
}

/// Builds a valid export of `n` records by hand (the format needs no avvik code).
fn handmade_export(n: u64) -> Vec<Vec<u8>> {
    let stream = Uuid::now_v7();
    let at = Utc::now();
    let mut prev = GENESIS_HASH.to_string();
    let mut lines = Vec::with_capacity(n as usize);
    for seq in 1..=n {
        let rec = RecordedEvent {
            seq,
            id: Uuid::now_v7(),
            stream,
            version: seq as u32,
            at,
            actor: "system".into(),
            event_type: "Bulk".into(),
            schema: 1,
            data: json!({ "name": format!("alpha-{seq}") }),
            prev,
        };
        let bytes = rec.to_bytes();
        prev = hash_hex(&bytes);
        lines.push(bytes);
    }
    lines
}

// ---------------------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------------------

/// A store backend under test: where a store lives between opens, and how to open it.
pub trait Backend {
    type Store: EventStore + 'static;
    /// A new, empty place for a store (a directory, a database); dropping it removes it.
    type Place;
    fn place(&self) -> Self::Place;
    /// Opens (creating if needed) the store at `place`. At most one open store per place.
    fn open(&self, place: &Self::Place) -> Self::Store;
}

pub struct SledBackend;

impl Backend for SledBackend {
    type Store = SledEventStore;
    type Place = TempDir;
    fn place(&self) -> TempDir {
        tempdir()
    }
    fn open(&self, place: &TempDir) -> SledEventStore {
        open(place.path())
    }
}

#[path = "support/pg_cluster.rs"]
mod pg_cluster;

/// Each place is a database of its own in this process's throw-away cluster.
pub struct PostgresBackend;

impl Backend for PostgresBackend {
    type Store = PostgresEventStore;
    type Place = pg_cluster::Database;
    fn place(&self) -> pg_cluster::Database {
        pg_cluster::Cluster::shared().database()
    }
    fn open(&self, place: &pg_cluster::Database) -> PostgresEventStore {
        PostgresEventStore::connect(place.url(), PostgresOptions::default()).expect("connect")
    }
}

/// Runs the whole conformance suite against a backend: one `#[tokio::test]` per function
/// of [`conformance`], in a module named `$name`, each with a backend from `$backend`.
macro_rules! conformance_suite {
    ($name:ident, $backend:expr) => {
        conformance_suite!(@tests $name, $backend;
            empty_store_has_genesis_head_and_verifies,
            appends_get_contiguous_seq_versions_and_prev_links,
            commit_time_never_goes_backwards,
            expected_version_conflicts_report_actual_version,
            concurrent_writers_with_same_expected_version_one_wins,
            empty_append_is_invalid,
            re_appending_same_ids_returns_stored_records,
            concurrent_duplicates_store_one_record,
            concurrent_appends_keep_the_chain_contiguous,
            numbered_appends_are_gap_free_under_concurrency,
            failed_numbered_append_uses_no_number,
            counters_survive_reopen,
            reopen_keeps_records_head_and_indexes,
            rapid_close_and_reopen_cycles,
            subscription_catches_up_then_follows_live,
            idle_subscriber_does_not_block_appends,
            export_verifies_and_imports_into_fresh_dir,
            import_refuses_broken_chain_and_non_empty_target,
            refused_large_import_leaves_target_empty,
            appends_during_an_import_never_break_the_chain,
            verify_export_names_the_tampered_record,
            read_batch_and_read_stream_from_a_position,
            read_all_crosses_chunk_boundaries,
        );
    };
    (@tests $name:ident, $backend:expr; $($test:ident),* $(,)?) => {
        mod $name {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $test() {
                    $crate::conformance::$test(&$backend).await;
                }
            )*
        }
    };
}

// One line per backend.
conformance_suite!(on_sled, SledBackend);
conformance_suite!(on_postgres, PostgresBackend);
conformance_suite!(in_memory, memory::MemoryBackend);

/// A second backend, in memory, made of nothing but the trait and the shared rules
/// (`avvik_events::store::rules`). It keeps the suite honest (nothing in it may lean on
/// sled) and shows what a backend has to supply: storage for bytes and indexes, and an
/// `AppendView` over them; the chain, idempotency and version rules come with the rules.
mod memory {
    use std::sync::Mutex;

    use avvik_events::store::rules::{self, AppendView, ChainTip};
    use avvik_events::{BoxFuture, ChainChecker, CounterOf, Head};
    use tokio::sync::watch;

    use super::*;

    type Result<T> = std::result::Result<T, StoreError>;

    struct Log {
        /// Stored bytes, record `seq` at `seq - 1`.
        records: Vec<Vec<u8>>,
        /// Seqs of each stream, version `v` at `v - 1`.
        streams: HashMap<Uuid, Vec<u64>>,
        ids: HashMap<Uuid, u64>,
        counters: HashMap<String, u64>,
        tip: ChainTip,
    }

    impl Log {
        fn new() -> Self {
            Log {
                records: Vec::new(),
                streams: HashMap::new(),
                ids: HashMap::new(),
                counters: HashMap::new(),
                tip: ChainTip::EMPTY,
            }
        }

        fn decode(&self, seq: u64) -> Result<RecordedEvent> {
            let bytes = &self.records[seq as usize - 1];
            serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
                seq,
                reason: e.to_string(),
            })
        }
    }

    /// A commit stages straight into the log: the rules check everything before the first
    /// `put`, and the log's lock makes the append atomic.
    impl AppendView for Log {
        fn stored_by_id(&mut self, id: Uuid) -> Result<Option<RecordedEvent>> {
            self.ids.get(&id).map(|seq| self.decode(*seq)).transpose()
        }
        fn stream_version(&mut self, stream: Uuid) -> Result<u32> {
            Ok(self.streams.get(&stream).map_or(0, |s| s.len() as u32))
        }
        fn counter(&mut self, name: &str) -> Result<u64> {
            Ok(self.counters.get(name).copied().unwrap_or(0))
        }
        fn put(&mut self, record: &RecordedEvent, bytes: Vec<u8>) {
            self.records.push(bytes);
            self.streams
                .entry(record.stream)
                .or_default()
                .push(record.seq);
            self.ids.insert(record.id, record.seq);
        }
        fn put_counter(&mut self, name: String, value: u64) {
            self.counters.insert(name, value);
        }
    }

    pub struct MemoryBackend;

    /// The log outlives the store, as a directory does.
    pub struct Place(Arc<Mutex<Log>>);

    impl Backend for MemoryBackend {
        type Store = MemoryStore;
        type Place = Place;
        fn place(&self) -> Place {
            Place(Arc::new(Mutex::new(Log::new())))
        }
        fn open(&self, place: &Place) -> MemoryStore {
            let seq = place.0.lock().unwrap().tip.seq;
            MemoryStore {
                log: place.0.clone(),
                head_tx: watch::channel(seq).0,
            }
        }
    }

    pub struct MemoryStore {
        log: Arc<Mutex<Log>>,
        head_tx: watch::Sender<u64>,
    }

    impl MemoryStore {
        fn log(&self) -> std::sync::MutexGuard<'_, Log> {
            self.log.lock().unwrap()
        }

        fn commit(
            &self,
            stage: impl FnOnce(&mut Log, &mut ChainTip) -> Result<Vec<RecordedEvent>>,
        ) -> Result<Vec<RecordedEvent>> {
            let mut log = self.log();
            let mut tip = log.tip;
            let r = stage(&mut log, &mut tip);
            log.tip = tip;
            self.head_tx.send_replace(tip.seq);
            r
        }
    }

    impl EventStore for MemoryStore {
        fn append(
            &self,
            stream: Uuid,
            expected: ExpectedVersion,
            events: Vec<NewEvent>,
        ) -> BoxFuture<'_, Result<Vec<RecordedEvent>>> {
            let r = self.commit(|log, tip| rules::stage_append(log, tip, stream, expected, events));
            Box::pin(std::future::ready(r))
        }

        fn append_numbered(
            &self,
            counter: String,
            stream: Uuid,
            expected: ExpectedVersion,
            build: avvik_events::store::NumberedBuild,
        ) -> BoxFuture<'_, Result<Vec<RecordedEvent>>> {
            let r = self.commit(|log, tip| {
                rules::stage_numbered(log, tip, counter, stream, expected, build)
            });
            Box::pin(std::future::ready(r))
        }

        fn read_batch(&self, from_seq: u64, limit: usize) -> Result<Vec<RecordedEvent>> {
            let log = self.log();
            (from_seq.max(1)..=log.tip.seq)
                .take(limit)
                .map(|seq| log.decode(seq))
                .collect()
        }

        fn read_batch_async(
            &self,
            from_seq: u64,
            limit: usize,
        ) -> BoxFuture<'_, Result<Vec<RecordedEvent>>> {
            Box::pin(std::future::ready(self.read_batch(from_seq, limit)))
        }

        fn for_each_raw(
            &self,
            from_seq: u64,
            to_seq: u64,
            f: &mut dyn FnMut(u64, &[u8]) -> Result<()>,
        ) -> Result<()> {
            let log = self.log();
            for seq in from_seq.max(1)..=to_seq.min(log.tip.seq) {
                f(seq, &log.records[seq as usize - 1])?;
            }
            Ok(())
        }

        fn read_stream(&self, stream: Uuid, from_version: u32) -> Result<Vec<RecordedEvent>> {
            let log = self.log();
            let seqs = log.streams.get(&stream).map_or(&[][..], |s| &s[..]);
            let from = (from_version.max(1) as usize - 1).min(seqs.len());
            seqs[from..].iter().map(|seq| log.decode(*seq)).collect()
        }

        fn read_stream_async(
            &self,
            stream: Uuid,
            from_version: u32,
        ) -> BoxFuture<'_, Result<Vec<RecordedEvent>>> {
            Box::pin(std::future::ready(self.read_stream(stream, from_version)))
        }

        fn head(&self) -> Head {
            self.log().tip.to_head()
        }

        fn watch_head(&self) -> watch::Receiver<u64> {
            self.head_tx.subscribe()
        }

        fn counter(&self, name: &str) -> Result<u64> {
            Ok(self.log().counters.get(name).copied().unwrap_or(0))
        }

        fn verify(&self) -> Result<VerifyReport> {
            let log = self.log();
            let mut checker = ChainChecker::new();
            for (i, bytes) in log.records.iter().enumerate() {
                if checker.check_keyed(i as u64 + 1, bytes).is_err() {
                    break;
                }
            }
            Ok(checker.finish(Some((log.tip.seq, hex::encode(log.tip.hash)))))
        }

        fn is_degraded(&self) -> bool {
            false
        }

        fn size_on_disk(&self) -> Result<u64> {
            Ok(self.log().records.iter().map(|r| r.len() as u64).sum())
        }

        fn import(&self, input: &mut dyn std::io::BufRead, counter_of: &CounterOf) -> Result<Head> {
            let mut log = self.log();
            if log.tip.seq != 0 {
                return Err(rules::import_target_not_empty());
            }
            // Into a fresh log, kept only if the whole export is good.
            let mut fresh = Log::new();
            let imported = rules::read_export(input, counter_of, &mut |rec, bytes| {
                let mut tip = fresh.tip;
                tip.advance(rec, bytes);
                fresh.put(rec, bytes.to_vec());
                fresh.tip = tip;
                Ok(())
            })?;
            fresh.counters = imported.counters;
            *log = fresh;
            self.head_tx.send_replace(imported.tip.seq);
            Ok(imported.tip.to_head())
        }
    }
}

/// What every backend must do, as functions over a [`Backend`]. Added tests go into the
/// list in `conformance_suite!` as well.
mod conformance {
    use super::*;

    // ---------------------------------------------------------------------------------------
    // 1. The chain
    // ---------------------------------------------------------------------------------------

    pub async fn empty_store_has_genesis_head_and_verifies<B: Backend>(b: &B) {
        let place = b.place();
        let store = b.open(&place);
        let head = store.head();
        assert_eq!(head.seq, 0);
        assert_eq!(head.hash, GENESIS_HASH);
        assert_eq!(head.at, None);
        let report = store.verify().expect("verify");
        assert!(report.ok, "{report:?}");
        assert_eq!(report.records, 0);
        assert!(store.read_batch(1, 10).expect("read").is_empty());
        assert!(!store.is_degraded());
    }

    pub async fn appends_get_contiguous_seq_versions_and_prev_links<B: Backend>(b: &B) {
        let place = b.place();
        let store = b.open(&place);
        let a = Uuid::now_v7();
        let b = Uuid::now_v7();

        let e1 = ev("DeviationReported", json!({ "title": "USB stick lost" }));
        let e2 = ev("DeviationClassified", json!({ "severity": "high" }));
        let first = store
            .append(a, ExpectedVersion::NoStream, vec![e1.clone(), e2.clone()])
            .await
            .expect("append to a");
        assert_eq!(
            first.iter().map(|r| (r.seq, r.version)).collect::<Vec<_>>(),
            [(1, 1), (2, 2)]
        );
        assert_eq!(first[0].id, e1.id);
        assert_eq!(first[0].stream, a);
        assert_eq!(first[0].event_type, "DeviationReported");
        assert_eq!(first[0].actor, "user:ciso@kommunen.example");
        assert_eq!(first[0].schema, 1);
        assert_eq!(first[0].data, json!({ "title": "USB stick lost" }));
        assert_eq!(first[0].prev, GENESIS_HASH);
        assert_eq!(first[1].id, e2.id);

        let second = store
            .append(
                b,
                ExpectedVersion::NoStream,
                vec![ev("DeviationReported", json!({}))],
            )
            .await
            .expect("append to b");
        assert_eq!((second[0].seq, second[0].version), (3, 1));

        let third = store
            .append(
                a,
                ExpectedVersion::Exact(2),
                vec![ev("Closed", json!({ "by": "x" }))],
            )
            .await
            .expect("append to a again");
        assert_eq!((third[0].seq, third[0].version), (4, 3));

        // prev = hex sha256 of the previous record's stored bytes.
        let raw = raw_log(&store);
        assert_eq!(raw.len(), 4);
        assert_eq!(first[1].prev, hash_hex(&raw[0].1));
        assert_eq!(second[0].prev, hash_hex(&raw[1].1));
        assert_eq!(third[0].prev, hash_hex(&raw[2].1));
        assert_chain(&store, 4);

        // What append answered is exactly what is stored.
        let returned: Vec<RecordedEvent> = first.into_iter().chain(second).chain(third).collect();
        let stored = all_records(&store);
        assert_eq!(stored, returned, "append returns the records as stored");
        for (rec, (_, bytes)) in returned.iter().zip(&raw) {
            assert_eq!(&rec.to_bytes(), bytes);
        }

        let head = store.head();
        assert_eq!(head.seq, 4);
        assert_eq!(head.hash, hash_hex(&raw[3].1));
        assert_eq!(head.at, Some(returned[3].at));
        let report = store.verify().expect("verify");
        assert!(report.ok, "{report:?}");
        assert_eq!(report.records, 4);
        assert_eq!(report.head_seq, 4);
        assert_eq!(report.head_hash, head.hash);
    }

    pub async fn commit_time_never_goes_backwards<B: Backend>(b: &B) {
        let place = b.place();
        let store = b.open(&place);
        let s = Uuid::now_v7();
        let now = store
            .append(s, ExpectedVersion::Any, vec![ev("A", json!({}))])
            .await
            .expect("append")[0]
            .at;
        let mut old = ev("B", json!({}));
        old.at = now - chrono::Duration::days(3);
        let rec = store
            .append(s, ExpectedVersion::Any, vec![old])
            .await
            .expect("append back-dated");
        assert_eq!(
            rec[0].at, now,
            "a back-dated event is stamped with the last time"
        );
        let mut later = ev("C", json!({}));
        later.at = now + chrono::Duration::seconds(5);
        let rec = store
            .append(s, ExpectedVersion::Any, vec![later.clone()])
            .await
            .expect("append later");
        assert!(rec[0].at > now);
        assert!(store.verify().expect("verify").ok);
    }

    // ---------------------------------------------------------------------------------------
    // 2. Optimistic concurrency
    // ---------------------------------------------------------------------------------------

    pub async fn expected_version_conflicts_report_actual_version<B: Backend>(b: &B) {
        let place = b.place();
        let store = b.open(&place);
        let s = Uuid::now_v7();
        store
            .append(s, ExpectedVersion::NoStream, vec![ev("A", json!({}))])
            .await
            .expect("create stream");

        let err = store
            .append(s, ExpectedVersion::NoStream, vec![ev("B", json!({}))])
            .await
            .expect_err("NoStream on an existing stream");
        match err {
            StoreError::Conflict {
                stream,
                expected,
                actual,
            } => {
                assert_eq!(stream, s);
                assert_eq!(expected, ExpectedVersion::NoStream);
                assert_eq!(actual, 1);
            }
            other => panic!("expected Conflict, got {other:?}"),
        }

        for wrong in [0, 2, 7] {
            let err = store
                .append(s, ExpectedVersion::Exact(wrong), vec![ev("B", json!({}))])
                .await
                .expect_err("wrong exact version");
            assert!(
                matches!(
                    err,
                    StoreError::Conflict { stream, expected: ExpectedVersion::Exact(w), actual: 1 }
                        if stream == s && w == wrong
                ),
                "Exact({wrong}): {err:?}"
            );
        }
        // Nothing was written by the refused appends.
        assert_eq!(store.head().seq, 1);
        assert_eq!(store.read_stream(s, 1).expect("read").len(), 1);

        let ok = store
            .append(s, ExpectedVersion::Exact(1), vec![ev("B", json!({}))])
            .await
            .expect("right exact version");
        assert_eq!(ok[0].version, 2);
        let any = store
            .append(
                s,
                ExpectedVersion::Any,
                vec![ev("C", json!({})), ev("D", json!({}))],
            )
            .await
            .expect("Any on an existing stream");
        assert_eq!(any.iter().map(|r| r.version).collect::<Vec<_>>(), [3, 4]);
        let fresh = store
            .append(
                Uuid::now_v7(),
                ExpectedVersion::Any,
                vec![ev("A", json!({}))],
            )
            .await
            .expect("Any on a new stream");
        assert_eq!(fresh[0].version, 1);

        // A stale writer loses after the stream moved on.
        let err = store
            .append(s, ExpectedVersion::Exact(1), vec![ev("E", json!({}))])
            .await
            .expect_err("stale exact version");
        assert!(
            matches!(err, StoreError::Conflict { actual: 4, .. }),
            "{err:?}"
        );
        assert_eq!(store.head().seq, 5);
    }

    pub async fn concurrent_writers_with_same_expected_version_one_wins<B: Backend>(b: &B) {
        let place = b.place();
        let store = Arc::new(b.open(&place));
        let s = Uuid::now_v7();
        store
            .append(s, ExpectedVersion::NoStream, vec![ev("A", json!({}))])
            .await
            .expect("create");
        let mut tasks = Vec::new();
        for i in 0..16 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .append(
                        s,
                        ExpectedVersion::Exact(1),
                        vec![ev("B", json!({ "i": i }))],
                    )
                    .await
            }));
        }
        let mut wins = 0;
        for t in tasks {
            match t.await.expect("task") {
                Ok(recs) => {
                    wins += 1;
                    assert_eq!(recs[0].version, 2);
                }
                Err(StoreError::Conflict { actual: 2, .. }) => {}
                Err(e) => panic!("unexpected error {e:?}"),
            }
        }
        assert_eq!(wins, 1, "exactly one writer may extend version 1");
        assert_eq!(store.read_stream(s, 1).expect("read").len(), 2);
    }

    pub async fn empty_append_is_invalid<B: Backend>(b: &B) {
        let place = b.place();
        let store = b.open(&place);
        let err = store
            .append(Uuid::now_v7(), ExpectedVersion::Any, Vec::new())
            .await
            .expect_err("empty append");
        assert!(matches!(err, StoreError::InvalidAppend(_)), "{err:?}");
        assert_eq!(store.head().seq, 0);
    }

    // ---------------------------------------------------------------------------------------
    // 3. Idempotency
    // ---------------------------------------------------------------------------------------

    pub async fn re_appending_same_ids_returns_stored_records<B: Backend>(b: &B) {
        let place = b.place();
        let store = b.open(&place);
        let s = Uuid::now_v7();
        let events = vec![
            ev("A", json!({ "n": 1 })),
            ev("B", json!({ "n": 2 })),
            ev("C", json!({ "n": 3 })),
        ];
        let first = store
            .append(s, ExpectedVersion::NoStream, events.clone())
            .await
            .expect("first append");
        store
            .append(
                Uuid::now_v7(),
                ExpectedVersion::Any,
                vec![ev("Other", json!({}))],
            )
            .await
            .expect("other append");
        let head = store.head();

        // Same ids, even with an expected version that no longer holds: the stored records.
        for expected in [
            ExpectedVersion::NoStream,
            ExpectedVersion::Exact(0),
            ExpectedVersion::Any,
        ] {
            let again = store
                .append(s, expected, events.clone())
                .await
                .expect("re-append is idempotent");
            assert_eq!(again, first, "{expected:?}");
        }
        // Re-sending with a changed payload still answers what is stored (id is the key).
        let mut changed = events.clone();
        changed[0].data = json!({ "n": 999 });
        let again = store
            .append(s, ExpectedVersion::Any, changed)
            .await
            .expect("re-append with changed payload");
        assert_eq!(again, first);

        assert_eq!(store.head(), head, "no new seq");
        assert_eq!(store.read_stream(s, 1).expect("read").len(), 3);

        // Part known, part new: refused, nothing written.
        let err = store
            .append(
                s,
                ExpectedVersion::Any,
                vec![events[0].clone(), ev("D", json!({}))],
            )
            .await
            .expect_err("mixed known and new ids");
        assert!(matches!(err, StoreError::InvalidAppend(_)), "{err:?}");
        // Known ids, but another stream: refused.
        let err = store
            .append(Uuid::now_v7(), ExpectedVersion::Any, events.clone())
            .await
            .expect_err("known ids on another stream");
        assert!(matches!(err, StoreError::InvalidAppend(_)), "{err:?}");
        assert_eq!(store.head(), head);
        assert!(store.verify().expect("verify").ok);

        // The id index survives a reopen.
        drop(store);
        let store = b.open(&place);
        let again = store
            .append(s, ExpectedVersion::Any, events)
            .await
            .expect("re-append after reopen");
        assert_eq!(again, first);
        assert_eq!(store.head(), head);
    }

    pub async fn concurrent_duplicates_store_one_record<B: Backend>(b: &B) {
        let place = b.place();
        let store = Arc::new(b.open(&place));
        let s = Uuid::now_v7();
        let e = ev("A", json!({ "dup": true }));
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let store = store.clone();
            let e = e.clone();
            tasks.push(tokio::spawn(async move {
                store.append(s, ExpectedVersion::Any, vec![e]).await
            }));
        }
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(t.await.expect("task").expect("idempotent append"));
        }
        assert!(answers.iter().all(|a| *a == answers[0]));
        assert_eq!(store.head().seq, 1);
        assert_eq!(all_records(&*store), answers[0]);
    }

    // ---------------------------------------------------------------------------------------
    // 4. Group commit under concurrency
    // ---------------------------------------------------------------------------------------

    pub async fn concurrent_appends_keep_the_chain_contiguous<B: Backend>(b: &B) {
        const TASKS: usize = 64;
        const PER_TASK: usize = 50;
        let place = b.place();
        let store = Arc::new(b.open(&place));
        let shared_stream = Uuid::now_v7();
        let started = Instant::now();

        let mut handles = Vec::new();
        for t in 0..TASKS {
            let store = store.clone();
            handles.push(tokio::spawn(async move {
                let own = Uuid::now_v7();
                let mut own_version = 0u32;
                let mut got = Vec::new();
                for i in 0..PER_TASK {
                    let e = ev("Tick", json!({ "task": t, "i": i }));
                    let recs = if i % 2 == 0 {
                        // Own stream with an exact version: never conflicts.
                        let r = store
                            .append(own, ExpectedVersion::Exact(own_version), vec![e])
                            .await
                            .expect("own stream append");
                        own_version += 1;
                        assert_eq!(r[0].version, own_version);
                        r
                    } else {
                        store
                            .append(shared_stream, ExpectedVersion::Any, vec![e])
                            .await
                            .expect("shared stream append")
                    };
                    got.extend(recs);
                }
                (own, got)
            }));
        }
        let mut returned = BTreeMap::new();
        let mut own_streams = Vec::new();
        for h in handles {
            let (own, got) = h.await.expect("task");
            own_streams.push(own);
            // Each task sees its own appends in increasing seq order.
            assert!(got.windows(2).all(|w| w[0].seq < w[1].seq));
            for r in got {
                assert!(returned.insert(r.seq, r).is_none(), "seq handed out twice");
            }
        }

        let total = (TASKS * PER_TASK) as u64;
        let head = store.head();
        assert_eq!(head.seq, total);
        assert_eq!(
            returned.keys().copied().collect::<Vec<_>>(),
            (1..=total).collect::<Vec<_>>()
        );
        let stored = all_records(&*store);
        assert_eq!(stored.len() as u64, total);
        assert_eq!(stored, returned.into_values().collect::<Vec<_>>());
        assert_chain(&*store, total);

        let report = store.verify().expect("verify");
        assert!(report.ok, "{report:?}");
        assert_eq!(report.records, total);
        assert_eq!(report.head_hash, head.hash);

        // Per-stream versions are contiguous from 1 and follow the global order.
        let mut by_stream: HashMap<Uuid, Vec<&RecordedEvent>> = HashMap::new();
        for r in &stored {
            by_stream.entry(r.stream).or_default().push(r);
        }
        assert_eq!(by_stream.len(), TASKS + 1);
        for (stream, recs) in &by_stream {
            let versions: Vec<u32> = recs.iter().map(|r| r.version).collect();
            let expected: Vec<u32> = (1..=recs.len() as u32).collect();
            assert_eq!(versions, expected, "stream {stream}");
        }
        assert_eq!(by_stream[&shared_stream].len(), TASKS * PER_TASK / 2);
        for own in own_streams {
            let recs = store.read_stream(own, 1).expect("read own stream");
            assert_eq!(recs.len(), PER_TASK / 2);
            assert!(recs
                .iter()
                .enumerate()
                .all(|(i, r)| r.version == i as u32 + 1));
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "3200 concurrent appends took {:?}; group commit is not batching",
            started.elapsed()
        );
    }

    // ---------------------------------------------------------------------------------------
    // 5. Gap-free counters
    // ---------------------------------------------------------------------------------------

    pub async fn numbered_appends_are_gap_free_under_concurrency<B: Backend>(b: &B) {
        let place = b.place();
        let store = Arc::new(b.open(&place));
        let mut tasks = Vec::new();
        for _ in 0..200 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .append_numbered(
                        "case".into(),
                        Uuid::now_v7(),
                        ExpectedVersion::NoStream,
                        numbered("case"),
                    )
                    .await
            }));
        }
        let mut numbers = Vec::new();
        for t in tasks {
            let recs = t.await.expect("task").expect("numbered append");
            numbers.push(number_of(&recs));
        }
        numbers.sort_unstable();
        assert_eq!(numbers, (1..=200).collect::<Vec<u64>>());
        assert_eq!(store.counter("case").expect("counter"), 200);
        assert_eq!(store.counter("never-used").expect("counter"), 0);

        // The stored records carry the same numbers, each once.
        let stored: BTreeSet<u64> = all_records(&*store)
            .iter()
            .map(|r| r.data["number"].as_u64().expect("number"))
            .collect();
        assert_eq!(stored, (1..=200).collect());
        assert!(store.verify().expect("verify").ok);
    }

    pub async fn failed_numbered_append_uses_no_number<B: Backend>(b: &B) {
        let place = b.place();
        let store = Arc::new(b.open(&place));
        let taken = Uuid::now_v7();
        let first = store
            .append_numbered(
                "case".into(),
                taken,
                ExpectedVersion::NoStream,
                numbered("case"),
            )
            .await
            .expect("first numbered append");
        assert_eq!(number_of(&first), 1);

        let err = store
            .append_numbered(
                "case".into(),
                taken,
                ExpectedVersion::NoStream,
                numbered("case"),
            )
            .await
            .expect_err("NoStream on existing stream");
        assert!(
            matches!(err, StoreError::Conflict { actual: 1, .. }),
            "{err:?}"
        );
        assert_eq!(store.counter("case").expect("counter"), 1);
        assert_eq!(store.head().seq, 1);

        let second = store
            .append_numbered(
                "case".into(),
                Uuid::now_v7(),
                ExpectedVersion::NoStream,
                numbered("case"),
            )
            .await
            .expect("second numbered append");
        assert_eq!(number_of(&second), 2, "the refused append did not use 2");

        // Interleave failing and succeeding numbered appends so they share commit batches.
        let mut tasks = Vec::new();
        for i in 0..200 {
            let store = store.clone();
            let stream = if i % 2 == 0 { taken } else { Uuid::now_v7() };
            tasks.push(tokio::spawn(async move {
                (
                    i,
                    store
                        .append_numbered(
                            "case".into(),
                            stream,
                            ExpectedVersion::NoStream,
                            numbered("case"),
                        )
                        .await,
                )
            }));
        }
        let mut numbers = Vec::new();
        for t in tasks {
            match t.await.expect("task") {
                (i, Ok(recs)) => {
                    assert!(i % 2 == 1, "append {i} should have conflicted");
                    numbers.push(number_of(&recs));
                }
                (i, Err(StoreError::Conflict { .. })) => assert!(i % 2 == 0),
                (i, Err(e)) => panic!("append {i}: unexpected error {e:?}"),
            }
        }
        numbers.sort_unstable();
        assert_eq!(numbers, (3..=102).collect::<Vec<u64>>());
        assert_eq!(store.counter("case").expect("counter"), 102);

        // Counters are independent.
        let other = store
            .append_numbered(
                "invoice".into(),
                Uuid::now_v7(),
                ExpectedVersion::Any,
                numbered("invoice"),
            )
            .await
            .expect("other counter");
        assert_eq!(number_of(&other), 1);
        assert_eq!(store.counter("case").expect("counter"), 102);
    }

    pub async fn counters_survive_reopen<B: Backend>(b: &B) {
        let place = b.place();
        {
            let store = b.open(&place);
            for _ in 0..5 {
                store
                    .append_numbered(
                        "case".into(),
                        Uuid::now_v7(),
                        ExpectedVersion::NoStream,
                        numbered("case"),
                    )
                    .await
                    .expect("numbered append");
            }
            assert_eq!(store.counter("case").expect("counter"), 5);
        }
        let store = b.open(&place);
        assert_eq!(store.counter("case").expect("counter"), 5);
        let next = store
            .append_numbered(
                "case".into(),
                Uuid::now_v7(),
                ExpectedVersion::NoStream,
                numbered("case"),
            )
            .await
            .expect("numbered append after reopen");
        assert_eq!(number_of(&next), 6);
    }

    // ---------------------------------------------------------------------------------------
    // 6. Durability, reopen, locking
    // ---------------------------------------------------------------------------------------

    pub async fn reopen_keeps_records_head_and_indexes<B: Backend>(b: &B) {
        let place = b.place();
        let store = b.open(&place);
        let seeded = seed(&store, 30).await;
        let head = store.head();
        let raw = raw_log(&store);
        drop(store);

        let store = b.open(&place);
        assert_eq!(store.head(), head);
        assert_eq!(raw_log(&store), raw, "stored bytes unchanged");
        assert_eq!(all_records(&store), seeded);
        let report = store.verify().expect("verify");
        assert!(report.ok, "{report:?}");
        assert_eq!(report.head_hash, head.hash);

        // The chain, the stream index and the id index continue where they were.
        let last = seeded.last().expect("seeded");
        let stream_len = store.read_stream(last.stream, 1).expect("read").len() as u32;
        assert_eq!(stream_len, last.version);
        let next = store
            .append(
                last.stream,
                ExpectedVersion::Exact(last.version),
                vec![ev("After", json!({}))],
            )
            .await
            .expect("append after reopen");
        assert_eq!(next[0].seq, 31);
        assert_eq!(next[0].version, last.version + 1);
        assert_eq!(next[0].prev, head.hash);
        assert!(next[0].at >= last.at);
        assert_chain(&store, 31);

        // Reopening twice more in the same process works (the store releases everything).
        drop(store);
        let store = b.open(&place);
        drop(store);
        let store = b.open(&place);
        assert_eq!(store.head().seq, 31);
    }

    pub async fn rapid_close_and_reopen_cycles<B: Backend>(b: &B) {
        // Drop then reopen at once, many times: each reopen must succeed and see everything.
        let place = b.place();
        let s = Uuid::now_v7();
        for i in 0..40u32 {
            let store = b.open(&place);
            assert_eq!(store.head().seq, u64::from(i), "reopen {i}");
            store
                .append(
                    s,
                    ExpectedVersion::Exact(i),
                    vec![ev("Cycle", json!({ "i": i }))],
                )
                .await
                .expect("append");
        }
        let store = b.open(&place);
        assert_chain(&store, 40);
    }

    pub async fn subscription_catches_up_then_follows_live<B: Backend>(b: &B) {
        let place = b.place();
        let store = Arc::new(b.open(&place));
        let seeded = seed(&*store, 5).await;
        let dyn_store: Arc<dyn EventStore> = store.clone();

        let mut sub = Subscription::new(dyn_store.clone(), 1);
        for expected in &seeded {
            assert_eq!(&next_within(&mut sub).await, expected);
        }
        assert!(sub.try_next().expect("try_next").is_none(), "caught up");
        // Caught up: next() waits.
        assert!(
            tokio::time::timeout(Duration::from_millis(100), sub.next())
                .await
                .is_err(),
            "next() must wait when there is nothing new"
        );

        // Live: a record appended later arrives.
        let writer = store.clone();
        let appender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut out = Vec::new();
            for i in 0..3 {
                out.extend(
                    writer
                        .append(
                            Uuid::now_v7(),
                            ExpectedVersion::Any,
                            vec![ev("Live", json!({ "i": i }))],
                        )
                        .await
                        .expect("live append"),
                );
            }
            out
        });
        let mut live = Vec::new();
        for _ in 0..3 {
            live.push(next_within(&mut sub).await);
        }
        let appended = appender.await.expect("appender");
        assert_eq!(live, appended);
        assert_eq!(live.iter().map(|r| r.seq).collect::<Vec<_>>(), [6, 7, 8]);

        // From a checkpoint: starts at that seq.
        let mut from4 = Subscription::new(dyn_store.clone(), 4);
        assert_eq!(next_within(&mut from4).await.seq, 4);
        // From 0 means from the start.
        let mut from0 = Subscription::new(dyn_store, 0);
        assert_eq!(next_within(&mut from0).await.seq, 1);
    }

    pub async fn idle_subscriber_does_not_block_appends<B: Backend>(b: &B) {
        let place = b.place();
        let store = Arc::new(b.open(&place));
        let dyn_store: Arc<dyn EventStore> = store.clone();
        let mut idle = Subscription::new(dyn_store.clone(), 1);
        // A subscriber waiting in another task, and one that never reads at all.
        let mut waiting = Subscription::new(dyn_store, 1);
        let waiter = tokio::spawn(async move { waiting.next().await.map(|r| r.seq) });

        let appends = async {
            for i in 0..200 {
                let events = (0..10)
                    .map(|j| ev("Bulk", json!({ "i": i, "j": j })))
                    .collect();
                store
                    .append(Uuid::now_v7(), ExpectedVersion::Any, events)
                    .await
                    .expect("append");
            }
        };
        tokio::time::timeout(Duration::from_secs(10), appends)
            .await
            .expect("appends are not held up by subscribers");
        assert_eq!(store.head().seq, 2000);
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(5), waiter)
                .await
                .expect("waiter woke")
                .expect("task")
                .expect("record"),
            1
        );

        // The idle subscriber has fallen behind but lost nothing.
        let mut seqs = Vec::new();
        while let Some(r) = idle.try_next().expect("try_next") {
            seqs.push(r.seq);
        }
        assert_eq!(seqs, (1..=2000).collect::<Vec<u64>>());
    }

    pub async fn export_verifies_and_imports_into_fresh_dir<B: Backend>(b: &B) {
        let src_place = b.place();
        let src = b.open(&src_place);
        let (long, case_streams) = populated(&src).await;
        let head = src.head();
        assert_eq!(head.seq, 18);

        let export = export_bytes(&src);
        assert_eq!(lines_of(&export).len(), 18);
        assert!(export.ends_with(b"\n"));
        // The export is the stored bytes, one per line.
        let raw: Vec<Vec<u8>> = raw_log(&src).into_iter().map(|(_, b)| b).collect();
        assert_eq!(lines_of(&export), raw);

        let report = verify_bytes(&export, Some((head.seq, head.hash.clone())));
        assert!(report.ok, "{report:?}");
        assert_eq!(report.records, head.seq);
        assert_eq!(report.head_seq, head.seq);
        assert_eq!(report.head_hash, head.hash);
        let report = verify_bytes(&export, None);
        assert!(report.ok);
        assert_eq!(report.head_hash, head.hash);

        // A partial export verifies against the record it ends with.
        let mut part = Vec::new();
        assert_eq!(src.export(1, 7, &mut part).expect("partial export"), 7);
        let seventh = hash_hex(&raw[6]);
        let report = verify_bytes(&part, Some((7, seventh.clone())));
        assert!(report.ok, "{report:?}");
        assert_eq!(report.head_hash, seventh);

        // Into a fresh store, which appends then continue (below).
        let dst_place = b.place();
        let dst = b.open(&dst_place);
        let imported_head = dst.import(&mut &export[..], &counter_of).expect("import");
        assert_eq!(imported_head, head);
        assert_eq!(dst.head(), head);
        assert!(dst.size_on_disk().expect("size on disk") > 0);
        assert_eq!(raw_log(&dst), raw_log(&src), "byte-identical records");
        assert_eq!(all_records(&dst), all_records(&src));
        let report = dst.verify().expect("verify imported");
        assert!(report.ok, "{report:?}");
        assert_eq!(report.head_hash, head.hash);

        // Stream index.
        assert_eq!(
            dst.read_stream(long, 1).expect("read"),
            src.read_stream(long, 1).expect("read")
        );
        assert_eq!(dst.read_stream(long, 3).expect("read").len(), 3);
        for s in &case_streams {
            assert_eq!(
                dst.read_stream(*s, 1).expect("read"),
                src.read_stream(*s, 1).expect("read")
            );
        }
        // Counters rebuilt via counter_of.
        assert_eq!(dst.counter("case").expect("counter"), 10);
        assert_eq!(dst.counter("invoice").expect("counter"), 3);

        // The imported store continues the chain, streams, counters and id index.
        let next = dst
            .append(
                long,
                ExpectedVersion::Exact(5),
                vec![ev("Step", json!({ "v": 5 }))],
            )
            .await
            .expect("append to imported store");
        assert_eq!((next[0].seq, next[0].version), (19, 6));
        assert_eq!(next[0].prev, head.hash);
        let err = dst
            .append(long, ExpectedVersion::NoStream, vec![ev("Step", json!({}))])
            .await
            .expect_err("stream exists in imported store");
        assert!(
            matches!(err, StoreError::Conflict { actual: 6, .. }),
            "{err:?}"
        );
        let n = dst
            .append_numbered(
                "case".into(),
                Uuid::now_v7(),
                ExpectedVersion::NoStream,
                numbered("case"),
            )
            .await
            .expect("numbered after import");
        assert_eq!(number_of(&n), 11);
        let first = src.read_batch(1, 1).expect("read");
        let src_first_event = NewEvent {
            id: first[0].id,
            event_type: first[0].event_type.clone(),
            schema: first[0].schema,
            data: first[0].data.clone(),
            actor: first[0].actor.clone(),
            at: first[0].at,
        };
        let again = dst
            .append(first[0].stream, ExpectedVersion::Any, vec![src_first_event])
            .await
            .expect("idempotent re-append after import");
        assert_eq!(again, first);
        assert_eq!(dst.head().seq, 20);
        assert_chain(&dst, 20);
    }

    pub async fn import_refuses_broken_chain_and_non_empty_target<B: Backend>(b: &B) {
        let src_place = b.place();
        let src = b.open(&src_place);
        seed(&src, 10).await;
        let export = export_bytes(&src);
        let head = src.head();
        drop(src);

        // One byte changed in record 3.
        let mut lines = lines_of(&export);
        replace_once(&mut lines[2], b"alpha-3", b"alphb-3");
        let broken = join_lines(&lines);
        let dst_place = b.place();
        let dst = b.open(&dst_place);
        let err = dst
            .import(&mut &broken[..], &counter_of)
            .expect_err("broken chain must be refused");
        match &err {
            StoreError::Import(msg) => assert!(msg.contains("seq 3"), "names record 3: {msg}"),
            other => panic!("expected Import, got {other:?}"),
        }

        // A missing record is refused too.
        let mut gap = lines_of(&export);
        gap.remove(5);
        let err = dst
            .import(&mut &join_lines(&gap)[..], &counter_of)
            .expect_err("gap must be refused");
        assert!(
            matches!(&err, StoreError::Import(m) if m.contains("seq 6")),
            "{err:?}"
        );

        // An empty export is refused.
        let err = dst
            .import(&mut &b""[..], &counter_of)
            .expect_err("empty export");
        assert!(matches!(err, StoreError::Import(_)), "{err:?}");

        // The refused imports left the target empty: the good export imports there.
        assert_eq!(dst.head().seq, 0);
        assert!(raw_log(&dst).is_empty());
        let imported = dst
            .import(&mut &export[..], &counter_of)
            .expect("good import into the same store");
        assert_eq!(imported, head);

        // Now the target is not empty: a second import is refused and changes nothing.
        let err = dst
            .import(&mut &export[..], &counter_of)
            .expect_err("non-empty target");
        assert!(matches!(err, StoreError::Import(_)), "{err:?}");
        assert_eq!(dst.head(), head);
        // Importing into the (reopened) source is refused too.
        let src = b.open(&src_place);
        let err = src
            .import(&mut &export[..], &counter_of)
            .expect_err("source is not empty");
        assert!(matches!(err, StoreError::Import(_)), "{err:?}");
        assert_eq!(src.head(), head);

        // What was imported survives a reopen.
        drop(dst);
        let dst = b.open(&dst_place);
        assert_eq!(dst.head(), head);
        assert!(dst.verify().expect("verify").ok);
    }

    pub async fn refused_large_import_leaves_target_empty<B: Backend>(b: &B) {
        // Import writes in chunks; a break found late must not leave the early chunks behind.
        let mut lines = handmade_export(10_050);
        let good = join_lines(&lines);
        replace_once(&mut lines[10_019], b"alpha-", b"alphb-");
        let broken = join_lines(&lines);

        let place = b.place();
        let store = b.open(&place);
        let err = store
            .import(&mut &broken[..], &counter_of)
            .expect_err("broken chain must be refused");
        assert!(
            matches!(&err, StoreError::Import(m) if m.contains("seq 10020")),
            "{err:?}"
        );
        {
            drop(store);
            let store = b.open(&place);
            assert_eq!(store.head().seq, 0);
            assert!(
                store.read_batch(1, 1).expect("read").is_empty(),
                "nothing readable"
            );
            assert!(raw_log(&store).is_empty());
            let report = store.verify().expect("verify");
            assert!(report.ok && report.records == 0, "{report:?}");
        }
        let store = b.open(&place);
        let head = store
            .import(&mut &good[..], &counter_of)
            .expect("the good export imports into the same store");
        assert_eq!(store.head(), head);
        assert_eq!(head.seq, 10_050);
        assert_eq!(head.hash, hash_hex(lines.last().expect("lines")));
    }

    pub async fn appends_during_an_import_never_break_the_chain<B: Backend>(b: &B) {
        // The import and the appends do not interleave: either the import ran first and
        // the appends continue its chain, or an append came first and the import is refused.
        let lines = handmade_export(5_000);
        let export = join_lines(&lines);
        let place = b.place();
        let store = Arc::new(b.open(&place));
        let appender = {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    store
                        .append(
                            Uuid::now_v7(),
                            ExpectedVersion::NoStream,
                            vec![ev("During", json!({ "i": i }))],
                        )
                        .await
                        .expect("append during an import");
                }
            })
        };
        let importer = store.clone();
        let imported =
            tokio::task::spawn_blocking(move || importer.import(&mut &export[..], &counter_of))
                .await
                .expect("import task");
        appender.await.expect("append task");
        let head = store.head();
        match imported {
            Ok(h) => {
                assert_eq!(h.seq, 5_000);
                assert_eq!(head.seq, 5_050);
                let raw = raw_log(&*store);
                assert_eq!(
                    raw[..5_000]
                        .iter()
                        .map(|(_, b)| b.clone())
                        .collect::<Vec<_>>(),
                    lines
                );
            }
            Err(StoreError::Import(_)) => assert_eq!(head.seq, 50),
            Err(e) => panic!("unexpected import error {e:?}"),
        }
        assert_chain(&*store, head.seq);
        assert!(store.verify().expect("verify").ok);
    }

    // ---------------------------------------------------------------------------------------
    // 9. Tamper detection on exports
    // ---------------------------------------------------------------------------------------

    pub async fn verify_export_names_the_tampered_record<B: Backend>(b: &B) {
        let place = b.place();
        let store = b.open(&place);
        seed(&store, 8).await;
        let head = store.head();
        let head_pair = Some((head.seq, head.hash.clone()));
        let lines = lines_of(&export_bytes(&store));
        assert!(verify_bytes(&join_lines(&lines), head_pair.clone()).ok);

        let check = |tampered: Vec<Vec<u8>>, head: Option<(u64, String)>, bad: u64, what: &str| {
            let report = verify_bytes(&join_lines(&tampered), head);
            assert!(!report.ok, "{what}: not detected");
            assert_eq!(report.first_bad_seq, Some(bad), "{what}: {report:?}");
            assert_eq!(report.records, bad - 1, "{what}: good records before it");
            assert!(report.reason.is_some());
        };

        for n in [1usize, 4, 7] {
            // One letter changed in a string in record n's data: still valid JSON.
            let mut t = lines.clone();
            replace_once(
                &mut t[n - 1],
                format!("alpha-{n}").as_bytes(),
                format!("alphb-{n}").as_bytes(),
            );
            serde_json::from_slice::<RecordedEvent>(&t[n - 1]).expect("still a valid record");
            check(t.clone(), None, n as u64, "byte flipped");
            check(t, head_pair.clone(), n as u64, "byte flipped (with head)");

            // Line n deleted.
            let mut t = lines.clone();
            t.remove(n - 1);
            check(t, None, n as u64, "line deleted");

            // Lines n and n+1 swapped.
            let mut t = lines.clone();
            t.swap(n - 1, n);
            check(t, None, n as u64, "lines swapped");
        }

        // The last record: changing it is only detectable against an expected head.
        let mut t = lines.clone();
        replace_once(&mut t[7], b"alpha-8", b"alphb-8");
        let report = verify_bytes(&join_lines(&t), None);
        assert!(
            report.ok,
            "without a head the last record cannot be checked"
        );
        check(t, head_pair.clone(), 8, "last record altered");

        // Truncation (last line dropped) likewise.
        let mut t = lines.clone();
        t.pop();
        assert!(verify_bytes(&join_lines(&t), None).ok);
        check(t, head_pair.clone(), 8, "last record deleted");

        // A well-formed record appended outside the store is caught by the head.
        let last: RecordedEvent = serde_json::from_slice(&lines[7]).expect("record");
        let forged = RecordedEvent {
            seq: 9,
            id: Uuid::now_v7(),
            version: last.version + 1,
            prev: hash_hex(&lines[7]),
            ..last
        };
        let mut t = lines.clone();
        t.push(forged.to_bytes());
        assert!(verify_bytes(&join_lines(&t), None).ok);
        check(t, head_pair.clone(), 9, "record appended");

        // A wrong expected head hash flags the last record.
        check(
            lines.clone(),
            Some((head.seq, GENESIS_HASH.to_string())),
            8,
            "wrong head hash",
        );

        // Garbage in a line names that line.
        let mut t = lines.clone();
        t[2] = b"{not json".to_vec();
        check(t, None, 3, "garbage line");
    }

    // ---------------------------------------------------------------------------------------
    // 11. Reading
    // ---------------------------------------------------------------------------------------

    pub async fn read_batch_and_read_stream_from_a_position<B: Backend>(b: &B) {
        let place = b.place();
        let store = b.open(&place);
        let a = Uuid::now_v7();
        let b = Uuid::now_v7();
        let mut all = Vec::new();
        for i in 0..6u32 {
            all.extend(
                store
                    .append(
                        a,
                        ExpectedVersion::Exact(i),
                        vec![ev("A", json!({ "i": i }))],
                    )
                    .await
                    .expect("append a"),
            );
            all.extend(
                store
                    .append(
                        b,
                        ExpectedVersion::Exact(i),
                        vec![ev("B", json!({ "i": i }))],
                    )
                    .await
                    .expect("append b"),
            );
        }
        let seqs = |v: Vec<RecordedEvent>| v.into_iter().map(|r| r.seq).collect::<Vec<_>>();

        assert_eq!(seqs(store.read_batch(5, 3).expect("read")), [5, 6, 7]);
        assert_eq!(store.read_batch(5, 3).expect("read"), all[4..7]);
        assert_eq!(seqs(store.read_batch(0, 2).expect("read")), [1, 2]);
        assert_eq!(seqs(store.read_batch(11, 100).expect("read")), [11, 12]);
        assert!(store.read_batch(13, 10).expect("read").is_empty());
        assert!(store.read_batch(1, 0).expect("read").is_empty(), "limit 0");
        assert_eq!(store.read_batch(1, 1000).expect("read"), all);

        let versions = |v: Vec<RecordedEvent>| v.into_iter().map(|r| r.version).collect::<Vec<_>>();
        let a_all = store.read_stream(a, 1).expect("read");
        assert_eq!(versions(a_all.clone()), [1, 2, 3, 4, 5, 6]);
        assert!(a_all.iter().all(|r| r.stream == a && r.event_type == "A"));
        assert_eq!(
            a_all,
            all.iter()
                .filter(|r| r.stream == a)
                .cloned()
                .collect::<Vec<_>>()
        );
        assert_eq!(store.read_stream(a, 0).expect("read"), a_all);
        assert_eq!(versions(store.read_stream(a, 4).expect("read")), [4, 5, 6]);
        assert_eq!(versions(store.read_stream(b, 6).expect("read")), [6]);
        assert!(store.read_stream(b, 7).expect("read").is_empty());
        assert!(store
            .read_stream(Uuid::now_v7(), 1)
            .expect("read")
            .is_empty());

        let mut raw = Vec::new();
        store
            .for_each_raw(3, 5, &mut |seq, bytes| {
                raw.push((seq, hash_hex(bytes)));
                Ok(())
            })
            .expect("for_each_raw");
        assert_eq!(
            raw,
            (3..=5)
                .map(|s| (s, hash_hex(&all[s as usize - 1].to_bytes())))
                .collect::<Vec<_>>()
        );

        // The async forms answer the same.
        assert_eq!(store.read_batch_async(5, 3).await.expect("read"), all[4..7]);
        assert_eq!(store.read_batch_async(1, 1000).await.expect("read"), all);
        assert!(store
            .read_batch_async(13, 10)
            .await
            .expect("read")
            .is_empty());
        assert_eq!(store.read_stream_async(a, 1).await.expect("read"), a_all);
        assert_eq!(
            store.read_stream_async(b, 6).await.expect("read"),
            store.read_stream(b, 6).expect("read")
        );
        assert!(store
            .read_stream_async(Uuid::now_v7(), 1)
            .await
            .expect("read")
            .is_empty());

        assert_eq!(all_records(&store), all);
        let from7: Vec<RecordedEvent> = read_all(&store, 7)
            .collect::<Result<_, _>>()
            .expect("read_all");
        assert_eq!(from7, all[6..]);
        assert_eq!(read_all(&store, 13).count(), 0);
    }

    pub async fn read_all_crosses_chunk_boundaries<B: Backend>(b: &B) {
        let place = b.place();
        let store = b.open(&place);
        let s = Uuid::now_v7();
        for chunk in 0..5 {
            let events = (0..1000)
                .map(|i| ev("Bulk", json!({ "chunk": chunk, "i": i })))
                .collect();
            store
                .append(s, ExpectedVersion::Any, events)
                .await
                .expect("bulk append");
        }
        let seqs: Vec<u64> = read_all(&store, 0)
            .map(|r| r.expect("record").seq)
            .collect();
        assert_eq!(seqs, (1..=5000).collect::<Vec<u64>>());
        let tail: Vec<u64> = read_all(&store, 4095)
            .map(|r| r.expect("record").seq)
            .collect();
        assert_eq!(tail, (4095..=5000).collect::<Vec<u64>>());
        assert_eq!(store.read_stream(s, 4999).expect("read").len(), 2);
        assert!(store.verify().expect("verify").ok);
    }
}

/// What only makes sense for sled: opening its database directly to change bytes, its
/// tail recovery, its directory lock, and the import that opens a directory itself.
mod sled_only {
    use super::*;

    fn tamper_db(dir: &Path, f: impl FnOnce(&sled::Tree)) {
        // sled 0.34 releases its file lock shortly after a dropped store, not at once.
        let deadline = Instant::now() + Duration::from_secs(5);
        let db = loop {
            match sled::open(dir.join("events")) {
                Ok(db) => break db,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("sled not released yet: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("open sled directly: {e}"),
            }
        };
        let tree = db.open_tree("log").expect("open log tree");
        f(&tree);
        tree.flush().expect("flush tampered tree");
        drop(tree);
        drop(db);
    }

    fn log_key(seq: u64) -> Vec<u8> {
        let mut k = vec![b'L'];
        k.extend_from_slice(&seq.to_be_bytes());
        k
    }

    /// A change made to the closed database.
    type Tamper = Box<dyn FnOnce(&sled::Tree)>;

    async fn seeded_closed_store(n: usize) -> TempDir {
        let dir = tempdir();
        let store = open(dir.path());
        seed(&store, n).await;
        assert!(store.verify().expect("verify").ok);
        drop(store);
        dir
    }

    fn verify_dir(dir: &Path) -> VerifyReport {
        let store = open(dir);
        store.verify().expect("verify")
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn second_open_in_same_process_is_locked() {
        let dir = tempdir();
        let store = open(dir.path());
        seed(&store, 3).await;

        let started = Instant::now();
        let err = SledEventStore::open(dir.path(), opts())
            .err()
            .expect("second open must fail");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "Locked must come promptly, took {:?}",
            started.elapsed()
        );
        match &err {
            StoreError::Locked(p) => assert_eq!(p, dir.path()),
            other => panic!("expected Locked, got {other:?}"),
        }
        assert!(dir.path().join("avvik.lock").exists());

        // Import into a directory in use is refused the same way.
        let err = SledEventStore::import(dir.path(), opts(), &mut &b""[..], &counter_of)
            .expect_err("import into open dir");
        assert!(matches!(err, StoreError::Locked(_)), "{err:?}");

        // The first handle is unaffected.
        store
            .append(
                Uuid::now_v7(),
                ExpectedVersion::Any,
                vec![ev("A", json!({}))],
            )
            .await
            .expect("first handle still writes");
        assert_eq!(store.head().seq, 4);

        drop(store);
        let store = open(dir.path());
        assert_eq!(store.head().seq, 4);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn readers_report_an_unreadable_record_once_and_go_on_after_it() {
        let dir = tempdir();
        let store = open(dir.path());
        seed(&store, 6).await;
        drop(store);
        tamper_db(dir.path(), |t| {
            t.insert(log_key(3), b"{ not a record".to_vec())
                .expect("insert");
        });
        let store = Arc::new(open(dir.path()));
        let seqs = |items: Vec<Result<RecordedEvent, StoreError>>| -> Vec<Result<u64, u64>> {
            items
                .into_iter()
                .map(|r| match r {
                    Ok(r) => Ok(r.seq),
                    Err(StoreError::Corrupt { seq, .. }) => Err(seq),
                    Err(e) => panic!("unexpected: {e}"),
                })
                .collect()
        };
        let want = [Ok(1), Ok(2), Err(3), Ok(4), Ok(5), Ok(6)];
        assert_eq!(seqs(read_all(store.as_ref(), 1).collect()), want);

        let dyn_store: Arc<dyn EventStore> = store.clone();
        let mut sub = Subscription::new(dyn_store.clone(), 1);
        let mut got = Vec::new();
        for _ in 0..want.len() {
            got.push(
                tokio::time::timeout(Duration::from_secs(5), sub.next())
                    .await
                    .expect("delivered"),
            );
        }
        assert_eq!(seqs(got), want);
        assert!(sub.try_next().expect("caught up").is_none());
        // Starting on the bad record: reported first, then the rest.
        let mut sub = Subscription::new(dyn_store, 3);
        assert!(matches!(
            sub.try_next(),
            Err(StoreError::Corrupt { seq: 3, .. })
        ));
        assert_eq!(sub.try_next().expect("after it").map(|r| r.seq), Some(4));
        // The chain check names it.
        let report = store.verify().expect("verify");
        assert!(!report.ok);
        assert_eq!(report.first_bad_seq, Some(3), "{report:?}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn verify_names_tampered_records_in_the_database() {
        // Untampered, reopened: ok.
        let dir = seeded_closed_store(8).await;
        tamper_db(dir.path(), |_| {});
        let report = verify_dir(dir.path());
        assert!(report.ok, "{report:?}");
        assert_eq!(report.records, 8);

        let cases: Vec<(&str, u64, Tamper)> = vec![
            (
                "one byte changed in record 4",
                4,
                Box::new(|t: &sled::Tree| {
                    let mut v = t.get(log_key(4)).expect("get").expect("record 4").to_vec();
                    replace_once(&mut v, b"alpha-4", b"alphb-4");
                    t.insert(log_key(4), v).expect("insert");
                }),
            ),
            (
                "one byte changed in record 1",
                1,
                Box::new(|t: &sled::Tree| {
                    let mut v = t.get(log_key(1)).expect("get").expect("record 1").to_vec();
                    replace_once(&mut v, b"alpha-1", b"alphb-1");
                    t.insert(log_key(1), v).expect("insert");
                }),
            ),
            (
                "one byte changed in the last record",
                8,
                Box::new(|t: &sled::Tree| {
                    let mut v = t.get(log_key(8)).expect("get").expect("record 8").to_vec();
                    replace_once(&mut v, b"alpha-8", b"alphb-8");
                    t.insert(log_key(8), v).expect("insert");
                }),
            ),
            (
                "record 5 removed",
                5,
                Box::new(|t: &sled::Tree| {
                    t.remove(log_key(5))
                        .expect("remove")
                        .expect("record 5 existed");
                }),
            ),
            (
                "last record removed",
                8,
                Box::new(|t: &sled::Tree| {
                    t.remove(log_key(8))
                        .expect("remove")
                        .expect("record 8 existed");
                }),
            ),
            (
                "records 3 and 6 swapped",
                3,
                Box::new(|t: &sled::Tree| {
                    let a = t.get(log_key(3)).expect("get").expect("record 3");
                    let b = t.get(log_key(6)).expect("get").expect("record 6");
                    t.insert(log_key(3), b).expect("insert");
                    t.insert(log_key(6), a).expect("insert");
                }),
            ),
            (
                "records 7 and 8 swapped",
                7,
                Box::new(|t: &sled::Tree| {
                    let a = t.get(log_key(7)).expect("get").expect("record 7");
                    let b = t.get(log_key(8)).expect("get").expect("record 8");
                    t.insert(log_key(7), b).expect("insert");
                    t.insert(log_key(8), a).expect("insert");
                }),
            ),
            (
                "garbage stored as record 2",
                2,
                Box::new(|t: &sled::Tree| {
                    t.insert(log_key(2), &b"garbage"[..]).expect("insert");
                }),
            ),
        ];
        for (what, bad, tamper) in cases {
            let dir = seeded_closed_store(8).await;
            tamper_db(dir.path(), tamper);
            let store = open(dir.path());
            let report = store.verify().expect("verify");
            if what == "last record removed" {
                // The last commit's records are indistinguishable from a commit cut short by
                // a crash: the tail is cut back on open, and the repair is itself recorded.
                assert!(report.ok, "{what}: {report:?}");
                let last = store.read_batch(store.head().seq, 1).unwrap().remove(0);
                assert_eq!(last.event_type, "LogTailRecovered", "{what}");
                assert_eq!(last.data["stored_head_seq"], 8, "{what}");
                assert_eq!(last.data["recovered_head_seq"], 7, "{what}");
                assert_eq!(last.seq, 8, "{what}");
                continue;
            }
            assert!(!report.ok, "{what}: not detected");
            assert_eq!(report.first_bad_seq, Some(bad), "{what}: {report:?}");
            assert_eq!(report.records, bad - 1, "{what}");
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_log_without_its_head_is_recovered_from_its_records() {
        let dir = seeded_closed_store(8).await;
        tamper_db(dir.path(), |t: &sled::Tree| {
            t.remove(&b"H"[..]).expect("remove").expect("head existed");
        });
        // The head is re-derived from the hash-linked records, so appends continue at seq 9
        // instead of overwriting seq 1.
        let store = SledEventStore::open(dir.path(), StoreOptions::default()).expect("opens");
        assert_eq!(store.head().seq, 9);
        assert!(store.verify().unwrap().ok);
        let repair = store.read_batch(9, 1).unwrap().remove(0);
        assert_eq!(repair.event_type, "LogTailRecovered");
        assert_eq!(repair.data["recovered_head_seq"], 8);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn import_into_a_directory_opens_fills_and_closes_it() {
        let src_dir = tempdir();
        let src = open(src_dir.path());
        seed(&src, 5).await;
        let export = export_bytes(&src);
        let head = src.head();
        drop(src);

        let dst_dir = tempdir();
        let imported =
            SledEventStore::import(dst_dir.path(), opts(), &mut &export[..], &counter_of)
                .expect("import into a new directory");
        assert_eq!(imported, head);
        // The directory is closed again: it opens at once, with the records.
        let dst = open(dst_dir.path());
        assert_eq!(dst.head(), head);
        assert_eq!(lines_of(&export_bytes(&dst)), lines_of(&export));
        drop(dst);

        let err = SledEventStore::import(src_dir.path(), opts(), &mut &export[..], &counter_of)
            .expect_err("the source directory is not empty");
        assert!(matches!(err, StoreError::Import(_)), "{err:?}");
    }
}

/// What only makes sense for PostgreSQL: several processes on one database, a server that
/// goes away and comes back, rows changed in the database, and a sled log moved over.
mod postgres_only {
    use super::*;
    use pg_cluster::{Cluster, Database};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::task::JoinHandle;

    fn connect(url: &str, opts: PostgresOptions) -> PostgresEventStore {
        PostgresEventStore::connect(url, opts).expect("connect")
    }

    fn database() -> Database {
        Cluster::shared().database()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_duty_is_held_by_one_store_at_a_time_and_moves_when_its_holder_is_gone() {
        let db = database();
        let a = connect(db.url(), PostgresOptions::default());
        let b = connect(db.url(), PostgresOptions::default());
        let mut on_a = a.duty("outbox");
        tokio::time::timeout(Duration::from_secs(10), on_a.wait_for(|h| *h))
            .await
            .expect("the first store takes the free duty")
            .unwrap();
        let mut on_b = b.duty("outbox");
        // Another duty is free for b even while a holds this one.
        let mut other = b.duty("scheduler");
        tokio::time::timeout(Duration::from_secs(10), other.wait_for(|h| *h))
            .await
            .expect("another duty is free")
            .unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(!*on_b.borrow(), "two stores hold one duty");
        assert!(*on_a.borrow());
        // The holder is gone (its connections closed): b takes over within 10 s.
        drop(on_a);
        drop(a);
        tokio::time::timeout(Duration::from_secs(10), on_b.wait_for(|h| *h))
            .await
            .expect("the duty moves to the other store within 10 s")
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_log_in_a_schema_of_its_own_is_a_chain_apart_that_its_processes_share() {
        let db = database();
        let main = connect(db.url(), PostgresOptions::default());
        let apart = || PostgresOptions {
            schema: Some("avvik_access".into()),
            ..PostgresOptions::default()
        };
        let a = connect(db.url(), apart());
        let b = connect(db.url(), apart());
        main.append(
            Uuid::now_v7(),
            ExpectedVersion::Any,
            vec![ev("Main", json!({}))],
        )
        .await
        .unwrap();
        for _ in 0..3 {
            a.append(
                Uuid::now_v7(),
                ExpectedVersion::Any,
                vec![ev("Seen", json!({}))],
            )
            .await
            .unwrap();
        }
        let mut head = b.watch_head();
        tokio::time::timeout(Duration::from_secs(5), head.wait_for(|s| *s >= 3))
            .await
            .expect("the other process follows the schema's log")
            .unwrap();
        assert_eq!(b.read_batch(1, 10).unwrap().len(), 3);
        assert_eq!(main.head().seq, 1, "the main chain is untouched");
        assert_eq!(main.read_batch(1, 10).unwrap()[0].event_type, "Main");
        assert!(b.verify().unwrap().ok);
        let bad = PostgresOptions {
            schema: Some("x; DROP TABLE avvik_events".into()),
            ..PostgresOptions::default()
        };
        assert!(PostgresEventStore::connect(db.url(), bad).is_err());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn sync_head_reads_another_process_commit_at_once() {
        let db = database();
        // A poll so slow it never comes: only the notification or sync_head can tell b.
        let slow = || PostgresOptions {
            poll_interval: Duration::from_secs(3600),
            ..PostgresOptions::default()
        };
        let a = connect(db.url(), slow());
        let b = connect(db.url(), slow());
        for _ in 0..20 {
            let rec = a
                .append(
                    Uuid::now_v7(),
                    ExpectedVersion::Any,
                    vec![ev("Tick", json!({}))],
                )
                .await
                .unwrap();
            let head = b.sync_head().await.unwrap().expect("a shared store syncs");
            assert!(head.seq >= rec[0].seq, "b's head is a's at once");
            assert!(b.head().seq >= rec[0].seq, "and published");
        }
        let dir = tempfile::tempdir().unwrap();
        let sled = SledEventStore::open(dir.path(), StoreOptions::default()).unwrap();
        assert_eq!(sled.sync_head().await.unwrap(), None);
    }

    #[test]
    fn shared_files_are_seen_by_every_store_and_overwritten_in_place() {
        let db = database();
        let a = connect(db.url(), PostgresOptions::default());
        let b = connect(db.url(), PostgresOptions::default());
        let (fa, fb) = (a.shared_files().unwrap(), b.shared_files().unwrap());
        assert_eq!(fa.read("keys", "x").unwrap(), None);
        assert!(fa.create("keys", "x", &[1, 2, 3, 4]).unwrap());
        assert!(
            !fb.create("keys", "x", &[9]).unwrap(),
            "a file is created once"
        );
        assert_eq!(fb.read("keys", "x").unwrap(), Some(vec![1, 2, 3, 4]));
        assert!(fb.write_at("keys", "x", 2, &[7, 8]).unwrap());
        assert_eq!(fa.read("keys", "x").unwrap(), Some(vec![1, 2, 7, 8]));
        assert!(
            !fa.write_at("keys", "x", 3, &[0, 0]).unwrap(),
            "past the end"
        );
        assert!(!fa.write_at("keys", "y", 0, &[0]).unwrap(), "no such file");
        assert!(fa.create("other", "x", &[5]).unwrap(), "kinds are apart");
        assert_eq!(fb.list("keys").unwrap(), vec!["x".to_string()]);
        assert!(fa.create("blobs", "attachments/d1/a", &[1]).unwrap());
        assert!(fa.create("blobs", "attachments/d1/b", &[2]).unwrap());
        assert!(fa.create("blobs", "attachments/d2/a", &[3]).unwrap());
        assert_eq!(fb.remove_prefix("blobs", "attachments/d1/").unwrap(), 2);
        assert_eq!(
            fa.list("blobs").unwrap(),
            vec!["attachments/d2/a".to_string()]
        );
        // A store only one process opens has none.
        let dir = tempfile::tempdir().unwrap();
        let sled = SledEventStore::open(dir.path(), StoreOptions::default()).unwrap();
        assert!(sled.shared_files().is_none());
        assert!(*sled.duty("outbox").borrow());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn two_stores_on_one_database_share_one_chain() {
        // Two avvik processes on one database: each commit locks the head row and reads the
        // tip from it, so neither overwrites the other's records.
        let db = database();
        let a = Arc::new(connect(db.url(), PostgresOptions::default()));
        let b = Arc::new(connect(db.url(), PostgresOptions::default()));
        let shared_stream = Uuid::now_v7();
        let mut tasks = Vec::new();
        for (t, store) in [a.clone(), b.clone(), a.clone(), b.clone()]
            .into_iter()
            .enumerate()
        {
            tasks.push(tokio::spawn(async move {
                for i in 0..25 {
                    store
                        .append(
                            shared_stream,
                            ExpectedVersion::Any,
                            vec![ev("Tick", json!({ "t": t, "i": i }))],
                        )
                        .await
                        .expect("append");
                    store
                        .append_numbered(
                            "case".into(),
                            Uuid::now_v7(),
                            ExpectedVersion::NoStream,
                            numbered("case"),
                        )
                        .await
                        .expect("numbered append");
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        // Each store's head catches up with the other's commits.
        for store in [&a, &b] {
            let mut head = store.watch_head();
            tokio::time::timeout(Duration::from_secs(5), head.wait_for(|s| *s >= 200))
                .await
                .expect("the head follows the other store's commits")
                .expect("store open");
        }
        assert_eq!(a.head(), b.head());
        assert_chain(&*a, 200);
        assert_chain(&*b, 200);
        let versions: Vec<u32> = b
            .read_stream(shared_stream, 1)
            .expect("read")
            .iter()
            .map(|r| r.version)
            .collect();
        assert_eq!(versions, (1..=100).collect::<Vec<u32>>());
        let mut numbers: Vec<u64> = all_records(&*a)
            .iter()
            .filter_map(|r| r.data["number"].as_u64())
            .collect();
        numbers.sort_unstable();
        assert_eq!(
            numbers,
            (1..=100).collect::<Vec<u64>>(),
            "gap-free across both"
        );
        assert_eq!(b.counter("case").expect("counter"), 100);

        // Expected versions hold across processes too.
        let s = Uuid::now_v7();
        a.append(s, ExpectedVersion::NoStream, vec![ev("A", json!({}))])
            .await
            .expect("create on a");
        let err = b
            .append(s, ExpectedVersion::NoStream, vec![ev("B", json!({}))])
            .await
            .expect_err("the stream exists, created by the other store");
        assert!(
            matches!(err, StoreError::Conflict { actual: 1, .. }),
            "{err:?}"
        );
        assert!(a.verify().expect("verify").ok);
        assert!(b.verify().expect("verify").ok);
    }

    /// The synchronous API blocks on its own runtime's answer, so it works on the one
    /// thread of a current-thread runtime too (no nested runtime, no deadlock).
    #[tokio::test]
    async fn the_synchronous_api_works_on_a_current_thread_runtime() {
        let db = database();
        let store = connect(db.url(), PostgresOptions::default());
        let recs = seed(&store, 3).await;
        assert_eq!(store.read_batch(1, 10).expect("read"), recs);
        assert_eq!(store.read_stream(recs[0].stream, 1).expect("read").len(), 1);
        assert_eq!(
            store.read_batch_async(2, 1).await.expect("read"),
            recs[1..2]
        );
        assert!(store.verify().expect("verify").ok);
        assert_eq!(store.counter("none").expect("counter"), 0);
        assert!(store.size_on_disk().expect("size") > 0);
        drop(store);
        assert_eq!(connect(db.url(), PostgresOptions::default()).head().seq, 3);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn another_process_commit_is_heard_without_the_poll() {
        let db = database();
        let slow_poll = PostgresOptions {
            poll_interval: Duration::from_secs(600),
            ..PostgresOptions::default()
        };
        let follower = connect(db.url(), slow_poll);
        let mut head = follower.watch_head();
        let writer = connect(db.url(), PostgresOptions::default());
        let recs = writer
            .append(
                Uuid::now_v7(),
                ExpectedVersion::Any,
                vec![ev("A", json!({}))],
            )
            .await
            .expect("append");
        tokio::time::timeout(Duration::from_secs(3), head.wait_for(|s| *s >= 1))
            .await
            .expect("NOTIFY reached the other store")
            .expect("store open");
        assert_eq!(follower.head().hash, hash_hex(&recs[0].to_bytes()));
        assert_eq!(follower.head().at, Some(recs[0].at));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn connections_killed_by_the_server_are_made_again() {
        let db = database();
        let store = connect(db.url(), PostgresOptions::default());
        seed(&store, 3).await;
        let killed = db.psql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        );
        assert_ne!(killed, "0", "the store's connections were there to kill");
        // The first append may meet the dead connection (and say so); the store reconnects
        // by itself and the same append, re-sent, is stored once.
        let s = Uuid::now_v7();
        let e = ev("After", json!({}));
        let mut stored = None;
        for _ in 0..3 {
            match store.append(s, ExpectedVersion::Any, vec![e.clone()]).await {
                Ok(r) => {
                    stored = Some(r);
                    break;
                }
                Err(StoreError::Storage(m)) => eprintln!("retrying after: {m}"),
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        let stored = stored.expect("an append succeeds after the reconnect");
        assert_eq!(stored[0].seq, 4);
        assert_eq!(
            store.read_batch(1, 10).expect("reads reconnect too").len(),
            4
        );
        assert!(!store.is_degraded());
        assert_chain(&store, 4);
    }

    /// A TCP relay to the cluster that can be cut (connections dropped, port closed) and
    /// restored on the same port: a database server that goes away and comes back.
    struct Relay {
        port: u16,
        upstream: u16,
        task: Option<JoinHandle<()>>,
    }

    impl Relay {
        async fn start(upstream: u16) -> Relay {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
            let port = listener.local_addr().expect("addr").port();
            Relay {
                port,
                upstream,
                task: Some(tokio::spawn(relay(listener, upstream))),
            }
        }

        fn cut(&mut self) {
            if let Some(t) = self.task.take() {
                t.abort();
            }
        }

        async fn restore(&mut self) {
            let listener = TcpListener::bind(("127.0.0.1", self.port))
                .await
                .expect("bind relay again");
            self.task = Some(tokio::spawn(relay(listener, self.upstream)));
        }
    }

    impl Drop for Relay {
        fn drop(&mut self) {
            self.cut();
        }
    }

    async fn relay(listener: TcpListener, upstream: u16) {
        // Aborting this task drops the set, which aborts every relayed connection.
        let mut conns = tokio::task::JoinSet::new();
        while let Ok((mut inbound, _)) = listener.accept().await {
            conns.spawn(async move {
                if let Ok(mut out) = TcpStream::connect(("127.0.0.1", upstream)).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                }
            });
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_holder_cut_off_from_the_database_gives_its_duty_up_and_another_takes_it() {
        let cluster = Cluster::shared();
        let db = database();
        let mut relay = Relay::start(cluster.port()).await;
        let via_relay = db.url().replace(
            &format!(":{}/", cluster.port()),
            &format!(":{}/", relay.port),
        );
        let a = connect(&via_relay, PostgresOptions::default());
        let mut on_a = a.duty("outbox");
        tokio::time::timeout(Duration::from_secs(10), on_a.wait_for(|h| *h))
            .await
            .expect("a takes the free duty")
            .unwrap();
        let b = connect(db.url(), PostgresOptions::default());
        let mut on_b = b.duty("outbox");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(!*on_b.borrow());
        // a's way to the database goes: a stops running the duty, b takes it over.
        relay.cut();
        tokio::time::timeout(Duration::from_secs(10), on_a.wait_for(|h| !*h))
            .await
            .expect("the cut-off holder gives the duty up")
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), on_b.wait_for(|h| *h))
            .await
            .expect("the other store takes it within 10 s")
            .unwrap();
        // a's way back: b keeps the duty, a waits.
        relay.restore().await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(*on_b.borrow() && !*on_a.borrow(), "one holder at a time");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_unreachable_database_fails_calls_promptly_and_the_store_recovers() {
        let cluster = Cluster::shared();
        let db = database();
        let mut relay = Relay::start(cluster.port()).await;
        let url = db.url().replace(
            &format!(":{}/", cluster.port()),
            &format!(":{}/", relay.port),
        );
        let opts = PostgresOptions {
            connect_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(3),
            poll_interval: Duration::from_millis(200),
            ..PostgresOptions::default()
        };
        let store = connect(&url, opts);
        seed(&store, 2).await;
        assert!(!store.is_degraded());

        relay.cut();
        // The relayed connections close as their tasks are cancelled, just after.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        let err = store
            .append(
                Uuid::now_v7(),
                ExpectedVersion::Any,
                vec![ev("Lost", json!({}))],
            )
            .await
            .expect_err("the database cannot be reached");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "failed only after {:?}",
            started.elapsed()
        );
        let StoreError::Storage(message) = &err else {
            panic!("expected a Storage error, got {err:?}");
        };
        assert!(!message.contains(cluster.password()), "{message}");
        assert!(store.is_degraded(), "degraded while unreachable");
        // A second append does not wait for the first's connection either.
        let err = store
            .append(
                Uuid::now_v7(),
                ExpectedVersion::Any,
                vec![ev("Lost", json!({}))],
            )
            .await
            .expect_err("still unreachable");
        let StoreError::Storage(message) = &err else {
            panic!("expected a Storage error, got {err:?}");
        };
        assert!(
            message.contains(&format!("postgres@127.0.0.1:{}/{}", relay.port, db.name())),
            "names the server: {message}"
        );
        assert!(!message.contains(cluster.password()), "{message}");
        assert!(matches!(
            store.read_batch(1, 10),
            Err(StoreError::Storage(_))
        ));
        assert_eq!(store.head().seq, 2, "the last known head stays");

        relay.restore().await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while store.is_degraded() {
            assert!(
                Instant::now() < deadline,
                "still degraded after the server came back"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let recs = store
            .append(
                Uuid::now_v7(),
                ExpectedVersion::Any,
                vec![ev("Back", json!({}))],
            )
            .await
            .expect("appends work again");
        assert_eq!(recs[0].seq, 3, "the refused appends stored nothing");
        assert_chain(&store, 3);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_refused_connection_names_the_server_but_not_the_password() {
        let cluster = Cluster::shared();
        let db = database();
        let wrong = db
            .url()
            .replace(cluster.password(), "not-the-password-7c1f");
        let err = PostgresEventStore::connect(&wrong, PostgresOptions::default())
            .err()
            .expect("wrong password");
        let StoreError::Storage(m) = &err else {
            panic!("expected Storage, got {err:?}");
        };
        assert!(
            m.contains(&format!(
                "postgres@127.0.0.1:{}/{}",
                cluster.port(),
                db.name()
            )),
            "{m}"
        );
        assert!(m.contains("28P01"), "says the password was refused: {m}");
        assert!(!m.contains("not-the-password-7c1f"), "{m}");

        let nobody = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = nobody.local_addr().expect("addr").port();
        drop(nobody);
        let err = PostgresEventStore::connect(
            &format!("postgres://avvik:secret-5d2@127.0.0.1:{port}/avvik"),
            PostgresOptions::default(),
        )
        .err()
        .expect("nothing listens there");
        let StoreError::Storage(m) = &err else {
            panic!("expected Storage, got {err:?}");
        };
        assert!(m.contains(&format!("avvik@127.0.0.1:{port}/avvik")), "{m}");
        assert!(!m.contains("secret-5d2"), "{m}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn verify_names_rows_changed_in_the_database() {
        let cases = [
            (
                "one byte changed in record 4",
                "UPDATE avvik_events SET bytes = convert_to(replace(convert_from(bytes, 'UTF8'), \
                 'alpha-4', 'alphb-4'), 'UTF8') WHERE seq = 4",
                4,
            ),
            (
                "record 5 deleted",
                "DELETE FROM avvik_events WHERE seq = 5",
                5,
            ),
            (
                "last record deleted",
                "DELETE FROM avvik_events WHERE seq = 8",
                8,
            ),
            (
                "a record added after the head",
                "INSERT INTO avvik_events (seq, id, stream, version, bytes) \
                 SELECT 9, gen_random_uuid(), stream, version + 100, bytes \
                 FROM avvik_events WHERE seq = 8",
                9,
            ),
            (
                "the head row moved back",
                "UPDATE avvik_head SET seq = 6",
                7,
            ),
        ];
        for (what, sql, bad) in cases {
            let db = database();
            let store = connect(db.url(), PostgresOptions::default());
            seed(&store, 8).await;
            assert!(store.verify().expect("verify").ok);
            db.psql(sql);
            let report = store.verify().expect("verify");
            assert!(!report.ok, "{what}: not detected");
            assert_eq!(report.first_bad_seq, Some(bad), "{what}: {report:?}");
        }

        // A record that cannot be read is reported once, and reading goes on after it.
        let db = database();
        let store = connect(db.url(), PostgresOptions::default());
        seed(&store, 5).await;
        db.psql("UPDATE avvik_events SET bytes = '\\x7b6e6f74'::bytea WHERE seq = 3");
        let seqs: Vec<Result<u64, u64>> = read_all(&store, 1)
            .map(|r| match r {
                Ok(r) => Ok(r.seq),
                Err(StoreError::Corrupt { seq, .. }) => Err(seq),
                Err(e) => panic!("unexpected: {e}"),
            })
            .collect();
        assert_eq!(seqs, [Ok(1), Ok(2), Err(3), Ok(4), Ok(5)]);
        assert_eq!(store.verify().expect("verify").first_bad_seq, Some(3));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_sled_log_moves_to_postgres_byte_for_byte() {
        let dir = tempdir();
        let sled = open(dir.path());
        populated(&sled).await;
        let export = export_bytes(&sled);
        let head = sled.head();

        let db = database();
        let imported = PostgresEventStore::import(
            db.url(),
            PostgresOptions::default(),
            &mut &export[..],
            &counter_of,
        )
        .expect("import into an empty database");
        assert_eq!(imported, head, "the same head hash");
        let pg = connect(db.url(), PostgresOptions::default());
        assert_eq!(pg.head(), head);
        assert_eq!(raw_log(&pg), raw_log(&sled), "the same bytes");
        assert_eq!(pg.counter("case").expect("counter"), 10);
        assert!(pg.verify().expect("verify").ok);
        drop(pg);

        let err = PostgresEventStore::import(
            db.url(),
            PostgresOptions::default(),
            &mut &export[..],
            &counter_of,
        )
        .expect_err("the database holds records now");
        assert!(matches!(err, StoreError::Import(_)), "{err:?}");
    }
}
