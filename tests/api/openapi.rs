//! The OpenAPI document is the contract: every operation in it is called with requests made
//! from the document itself (valid, malformed, unauthenticated), and each answer must have
//! a status the operation declares, the declared media type and, for JSON, a body the
//! declared schema accepts. Probing with junk (odd path parameters, wrong methods, huge
//! numbers, no Content-Type) never gets a 5xx, and every refusal is a problem document.

use std::sync::Arc;

use avvik::clock::SystemClock;
use reqwest::Method;
use serde_json::{json, Map, Value};

use crate::helpers::TestApp;

const INTAKE_TOKEN: &str = "intake-token-for-the-contract-test-0123456789";

async fn spawn() -> TestApp {
    // Hundreds of requests from one address: the rate limit is not what is tested here.
    TestApp::spawn_with(
        |c| {
            c.http.rate_limit_per_minute = 1_000_000;
            c.intake.token = INTAKE_TOKEN.into();
        },
        Arc::new(SystemClock),
    )
    .await
}

async fn document(app: &TestApp) -> Value {
    let r = app
        .client
        .get(format!("{}/api/v1/openapi.json", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

// ---- a small JSON-Schema check over what utoipa emits (OpenAPI 3.1) ---------------------

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("unexpected $ref {r}"));
            let target = &doc["components"]["schemas"][name];
            assert!(!target.is_null(), "$ref {r} names no schema");
            resolve(doc, target)
        }
        None => schema,
    }
}

fn type_matches(ty: &str, v: &Value) -> bool {
    match ty {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64(),
        other => panic!("unknown type {other}"),
    }
}

/// Problems of `v` against `schema`, each with its JSON path.
fn check(doc: &Value, schema: &Value, v: &Value, at: &str, out: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            check(doc, s, v, at, out);
        }
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(any) = schema.get(key).and_then(Value::as_array) {
            let fits = any.iter().any(|s| {
                let mut e = Vec::new();
                check(doc, s, v, at, &mut e);
                e.is_empty()
            });
            if !fits {
                out.push(format!("{at}: fits none of {key}: {v}"));
            }
        }
    }
    if let Some(ty) = schema.get("type") {
        let types: Vec<&str> = match ty {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if !types.iter().any(|t| type_matches(t, v)) {
            out.push(format!("{at}: {v} is not {types:?}"));
            return;
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        if !options.contains(v) {
            out.push(format!("{at}: {v} is not one of {options:?}"));
        }
    }
    if let (Some(min), Some(n)) = (schema.get("minimum").and_then(Value::as_f64), v.as_f64()) {
        if n < min {
            out.push(format!("{at}: {n} < {min}"));
        }
    }
    if let (Some(max), Some(n)) = (schema.get("maximum").and_then(Value::as_f64), v.as_f64()) {
        if n > max {
            out.push(format!("{at}: {n} > {max}"));
        }
    }
    if let Some(obj) = v.as_object() {
        let props = schema.get("properties").and_then(Value::as_object);
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !obj.contains_key(name) {
                out.push(format!("{at}: required {name} is missing"));
            }
        }
        for (k, x) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(s) => check(doc, s, x, &format!("{at}.{k}"), out),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => out.push(format!("{at}: {k} is not declared")),
                    Some(s @ Value::Object(_)) => check(doc, s, x, &format!("{at}.{k}"), out),
                    _ => {}
                },
            }
        }
    }
    if let (Some(items), Some(list)) = (schema.get("items"), v.as_array()) {
        for (i, x) in list.iter().enumerate() {
            check(doc, items, x, &format!("{at}[{i}]"), out);
        }
    }
}

// ---- requests from the document --------------------------------------------------------

/// Values the server checks against its configuration or the clock.
struct Known {
    category: String,
    sector: String,
}

/// A value the schema accepts (and, as far as the document can tell, the server too).
fn example(doc: &Value, schema: &Value, name: &str, known: &Known) -> Value {
    match name {
        "category" => return json!(known.category),
        "sector" => return json!(known.sector),
        "filed_at" | "occurred_at" => return json!("2026-01-02T10:00:00+01:00"),
        "due" => return json!("2030-12-31"),
        _ => {}
    }
    let schema = resolve(doc, schema);
    if let Some(e) = schema.get("example").or_else(|| schema.get("default")) {
        return e.clone();
    }
    if let Some(first) = schema.get("enum").and_then(|e| e.get(0)) {
        return first.clone();
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(any) = schema.get(key).and_then(Value::as_array) {
            let pick = any
                .iter()
                .find(|s| s.get("type") != Some(&json!("null")))
                .unwrap_or(&any[0]);
            return example(doc, pick, name, known);
        }
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        let mut merged = Map::new();
        for s in all {
            if let Value::Object(o) = example(doc, s, name, known) {
                merged.extend(o);
            }
        }
        return Value::Object(merged);
    }
    let ty = match schema.get("type") {
        Some(Value::String(s)) => s.as_str(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ => "object",
    };
    match ty {
        "object" => {
            let mut o = Map::new();
            let required: Vec<&str> = schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            for (k, s) in schema
                .get("properties")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                // Required fields, and optional ones the document gives an example for.
                let has_example = resolve(doc, s).get("example").is_some();
                if required.contains(&k.as_str()) || has_example || k == "filed_at" {
                    o.insert(k.clone(), example(doc, s, k, known));
                }
            }
            Value::Object(o)
        }
        "array" => json!([]),
        "string" => match schema.get("format").and_then(Value::as_str) {
            Some("date") => json!("2030-12-31"),
            Some("date-time") => json!("2026-01-02T10:00:00+01:00"),
            Some("uuid") => json!("01900000-0000-7000-8000-000000000000"),
            _ => json!("Provtext"),
        },
        "integer" => schema.get("minimum").cloned().unwrap_or(json!(1)),
        "number" => json!(1.5),
        "boolean" => json!(false),
        _ => Value::Null,
    }
}

/// Every property of a body with a value of the wrong type.
fn wrong_types(doc: &Value, schema: &Value) -> Value {
    let schema = resolve(doc, schema);
    let mut o = Map::new();
    for (k, s) in schema
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let s = resolve(doc, s);
        let string_like = s.get("type").is_some_and(|t| {
            t == "string" || t.as_array().is_some_and(|a| a.contains(&json!("string")))
        }) || s.get("enum").is_some();
        o.insert(
            k.clone(),
            if string_like {
                json!(12345)
            } else {
                json!("ja")
            },
        );
    }
    Value::Object(o)
}

struct Answer {
    status: u16,
    media: String,
    body: Vec<u8>,
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<(&str, Vec<u8>)>,
) -> Answer {
    let mut req = app
        .client
        .request(method.clone(), format!("{}{}", app.base, path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some((ctype, bytes)) = body {
        if !ctype.is_empty() {
            req = req.header("content-type", ctype);
        }
        req = req.body(bytes);
    }
    let r = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = r.status().as_u16();
    let media = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_string())
        .unwrap_or_default();
    let body = r.bytes().await.unwrap().to_vec();
    Answer {
        status,
        media,
        body,
    }
}

/// The answer is one the operation declares: status, media type, and the body's schema.
fn conforms(doc: &Value, op: &Value, what: &str, a: &Answer) -> Result<(), String> {
    let responses = op["responses"].as_object().expect("responses");
    let Some(declared) = responses.get(&a.status.to_string()) else {
        return Err(format!(
            "{what}: status {} is not declared ({:?}); body {}",
            a.status,
            responses.keys().collect::<Vec<_>>(),
            String::from_utf8_lossy(&a.body)
        ));
    };
    let content = declared.get("content").and_then(Value::as_object);
    let Some(content) = content.filter(|c| !c.is_empty()) else {
        if a.body.is_empty() {
            return Ok(());
        }
        return Err(format!(
            "{what}: {} declares no body, got {} {:?}",
            a.status,
            a.media,
            String::from_utf8_lossy(&a.body)
        ));
    };
    let Some(media) = content.get(&a.media) else {
        return Err(format!(
            "{what}: {} answered as {:?}, declared {:?}",
            a.status,
            a.media,
            content.keys().collect::<Vec<_>>()
        ));
    };
    if a.media == "application/json" || a.media.ends_with("+json") {
        let v: Value = serde_json::from_slice(&a.body)
            .map_err(|e| format!("{what}: {} body is not JSON: {e}", a.status))?;
        if let Some(schema) = media.get("schema") {
            let mut errs = Vec::new();
            check(doc, schema, &v, "$", &mut errs);
            if !errs.is_empty() {
                return Err(format!(
                    "{what}: {} body breaks its schema: {errs:?}",
                    a.status
                ));
            }
        }
    }
    Ok(())
}

/// One request of an operation: what it tries, the bearer token, the body and its type.
type Case<'a> = (String, Option<&'a str>, Option<(&'a str, Vec<u8>)>);

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

#[tokio::test]
async fn every_operation_answers_as_the_document_declares() {
    let app = spawn().await;
    let tok = crate::authz::tokens(&app).await;
    let ciso = tok["ciso"].as_str();
    let cfg = &app.app_state.config.report;
    let known = Known {
        category: cfg.categories.first().cloned().unwrap_or_default(),
        sector: cfg.sectors.first().cloned().unwrap_or_default(),
    };
    // Real objects for the path parameters.
    let r = app
        .post_json(
            "/api/v1/deviations",
            json!({"title": "Kontraktsprov", "description": "Ett prov av API:t."}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let reference = r.json::<Value>().await.unwrap()["reference"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .client
        .post(format!(
            "{}/api/v1/deviations/{reference}/measures",
            app.base
        ))
        .bearer_auth(ciso)
        .json(&json!({"description": "Byt lösenord", "owner": "IT", "due": "2030-12-31"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let measure_id = r.json::<Value>().await.unwrap()["measure_id"]
        .as_str()
        .unwrap()
        .to_string();

    let doc = document(&app).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let concrete = |path: &str| {
        path.replace("{reference}", &reference)
            .replace("{measure_id}", &measure_id)
            .replace("{year}", "2026")
            .replace("{id}", "01900000-0000-7000-8000-00000000abcd")
            .replace("{sha256}", &"0".repeat(64))
    };
    let mut failures = Vec::new();
    let mut operations = 0;
    let mut succeeded = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            operations += 1;
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let url = concrete(path);
            let secured = op
                .get("security")
                .and_then(Value::as_array)
                .is_some_and(|s| !s.is_empty());
            let body_schema = op
                .pointer("/requestBody/content/application~1json/schema")
                .cloned();
            let upload = op.pointer("/requestBody/content/message~1rfc822").is_some();
            let valid_body = body_schema
                .as_ref()
                .map(|s| serde_json::to_vec(&example(&doc, s, "", &known)).unwrap());
            let with = |b: &Option<Vec<u8>>| b.clone().map(|b| ("application/json", b));
            let mut cases: Vec<Case> = Vec::new();
            // Valid.
            cases.push(("valid".into(), Some(ciso), with(&valid_body)));
            if upload {
                cases.push((
                    "upload".into(),
                    Some(INTAKE_TOKEN),
                    Some(("message/rfc822", b"Subject: x\r\n\r\ny\r\n".to_vec())),
                ));
            }
            // Unauthenticated, and with a token that is not one.
            if secured {
                cases.push(("no token".into(), None, with(&valid_body)));
                cases.push(("bad token".into(), Some("nej"), with(&valid_body)));
            }
            // Malformed bodies.
            if let Some(schema) = &body_schema {
                for (what, bytes) in [
                    ("broken JSON", b"{\"title\": ".to_vec()),
                    ("empty body", Vec::new()),
                    ("not an object", b"[1, 2, 3]".to_vec()),
                    ("huge number", b"{\"text\": 1e400}".to_vec()),
                    (
                        "wrong types",
                        serde_json::to_vec(&wrong_types(&doc, schema)).unwrap(),
                    ),
                    ("unknown field", b"{\"no_such_field\": true}".to_vec()),
                ] {
                    cases.push((what.into(), Some(ciso), Some(("application/json", bytes))));
                }
                cases.push((
                    "no content type".into(),
                    Some(ciso),
                    valid_body.clone().map(|b| ("", b)),
                ));
            }
            // Malformed query parameters: text where a number goes.
            let mut query_junk = Vec::new();
            for p in op["parameters"].as_array().into_iter().flatten() {
                let numeric = p.pointer("/schema/type").is_some_and(|t| {
                    t == "integer" || t.as_array().is_some_and(|a| a.contains(&json!("integer")))
                });
                if p["in"] == "query" && numeric {
                    query_junk.push(format!("{}=inte-ett-tal", p["name"].as_str().unwrap()));
                }
            }
            for (what, token, body) in cases {
                let a = send(&app, m.clone(), &url, token, body).await;
                let label = format!("{method} {path} ({what})");
                if a.status >= 500 {
                    failures.push(format!("{label}: {}", a.status));
                }
                if what == "valid" && (200..300).contains(&a.status) {
                    succeeded += 1;
                }
                if (what == "no token" || what == "bad token") && a.status != 401 {
                    failures.push(format!("{label}: {} instead of 401", a.status));
                }
                if what == "broken JSON" && ![400, 403, 404].contains(&a.status) {
                    failures.push(format!("{label}: {} instead of 400", a.status));
                }
                if let Err(e) = conforms(&doc, op, &label, &a) {
                    failures.push(e);
                }
            }
            for q in query_junk {
                let a = send(&app, m.clone(), &format!("{url}?{q}"), Some(ciso), None).await;
                if let Err(e) = conforms(&doc, op, &format!("{method} {path}?{q}"), &a) {
                    failures.push(e);
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(operations >= 25, "only {operations} operations documented");
    assert!(
        succeeded >= 18,
        "only {succeeded} of {operations} operations accepted their valid request"
    );
    // And an undocumented path is really not there.
    let a = send(&app, Method::GET, "/api/v1/nope", Some(ciso), None).await;
    assert_eq!(
        (a.status, a.media.as_str()),
        (404, "application/problem+json")
    );
}

#[tokio::test]
async fn probing_with_junk_never_gets_a_5xx_and_refusals_are_problems() {
    let app = spawn().await;
    let tok = crate::authz::tokens(&app).await;
    let ciso = tok["ciso"].as_str();
    let doc = document(&app).await;
    let long = "A".repeat(3000);
    let junk = [
        "%00",
        "%FF%FE",
        "%C3%28",
        "%C3%85%C3%84%C3%96-%F0%9F%98%80",
        "99999999999999999999999999999",
        "-1",
        "AVV-2026-99999999999999999999999",
        "..%2F..%2Fetc%2Fpasswd",
        long.as_str(),
    ];
    let mut failures = Vec::new();
    let mut requests = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let names: Vec<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        let mut urls: Vec<String> = Vec::new();
        for j in junk {
            let mut u = path.clone();
            for n in &names {
                u = u.replace(&format!("{{{n}}}"), j);
            }
            urls.push(u);
            if names.is_empty() {
                break;
            }
        }
        for method in METHODS {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let documented = item.get(method).is_some();
            for url in &urls {
                let bodies: Vec<Option<(&str, Vec<u8>)>> = if matches!(method, "get" | "delete") {
                    vec![None]
                } else {
                    vec![
                        Some(("application/json", b"{}".to_vec())),
                        Some(("", "{\"text\": \"Å\"}".as_bytes().to_vec())),
                        Some((
                            "application/json",
                            b"{\"limit\": 123456789012345678901234567890, \"text\": -0.0e99999}"
                                .to_vec(),
                        )),
                        Some(("text/plain", "ÅÄÖ 😀 \u{0}".as_bytes().to_vec())),
                    ]
                };
                for body in bodies {
                    requests += 1;
                    let a = send(&app, m.clone(), url, Some(ciso), body).await;
                    let label = format!("{method} {url}");
                    if a.status >= 500 {
                        failures.push(format!("{label}: {}", a.status));
                    }
                    if a.status >= 400 && a.media != "application/problem+json" {
                        failures.push(format!("{label}: {} as {:?}", a.status, a.media));
                    }
                    if !documented && a.status != 405 {
                        failures.push(format!("{label}: undocumented method got {}", a.status));
                    }
                }
            }
        }
    }
    for q in [
        "limit=99999999999999999999999",
        "limit=-1",
        "offset=%FF",
        "year=ÅÅÅÅ",
        "q=%00%01",
        "status=%F0%9F%98%80",
    ] {
        requests += 1;
        let a = send(
            &app,
            Method::GET,
            &format!("/api/v1/deviations?{q}"),
            Some(ciso),
            None,
        )
        .await;
        if a.status >= 500 || (a.status >= 400 && a.media != "application/problem+json") {
            failures.push(format!(
                "GET /api/v1/deviations?{q}: {} {}",
                a.status, a.media
            ));
        }
    }
    assert!(requests > 500, "{requests}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
