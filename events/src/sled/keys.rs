//! The key layout: everything in one sled tree, so a commit is one atomic batch.
//!
//! | key | value |
//! |---|---|
//! | `L` seq (be64) | the record's stored bytes |
//! | `S` stream (16) version (be32) | seq (be64) |
//! | `I` event id (16) | seq (be64) |
//! | `C` counter name | value (be64) |
//! | `H` | head seq (be64), hash (32), at micros (be64), floor (be64) |

use uuid::Uuid;

use crate::store::rules::ChainTip;

pub(crate) const K_LOG: u8 = b'L';
pub(crate) const K_STREAM: u8 = b'S';
pub(crate) const K_ID: u8 = b'I';
pub(crate) const K_COUNTER: u8 = b'C';
pub(crate) const K_HEAD: &[u8] = b"H";

pub(crate) fn log_key(seq: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = K_LOG;
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

pub(crate) fn stream_key(stream: Uuid, version: u32) -> [u8; 21] {
    let mut k = [0u8; 21];
    k[0] = K_STREAM;
    k[1..17].copy_from_slice(stream.as_bytes());
    k[17..].copy_from_slice(&version.to_be_bytes());
    k
}

/// The version in a stream key.
pub(crate) fn stream_key_version(k: &[u8]) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&k[17..21]);
    u32::from_be_bytes(b)
}

pub(crate) fn id_key(id: Uuid) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = K_ID;
    k[1..].copy_from_slice(id.as_bytes());
    k
}

pub(crate) fn counter_key(name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + name.len());
    k.push(K_COUNTER);
    k.extend_from_slice(name.as_bytes());
    k
}

pub(crate) fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    let n = b.len().min(8);
    a[..n].copy_from_slice(&b[..n]);
    u64::from_be_bytes(a)
}

/// The head entry: the head, plus the head before this commit (`floor`): records up to the
/// floor were flushed by an earlier commit, so only records above it can be cut short by a
/// crash.
pub(crate) fn encode_head(h: &ChainTip, floor: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(56);
    v.extend_from_slice(&h.seq.to_be_bytes());
    v.extend_from_slice(&h.hash);
    v.extend_from_slice(&h.at_micros.to_be_bytes());
    v.extend_from_slice(&floor.to_be_bytes());
    v
}

/// The head stored in a head entry (48 bytes without a floor, 56 with one).
pub(crate) fn decode_head(b: &[u8]) -> Option<ChainTip> {
    if b.len() != 48 && b.len() != 56 {
        return None;
    }
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&b[8..40]);
    Some(ChainTip {
        seq: be_u64(&b[..8]),
        hash,
        at_micros: be_u64(&b[40..48]) as i64,
    })
}

/// The floor stored with the head (the head itself for entries written without one).
pub(crate) fn head_floor(b: &[u8]) -> u64 {
    if b.len() == 56 {
        be_u64(&b[48..56])
    } else {
        be_u64(&b[..8.min(b.len())])
    }
}
