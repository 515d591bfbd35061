//! An append waiting for a backend's writer thread, and how it is staged: the same for
//! every backend, which only decides how a commit of staged jobs is made durable.

use tokio::sync::oneshot;
use uuid::Uuid;

use super::rules::{self, AppendView, ChainTip};
use super::{ExpectedVersion, NumberedBuild, Result};
use crate::record::{NewEvent, RecordedEvent};

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
