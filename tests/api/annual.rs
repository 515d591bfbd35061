//! The scheduler under an injected clock, and the annual report: every figure checked
//! against a year of deviations built by hand, frozen re-rendering, reissue, CLI, e-mail.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use avvik::clock::{Clock, ManualClock};
use avvik::config::Config;
use avvik::domain::deviation::{FilingDeclined, FilingRecorded, MeasureAdded};
use avvik::domain::filing_record::{AffectedNoticeDecided, AffectedNotified, NoticeDecision};
use avvik::domain::{
    Aspects, Channel, Classification, Command, FilingKind, Level, PersonalDataBreach, Reference,
    Severity,
};
use avvik::report::{self, AnnualReport, IssueError};
use avvik::scheduler::{
    Job, JobOutcome, PolicyReviewReminderDue, Scheduler, POLICY_REVIEW_REMINDER_DUE,
};
use avvik::service::{NewReport, Services};
use avvik::startup::Application;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{avvik, test_config};

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test time")
        .with_timezone(&Utc)
}

/// The application on a given data directory, so it can be stopped and started again.
struct Running {
    services: Services,
    scheduler: Arc<Scheduler>,
    stop: tokio::sync::oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<()>,
}

async fn start(dir: &Path, clock: Arc<ManualClock>, tweak: impl FnOnce(&mut Config)) -> Running {
    let mut config = test_config(dir);
    tweak(&mut config);
    let app = Application::build_with_clock(config, clock as Arc<dyn Clock>)
        .await
        .expect("application builds");
    let services = app.state().services.clone();
    let scheduler = app.scheduler();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        let _ = app
            .run_until(async move {
                let _ = rx.await;
            })
            .await;
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !services.register.is_ready() {
        assert!(Instant::now() < deadline, "register not ready in time");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Running {
        services,
        scheduler,
        stop,
        handle,
    }
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.handle.await;
        drop(self.scheduler);
        drop(self.services);
    }
}

/// Where a report came from: sector, channel, and whether personal data may be involved.
type Origin<'a> = (Option<&'a str>, Channel, bool);

async fn report_at(
    s: &Services,
    clock: &ManualClock,
    at: &str,
    discovered: &str,
    (sector, channel, personal_data): Origin<'_>,
    title: &str,
) -> Reference {
    clock.set(utc(at));
    s.report(
        NewReport {
            title: title.into(),
            description: format!("Beskrivning av: {title}"),
            occurred_at: None,
            discovered_at: Some(utc(discovered)),
            sector: sector.map(String::from),
            asset: None,
            personal_data,
            reporter: None,
            channel,
        },
        "reporter:anonymous",
    )
    .await
    .expect("reported")
    .reference
}

async fn run(s: &Services, clock: &ManualClock, at: &str, r: Reference, cmd: Command) {
    clock.set(utc(at));
    s.execute(r, cmd, "user:ciso@kommunen.example")
        .await
        .unwrap_or_else(|e| panic!("{r} at {at}: {e}"));
}

fn classification(
    severity: Severity,
    category: &str,
    aspects: [(usize, u8); 2],
    pdb: PersonalDataBreach,
    nis2: bool,
) -> Command {
    let mut a = Aspects::default();
    for (which, level) in aspects {
        let l = Level::new(level);
        match which {
            0 => a.confidentiality = l,
            1 => a.integrity = l,
            2 => a.availability = l,
            3 => a.traceability = l,
            _ => {}
        }
    }
    Command::Classify(Classification {
        severity,
        aspects: a,
        category: category.into(),
        personal_data_breach: pdb,
        nis2_significant: nis2,
        rationale: "Bedömd enligt KLASSA".into(),
        role: "ciso".into(),
    })
}

const C: usize = 0;
const I: usize = 1;
const A: usize = 2;
const T: usize = 3;
const NONE: (usize, u8) = (9, 0);

#[tokio::test]
async fn the_annual_job_fires_once_at_seven_stockholm_time_and_never_again() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(utc("2026-05-04T08:00:00Z")));
    let app = start(dir.path(), clock.clone(), |_| {}).await;
    report_at(
        &app.services,
        &clock,
        "2026-05-04T08:00:00Z",
        "2026-05-04T07:00:00Z",
        (None, Channel::Web, false),
        "Nätfiske",
    )
    .await;

    // 06:59:59 in Stockholm (CET): not yet.
    clock.set(utc("2027-01-10T05:59:59Z"));
    let ran = app.scheduler.run_due_jobs(clock.now()).await.unwrap();
    assert!(ran.is_empty(), "{ran:?}");
    assert!(app.scheduler.runs(Job::AnnualReport).unwrap().is_empty());

    // 07:00:00: the report on 2026 is issued.
    clock.set(utc("2027-01-10T06:00:00Z"));
    app.scheduler.run_due_jobs(clock.now()).await.unwrap();
    let runs = app.scheduler.runs(Job::AnnualReport).unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].slot, utc("2027-01-10T06:00:00Z"));
    assert!(
        matches!(
            &runs[0].outcome,
            JobOutcome::ReportIssued { year: 2026, .. }
        ),
        "{runs:?}"
    );
    let issues = report::issues(app.services.store.as_ref(), 2026).unwrap();
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].actor, "system:scheduler");
    assert_eq!(issues[0].event.edition, 1);

    // Later the same day, and again: nothing more.
    clock.set(utc("2027-01-10T09:00:00Z"));
    assert!(app
        .scheduler
        .run_due_jobs(clock.now())
        .await
        .unwrap()
        .is_empty());
    app.stop().await;

    // After a restart: still nothing more, neither from start-up nor when asked.
    let app = start(dir.path(), clock.clone(), |_| {}).await;
    assert!(app
        .scheduler
        .run_due_jobs(clock.now())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(app.scheduler.runs(Job::AnnualReport).unwrap().len(), 1);
    assert_eq!(
        report::issues(app.services.store.as_ref(), 2026)
            .unwrap()
            .len(),
        1
    );
    // What comes next: the first policy-review reminder, 12 months before 2028-12-31.
    assert_eq!(
        app.scheduler.next_slot_after(clock.now()),
        Some(utc("2027-12-31T06:00:00Z"))
    );
    app.stop().await;
}

#[tokio::test]
async fn a_run_missed_while_down_happens_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(utc("2026-12-20T10:00:00Z")));
    let app = start(dir.path(), clock.clone(), |_| {}).await;
    report_at(
        &app.services,
        &clock,
        "2026-12-20T10:00:00Z",
        "2026-12-20T09:00:00Z",
        (None, Channel::Web, false),
        "Borttappad telefon",
    )
    .await;
    app.stop().await;

    // Down over 10 January; started again on the 12th.
    clock.set(utc("2027-01-12T09:00:00Z"));
    let app = start(dir.path(), clock.clone(), |_| {}).await;
    // Start-up catches up by itself.
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.scheduler.runs(Job::AnnualReport).unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the missed run did not happen");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(app
        .scheduler
        .run_due_jobs(clock.now())
        .await
        .unwrap()
        .is_empty());
    let runs = app.scheduler.runs(Job::AnnualReport).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].slot, utc("2027-01-10T06:00:00Z"));
    let issue = report::latest_issue(app.services.store.as_ref(), 2026)
        .unwrap()
        .expect("issued");
    assert_eq!(issue.at, utc("2027-01-12T09:00:00Z"));
    app.stop().await;
}

#[tokio::test]
async fn policy_review_reminders_come_at_their_lead_times_across_summer_time() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(utc("2026-05-01T10:00:00Z")));
    let tweak = |c: &mut Config| {
        c.policy.valid_until = NaiveDate::from_ymd_opt(2027, 6, 30).unwrap();
        c.policy.review_reminders_months = vec![12, 6, 3];
    };
    let app = start(dir.path(), clock.clone(), tweak).await;
    report_at(
        &app.services,
        &clock,
        "2026-05-01T10:00:00Z",
        "2026-05-01T09:00:00Z",
        (None, Channel::Web, false),
        "Driftstörning",
    )
    .await;
    app.stop().await;

    // Down over the 12- and 6-month dates (2026-06-30, 2026-12-30): only the latest goes.
    clock.set(utc("2027-01-02T12:00:00Z"));
    let app = start(dir.path(), clock.clone(), tweak).await;
    app.scheduler.run_due_jobs(clock.now()).await.unwrap();
    let runs = app.scheduler.runs(Job::PolicyReviewReminder).unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[0].slot, utc("2026-06-30T05:00:00Z")); // 07:00 CEST
    assert_eq!(
        runs[0].outcome,
        JobOutcome::Superseded {
            by_slot: utc("2026-12-30T06:00:00Z")
        }
    );
    assert_eq!(runs[1].slot, utc("2026-12-30T06:00:00Z")); // 07:00 CET
    assert_eq!(
        runs[1].outcome,
        JobOutcome::ReminderDue { months_before: 6 }
    );

    // Three months before, 2027-03-30: summer time began on the 28th, so 07:00 is 05:00Z.
    clock.set(utc("2027-03-30T04:59:59Z"));
    let ran = app.scheduler.run_due_jobs(clock.now()).await.unwrap();
    assert!(
        ran.iter().all(|r| r.job != Job::PolicyReviewReminder),
        "{ran:?}"
    );
    clock.set(utc("2027-03-30T05:00:00Z"));
    app.scheduler.run_due_jobs(clock.now()).await.unwrap();
    let stream = app
        .services
        .store
        .read_stream(avvik::scheduler::policy_review_stream(), 1)
        .unwrap();
    let reminders: Vec<PolicyReviewReminderDue> = stream
        .iter()
        .filter(|r| r.event_type == POLICY_REVIEW_REMINDER_DUE)
        .map(|r| r.decode().unwrap())
        .collect();
    assert_eq!(
        reminders
            .iter()
            .map(|r| r.months_before)
            .collect::<Vec<_>>(),
        vec![6, 3]
    );
    assert_eq!(reminders[1].slot, utc("2027-03-30T05:00:00Z"));
    assert_eq!(reminders[1].recipient_role, "ciso");
    let (subject, text) = avvik::scheduler::render_policy_reminder_email(&reminders[1]);
    assert!(subject.contains("2027-06-30"), "{subject}");
    assert!(text.contains("om 3 månader"), "{text}");
    app.stop().await;
}

/// Builds 2025 and 2026 by hand. Every event is appended in time order (the log's times
/// never go backwards), so the timeline is one sorted list.
async fn build_scenario(s: &Services, clock: &ManualClock) {
    use Channel::{Api, Email, Web};
    use PersonalDataBreach::{Investigating, No, Yes};
    use Severity::{Major, Minor};
    let soc = Some("Socialtjänsten");
    let bou = Some("Barn och utbildning");

    // 2025, the year before.
    let p1 = report_at(
        s,
        clock,
        "2025-03-10T09:00:00Z",
        "2025-03-10T08:00:00Z",
        (soc, Web, false),
        "Nätfiske 2025",
    )
    .await;
    run(
        s,
        clock,
        "2025-03-11T09:00:00Z",
        p1,
        classification(Minor, "nätfiske", [(C, 1), NONE], No, false),
    )
    .await;
    let p2 = report_at(
        s,
        clock,
        "2025-06-01T10:00:00Z",
        "2025-06-01T09:00:00Z",
        (Some("Samhällsbyggnad"), Email, true),
        "Utpressningsvirus 2025",
    )
    .await;
    run(
        s,
        clock,
        "2025-06-02T10:00:00Z",
        p2,
        classification(Major, "skadlig kod", [(A, 3), NONE], Yes, false),
    )
    .await;

    // 2026. D1 is reported 00:30 on 1 January Stockholm time (23:30Z the day before).
    let d1 = report_at(
        s,
        clock,
        "2025-12-31T23:30:00Z",
        "2025-12-31T21:30:00Z",
        (soc, Web, false),
        "Klickade på länk i nätfiskemejl",
    )
    .await;
    assert_eq!(d1.to_string(), "AVV-2026-0001");
    run(
        s,
        clock,
        "2026-01-02T08:30:00Z",
        d1,
        classification(Minor, "nätfiske", [(C, 1), NONE], No, false),
    )
    .await;
    run(
        s,
        clock,
        "2026-01-05T08:30:00Z",
        d1,
        Command::Close {
            resolution: "Lösenord bytt".into(),
        },
    )
    .await;

    let d2 = report_at(
        s,
        clock,
        "2026-02-10T09:00:00Z",
        "2026-02-09T09:00:00Z",
        (bou, Email, true),
        "Obehörig åtkomst till elevregistret",
    )
    .await;
    run(
        s,
        clock,
        "2026-02-10T13:00:00Z",
        d2,
        classification(Major, "obehörig åtkomst", [(C, 3), (T, 2)], Yes, false),
    )
    .await;
    run(
        s,
        clock,
        "2026-02-11T08:00:00Z",
        d2,
        Command::RecordDecision {
            text: "Behörigheter återkallade för samtliga vikarier".into(),
            role: "ciso".into(),
        },
    )
    .await;
    let m1 = Uuid::new_v4();
    let m2 = Uuid::new_v4();
    run(
        s,
        clock,
        "2026-02-11T09:00:00Z",
        d2,
        Command::AddMeasure(MeasureAdded {
            measure_id: m1,
            description: "Se över behörigheter i elevregistret".into(),
            owner: "Systemägare skolplattform".into(),
            due: NaiveDate::from_ymd_opt(2026, 3, 31).unwrap(),
        }),
    )
    .await;
    run(
        s,
        clock,
        "2026-02-11T09:05:00Z",
        d2,
        Command::AddMeasure(MeasureAdded {
            measure_id: m2,
            description: "Utbilda personalen i behörighetsrutinen".into(),
            owner: "Sektorchef".into(),
            due: NaiveDate::from_ymd_opt(2026, 12, 15).unwrap(),
        }),
    )
    .await;
    run(
        s,
        clock,
        "2026-02-11T12:00:00Z",
        d2,
        Command::RecordFiling(FilingRecorded {
            kind: FilingKind::Gdpr,
            authority: "IMY".into(),
            filed_at: utc("2026-02-11T12:00:00Z"),
            their_reference: Some("IMY-2026-123".into()),
            content_sha256: None,
        }),
    )
    .await;
    // D2's people affected are told (art. 34); D3's are not (no high risk).
    run(
        s,
        clock,
        "2026-02-11T12:30:00Z",
        d2,
        Command::DecideAffectedNotice(AffectedNoticeDecided {
            decision: NoticeDecision::Notify,
            text: "Information om incidenten".into(),
        }),
    )
    .await;
    run(
        s,
        clock,
        "2026-02-12T09:00:00Z",
        d2,
        Command::RecordAffectedNotified(AffectedNotified {
            sent_at: utc("2026-02-12T08:00:00Z"),
            channel: "letter".into(),
            recipients_approx: Some(14),
            note: String::new(),
        }),
    )
    .await;

    let d3 = report_at(
        s,
        clock,
        "2026-03-15T10:00:00Z",
        "2026-03-15T10:00:00Z",
        (soc, Api, true),
        "E-post med journaluppgifter till fel mottagare",
    )
    .await;
    run(
        s,
        clock,
        "2026-03-16T10:00:00Z",
        d3,
        classification(Minor, "felskickad e-post", [(C, 2), NONE], Yes, false),
    )
    .await;
    run(
        s,
        clock,
        "2026-03-20T10:00:00Z",
        d3,
        Command::RecordFiling(FilingRecorded {
            kind: FilingKind::Gdpr,
            authority: "IMY".into(),
            filed_at: utc("2026-03-20T10:00:00Z"),
            their_reference: None,
            content_sha256: None,
        }),
    )
    .await;
    run(
        s,
        clock,
        "2026-03-20T10:30:00Z",
        d3,
        Command::DecideAffectedNotice(AffectedNoticeDecided {
            decision: NoticeDecision::NoHighRisk,
            text: "Mottagaren är en annan vårdgivare med tystnadsplikt".into(),
        }),
    )
    .await;
    run(
        s,
        clock,
        "2026-03-20T11:00:00Z",
        d2,
        Command::CompleteMeasure {
            measure_id: m1,
            note: "Klart, 14 konton borttagna".into(),
        },
    )
    .await;
    run(
        s,
        clock,
        "2026-04-15T10:00:00Z",
        d3,
        Command::Close {
            resolution: "Mottagaren har raderat mejlet".into(),
        },
    )
    .await;

    let d4 = report_at(
        s,
        clock,
        "2026-06-20T12:00:00Z",
        "2026-06-18T12:00:00Z",
        (None, Web, false),
        "Skadlig kod på filserver",
    )
    .await;
    run(
        s,
        clock,
        "2026-06-20T13:00:00Z",
        d4,
        Command::RecordFiling(FilingRecorded {
            kind: FilingKind::Nis2EarlyWarning,
            authority: "CERT-SE".into(),
            filed_at: utc("2026-06-20T13:00:00Z"),
            their_reference: None,
            content_sha256: None,
        }),
    )
    .await;
    run(
        s,
        clock,
        "2026-06-22T12:00:00Z",
        d4,
        classification(Major, "skadlig kod", [(A, 4), (I, 2)], Investigating, true),
    )
    .await;
    run(
        s,
        clock,
        "2026-06-23T08:00:00Z",
        d4,
        Command::RecordDecision {
            text: "Filservern isoleras och återställs från säkerhetskopia".into(),
            role: "ciso".into(),
        },
    )
    .await;
    run(
        s,
        clock,
        "2026-06-23T09:00:00Z",
        d4,
        Command::DeclineFiling(FilingDeclined {
            kind: FilingKind::Nis2Notification,
            rationale: "Ingen betydande påverkan på tjänsterna".into(),
        }),
    )
    .await;
    let m3 = Uuid::new_v4();
    run(
        s,
        clock,
        "2026-06-24T09:00:00Z",
        d4,
        Command::AddMeasure(MeasureAdded {
            measure_id: m3,
            description: "Återställ filservern".into(),
            owner: "IT-drift".into(),
            due: NaiveDate::from_ymd_opt(2026, 7, 10).unwrap(),
        }),
    )
    .await;
    let d5 = report_at(
        s,
        clock,
        "2026-07-01T08:00:00Z",
        "2026-06-30T08:00:00Z",
        (Some("Kultur och fritid"), Email, true),
        "Kundlista på avvägar",
    )
    .await;
    run(
        s,
        clock,
        "2026-07-15T09:00:00Z",
        d4,
        Command::CompleteMeasure {
            measure_id: m3,
            note: "Återställd".into(),
        },
    )
    .await;
    run(
        s,
        clock,
        "2026-07-20T09:00:00Z",
        d4,
        Command::RecordDecision {
            text: "Ny rutin för säkerhetskopior".into(),
            role: "ciso".into(),
        },
    )
    .await;
    run(
        s,
        clock,
        "2026-08-01T12:00:00Z",
        d4,
        Command::Close {
            resolution: "Återställd, rutin införd".into(),
        },
    )
    .await;

    let d6 = report_at(
        s,
        clock,
        "2026-10-05T07:00:00Z",
        "2026-10-05T06:00:00Z",
        (soc, Web, false),
        "Misstänkt nätfiske-sms",
    )
    .await;
    run(
        s,
        clock,
        "2026-10-05T09:00:00Z",
        d6,
        classification(Minor, "nätfiske", [(C, 1), NONE], No, false),
    )
    .await;
    let d7 = report_at(
        s,
        clock,
        "2026-11-20T15:00:00Z",
        "2026-11-20T14:30:00Z",
        (bou, Web, false),
        "Borttappad surfplatta",
    )
    .await;
    run(
        s,
        clock,
        "2026-12-20T07:00:00Z",
        d6,
        Command::Close {
            resolution: "Ingen skada".into(),
        },
    )
    .await;
    // 00:30 on 1 January 2027 in Stockholm: belongs to 2027.
    let d8 = report_at(
        s,
        clock,
        "2026-12-31T23:30:00Z",
        "2026-12-31T23:00:00Z",
        (soc, Web, false),
        "Nyårsnatt",
    )
    .await;
    assert_eq!(d8.to_string(), "AVV-2027-0001");
    run(
        s,
        clock,
        "2027-01-03T07:00:00Z",
        d6,
        Command::Reopen {
            reason: "Fler sms har kommit".into(),
        },
    )
    .await;
    run(
        s,
        clock,
        "2027-01-05T15:00:00Z",
        d7,
        classification(Minor, "förlorad utrustning", [(C, 2), (A, 1)], No, false),
    )
    .await;
    run(
        s,
        clock,
        "2027-01-08T15:00:00Z",
        d7,
        Command::Close {
            resolution: "Plattan spärrad".into(),
        },
    )
    .await;
    let _ = d5;
}

fn refs(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

fn rows(v: &Value) -> Vec<(String, u64, u64)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap().to_string(),
                r["count"].as_u64().unwrap(),
                r["previous_year"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn s(x: &str) -> String {
    x.to_string()
}

/// Every figure of the 2026 report, computed by hand from the scenario above.
fn check_every_figure(report: &AnnualReport) {
    let j: Value = serde_json::from_slice(&report::to_json(report)).unwrap();
    assert_eq!(j["year"], 2026);
    assert_eq!(j["period"]["from"], "2025-12-31T23:00:00Z");
    assert_eq!(j["period"]["to"], "2026-12-31T23:00:00Z");
    assert_eq!(
        j["totals"],
        serde_json::json!({"deviations": 7, "previous_year": 2, "major": 2, "minor": 4,
            "unclassified": 1, "closed": 4, "open_at_year_end": 3, "linked_reports": 0})
    );
    assert_eq!(
        rows(&j["by_severity"]),
        vec![
            (s("major"), 2, 1),
            (s("minor"), 4, 1),
            (s("unclassified"), 1, 0)
        ]
    );
    let aspects: Vec<(String, u64, u64, Vec<u64>)> = j["by_aspect"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["key"].as_str().unwrap().to_string(),
                a["count"].as_u64().unwrap(),
                a["previous_year"].as_u64().unwrap(),
                a["levels"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n.as_u64().unwrap())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        aspects,
        vec![
            (s("confidentiality"), 5, 1, vec![2, 2, 1, 0]),
            (s("integrity"), 1, 0, vec![0, 1, 0, 0]),
            (s("availability"), 2, 1, vec![1, 0, 0, 1]),
            (s("traceability"), 1, 0, vec![0, 1, 0, 0]),
        ]
    );
    assert_eq!(
        rows(&j["by_category"]),
        vec![
            (s("nätfiske"), 2, 1),
            (s("skadlig kod"), 1, 1),
            (s(""), 1, 0),
            (s("felskickad e-post"), 1, 0),
            (s("förlorad utrustning"), 1, 0),
            (s("obehörig åtkomst"), 1, 0),
        ]
    );
    assert_eq!(j["by_category"][2]["label_sv"], "Ej klassad");
    assert_eq!(
        rows(&j["by_sector"]),
        vec![
            (s("Socialtjänsten"), 3, 1),
            (s("Barn och utbildning"), 2, 0),
            (s(""), 1, 0),
            (s("Kultur och fritid"), 1, 0),
            (s("Samhällsbyggnad"), 0, 1),
        ]
    );
    assert_eq!(
        rows(&j["by_channel"]),
        vec![
            (s("web"), 4, 1),
            (s("email"), 2, 1),
            (s("api"), 1, 0),
            (s("supplier"), 0, 0)
        ]
    );
    let months: Vec<[u64; 4]> = j["by_month"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            [
                m["major"].as_u64().unwrap(),
                m["minor"].as_u64().unwrap(),
                m["unclassified"].as_u64().unwrap(),
                m["total"].as_u64().unwrap(),
            ]
        })
        .collect();
    let z = [0, 0, 0, 0];
    assert_eq!(
        months,
        vec![
            [0, 1, 0, 1], // jan: D1
            [1, 0, 0, 1], // feb: D2
            [0, 1, 0, 1], // mar: D3
            z,
            z,
            [1, 0, 0, 1], // jun: D4
            [0, 0, 1, 1], // jul: D5
            z,
            z,
            [0, 1, 0, 1], // okt: D6
            [0, 1, 0, 1], // nov: D7
            z,
        ]
    );

    // Major deviations in full.
    let major = j["major"].as_array().unwrap();
    assert_eq!(major.len(), 2);
    let d2 = &major[0];
    assert_eq!(d2["reference"], "AVV-2026-0002");
    assert_eq!(d2["title"], "Obehörig åtkomst till elevregistret");
    assert_eq!(d2["status"], "investigating");
    assert_eq!(d2["classification"]["category"], "obehörig åtkomst");
    assert_eq!(
        d2["classification"]["aspects"],
        serde_json::json!({"confidentiality": 3, "traceability": 2})
    );
    assert_eq!(d2["classification"]["personal_data_breach"], "yes");
    assert_eq!(d2["decisions"].as_array().unwrap().len(), 1);
    assert_eq!(
        d2["decisions"][0]["text"],
        "Behörigheter återkallade för samtliga vikarier"
    );
    assert_eq!(d2["decisions"][0]["role"], "ciso");
    let statuses = |d: &Value| -> Vec<String> {
        d["measures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["status"].as_str().unwrap().to_string())
            .collect()
    };
    // M2 was due 2026-12-15 and not done by 2027-01-10.
    assert_eq!(statuses(d2), vec![s("completed"), s("overdue")]);
    let d4 = &major[1];
    assert_eq!(d4["reference"], "AVV-2026-0004");
    assert_eq!(d4["status"], "closed");
    assert_eq!(d4["classification"]["nis2_significant"], true);
    assert_eq!(
        d4["classification"]["aspects"],
        serde_json::json!({"integrity": 2, "availability": 4})
    );
    assert_eq!(d4["decisions"].as_array().unwrap().len(), 2);
    assert_eq!(statuses(d4), vec![s("completed")]);

    // Minor deviations summarised by category.
    let minor: Vec<(String, u64, Vec<String>)> = j["minor_by_category"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["category"].as_str().unwrap().to_string(),
                g["count"].as_u64().unwrap(),
                refs(&g["references"]),
            )
        })
        .collect();
    assert_eq!(
        minor,
        vec![
            (
                s("nätfiske"),
                2,
                vec![s("AVV-2026-0001"), s("AVV-2026-0006")]
            ),
            (s("felskickad e-post"), 1, vec![s("AVV-2026-0003")]),
            (s("förlorad utrustning"), 1, vec![s("AVV-2026-0007")]),
        ]
    );

    assert_eq!(
        j["personal_data"],
        serde_json::json!({"breaches": 2, "breaches_previous_year": 1, "investigating": 1,
            "suspected_by_reporter": 3})
    );
    // D2 and D3 notified (D3 late), D2's people told, D3's not; D4 the NIS2 incident,
    // its early warning filed and its notification declined.
    assert_eq!(
        j["authorities"],
        serde_json::json!({"breaches_notified": 2, "breaches_notified_late": 1,
        "affected_informed": 1, "affected_not_informed": 1, "nis2_incidents": 1,
        "nis2_by_phase": [
            {"kind": "nis2_early_warning", "label_sv": "NIS2 tidig varning (24 h)", "filed": 1},
            {"kind": "nis2_notification", "label_sv": "NIS2 incidentanmälan (72 h)", "filed": 0},
            {"kind": "nis2_intermediate", "label_sv": "NIS2 delrapport (på begäran)", "filed": 0},
            {"kind": "nis2_progress", "label_sv": "NIS2 lägesrapport (incidenten pågår)", "filed": 0},
            {"kind": "nis2_final_report", "label_sv": "NIS2 slutrapport (en månad)", "filed": 0}
        ]})
    );
    let filings: Vec<(String, [u64; 6], Vec<String>)> = j["filings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let n = |k: &str| f[k].as_u64().unwrap();
            (
                f["kind"].as_str().unwrap().to_string(),
                [
                    n("required"),
                    n("filed_on_time"),
                    n("filed_late"),
                    n("not_filed"),
                    n("overdue"),
                    n("pending"),
                ],
                refs(&f["late_references"]),
            )
        })
        .collect();
    assert_eq!(
        filings,
        vec![
            // D2 on time (due 02-12 09:00Z), D3 late (due 03-18), D4 never filed.
            (
                s("gdpr"),
                [3, 1, 1, 0, 1, 0],
                vec![s("AVV-2026-0003"), s("AVV-2026-0004")]
            ),
            // Due 2026-06-19 12:00Z, filed 06-20 13:00Z.
            (
                s("nis2_early_warning"),
                [1, 0, 1, 0, 0, 0],
                vec![s("AVV-2026-0004")]
            ),
            (s("nis2_notification"), [1, 0, 0, 1, 0, 0], vec![]),
            // Due a month after the notification's due time; never filed.
            (
                s("nis2_final_report"),
                [1, 0, 0, 0, 1, 0],
                vec![s("AVV-2026-0004")]
            ),
        ]
    );

    let lead: Vec<(String, u64, i64, i64)> = j["lead_times"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["key"].as_str().unwrap().to_string(),
                l["count"].as_u64().unwrap(),
                l["median_seconds"].as_i64().unwrap(),
                l["p90_seconds"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        lead,
        vec![
            // 0, 30 min, 1 h, 2 h, 24 h, 24 h, 48 h: median 2 h, p90 (rank 7) 48 h.
            (s("discovery_to_report"), 7, 7_200, 172_800),
            // 2 h, 4 h, 24 h, 33 h, 48 h, 46 d: median (24 h + 33 h) / 2, p90 (rank 6) 46 d.
            (s("report_to_classification"), 6, 102_600, 3_974_400),
            // 4 d 9 h, 31 d, 42 d, 49 d (D6 was reopened): median (31 d + 42 d) / 2.
            (s("report_to_closing"), 4, 3_153_600, 4_233_600),
        ]
    );

    let open: Vec<(String, String, String)> = j["open_at_year_end"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["reference"].as_str().unwrap().to_string(),
                o["status_at_year_end"].as_str().unwrap().to_string(),
                o["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        open,
        vec![
            (s("AVV-2026-0002"), s("investigating"), s("investigating")),
            (s("AVV-2026-0005"), s("received"), s("received")),
            (s("AVV-2026-0007"), s("received"), s("closed")),
        ]
    );
}

#[tokio::test]
async fn the_annual_report_has_every_figure_right_and_stays_frozen() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(utc("2025-01-02T08:00:00Z")));
    let app = start(dir.path(), clock.clone(), |_| {}).await;
    let store = app.services.store.clone();
    let keys = app.services.keys.clone();
    build_scenario(&app.services, &clock).await;

    // The scheduler was never asked during the scenario, so at 07:00 on 10 January 2027
    // it catches up 2025-01-10 and 2026-01-10 too, oldest first, then issues 2026.
    clock.set(utc("2027-01-10T06:00:00Z"));
    let ran = app.scheduler.run_due_jobs(clock.now()).await.unwrap();
    let years: Vec<i32> = ran
        .iter()
        .map(|r| match &r.outcome {
            JobOutcome::ReportIssued { year, .. } => *year,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(years, vec![2024, 2025, 2026]);
    let issue = report::latest_issue(store.as_ref(), 2026)
        .unwrap()
        .expect("issued");
    // Pinned to the head just before its own append ([ScheduledJobRan, AnnualReportIssued]);
    // only delivery's records of the earlier editions' e-mails (to the empty lists of the
    // default configuration) may have come in between.
    let between = store
        .read_batch(
            issue.event.as_of_seq + 1,
            (issue.seq - issue.event.as_of_seq - 2) as usize,
        )
        .unwrap();
    assert!(
        between
            .iter()
            .all(|r| r.event_type == "NotificationUndeliverable" && r.seq < issue.seq - 1),
        "{:?}",
        between.iter().map(|r| &r.event_type).collect::<Vec<_>>()
    );
    let head_before = avvik_events::Head {
        seq: issue.seq - 2 - between.len() as u64,
        hash: report::record_hash(store.as_ref(), issue.seq - 2 - between.len() as u64).unwrap(),
        at: None,
    };
    assert_eq!(issue.event.as_of_seq, head_before.seq);
    assert_eq!(issue.event.head_hash, head_before.hash);
    let prev = store.read_batch(head_before.seq + 1, 1).unwrap().remove(0);
    assert_eq!(
        prev.prev, head_before.hash,
        "the hash is the chain's own link"
    );

    let doc = report::load_document(store.as_ref(), &keys, 2026).unwrap();
    assert_eq!(doc.hash_matches, Some(true));
    let issued = doc.report.clone();
    check_every_figure(&issued);
    assert_eq!(issued.source.as_of_seq, head_before.seq);
    assert_eq!(issued.source.head_hash, head_before.hash);
    let json = report::to_json(&issued);
    assert_eq!(avvik_events::hash_hex(&json), issue.event.content_hash);
    let html = report::render_html(&issued);
    let csv = report::to_csv(&issued);

    // The printable page: Swedish, no script, print stylesheet, the charts inline.
    assert!(
        html.starts_with("<!DOCTYPE html>\n<html lang=\"sv\">"),
        "{}",
        &html[..80]
    );
    assert!(!html.to_ascii_lowercase().contains("<script"));
    assert!(html.contains("@media print"));
    assert_eq!(html.matches("<svg").count(), 2);
    assert!(html.contains("Obehörig åtkomst till elevregistret"));
    assert!(html.contains(&issue.event.content_hash));
    assert!(html.contains(&head_before.hash));
    assert!(!html.contains("Utkast"));
    // CSV: one figure per row.
    assert!(csv.starts_with("section,key,label_sv,measure,value\n"));
    assert!(
        html.contains("Anmälda personuppgiftsincidenter: <strong>2</strong>, varav för sent: 1. De berörda informerades (art. 34) i 1 fall"),
        "{html}"
    );
    assert!(
        csv.contains("authorities,breaches_notified,Anmälda personuppgiftsincidenter,count,2\n")
    );
    assert!(csv.contains("nis2_phase,nis2_early_warning,NIS2 tidig varning (24 h),filed,1\n"));
    assert!(
        csv.contains("severity,major,Större avvikelser,count,2\n"),
        "{csv}"
    );
    assert!(csv
        .contains("lead_time,report_to_closing,Från rapport till avslut,median_seconds,3153600\n"));
    assert!(csv.contains("minor,nätfiske,nätfiske,references,AVV-2026-0001 AVV-2026-0006\n"));

    // The e-mail: Swedish subject, text part, HTML with the charts as cid: images.
    let mail = report::render_email(
        &issued,
        &issue,
        "https://avvik.kommunen.example/staff/reports/2026",
    );
    assert_eq!(
        mail.subject,
        "Årsrapport informationssäkerhetsavvikelser 2026"
    );
    assert!(
        mail.text
            .contains("AVV-2026-0002 – Obehörig åtkomst till elevregistret"),
        "{}",
        mail.text
    );
    assert!(
        mail.text
            .contains("nätfiske: 2 (AVV-2026-0001, AVV-2026-0006)"),
        "{}",
        mail.text
    );
    assert_eq!(mail.images.len(), 2);
    for img in &mail.images {
        assert!(mail
            .html
            .contains(&format!("src=\"cid:{}\"", img.content_id)));
        assert_eq!(img.content_type, "image/svg+xml");
        let svg = String::from_utf8(img.body.clone()).unwrap();
        assert!(svg.contains("<svg") && svg.contains("</svg>"));
    }
    let months_svg = String::from_utf8(mail.images[0].body.clone()).unwrap();
    assert!(
        months_svg.contains("jan") && months_svg.contains("dec"),
        "{months_svg}"
    );
    let cat_svg = String::from_utf8(mail.images[1].body.clone()).unwrap();
    assert!(cat_svg.contains("obehörig åtkomst"), "{cat_svg}");
    // Every month and every category is named once: no axis row without data.
    let named = |svg: &str, label: &str| svg.lines().filter(|l| l.trim() == label).count();
    for label in ["nätfiske", "obehörig åtkomst"] {
        assert_eq!(named(&cat_svg, label), 1, "{label} in {cat_svg}");
    }
    for m in 1..=12 {
        let label = avvik::report::model::month_label_sv(m);
        assert_eq!(named(&months_svg, label), 1, "{label} in {months_svg}");
    }

    // Later changes to the year's deviations do not touch the issued report.
    clock.set(utc("2027-02-01T09:00:00Z"));
    let d2 = Reference::parse("AVV-2026-0002").unwrap();
    app.services
        .execute(
            d2,
            Command::Close {
                resolution: "Klar".into(),
            },
            "user:ciso@kommunen.example",
        )
        .await
        .unwrap();
    let later = report::build_report(store.as_ref(), &keys, 2026, store.head().seq).unwrap();
    assert_ne!(
        report::content_hash(&later),
        issue.event.content_hash,
        "the change shows in a new build"
    );
    let again = report::load_document(store.as_ref(), &keys, 2026).unwrap();
    assert_eq!(again.hash_matches, Some(true));
    assert_eq!(report::to_json(&again.report), json);
    assert_eq!(report::render_html(&again.report), html);
    assert_eq!(report::to_csv(&again.report), csv);

    // Issuing again is explicit and needs a reason; it is a new edition, never an overwrite.
    let err = report::issue_annual_report(
        store.clone(),
        keys.clone(),
        2026,
        None,
        "user:ciso@kommunen.example",
        clock.now(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, IssueError::AlreadyIssued { year: 2026, .. }),
        "{err}"
    );
    let (second, second_report) = report::issue_annual_report(
        store.clone(),
        keys.clone(),
        2026,
        Some("AVV-2026-0002 avslutades efter utfärdandet".into()),
        "user:ciso@kommunen.example",
        clock.now(),
    )
    .await
    .unwrap();
    assert_eq!(second.event.edition, 2);
    assert_eq!(second.event.reissue_of, Some(issue.seq));
    assert_eq!(second.event.trigger, report::IssueTrigger::Manual);
    assert_eq!(second_report.totals.closed, 5);
    assert_eq!(report::issues(store.as_ref(), 2026).unwrap().len(), 2);
    let mail2 = report::render_email(
        &second_report,
        &second,
        "https://x.example/staff/reports/2026",
    );
    assert_eq!(
        mail2.subject,
        "Årsrapport informationssäkerhetsavvikelser 2026 (utgåva 2)"
    );
    assert!(mail2.text.contains("avslutades efter utfärdandet"));
    let second_json = report::to_json(&second_report);
    let first_issue_seq = issue.seq;
    drop(store);
    app.stop().await;

    // The CLI, with the server stopped, prints the edition in force byte for byte.
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    let (code, out, err) = avvik(
        &[
            "report", "--data", data_s, "--year", "2026", "--format", "json",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.as_bytes(), second_json.as_slice());
    assert_eq!(
        avvik_events::hash_hex(out.as_bytes()),
        second.event.content_hash
    );
    assert!(err.contains("edition 2"), "{err}");
    let (code, out, _) = avvik(
        &[
            "report", "--data", data_s, "--year", "2026", "--format", "csv",
        ],
        &[],
    );
    assert_eq!(code, 0);
    assert!(out.contains("totals,closed,Avslutade,count,5\n"), "{out}");
    let (code, out, _) = avvik(
        &[
            "report", "--data", data_s, "--year", "2026", "--format", "html",
        ],
        &[],
    );
    assert_eq!(code, 0);
    assert!(out.contains("<html lang=\"sv\">"));
    // A year never issued is a draft, and says so.
    let (code, out, err) = avvik(
        &[
            "report", "--data", data_s, "--year", "2027", "--format", "html",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Utkast"));
    assert!(err.contains("draft"), "{err}");
    let (code, _, err) = avvik(
        &[
            "report", "--data", data_s, "--year", "2027", "--format", "pdf",
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("pdf"), "{err}");

    // The first edition is still in the log and rebuilds to its recorded hash.
    let store = avvik_events::SledEventStore::open(&data, Default::default()).unwrap();
    let keys = avvik::privacy::Keyring::open_dir(
        &data,
        &avvik::secret::Secret::load_or_create(&data).unwrap(),
    )
    .unwrap();
    let first = report::issues(&store, 2026).unwrap().remove(0);
    assert_eq!(first.seq, first_issue_seq);
    let rebuilt = report::build_report(&store, &keys, 2026, first.event.as_of_seq).unwrap();
    assert_eq!(report::to_json(&rebuilt), json);
}
