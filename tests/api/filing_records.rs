//! The structured filing records (breach record, NIS2 record, art. 34) through the API:
//! validated, versioned, sealed; each phase's document as JSON (checked against
//! docs/filing.schema.json) and PDF (read back with pdftotext), and its SHA-256 recorded
//! with the filing.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::TestApp;

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> (u16, Value) {
    let r = app
        .client
        .post(format!("{}{path}", app.base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// GET with a token: status, X-Content-SHA256, content type and body.
async fn get(app: &TestApp, token: &str, path: &str) -> (u16, String, String, Vec<u8>) {
    let r = app
        .client
        .get(format!("{}{path}", app.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    let h = |n: &str| {
        r.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (sha, ct) = (h("x-content-sha256"), h("content-type"));
    (s, sha, ct, r.bytes().await.unwrap().to_vec())
}

pub fn schema() -> jsonschema::Validator {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/filing.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the schema compiles")
}

pub fn assert_valid(v: &jsonschema::Validator, doc: &Value) {
    let errors: Vec<String> = v
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\n{doc:#}");
}

/// The text of a PDF, by poppler's pdftotext, with whitespace collapsed.
pub fn pdf_text(pdf: &[u8]) -> String {
    assert!(pdf.starts_with(b"%PDF-"), "not a PDF");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.pdf");
    std::fs::write(&path, pdf).unwrap();
    let out = std::process::Command::new("pdftotext")
        .arg(&path)
        .arg("-")
        .output()
        .unwrap_or_else(|e| {
            panic!("pdftotext could not be run ({e}): install poppler-utils (scripts/test does)")
        });
    assert!(out.status.success(), "pdftotext failed: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

const PNR: &str = "19121212-1212";

fn breach_body() -> Value {
    json!({
        "contact": "Dagny Dataskydd, 08-123 45 67",
        "summary": format!("En lista med elevers namn och personnummer (bland dem {PNR}) skickades till fel vårdnadshavare på förskolan Åkerbäret."),
        "occurred_from": "2026-03-26T14:05:00+01:00",
        "occurred_to": "2026-03-26T14:06:00+01:00",
        "subject_categories": ["pupils", "guardians"],
        "subjects_approx": 1200,
        "records_approx": 1250,
        "data_categories": ["identity", "personnummer", "health"],
        "consequences": ["loss_of_control", "secrecy"],
        "consequences_text": "Uppgifter som omfattas av sekretess kan spridas vidare.",
        "measures_taken": "Mottagaren har bekräftat att e-posten är raderad.",
        "measures_proposed": "Utskick med känsliga uppgifter kräver dubbelkontroll.",
        "cross_border": true,
        "cross_border_details": "En vårdnadshavare bor i Norge.",
        "processor_involved": true,
        "processor": "Skolplattformen AB, driftleverantör",
        "delay_reason": "Helgen försenade bekräftelsen."
    })
}

#[tokio::test]
async fn the_breach_record_is_validated_versioned_sealed_and_sent_as_pdf_and_json() {
    let app = TestApp::spawn().await;
    let tok = crate::authz::tokens(&app).await;
    let r = app
        .post_json(
            "/api/v1/deviations",
            json!({"title": "Felskickad elevlista", "description": "Lista till fel mottagare",
                   "sector": "Socialtjänsten", "personal_data": true}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let r = r.json::<Value>().await.unwrap()["reference"]
        .as_str()
        .unwrap()
        .to_string();
    let base = format!("/api/v1/deviations/{r}");

    // Not a breach yet: no record.
    let (s, v) = post(
        &app,
        &tok["dso"],
        &format!("{base}/breach-record"),
        breach_body(),
    )
    .await;
    assert_eq!(s, 409, "{v}");
    let (s, _) = post(
        &app,
        &tok["ciso"],
        &format!("{base}/classification"),
        json!({"severity": "major", "category": "felskickad e-post", "personal_data_breach": "yes", "nis2_significant": true}),
    )
    .await;
    assert_eq!(s, 200);

    // Every bad field is named.
    let (s, v) = post(
        &app,
        &tok["dso"],
        &format!("{base}/breach-record"),
        json!({"data_categories": ["dna"], "subjects_approx": -3, "occurred_from": "i går"}),
    )
    .await;
    assert_eq!(s, 422, "{v}");
    let text = v.to_string();
    for f in [
        "summary",
        "data_categories",
        "subjects_approx",
        "occurred_from",
    ] {
        assert!(text.contains(&format!("\"{f}\"")), "{f}: {v}");
    }

    let (s, d) = post(
        &app,
        &tok["dso"],
        &format!("{base}/breach-record"),
        breach_body(),
    )
    .await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["breach_record"]["version"], 1);
    assert_eq!(d["breach_record"]["record"]["subjects_approx"], 1200);
    // The same again changes nothing; a change is version 2.
    let (s, _) = post(
        &app,
        &tok["dso"],
        &format!("{base}/breach-record"),
        breach_body(),
    )
    .await;
    assert_eq!(s, 409);
    let mut changed = breach_body();
    changed["records_approx"] = json!(1300);
    let (s, d) = post(
        &app,
        &tok["dso"],
        &format!("{base}/breach-record"),
        changed.clone(),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(d["breach_record"]["version"], 2);

    // Art. 34: the decision, then the notice sent (not before a decision to tell).
    let (s, v) = post(
        &app,
        &tok["dso"],
        &format!("{base}/affected-notice/sent"),
        json!({"sent_at": "2026-03-28T10:00:00+01:00", "channel": "letter"}),
    )
    .await;
    assert_eq!(s, 409, "{v}");
    let (s, v) = post(
        &app,
        &tok["dso"],
        &format!("{base}/affected-notice"),
        json!({"decision": "notify", "text": "Hej! Uppgifter om ditt barn skickades av misstag till fel person."}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, d) = post(
        &app,
        &tok["dso"],
        &format!("{base}/affected-notice/sent"),
        json!({"sent_at": "2026-03-28T10:00:00+01:00", "channel": "letter", "recipients_approx": 1150}),
    )
    .await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["affected_notice"]["sent"][0]["recipients_approx"], 1150);

    // The JSON document validates against the schema; its hash is the header's.
    let validator = schema();
    let (s, sha, ct, body) = get(&app, &tok["dso"], &format!("{base}/filing-documents/gdpr")).await;
    assert_eq!(s, 200);
    assert!(ct.starts_with("application/json"), "{ct}");
    assert_eq!(sha, hex::encode(Sha256::digest(&body)));
    let doc: Value = serde_json::from_slice(&body).unwrap();
    assert_valid(&validator, &doc);
    assert_eq!(doc["breach"]["records_approx"], 1300);
    assert_eq!(doc["controller"]["org_number"], "212000-0142");
    assert_eq!(doc["contact"], "Dagny Dataskydd, 08-123 45 67");
    assert_eq!(doc["affected_notice"]["decision"], "notify");
    assert!(doc.get("nis2").is_none());
    // The same state gives the same bytes.
    let (_, sha2, _, _) = get(&app, &tok["dso"], &format!("{base}/filing-documents/gdpr")).await;
    assert_eq!(sha, sha2);

    // The PDF holds every field that was filled in.
    let (s, pdf_sha, ct, pdf) = get(
        &app,
        &tok["dso"],
        &format!("{base}/filing-documents/gdpr?format=pdf"),
    )
    .await;
    assert_eq!((s, ct.as_str()), (200, "application/pdf"));
    assert_eq!(pdf_sha, sha, "the header names the JSON's hash");
    let text = pdf_text(&pdf);
    for (k, v) in changed.as_object().unwrap() {
        if let Some(s) = v.as_str() {
            if !k.starts_with("occurred") {
                assert!(text.contains(&squash(s)), "{k}: {s:?} not in {text}");
            }
        }
    }
    for s in [
        "2026-03-26 14:05",
        "omkring 1200",
        "omkring 1300",
        "Elever",
        "Vårdnadshavare",
        "Personnummer eller samordningsnummer",
        "Uppgifter om hälsa",
        "Röjande av uppgifter som omfattas av sekretess",
        "Hej! Uppgifter om ditt barn",
        "omkring 1150 personer",
        "212000-0142",
        &sha[..16],
    ] {
        assert!(text.contains(s), "{s:?} not in {text}");
    }
    // Every section's field labels are there too, in the form's order.
    let mut at = 0;
    for section in doc["sections"].as_array().unwrap() {
        let title = section["title"].as_str().unwrap();
        let i = text[at..]
            .find(title)
            .unwrap_or_else(|| panic!("{title} out of order in {text}"));
        at += i;
    }

    // Recorded as sent with the content's hash; a supplement's document lists it.
    let (s, d) = post(
        &app,
        &tok["dso"],
        &format!("{base}/filings"),
        json!({"kind": "gdpr", "filed_at": "2026-03-28T11:00:00+01:00", "their_reference": "IMY-2026-77", "content_sha256": sha}),
    )
    .await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["filings"][0]["content_sha256"], sha.as_str());
    let (_, _, _, body) = get(
        &app,
        &tok["dso"],
        &format!("{base}/filing-documents/gdpr_supplement"),
    )
    .await;
    let doc: Value = serde_json::from_slice(&body).unwrap();
    assert_valid(&validator, &doc);
    assert_eq!(doc["earlier_filings"][0]["their_reference"], "IMY-2026-77");

    // The NIS2 record and its phases.
    let (s, v) = post(
        &app,
        &tok["ciso"],
        &format!("{base}/nis2-record"),
        json!({"summary": "Utpressningsvirus i skolplattformen", "suspected_malicious": true,
               "severity": "high", "initial_assessment": "Krypterade filservrar", "indicators": "185.0.2.10",
               "threat_and_cause": "Nätfiske", "mitigation": "Återläsning från säkerhetskopia"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    for (kind, has, lacks) in [
        ("nis2_early_warning", "Tidig varning", "Incidentanmälan"),
        ("nis2_notification", "Incidentanmälan", "Slutrapport"),
        (
            "nis2_final_report",
            "Slutrapport",
            "Information till de registrerade",
        ),
    ] {
        let (s, _, _, body) = get(
            &app,
            &tok["ciso"],
            &format!("{base}/filing-documents/{kind}"),
        )
        .await;
        assert_eq!(s, 200);
        let doc: Value = serde_json::from_slice(&body).unwrap();
        assert_valid(&validator, &doc);
        let titles: Vec<&str> = doc["sections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["title"].as_str().unwrap())
            .collect();
        assert!(
            titles.contains(&has) && !titles.contains(&lacks),
            "{kind}: {titles:?}"
        );
        assert!(doc.get("breach").is_none() && doc["nis2"]["severity"] == "high");
    }
    // A broken document is what the schema refuses.
    let mut broken = doc_of(&app, &tok["ciso"], &base, "nis2_notification").await;
    broken["nis2"]["severity"] = json!("huge");
    assert!(!validator.is_valid(&broken));

    // Not for everyone, and not any kind or format.
    let (s, _, _, _) = get(
        &app,
        &tok["kontakt_bou"],
        &format!("{base}/filing-documents/gdpr"),
    )
    .await;
    assert_eq!(s, 404);
    let (s, _, _, _) = get(&app, &tok["dso"], &format!("{base}/filing-documents/imy")).await;
    assert_eq!(s, 404);
    let (s, _, _, _) = get(
        &app,
        &tok["dso"],
        &format!("{base}/filing-documents/gdpr?format=docx"),
    )
    .await;
    assert_eq!(s, 422);

    // Each download is in the access log.
    let (s, log) = crate::helpers::bearer_get(
        &app,
        &tok["dso"],
        &format!("/api/v1/audit/access?reference={r}"),
    )
    .await;
    assert_eq!(s, 200, "{log}");
    assert!(
        log.contains("\"filing_document\"") && log.contains("\"pdf\""),
        "{log}"
    );

    // Gallring destroys the records' free texts; the counts and the categories stay.
    let (s, _) = post(
        &app,
        &tok["ciso"],
        &format!("{base}/close"),
        json!({"resolution": "Klart"}),
    )
    .await;
    assert_eq!(s, 200);
    let (s, d) = post(
        &app,
        &tok["ciso"],
        &format!("{base}/shred"),
        json!({"decision": "KS 2026/9"}),
    )
    .await;
    assert_eq!(s, 200, "{d}");
    let doc = doc_of(&app, &tok["dso"], &base, "gdpr").await;
    assert_valid(&validator, &doc);
    let gone = doc["breach"]["summary"].as_str().unwrap();
    assert!(
        gone.starts_with("gallrad ") && gone.ends_with("KS 2026/9"),
        "{gone}"
    );
    assert!(doc["affected_notice"]["text"]
        .as_str()
        .unwrap()
        .starts_with("gallrad "));
    assert_eq!(doc["breach"]["subjects_approx"], 1200);
    assert_eq!(doc["breach"]["data_categories"][1], "personnummer");
    let nis2 = doc_of(&app, &tok["ciso"], &base, "nis2_final_report").await;
    assert!(nis2["nis2"]["indicators"]
        .as_str()
        .unwrap()
        .starts_with("gallrad "));
    let (_, _, _, body) = get(&app, &tok["ciso"], &format!("{base}/history")).await;
    assert!(!String::from_utf8_lossy(&body).contains("Skolplattformen AB"));

    // The free texts are sealed: the personnummer is nowhere in the store's files.
    let dir = app.stop().await;
    let mut hits = Vec::new();
    for e in walk(&dir.path().join("data")) {
        let bytes = std::fs::read(&e).unwrap_or_default();
        if bytes.windows(PNR.len()).any(|w| w == PNR.as_bytes()) {
            hits.push(e);
        }
    }
    assert!(hits.is_empty(), "{hits:?}");
}

async fn doc_of(app: &TestApp, token: &str, base: &str, kind: &str) -> Value {
    let (_, _, _, body) = get(app, token, &format!("{base}/filing-documents/{kind}")).await;
    serde_json::from_slice(&body).unwrap()
}

fn walk(p: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}
