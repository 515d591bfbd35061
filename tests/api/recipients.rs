//! Recipient lists as events, and escalations that had nobody to go to: recorded, visible,
//! owed, and sent once an address is added (also across SIGKILL).

use std::sync::Arc;
use std::time::Duration;

use avvik::clock::{Clock, ManualClock};
use avvik::domain::recipients::RECIPIENTS_STREAM;
use avvik::domain::{PersonalDataBreach, Severity};
use serde_json::{json, Value};

use crate::helpers::{Server, TestApp};
use crate::notify::smtp::{Mode, SmtpSink};
use crate::notify::{classify, deliver, exec, report, sorted, t, to, KS, LG};

/// An app on the sink with the default (empty) recipient lists.
async fn bare_app(port: u16, clock: Arc<ManualClock>) -> TestApp {
    TestApp::spawn_with(
        |c| {
            crate::notify::mail_to_sink(c, port);
            c.recipients = Default::default();
        },
        clock,
    )
    .await
}

async fn get(app: &TestApp, token: &str, path: &str) -> (u16, Value) {
    let r = app
        .client
        .get(format!("{}{path}", app.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn put_lists(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    let r = app
        .client
        .put(format!("{}/api/v1/recipients", app.base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn readyz(base: &str) -> Value {
    reqwest::get(format!("{base}/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn recipient_changes_are_events_and_the_audit_view_shows_the_list_before_a_change() {
    let app = TestApp::spawn_with(
        |c| c.recipients.ledningsgrupp = vec!["lg.gammal@kommunen.example".into()],
        Arc::new(avvik::clock::SystemClock),
    )
    .await;
    let tok = crate::authz::tokens(&app).await;
    let store = app.app_state.services.store.clone();
    // Seeded from the configuration once, by the system.
    let seeded = store.read_stream(RECIPIENTS_STREAM, 1).unwrap();
    assert_eq!(seeded.len(), 1);
    assert_eq!(seeded[0].event_type, "RecipientsSeeded");
    assert_eq!(seeded[0].actor, "system");
    let before = store.head().seq;

    // Only the admin may change them.
    let (s, _) = put_lists(
        &app,
        &tok["ciso"],
        json!({"ledningsgrupp": ["x@kommunen.example"]}),
    )
    .await;
    assert_eq!(s, 403);
    let (s, v) = put_lists(
        &app,
        &tok["admin"],
        json!({"ledningsgrupp": ["inte en adress"]}),
    )
    .await;
    assert_eq!(s, 422, "{v}");
    assert!(v["errors"][0]["message_sv"]
        .as_str()
        .unwrap()
        .contains("inte en giltig e-postadress"));
    let (s, v) = put_lists(
        &app,
        &tok["admin"],
        json!({"ciso": ["ciso@kommunen.example"], "ledningsgrupp": ["lg.ny@kommunen.example"], "kommunstyrelsen": ["ks@kommunen.example"]}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["escalation_ready"], true);
    assert_eq!(
        v["lists"]["ledningsgrupp"],
        json!(["lg.ny@kommunen.example"])
    );

    // Each changed list is one event, with who made it.
    let changes: Vec<_> = store
        .read_stream(RECIPIENTS_STREAM, 1)
        .unwrap()
        .into_iter()
        .filter(|r| r.event_type == "RecipientListChanged")
        .collect();
    assert_eq!(changes.len(), 3, "ciso, ledningsgrupp, kommunstyrelsen");
    assert!(changes
        .iter()
        .all(|r| r.actor == "user:admin@kommunen.example"));
    let lg = changes
        .iter()
        .find(|r| r.data["group"] == "ledningsgrupp")
        .unwrap();
    assert_eq!(lg.data["added"], json!(["lg.ny@kommunen.example"]));
    assert_eq!(lg.data["removed"], json!(["lg.gammal@kommunen.example"]));
    // The same lists again: no event.
    let head = store.head().seq;
    let (s, _) = put_lists(
        &app,
        &tok["admin"],
        json!({"ciso": ["ciso@kommunen.example"], "ledningsgrupp": ["lg.ny@kommunen.example"], "kommunstyrelsen": ["ks@kommunen.example"]}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(store.head().seq, head);

    // The audit view: the list as it stood before the change, and now.
    let (s, then) = get(
        &app,
        &tok["auditor"],
        &format!("/api/v1/audit/recipients?as_of=seq:{before}"),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        then["lists"]["ledningsgrupp"],
        json!(["lg.gammal@kommunen.example"])
    );
    assert_eq!(then["lists"]["ciso"], json!([]));
    let (_, now) = get(&app, &tok["auditor"], "/api/v1/audit/recipients").await;
    assert_eq!(
        now["lists"]["ledningsgrupp"],
        json!(["lg.ny@kommunen.example"])
    );
    let (s, _) = get(&app, &tok["ledning"], "/api/v1/audit/recipients").await;
    assert_eq!(s, 403);
    // And the auditor's page says the same in Swedish.
    let page = app
        .client
        .get(format!("{}/audit/recipients?as_of=seq:{before}", app.base))
        .bearer_auth(&tok["auditor"])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("lg.gammal@kommunen.example"), "{page}");
    assert!(!page.contains("lg.ny@kommunen.example"), "{page}");
}

#[tokio::test]
async fn an_escalation_with_nobody_to_go_to_is_recorded_shown_and_sent_once_an_address_is_added() {
    let sink = SmtpSink::start(Mode::Normal).await;
    let clock = Arc::new(ManualClock::new(t("2026-03-27T09:30:00Z")));
    let app = bare_app(sink.port(), clock.clone()).await;
    let tok = crate::authz::tokens(&app).await;
    let ready = readyz(&app.base).await;
    assert_eq!(ready["escalation_ready"], false);
    assert_eq!(
        ready["missing_recipients"],
        json!(["ciso", "ledningsgrupp", "kommunstyrelsen"])
    );

    let (reference, id, _) = report(
        &app,
        json!({"title": "Konto kapat", "description": "Någon loggade in"}),
    )
    .await;
    exec(
        &app,
        reference,
        classify(Severity::Major, PersonalDataBreach::Yes, 3),
    )
    .await;
    deliver(&app, &clock).await;
    deliver(&app, &clock).await;
    assert!(sink.messages().is_empty());

    // Never silent: one event per e-mail that had nobody (escalation to both board groups,
    // the GDPR alert to the DPO; triage waits in the register), shown on the page, counted.
    let store = app.app_state.services.store.clone();
    let mut undeliverable = Vec::new();
    for rec in store.read_batch(1, 10_000).unwrap() {
        if rec.event_type == "NotificationUndeliverable" {
            undeliverable.push((
                rec.data["rule"].as_str().unwrap().to_string(),
                rec.data["group"].as_str().unwrap().to_string(),
            ));
        }
    }
    undeliverable.sort();
    assert_eq!(
        undeliverable,
        [
            ("escalation".to_string(), "kommunstyrelsen".to_string()),
            ("escalation".into(), "ledningsgrupp".into()),
            ("gdpr_alert".into(), "dataskyddsombud".into()),
        ]
    );
    assert_eq!(app.app_state.notify.owed_for(id).len(), 3);
    let metrics = reqwest::get(format!("{}/metrics", app.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("avvik_notifications_undeliverable_total"),
        "{metrics}"
    );
    assert!(metrics.contains("avvik_escalation_ready 0"), "{metrics}");

    // The admin adds the board: the owed escalation goes out, with no new classification.
    let (s, v) = put_lists(
        &app,
        &tok["admin"],
        json!({"ledningsgrupp": LG, "kommunstyrelsen": KS}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["missing"], json!(["ciso"]));
    clock.advance(chrono::Duration::minutes(1));
    deliver(&app, &clock).await;
    deliver(&app, &clock).await;
    let m = sink.messages();
    let mut board: Vec<&str> = LG.iter().chain(KS.iter()).copied().collect();
    board.sort();
    assert_eq!(to(&m, "Större avvikelse"), sorted(&board), "once to each");
    assert!(
        to(&m, "Ny avvikelse att bedöma").is_empty(),
        "the CISO list is still empty"
    );
    // Still once after more rounds and a restart of the fold (the same log).
    clock.advance(chrono::Duration::minutes(5));
    deliver(&app, &clock).await;
    assert_eq!(to(&sink.messages(), "Större avvikelse").len(), 4);
    // The e-mails record where they went.
    let sent: Vec<String> = store
        .read_batch(1, 10_000)
        .unwrap()
        .into_iter()
        .map(|r| app.app_state.services.keys.opened(&r))
        .filter(|r| r.event_type == "NotificationSent" && r.data["rule"] == "escalation")
        .map(|r| r.data["recipients"][0].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sent.len(), 4);
    let owed = app.app_state.notify.owed_for(id);
    assert_eq!(owed.iter().filter(|o| o.resolved_at.is_some()).count(), 2);
    let _ = clock.now();
}

/// SIGKILL between "recipient added" and the owed escalation going out: it goes out after
/// the restart, once to each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owed_escalation_survives_sigkill_after_the_address_was_added() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = SmtpSink::closed_port().await;
    let token = crate::helpers::cli_ciso_token(&data);
    // An admin too, for the recipient lists.
    let d = data.to_str().unwrap();
    let mut child = std::process::Command::new(crate::helpers::BIN)
        .args([
            "user",
            "add",
            "--data",
            d,
            "--email",
            "admin@kommunen.example",
            "--name",
            "Admin",
            "--role",
            "admin",
            "--password-stdin",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all("ett långt lösenord 123\n".as_bytes())
            .unwrap();
    }
    assert!(child.wait().unwrap().success());
    let (code, out, err) = crate::helpers::avvik(
        &[
            "token",
            "create",
            "--data",
            d,
            "--user",
            "admin@kommunen.example",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let admin = out.lines().last().unwrap().trim().to_string();
    let port_s = port.to_string();
    let envs = [
        ("AVVIK_MAIL__TRANSPORT", "smtp"),
        ("AVVIK_MAIL__SMTP__HOST", "127.0.0.1"),
        ("AVVIK_MAIL__SMTP__PORT", port_s.as_str()),
        ("AVVIK_MAIL__SMTP__TLS", "none"),
        ("AVVIK_MAIL__SMTP__TIMEOUT_S", "2"),
        ("AVVIK_NOTIFICATIONS__POLL_INTERVAL_S", "1"),
        ("AVVIK_NOTIFICATIONS__RETRY_FIRST_S", "1"),
        ("AVVIK_NOTIFICATIONS__RETRY_MAX_S", "1"),
    ];
    let server = Server::start(&data, &envs);
    let client = reqwest::Client::new();
    let r: Value = client
        .post(format!("{}/api/v1/deviations", server.base))
        .json(&json!({"title": "Intrång", "description": "Servern är angripen"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reference = r["reference"].as_str().unwrap().to_string();
    let r = client
        .post(format!("{}/api/v1/deviations/{reference}/classification", server.base))
        .bearer_auth(&token)
        .json(&json!({"severity": "major", "aspects": {"availability": 4}, "category": "skadlig kod", "personal_data_breach": "no", "nis2_significant": false, "rationale": "Allvarligt"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The mail server is down: adding the board makes the escalation due, but it cannot go.
    let r = client
        .put(format!("{}/api/v1/recipients", server.base))
        .bearer_auth(&admin)
        .json(&json!({"ciso": ["ciso@kommunen.example"], "ledningsgrupp": ["lg@kommunen.example"], "kommunstyrelsen": ["ks@kommunen.example"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ready: Value = readyz(&server.base).await;
    assert_eq!(ready["escalation_ready"], true);
    server.kill9();

    let sink = SmtpSink::start_on(port, Mode::Normal).await;
    let server = Server::start(&data, &envs);
    let m = sink
        .wait_until(Duration::from_secs(20), |m| {
            to(m, "Större avvikelse").len() >= 2
        })
        .await;
    assert_eq!(
        to(&m, "Större avvikelse"),
        sorted(&["ks@kommunen.example", "lg@kommunen.example"])
    );
    // And no more than once each.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(to(&sink.messages(), "Större avvikelse").len(), 2);
    drop(server);
}
