//! How the annual report writes values: Swedish labels, times in Stockholm, stable keys
//! for the CSV. Shared by the CSV export and the HTML and e-mail renderings.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Europe::Stockholm;

use crate::domain::{labels, Aspects, Level, PersonalDataBreach, Reference, Severity, Status};

pub(crate) fn join_refs(refs: &[Reference], sep: &str) -> String {
    refs.iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join(sep)
}

pub(crate) fn status_key(s: Status) -> &'static str {
    match s {
        Status::Received => "received",
        Status::Investigating => "investigating",
        Status::Closed => "closed",
    }
}

pub(crate) fn pdb_key(p: PersonalDataBreach) -> &'static str {
    match p {
        PersonalDataBreach::Yes => "yes",
        PersonalDataBreach::No => "no",
        PersonalDataBreach::Investigating => "investigating",
    }
}

pub(crate) fn aspect_list(a: &Aspects) -> [(&'static str, &'static str, Option<Level>); 4] {
    let l = labels::aspect_levels(a);
    let k = labels::ASPECTS;
    [
        (k[0].0, k[0].1, l[0]),
        (k[1].0, k[1].1, l[1]),
        (k[2].0, k[2].1, l[2]),
        (k[3].0, k[3].1, l[3]),
    ]
}

pub(crate) fn aspects_key(a: &Aspects) -> String {
    aspect_list(a)
        .iter()
        .filter_map(|(k, _, l)| l.map(|l| format!("{k}={}", l.get())))
        .collect::<Vec<_>>()
        .join(";")
}

pub(crate) fn aspects_sv(a: &Aspects) -> String {
    labels::aspects(a)
}

pub(crate) fn pdb_sv(p: PersonalDataBreach) -> &'static str {
    labels::personal_data_breach(p)
}

/// `2027-01-10 07:00` in Stockholm time.
pub fn datetime_sv(t: DateTime<Utc>) -> String {
    t.with_timezone(&Stockholm)
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

pub(crate) fn date_sv(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// A lead time for people: `3 dygn 4 tim`, `5 tim 12 min`, `45 min`.
pub fn duration_sv(seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m) = (s / 86_400, (s % 86_400) / 3_600, (s % 3_600) / 60);
    match (d, h, m) {
        (0, 0, 0) => "under 1 min".into(),
        (0, 0, m) => format!("{m} min"),
        (0, h, 0) => format!("{h} tim"),
        (0, h, m) => format!("{h} tim {m} min"),
        (d, 0, _) => format!("{d} dygn"),
        (d, h, _) => format!("{d} dygn {h} tim"),
    }
}

/// Who did something, for people: the account's address, or what the system part is.
pub(crate) fn who_sv(actor: &str) -> String {
    crate::domain::Actor::parse(actor).label_sv()
}

/// Change against the year before: `+3`, `−2` or `±0`.
pub(crate) fn change_sv(now: u64, before: u64) -> String {
    match now.cmp(&before) {
        std::cmp::Ordering::Greater => format!("+{}", now - before),
        std::cmp::Ordering::Less => format!("−{}", before - now),
        std::cmp::Ordering::Equal => "±0".into(),
    }
}

pub(crate) fn severity_sv(s: Option<Severity>) -> &'static str {
    labels::severity_or_unclassified(s)
}
