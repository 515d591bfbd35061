//! An append waiting for a backend's writer thread, and how it is staged: the same for
//! every backend, which only decides how a commit of staged jobs is made durable.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::rules::{self, AppendView, ChainTip};
use super::{ExpectedVersion, NumberedBuild, Result};
use crate::record::{NewEvent, RecordedEvent};

/// How long a writer waits, at most, for the callers of its last commit to append again.
const LINGER_STEP: Duration = Duration::from_micros(100);
const LINGER_STEPS: u32 = 3;

/// The jobs a writer thread commits one batch at a time.
pub(crate) struct Queue {
    rx: mpsc::Receiver<Job>,
    max_batch: usize,
    /// How many jobs the last commit answered.
    answered: usize,
}

impl Queue {
    pub(crate) fn new(rx: mpsc::Receiver<Job>, max_batch: usize) -> Self {
        Self {
            rx,
            max_batch: max_batch.max(1),
            answered: 0,
        }
    }

    /// Fills `jobs` with the next commit's jobs: waits for the first, then takes what is
    /// queued, up to the batch size. While fewer are queued than the last commit answered,
    /// it waits a little (at most [`LINGER_STEPS`] × [`LINGER_STEP`]) for those callers,
    /// which append again microseconds after their answer: otherwise they miss this commit
    /// and wait for the next, and concurrent callers split into two halves that take turns.
    /// `false` once the queue is closed and empty.
    pub(crate) fn next_batch(&mut self, jobs: &mut Vec<Job>) -> bool {
        let Some(first) = self.rx.blocking_recv() else {
            return false;
        };
        jobs.push(first);
        let mut waits = 0;
        while jobs.len() < self.max_batch {
            match self.rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(mpsc::error::TryRecvError::Empty)
                    if jobs.len() < self.answered && waits < LINGER_STEPS =>
                {
                    waits += 1;
                    std::thread::sleep(LINGER_STEP);
                }
                Err(_) => break,
            }
        }
        self.answered = jobs.len();
        true
    }
}

/// Where a job's answer goes.
pub(crate) type Reply = oneshot::Sender<Result<Vec<RecordedEvent>>>;

pub(crate) enum Job {
    Append {
        stream: Uuid,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        reply: Reply,
    },
    Numbered {
        counter: String,
        stream: Uuid,
        expected: ExpectedVersion,
        build: NumberedBuild,
        reply: Reply,
    },
}

impl Job {
    /// Stages the job onto `tip` through the append rules; returns where its answer goes
    /// and what it is once the commit is durable.
    pub(crate) fn stage(
        self,
        view: &mut dyn AppendView,
        tip: &mut ChainTip,
    ) -> (Reply, Result<Vec<RecordedEvent>>) {
        match self {
            Job::Append {
                stream,
                expected,
                events,
                reply,
            } => (
                reply,
                rules::stage_append(view, tip, stream, expected, events),
            ),
            Job::Numbered {
                counter,
                stream,
                expected,
                build,
                reply,
            } => (
                reply,
                rules::stage_numbered(view, tip, counter, stream, expected, build),
            ),
        }
    }

    pub(crate) fn into_reply(self) -> Reply {
        match self {
            Job::Append { reply, .. } | Job::Numbered { reply, .. } => reply,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        let (reply, _) = oneshot::channel();
        Job::Append {
            stream: Uuid::now_v7(),
            expected: ExpectedVersion::Any,
            events: Vec::new(),
            reply,
        }
    }

    #[test]
    fn a_batch_takes_what_is_queued_up_to_its_size_and_ends_when_the_queue_does() {
        let (tx, rx) = mpsc::channel(16);
        let mut queue = Queue::new(rx, 4);
        for _ in 0..6 {
            tx.try_send(job()).unwrap();
        }
        let mut jobs = Vec::new();
        assert!(queue.next_batch(&mut jobs));
        assert_eq!(jobs.len(), 4);
        jobs.clear();
        // Fewer queued than last answered: it lingers briefly, then takes what there is.
        assert!(queue.next_batch(&mut jobs));
        assert_eq!(jobs.len(), 2);
        jobs.clear();
        drop(tx);
        assert!(!queue.next_batch(&mut jobs));
        assert!(jobs.is_empty());
    }
}
