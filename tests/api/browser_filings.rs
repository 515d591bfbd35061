//! The DPO fills in the breach record in a real headless Chromium, decides to tell the
//! people affected, previews the IMY notification, downloads its PDF (read back with
//! pdftotext) and records it as sent with the content's hash; axe checks every page.

use base64::Engine;
use serde_json::{json, Value};

use crate::browser::{sign_in, Browser};
use crate::filing_records::pdf_text;
use crate::helpers::TestApp;

/// Sets an input's value by script (datetime-local inputs take their digits in the
/// browser locale's order; typing them is tested elsewhere).
async fn set_value(b: &Browser, css: &str, value: &str) {
    b.client
        .execute(
            "document.querySelector(arguments[0]).value = arguments[1];",
            vec![json!(css), json!(value)],
        )
        .await
        .expect("value set");
}

/// Waits until the page's `main` contains `needle` (the page may be reloading).
pub async fn wait_text(b: &Browser, needle: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let main = match b.client.find(fantoccini::Locator::Css("main")).await {
            Ok(el) => el.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if main.contains(needle) {
            return main;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{needle:?} never shown: {main}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_dpo_fills_in_previews_and_downloads_the_breach_notification() {
    let app = TestApp::spawn().await;
    let tok = crate::authz::tokens(&app).await;
    let r: Value = app
        .post_json(
            "/api/v1/deviations",
            json!({"title": "Elevlista till fel mottagare", "description": "Skickad fel",
                   "sector": "Socialtjänsten", "personal_data": true}),
        )
        .await
        .json()
        .await
        .unwrap();
    let r = r["reference"].as_str().unwrap().to_string();
    let s = app
        .client
        .post(format!("{}/api/v1/deviations/{r}/classification", app.base))
        .bearer_auth(&tok["ciso"])
        .json(&json!({"severity": "major", "category": "felskickad e-post", "personal_data_breach": "yes", "nis2_significant": false}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(s, 200);

    let b = Browser::start(&app.base).await;
    sign_in(&b, "dso@kommunen.example", "/staff").await;
    b.goto(&format!("/staff/deviations/{r}")).await;
    b.click(&format!("a[href='/staff/deviations/{r}/anmalan']"))
        .await;
    b.wait_for_path(&format!("/staff/deviations/{r}/anmalan"))
        .await;
    b.assert_accessible("the filing records").await;

    // Sent without what happened: the error is shown at the field.
    let submit = "form[action$='/anmalan/breach'] button[type=submit]";
    b.click(submit).await;
    b.wait_for(".error-summary").await;
    assert!(b.text(".error-summary").await.contains("Vad har hänt"));
    b.assert_accessible("the breach record with an error").await;

    let filled = [
        ("#breach-contact", "Dagny Dataskydd, 08-123 45 67"),
        (
            "#breach-summary",
            "Elevlistan med personnummer skickades till en vårdnadshavare på förskolan Åkerbäret.",
        ),
        ("#breach-subjects_approx", "1200"),
        ("#breach-records_approx", "1250"),
        (
            "#breach-consequences_text",
            "Sekretessbelagda uppgifter kan spridas.",
        ),
        ("#breach-measures_taken", "Mottagaren har raderat e-posten."),
        (
            "#breach-measures_proposed",
            "Dubbelkontroll av mottagare vid utskick.",
        ),
        ("#breach-processor", "Skolplattformen AB"),
    ];
    for (css, v) in filled {
        b.fill(css, v).await;
    }
    set_value(&b, "#breach-occurred_from", "2026-03-26T14:05").await;
    for css in [
        "#breach-subject_categories-pupils",
        "#breach-data_categories-personnummer",
        "#breach-data_categories-health",
        "#breach-consequences-secrecy",
        "#breach-cross_border-nej",
        "#breach-processor_involved-ja",
    ] {
        b.click(css).await;
    }
    b.click(submit).await;
    wait_text(&b, "Version 1, sparad").await;
    b.assert_accessible("the saved breach record").await;

    // Art. 34: tell them, from the plain-Swedish template.
    assert!(b
        .value("#art34-text")
        .await
        .contains("vill informera dig om att uppgifter om dig"));
    b.click("#art34-notify").await;
    b.click("form[action$='/anmalan/art34'] button[type=submit]")
        .await;
    wait_text(&b, "Beslutat ").await;
    b.assert_accessible("the art. 34 decision").await;

    // The preview, in the form's order.
    b.click(&format!("a[href='/staff/deviations/{r}/anmalan/gdpr']"))
        .await;
    b.wait_for_path(&format!("/staff/deviations/{r}/anmalan/gdpr"))
        .await;
    b.assert_accessible("the preview").await;
    let main = b.text("main").await;
    for (_, v) in filled {
        assert!(main.contains(v), "{v} not in the preview: {main}");
    }
    let sha = b.text("code.hash").await;
    assert_eq!(sha.len(), 64, "{sha}");

    // The PDF, downloaded with the browser's own session.
    let got = b
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch(document.querySelector('a[href$=\"/gdpr/pdf\"]').href, {credentials: 'same-origin'})
               .then(r => r.arrayBuffer())
               .then(buf => { let s = ''; new Uint8Array(buf).forEach(x => s += String.fromCharCode(x)); done(btoa(s)); })
               .catch(e => done('error: ' + e));",
            vec![],
        )
        .await
        .expect("pdf fetched");
    let pdf = base64::engine::general_purpose::STANDARD
        .decode(got.as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("not base64 ({e}): {got}"));
    let text = pdf_text(&pdf);
    for (_, v) in filled {
        assert!(text.contains(v), "{v} not in the PDF: {text}");
    }
    for v in [
        "2026-03-26 14:05",
        "Elever",
        "Personnummer eller samordningsnummer",
        "Uppgifter om hälsa",
        "Röjande av uppgifter som omfattas av sekretess",
        "De berörda informeras",
        &sha[..16],
    ] {
        assert!(text.contains(v), "{v} not in the PDF: {text}");
    }

    // Recorded as sent: the filing keeps the hash of what was previewed.
    set_value(&b, "#filed_at", "2026-03-28T11:00").await;
    b.fill("#their_reference", "IMY-2026-77").await;
    b.click("form[action$='/filing'] button[type=submit]").await;
    b.wait_for_path(&format!("/staff/deviations/{r}")).await;
    let (s, d) =
        crate::helpers::bearer_get(&app, &tok["dso"], &format!("/api/v1/deviations/{r}")).await;
    assert_eq!(s, 200);
    let d: Value = serde_json::from_str(&d).unwrap();
    assert_eq!(d["filings"][0]["content_sha256"], sha.as_str(), "{d}");
    assert_eq!(d["filings"][0]["their_reference"], "IMY-2026-77");
    b.close().await;
}
