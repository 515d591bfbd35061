//! Test helpers for deviations, and the check that a deviation stays small in memory.

use chrono::{DateTime, Utc};

use super::deviation::{Deviation, Reported};
use super::types::{Channel, Reference};

impl Reported {
    /// A web report without a reporter, for tests: reference 2026-`number`, discovered and
    /// reported at `at`.
    pub(crate) fn example(number: u64, at: DateTime<Utc>) -> Self {
        Reported {
            reference: Reference::new(2026, number),
            title: "Borttappad dator".into(),
            description: "Lämnad på tåget.".into(),
            occurred_at: None,
            discovered_at: at,
            sector: None,
            asset: None,
            personal_data: false,
            reporter: None,
            channel: Channel::Web,
            status_token_hash: format!("{number:064}"),
            reported_at: at,
        }
    }
}

mod size {
    use super::Deviation;

    /// The register holds every deviation in memory (800,000 of them in the start-up
    /// benchmark): the records most deviations never get (breach and NIS2 records, the
    /// art. 34 notice, gallring, an incident link) are boxed, so an absent one costs a
    /// pointer rather than its whole size. A new large inline field shows up here.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_deviation_stays_small_in_memory() {
        let size = std::mem::size_of::<Deviation>();
        assert!(
            size <= 700,
            "Deviation is {size} bytes inline; box what most deviations lack"
        );
    }
}
