//! The DPO's registerutdrag and the läslogg in a real headless Chromium: three reports by
//! one person are found by her address; a kontakt who opened one of them is in its läslogg.

use serde_json::{json, Value};

use crate::browser::{sign_in, sign_out, Browser};
use crate::helpers::TestApp;

const SOC: &str = "Socialtjänsten";

#[tokio::test]
async fn the_dpo_finds_a_reporters_three_deviations_and_who_read_one() {
    let app = TestApp::spawn().await;
    let tok = crate::authz::tokens(&app).await;
    let mut refs = Vec::new();
    for (i, title) in ["Fel mottagare", "Olåst skåp", "Delat lösenord"]
        .iter()
        .enumerate()
    {
        let r: Value = app
            .post_json(
                "/api/v1/deviations",
                json!({
                    "title": title,
                    "description": format!("Händelse nummer {i}"),
                    "sector": SOC,
                    "reporter": {"name": "Anna Andersson", "email": "Anna.Andersson@kommunen.example"},
                }),
            )
            .await
            .json()
            .await
            .unwrap();
        refs.push(r["reference"].as_str().unwrap().to_string());
    }
    // Someone else's report is not in her extract.
    app.post_json(
        "/api/v1/deviations",
        json!({"title": "Annans", "description": "Annan rapportör", "sector": SOC,
               "reporter": {"name": "Bertil Berg", "email": "bertil.berg@kommunen.example"}}),
    )
    .await;
    let _ = &tok;

    let b = Browser::start(&app.base).await;
    // A kontakt in the sector opens one of them.
    sign_in(&b, "kontakt.soc@kommunen.example", "/staff").await;
    b.goto(&format!("/staff/deviations/{}", refs[1])).await;
    assert!(b.text("h1").await.contains("Olåst skåp"));
    sign_out(&b).await;

    // The DPO searches by the address (any case) and gets all three, printable.
    sign_in(&b, "dso@kommunen.example", "/staff").await;
    b.click("nav a[href='/staff/privacy/extract']").await;
    b.wait_for_path("/staff/privacy/extract").await;
    b.assert_accessible("the registerutdrag form").await;
    b.fill("#email", "anna.andersson@KOMMUNEN.example").await;
    b.click("form[action='/staff/privacy/extract'] button[type=submit]")
        .await;
    b.wait_for("#extract-title").await;
    let text = b.text("main").await;
    for (r, title) in refs
        .iter()
        .zip(["Fel mottagare", "Olåst skåp", "Delat lösenord"])
    {
        assert!(text.contains(r.as_str()), "{r} missing: {text}");
        assert!(text.contains(title), "{title} missing: {text}");
    }
    assert!(!text.contains("Annans"), "{text}");
    assert!(text.contains("3 avvikelser"), "{text}");
    b.assert_accessible("the registerutdrag").await;
    b.screenshot("registerutdrag").await;

    // The läslogg of the deviation the kontakt opened names the kontakt.
    b.goto(&format!("/audit/access?deviation={}", refs[1]))
        .await;
    let log = b.text("main").await;
    assert!(log.contains("kontakt.soc@kommunen.example"), "{log}");
    b.assert_accessible("the läslogg").await;
    b.close().await;
}
