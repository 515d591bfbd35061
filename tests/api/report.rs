use serde_json::{json, Value};

use crate::helpers::TestApp;

#[tokio::test]
async fn a_report_is_answered_201_with_reference_and_private_token() {
    let app = TestApp::spawn().await;
    let year = avvik::domain::stockholm_year(chrono::Utc::now());
    let r = app
        .post_json(
            "/api/v1/deviations",
            json!({
                "title": "Nätfiskemejl klickat",
                "description": "Jag klickade på en länk i ett mejl som såg ut att komma från IT.",
                "occurred_at": "2026-01-05T08:00:00+01:00",
                "discovered_at": "2026-01-05T09:00:00+01:00",
                "sector": "Socialtjänsten",
                "asset": "Outlook",
                "personal_data": true,
                "reporter": {"name": "Anna Andersson", "email": "anna@kommunen.example"}
            }),
        )
        .await;
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        format!("/api/v1/deviations/AVV-{year}-0001")
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["reference"], format!("AVV-{year}-0001"));
    let token = body["status_token"].as_str().unwrap();
    assert!(token.len() >= 32, "at least 128 bits");
    assert!(!token.contains("AVV"));
    // Anonymous, second report: next number.
    let r = app
        .post_json(
            "/api/v1/deviations",
            json!({"title": "Borttappad dator", "description": "Lämnad på tåget."}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["reference"], format!("AVV-{year}-0002"));
    // The register holds both, and the token hash (not the token) is stored.
    let reg = app.app_state.services.register.read();
    assert_eq!(reg.len(), 2);
    let d = reg
        .by_token_hash(&avvik::service::token_hash(token))
        .expect("found by token hash");
    assert_eq!(d.reference.to_string(), format!("AVV-{year}-0001"));
    assert_eq!(d.sector.as_deref(), Some("Socialtjänsten"));
    assert!(d.personal_data_suspected);
}

#[tokio::test]
async fn invalid_reports_get_422_problem_json_naming_each_field() {
    let app = TestApp::spawn().await;
    let r = app
        .post_json(
            "/api/v1/deviations",
            json!({"title": "", "description": 5, "discovered_at": "igår", "reporter": {"name": "A", "email": "inte-en-adress"}}),
        )
        .await;
    assert_eq!(r.status(), 422);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: Value = r.json().await.unwrap();
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["title", "description", "discovered_at", "reporter.email"]
    );
    // Too long a title.
    let r = app
        .post_json(
            "/api/v1/deviations",
            json!({"title": "x".repeat(201), "description": "d"}),
        )
        .await;
    assert_eq!(r.status(), 422);
    // Declared JSON but not JSON: 400, still problem+json.
    let r = app
        .client
        .post(format!("{}/api/v1/deviations", app.base))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    // Not declared JSON: 415, problem+json.
    let r = app
        .client
        .post(format!("{}/api/v1/deviations", app.base))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    // Over the body limit: refused before parsing.
    let r = app
        .post_json(
            "/api/v1/deviations",
            json!({"title": "t", "description": "x".repeat(100_000)}),
        )
        .await;
    assert_eq!(r.status(), 413);
    // Nothing was stored.
    assert_eq!(app.app_state.services.store.head().seq, 0);
}

#[tokio::test]
async fn health_and_readiness() {
    let app = TestApp::spawn().await;
    let r = app
        .client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r: Value = app
        .client
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["ready"], true);
}

#[tokio::test]
async fn concurrent_reports_get_gap_free_references() {
    let app = TestApp::spawn().await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let client = app.client.clone();
        let url = format!("{}/api/v1/deviations", app.base);
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .json(&json!({"title": format!("Avvikelse {i}"), "description": "test"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            let v: Value = r.json().await.unwrap();
            v["reference"].as_str().unwrap().to_string()
        }));
    }
    let mut numbers = Vec::new();
    for t in tasks {
        let r = avvik::domain::Reference::parse(&t.await.unwrap()).unwrap();
        numbers.push(r.number);
    }
    numbers.sort();
    assert_eq!(numbers, (1..=40).collect::<Vec<u64>>());
}
