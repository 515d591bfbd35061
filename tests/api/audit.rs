//! Auditors replay history: the register as of several moments of a hand-written
//! scenario, what changed between two of them, accounts as of a moment, the export.

use std::sync::Arc;

use avvik::clock::ManualClock;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use crate::helpers::TestApp;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn get(app: &TestApp, token: &str, path: &str) -> (u16, Value) {
    let r = app
        .client
        .get(format!("{}{}", app.base, path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> Value {
    let r = app
        .client
        .post(format!("{}{}", app.base, path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap()
}

fn enc(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn register_as_of_follows_the_scenario_and_changes_between_moments() {
    let clock = Arc::new(ManualClock::new(t("2026-02-02T08:00:00Z")));
    let app = TestApp::spawn_with(|_| {}, clock.clone()).await;
    let tok = crate::authz::tokens(&app).await;
    let (ciso, auditor) = (tok["ciso"].clone(), tok["auditor"].clone());
    // 09:00 A reported; 10:00 B reported; 11:00 A classified minor; 12:00 A reclassified
    // major + decision; 13:00 B closed; 14:00 A measure added.
    clock.set(t("2026-02-02T09:00:00Z"));
    let a = app.post_json("/api/v1/deviations", json!({"title": "Nätfiske", "description": "Klickade på länk", "sector": "Socialtjänsten"})).await;
    let a = a.json::<Value>().await.unwrap()["reference"]
        .as_str()
        .unwrap()
        .to_string();
    clock.set(t("2026-02-02T10:00:00Z"));
    let b = app
        .post_json(
            "/api/v1/deviations",
            json!({"title": "Borttappad mobil", "description": "På bussen"}),
        )
        .await;
    let b = b.json::<Value>().await.unwrap()["reference"]
        .as_str()
        .unwrap()
        .to_string();
    clock.set(t("2026-02-02T11:00:00Z"));
    let minor = json!({"severity": "minor", "category": "nätfiske", "personal_data_breach": "no", "nis2_significant": false, "rationale": "Inget lösenord angavs"});
    post(
        &app,
        &ciso,
        &format!("/api/v1/deviations/{a}/classification"),
        minor,
    )
    .await;
    clock.set(t("2026-02-02T12:00:00Z"));
    let major = json!({"severity": "major", "aspects": {"confidentiality": 3}, "category": "nätfiske", "personal_data_breach": "investigating", "nis2_significant": false, "rationale": "Lösenord angavs"});
    post(
        &app,
        &ciso,
        &format!("/api/v1/deviations/{a}/classification"),
        major,
    )
    .await;
    post(
        &app,
        &ciso,
        &format!("/api/v1/deviations/{a}/decisions"),
        json!({"text": "Återställ lösenordet"}),
    )
    .await;
    clock.set(t("2026-02-02T13:00:00Z"));
    post(
        &app,
        &ciso,
        &format!("/api/v1/deviations/{b}/close"),
        json!({"resolution": "Mobilen spärrad"}),
    )
    .await;
    clock.set(t("2026-02-02T14:00:00Z"));
    post(
        &app,
        &ciso,
        &format!("/api/v1/deviations/{a}/measures"),
        json!({"description": "Utbildning", "owner": "hr@kommunen.example", "due": "2026-03-01"}),
    )
    .await;

    let state_at = |v: &Value, r: &str| -> Option<Value> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["reference"] == r)
            .cloned()
    };
    // Before anything: empty.
    let (s, v) = get(
        &app,
        &auditor,
        &format!(
            "/api/v1/audit/register?as_of={}",
            enc("2026-02-02T08:30:00Z")
        ),
    )
    .await;
    assert_eq!(s, 200);
    assert!(state_at(&v, &a).is_none() && state_at(&v, &b).is_none());
    // 10:30 (Stockholm 11:30+01:00): A and B received, unclassified.
    let (_, v) = get(
        &app,
        &auditor,
        &format!(
            "/api/v1/audit/register?as_of={}",
            enc("2026-02-02T11:30:00+01:00")
        ),
    )
    .await;
    let da = state_at(&v, &a).unwrap();
    assert_eq!(da["status"], "received");
    assert_eq!(da["severity"], Value::Null);
    assert_eq!(state_at(&v, &b).unwrap()["status"], "received");
    // 11:30: A minor.
    let (_, v) = get(
        &app,
        &auditor,
        &format!(
            "/api/v1/audit/register?as_of={}",
            enc("2026-02-02T11:30:00Z")
        ),
    )
    .await;
    let da = state_at(&v, &a).unwrap();
    assert_eq!(da["severity"], "minor");
    assert_eq!(da["status"], "investigating");
    assert_eq!(da["decisions"].as_array().unwrap().len(), 0);
    // 12:30: A major with a decision; B still open.
    let (_, v12) = get(
        &app,
        &auditor,
        &format!(
            "/api/v1/audit/register?as_of={}",
            enc("2026-02-02T12:30:00Z")
        ),
    )
    .await;
    let da = state_at(&v12, &a).unwrap();
    assert_eq!(da["severity"], "major");
    assert_eq!(da["aspects"]["confidentiality"], 3);
    assert_eq!(da["decisions"][0]["text"], "Återställ lösenordet");
    assert_eq!(da["classifications"].as_array().unwrap().len(), 2);
    assert_eq!(state_at(&v12, &b).unwrap()["status"], "received");
    // Now: B closed, A has a measure.
    let (_, now) = get(&app, &auditor, "/api/v1/audit/register").await;
    assert_eq!(state_at(&now, &b).unwrap()["status"], "closed");
    assert_eq!(
        state_at(&now, &a).unwrap()["measures"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // As of a seq works too.
    let seq12 = v12["as_of_seq"].as_u64().unwrap();
    let (_, vs) = get(
        &app,
        &auditor,
        &format!("/api/v1/audit/register?as_of=seq:{seq12}"),
    )
    .await;
    assert_eq!(vs["items"], v12["items"]);

    // What changed between 10:30 and 13:30: A classified then reclassified and decided, B closed.
    let (s, ch) = get(
        &app,
        &auditor,
        &format!(
            "/api/v1/audit/changes?from={}&to={}",
            enc("2026-02-02T10:30:00Z"),
            enc("2026-02-02T13:30:00Z")
        ),
    )
    .await;
    assert_eq!(s, 200, "{ch}");
    let changes = ch["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2, "{ch}");
    let ca = changes
        .iter()
        .find(|c| c["reference"] == a.as_str())
        .unwrap();
    let kinds: Vec<&str> = ca["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["classified", "decided", "status"]);
    let sev = ca["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field"] == "severity")
        .unwrap();
    assert_eq!(sev["before"], Value::Null);
    assert_eq!(sev["after"], "major");
    assert!(ca["fields"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["field"] != "measures"));
    let cb = changes
        .iter()
        .find(|c| c["reference"] == b.as_str())
        .unwrap();
    assert_eq!(cb["kinds"], json!(["closed"]));
    let st = cb["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field"] == "status")
        .unwrap();
    assert_eq!(
        (st["before"].as_str(), st["after"].as_str()),
        (Some("received"), Some("closed"))
    );
    // One deviation's history: every step with its hash link and the state after it.
    let (_, h) = get(
        &app,
        &auditor,
        &format!("/api/v1/audit/deviations/{a}/history"),
    )
    .await;
    let steps = h.as_array().unwrap();
    let types: Vec<&str> = steps.iter().map(|s| s["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "DeviationReported",
            "DeviationClassified",
            "DeviationClassified",
            // The CISO's first marking as a possible breach is the controller's awareness.
            "AwarenessRecorded",
            "DecisionRecorded",
            "MeasureAdded"
        ]
    );
    assert_eq!(steps[1]["state"]["severity"], "minor");
    assert_eq!(steps[2]["state"]["severity"], "major");
    assert_eq!(steps[2]["actor"], "user:ciso@kommunen.example");
    // Bad input and the wrong role.
    let (s, _) = get(&app, &auditor, "/api/v1/audit/register?as_of=igår").await;
    assert_eq!(s, 422);
    let (s, _) = get(&app, &tok["kontakt_soc"], "/api/v1/audit/register").await;
    assert_eq!(s, 403);
    let (s, _) = get(&app, &tok["admin"], "/api/v1/audit/verify").await;
    assert_eq!(s, 403);
}

#[tokio::test]
async fn accounts_as_of_and_export_ranges() {
    let clock = Arc::new(ManualClock::new(t("2026-05-01T08:00:00Z")));
    let app = TestApp::spawn_with(|_| {}, clock.clone()).await;
    let tok = crate::authz::tokens(&app).await;
    let auditor = tok["auditor"].clone();
    clock.set(t("2026-05-02T08:00:00Z"));
    let svc = &app.app_state.services;
    let id = avvik::auth::accounts::account_id(
        &avvik::domain::EmailAddress::parse("dso@kommunen.example").unwrap(),
    );
    svc.grant_role(id, avvik::auth::Role::Ciso, vec![], "test")
        .await
        .unwrap();
    let (_, before) = get(
        &app,
        &auditor,
        &format!(
            "/api/v1/audit/accounts?as_of={}",
            enc("2026-05-01T12:00:00Z")
        ),
    )
    .await;
    let (_, after) = get(&app, &auditor, "/api/v1/audit/accounts").await;
    let roles = |v: &Value| -> Vec<String> {
        let a = v["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["email"] == "dso@kommunen.example")
            .unwrap();
        a["roles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["role"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(roles(&before), ["dso"]);
    assert_eq!(roles(&after), ["ciso", "dso"]);

    for i in 0..5 {
        clock.set(t("2026-05-03T08:00:00Z") + Duration::hours(i));
        app.post_json(
            "/api/v1/deviations",
            json!({"title": format!("R{i}"), "description": "d"}),
        )
        .await;
    }
    let head = svc.store.head();
    let r = app
        .client
        .get(format!("{}/api/v1/audit/events", app.base))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    assert_eq!(
        r.headers()["x-avvik-last-seq"].to_str().unwrap(),
        head.seq.to_string()
    );
    assert_eq!(
        r.headers()["x-avvik-last-hash"].to_str().unwrap(),
        head.hash
    );
    let body = r.text().await.unwrap();
    assert_eq!(body.lines().count() as u64, head.seq);
    let report =
        avvik_events::verify_export(&mut body.as_bytes(), Some((head.seq, head.hash.clone())))
            .unwrap();
    assert!(report.ok);
    // A time range: reports at 09:00..=10:00 are the 2nd and 3rd.
    let r = app
        .client
        .get(format!(
            "{}/api/v1/audit/events?from={}&to={}",
            app.base,
            enc("2026-05-03T09:00:00Z"),
            enc("2026-05-03T10:00:00Z")
        ))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    // The export holds the stored (sealed) records; opened with the keys they read as before.
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(records.iter().all(|r| r["data"].get("title").is_none()));
    let titles: Vec<String> =
        crate::helpers::opened(&app.app_state.config.store.data_dir, &records)
            .iter()
            .map(|r| r["data"]["title"].as_str().unwrap().to_string())
            .collect();
    assert_eq!(titles, ["R1", "R2"]);
    // A seq range.
    let r = app
        .client
        .get(format!(
            "{}/api/v1/audit/events?from_seq=2&to_seq=3",
            app.base
        ))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap();
    let seqs: Vec<u64> = r
        .text()
        .await
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, [2, 3]);
    // Staff without the audit right cannot export.
    let r = app
        .client
        .get(format!("{}/api/v1/audit/events", app.base))
        .bearer_auth(&tok["ledning"])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}
