//! E-mail notices against a real SMTP server on loopback: escalations, outages, SIGKILL,
//! deadline reminders across a DST switch, acknowledgement links.

pub mod smtp;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use avvik::clock::{Clock, ManualClock};
use avvik::config::{Config, MailTransport, TlsMode};
use avvik::domain::deviation::{FilingRecorded, MeasureAdded};
use avvik::domain::{
    Aspects, Classification, Command, FilingKind, Level, PersonalDataBreach, Reference, Severity,
};
use avvik::notify::{DeliveryState, Rule};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{avvik, Server, TestApp};
use smtp::{Mode, Received, SmtpSink};

pub(crate) const CISO: &str = "ciso@kommunen.example";
pub(crate) const KONTAKT: &str = "kontakt.soc@kommunen.example";
pub(crate) const DPO: &str = "dso@kommunen.example";
pub(crate) const LG: [&str; 2] = ["lg1@kommunen.example", "lg2@kommunen.example"];
pub(crate) const KS: [&str; 2] = ["ks1@kommunen.example", "ks2@kommunen.example"];
pub(crate) const REPORTER: &str = "anna@kommunen.example";
pub(crate) const OWNER: &str = "systemagare@kommunen.example";

pub(crate) fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

pub(crate) fn mail_to_sink(c: &mut Config, port: u16) {
    c.mail.transport = MailTransport::Smtp;
    c.mail.smtp.host = "127.0.0.1".into();
    c.mail.smtp.port = port;
    c.mail.smtp.tls = TlsMode::None;
    c.mail.smtp.timeout_s = 2;
    c.recipients.ciso = vec![CISO.into()];
    c.recipients.dataskyddsombud = vec![DPO.into()];
    c.recipients.ledningsgrupp = LG.map(String::from).to_vec();
    c.recipients.kommunstyrelsen = KS.map(String::from).to_vec();
    c.recipients
        .kontakt
        .insert("Socialtjänsten".into(), vec![KONTAKT.into()]);
}

pub(crate) async fn app_at(port: u16, clock: Arc<ManualClock>) -> TestApp {
    TestApp::spawn_with(|c| mail_to_sink(c, port), clock).await
}

/// Reports through the public API; returns (reference, id, status token).
pub(crate) async fn report(app: &TestApp, body: Value) -> (Reference, Uuid, String) {
    let r = app.post_json("/api/v1/deviations", body).await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    (
        Reference::parse(v["reference"].as_str().unwrap()).unwrap(),
        v["id"].as_str().unwrap().parse().unwrap(),
        v["status_token"].as_str().unwrap().to_string(),
    )
}

pub(crate) fn classify(
    severity: Severity,
    breach: PersonalDataBreach,
    confidentiality: u8,
) -> Command {
    Command::Classify(Classification {
        severity,
        aspects: Aspects {
            confidentiality: Level::new(confidentiality),
            ..Aspects::default()
        },
        category: "obehörig åtkomst".into(),
        personal_data_breach: breach,
        nis2_significant: false,
        rationale: "bedömning".into(),
        role: "ciso".into(),
    })
}

pub(crate) async fn exec(app: &TestApp, reference: Reference, cmd: Command) {
    app.app_state
        .services
        .execute(reference, cmd, &format!("user:{CISO}"))
        .await
        .expect("command accepted");
}

pub(crate) async fn deliver(app: &TestApp, clock: &ManualClock) {
    app.app_state.notify.deliver_pending_once(clock.now()).await;
}

pub(crate) fn to(ms: &[Received], subject_part: &str) -> Vec<String> {
    let mut v: Vec<String> = ms
        .iter()
        .filter(|m| m.subject().contains(subject_part))
        .map(|m| m.rcpt())
        .collect();
    v.sort();
    v
}

pub(crate) fn sorted(a: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = a.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// The path of the first acknowledgement link in a message.
fn ack_path(m: &Received) -> String {
    let text = m.text();
    let i = text.find("/ack/").expect("an acknowledgement link");
    text[i..].split_whitespace().next().unwrap().to_string()
}

#[tokio::test]
async fn reclassifying_minor_to_major_escalates_once_to_every_board_member() {
    let sink = SmtpSink::start(Mode::Normal).await;
    let clock = Arc::new(ManualClock::new(t("2026-03-27T09:30:00Z")));
    let app = app_at(sink.port(), clock.clone()).await;
    let (reference, id, token) = report(
        &app,
        json!({
            "title": "Konto kapat",
            "description": "Hemlig detalj i beskrivningen",
            "sector": "Socialtjänsten",
            "reporter": {"name": "Anna Andersson", "email": REPORTER}
        }),
    )
    .await;
    deliver(&app, &clock).await;
    let m = sink.messages();
    assert_eq!(
        to(&m, "Ny avvikelse att bedöma"),
        sorted(&[CISO, KONTAKT]),
        "triage to the CISO and the sector's kontakt"
    );
    let receipt = m.iter().find(|m| m.rcpt() == REPORTER).expect("a receipt");
    assert_eq!(
        receipt.subject(),
        format!("[{reference}] Vi har tagit emot din rapport")
    );
    assert!(
        receipt.text().contains(&format!("/status/{token}")),
        "the receipt links to the reporter's own status page: {}",
        receipt.text()
    );

    exec(
        &app,
        reference,
        classify(Severity::Minor, PersonalDataBreach::No, 2),
    )
    .await;
    deliver(&app, &clock).await;
    assert!(to(&sink.messages(), "Större avvikelse").is_empty());

    exec(
        &app,
        reference,
        classify(Severity::Major, PersonalDataBreach::No, 3),
    )
    .await;
    deliver(&app, &clock).await;
    let m = sink.messages();
    let all_board: Vec<&str> = LG.iter().chain(KS.iter()).copied().collect();
    assert_eq!(to(&m, "Större avvikelse"), sorted(&all_board));
    let board: Vec<&Received> = m
        .iter()
        .filter(|m| m.subject().contains("Större avvikelse"))
        .collect();
    for b in &board {
        assert_eq!(
            b.subject(),
            format!("[{reference}] Större avvikelse: Konto kapat")
        );
        assert_eq!(
            b.header("Auto-Submitted").as_deref(),
            Some("auto-generated")
        );
        assert_eq!(
            b.from, "avvik@kommunen.example",
            "envelope sender from mail.from"
        );
        assert!(
            b.message_id().ends_with("@kommunen.example"),
            "{}",
            b.message_id()
        );
        assert!(
            b.text().contains("Konfidentialitet: 3 – allvarlig"),
            "{}",
            b.text()
        );
        assert!(
            !b.text().contains("Hemlig detalj"),
            "no description to the board"
        );
        assert!(b.html().contains("lang=\"sv\""));
        assert!(b.text().contains("/ack/"));
    }
    let ids: BTreeSet<String> = board.iter().map(|b| b.message_id()).collect();
    assert_eq!(ids.len(), 4, "one e-mail, one Message-ID, per person");

    // Editing the major classification is not a new escalation.
    exec(
        &app,
        reference,
        classify(Severity::Major, PersonalDataBreach::No, 4),
    )
    .await;
    clock.advance(chrono::Duration::minutes(5));
    deliver(&app, &clock).await;
    assert_eq!(to(&sink.messages(), "Större avvikelse").len(), 4);

    let notices = app.app_state.notify.notices_for(id);
    let escalations: Vec<_> = notices
        .iter()
        .filter(|n| n.rule == Rule::Escalation)
        .collect();
    assert_eq!(escalations.len(), 4);
    assert!(escalations
        .iter()
        .all(|n| matches!(n.state, DeliveryState::Sent(_))));

    // Closing tells the reporter, with the same private link.
    exec(
        &app,
        reference,
        Command::Close {
            resolution: "Intern notering".into(),
        },
    )
    .await;
    deliver(&app, &clock).await;
    let closed: Vec<Received> = sink
        .messages()
        .into_iter()
        .filter(|m| m.subject() == format!("[{reference}] Ditt ärende är avslutat"))
        .collect();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].rcpt(), REPORTER);
    assert!(closed[0].text().contains(&format!("/status/{token}")));
    assert!(
        !closed[0].text().contains("Intern notering"),
        "staff's resolution stays inside"
    );
}

#[tokio::test]
async fn an_escalation_waits_out_an_smtp_outage_and_the_failures_are_events() {
    let port = SmtpSink::closed_port().await;
    let clock = Arc::new(ManualClock::new(t("2026-03-27T09:30:00Z")));
    let app = app_at(port, clock.clone()).await;
    let notify = app.app_state.notify.clone();
    let (reference, id, _) = report(
        &app,
        json!({"title": "Ransomware på filserver", "description": "x"}),
    )
    .await;
    exec(
        &app,
        reference,
        classify(Severity::Major, PersonalDataBreach::No, 4),
    )
    .await;
    deliver(&app, &clock).await;

    let failed: Vec<_> = notify
        .timeline_for(id)
        .unwrap()
        .into_iter()
        .filter(|r| r.event_type == "NotificationFailed")
        .collect();
    assert!(failed.len() >= 4, "every board e-mail failed: {failed:?}");
    for f in &failed {
        assert_eq!(f.data["deviation_id"], json!(id), "timelines can find it");
        assert_eq!(f.data["attempt"], json!(1));
        assert!(!f.data["error"].as_str().unwrap().is_empty());
        assert_eq!(
            f.stream,
            f.data["notification_id"]
                .as_str()
                .unwrap()
                .parse::<Uuid>()
                .unwrap()
        );
    }
    for n in notify
        .notices_for(id)
        .iter()
        .filter(|n| n.rule == Rule::Escalation)
    {
        match &n.state {
            DeliveryState::Pending {
                attempts: 1,
                next_retry_at: Some(at),
                last_error: Some(_),
            } => assert_eq!(*at, clock.now() + chrono::Duration::seconds(60)),
            other => panic!("expected a pending retry, got {other:?}"),
        }
    }

    let mut sink = SmtpSink::start_on(port, Mode::Normal).await;
    clock.advance(chrono::Duration::seconds(59));
    deliver(&app, &clock).await;
    assert!(sink.messages().is_empty(), "no retry before its time");
    clock.advance(chrono::Duration::seconds(2));
    deliver(&app, &clock).await;
    let all_board: Vec<&str> = LG.iter().chain(KS.iter()).copied().collect();
    assert_eq!(to(&sink.messages(), "Större avvikelse"), sorted(&all_board));
    for n in notify
        .notices_for(id)
        .iter()
        .filter(|n| n.rule == Rule::Escalation)
    {
        assert!(
            matches!(&n.state, DeliveryState::Sent(s) if s.attempt == 2),
            "{n:?}"
        );
    }
    // Nothing is sent twice once recorded.
    clock.advance(chrono::Duration::hours(1));
    deliver(&app, &clock).await;
    assert_eq!(to(&sink.messages(), "Större avvikelse").len(), 4);
    sink.stop().await;
}

#[tokio::test]
async fn an_acknowledgement_link_records_once_and_forged_links_are_refused() {
    let sink = SmtpSink::start(Mode::Normal).await;
    let clock = Arc::new(ManualClock::new(t("2026-03-27T09:30:00Z")));
    let app = app_at(sink.port(), clock.clone()).await;
    let notify = app.app_state.notify.clone();
    let (reference, id, _) = report(
        &app,
        json!({"title": "Läckt patientlista", "description": "x"}),
    )
    .await;
    exec(
        &app,
        reference,
        classify(Severity::Major, PersonalDataBreach::Yes, 4),
    )
    .await;
    deliver(&app, &clock).await;
    let m = sink.messages();
    let mail = |rcpt: &str| {
        m.iter()
            .find(|x| x.rcpt() == rcpt && x.subject().contains("Större avvikelse"))
            .unwrap()
            .clone()
    };
    let lg1 = ack_path(&mail(LG[0]));
    let ks1 = ack_path(&mail(KS[0]));
    let url = |p: &str| format!("{}{}", app.base, p);

    let r = app.client.get(url(&lg1)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.contains("<html lang=\"sv\">") && body.contains(&reference.to_string()));
    assert!(
        body.contains("<form method=\"post\">"),
        "GET only asks: {body}"
    );
    assert!(
        notify.acknowledgements_for(id).is_empty(),
        "GET records nothing"
    );

    let r = app.client.post(url(&lg1)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("registrerades"));
    let r = app.client.post(url(&lg1)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("redan kvitterad"));
    let acks = notify.acknowledgements_for(id);
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].recipient, LG[0]);

    // Altered or forged links: 403 with a Swedish explanation, and nothing recorded.
    let (lg1_id, lg1_sig) = lg1["/ack/".len()..].split_once('/').unwrap();
    let (ks1_id, _) = ks1["/ack/".len()..].split_once('/').unwrap();
    let mut flipped = lg1_sig.to_string().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
    let forged = [
        format!("/ack/{lg1_id}/{}", String::from_utf8(flipped).unwrap()),
        format!("/ack/{ks1_id}/{lg1_sig}"),
        format!("/ack/{}/{lg1_sig}", Uuid::now_v7()),
        format!("/ack/{lg1_id}/{}", "ab".repeat(32)),
        format!("/ack/inte-ett-id/{lg1_sig}"),
        format!("/ack/{lg1_id}/"),
    ];
    for path in &forged {
        for post in [false, true] {
            let req = if post {
                app.client.post(url(path))
            } else {
                app.client.get(url(path))
            };
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let body = r.text().await.unwrap();
            if path.ends_with('/') {
                assert!(status == 403 || status == 404, "{path}: {status}");
            } else {
                assert_eq!(status, 403, "{path}");
                assert!(body.contains("Länken är ogiltig"), "{body}");
            }
        }
    }
    assert_eq!(notify.acknowledgements_for(id).len(), 1);
    let acks_in_log = notify
        .timeline_for(id)
        .unwrap()
        .iter()
        .filter(|r| r.event_type == "EscalationAcknowledged")
        .count();
    assert_eq!(acks_in_log, 1);

    // A day later nobody in kommunstyrelsen has acknowledged: one reminder to them only.
    clock.advance(chrono::Duration::hours(24));
    deliver(&app, &clock).await;
    clock.advance(chrono::Duration::hours(3));
    deliver(&app, &clock).await;
    let reminders = to(&sink.messages(), "Påminnelse – kvittera");
    assert_eq!(reminders, sorted(&KS));
    // The reminder carries the original escalation's link: acknowledging it counts.
    let reminder = sink
        .messages()
        .into_iter()
        .find(|m| m.rcpt() == KS[0] && m.subject().contains("Påminnelse – kvittera"))
        .unwrap();
    assert_eq!(ack_path(&reminder), ks1);
    let shown: Vec<_> = notify
        .notices_for(id)
        .into_iter()
        .filter(|n| n.rule == Rule::Escalation && n.acknowledged.is_some())
        .map(|n| n.recipient)
        .collect();
    assert_eq!(shown, vec![LG[0].to_string()]);
}

#[tokio::test]
async fn deadline_reminders_fire_at_stockholm_time_across_dst_and_stop_once_filed() {
    let sink = SmtpSink::start(Mode::Normal).await;
    // Discovered Friday 2026-03-27 10:00 CET; summer time starts Sunday 29 March, so the
    // GDPR deadline 72 hours later is Monday 30 March 11:00 CEST (09:00 UTC).
    let clock = Arc::new(ManualClock::new(t("2026-03-27T09:30:00Z")));
    let app = app_at(sink.port(), clock.clone()).await;
    let (reference, id, _) = report(
        &app,
        json!({
            "title": "Felskickad e-post med personnummer",
            "description": "x",
            "discovered_at": "2026-03-27T10:00:00+01:00",
            "personal_data": true
        }),
    )
    .await;
    exec(
        &app,
        reference,
        classify(Severity::Minor, PersonalDataBreach::Yes, 2),
    )
    .await;
    exec(
        &app,
        reference,
        Command::AddMeasure(MeasureAdded {
            measure_id: Uuid::now_v7(),
            description: "Be mottagaren radera e-posten".into(),
            owner: OWNER.into(),
            due: chrono::NaiveDate::from_ymd_opt(2026, 3, 28).unwrap(),
        }),
    )
    .await;
    deliver(&app, &clock).await;
    let alert: Vec<Received> = sink
        .messages()
        .into_iter()
        .filter(|m| m.rcpt() == DPO)
        .collect();
    assert_eq!(alert.len(), 1);
    assert_eq!(
        alert[0].subject(),
        format!(
            "[{reference}] Möjlig personuppgiftsincident – anmälan till IMY senast 2026-03-30 kl. 11:00"
        )
    );

    let count = |part: &str| {
        sink.messages()
            .iter()
            .filter(|m| m.subject().contains(part))
            .count()
    };
    // The measure was due Saturday 28 March; its owner hears at 08:00 Stockholm time on
    // Sunday, which after the switch is 06:00 UTC.
    clock.set(t("2026-03-29T05:59:59Z"));
    deliver(&app, &clock).await;
    assert_eq!(count("Försenad åtgärd"), 0);
    clock.set(t("2026-03-29T06:00:00Z"));
    deliver(&app, &clock).await;
    assert_eq!(
        to(&sink.messages(), "Försenad åtgärd"),
        vec![OWNER.to_string()]
    );

    // 12 hours before the GDPR deadline: 21:00 UTC = 23:00 CEST on Sunday.
    clock.set(t("2026-03-29T20:59:59Z"));
    deliver(&app, &clock).await;
    assert_eq!(count("Påminnelse: anmälan av personuppgiftsincident"), 0);
    clock.set(t("2026-03-29T21:00:00Z"));
    deliver(&app, &clock).await;
    deliver(&app, &clock).await;
    let m = sink.messages();
    assert_eq!(
        to(&m, "Påminnelse: anmälan av personuppgiftsincident"),
        sorted(&[CISO, DPO])
    );
    let reminder = m
        .iter()
        .find(|m| m.subject().contains("Påminnelse: anmälan"))
        .unwrap();
    assert_eq!(
        reminder.subject(),
        format!("[{reference}] Påminnelse: anmälan av personuppgiftsincident till IMY (72 h) senast 2026-03-30 kl. 11:00")
    );

    // Overdue at 11:00 CEST, and again a day later while nothing is filed.
    clock.set(t("2026-03-30T08:59:59Z"));
    deliver(&app, &clock).await;
    assert_eq!(count("Försenad: anmälan"), 0);
    clock.set(t("2026-03-30T09:00:00Z"));
    deliver(&app, &clock).await;
    assert_eq!(
        to(&sink.messages(), "Försenad: anmälan"),
        sorted(&[CISO, DPO])
    );
    assert!(sink
        .messages()
        .iter()
        .any(|m| m.subject().contains("fristen gick ut 2026-03-30 kl. 11:00")));
    clock.set(t("2026-03-31T09:00:00Z"));
    deliver(&app, &clock).await;
    assert_eq!(count("Försenad: anmälan"), 4);

    // Filed: the reminders stop.
    exec(
        &app,
        reference,
        Command::RecordFiling(FilingRecorded {
            kind: FilingKind::Gdpr,
            authority: "IMY".into(),
            filed_at: t("2026-03-31T10:00:00Z"),
            their_reference: Some("IMY-2026-123".into()),
            content_sha256: None,
        }),
    )
    .await;
    for day in ["2026-04-01T09:00:00Z", "2026-04-02T09:00:00Z"] {
        clock.set(t(day));
        deliver(&app, &clock).await;
    }
    assert_eq!(count("Försenad: anmälan"), 4);
    assert_eq!(count("Påminnelse: anmälan"), 2);
    let pending_gdpr = app
        .app_state
        .notify
        .notices_for(id)
        .into_iter()
        .filter(|n| n.rule == Rule::DeadlineReminder)
        .filter(|n| matches!(n.state, DeliveryState::Pending { .. }))
        .count();
    assert_eq!(pending_gdpr, 0);
}

/// What the real binary needs to mail the sink.
fn server_env(port: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AVVIK_MAIL__TRANSPORT", "smtp".into()),
        ("AVVIK_MAIL__SMTP__HOST", "127.0.0.1".into()),
        ("AVVIK_MAIL__SMTP__PORT", port.into()),
        ("AVVIK_MAIL__SMTP__TLS", "none".into()),
        ("AVVIK_MAIL__SMTP__TIMEOUT_S", "30".into()),
        ("AVVIK_RECIPIENTS__CISO", format!("[\"{CISO}\"]")),
        ("AVVIK_NOTIFICATIONS__RETRY_FIRST_S", "1".into()),
        ("AVVIK_NOTIFICATIONS__RETRY_MAX_S", "2".into()),
        ("AVVIK_NOTIFICATIONS__POLL_INTERVAL_S", "1".into()),
    ]
}

async fn start_server(data: std::path::PathBuf, env: Vec<(&'static str, String)>) -> Server {
    tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Server::start(&data, &env)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_pending_at_sigkill_are_all_delivered_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The server takes each message and never answers: avvik cannot know it went out.
    let mut sink = SmtpSink::start(Mode::Stall).await;
    let env = server_env(&sink.port().to_string());
    let server = start_server(data.clone(), env.clone()).await;
    let client = reqwest::Client::new();
    let mut references = Vec::new();
    for i in 0..5 {
        let r = client
            .post(format!("{}/api/v1/deviations", server.base))
            .json(&json!({
                "title": format!("Borttappad telefon {i}"),
                "description": "Lämnad på bussen.",
                "reporter": {"name": format!("Person {i}"), "email": format!("person{i}@kommunen.example")}
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.unwrap();
        references.push(v["reference"].as_str().unwrap().to_string());
    }
    let stalled = sink
        .wait_until(Duration::from_secs(10), |m| !m.is_empty())
        .await;
    assert!(!stalled.is_empty(), "delivery started");
    tokio::task::spawn_blocking(move || server.kill9())
        .await
        .unwrap();

    sink.restart(Mode::Normal).await;
    let server = start_server(data.clone(), env).await;
    // 5 triage notices to the CISO and 5 receipts.
    let distinct = |m: &[Received]| {
        m.iter()
            .map(|x| (x.rcpt(), x.subject()))
            .collect::<BTreeSet<_>>()
            .len()
    };
    let m = sink
        .wait_until(Duration::from_secs(20), |m| distinct(m) >= 10)
        .await;
    assert_eq!(
        distinct(&m),
        10,
        "{:?}",
        m.iter()
            .map(|x| (x.rcpt(), x.subject()))
            .collect::<Vec<_>>()
    );
    for r in &references {
        let about: Vec<&Received> = m
            .iter()
            .filter(|x| x.subject().starts_with(&format!("[{r}]")))
            .collect();
        let who: BTreeSet<String> = about.iter().map(|x| x.rcpt()).collect();
        assert_eq!(who.len(), 2, "{r}: triage and receipt");
        assert!(who.contains(CISO));
    }
    // Duplicates only with the same Message-ID: one Message-ID per notice, and a notice's
    // copies all carry it.
    let mut by_id: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    for x in &m {
        by_id
            .entry(x.message_id())
            .or_default()
            .insert((x.rcpt(), x.subject()));
    }
    assert_eq!(by_id.len(), 10);
    assert!(by_id.values().all(|v| v.len() == 1));
    assert!(
        m.len() > 10,
        "the stalled e-mails were sent again after the restart"
    );
    tokio::task::spawn_blocking(move || server.kill9())
        .await
        .unwrap();

    // The log records each as sent exactly once.
    let (code, out, err) = avvik(&["export", "--data", data.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{err}");
    let sent: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["type"] == "NotificationSent")
        .collect();
    let ids: BTreeSet<&str> = sent
        .iter()
        .map(|r| r["data"]["notification_id"].as_str().unwrap())
        .collect();
    assert_eq!(sent.len(), 10);
    assert_eq!(ids.len(), 10);
    sink.stop().await;
}

#[test]
fn send_test_email_writes_to_the_file_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    let (code, out, err) = avvik(
        &["send-test-email", "--to", "ciso@kommunen.example"],
        &[("AVVIK_MAIL__OUTBOX_DIR", outbox.to_str().unwrap())],
    );
    assert_eq!(code, 0, "{out}{err}");
    let files: Vec<_> = std::fs::read_dir(&outbox).unwrap().collect();
    assert_eq!(files.len(), 1);
    let raw = std::fs::read_to_string(files[0].as_ref().unwrap().path()).unwrap();
    assert!(raw.contains("To: ciso@kommunen.example"));
    let (code, _, err) = avvik(&["send-test-email", "--to", "inte en adress"], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("not an e-mail address"), "{err}");
}
