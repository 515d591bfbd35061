//! The statutory clocks across the daylight-saving change of 29 March 2026 (Stockholm):
//! awareness moves the GDPR clock, phases keep the initial filing's status, and the NIS2
//! ongoing path.

use chrono::{DateTime, Duration, TimeZone, Utc};
use chrono_tz::Europe::Stockholm;
use uuid::Uuid;

use super::deviation::*;
use super::types::*;

/// Stockholm local time.
fn local(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Stockholm
        .with_ymd_and_hms(y, m, d, h, min, 0)
        .single()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

/// Runs commands in order, each event stored at `at`; panics on a refusal (a test).
struct Run {
    d: Option<Deviation>,
    seq: u64,
}

impl Run {
    fn reported(discovered_at: DateTime<Utc>) -> Self {
        let mut r = Run { d: None, seq: 0 };
        r.ok(
            discovered_at,
            Command::Report(Reported {
                reference: Reference::new(2026, 1),
                title: "Felskickad e-post".into(),
                description: "Ett mejl med personnummer till fel mottagare.".into(),
                occurred_at: None,
                discovered_at,
                sector: None,
                asset: None,
                personal_data: true,
                reporter: None,
                channel: Channel::Web,
                status_token_hash: "00".repeat(32),
                reported_at: discovered_at,
            }),
        );
        r
    }

    fn try_cmd(&mut self, at: DateTime<Utc>, cmd: Command) -> Result<(), DomainError> {
        for ev in decide(self.d.as_ref(), cmd)? {
            self.seq += 1;
            let meta = EventMeta {
                seq: self.seq,
                at,
                actor: "user:dso@kommunen.example".into(),
            };
            self.d = evolve(self.d.take(), Uuid::from_u128(1), &ev, &meta);
        }
        Ok(())
    }

    fn ok(&mut self, at: DateTime<Utc>, cmd: Command) {
        self.try_cmd(at, cmd).expect("accepted");
    }

    fn deadline(&self, kind: FilingKind) -> Option<Deadline> {
        self.d
            .as_ref()
            .and_then(|d| d.deadlines.iter().find(|x| x.kind == kind).cloned())
    }

    fn kinds(&self) -> Vec<FilingKind> {
        self.d
            .as_ref()
            .map(|d| d.deadlines.iter().map(|x| x.kind).collect())
            .unwrap_or_default()
    }
}

fn classification(pdb: PersonalDataBreach, nis2: bool) -> Classification {
    Classification {
        severity: Severity::Major,
        aspects: Aspects::default(),
        category: "felskickad e-post".into(),
        personal_data_breach: pdb,
        nis2_significant: nis2,
        rationale: String::new(),
        role: "dso".into(),
    }
}

fn as_controller(pdb: PersonalDataBreach, nis2: bool, now: DateTime<Utc>) -> Command {
    Command::ClassifyAsController {
        classification: classification(pdb, nis2),
        now,
    }
}

fn filing(kind: FilingKind, at: DateTime<Utc>) -> Command {
    Command::RecordFiling(FilingRecorded {
        kind,
        authority: "IMY".into(),
        filed_at: at,
        their_reference: Some("IMY-2026-1".into()),
        content_sha256: Some("0f".repeat(32)),
    })
}

#[test]
fn awareness_later_than_discovery_moves_the_gdpr_deadline() {
    // Discovered on Friday before the DST change; the DPO marks it on Saturday evening.
    let discovered = local(2026, 3, 27, 9, 0);
    let aware = local(2026, 3, 28, 21, 0);
    let mut r = Run::reported(discovered);
    r.ok(
        aware,
        as_controller(PersonalDataBreach::Investigating, false, aware),
    );
    let gdpr = r.deadline(FilingKind::Gdpr).expect("a GDPR clock");
    // 72 real hours: across the night the clocks went forward, so 22:00 summer time.
    assert_eq!(gdpr.due, aware + Duration::hours(72));
    assert_eq!(gdpr.due, local(2026, 3, 31, 22, 0));
    let d = r.d.as_ref().unwrap();
    assert!(matches!(d.clock_start(Regime::Gdpr), ClockStart::Aware(a) if a.reason.is_none()));
    // Reclassifying does not move it again.
    let later = local(2026, 3, 29, 12, 0);
    r.ok(later, as_controller(PersonalDataBreach::Yes, false, later));
    assert_eq!(r.deadline(FilingKind::Gdpr).unwrap().due, gdpr.due);
    // Changed, with a reason: the clock follows.
    let edited = local(2026, 3, 29, 8, 0);
    r.ok(
        later,
        Command::RecordAwareness(AwarenessRecorded {
            regime: Regime::Gdpr,
            aware_at: edited,
            reason: Some("Systemägaren bekräftade på morgonen".into()),
        }),
    );
    assert_eq!(
        r.deadline(FilingKind::Gdpr).unwrap().due,
        local(2026, 4, 1, 8, 0)
    );
    assert_eq!(r.d.as_ref().unwrap().awareness.len(), 2);
}

#[test]
fn without_an_awareness_event_the_clock_runs_from_discovery() {
    let discovered = local(2026, 3, 27, 9, 0);
    let mut r = Run::reported(discovered);
    // A classification as events from before awareness was recorded carry it.
    r.ok(
        local(2026, 3, 28, 21, 0),
        Command::Classify(classification(PersonalDataBreach::Yes, true)),
    );
    assert_eq!(
        r.deadline(FilingKind::Gdpr).unwrap().due,
        discovered + Duration::hours(72)
    );
    assert_eq!(
        r.deadline(FilingKind::Nis2EarlyWarning).unwrap().due,
        discovered + Duration::hours(24)
    );
    let d = r.d.as_ref().unwrap();
    assert_eq!(
        d.clock_start(Regime::Gdpr),
        ClockStart::Discovery(discovered)
    );
    // A later marking by the DPO does not start a new clock: it was marked before.
    let now = local(2026, 3, 30, 9, 0);
    r.ok(
        now,
        as_controller(PersonalDataBreach::Investigating, true, now),
    );
    assert!(r.d.as_ref().unwrap().awareness.is_empty());
}

#[test]
fn a_supplement_after_72_hours_keeps_the_initial_filings_status() {
    let aware = local(2026, 3, 28, 21, 0);
    let mut r = Run::reported(local(2026, 3, 27, 9, 0));
    r.ok(aware, as_controller(PersonalDataBreach::Yes, false, aware));
    let on_time = aware + Duration::hours(70);
    r.ok(on_time, filing(FilingKind::Gdpr, on_time));
    for h in [80, 120] {
        let t = aware + Duration::hours(h);
        r.ok(t, filing(FilingKind::GdprSupplement, t));
    }
    let gdpr = r.deadline(FilingKind::Gdpr).unwrap();
    assert_eq!(gdpr.late, Some(false));
    assert_eq!(gdpr.settled_at, Some(on_time));
    let d = r.d.as_ref().unwrap();
    assert_eq!(d.filings.len(), 3);
    assert_eq!(
        d.filings[1].content_sha256.as_deref(),
        Some(&*"0f".repeat(32))
    );
    // Supplements have no clock of their own; a second initial filing is refused.
    assert_eq!(r.kinds(), [FilingKind::Gdpr]);
    let t = aware + Duration::hours(130);
    assert_eq!(
        r.try_cmd(t, filing(FilingKind::Gdpr, t)),
        Err(DomainError::FilingAlreadyRecorded(FilingKind::Gdpr))
    );
    let t = aware + Duration::hours(200);
    r.ok(t, filing(FilingKind::GdprFinal, t));
    assert_eq!(r.deadline(FilingKind::Gdpr).unwrap().late, Some(false));
}

#[test]
fn nis2_clocks_run_from_awareness_of_significance() {
    let discovered = local(2026, 3, 20, 9, 0);
    let significant = local(2026, 3, 28, 12, 0);
    let mut r = Run::reported(discovered);
    r.ok(
        significant,
        as_controller(PersonalDataBreach::No, true, significant),
    );
    assert_eq!(
        r.deadline(FilingKind::Nis2EarlyWarning).unwrap().due,
        local(2026, 3, 29, 13, 0)
    );
    assert_eq!(
        r.deadline(FilingKind::Nis2Notification).unwrap().due,
        local(2026, 3, 31, 13, 0)
    );
    assert!(r.deadline(FilingKind::Gdpr).is_none());
}

#[test]
fn the_nis2_ongoing_path_gives_a_progress_report_then_the_final_report() {
    let aware = local(2026, 3, 25, 10, 0);
    let mut r = Run::reported(aware);
    r.ok(aware, as_controller(PersonalDataBreach::No, true, aware));
    let early = local(2026, 3, 25, 18, 0);
    r.ok(early, filing(FilingKind::Nis2EarlyWarning, early));
    // Notified in winter time; the month ends in summer time at the same local hour.
    let notified = local(2026, 3, 27, 11, 0);
    r.ok(notified, filing(FilingKind::Nis2Notification, notified));
    let final_due = local(2026, 4, 27, 11, 0);
    assert_eq!(
        r.deadline(FilingKind::Nis2FinalReport).unwrap().due,
        final_due
    );
    assert!(r.deadline(FilingKind::Nis2Progress).is_none());

    // Still ongoing at the final report's time: a progress report instead.
    r.ok(final_due, filing(FilingKind::Nis2Progress, final_due));
    let progress = r.deadline(FilingKind::Nis2Progress).unwrap();
    assert_eq!((progress.due, progress.late), (final_due, Some(false)));
    assert!(
        r.deadline(FilingKind::Nis2FinalReport).is_none(),
        "due one month after handling ends, which it has not"
    );

    // Handling ends; the final report is due one month after.
    let ended = local(2026, 5, 10, 14, 0);
    r.ok(
        ended,
        Command::EndIncidentHandling(IncidentHandlingEnded { ended_at: ended }),
    );
    assert_eq!(
        r.kinds(),
        [
            FilingKind::Nis2EarlyWarning,
            FilingKind::Nis2Notification,
            FilingKind::Nis2Progress,
            FilingKind::Nis2FinalReport
        ]
    );
    let fin = r.deadline(FilingKind::Nis2FinalReport).unwrap();
    assert_eq!(fin.due, local(2026, 6, 10, 14, 0));
    assert_eq!(fin.settled_at, None);
    let t = local(2026, 6, 11, 9, 0);
    r.ok(t, filing(FilingKind::Nis2FinalReport, t));
    assert_eq!(
        r.deadline(FilingKind::Nis2FinalReport).unwrap().late,
        Some(true)
    );
}

#[test]
fn handling_ended_in_time_keeps_the_one_month_final_report() {
    let aware = local(2026, 3, 25, 10, 0);
    let mut r = Run::reported(aware);
    r.ok(aware, as_controller(PersonalDataBreach::No, true, aware));
    let ended = local(2026, 4, 2, 10, 0);
    r.ok(
        ended,
        Command::EndIncidentHandling(IncidentHandlingEnded { ended_at: ended }),
    );
    // Not notified yet: the final report follows the notification's due time.
    assert_eq!(
        r.deadline(FilingKind::Nis2FinalReport).unwrap().due,
        local(2026, 4, 28, 10, 0) - Duration::hours(0)
    );
    assert!(r.deadline(FilingKind::Nis2Progress).is_none());
}

#[test]
fn awareness_needs_a_marked_deviation() {
    let mut r = Run::reported(local(2026, 3, 25, 10, 0));
    let t = local(2026, 3, 26, 10, 0);
    assert_eq!(
        r.try_cmd(
            t,
            Command::RecordAwareness(AwarenessRecorded {
                regime: Regime::Nis2,
                aware_at: t,
                reason: Some("x".into()),
            })
        ),
        Err(DomainError::NotMarked(Regime::Nis2))
    );
}
