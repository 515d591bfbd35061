//! Tail recovery: on every open, the end of the log is made consistent after a crash.

use std::collections::HashMap;

use chrono::Utc;
use uuid::Uuid;

use super::decode;
use super::keys::{
    be_u64, counter_key, encode_head, id_key, log_key, stream_key, stream_key_version, K_COUNTER,
    K_HEAD, K_ID, K_STREAM,
};
use crate::record::{NewEvent, RecordedEvent};
use crate::store::rules::{recovery_stream, ChainTip};
use crate::store::{CounterOf, Result, StoreError};

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
pub(crate) fn recover_tail(
    tree: &sled::Tree,
    stored: Option<ChainTip>,
    floor: u64,
    counter_of: Option<&CounterOf>,
) -> Result<ChainTip> {
    let start = match stored {
        Some(h) => h.seq.saturating_sub(RECOVERY_WINDOW).max(1),
        None => 1,
    };
    let mut head = ChainTip {
        seq: start - 1,
        ..ChainTip::EMPTY
    };
    if start > 1 {
        let below = tree.get(log_key(start - 1))?.ok_or(StoreError::Corrupt {
            seq: start - 1,
            reason: "a record below the recent tail is missing; restore from an export".into(),
        })?;
        let rec = decode(start - 1, &below)?;
        head.advance(&rec, &below);
        // The position is the key's, whatever the record says about itself.
        head.seq = start - 1;
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
        let prev = head.prev();
        let rec = match serde_json::from_slice::<RecordedEvent>(&v) {
            Ok(rec) if rec.seq == seq && rec.prev == prev => rec,
            _ => {
                damaged = true;
                break;
            }
        };
        head.advance(&rec, &v);
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
            .map(|k| stream_key_version(&k))
            .unwrap_or(0)
            + 1;
        let event = NewEvent {
            id: Uuid::now_v7(),
            event_type: "LogTailRecovered".into(),
            schema: 1,
            data: serde_json::json!({
                "stored_head_seq": stored.map(|h| h.seq),
                "stored_head_hash": stored.map(|h| hex::encode(h.hash)),
                "recovered_head_seq": head.seq,
                "removed_records": orphans.len(),
                "reindexed_entries": changes,
            }),
            actor: "system".into(),
            at: Utc::now(),
        };
        // Sealed like any append: the next seq, linked to the recovered head, its time
        // never before the head's.
        let (rec, bytes) = head.seal(stream, version, event);
        batch.insert(&log_key(rec.seq), bytes);
        batch.insert(&stream_key(stream, version), &rec.seq.to_be_bytes());
        batch.insert(&id_key(rec.id), &rec.seq.to_be_bytes());
    }
    batch.insert(K_HEAD, encode_head(&head, head.seq));
    tree.apply_batch(batch)?;
    tree.flush()?;
    Ok(head)
}
