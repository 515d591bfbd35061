//! The register: current state of every deviation, a fold over the log. Built at start-up,
//! followed live, and rebuilt up to any earlier point for auditors.

use std::collections::HashMap;
use std::sync::Arc;

use avvik_events::{EventStore, RecordedEvent, StoreError};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::{evolve, Deviation, DeviationEvent, EventMeta, Reference};

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Register {
    /// Behind an `Arc`: the map grows by moving its entries, a deviation is some 640 bytes,
    /// and the outbox shares these states instead of keeping copies of its own
    /// (`projection::replay_sharing`).
    deviations: HashMap<Uuid, Arc<Deviation>>,
    by_reference: HashMap<Reference, Uuid>,
    /// By the SHA-256 of the status link's token (the register's only copy of it).
    by_token_hash: HashMap<[u8; 32], Uuid>,
    seq: u64,
    /// Staff accounts and roles, folded from the same log.
    pub accounts: crate::domain::account::Accounts,
    /// Stored records of a deviation type that did not decode (never expected; counted so
    /// it is visible rather than silent).
    pub undecodable: u64,
    /// Records that could not be read at all (not JSON, or missing), skipped: the chain
    /// check (`avvik verify`, the audit pages) names them.
    pub unreadable: Vec<u64>,
}

impl Register {
    pub fn new() -> Self {
        Self::default()
    }

    /// The last seq folded in.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Passes over a record that cannot be read, loudly.
    pub fn skip_unreadable(&mut self, seq: u64, reason: &str) {
        tracing::error!(
            seq,
            reason,
            "a stored record cannot be read; the register goes on without it (avvik verify names it)"
        );
        self.unreadable.push(seq);
        self.seq = self.seq.max(seq);
    }

    /// Folds one record in. Records of other types (accounts, notices, …) only move the seq.
    pub fn apply(&mut self, rec: &RecordedEvent) {
        self.seq = rec.seq;
        if self.accounts.apply(rec) {
            return;
        }
        if let Some(decoded) = DeviationEvent::from_parts(&rec.event_type, &rec.data) {
            let meta = crate::projection::meta_of(rec);
            self.apply_event(
                &meta,
                rec.stream,
                decoded.map_err(|e| e.to_string()).as_ref(),
            );
        }
    }

    /// Folds one deviation event in; returns the deviation's state after it (`None`: the
    /// event did not decode or left no deviation).
    fn apply_event(
        &mut self,
        meta: &EventMeta,
        stream: Uuid,
        event: Result<&DeviationEvent, &String>,
    ) -> Option<Arc<Deviation>> {
        self.seq = meta.seq;
        let ev = match event {
            Ok(ev) => ev,
            Err(e) => {
                self.undecodable += 1;
                tracing::error!(seq = meta.seq, error = %e, "stored deviation event does not decode");
                return None;
            }
        };
        let prev = self.deviations.remove(&stream);
        let was_new = prev.is_none();
        // A state the outbox still shares is copied; otherwise it is moved.
        let d = Arc::new(evolve(prev.map(Arc::unwrap_or_clone), stream, ev, meta)?);
        if was_new {
            self.by_reference.insert(d.reference, d.id);
            if let Some(hash) = match ev {
                DeviationEvent::Reported(r) => token_hash_bytes(&r.status_token_hash),
                _ => None,
            } {
                self.by_token_hash.insert(hash, d.id);
            }
        }
        self.deviations.insert(stream, d.clone());
        Some(d)
    }

    pub fn get(&self, id: Uuid) -> Option<&Deviation> {
        self.deviations.get(&id).map(|d| &**d)
    }

    /// The deviation's current state as the register holds it (shared, not copied).
    pub fn shared(&self, id: Uuid) -> Option<&Arc<Deviation>> {
        self.deviations.get(&id)
    }

    pub fn by_reference(&self, r: Reference) -> Option<&Deviation> {
        self.by_reference.get(&r).and_then(|id| self.get(*id))
    }

    pub fn by_token_hash(&self, hash: &str) -> Option<&Deviation> {
        let hash = token_hash_bytes(hash)?;
        self.by_token_hash.get(&hash).and_then(|id| self.get(*id))
    }

    pub fn len(&self) -> usize {
        self.deviations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.deviations.is_empty()
    }

    /// All deviations, newest reference first.
    pub fn list(&self) -> Vec<&Deviation> {
        let mut v: Vec<&Deviation> = self.deviations.values().map(|d| &**d).collect();
        v.sort_by_key(|d| std::cmp::Reverse(d.reference));
        v
    }

    /// Folds the log from the start up to and including `to_seq`.
    pub fn fold(
        store: &dyn EventStore,
        keys: &crate::privacy::Keyring,
        to_seq: u64,
    ) -> Result<Self, StoreError> {
        let mut reg = Register::new();
        crate::projection::replay(store, keys, 1, to_seq, &mut [&mut reg])?;
        Ok(reg)
    }
}

/// A status token's hash (64 lowercase hex digits, as `service::token_hash` writes it) as
/// bytes; `None` for anything else, which then finds no deviation.
fn token_hash_bytes(hex: &str) -> Option<[u8; 32]> {
    if !hex.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex, &mut out).ok()?;
    Some(out)
}

impl crate::projection::LogFold for Register {
    fn apply(&mut self, rec: &RecordedEvent) {
        Register::apply(self, rec)
    }
    fn apply_deviation(&mut self, d: &crate::projection::DecodedDeviation) {
        self.apply_event(&d.meta, d.stream, d.event.as_ref());
    }
    fn seq(&self) -> u64 {
        Register::seq(self)
    }
    fn skip_unreadable(&mut self, seq: u64, reason: &str) {
        Register::skip_unreadable(self, seq, reason)
    }
}

impl crate::projection::SharedStates for Register {
    fn apply_shared(&mut self, d: &crate::projection::DecodedDeviation) -> Option<Arc<Deviation>> {
        self.apply_event(&d.meta, d.stream, d.event.as_ref())
    }
}

/// A point in the log's history: a seq, or a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    Seq(u64),
    Time(DateTime<Utc>),
}

impl AsOf {
    /// `seq:N` or an RFC 3339 time.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if let Some(n) = s.strip_prefix("seq:") {
            return n.parse().ok().map(AsOf::Seq);
        }
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| AsOf::Time(t.with_timezone(&Utc)))
    }

    /// The last seq at or before this point (0 when the log was empty then).
    pub fn resolve(self, store: &dyn EventStore) -> Result<u64, StoreError> {
        let head = store.head().seq;
        match self {
            AsOf::Seq(n) => Ok(n.min(head)),
            AsOf::Time(t) => {
                // `at` never decreases along the log: binary search for the last seq <= t.
                let (mut lo, mut hi) = (0u64, head);
                while lo < hi {
                    let mid = lo + (hi - lo).div_ceil(2);
                    let rec = store.read_batch(mid, 1)?;
                    match rec.first() {
                        Some(r) if r.at <= t => lo = mid,
                        _ => hi = mid - 1,
                    }
                }
                Ok(lo)
            }
        }
    }
}

/// The register, kept current.
pub type RegisterProjection = crate::projection::Projection<Register>;

impl RegisterProjection {
    /// The register alone, caught up by its own pass (tools that need nothing else).
    pub fn start_register(
        store: std::sync::Arc<dyn EventStore>,
        keys: std::sync::Arc<crate::privacy::Keyring>,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> std::sync::Arc<Self> {
        Self::start(Register::new, "register", store, keys, shutdown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The status-link lookup keeps the token's hash as 32 bytes; it finds the deviation by
    /// the hash `service::token_hash` writes and nothing by any other spelling.
    #[test]
    fn a_status_link_finds_its_deviation_by_the_hash_only() {
        let at = Utc::now();
        let stream = Uuid::now_v7();
        let token = "a-status-token";
        let mut reported = crate::domain::Reported::example(7, at);
        reported.status_token_hash = avvik_events::hash_hex(token.as_bytes());
        let mut reg = Register::new();
        let meta = EventMeta {
            seq: 1,
            at,
            actor: "reporter:anonymous".into(),
        };
        reg.apply_event(
            &meta,
            stream,
            Ok(&DeviationEvent::Reported(reported.clone())),
        );
        let hash = avvik_events::hash_hex(token.as_bytes());
        assert_eq!(reg.by_token_hash(&hash).map(|d| d.id), Some(stream));
        assert!(reg.by_token_hash(&hash.to_uppercase()).is_none());
        assert!(reg.by_token_hash(&hash[..62]).is_none());
        assert!(reg.by_token_hash("").is_none());
        assert!(reg
            .by_token_hash(&avvik_events::hash_hex(b"another"))
            .is_none());
    }
}
