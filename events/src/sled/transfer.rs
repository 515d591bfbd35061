//! Import into an empty sled store. (Export needs nothing of sled: it is the trait's
//! default over `for_each_raw`.)

use std::path::Path;
use std::sync::atomic::Ordering;

use super::keys::{counter_key, encode_head, id_key, log_key, stream_key, K_HEAD};
use super::{lock, Shared, SledEventStore, StoreOptions};
use crate::store::rules::{self, ChainTip};
use crate::store::{CounterOf, EventStore, Head, Result};

/// Records per sled batch while importing (memory does not grow with the export).
const CHUNK: usize = 10_000;

impl SledEventStore {
    /// Opens the store in `dir`, which must be empty, fills it from an NDJSON export
    /// ([`EventStore::import`]) and closes it again. Returns the new head.
    pub fn import(
        dir: &Path,
        opts: StoreOptions,
        input: &mut dyn std::io::BufRead,
        counter_of: &CounterOf,
    ) -> Result<Head> {
        let store = Self::open(dir, opts)?;
        let head = EventStore::import(&store, input, counter_of)?;
        drop(store);
        Ok(head)
    }
}

/// The trait's `import` for sled: holds the writer's gate throughout, so no append can
/// interleave, and hands the writer the imported head.
pub(super) fn import(
    shared: &Shared,
    input: &mut dyn std::io::BufRead,
    counter_of: &CounterOf,
) -> Result<Head> {
    let mut gate = lock(&shared.gate);
    let tree = shared.tree()?;
    if shared.durable_seq.load(Ordering::Acquire) != 0 || tree.first()?.is_some() {
        return Err(rules::import_target_not_empty());
    }
    match write_records(&tree, input, counter_of) {
        Ok(tip) => {
            *gate = Some(tip);
            shared.publish(tip);
            Ok(tip.to_head())
        }
        Err(e) => {
            // Records are written in chunks as they are checked; a refused import must not
            // leave the early chunks behind (the target was empty).
            if let Err(ce) = tree.clear().and_then(|()| tree.flush().map(|_| ())) {
                tracing::error!(error = %ce, "could not clear a refused import");
            }
            Err(e)
        }
    }
}

/// Writes the records of an NDJSON export into an empty `tree` as the shared walk checks
/// them, then the rebuilt counters and the head. Returns the head.
fn write_records(
    tree: &sled::Tree,
    input: &mut dyn std::io::BufRead,
    counter_of: &CounterOf,
) -> Result<ChainTip> {
    let mut batch = sled::Batch::default();
    let mut in_batch = 0usize;
    let log = rules::read_export(input, counter_of, &mut |rec, bytes| {
        batch.insert(&log_key(rec.seq), bytes);
        batch.insert(&stream_key(rec.stream, rec.version), &rec.seq.to_be_bytes());
        batch.insert(&id_key(rec.id), &rec.seq.to_be_bytes());
        in_batch += 1;
        if in_batch >= CHUNK {
            tree.apply_batch(std::mem::take(&mut batch))?;
            in_batch = 0;
        }
        Ok(())
    })?;
    for (name, value) in &log.counters {
        batch.insert(counter_key(name), &value.to_be_bytes());
    }
    batch.insert(K_HEAD, encode_head(&log.tip, log.tip.seq));
    tree.apply_batch(batch)?;
    tree.flush()?;
    Ok(log.tip)
}
