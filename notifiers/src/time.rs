//! Times as people in the municipality read them: Europe/Stockholm wall-clock time.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Europe::Stockholm;

/// `2026-03-30 kl. 11:00` in Stockholm time (CET or CEST, whichever applied then).
pub fn stockholm(at: DateTime<Utc>) -> String {
    at.with_timezone(&Stockholm)
        .format("%Y-%m-%d kl. %H:%M")
        .to_string()
}

/// A calendar date, `2026-03-28`.
pub fn date(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_wall_clock_time_on_both_sides_of_the_dst_switch() {
        // Summer time starts 2026-03-29 at 01:00 UTC (02:00 CET -> 03:00 CEST).
        let before = "2026-03-28T09:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let after = "2026-03-30T09:00:00Z".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(stockholm(before), "2026-03-28 kl. 10:00");
        assert_eq!(stockholm(after), "2026-03-30 kl. 11:00");
    }
}
