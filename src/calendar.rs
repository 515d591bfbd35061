//! The personal calendar feed: an iCalendar (RFC 5545) document of the statutory deadlines
//! not yet settled and the open measures' due dates, of the deviations one staff member
//! may see (`auth::authorize`, asked anew at every fetch).
//!
//! It says no more than the register list does: each entry names the deviation by its
//! reference and says which deadline or that a measure is due, never a title, a
//! description or a measure's text (those are personal data or free text, sealed in the
//! log). Every entry has a stable UID (the deviation's id and the deadline's kind, or the
//! measure's id), so a calendar shows each once and moves it when the date changes.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use icalendar::{Calendar, Component, EventLike, Property};

use crate::auth::{authorize, Action, Principal};
use crate::domain::{Deviation, FilingKind, Reference};

/// When an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// A statutory deadline: a moment, in UTC.
    At(DateTime<Utc>),
    /// A measure's due date: the whole day.
    Day(NaiveDate),
}

/// One entry of a feed.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub uid: String,
    pub summary: String,
    pub when: When,
    pub reference: Reference,
    /// The deviation's stream version: grows with every change, so calendars take a
    /// moved date as an update (`SEQUENCE`).
    pub sequence: u32,
    pub updated_at: DateTime<Utc>,
}

/// The entries `who` may see, ordered by date.
pub fn entries<'a>(
    who: &Principal,
    deviations: impl IntoIterator<Item = &'a Deviation>,
) -> Vec<Entry> {
    let mut out = Vec::new();
    for d in deviations {
        // Nothing more can be recorded on a gallrad deviation, so nothing is due on it.
        if d.shredded.is_some() || !authorize(who, Action::ViewDeviation, Some(d)) {
            continue;
        }
        for deadline in d.deadlines.iter().filter(|x| x.settled_at.is_none()) {
            out.push(Entry {
                uid: deadline_uid(d, deadline.kind),
                summary: format!("{}: {}", d.reference, deadline.kind.label_sv()),
                when: When::At(deadline.due),
                reference: d.reference,
                sequence: d.version,
                updated_at: d.updated_at,
            });
        }
        for m in d.measures.iter().filter(|m| m.completed_at.is_none()) {
            let whose = if m.owner.eq_ignore_ascii_case(&who.email) {
                "din åtgärd ska vara slutförd"
            } else {
                "åtgärd ska vara slutförd"
            };
            out.push(Entry {
                uid: format!("{}-measure@avvik", m.id),
                summary: format!("{}: {whose}", d.reference),
                when: When::Day(m.due),
                reference: d.reference,
                sequence: d.version,
                updated_at: d.updated_at,
            });
        }
    }
    out.sort_by(|a, b| {
        sort_key(a.when)
            .cmp(&sort_key(b.when))
            .then_with(|| a.uid.cmp(&b.uid))
    });
    out
}

fn sort_key(w: When) -> DateTime<Utc> {
    match w {
        When::At(t) => t,
        When::Day(d) => d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc(),
    }
}

fn deadline_uid(d: &Deviation, kind: FilingKind) -> String {
    format!("{}-{}@avvik", d.id, kind.as_str())
}

/// The feed as text (`text/calendar`). `base_url` makes each entry's link to the staff
/// page of its deviation.
pub fn render(entries: &[Entry], base_url: &str) -> String {
    let mut cal = Calendar::empty();
    for (k, v) in [
        ("VERSION", "2.0"),
        ("PRODID", "-//avvik//Tidsfrister//SV"),
        ("CALSCALE", "GREGORIAN"),
        ("METHOD", "PUBLISH"),
    ] {
        cal.append_property(Property::new(k, v));
    }
    cal.name("Avvikelser: tidsfrister och åtgärder");
    cal.description(
        "Lagstadgade tidsfrister och åtgärder för de avvikelser du har tillgång till i avvik.",
    );
    cal.ttl(&Duration::hours(1));
    let base = base_url.trim_end_matches('/');
    for e in entries {
        let link = format!("{base}/staff/deviations/{}", e.reference);
        let mut ev = icalendar::Event::new();
        ev.uid(&e.uid)
            .summary(&e.summary)
            .description(&format!("Öppna avvikelsen i avvik: {link}"))
            .url(&link)
            .timestamp(e.updated_at)
            .last_modified(e.updated_at)
            .sequence(e.sequence);
        match e.when {
            // A moment: no DTEND (RFC 5545 wants DTEND later than DTSTART; without one
            // the event ends when it starts).
            When::At(t) => {
                ev.starts(t);
            }
            When::Day(d) => {
                ev.starts(d).ends(d.succ_opt().unwrap_or(d));
            }
        }
        cal.push(ev.done());
    }
    cal.done().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Role, RoleGrant};
    use crate::domain::deviation::{Deadline, Measure};
    use uuid::Uuid;

    fn principal(role: Role, sectors: &[&str]) -> Principal {
        Principal {
            account_id: Uuid::from_u128(9),
            email: "kontakt@kommunen.example".into(),
            name: "K".into(),
            roles: vec![RoleGrant {
                role,
                sectors: sectors.iter().map(|s| s.to_string()).collect(),
            }],
        }
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn deviation(n: u64, sector: &str) -> Deviation {
        use crate::domain::deviation::DeviationEvent;
        use crate::domain::{evolve, Channel, EventMeta, PersonalDataBreach, Reported};
        let at = t("2026-03-02T08:00:00Z");
        let reported = DeviationEvent::Reported(Reported {
            reference: Reference::new(2026, n),
            title: "Hemlig titel".into(),
            description: "Hemlig beskrivning".into(),
            occurred_at: None,
            discovered_at: at,
            sector: Some(sector.into()),
            asset: None,
            personal_data: true,
            reporter: None,
            channel: Channel::Web,
            status_token_hash: "00".repeat(32),
            reported_at: at,
        });
        let meta = EventMeta {
            seq: n,
            at,
            actor: "reporter".into(),
        };
        let mut d = evolve(None, Uuid::from_u128(n as u128), &reported, &meta).unwrap();
        d.personal_data_breach = Some(PersonalDataBreach::Yes);
        d.deadlines = vec![
            Deadline {
                kind: FilingKind::Gdpr,
                due: t("2026-03-05T08:00:00Z"),
                settled_at: None,
                late: None,
            },
            Deadline {
                kind: FilingKind::Nis2EarlyWarning,
                due: t("2026-03-03T08:00:00Z"),
                settled_at: Some(t("2026-03-02T10:00:00Z")),
                late: Some(false),
            },
        ];
        d.measures = vec![
            Measure {
                id: Uuid::from_u128(100 + n as u128),
                description: "Hemlig åtgärd".into(),
                owner: "kontakt@kommunen.example".into(),
                due: NaiveDate::from_ymd_opt(2026, 3, 20).unwrap(),
                added_at: t("2026-03-02T09:00:00Z"),
                completed_at: None,
                completion_note: None,
            },
            Measure {
                id: Uuid::from_u128(200 + n as u128),
                description: "Klar".into(),
                owner: "annan@kommunen.example".into(),
                due: NaiveDate::from_ymd_opt(2026, 3, 10).unwrap(),
                added_at: t("2026-03-02T09:00:00Z"),
                completed_at: Some(t("2026-03-03T09:00:00Z")),
                completion_note: None,
            },
        ];
        d
    }

    #[test]
    fn only_open_items_of_visible_deviations_with_no_free_text() {
        let mine = deviation(1, "Socialtjänsten");
        let other = deviation(2, "Barn och utbildning");
        let who = principal(Role::Kontakt, &["Socialtjänsten"]);
        let e = entries(&who, [&mine, &other]);
        let summaries: Vec<&str> = e.iter().map(|e| e.summary.as_str()).collect();
        assert_eq!(
            summaries,
            [
                "AVV-2026-0001: Anmälan av personuppgiftsincident till IMY (72 h)",
                "AVV-2026-0001: din åtgärd ska vara slutförd",
            ]
        );
        let ics = render(&e, "https://avvik.kommunen.se/");
        assert!(ics.contains("DTSTART:20260305T080000Z"), "{ics}");
        assert!(ics.contains("DTSTART;VALUE=DATE:20260320"), "{ics}");
        assert!(ics.contains("DTEND;VALUE=DATE:20260321"), "{ics}");
        assert!(!ics.contains("DTEND:"), "{ics}");
        assert!(
            ics.contains(&format!("UID:{}-gdpr@avvik", Uuid::from_u128(1))),
            "{ics}"
        );
        assert!(
            !ics.contains("Hemlig") && !ics.contains("AVV-2026-0002"),
            "{ics}"
        );
        // Every line ends in CRLF and is folded at 75 octets.
        assert!(ics.split("\r\n").all(|l| l.len() <= 75), "{ics}");
        // Nobody without the right sees anything; the CISO sees both.
        assert!(entries(&principal(Role::Admin, &[]), [&mine, &other]).is_empty());
        assert_eq!(
            entries(&principal(Role::Ciso, &[]), [&mine, &other]).len(),
            4
        );
    }
}
