//! Case work in a real headless Chromium: the CISO assigns an owner and a deputy, and
//! merges twelve reports of one supplier breach into one incident from the register;
//! classified major, the incident is escalated once (real SMTP on loopback). axe checks
//! every page on the way.

use std::sync::Arc;

use avvik::clock::SystemClock;
use serde_json::{json, Value};

use crate::browser::{sign_in, Browser};
use crate::browser_filings::wait_text;
use crate::notify::smtp::{Mode, SmtpSink};
use crate::notify::{mail_to_sink, to, CISO, KONTAKT, KS, LG};

#[tokio::test]
async fn the_ciso_assigns_handlers_and_merges_twelve_reports_into_one_incident() {
    let sink = SmtpSink::start(Mode::Normal).await;
    let port = sink.port();
    let app =
        crate::helpers::TestApp::spawn_with(|c| mail_to_sink(c, port), Arc::new(SystemClock)).await;
    let _tok = crate::authz::tokens(&app).await;
    let mut refs = Vec::new();
    for i in 0..12 {
        let r: Value = app
            .post_json(
                "/api/v1/deviations",
                json!({"title": format!("Misstänkt intrång hos leverantören, rapport {i}"),
                       "description": "Nätfiske i leverantörens namn", "sector": "Socialtjänsten"}),
            )
            .await
            .json()
            .await
            .unwrap();
        refs.push(r["reference"].as_str().unwrap().to_string());
    }
    let incident = refs[0].clone();

    let b = Browser::start(&app.base).await;
    sign_in(&b, CISO, "/staff").await;
    b.assert_accessible("the register with the merge form")
        .await;
    for r in &refs[1..] {
        b.click(&format!("#pick-{r}")).await;
    }
    b.fill("#merge-incident", &incident).await;
    b.click("form#merge button[type=submit]").await;
    b.wait_for_path(&format!("/staff/deviations/{incident}"))
        .await;
    let main = b.text("main").await;
    assert!(main.contains("Rapporter om samma incident (11)"), "{main}");
    b.assert_accessible("the incident with its reports").await;

    // Owner and deputy, chosen from the people who may see it.
    b.client
        .find(fantoccini::Locator::Css("#handlers-owner"))
        .await
        .unwrap()
        .select_by_value(KONTAKT)
        .await
        .unwrap();
    b.client
        .find(fantoccini::Locator::Css("#handlers-deputy"))
        .await
        .unwrap()
        .select_by_value(CISO)
        .await
        .unwrap();
    b.click("form[action$='/handlers'] button[type=submit]")
        .await;
    wait_text(&b, &format!("Handläggare: {KONTAKT}. Ersättare: {CISO}.")).await;
    assert_eq!(b.value("#handlers-owner").await, KONTAKT);
    assert_eq!(b.value("#handlers-deputy").await, CISO);

    // Classified major once, on the incident.
    b.click("#severity-major").await;
    b.client
        .find(fantoccini::Locator::Css("#category"))
        .await
        .unwrap()
        .select_by_label("obehörig åtkomst")
        .await
        .unwrap();
    b.click("#pdb-no").await;
    b.click("form[action$='/classify'] button[type=submit]")
        .await;
    wait_text(&b, "Klassad som större avvikelse").await;
    b.assert_accessible("the classified incident").await;

    // A report shows where it belongs and offers no classification of its own.
    b.goto(&format!("/staff/deviations/{}", refs[4])).await;
    let main = b.text("main").await;
    assert!(
        main.contains(&format!("kopplad till incidenten {incident}")),
        "{main}"
    );
    assert!(b
        .client
        .find(fantoccini::Locator::Css("form[action$='/classify']"))
        .await
        .is_err());
    b.assert_accessible("a report of the incident").await;
    b.close().await;

    // One escalation to each board member, for the incident only.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let want: Vec<String> = {
        let mut v: Vec<String> = LG.iter().chain(KS.iter()).map(|s| s.to_string()).collect();
        v.sort();
        v
    };
    loop {
        let got = to(&sink.messages(), "Större avvikelse");
        if got == want || std::time::Instant::now() > deadline {
            assert_eq!(got, want);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(sink
        .messages()
        .iter()
        .filter(|m| m.subject().contains("Större avvikelse"))
        .all(|m| m.subject().contains(&incident)));
    let assigned = to(&sink.messages(), "Du är handläggare");
    assert_eq!(assigned, vec![KONTAKT.to_string()]);
}

/// Attaches a file to the file input `css` by its path (WebDriver types the path).
async fn attach(b: &Browser, css: &str, path: &std::path::Path) {
    b.client
        .find(fantoccini::Locator::Css(css))
        .await
        .unwrap()
        .send_keys(&path.display().to_string())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_reporter_attaches_a_pdf_in_the_form_and_on_the_status_page() {
    let app = crate::helpers::TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let pdf = dir.path().join("skarmbild-av-mejlet.pdf");
    std::fs::write(&pdf, crate::uploads::PDF).unwrap();
    let fake = dir.path().join("rapport.pdf");
    std::fs::write(&fake, b"<html><script>alert(1)</script></html>").unwrap();

    let b = Browser::start(&app.base).await;
    b.goto("/").await;
    b.assert_accessible("the report form with a file input")
        .await;
    b.fill("#title", "Nätfiskemejl med bilaga").await;
    b.fill("#description", "Mejlet bad om mitt lösenord").await;
    b.click("#anonymous").await;
    // HTML under a PDF name is refused at the input.
    attach(&b, "#bilaga", &fake).await;
    b.click("form[action='/'] button[type=submit]").await;
    wait_text(&b, "den sortens fil tas inte emot").await;
    b.assert_accessible("the report form with a refused file")
        .await;
    attach(&b, "#bilaga", &pdf).await;
    b.click("form[action='/'] button[type=submit]").await;
    b.wait_for_path("/receipt").await;
    let link = b
        .client
        .find(fantoccini::Locator::Css(".status-link a"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .expect("status link");

    // On the status page: another PDF, without text.
    b.goto(&link).await;
    b.assert_accessible("the status page with a file input")
        .await;
    let mut second = crate::uploads::PDF.to_vec();
    second.extend_from_slice(b"% en andra sida\n");
    std::fs::write(pdf.with_file_name("andra.pdf"), second).unwrap();
    attach(&b, "#bilaga", &pdf.with_file_name("andra.pdf")).await;
    b.click("main form button[type=submit]").await;
    wait_text(&b, "Din information har lagts till").await;
    b.close().await;

    let d = app.app_state.services.register.read().list()[0].clone();
    let names: Vec<&str> = d.attachments.iter().map(|a| a.filename.as_str()).collect();
    assert_eq!(names, ["skarmbild-av-mejlet.pdf", "andra.pdf"], "{d:?}");
    assert!(d
        .attachments
        .iter()
        .all(|a| a.content_type == "application/pdf" && a.from_reporter));
}
