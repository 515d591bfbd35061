//! Builds an annual report from the log as it stood at a seq: one pass over the records,
//! noting each deviation's status when the year ended on the way.

use std::collections::HashMap;

use avvik_events::{read_all, EventStore, StoreError, GENESIS_HASH};
use uuid::Uuid;

use super::model::{compute, AnnualReport, Period, Source};
use crate::domain::{stockholm_year, Status};
use crate::register::Register;

/// Years a report can be made for.
pub const YEARS: std::ops::RangeInclusive<i32> = 1970..=9998;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("no annual report can be made for year {0}")]
    InvalidYear(i32),
    #[error("seq {0} is past the head of the log")]
    BeyondHead(u64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Hex SHA-256 of record `seq`'s stored bytes; the genesis hash for seq 0.
pub fn record_hash(store: &dyn EventStore, seq: u64) -> Result<String, StoreError> {
    if seq == 0 {
        return Ok(GENESIS_HASH.to_string());
    }
    let mut hash = None;
    store.for_each_raw(seq, seq, &mut |_, bytes| {
        hash = Some(avvik_events::hash_hex(bytes));
        Ok(())
    })?;
    hash.ok_or(StoreError::Corrupt {
        seq,
        reason: "record missing below the head".into(),
    })
}

/// The report on `year` from records `1..=as_of_seq`. Blocking (reads the whole log up to
/// that seq); call it from `spawn_blocking` in async code.
pub fn build_report(
    store: &dyn EventStore,
    keys: &crate::privacy::Keyring,
    year: i32,
    as_of_seq: u64,
) -> Result<AnnualReport, ReportError> {
    if !YEARS.contains(&year) {
        return Err(ReportError::InvalidYear(year));
    }
    let period = Period::of_year(year).ok_or(ReportError::InvalidYear(year))?;
    if as_of_seq > store.head().seq {
        return Err(ReportError::BeyondHead(as_of_seq));
    }
    let mut reg = Register::new();
    let mut year_end: Option<HashMap<Uuid, Status>> = None;
    let mut as_of_at = None;
    let snapshot = |reg: &Register| -> HashMap<Uuid, Status> {
        reg.list()
            .into_iter()
            .filter(|d| stockholm_year(d.reported_at) == year)
            .map(|d| (d.id, d.status))
            .collect()
    };
    let mut unreadable = Vec::new();
    for rec in read_all(store, 1) {
        let mut rec = match rec {
            Ok(rec) => rec,
            Err(StoreError::Corrupt { seq, reason }) if seq <= as_of_seq => {
                tracing::error!(seq, %reason, "annual report: a stored record cannot be read; the report names it");
                unreadable.push(seq);
                continue;
            }
            Err(StoreError::Corrupt { .. }) => break,
            Err(e) => return Err(e.into()),
        };
        if rec.seq > as_of_seq {
            break;
        }
        // `at` never decreases along the log: the first record at or after the end of the
        // year closes it.
        if year_end.is_none() && rec.at >= period.to {
            year_end = Some(snapshot(&reg));
        }
        keys.open_record(&mut rec);
        reg.apply(&rec);
        as_of_at = Some(rec.at);
    }
    let year_end = year_end.unwrap_or_else(|| snapshot(&reg));
    let source = Source {
        as_of_seq,
        head_hash: record_hash(store, as_of_seq)?,
        as_of_at,
        unreadable_records: unreadable,
    };
    Ok(compute(year, period, source, reg.list(), &year_end))
}
