//! E-mail intake end to end: messages delivered to a real Dovecot become deviations and
//! comments and leave the inbox; the upload endpoint and the `avvik intake` pipe; the
//! quarantine and attachments for staff.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use avvik::clock::{ManualClock, SystemClock};
use avvik::config::ImapMark;
use avvik::domain::Reference;
use avvik::intake::imap::ImapCollector;
use avvik::intake::{IntakeResult, Outcome};
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::helpers::{TestApp, BIN};
use crate::intake_corpus::{corpus_message, expectations, CORPUS_LIMITS};
use crate::intake_dovecot::Dovecot;

const TOKEN: &str = "intake-token-0123456789abcdef";

fn collector(app: &TestApp, d: &Dovecot) -> ImapCollector {
    ImapCollector::new(app.app_state.intake.clone(), d.imap_config())
}

fn reference(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

async fn get(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.client
        .get(format!("{}{}", app.base, path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn message(
    from: &str,
    subject: &str,
    message_id: Option<&str>,
    extra: &str,
    body: &str,
) -> Vec<u8> {
    let mid = message_id
        .map(|m| format!("Message-ID: <{m}>\r\n"))
        .unwrap_or_default();
    format!(
        "From: {from}\r\nTo: avvikelse@kommunen.example\r\nSubject: {subject}\r\n{mid}{extra}\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn the_corpus_through_dovecot_gives_the_expected_outcomes() {
    let dovecot = Dovecot::start();
    let clock = Arc::new(ManualClock::new(
        DateTime::parse_from_rfc3339("2026-03-10T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc),
    ));
    let app = TestApp::spawn_with(
        |c| {
            c.intake.max_message_bytes = CORPUS_LIMITS.max_message_bytes;
            c.intake.max_attachment_bytes = CORPUS_LIMITS.max_attachment_bytes;
        },
        clock,
    )
    .await;
    let tok = crate::authz::tokens(&app).await;
    let expected = expectations();
    let files: Vec<&str> = expected
        .iter()
        .map(|e| e["file"].as_str().unwrap())
        .collect();
    let raw: Vec<Vec<u8>> = files.iter().map(|f| corpus_message(f)).collect();
    dovecot.append_all("INBOX", &raw).await;
    assert_eq!(dovecot.count("INBOX").await, raw.len());

    let report = collector(&app, &dovecot).poll_once().await.unwrap();
    assert_eq!(report.handled.len(), raw.len(), "{:?}", report.handled);
    let mut failures = Vec::new();
    for ((_, got), e) in report.handled.iter().zip(&expected) {
        let file = e["file"].as_str().unwrap();
        let want = IntakeResult {
            outcome: serde_json::from_value(e["outcome"].clone()).unwrap(),
            reference: e["reference"].as_str().map(reference),
        };
        if *got != want {
            failures.push(format!("{file}: got {got:?}, expected {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every message left the inbox, each exactly once.
    assert_eq!(dovecot.count("INBOX").await, 0);
    assert_eq!(dovecot.count("Processed").await, raw.len());

    // The register shows what the messages said.
    {
        let reg = app.app_state.services.register.read();
        for e in &expected {
            if e["outcome"] != "created" {
                continue;
            }
            let d = reg
                .by_reference(reference(e["reference"].as_str().unwrap()))
                .unwrap();
            assert_eq!(d.channel, avvik::domain::Channel::Email);
            if let Some(t) = e["title"].as_str() {
                assert_eq!(d.title, t);
            }
            if let Some(r) = e["reporter"].as_str() {
                assert_eq!(d.reporter.as_ref().unwrap().email.as_str(), r);
            }
            // The Date header is the discovery time (within the last 30 days).
            assert!(d.discovered_at < d.reported_at, "{}", e["file"]);
        }
        let first = reg.by_reference(reference("AVV-2026-0001")).unwrap();
        assert_eq!(first.comments.len(), 2, "{:?}", first.comments);
        let by_reporter = &first.comments[0];
        assert!(by_reporter.from_reporter && !by_reporter.to_reporter);
        assert_eq!(by_reporter.text, "Datorn har nu spärrats av IT-supporten.");
        // No trusted authserv-id is configured: the senders are not verified, so the
        // replies are kept as unverified e-mail, never in the CISO's name.
        assert!(by_reporter.unverified_email);
        let by_staff = &first.comments[1];
        assert!(!by_staff.from_reporter);
        assert!(by_staff.unverified_email);
        assert_eq!(by_staff.by, "unverified-email:ciso@kommunen.example");
        assert!(by_staff.text.starts_with("Polisanmälan är gjord."));
        assert!(!by_staff.text.contains("Original Message"));
        // References stay gap-free: ignored, quarantined and duplicate mail took none.
        assert_eq!(reg.len(), 20);
    }

    // Attachments: listed on the deviation, downloadable as a download, same bytes.
    let ciso = tok["ciso"].as_str();
    let r = get(&app, ciso, "/api/v1/deviations/AVV-2026-0006/attachments").await;
    assert_eq!(r.status(), 200);
    let list: Value = r.json().await.unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["filename"], "logg.pdf");
    let sha = list[0]["sha256"].as_str().unwrap().to_string();
    let r = get(
        &app,
        ciso,
        &format!("/api/v1/deviations/AVV-2026-0006/attachments/{sha}"),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/octet-stream");
    assert!(r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment; filename=\"logg.pdf\""));
    let bytes = r.bytes().await.unwrap();
    assert!(bytes.starts_with(b"%PDF-1.4"));
    assert_eq!(avvik::intake::parse::sha256_hex(&bytes), sha);
    // Not through another deviation, not for someone who cannot see it.
    let r = get(
        &app,
        ciso,
        &format!("/api/v1/deviations/AVV-2026-0002/attachments/{sha}"),
    )
    .await;
    assert_eq!(r.status(), 404);
    let r = get(
        &app,
        &tok["kontakt_bou"],
        &format!("/api/v1/deviations/AVV-2026-0006/attachments/{sha}"),
    )
    .await;
    assert_eq!(r.status(), 404);
    let r = get(&app, ciso, "/api/v1/deviations/AVV-2026-0022/attachments").await;
    assert_eq!(r.status(), 404);

    // The quarantine: four messages, raw bytes kept, for the CISO only.
    let r = get(&app, ciso, "/api/v1/intake/quarantine").await;
    assert_eq!(r.status(), 200);
    let q: Value = r.json().await.unwrap();
    let items = q["items"].as_array().unwrap();
    assert_eq!(items.len(), 4, "{q}");
    assert_eq!(q["open"], 4);
    let reasons: Vec<&str> = items
        .iter()
        .map(|i| i["reason"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "too_large",
            "attachment_too_large",
            "unparseable",
            "no_sender"
        ]
    );
    assert!(items.iter().all(|i| i["notify_role"] == "ciso"));
    // The raw bytes as the server delivered them (IMAP has no NULs: Dovecot replaced
    // the garbage's), checked against the hash the event recorded.
    for item in items {
        let id = item["id"].as_str().unwrap();
        let r = get(&app, ciso, &format!("/api/v1/intake/quarantine/{id}/raw")).await;
        assert_eq!(r.status(), 200);
        let bytes = r.bytes().await.unwrap();
        assert_eq!(
            avvik::intake::parse::sha256_hex(&bytes),
            item["raw_sha256"].as_str().unwrap()
        );
        assert_eq!(bytes.len() as u64, item["raw_size"].as_u64().unwrap());
    }
    let no_sender = items
        .iter()
        .find(|i| i["reason"]["kind"] == "no_sender")
        .unwrap();
    let r = get(
        &app,
        ciso,
        &format!(
            "/api/v1/intake/quarantine/{}/raw",
            no_sender["id"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(
        r.bytes().await.unwrap().as_ref(),
        corpus_message("23-no-sender.eml").as_slice()
    );
    let garbage = items
        .iter()
        .find(|i| i["reason"]["kind"] == "unparseable")
        .unwrap();
    let id = garbage["id"].as_str().unwrap();
    for who in ["kontakt_bou", "dso", "auditor"] {
        let r = get(&app, &tok[who], "/api/v1/intake/quarantine").await;
        assert_eq!(r.status(), 403, "{who}");
    }
    let r = app
        .client
        .post(format!(
            "{}/api/v1/intake/quarantine/{id}/resolve",
            app.base
        ))
        .bearer_auth(ciso)
        .json(&serde_json::json!({"note": "Skräp, inget att göra."}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["resolved"]["note"], "Skräp, inget att göra.");
    assert_eq!(v["resolved"]["by"], "user:ciso@kommunen.example");
    let q: Value = get(&app, ciso, "/api/v1/intake/quarantine")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(q["open"], 3);

    // Nothing is left to do; the same mail delivered again is a duplicate.
    let again = collector(&app, &dovecot).poll_once().await.unwrap();
    assert!(again.handled.is_empty());
    dovecot.append_all("INBOX", &raw[..3]).await;
    let again = collector(&app, &dovecot).poll_once().await.unwrap();
    assert!(again
        .handled
        .iter()
        .all(|(_, r)| r.outcome == Outcome::Duplicate));
    assert_eq!(app.app_state.services.register.read().len(), 20);

    // Ignored mail is counted and logged, never answered.
    let metrics = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "avvik_intake_ignored_total{reason=\"delivery_report\"}",
        "avvik_intake_messages_total{source=\"imap\",outcome=\"created\"}",
        "avvik_intake_quarantine_open",
    ] {
        assert!(metrics.contains(needle), "{needle} in\n{metrics}");
    }

    release_quarantined_mail(&app, &tok, items).await;
}

/// The CISO releases quarantined mail: a message held only for its size is filed as it
/// would have been, attachment included; one without a sender becomes a deviation made
/// from what is known of it; a handled one cannot be released; others may not.
async fn release_quarantined_mail(
    app: &TestApp,
    tok: &HashMap<&'static str, String>,
    items: &[Value],
) {
    let ciso = &tok["ciso"];
    let id_of = |kind: &str| {
        items.iter().find(|i| i["reason"]["kind"] == kind).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let release = |who: &str, id: &str, body: Option<Value>| {
        let r = app
            .client
            .post(format!(
                "{}/api/v1/intake/quarantine/{id}/release",
                app.base
            ))
            .bearer_auth(&tok[who]);
        match body {
            Some(b) => r.json(&b),
            None => r,
        }
        .send()
    };
    let before = app.app_state.services.register.read().len();

    let big = id_of("attachment_too_large");
    let r = release("kontakt_bou", &big, None).await.unwrap();
    assert_eq!(r.status(), 403);
    let r = release(
        "ciso",
        &big,
        Some(serde_json::json!({"note": "Loggen behövs."})),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["outcome"], "created", "{v}");
    let big_ref = v["reference"].as_str().unwrap().to_string();
    {
        let reg = app.app_state.services.register.read();
        let d = reg.by_reference(reference(&big_ref)).unwrap();
        assert_eq!(d.title, "Stor logg bifogad");
        assert_eq!(d.channel, avvik::domain::Channel::Email);
        assert_eq!(
            d.reporter.as_ref().unwrap().email.as_str(),
            "ulf.berg@kommunen.example"
        );
    }
    let r = get(
        app,
        ciso,
        &format!("/api/v1/deviations/{big_ref}/attachments"),
    )
    .await;
    assert_eq!(r.status(), 200);
    let att: Value = r.json().await.unwrap();
    assert!(
        att.as_array()
            .unwrap()
            .iter()
            .any(|a| a["filename"] == "dump.bin"),
        "{att}"
    );

    let anon = id_of("no_sender");
    let r = release("ciso", &anon, None).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["outcome"], "created", "{v}");
    let anon_ref = v["reference"].as_str().unwrap().to_string();
    {
        let reg = app.app_state.services.register.read();
        let d = reg.by_reference(reference(&anon_ref)).unwrap();
        assert_eq!(d.title, "Inget avsändarfält");
        assert!(d.reporter.is_none());
        assert!(d.description.contains("karantänen"), "{}", d.description);
        let first = app.app_state.services.store.read_stream(d.id, 1).unwrap();
        assert_eq!(first[0].actor, "user:ciso@kommunen.example");
    }

    // Handled now: both resolved with a note naming the deviation; not released twice.
    let q: Value = get(app, ciso, "/api/v1/intake/quarantine")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(q["open"], 1, "{q}");
    for (id, reference) in [(&big, &big_ref), (&anon, &anon_ref)] {
        let entry = q["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == id.as_str())
            .unwrap();
        let note = entry["resolved"]["note"].as_str().unwrap();
        assert!(note.contains(reference.as_str()), "{note}");
        assert_eq!(entry["resolved"]["by"], "user:ciso@kommunen.example");
        let r = release("ciso", id, None).await.unwrap();
        assert_eq!(r.status(), 409);
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["detail_sv"], "Meddelandet är redan hanterat.");
    }
    assert!(q["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["id"] == big.as_str()
            && i["resolved"]["note"]
                .as_str()
                .unwrap()
                .ends_with("Loggen behövs.")));
    let r = release("ciso", &id_of("unparseable"), None).await.unwrap();
    assert_eq!(r.status(), 409, "resolved earlier");
    let r = release("ciso", &uuid::Uuid::now_v7().to_string(), None)
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(app.app_state.services.register.read().len(), before + 2);
}

/// Waits for the receipt avvik e-mails the reporter; returns its Message-ID.
async fn receipt_message_id(app: &TestApp, deviation: uuid::Uuid) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let found = avvik_events::read_all(app.app_state.services.store.as_ref(), 1)
            .filter_map(Result::ok)
            .find(|r| {
                r.event_type == "NotificationSent"
                    && r.data["deviation_id"] == deviation.to_string()
                    && r.data["rule"] == "receipt"
            });
        if let Some(r) = found {
            return r.data["message_id"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "no receipt was sent");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn replies_to_avvik_mail_thread_by_message_id_and_flag_mode_keeps_mail() {
    let dovecot = Dovecot::start();
    let app = TestApp::spawn_with(|_| {}, Arc::new(SystemClock)).await;
    let mut cfg = dovecot.imap_config();
    cfg.mark = ImapMark::Flag;
    let collector = ImapCollector::new(app.app_state.intake.clone(), cfg);

    let first = message(
        "Anna Svensson <anna@kommunen.example>",
        "Phishing-sms till min jobbtelefon",
        Some("first@kommunen.example"),
        "",
        "Jag fick ett sms med en länk.",
    );
    // The same message twice in the mailbox: one deviation.
    dovecot
        .append_all("INBOX", &[first.clone(), first.clone()])
        .await;
    let r = collector.poll_once().await.unwrap();
    let outcomes: Vec<Outcome> = r.handled.iter().map(|(_, r)| r.outcome).collect();
    assert_eq!(outcomes, [Outcome::Created, Outcome::Duplicate]);
    let created = r.handled[0].1.reference.unwrap();
    assert_eq!(r.handled[1].1.reference, Some(created));
    let d = app
        .app_state
        .services
        .register
        .read()
        .by_reference(created)
        .cloned()
        .unwrap();
    // The reporter got the receipt through the outbox; a reply to it carries its id.
    let receipt = receipt_message_id(&app, d.id).await;
    let receipt_eml = std::fs::read_dir(app.dir.path().join("data/outbox"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .find(|m| m.contains(&receipt))
        .expect("the receipt was written to the outbox");
    assert!(receipt_eml.contains(&created.to_string()));
    let reply = message(
        "anna@kommunen.example",
        "Re: Tack",
        Some("reply-1@kommunen.example"),
        &format!("In-Reply-To: {receipt}\r\nReferences: {receipt}\r\n"),
        "Jag har också fått ett likadant mejl.\r\n\r\nOn Mon, 2 Mar 2026 avvik wrote:\r\n> Vi har tagit emot din rapport",
    );
    let stranger = message(
        "mallory@example.org",
        "Re: Tack",
        Some("reply-2@example.org"),
        &format!("In-Reply-To: {receipt}\r\n"),
        "Berätta mer om ärendet.",
    );
    dovecot.append_all("INBOX", &[reply, stranger]).await;
    let r = collector.poll_once().await.unwrap();
    assert_eq!(r.handled.len(), 2);
    assert_eq!(r.handled[0].1.outcome, Outcome::Comment);
    assert_eq!(r.handled[0].1.reference, Some(created));
    assert_eq!(r.handled[1].1.outcome, Outcome::Created);
    assert_ne!(r.handled[1].1.reference, Some(created));
    let d = app
        .app_state
        .services
        .register
        .read()
        .by_reference(created)
        .cloned()
        .unwrap();
    assert_eq!(d.comments.len(), 1);
    assert_eq!(d.comments[0].text, "Jag har också fått ett likadant mejl.");
    assert_eq!(d.comments[0].by, "reporter");
    // Flag mode: the mail stays in the inbox, flagged, and is not handled again.
    assert_eq!(dovecot.count("INBOX").await, 4);
    assert_eq!(dovecot.count("Processed").await, 0);
    assert!(collector.poll_once().await.unwrap().handled.is_empty());
}

fn upload(app: &TestApp, body: Vec<u8>) -> reqwest::RequestBuilder {
    app.client
        .post(format!("{}/api/v1/intake/email", app.base))
        .header("content-type", "message/rfc822")
        .body(body)
}

/// `avvik intake` with `stdin`; returns (exit code, stderr).
fn pipe(url: &str, token: &str, stdin: &[u8]) -> (i32, String) {
    let mut child = Command::new(BIN)
        .args(["intake", "--url", url, "--timeout", "10"])
        .env("AVVIK_INTAKE__TOKEN", token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn upload_endpoint_and_mta_pipe() {
    // Off without a token.
    let off = TestApp::spawn().await;
    let r = upload(&off, message("a@kommunen.example", "x", None, "", "y"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    drop(off);

    // Default limits: a message far above http.body_limit (64 KiB) with an attachment.
    let roomy = TestApp::spawn_with(|c| c.intake.token = TOKEN.into(), Arc::new(SystemClock)).await;
    let blob: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let encoded = {
        use std::fmt::Write as _;
        // A hex dump keeps the test free of a base64 encoder; the part is text.
        blob.iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            if s.len() % 78 == 76 {
                s.push_str("\r\n");
            }
            s
        })
    };
    let big = format!(
        "From: Stina <stina@kommunen.example>\r\nSubject: Stor bilaga\r\nMessage-ID: <big-1@kommunen.example>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
         Content-Type: text/plain\r\n\r\nSe bilagan.\r\n--b\r\nContent-Type: text/plain; name=dump.txt\r\n\
         Content-Disposition: attachment; filename=dump.txt\r\n\r\n{encoded}\r\n--b--\r\n"
    );
    assert!(big.len() > 500_000);
    let r = upload(&roomy, big.into_bytes())
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["outcome"], "created");
    let d = roomy
        .app_state
        .services
        .register
        .read()
        .by_reference(reference(v["reference"].as_str().unwrap()))
        .cloned()
        .unwrap();
    let listed = roomy
        .app_state
        .intake
        .view()
        .read()
        .attachments(d.id)
        .to_vec();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].attachment.filename, "dump.txt");
    assert!(listed[0].attachment.size > 600_000);
    drop(roomy);

    let app = TestApp::spawn_with(
        |c| {
            c.intake.token = TOKEN.into();
            c.intake.max_message_bytes = 2048;
            c.intake.max_attachment_bytes = 1024;
        },
        Arc::new(SystemClock),
    )
    .await;
    let m = message(
        "Bo Ek <bo.ek@kommunen.example>",
        "Lånedator stulen",
        Some("upload-1@kommunen.example"),
        "",
        "Datorn stals ur bilen.",
    );
    for bad in [None, Some("fel-token-0123456789")] {
        let mut req = upload(&app, m.clone());
        if let Some(t) = bad {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }
    let r = app
        .client
        .post(format!("{}/api/v1/intake/email", app.base))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"title": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);

    let r = upload(&app, m.clone())
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["outcome"], "created");
    let created = v["reference"].as_str().unwrap().to_string();
    let r = upload(&app, m.clone())
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v,
        serde_json::json!({"outcome": "duplicate", "reference": created})
    );
    // Over the limit: quarantined; over four times the limit: refused.
    let big = message("a@kommunen.example", "stor", None, "", &"x".repeat(3000));
    let r = upload(&app, big).bearer_auth(TOKEN).send().await.unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v, serde_json::json!({"outcome": "quarantined"}));
    let huge = message("a@kommunen.example", "enorm", None, "", &"x".repeat(9000));
    let r = upload(&app, huge.clone())
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let auto = message(
        "b@kommunen.example",
        "Frånvaro",
        None,
        "Auto-Submitted: auto-replied\r\n",
        "Borta",
    );
    let v: Value = upload(&app, auto)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v, serde_json::json!({"outcome": "ignored"}));

    // The MTA pipe: exit codes an MTA acts on.
    let base = app.base.clone();
    let piped = message(
        "cilla@kommunen.example",
        "Via MTA",
        Some("pipe-1@kommunen.example"),
        "",
        "Rapport via aliaset.",
    );
    let p = piped.clone();
    let b = base.clone();
    let (code, err) = tokio::task::spawn_blocking(move || pipe(&b, TOKEN, &p))
        .await
        .unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("\"created\""), "{err}");
    let (b, p) = (base.clone(), piped.clone());
    let (code, err) = tokio::task::spawn_blocking(move || pipe(&b, TOKEN, &p))
        .await
        .unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("\"duplicate\""), "{err}");
    let (b, p) = (base.clone(), piped.clone());
    let (code, _) = tokio::task::spawn_blocking(move || pipe(&b, "fel-token-0123456789", &p))
        .await
        .unwrap();
    assert_eq!(code, 75, "a refused token defers");
    let b = base.clone();
    let (code, _) = tokio::task::spawn_blocking(move || pipe(&b, TOKEN, &huge))
        .await
        .unwrap();
    assert_eq!(code, 65, "a message the server refuses bounces");
    // Nothing listens there: the MTA must retry later.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let p = piped.clone();
    let (code, err) = tokio::task::spawn_blocking(move || pipe(&dead, TOKEN, &p))
        .await
        .unwrap();
    assert_eq!(code, 75, "{err}");
    let reg = app.app_state.services.register.read();
    let titles: HashMap<String, String> = reg
        .list()
        .iter()
        .map(|d| {
            (
                d.title.clone(),
                d.reporter.as_ref().unwrap().email.to_string(),
            )
        })
        .collect();
    assert_eq!(titles.len(), 2, "{titles:?}");
    assert_eq!(titles["Via MTA"], "cilla@kommunen.example");
}

#[tokio::test]
async fn the_running_collector_picks_up_new_mail_at_once_with_idle() {
    let dovecot = Dovecot::start();
    let mut cfg = dovecot.imap_config();
    // Polling alone would take a minute: only IDLE can make this quick.
    cfg.interval_s = 60;
    let app = TestApp::spawn_with(
        move |c| {
            c.intake.imap = cfg;
            c.intake.max_message_bytes = 4096;
            c.intake.max_attachment_bytes = 1024;
        },
        Arc::new(SystemClock),
    )
    .await;
    // Let the collector log in, find the empty inbox and start idling.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let normal = message(
        "Gun Ek <gun.ek@kommunen.example>",
        "Kodlås ur funktion",
        Some("idle-1@kommunen.example"),
        "",
        "Kodlåset till arkivet öppnar för alla koder.",
    );
    // Larger than four times max_message_bytes: only its headers are fetched.
    let huge = message(
        "Gun Ek <gun.ek@kommunen.example>",
        "Jättestor logg",
        Some("idle-2@kommunen.example"),
        "",
        &"logg ".repeat(5000),
    );
    let started = Instant::now();
    dovecot.append_all("INBOX", &[normal, huge]).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while dovecot.count("INBOX").await > 0 {
        assert!(Instant::now() < deadline, "new mail was not picked up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(dovecot.count("Processed").await, 2);
    {
        let reg = app.app_state.services.register.read();
        assert_eq!(reg.len(), 1);
        assert_eq!(reg.list()[0].title, "Kodlås ur funktion");
    }
    let kept = {
        let view = app.app_state.intake.view().read();
        let q = view.quarantine();
        assert_eq!(q.len(), 1);
        q[0].record.clone()
    };
    assert_eq!(kept.reason.as_str(), "headers_only");
    assert_eq!(kept.message.subject.as_deref(), Some("Jättestor logg"));
    assert!(kept.message.raw_size > 16384);
    let stored = app
        .app_state
        .intake
        .blobs()
        .read_quarantined(&kept.message.raw_sha256)
        .unwrap();
    assert!(stored.len() < 1024 && stored.ends_with(b"\r\n\r\n"));
    // Shutdown stops the idling collector promptly.
    let stop = Instant::now();
    app.stop().await;
    assert!(stop.elapsed() < Duration::from_secs(5));
}
