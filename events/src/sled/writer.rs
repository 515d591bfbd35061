//! The single writer thread: owns the chain tip, turns queued appends into one sled batch
//! and one `flush()` (group commit). What each append means is [`crate::store::rules`];
//! this module only stages what the rules seal and commits it.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::mpsc;
use uuid::Uuid;

use super::keys::{
    be_u64, counter_key, encode_head, id_key, log_key, stream_key, stream_key_version, K_HEAD,
};
use super::{decode, lock, open_db, Shared};
use crate::record::RecordedEvent;
use crate::store::rules::{AppendView, ChainTip};
use crate::store::{Result, StoreError};

pub(crate) use crate::store::job::Job;
use crate::store::job::{Queue, Reply};

/// The single writer: owns the head, turns queued jobs into one batch and one flush.
pub(crate) struct Writer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) head: ChainTip,
    pub(crate) max_batch: usize,
}

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

/// The rules' view of the store during one commit: the tree plus the batch staged so far.
struct View<'a> {
    shared: &'a Shared,
    pending: &'a mut Pending,
}

impl AppendView for View<'_> {
    fn stored_by_id(&mut self, id: Uuid) -> Result<Option<RecordedEvent>> {
        if let Some((seq, bytes)) = self.pending.ids.get(&id) {
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

    fn stream_version(&mut self, stream: Uuid) -> Result<u32> {
        if let Some(v) = self.pending.versions.get(&stream) {
            return Ok(*v);
        }
        let last = self
            .shared
            .tree()?
            .range(stream_key(stream, 0)..=stream_key(stream, u32::MAX))
            .next_back()
            .transpose()?;
        Ok(last.map(|(k, _)| stream_key_version(&k)).unwrap_or(0))
    }

    fn counter(&mut self, name: &str) -> Result<u64> {
        match self.pending.counters.get(name) {
            Some(v) => Ok(*v),
            None => Ok(self
                .shared
                .tree()?
                .get(counter_key(name))?
                .map(|v| be_u64(&v))
                .unwrap_or(0)),
        }
    }

    fn put(&mut self, rec: &RecordedEvent, bytes: Vec<u8>) {
        let seq = rec.seq;
        let bytes = sled::IVec::from(bytes);
        let batch = &mut self.pending.batch;
        batch.insert(&log_key(seq), bytes.clone());
        batch.insert(&stream_key(rec.stream, rec.version), &seq.to_be_bytes());
        batch.insert(&id_key(rec.id), &seq.to_be_bytes());
        self.pending.ids.insert(rec.id, (seq, bytes));
        self.pending.versions.insert(rec.stream, rec.version);
    }

    fn put_counter(&mut self, name: String, value: u64) {
        self.pending
            .batch
            .insert(counter_key(&name), &value.to_be_bytes());
        self.pending.counters.insert(name, value);
    }
}

impl Writer {
    pub(crate) fn run(mut self, rx: mpsc::Receiver<Job>) {
        let mut queue = Queue::new(rx, self.max_batch);
        let mut jobs: Vec<Job> = Vec::with_capacity(self.max_batch);
        while queue.next_batch(&mut jobs) {
            self.commit(&mut jobs);
        }
        tracing::debug!("event store writer stopped");
    }

    fn commit(&mut self, jobs: &mut Vec<Job>) {
        // An import holds the gate while it writes, and leaves the head it wrote there.
        let shared = self.shared.clone();
        let mut gate = lock(&shared.gate);
        if let Some(imported) = gate.take() {
            self.head = imported;
        }
        // If a reopen failed earlier, try again; if it fails still, staging answers each
        // job with the storage error.
        self.ensure_open();
        let start_head = self.head;
        let mut pending = Pending::default();
        let mut answers: Vec<(Reply, Result<Vec<RecordedEvent>>)> = Vec::with_capacity(jobs.len());
        {
            let mut view = View {
                shared: &shared,
                pending: &mut pending,
            };
            for job in jobs.drain(..) {
                answers.push(job.stage(&mut view, &mut self.head));
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
                self.shared.publish(self.head);
                return;
            }
            self.shared.degraded.store(false, Ordering::Relaxed);
            self.shared.publish(self.head);
        }
        drop(gate);
        for (reply, r) in answers {
            let _ = reply.send(r);
        }
    }

    /// Closes and reopens the database; returns the head it holds. On failure the store
    /// stays closed (`tree()` errors) and the next commit tries again.
    fn reopen(&mut self) -> Option<ChainTip> {
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
                self.shared.publish(self.head);
                true
            }
            None => false,
        }
    }
}
