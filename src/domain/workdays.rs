//! Working days in Stockholm: Monday to Friday except the Swedish public holidays (lag
//! 1989:253) and the eves a municipality closes on (midsommarafton, julafton,
//! nyårsafton), as the `holidays_se` crate computes them for any year. The triage
//! deadline of a new deviation counts in these.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc, Weekday};
use chrono_tz::Europe::Stockholm;

use super::Deviation;

/// Is `d` a working day?
pub fn is_working_day(d: NaiveDate) -> bool {
    if matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
        return false;
    }
    !holidays_se::holidays_in_year(d.year()).any(|(_, h)| {
        #[allow(deprecated)] // the crate hands out chrono's old `Date`
        let h = h.naive_local();
        h == d
    })
}

/// The `n`th working day after `from` (`from` itself not counted).
pub fn add_working_days(from: NaiveDate, n: u32) -> NaiveDate {
    let mut d = from;
    let mut left = n;
    // A year has at least 240 working days: the loop ends.
    while left > 0 {
        d += Duration::days(1);
        if is_working_day(d) {
            left -= 1;
        }
    }
    d
}

/// When a deviation reported at `reported_at` should be classified: at the end (24.00,
/// Stockholm time) of the `working_days`th working day after the day it was reported.
/// `None` when there is no triage deadline (0 days).
pub fn triage_due(reported_at: DateTime<Utc>, working_days: u32) -> Option<DateTime<Utc>> {
    if working_days == 0 {
        return None;
    }
    let day = reported_at.with_timezone(&Stockholm).date_naive();
    let last = add_working_days(day, working_days);
    let next_midnight = (last + Duration::days(1)).and_hms_opt(0, 0, 0)?;
    next_midnight
        .and_local_timezone(Stockholm)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// The triage clock of a deviation: when it is due, and whether it has run out unmet at
/// `now` (not classified, not closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Triage {
    pub due: DateTime<Utc>,
    /// Classified (or closed) by then, or still open.
    pub done: bool,
    pub overdue: bool,
}

pub fn triage(d: &Deviation, working_days: u32, now: DateTime<Utc>) -> Option<Triage> {
    let due = triage_due(d.reported_at, working_days)?;
    let done = d.classified_at.is_some()
        || d.closed_at.is_some()
        || d.shredded.is_some()
        || d.incident.is_some();
    Some(Triage {
        due,
        done,
        overdue: !done && now >= due,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn weekends_holidays_and_eves_are_not_working_days() {
        assert!(is_working_day(day(2026, 3, 31))); // a Tuesday
        assert!(!is_working_day(day(2026, 4, 4))); // Saturday
        assert!(!is_working_day(day(2026, 4, 3))); // långfredagen
        assert!(!is_working_day(day(2026, 4, 6))); // annandag påsk
        assert!(!is_working_day(day(2026, 5, 14))); // Kristi himmelsfärd
        assert!(!is_working_day(day(2026, 6, 19))); // midsommarafton
        assert!(!is_working_day(day(2026, 12, 24))); // julafton
        assert!(!is_working_day(day(2026, 12, 31))); // nyårsafton
        assert!(!is_working_day(day(2027, 1, 6))); // trettondedag jul
    }

    #[test]
    fn the_triage_deadline_skips_easter() {
        // Reported on Thursday 2 April 2026: Friday and Monday are holidays.
        let reported = "2026-04-02T10:00:00Z".parse().unwrap();
        assert_eq!(add_working_days(day(2026, 4, 2), 2), day(2026, 4, 8));
        // End of Wednesday 8 April, Stockholm summer time.
        assert_eq!(
            triage_due(reported, 2),
            Some("2026-04-08T22:00:00Z".parse().unwrap())
        );
        assert_eq!(triage_due(reported, 0), None);
        // Reported on a Saturday: Monday and Tuesday.
        let sat = "2026-03-07T09:00:00Z".parse().unwrap();
        assert_eq!(
            triage_due(sat, 2),
            Some("2026-03-10T23:00:00Z".parse().unwrap())
        );
    }
}
