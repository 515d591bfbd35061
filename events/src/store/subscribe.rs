//! Live feeds of records: catch up from the log, then follow new commits. Built on the
//! trait alone, so every backend gets them.

use std::sync::Arc;

use tokio::sync::watch;

use super::{read_batch_past_corrupt, EventStore, Result, StoreError};
use crate::record::RecordedEvent;

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
