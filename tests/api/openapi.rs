//! The OpenAPI document describes the real routes: every documented operation is served.

use serde_json::{json, Value};

use crate::helpers::TestApp;

#[tokio::test]
async fn every_documented_operation_is_a_real_route() {
    let app = TestApp::spawn().await;
    let tok = crate::authz::tokens(&app).await;
    let r = app
        .post_json(
            "/api/v1/deviations",
            json!({"title": "t", "description": "d"}),
        )
        .await;
    let reference = r.json::<Value>().await.unwrap()["reference"]
        .as_str()
        .unwrap()
        .to_string();
    let doc: Value = app
        .client
        .get(format!("{}/api/v1/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let concrete = path
                .replace("{reference}", &reference)
                .replace("{measure_id}", "01900000-0000-7000-8000-000000000000");
            let url = format!("{}{}", app.base, concrete);
            let req = match method.as_str() {
                "get" => app.client.get(url),
                "post" => app.client.post(url).json(&json!({})),
                "put" => app.client.put(url).json(&json!({})),
                other => panic!("unexpected method {other}"),
            };
            let resp = req.bearer_auth(&tok["ciso"]).send().await.unwrap();
            let status = resp.status().as_u16();
            let ctype = resp
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            assert_ne!(status, 405, "{method} {path}: method not routed");
            assert!(
                status != 404 || ctype == "application/problem+json",
                "{method} {path}: no such route"
            );
            // Every documented status is one the route may answer.
            let documented: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
            assert!(
                documented.iter().any(|s| s.as_str() == status.to_string()),
                "{method} {path} answered {status}, documented {documented:?}"
            );
        }
    }
    assert!(operations >= 12, "only {operations} operations documented");
    // And an undocumented path is really not there.
    let r = app
        .client
        .get(format!("{}/api/v1/nope", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
