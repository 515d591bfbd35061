//! What an append means, written once for every backend: the hash chain (seq, `prev`, a
//! commit time that never goes backwards), idempotency by event id, expected versions,
//! gap-free counters, and the walk that checks an export before it is imported.
//!
//! A backend supplies an [`AppendView`]: lookups in what it has stored plus what it has
//! staged in the commit being assembled, and a place to stage new records. The rules decide
//! and seal; the backend only writes what they hand it. sled's writer stages a whole
//! group commit through one view; a PostgreSQL backend would stage one transaction.

use std::collections::HashMap;

use chrono::{DateTime, SubsecRound, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{CounterOf, ExpectedVersion, Head, NumberedBuild, Result, StoreError};
use crate::record::{NewEvent, RecordedEvent, GENESIS_HASH};
use crate::verify::ChainChecker;

/// The end of the chain: the last record's seq, the SHA-256 of its stored bytes and its
/// commit time. The next record is sealed against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainTip {
    pub seq: u64,
    pub hash: [u8; 32],
    pub at_micros: i64,
}

impl ChainTip {
    /// The tip of an empty log.
    pub const EMPTY: ChainTip = ChainTip {
        seq: 0,
        hash: [0; 32],
        at_micros: 0,
    };

    pub fn to_head(self) -> Head {
        Head {
            seq: self.seq,
            hash: hex::encode(self.hash),
            at: (self.seq > 0)
                .then(|| DateTime::<Utc>::from_timestamp_micros(self.at_micros))
                .flatten(),
        }
    }

    /// The `prev` the next record carries.
    pub fn prev(&self) -> String {
        if self.seq == 0 {
            GENESIS_HASH.to_string()
        } else {
            hex::encode(self.hash)
        }
    }

    /// Moves the tip past a stored record (`bytes` are its stored bytes).
    pub fn advance(&mut self, rec: &RecordedEvent, bytes: &[u8]) {
        *self = ChainTip {
            seq: rec.seq,
            hash: Sha256::digest(bytes).into(),
            at_micros: rec.at.timestamp_micros(),
        };
    }

    /// Seals `event` as the next record of the log, at `version` of `stream`, and moves the
    /// tip past it. Returns the record and the exact bytes to store.
    pub fn seal(
        &mut self,
        stream: Uuid,
        version: u32,
        event: NewEvent,
    ) -> (RecordedEvent, Vec<u8>) {
        let seq = self.seq + 1;
        let last_at = DateTime::<Utc>::from_timestamp_micros(self.at_micros)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        // Stored times have microsecond precision; truncate here so the record returned to
        // the caller is the record that is stored (and hashed).
        let at = event.at.trunc_subsecs(6);
        let at = if self.seq > 0 && at < last_at {
            last_at
        } else {
            at
        };
        let rec = RecordedEvent {
            seq,
            id: event.id,
            stream,
            version,
            at,
            actor: event.actor,
            event_type: event.event_type,
            schema: event.schema,
            data: event.data,
            prev: self.prev(),
        };
        let bytes = rec.to_bytes();
        self.advance(&rec, &bytes);
        (rec, bytes)
    }
}

/// A backend's view of its store while it assembles one commit. Every lookup counts what
/// earlier appends of the same commit staged.
pub trait AppendView {
    /// The stored (or staged) record with this event id.
    fn stored_by_id(&mut self, id: Uuid) -> Result<Option<RecordedEvent>>;
    /// The stream's last version, 0 when it has no events.
    fn stream_version(&mut self, stream: Uuid) -> Result<u32>;
    /// A gap-free counter's value, 0 if never advanced.
    fn counter(&mut self, name: &str) -> Result<u64>;
    /// Stages a sealed record under its seq, its stream version and its id. Cannot fail:
    /// everything that can refuse an append is checked before the first record is staged.
    fn put(&mut self, record: &RecordedEvent, bytes: Vec<u8>);
    /// Stages a counter's new value.
    fn put_counter(&mut self, name: String, value: u64);
}

/// The expected-version rule: `Conflict` with the actual version unless it admits it.
pub fn check_expected(stream: Uuid, expected: ExpectedVersion, actual: u32) -> Result<()> {
    if expected.admits(actual) {
        Ok(())
    } else {
        Err(StoreError::Conflict {
            stream,
            expected,
            actual,
        })
    }
}

enum Staged {
    /// Every id was stored already: the stored records, nothing staged.
    Stored(Vec<RecordedEvent>),
    New(Vec<RecordedEvent>),
}

/// Stages one append: refuses an empty one, answers a re-sent batch of stored ids with
/// the stored records, checks the expected version, then seals the events onto `tip` and
/// stages them. On `Err` nothing was staged and `tip` is unchanged.
pub fn stage_append(
    view: &mut dyn AppendView,
    tip: &mut ChainTip,
    stream: Uuid,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
) -> Result<Vec<RecordedEvent>> {
    match stage(view, tip, stream, expected, events)? {
        Staged::Stored(r) | Staged::New(r) => Ok(r),
    }
}

/// Stages a numbered append: the counter's next value goes to `build`, and the counter
/// is advanced only if the append is staged (a refused append, or a re-sent one, uses no
/// number).
pub fn stage_numbered(
    view: &mut dyn AppendView,
    tip: &mut ChainTip,
    counter: String,
    stream: Uuid,
    expected: ExpectedVersion,
    build: NumberedBuild,
) -> Result<Vec<RecordedEvent>> {
    let next = view.counter(&counter)? + 1;
    match stage(view, tip, stream, expected, build(next))? {
        Staged::Stored(r) => Ok(r),
        Staged::New(r) => {
            view.put_counter(counter, next);
            Ok(r)
        }
    }
}

fn stage(
    view: &mut dyn AppendView,
    tip: &mut ChainTip,
    stream: Uuid,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
) -> Result<Staged> {
    if events.is_empty() {
        return Err(StoreError::InvalidAppend("no events to append".into()));
    }
    // Idempotency: a re-sent batch of known ids returns what is stored.
    let mut known = Vec::new();
    for e in &events {
        if let Some(r) = view.stored_by_id(e.id)? {
            known.push(r);
        }
    }
    if !known.is_empty() {
        if known.len() == events.len() && known.iter().all(|r| r.stream == stream) {
            return Ok(Staged::Stored(known));
        }
        return Err(StoreError::InvalidAppend(
            "some event ids are already stored, others are not".into(),
        ));
    }
    let actual = view.stream_version(stream)?;
    check_expected(stream, expected, actual)?;
    let mut out = Vec::with_capacity(events.len());
    let mut version = actual;
    for e in events {
        version += 1;
        let (rec, bytes) = tip.seal(stream, version, e);
        view.put(&rec, bytes);
        out.push(rec);
    }
    Ok(Staged::New(out))
}

/// The refusal of an import into a store that holds anything.
pub fn import_target_not_empty() -> StoreError {
    StoreError::Import(
        "the target store is not empty; import only into a new data directory".into(),
    )
}

/// What an import walk found: the tip of the imported chain and the rebuilt counters.
#[derive(Debug)]
pub struct ImportedLog {
    pub tip: ChainTip,
    pub counters: HashMap<String, u64>,
}

/// Walks an NDJSON export line by line, checking the chain as it goes (memory does not
/// grow with the input), and hands each good record with its exact bytes to `store`.
/// A broken chain or an empty export is refused with `Import`; records handed over before
/// the break must then be discarded by the caller. `counter_of` rebuilds the counters.
pub fn read_export(
    input: &mut dyn std::io::BufRead,
    counter_of: &CounterOf,
    store: &mut dyn FnMut(&RecordedEvent, &[u8]) -> Result<()>,
) -> Result<ImportedLog> {
    let mut checker = ChainChecker::new();
    let mut counters: HashMap<String, u64> = HashMap::new();
    let mut line = Vec::new();
    let mut tip: Option<ChainTip> = None;
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
        store(&rec, &line)?;
        if let Some((name, value)) = counter_of(&rec) {
            let c = counters.entry(name).or_default();
            *c = (*c).max(value);
        }
        tip.get_or_insert(ChainTip::EMPTY).advance(&rec, &line);
    }
    let Some(tip) = tip else {
        return Err(StoreError::Import("the export holds no records".into()));
    };
    Ok(ImportedLog { tip, counters })
}

/// The stream that records repairs of the log itself.
pub fn recovery_stream() -> Uuid {
    Uuid::from_u128(0x6176_7669_6b2d_6c6f_672d_7265_636f_7672)
}
