//! Privacy by design: a personnummer is never on disk in the clear, and gallring removes it
//! from every view while the chain still verifies; a crash in the middle of a gallring
//! finishes it at the next start.

use std::path::Path;
use std::sync::Arc;

use avvik::clock::SystemClock;
use avvik::intake::record::Source;
use serde_json::{json, Value};

use crate::helpers::bearer_get as get;
use crate::helpers::{avvik, cli_ciso_token, get_json, Server, TestApp};

const PNR: &str = "19121212-1212";
const ATTACHMENT_SECRET: &str = "Bilagans personnummer 20010101-2382";

/// Every file under `dir` that contains `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_containing(&p, needle));
        } else if let Ok(bytes) = std::fs::read(&p) {
            if bytes.windows(needle.len()).any(|w| w == needle) {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> (u16, Value) {
    let r = app
        .client
        .post(format!("{}{}", app.base, path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn mail_with_attachment(message_id: &str) -> Vec<u8> {
    use base64::Engine;
    let att = base64::engine::general_purpose::STANDARD.encode(ATTACHMENT_SECRET);
    format!(
        "From: Bertil Berg <bertil.berg@kommunen.example>\r\nTo: avvikelse@kommunen.example\r\n\
         Subject: Fel mottagare\r\nMessage-ID: <{message_id}>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nEn lista skickades fel, se bilagan.\r\n\
         --b1\r\nContent-Type: text/plain; name=\"lista.txt\"\r\n\
         Content-Disposition: attachment; filename=\"lista.txt\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{att}\r\n--b1--\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn a_personnummer_is_sealed_on_disk_and_gallring_removes_it_everywhere() {
    let archive = tempfile::tempdir().unwrap();
    let archive_dir = archive.path().to_path_buf();
    let app = TestApp::spawn_with(
        move |c| c.store.archive_dir = archive_dir,
        Arc::new(SystemClock),
    )
    .await;
    let tok = crate::authz::tokens(&app).await;
    let ciso = &tok["ciso"];
    let data = app.app_state.config.store.data_dir.clone();

    let r = app
        .post_json(
            "/api/v1/deviations",
            json!({
                "title": "Journalkopia till fel adress",
                "description": format!("Utskriften med personnummer {PNR} hamnade hos fel mottagare."),
                "personal_data": true,
                "reporter": {"name": "Anna Andersson", "email": "anna.andersson@kommunen.example"},
            }),
        )
        .await;
    let r = r.json::<Value>().await.unwrap();
    let reference = r["reference"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_string();
    let mailed = app
        .app_state
        .intake
        .process(mail_with_attachment("lista@kommunen.example"), Source::Http)
        .await
        .unwrap();
    let mail_ref = mailed.reference.unwrap().to_string();

    // Before gallring: staff see it; the disk, the export and the archive do not.
    let (s, body) = get(&app, ciso, &format!("/api/v1/deviations/{reference}")).await;
    assert_eq!(s, 200);
    assert!(body.contains(PNR), "{body}");
    let (_, atts) = get(
        &app,
        ciso,
        &format!("/api/v1/deviations/{mail_ref}/attachments"),
    )
    .await;
    let atts: Value = serde_json::from_str(&atts).unwrap();
    let sha = atts[0]["sha256"].as_str().unwrap().to_string();
    let (s, file) = get(
        &app,
        ciso,
        &format!("/api/v1/deviations/{mail_ref}/attachments/{sha}"),
    )
    .await;
    assert_eq!((s, file.as_str()), (200, ATTACHMENT_SECRET));
    let (s, export_before) = get(&app, ciso, "/api/v1/audit/events").await;
    assert_eq!(s, 200);
    assert!(!export_before.contains(PNR));
    assert!(!export_before.contains("anna.andersson"));
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    for needle in [
        PNR.as_bytes(),
        ATTACHMENT_SECRET.as_bytes(),
        b"anna.andersson",
    ] {
        assert_eq!(
            files_containing(&data.join("events"), needle),
            Vec::<String>::new()
        );
        assert_eq!(
            files_containing(&data.join("attachments"), needle),
            Vec::<String>::new()
        );
        assert_eq!(
            files_containing(&data.join("keys"), needle),
            Vec::<String>::new()
        );
        assert_eq!(
            files_containing(archive.path(), needle),
            Vec::<String>::new()
        );
    }
    assert!(
        std::fs::read_dir(archive.path()).unwrap().count() > 0,
        "the archive is written"
    );

    // The staff page shows it (to a signed-in CISO).
    let web = crate::staff_ui::login(&app, "ciso@kommunen.example").await;
    let page_of = |web: reqwest::Client, path: String| async move {
        web.get(path).send().await.unwrap().text().await.unwrap()
    };
    let page_url = format!("{}/staff/deviations/{reference}", app.base);
    let page = page_of(web.clone(), page_url.clone()).await;
    assert!(page.contains(PNR), "{page}");

    // Not yet due, and open: gallring is refused.
    let (s, _) = post(
        &app,
        ciso,
        &format!("/api/v1/deviations/{reference}/shred"),
        json!({"decision": "KS 2026/123"}),
    )
    .await;
    assert_eq!(s, 409);
    let before_gallring = app.app_state.services.store.head().seq;
    for r in [&reference, &mail_ref] {
        let (s, _) = post(
            &app,
            ciso,
            &format!("/api/v1/deviations/{r}/close"),
            json!({"resolution": format!("Åtgärdat, {PNR} borttaget ur utskriften")}),
        )
        .await;
        assert_eq!(s, 200);
    }
    // Only the CISO may gallra.
    let (s, _) = post(
        &app,
        &tok["dso"],
        &format!("/api/v1/deviations/{reference}/shred"),
        json!({"decision": "KS 2026/123"}),
    )
    .await;
    assert_eq!(s, 403);
    for r in [&reference, &mail_ref] {
        let (s, d) = post(
            &app,
            ciso,
            &format!("/api/v1/deviations/{r}/shred"),
            json!({"decision": "KS 2026/123"}),
        )
        .await;
        assert_eq!(s, 200, "{d}");
        assert!(
            d["description"].as_str().unwrap().starts_with("gallrad "),
            "{d}"
        );
        assert!(d["description"]
            .as_str()
            .unwrap()
            .ends_with("enligt beslut KS 2026/123"));
    }

    // After: gone from the page, the API, the history, every as-of replay and the export.
    let views = [
        format!("/api/v1/deviations/{reference}"),
        format!("/api/v1/deviations/{mail_ref}"),
        format!("/api/v1/deviations/{reference}/history"),
        format!("/api/v1/audit/deviations/{reference}/history"),
        format!("/api/v1/audit/register?as_of=seq:{before_gallring}"),
        "/api/v1/audit/register".to_string(),
        "/api/v1/audit/events".to_string(),
        format!("/api/v1/deviations/{mail_ref}/attachments"),
    ];
    for v in &views {
        let (s, body) = get(&app, ciso, v).await;
        assert_eq!(s, 200, "{v}");
        for needle in [
            PNR,
            "anna.andersson",
            "Anna Andersson",
            "lista.txt",
            "Journalkopia",
        ] {
            assert!(!body.contains(needle), "{needle} still in {v}: {body}");
        }
    }
    let (s, _) = get(
        &app,
        ciso,
        &format!("/api/v1/deviations/{mail_ref}/attachments/{sha}"),
    )
    .await;
    assert_eq!(s, 404);
    assert_eq!(
        crate::helpers::count_files(&data.join("attachments")),
        0,
        "the attachment files are gone"
    );
    let page = page_of(web.clone(), page_url.clone()).await;
    assert!(!page.contains(PNR));
    assert!(page.contains("gallrad "), "{page}");
    assert!(
        page.contains("Personuppgifter och fritexter är förstörda"),
        "{page}"
    );
    // A reply about a gallrad deviation takes nothing more there: it is a new report.
    let reply = format!(
        "From: Bertil Berg <bertil.berg@kommunen.example>\r\nTo: avvikelse@kommunen.example\r\n\
         Subject: Re: {mail_ref}\r\nMessage-ID: <svar@kommunen.example>\r\n\r\nEn sak till.\r\n"
    );
    let again = app
        .app_state
        .intake
        .process(reply.into_bytes(), Source::Http)
        .await
        .unwrap();
    assert_ne!(again.reference.unwrap().to_string(), mail_ref);
    // The annual report's draft still counts both.
    let (s, draft) = get(&app, ciso, "/api/v1/reports/annual/2026?format=json").await;
    if s == 200 {
        let draft: Value = serde_json::from_str(&draft).unwrap();
        assert!(
            draft["totals"]["deviations"].as_u64().unwrap() >= 2,
            "{draft}"
        );
    } else {
        let year = chrono::Utc::now().format("%Y").to_string();
        let (s, draft) = get(
            &app,
            ciso,
            &format!("/api/v1/reports/annual/{year}?format=json"),
        )
        .await;
        assert_eq!(s, 200, "{draft}");
        let draft: Value = serde_json::from_str(&draft).unwrap();
        assert!(
            draft["totals"]["deviations"].as_u64().unwrap() >= 2,
            "{draft}"
        );
    }

    // The chain verifies without any key, in the store and as an export.
    let (_, export) = get(&app, ciso, "/api/v1/audit/events").await;
    let dir = app.stop().await;
    let data = dir.path().join("data");
    let (code, out, err) = avvik(&["verify", "--data", data.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let file = dir.path().join("export.ndjson");
    std::fs::write(&file, export).unwrap();
    let py = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tools/verify_export.py"
        ))
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
}

/// Reports a deviation with a personnummer and closes it; returns its reference.
pub async fn closed_with_personnummer(base: &str, token: &str) -> String {
    let client = reqwest::Client::new();
    let r: Value = client
        .post(format!("{base}/api/v1/deviations"))
        .json(&json!({"title": "Fel mottagare", "description": format!("Personnummer {PNR}")}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reference = r["reference"].as_str().unwrap().to_string();
    let close = client
        .post(format!("{base}/api/v1/deviations/{reference}/close"))
        .bearer_auth(token)
        .json(&json!({"resolution": "Klart"}))
        .send()
        .await
        .unwrap();
    assert_eq!(close.status(), 200);
    reference
}

/// On a server started with `AVVIK_FAILPOINT=gallring-after-event`: has the deviation
/// gallrad, which kills the server right after the gallring event is stored (before the
/// key is destroyed).
pub async fn gallring_cut_short(base: &str, token: &str, reference: &str) {
    let shred = reqwest::Client::new()
        .post(format!("{base}/api/v1/deviations/{reference}/shred"))
        .bearer_auth(token)
        .json(&json!({"decision": "KS 2026/9"}))
        .send()
        .await;
    assert!(shred.is_err() || !shred.unwrap().status().is_success());
}

#[tokio::test]
async fn a_crash_between_the_gallring_event_and_the_key_destruction_finishes_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = cli_ciso_token(&data);
    let server = Server::start(&data, &[("AVVIK_FAILPOINT", "gallring-after-event")]);
    server.wait_ready();
    let reference = closed_with_personnummer(&server.base, &token).await;
    gallring_cut_short(&server.base, &token, &reference).await;
    server.kill9();
    let pending = data.join("keys/pending");
    assert_eq!(
        std::fs::read_dir(&pending).unwrap().count(),
        1,
        "the intent is there"
    );

    let server = Server::start(&data, &[]);
    server.wait_ready();
    let d = get_json(
        format!("{}/api/v1/deviations/{reference}", server.base),
        &token,
    )
    .await;
    assert!(
        d["description"]
            .as_str()
            .unwrap()
            .ends_with("enligt beslut KS 2026/9"),
        "{d}"
    );
    drop(server);
    assert_eq!(std::fs::read_dir(&pending).unwrap().count(), 0);
    // The key itself is destroyed in its batch file.
    let secret = avvik::secret::Secret::load_or_create(&data).unwrap();
    let keys = avvik::privacy::FileKeyStore::open(&data, &secret).unwrap();
    let (code, out, _) = avvik(&["export", "--data", data.to_str().unwrap()], &[]);
    assert_eq!(code, 0);
    let kid = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|r| avvik::privacy::kid_in(&r["data"]))
        .expect("a sealed record");
    use avvik::privacy::KeyStore;
    assert!(matches!(
        keys.get(kid),
        avvik::privacy::KeyState::Destroyed(t) if t.decision == "KS 2026/9"
    ));
}

#[tokio::test]
async fn an_old_log_migrates_into_a_sealed_one_that_names_the_old_head() {
    use avvik_events::{EventStore, ExpectedVersion, NewEvent, SledEventStore};
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old");
    // A log as written before sealing: the report in the clear.
    {
        let store = SledEventStore::open(&old, avvik::store::store_options()).unwrap();
        let data = json!({
            "reference": "AVV-2026-0001",
            "title": "Gammal avvikelse",
            "description": format!("Personnummer {PNR} i klartext"),
            "occurred_at": null,
            "discovered_at": "2026-02-01T10:00:00Z",
            "sector": null,
            "asset": null,
            "personal_data": true,
            "reporter": {"name": "Anna Andersson", "email": "anna.andersson@kommunen.example"},
            "channel": "web",
            "status_token_hash": "00".repeat(32),
            "reported_at": "2026-02-01T10:00:00Z",
        });
        let now = chrono::Utc::now();
        store
            .append(
                uuid::Uuid::now_v7(),
                ExpectedVersion::NoStream,
                vec![NewEvent::new(
                    "DeviationReported",
                    data,
                    "reporter:anna.andersson@kommunen.example",
                    now,
                )],
            )
            .await
            .unwrap();
    }
    let (code, export, err) = avvik(&["export", "--data", old.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(export.contains(PNR));
    let old_head = {
        let store = SledEventStore::open(&old, avvik::store::store_options()).unwrap();
        store.head().hash
    };
    let file = dir.path().join("old.ndjson");
    std::fs::write(&file, &export).unwrap();
    let new = dir.path().join("new");
    let (code, out, err) = avvik(
        &[
            "migrate",
            "--data",
            new.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&old_head), "{out}");
    assert!(files_containing(&new, PNR.as_bytes()).is_empty());
    assert!(files_containing(&new, b"anna.andersson").is_empty());
    let (code, out, err) = avvik(&["verify", "--data", new.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, replay, err) = avvik(
        &[
            "replay",
            "--data",
            new.to_str().unwrap(),
            "--as-of",
            "seq:1",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        replay.contains(PNR),
        "the new log opens with its keys: {replay}"
    );
    let store = SledEventStore::open(&new, avvik::store::store_options()).unwrap();
    let m = avvik::privacy::migrate::migration_of(&store).expect("a LogMigrated record");
    assert_eq!(
        (m.from_head_hash.as_str(), m.from_records, m.sealed),
        (old_head.as_str(), 1, 1)
    );
}

#[tokio::test]
async fn keys_leave_only_for_a_named_transfer_which_is_recorded() {
    let app = TestApp::spawn().await;
    let r = app
        .post_json(
            "/api/v1/deviations",
            json!({"title": "Överföring", "description": format!("Personnummer {PNR}")}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let dir = app.stop().await;
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let file = dir.path().join("keys.json");
    let f = file.to_str().unwrap();
    let (code, out, err) = avvik(
        &[
            "keys",
            "export",
            "--data",
            d,
            "--transfer",
            "Återläsningstest",
            "--out",
            f,
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let (code, export, _) = avvik(&["export", "--data", d], &[]);
    assert_eq!(code, 0);
    let recorded: Vec<Value> = export
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["type"] == "DataKeysExported")
        .collect();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0]["data"]["transfer"], "Återläsningstest");
    assert!(recorded[0]["data"]["keys"].as_u64().unwrap() >= 1);
    // Another installation: the log alone does not open; with the transferred keys it does.
    let other = dir.path().join("other");
    let log = dir.path().join("log.ndjson");
    std::fs::write(&log, &export).unwrap();
    let o = other.to_str().unwrap();
    let (code, _, err) = avvik(&["import", "--data", o, log.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{err}");
    let (_, replay, _) = avvik(
        &["replay", "--data", o, "--as-of", "2100-01-01T00:00:00Z"],
        &[],
    );
    assert!(!replay.contains(PNR));
    let (code, _, err) = avvik(&["keys", "import", "--data", o, f], &[]);
    assert_eq!(code, 0, "{err}");
    let (code, replay, err) = avvik(
        &["replay", "--data", o, "--as-of", "2100-01-01T00:00:00Z"],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(replay.contains(PNR), "{replay}");
}
