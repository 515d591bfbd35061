//! The annual report over HTTP: page, JSON, CSV, issuing, and who may.

use serde_json::{json, Value};

use crate::helpers::TestApp;
use crate::staff_ui::login;

#[tokio::test]
async fn annual_report_routes_serve_issue_and_authorize() {
    let app = TestApp::spawn().await;
    let tok = crate::authz::tokens(&app).await;
    let r = app
        .post_json(
            "/api/v1/deviations",
            json!({"title": "Nätfiske", "description": "d"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let year = avvik::domain::stockholm_year(chrono::Utc::now());
    let get = |who: &str, path: String| {
        let c = app.client.clone();
        let t = tok[who].clone();
        let base = app.base.clone();
        async move {
            c.get(format!("{base}{path}"))
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
        }
    };
    // A draft until issued.
    let r = get("ciso", format!("/api/v1/reports/annual/{year}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-avvik-report-status"], "draft");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["year"], year);
    let r = get("ciso", format!("/api/v1/reports/annual/{year}?format=csv")).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let r = get("ciso", format!("/api/v1/reports/annual/{year}?format=pdf")).await;
    assert_eq!(r.status(), 422);
    // Issue, then re-issue only with a reason.
    let post = |who: &str, body: Value| {
        let c = app.client.clone();
        let t = tok[who].clone();
        let url = format!("{}/api/v1/reports/annual/{year}/issue", app.base);
        async move { c.post(url).bearer_auth(t).json(&body).send().await.unwrap() }
    };
    assert_eq!(post("auditor", json!({})).await.status(), 403);
    let r = post("ciso", json!({})).await;
    assert_eq!(r.status(), 201);
    let issued: Value = r.json().await.unwrap();
    assert_eq!(issued["edition"], 1);
    assert_eq!(post("ciso", json!({})).await.status(), 422);
    let r = post("ciso", json!({"reason": "Rättelse av kategori"})).await;
    assert_eq!(r.status(), 201);
    let second: Value = r.json().await.unwrap();
    assert_eq!(second["edition"], 2);
    // The issued edition is served frozen, its hash equal to the JSON body's SHA-256.
    let r = get("ledning", format!("/api/v1/reports/annual/{year}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-avvik-report-status"], "issued");
    assert_eq!(r.headers()["x-avvik-content-verified"], "true");
    let hash = r.headers()["x-avvik-content-hash"]
        .to_str()
        .unwrap()
        .to_string();
    let bytes = r.bytes().await.unwrap();
    assert_eq!(avvik_events::hash_hex(&bytes), hash);
    assert_eq!(second["content_hash"], hash);
    // Kontakt may not see the board's report.
    assert_eq!(
        get("kontakt_soc", format!("/api/v1/reports/annual/{year}"))
            .await
            .status(),
        403
    );
    // The printable page, with a CSP that allows exactly its own style.
    let ciso = login(&app, "ciso@kommunen.example").await;
    let r = ciso
        .get(format!("{}/staff/reports/{year}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("'sha256-") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let html = r.text().await.unwrap();
    assert!(html.contains("<html lang=\"sv\">"));
    let r = ciso
        .get(format!("{}/staff/reports/abc", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
