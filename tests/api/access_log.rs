//! The läslogg: a staff member's reading of a deviation is in that deviation's access log,
//! which the auditor (and the DPO and the CISO) can read and a kontakt cannot; when the
//! access log cannot be written, the content is not shown.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::browser::{sign_in, sign_out, Browser};
use crate::helpers::bearer_get as get;
use crate::helpers::TestApp;

const SOC: &str = "Socialtjänsten";
const TITLE: &str = "Journalutdrag på avvägar";
const KONTAKT: &str = "kontakt.soc@kommunen.example";

async fn report(app: &TestApp) -> String {
    let r = app
        .post_json(
            "/api/v1/deviations",
            json!({"title": TITLE, "description": "Ett utdrag skickades till fel mottagare.", "sector": SOC}),
        )
        .await;
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["reference"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn access_log_a_kontakt_reading_via_the_api_is_shown_to_the_auditor_not_to_the_kontakt() {
    let app = TestApp::spawn().await;
    let tok = crate::authz::tokens(&app).await;
    let reference = report(&app).await;

    // Nobody has read it yet.
    let (s, body) = get(
        &app,
        &tok["auditor"],
        &format!("/api/v1/audit/access?reference={reference}"),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let entries = v["entries"].as_array().unwrap();
    // Only the auditor's own look, which is recorded too.
    assert_eq!(entries.len(), 1, "{v:#}");
    assert_eq!(entries[0]["actor"], "user:revisor@kommunen.example");
    assert_eq!(
        entries[0]["what"],
        json!({"kind": "access_log", "filter": "deviation"})
    );

    let (s, _) = get(
        &app,
        &tok["kontakt_soc"],
        &format!("/api/v1/deviations/{reference}"),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = get(
        &app,
        &tok["kontakt_soc"],
        &format!("/api/v1/deviations/{reference}/history"),
    )
    .await;
    assert_eq!(s, 200);

    let (s, body) = get(
        &app,
        &tok["auditor"],
        &format!("/api/v1/audit/access?reference={reference}"),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["reference"], reference.as_str());
    assert_eq!(v["verify"]["ok"], true, "{v:#}");
    let entries = v["entries"].as_array().unwrap();
    let by_kontakt: Vec<&Value> = entries
        .iter()
        .filter(|e| e["actor"] == format!("user:{KONTAKT}"))
        .map(|e| &e["what"])
        .collect();
    // Newest first: the history after the deviation.
    assert_eq!(
        by_kontakt,
        vec![
            &json!({"kind": "history"}),
            &json!({"kind": "deviation_api"})
        ],
        "{v:#}"
    );
    assert!(entries.iter().all(|e| e["reference"] == reference.as_str()));
    // Who and when, never what the deviation says.
    assert!(!body.contains(TITLE), "{body}");

    // Per user: what the kontakt saw.
    let (s, body) = get(
        &app,
        &tok["dso"],
        &format!("/api/v1/audit/access?user={KONTAKT}"),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["entries"].as_array().unwrap().len(), 2, "{v:#}");

    // The kontakt may read the deviation, not who else read it.
    let (s, body) = get(
        &app,
        &tok["kontakt_soc"],
        &format!("/api/v1/audit/access?reference={reference}"),
    )
    .await;
    assert_eq!(s, 403, "{body}");
    let (s, _) = get(
        &app,
        &tok["kontakt_soc"],
        &format!("/api/v1/audit/access?user={KONTAKT}"),
    )
    .await;
    assert_eq!(s, 403);
    // Neither filter: the caller is told to give one.
    let (s, _) = get(&app, &tok["auditor"], "/api/v1/audit/access").await;
    assert_eq!(s, 422);

    // The by-user look is in the log without the address that was searched for.
    let own = app
        .app_state
        .access_log
        .for_actor("user:dso@kommunen.example");
    assert_eq!(own.len(), 1);
    assert_eq!(
        serde_json::to_value(&own[0].what).unwrap(),
        json!({"kind": "access_log", "filter": "user"})
    );
    assert_eq!(own[0].deviation, None);

    // The export is recorded with its range.
    let (s, _) = get(
        &app,
        &tok["auditor"],
        "/api/v1/audit/events?from_seq=1&to_seq=2",
    )
    .await;
    assert_eq!(s, 200);
    let exports: Vec<Value> = app
        .app_state
        .access_log
        .for_actor("user:revisor@kommunen.example")
        .into_iter()
        .map(|e| serde_json::to_value(&e.what).unwrap())
        .filter(|w| w["kind"] == "export")
        .collect();
    assert_eq!(
        exports,
        vec![json!({"kind": "export", "from_seq": 1, "to_seq": 2})]
    );

    // Its own chain, apart from the register's.
    let main_head = app.app_state.services.store.head().seq;
    let access_head = app.app_state.access_log.head().seq;
    assert_eq!(access_head, 6, "every reading above, and only those");
    assert!(app.app_state.access_log.verify().unwrap().ok);
    let (s, _) = get(
        &app,
        &tok["auditor"],
        &format!("/api/v1/audit/access?reference={reference}"),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        app.app_state.services.store.head().seq,
        main_head,
        "reading the access log moves only the access log"
    );

    let ready: Value = app
        .client
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["access_log_degraded"], false, "{ready}");
    let metrics = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("avvik_access_log_records_total"),
        "{metrics}"
    );
}

/// The staff page and the audit page: the kontakt's visit is listed for the auditor, and
/// the deviation page links to it for those who may read it (not for the kontakt).
#[tokio::test]
async fn access_log_pages_list_a_kontakts_visit_for_the_auditor() {
    let app = TestApp::spawn().await;
    crate::authz::tokens(&app).await;
    let reference = report(&app).await;
    let kontakt = crate::staff_ui::login(&app, KONTAKT).await;
    let page = kontakt
        .get(format!("{}/staff/deviations/{reference}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(TITLE));
    assert!(!html.contains("/audit/access"), "no link for a kontakt");
    let r = kontakt
        .get(format!("{}/audit/access?deviation={reference}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    let auditor = crate::staff_ui::login(&app, "revisor@kommunen.example").await;
    let html = auditor
        .get(format!("{}/audit", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("action=\"/audit/access\""),
        "linked from /audit"
    );
    let r = auditor
        .get(format!("{}/audit/access?deviation={reference}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains(KONTAKT), "{html}");
    assert!(html.contains("Öppnade avvikelsens sida"), "{html}");
    assert!(html.contains("obruten"), "{html}");
    assert!(!html.contains(TITLE), "no content on the access log page");
    // By user, as people type it; the page is Swedish and the value escaped.
    let r = auditor
        .get(format!(
            "{}/audit/access?user=%3Cscript%3Ex%3C%2Fscript%3E",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(!html.contains("<script>x"), "{html}");
    assert!(html.contains("Inga läsningar"), "{html}");
    let r = auditor
        .get(format!("{}/audit/access?deviation=AVV-2026-9999", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &std::path::Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        ok.then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A full disk under the access log (a small tmpfs at `<data>/access`, needs root like
/// `faults.rs`): readings answer 503 without the content, for the API and for people, and
/// work again once there is space.
#[tokio::test]
async fn access_log_that_cannot_be_written_withholds_the_content() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let Some(fs) = Tmpfs::mount(&data.join("access"), "4m") else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (not root?)");
        return;
    };
    let d2 = data.clone();
    let app = TestApp::spawn_with(
        move |c| {
            c.store.data_dir = d2;
            c.mail.outbox_dir = c.store.data_dir.join("outbox");
            c.http.rate_limit_per_minute = 0;
        },
        std::sync::Arc::new(avvik::clock::SystemClock),
    )
    .await;
    let tok = crate::authz::tokens(&app).await;
    let reference = report(&app).await;
    let path = format!("/api/v1/deviations/{reference}");
    let (s, body) = get(&app, &tok["kontakt_soc"], &path).await;
    assert_eq!(s, 200);
    assert!(body.contains(TITLE));
    let staff = crate::staff_ui::login(&app, KONTAKT).await;

    // Fill the access log's disk.
    let filler = fs.0.join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=64k", "count=100"])
        .arg(format!("of={}", filler.display()))
        .output();
    let mut refused = None;
    for _ in 0..2000 {
        let r = app
            .client
            .get(format!("{}{path}", app.base))
            .bearer_auth(&tok["kontakt_soc"])
            .send()
            .await
            .unwrap();
        if r.status() != 200 {
            refused = Some((
                r.status().as_u16(),
                r.headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string(),
                r.text().await.unwrap(),
            ));
            break;
        }
    }
    let (status, ctype, body) = refused.expect("readings fail once the access log cannot write");
    assert_eq!(status, 503, "{body}");
    assert_eq!(ctype, "application/problem+json");
    assert!(!body.contains(TITLE), "{body}");
    let problem: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["type"], "urn:avvik:problem:access-log-unavailable");
    assert!(problem["detail"].as_str().unwrap().contains("access log"));

    // People get the Swedish page, without the content.
    let page = staff
        .get(format!("{}/staff/deviations/{reference}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 503);
    let html = page.text().await.unwrap();
    assert!(html.contains("Innehållet kan inte visas just nu"), "{html}");
    assert!(!html.contains(TITLE));
    let metrics = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("avvik_access_log_failures_total"),
        "{metrics}"
    );

    // Space again: readings are recorded and shown again.
    std::fs::remove_file(&filler).unwrap();
    let mut back = false;
    for _ in 0..50 {
        if get(&app, &tok["kontakt_soc"], &path).await.0 == 200 {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "readings work again once the access log can write");
    let dir = app.stop().await;
    drop(fs);
    drop(dir);
}

/// In the browser: a kontakt opens the deviation; the auditor opens it too, follows the
/// page's link to its access log and sees the kontakt's address there.
#[tokio::test]
async fn access_log_in_the_browser_the_auditor_sees_who_opened_a_deviation() {
    let app = TestApp::spawn().await;
    crate::authz::tokens(&app).await;
    let reference = report(&app).await;
    let b = Browser::start(&app.base).await;
    sign_in(&b, KONTAKT, "/staff").await;
    b.goto(&format!("/staff/deviations/{reference}")).await;
    assert!(b.text("h1").await.contains(TITLE));
    sign_out(&b).await;

    sign_in(&b, "revisor@kommunen.example", "/staff").await;
    b.goto(&format!("/staff/deviations/{reference}")).await;
    b.click("#access-log-link").await;
    b.wait_for_path("/audit/access").await;
    b.wait_for("#access-rows").await;
    let rows = b.text("#access-rows").await;
    assert!(rows.contains(KONTAKT), "{rows}");
    assert!(rows.contains("Öppnade avvikelsens sida"), "{rows}");
    assert!(b.text("#access-verify-result").await.contains("obruten"));
    b.assert_accessible("the access log of a deviation").await;
    b.close().await;
}

/// `avvik export` is a reading too: recorded as `system:cli` with its range, in the access
/// log's own chain, and the main log is exported unchanged.
#[tokio::test]
async fn access_log_records_the_cli_export() {
    let app = TestApp::spawn().await;
    report(&app).await;
    let head = app.app_state.services.store.head().seq;
    let dir = app.stop().await;
    let data = crate::helpers::data_path(&dir);
    let (code, out, err) =
        crate::helpers::avvik(&["export", "--data", data.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count() as u64, head);
    let log =
        avvik::access_log::AccessLog::open(&data, std::sync::Arc::new(avvik::clock::SystemClock))
            .unwrap();
    let entries = log.for_actor("system:cli");
    assert_eq!(entries.len(), 1);
    assert_eq!(
        serde_json::to_value(&entries[0].what).unwrap(),
        json!({"kind": "export", "from_seq": 1, "to_seq": head})
    );
    assert!(log.verify().unwrap().ok);
}

/// An attachment download is recorded with the file's hash, not its (possibly personal)
/// name; the list of attachments, which names the files, is a reading too.
#[tokio::test]
async fn access_log_records_an_attachment_by_its_hash_only() {
    let app = TestApp::spawn_with(
        |c| c.intake.token = "intake-test-token-0123".into(),
        std::sync::Arc::new(avvik::clock::SystemClock),
    )
    .await;
    let tok = crate::authz::tokens(&app).await;
    let raw = "From: Olle <olle@kommunen.example>\r\nTo: avvikelse@kommunen.example\r\n\
        Subject: Bilaga\r\nMessage-ID: <acl-1@kommunen.example>\r\nMIME-Version: 1.0\r\n\
        Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nSe bilagan.\r\n\
        --b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"Anna Svensson journal.pdf\"\r\n\r\n%PDF-1.4\r\n--b--\r\n";
    let v: Value = app
        .client
        .post(format!("{}/api/v1/intake/email", app.base))
        .header("content-type", "message/rfc822")
        .bearer_auth("intake-test-token-0123")
        .body(raw)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["outcome"], "created", "{v}");
    let reference = v["reference"].as_str().unwrap();
    let (s, list) = get(
        &app,
        &tok["ciso"],
        &format!("/api/v1/deviations/{reference}/attachments"),
    )
    .await;
    assert_eq!(s, 200);
    let list: Value = serde_json::from_str(&list).unwrap();
    let sha = list[0]["sha256"].as_str().unwrap().to_string();
    let (s, _) = get(
        &app,
        &tok["ciso"],
        &format!("/api/v1/deviations/{reference}/attachments/{sha}"),
    )
    .await;
    assert_eq!(s, 200);
    let (s, body) = get(
        &app,
        &tok["auditor"],
        &format!("/api/v1/audit/access?reference={reference}"),
    )
    .await;
    assert_eq!(s, 200);
    assert!(!body.contains("Svensson"), "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let by_ciso: Vec<&Value> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == "user:ciso@kommunen.example")
        .map(|e| &e["what"])
        .collect();
    assert_eq!(
        by_ciso,
        vec![
            &json!({"kind": "attachment", "sha256": sha}),
            &json!({"kind": "deviation_api"})
        ]
    );
}
