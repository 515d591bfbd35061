//! Cron expressions evaluated on the Stockholm wall clock.
//!
//! The `cron` crate walks the calendar; we let it walk *wall-clock* time (a naive
//! Stockholm date and time, carried in a `DateTime<Utc>` that has no DST) and map each
//! wall-clock slot to an instant with chrono-tz, so daylight-saving changes follow one
//! rule (RFC 5545's): a wall time that occurs twice (autumn) fires once, at the first
//! occurrence; a wall time that does not exist (spring) fires once, shifted by the length
//! of the gap (02:30 → 03:30). Slots that land on the same instant count once.

use std::str::FromStr;

use chrono::{DateTime, Duration, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Europe::Stockholm;

/// How far around a window to look on the wall clock, so slots moved by a DST change are
/// not missed at the edges.
const SLACK: Duration = Duration::hours(3);

/// A parsed cron expression (`sec min hour day month weekday [year]`) in Stockholm time.
#[derive(Debug, Clone)]
pub struct StockholmSchedule {
    expression: String,
    schedule: cron::Schedule,
}

impl StockholmSchedule {
    pub fn parse(expression: &str) -> Result<Self, cron::error::Error> {
        Ok(Self {
            expression: expression.to_string(),
            schedule: cron::Schedule::from_str(expression.trim())?,
        })
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The first slot strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = wall(t) - SLACK;
        self.schedule
            .after(&Utc.from_utc_datetime(&start))
            .take(10_000)
            .filter_map(|w| to_instant(w.naive_utc()))
            .find(|i| *i > t)
    }

    /// The first slot at or after `t`.
    pub fn at_or_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.next_after(t - Duration::seconds(1))
    }

    /// Slots in `(after, until]`, oldest first; at most the latest `limit` of them.
    pub fn slots_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Vec<DateTime<Utc>> {
        if until <= after || limit == 0 {
            return Vec::new();
        }
        let lowest_wall = wall(after) - SLACK;
        let mut out: Vec<DateTime<Utc>> = Vec::new();
        // Walk backwards from just past `until`, so a long window yields its latest slots
        // without visiting every earlier one.
        for w in self
            .schedule
            .after(&Utc.from_utc_datetime(&(wall(until) + SLACK)))
            .rev()
        {
            let w = w.naive_utc();
            if w < lowest_wall {
                break;
            }
            if let Some(i) = to_instant(w) {
                if i > after && i <= until && !out.contains(&i) {
                    out.push(i);
                    if out.len() >= limit {
                        break;
                    }
                }
            }
        }
        out.sort();
        out
    }
}

/// The Stockholm wall-clock reading at an instant.
pub fn wall(t: DateTime<Utc>) -> NaiveDateTime {
    t.with_timezone(&Stockholm).naive_local()
}

/// The instant a Stockholm wall-clock time names: the earlier one in an autumn fold; in a
/// spring gap, read with the offset in force before the gap.
pub fn to_instant(w: NaiveDateTime) -> Option<DateTime<Utc>> {
    match Stockholm.from_local_datetime(&w) {
        chrono::LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        chrono::LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
        chrono::LocalResult::None => {
            // DST changes are months apart: a day earlier is safely before the gap.
            let before = Stockholm
                .offset_from_local_datetime(&(w - Duration::days(1)))
                .earliest()?
                .fix();
            let utc = w - Duration::seconds(i64::from(before.local_minus_utc()));
            Some(Utc.from_utc_datetime(&utc))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_annual_default_fires_at_seven_stockholm_time() {
        let s = StockholmSchedule::parse("0 0 7 10 1 *").unwrap();
        // Winter: CET, UTC+1.
        assert_eq!(
            s.next_after(utc("2026-06-01T00:00:00Z")),
            Some(utc("2027-01-10T06:00:00Z"))
        );
        assert_eq!(
            s.slots_between(utc("2025-01-01T00:00:00Z"), utc("2027-01-10T06:00:00Z"), 10),
            vec![
                utc("2025-01-10T06:00:00Z"),
                utc("2026-01-10T06:00:00Z"),
                utc("2027-01-10T06:00:00Z")
            ]
        );
        // Exclusive start, inclusive end; the limit keeps the latest.
        assert_eq!(
            s.slots_between(utc("2025-01-10T06:00:00Z"), utc("2027-01-10T05:59:59Z"), 10),
            vec![utc("2026-01-10T06:00:00Z")]
        );
        assert_eq!(
            s.slots_between(utc("2020-01-01T00:00:00Z"), utc("2027-02-01T00:00:00Z"), 2),
            vec![utc("2026-01-10T06:00:00Z"), utc("2027-01-10T06:00:00Z")]
        );
    }

    #[test]
    fn summer_time_shifts_the_instant_not_the_wall_clock() {
        let s = StockholmSchedule::parse("0 0 7 * * *").unwrap();
        // 2027-03-28: clocks go 02:00 CET → 03:00 CEST.
        assert_eq!(
            s.slots_between(utc("2027-03-27T00:00:00Z"), utc("2027-03-29T00:00:00Z"), 10),
            vec![utc("2027-03-27T06:00:00Z"), utc("2027-03-28T05:00:00Z")]
        );
    }

    #[test]
    fn a_wall_time_in_the_spring_gap_fires_once_after_the_gap() {
        let s = StockholmSchedule::parse("0 30 2 * * *").unwrap();
        let slots = s.slots_between(utc("2027-03-27T12:00:00Z"), utc("2027-03-29T12:00:00Z"), 10);
        // 28 March: 02:30 does not exist; it fires at 03:30 CEST (01:30Z). 29 March: 00:30Z.
        assert_eq!(
            slots,
            vec![utc("2027-03-28T01:30:00Z"), utc("2027-03-29T00:30:00Z")]
        );
        assert_eq!(
            s.next_after(utc("2027-03-27T12:00:00Z")),
            Some(utc("2027-03-28T01:30:00Z"))
        );
    }

    #[test]
    fn a_wall_time_in_the_autumn_fold_fires_once() {
        let s = StockholmSchedule::parse("0 30 2 * * *").unwrap();
        // 2027-10-31: clocks go 03:00 CEST → 02:00 CET, so 02:30 happens twice.
        let slots = s.slots_between(utc("2027-10-30T12:00:00Z"), utc("2027-11-01T12:00:00Z"), 10);
        assert_eq!(
            slots,
            vec![utc("2027-10-31T00:30:00Z"), utc("2027-11-01T01:30:00Z")]
        );
        // Iterating forwards from just after the first 02:30 skips the second one.
        assert_eq!(
            s.next_after(utc("2027-10-31T00:30:00Z")),
            Some(utc("2027-11-01T01:30:00Z"))
        );
    }

    #[test]
    fn every_half_hour_across_the_gap_has_no_duplicates() {
        let s = StockholmSchedule::parse("0 0,30 * * * *").unwrap();
        let slots = s.slots_between(
            utc("2027-03-27T23:45:00Z"),
            utc("2027-03-28T02:15:00Z"),
            100,
        );
        assert_eq!(
            slots,
            vec![
                utc("2027-03-28T00:00:00Z"), // 01:00 CET
                utc("2027-03-28T00:30:00Z"), // 01:30 CET
                utc("2027-03-28T01:00:00Z"), // 02:00 (gap) → 03:00 CEST, same as 03:00
                utc("2027-03-28T01:30:00Z"), // 02:30 (gap) → 03:30 CEST, same as 03:30
                utc("2027-03-28T02:00:00Z"), // 04:00 CEST
            ]
        );
    }

    #[test]
    fn bad_expressions_are_refused() {
        assert!(StockholmSchedule::parse("every day").is_err());
        assert!(StockholmSchedule::parse("0 0 25 * * *").is_err());
    }
}
