//! More e-mail rules against the real SMTP server on loopback: the annual report with its
//! charts, the policy review reminder, quarantined intake mail, comments to the reporter
//! and the NIS2 early-warning notice.

use std::sync::Arc;

use avvik::clock::{Clock, ManualClock};
use avvik::domain::deviation::CommentAdded;
use avvik::domain::{Aspects, Classification, Command, Level, PersonalDataBreach, Severity};
use avvik::notify::outbox::Outbox;
use avvik::notify::rules::Rules;
use avvik::notify::{DeliveryState, Rule};
use avvik::scheduler::{Scheduler, Schedules, POLICY_REVIEW_REMINDER_DUE};
use mail_parser::{MessageParser, MimeHeaders};
use serde_json::{json, Value};

use crate::helpers::TestApp;
use crate::notify::smtp::{Mode, Received, SmtpSink};
use crate::notify::{
    app_at, classify, deliver, exec, mail_to_sink, report, sorted, t, to, CISO, KS, REPORTER,
};

/// One MIME part, in tree order, with how deep it sits.
#[derive(Debug)]
struct Part {
    depth: usize,
    content_type: String,
    content_id: Option<String>,
    disposition: Option<String>,
    filename: Option<String>,
    body: Vec<u8>,
}

fn mime_tree(raw: &[u8]) -> Vec<Part> {
    fn walk(m: &mail_parser::Message<'_>, id: usize, depth: usize, out: &mut Vec<Part>) {
        let p = &m.parts[id];
        let disposition = p.content_disposition();
        out.push(Part {
            depth,
            content_type: p
                .content_type()
                .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")))
                .unwrap_or_default()
                .to_ascii_lowercase(),
            content_id: p
                .content_id()
                .map(|c| c.trim_matches(|ch| ch == '<' || ch == '>').to_string()),
            disposition: disposition.map(|d| d.ctype().to_ascii_lowercase()),
            filename: disposition
                .and_then(|d| d.attribute("filename"))
                .map(str::to_string),
            body: p.contents().to_vec(),
        });
        for sub in p.sub_parts().unwrap_or_default() {
            walk(m, *sub as usize, depth + 1, out);
        }
    }
    let m = MessageParser::default()
        .parse(raw)
        .expect("a parsable message");
    let mut out = Vec::new();
    walk(&m, 0, 0, &mut out);
    out
}

/// The NotificationSent records in the log, as stored.
fn sent_records(app: &TestApp) -> Vec<Value> {
    avvik_events::read_all(app.app_state.services.store.as_ref(), 1)
        .map(|r| r.unwrap())
        .filter(|r| r.event_type == "NotificationSent")
        .map(|r| r.data)
        .collect()
}

#[tokio::test]
async fn the_annual_report_email_arrives_with_its_charts_and_is_sent_once() {
    let sink = SmtpSink::start(Mode::Normal).await;
    let clock = Arc::new(ManualClock::new(t("2026-03-27T09:30:00Z")));
    let app = app_at(sink.port(), clock.clone()).await;
    let store = app.app_state.services.store.clone();
    let (reference, _, _) = report(
        &app,
        json!({"title": "Obehörig åtkomst till elevregistret", "description": "x", "sector": "Socialtjänsten"}),
    )
    .await;
    exec(
        &app,
        reference,
        classify(Severity::Major, PersonalDataBreach::No, 3),
    )
    .await;
    deliver(&app, &clock).await;
    clock.set(t("2026-05-04T08:00:00Z"));
    let (phishing, _, _) = report(&app, json!({"title": "Nätfiske", "description": "y"})).await;
    // Classified in time: no triage-overdue reminder in the January count below.
    exec(
        &app,
        phishing,
        classify(Severity::Minor, PersonalDataBreach::No, 1),
    )
    .await;
    deliver(&app, &clock).await;
    let before = sink.messages().len();

    // Issued by hand in January, before the scheduled slot (so the app's own scheduler
    // has nothing to do).
    clock.set(t("2027-01-05T09:00:00Z"));
    let (issue, issued) = avvik::report::issue_annual_report(
        store.clone(),
        app.app_state.services.keys.clone(),
        2026,
        None,
        "user:ciso",
        clock.now(),
    )
    .await
    .expect("issued");
    deliver(&app, &clock).await;
    let subject = "Årsrapport informationssäkerhetsavvikelser 2026";
    let m = sink.messages();
    assert_eq!(
        m.len() - before,
        3,
        "kommunstyrelsen and the CISO, nothing else"
    );
    let mut want: Vec<&str> = KS.to_vec();
    want.push(CISO);
    assert_eq!(to(&m, subject), sorted(&want));

    // The report e-mail arrives at a real SMTP server on loopback with the charts in it.
    let mail: &Received = m
        .iter()
        .find(|x| x.rcpt() == KS[0] && x.subject() == subject)
        .unwrap();
    assert_eq!(
        mail.header("Auto-Submitted").as_deref(),
        Some("auto-generated")
    );
    let parts = mime_tree(&mail.data);
    let shape: Vec<(usize, &str)> = parts
        .iter()
        .map(|p| (p.depth, p.content_type.as_str()))
        .collect();
    let images: Vec<&Part> = parts
        .iter()
        .filter(|p| p.content_type == "image/svg+xml")
        .collect();
    assert!(images.len() >= 2, "the charts: {shape:?}");
    let mut expected = vec![
        (0, "multipart/alternative"),
        (1, "text/plain"),
        (1, "multipart/related"),
        (2, "text/html"),
    ];
    expected.extend(std::iter::repeat_n((2, "image/svg+xml"), images.len()));
    assert_eq!(shape, expected);
    let text = String::from_utf8(parts[1].body.clone()).unwrap();
    let html = String::from_utf8(parts[3].body.clone()).unwrap();
    assert!(
        text.contains(&format!(
            "{reference} – Obehörig åtkomst till elevregistret"
        )),
        "the major deviation is listed: {text}"
    );
    assert!(
        text.contains("/staff/reports/2026"),
        "links to the printable report: {text}"
    );
    assert!(html.contains("lang=\"sv\""));
    for img in &images {
        let cid = img.content_id.as_deref().expect("a Content-ID");
        assert!(
            html.contains(&format!("src=\"cid:{cid}\"")),
            "the HTML shows {cid}"
        );
        assert_eq!(img.disposition.as_deref(), Some("inline"));
        let name = img.filename.as_deref().expect("a filename");
        assert!(name.ends_with("-2026.svg"), "{name}");
        let svg = String::from_utf8(img.body.clone()).unwrap();
        assert!(svg.contains("<svg") && svg.contains("</svg>"), "{svg}");
    }
    let cids: std::collections::BTreeSet<_> = images.iter().map(|i| i.content_id.clone()).collect();
    assert_eq!(cids.len(), images.len(), "one Content-ID per chart");
    // Every recipient got the same report, each with its own Message-ID.
    let ids: std::collections::BTreeSet<String> = m
        .iter()
        .filter(|x| x.subject() == subject)
        .map(|x| x.message_id())
        .collect();
    assert_eq!(ids.len(), 3);

    // The re-rendered frozen report matches its recorded hash.
    let s2 = store.clone();
    let k2 = app.app_state.services.keys.clone();
    let as_of = issue.event.as_of_seq;
    let rebuilt = tokio::task::spawn_blocking(move || {
        avvik::report::build_report(s2.as_ref(), &k2, 2026, as_of).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        avvik::report::content_hash(&rebuilt),
        issue.event.content_hash
    );
    assert_eq!(
        avvik::report::content_hash(&issued),
        issue.event.content_hash
    );

    // Recorded as sent, about no deviation but naming the issue; never sent again, also
    // not by an outbox rebuilt from the log (a restart).
    let notices = app.app_state.notify.notices_for_trigger(issue.id);
    assert_eq!(notices.len(), 3);
    assert!(notices.iter().all(|n| n.rule == Rule::AnnualReport
        && n.deviation_id.is_none()
        && matches!(n.state, DeliveryState::Sent(_))));
    let sent: Vec<Value> = sent_records(&app)
        .into_iter()
        .filter(|d| d["rule"] == "annual_report")
        .collect();
    assert_eq!(sent.len(), 3);
    for d in &sent {
        assert_eq!(d["trigger_event_id"], json!(issue.id));
        assert!(d.get("deviation_id").is_none(), "{d}");
    }
    clock.advance(chrono::Duration::hours(1));
    deliver(&app, &clock).await;
    assert_eq!(to(&sink.messages(), subject).len(), 3);
    let rules = Arc::new(Rules::from_config(&app.app_state.config));
    let s3 = store.clone();
    let k3 = app.app_state.services.keys.clone();
    let outbox =
        tokio::task::spawn_blocking(move || Outbox::fold(s3.as_ref(), &k3, rules, s3.head().seq))
            .await
            .unwrap()
            .unwrap();
    // (Unacknowledged escalations' reminders expired long ago; only the report matters.)
    let (due, expired) = outbox.due(clock.now());
    let report_due = due
        .iter()
        .filter(|d| d.notice.rule == Rule::AnnualReport)
        .count();
    let report_expired = expired
        .iter()
        .filter(|n| n.rule == Rule::AnnualReport)
        .count();
    assert_eq!((report_due, report_expired), (0, 0));

    // A new edition is new e-mail, saying so.
    let (second, _) = avvik::report::issue_annual_report(
        store.clone(),
        app.app_state.services.keys.clone(),
        2026,
        Some("Rättad kategori".into()),
        "user:ciso",
        clock.now(),
    )
    .await
    .unwrap();
    assert_eq!(second.event.edition, 2);
    deliver(&app, &clock).await;
    let m = sink.messages();
    assert_eq!(
        to(
            &m,
            "Årsrapport informationssäkerhetsavvikelser 2026 (utgåva 2)"
        ),
        sorted(&want)
    );
    assert_eq!(to(&m, subject).len(), 6);
}

#[tokio::test]
async fn the_policy_review_reminder_reaches_the_ciso_once() {
    let sink = SmtpSink::start(Mode::Normal).await;
    let clock = Arc::new(ManualClock::new(t("2026-03-27T09:30:00Z")));
    let app = TestApp::spawn_with(
        |c| {
            mail_to_sink(c, sink.port());
            c.policy.valid_until = chrono::NaiveDate::from_ymd_opt(2026, 6, 30).unwrap();
            c.policy.review_reminders_months = vec![3];
        },
        clock.clone(),
    )
    .await;
    let store = app.app_state.services.store.clone();
    let scheduler = Scheduler::new(
        store.clone(),
        app.app_state.services.keys.clone(),
        clock.clone(),
        Schedules::from_config(&app.app_state.config).unwrap(),
    );
    // 07:00 Stockholm time on 30 March, the day after summer time began: 05:00 UTC.
    clock.set(t("2026-03-30T04:59:59Z"));
    scheduler.run_due_jobs(clock.now()).await.unwrap();
    deliver(&app, &clock).await;
    assert!(sink.messages().is_empty());
    clock.set(t("2026-03-30T05:00:00Z"));
    scheduler.run_due_jobs(clock.now()).await.unwrap();
    deliver(&app, &clock).await;
    let m = sink.messages();
    assert_eq!(
        m.len(),
        1,
        "{:?}",
        m.iter().map(|x| x.subject()).collect::<Vec<_>>()
    );
    assert_eq!(m[0].rcpt(), CISO);
    assert_eq!(
        m[0].subject(),
        "Påminnelse: informationssäkerhetspolicyn ska utvärderas före 2026-06-30"
    );
    let text = m[0].text();
    assert!(text.contains("alltså om 3 månader"), "{text}");
    assert!(text.contains("Tider anges i svensk tid."), "{text}");
    assert!(
        m[0].html()
            .contains("<p>Informationssäkerhetspolicyn gäller till och med 2026-06-30"),
        "{}",
        m[0].html()
    );
    let reminder = store
        .read_stream(avvik::scheduler::policy_review_stream(), 1)
        .unwrap()
        .into_iter()
        .find(|r| r.event_type == POLICY_REVIEW_REMINDER_DUE)
        .unwrap();
    let notices = app.app_state.notify.notices_for_trigger(reminder.id);
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].rule, Rule::PolicyReviewReminder);
    assert!(matches!(notices[0].state, DeliveryState::Sent(_)));

    // Later rounds and scheduler runs send nothing more.
    clock.advance(chrono::Duration::days(1));
    scheduler.run_due_jobs(clock.now()).await.unwrap();
    deliver(&app, &clock).await;
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test]
async fn a_quarantined_email_is_reported_to_the_ciso_with_what_is_known() {
    const TOKEN: &str = "intake-token-0123456789abcdef";
    let sink = SmtpSink::start(Mode::Normal).await;
    let clock = Arc::new(ManualClock::new(t("2026-03-27T09:30:00Z")));
    let app = TestApp::spawn_with(
        |c| {
            mail_to_sink(c, sink.port());
            c.http.base_url = "https://avvik.kommunen.example/".into();
            c.intake.token = TOKEN.into();
            c.intake.max_message_bytes = 2048;
        },
        clock.clone(),
    )
    .await;
    let raw = format!(
        "From: Bo Ek <bo.ek@example.org>\r\nTo: avvikelse@kommunen.example\r\n\
         Subject: =?utf-8?q?Stor_bilaga_fr=C3=A5n_skolan?=\r\nMessage-ID: <stor-1@example.org>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{}\r\n",
        "x".repeat(3000)
    );
    let size = raw.len();
    let r = app
        .client
        .post(format!("{}/api/v1/intake/email", app.base))
        .bearer_auth(TOKEN)
        .header("content-type", "message/rfc822")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["outcome"], "quarantined");
    deliver(&app, &clock).await;
    let m = sink.messages();
    assert_eq!(
        m.len(),
        1,
        "{:?}",
        m.iter().map(|x| x.subject()).collect::<Vec<_>>()
    );
    assert_eq!(m[0].rcpt(), CISO);
    assert_eq!(m[0].subject(), "Ett e-postmeddelande kunde inte tas emot");
    let text = m[0].text();
    for want in [
        "Meddelandet är för stort".to_string(),
        format!("{size} byte"),
        "Avsändare:  bo.ek@example.org".to_string(),
        "Stor bilaga från skolan".to_string(),
        "stor-1@example.org".to_string(),
        "2026-03-27 kl. 10:30".to_string(),
        "https://avvik.kommunen.example/staff/intake/quarantine".to_string(),
    ] {
        assert!(text.contains(&want), "{want:?} in {text}");
    }
    assert!(
        m[0].html().contains("Stor bilaga från skolan"),
        "{}",
        m[0].html()
    );
    let sent = sent_records(&app);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["rule"], "intake_quarantine");
    assert!(sent[0].get("deviation_id").is_none());
    deliver(&app, &clock).await;
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test]
async fn staff_comments_to_the_reporter_are_mailed_with_the_status_link() {
    let sink = SmtpSink::start(Mode::Normal).await;
    let clock = Arc::new(ManualClock::new(t("2026-03-27T09:30:00Z")));
    let app = app_at(sink.port(), clock.clone()).await;
    let (reference, _, token) = report(
        &app,
        json!({
            "title": "Konto kapat",
            "description": "x",
            "reporter": {"name": "Anna Andersson", "email": REPORTER}
        }),
    )
    .await;
    let (anonymous, _, _) = report(&app, json!({"title": "Anonym", "description": "y"})).await;
    deliver(&app, &clock).await;
    let comment = |text: &str, to_reporter: bool, from_reporter: bool| {
        Command::Comment(CommentAdded {
            text: text.into(),
            to_reporter,
            from_reporter,
            unverified_email: false,
        })
    };
    exec(&app, reference, comment("Intern anteckning", false, false)).await;
    exec(&app, reference, comment("Jag såg mer i går.", false, true)).await;
    exec(
        &app,
        reference,
        comment("Hej Anna!\nVilken dator gäller det?", true, false),
    )
    .await;
    exec(&app, anonymous, comment("Till ingen", true, false)).await;
    deliver(&app, &clock).await;
    let subject = format!("[{reference}] Nytt meddelande om ditt ärende");
    let m = sink.messages();
    assert_eq!(to(&m, "Nytt meddelande"), vec![REPORTER.to_string()]);
    let mail = m.iter().find(|x| x.subject() == subject).unwrap();
    let text = mail.text();
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    assert!(
        lines
            .windows(2)
            .any(|w| w == ["Hej Anna!", "Vilken dator gäller det?"]),
        "the comment, line breaks kept: {text}"
    );
    assert!(text.contains(&format!("/status/{token}")), "{text}");
    assert!(!text.contains("Intern anteckning"));
    assert!(!text.contains("Jag såg mer"));
    // The reporter's answer to it threads back into the deviation: the sent record names it.
    let sent: Vec<Value> = sent_records(&app)
        .into_iter()
        .filter(|d| d["rule"] == "reporter_comment")
        .collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0]["message_id"],
        json!(format!("<{}>", mail.message_id()))
    );
    deliver(&app, &clock).await;
    assert_eq!(to(&sink.messages(), "Nytt meddelande").len(), 1);
}

fn nis2(significant: bool, availability: u8) -> Command {
    Command::Classify(Classification {
        severity: Severity::Major,
        aspects: Aspects {
            availability: Level::new(availability),
            ..Aspects::default()
        },
        category: "skadlig kod".into(),
        personal_data_breach: PersonalDataBreach::No,
        nis2_significant: significant,
        rationale: "bedömning".into(),
        role: "ciso".into(),
    })
}

#[tokio::test]
async fn a_significant_nis2_incident_tells_the_ciso_the_early_warning_deadline_once() {
    let sink = SmtpSink::start(Mode::Normal).await;
    let clock = Arc::new(ManualClock::new(t("2026-03-28T12:00:00Z")));
    let app = app_at(sink.port(), clock.clone()).await;
    // Discovered Saturday 10:00 CET; summer time starts that night, so 24 hours later is
    // Sunday 11:00 CEST (09:00 UTC), and 72 hours later Tuesday 11:00 CEST.
    let (reference, _, _) = report(
        &app,
        json!({
            "title": "Ransomware i driftmiljön",
            "description": "x",
            "discovered_at": "2026-03-28T10:00:00+01:00"
        }),
    )
    .await;
    exec(&app, reference, nis2(false, 3)).await;
    deliver(&app, &clock).await;
    assert!(
        to(&sink.messages(), "NIS2").is_empty(),
        "not significant yet"
    );
    exec(&app, reference, nis2(true, 3)).await;
    deliver(&app, &clock).await;
    let m = sink.messages();
    assert_eq!(to(&m, "NIS2"), vec![CISO.to_string()]);
    let mail = m.iter().find(|x| x.subject().contains("NIS2")).unwrap();
    assert_eq!(
        mail.subject(),
        format!(
            "[{reference}] NIS2 betydande incident – tidig varning senast 2026-03-29 kl. 11:00"
        )
    );
    let text = mail.text();
    assert!(
        text.contains("Tidig varning senast: 2026-03-29 kl. 11:00"),
        "{text}"
    );
    assert!(
        text.contains("Incidentanmälan senast: 2026-03-31 kl. 11:00"),
        "{text}"
    );
    assert!(text.contains("NIS2 betydande:  ja"), "{text}");
    assert!(
        text.contains(&format!("/staff/deviations/{reference}")),
        "{text}"
    );

    // Editing the classification, or turning it off and on again, is not a new notice.
    exec(&app, reference, nis2(true, 4)).await;
    exec(&app, reference, nis2(false, 4)).await;
    exec(&app, reference, nis2(true, 4)).await;
    clock.advance(chrono::Duration::minutes(5));
    deliver(&app, &clock).await;
    assert_eq!(to(&sink.messages(), "NIS2 betydande incident").len(), 1);

    // Classified significant only after the 24 hours ran out: the notice says so.
    let (late, _, _) = report(
        &app,
        json!({
            "title": "Överbelastningsattack",
            "description": "x",
            "discovered_at": "2026-03-25T08:00:00+01:00"
        }),
    )
    .await;
    exec(&app, late, nis2(true, 4)).await;
    deliver(&app, &clock).await;
    let subject = format!(
        "[{late}] NIS2 betydande incident – fristen för tidig varning gick ut 2026-03-26 kl. 08:00"
    );
    assert!(
        sink.messages().iter().any(|x| x.subject() == subject),
        "{:?}",
        sink.messages()
            .iter()
            .map(|x| x.subject())
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn an_issue_whose_report_no_longer_matches_its_hash_is_not_mailed() {
    let sink = SmtpSink::start(Mode::Normal).await;
    let clock = Arc::new(ManualClock::new(t("2027-01-05T09:00:00Z")));
    let app = app_at(sink.port(), clock.clone()).await;
    let store = app.app_state.services.store.clone();
    report(&app, json!({"title": "Nätfiske", "description": "y"})).await;
    deliver(&app, &clock).await;
    let before = sink.messages().len();
    // An issue event as a different report code would have recorded it.
    let head = store.head();
    let issue = avvik::report::AnnualReportIssued {
        year: 2026,
        as_of_seq: head.seq,
        head_hash: head.hash.clone(),
        content_hash: "ab".repeat(32),
        report_schema: avvik::report::REPORT_SCHEMA,
        edition: 1,
        reason: None,
        reissue_of: None,
        trigger: avvik::report::IssueTrigger::Manual,
        report: None,
    };
    store
        .append(
            avvik::report::annual_reports_stream(),
            avvik_events::ExpectedVersion::Any,
            vec![avvik_events::NewEvent::new(
                avvik::report::ANNUAL_REPORT_ISSUED,
                serde_json::to_value(&issue).unwrap(),
                "user:ciso",
                clock.now(),
            )],
        )
        .await
        .unwrap();
    deliver(&app, &clock).await;
    assert_eq!(sink.messages().len(), before, "nothing mailed");
    let failed: Vec<Value> = avvik_events::read_all(store.as_ref(), 1)
        .map(|r| r.unwrap())
        .filter(|r| r.event_type == "NotificationFailed")
        .map(|r| r.data)
        .collect();
    assert_eq!(failed.len(), 3, "kommunstyrelsen and the CISO: {failed:?}");
    for f in &failed {
        assert_eq!(f["rule"], "annual_report");
        assert!(
            f["error"]
                .as_str()
                .unwrap()
                .contains("does not match the content hash"),
            "{f}"
        );
    }
}
