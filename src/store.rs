//! Opening the event store with avvik's options: the gap-free reference counters are
//! recovered from the reports in the log.

use avvik_events::{RecordedEvent, StoreOptions};

use crate::domain::Reference;

/// Store options for commands that open a data directory: tail recovery can rebuild the
/// reference counters.
pub fn store_options() -> StoreOptions {
    StoreOptions {
        counter_of: Some(std::sync::Arc::new(counter_of)),
        ..StoreOptions::default()
    }
}

/// The gap-free counter a stored record advanced: reports number their year's references.
pub fn counter_of(rec: &RecordedEvent) -> Option<(String, u64)> {
    if rec.event_type != "DeviationReported" {
        return None;
    }
    let r = Reference::parse(rec.data.get("reference")?.as_str()?)?;
    Some((Reference::counter_name(r.year), r.number))
}
