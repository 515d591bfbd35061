//! Files attached on the web: from the public form, the status page and the staff page,
//! as multipart posts with the CSRF token; the type is sniffed from the bytes, so a
//! `report.pdf` that is HTML is refused; downloads are `application/octet-stream`
//! attachments with `nosniff`; the stored file is sealed.

use reqwest::multipart::{Form, Part};
use serde_json::Value;

use crate::helpers::TestApp;

/// A minimal PDF (the sniffer looks at `%PDF-`).
pub const PDF: &[u8] =
    b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";
const HTML_AS_PDF: &[u8] =
    b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>";

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn token(c: &reqwest::Client, url: &str) -> String {
    let html = c.get(url).send().await.unwrap().text().await.unwrap();
    crate::staff_ui::csrf_token(&html)
}

fn report_form(token: &str, file: (&str, &[u8])) -> Form {
    Form::new()
        .text("authenticity_token", token.to_string())
        .text("title", PDF_REPORT_TITLE)
        .text("description", "Låg kvar en hel dag")
        .text("anonymous", "ja")
        .part(
            "bilaga",
            Part::bytes(file.1.to_vec())
                .file_name(file.0.to_string())
                .mime_str("application/pdf")
                .unwrap(),
        )
}

/// The title `report_a_pdf` reports under.
pub const PDF_REPORT_TITLE: &str = "Utskrift med elevuppgifter i skrivaren";

/// Reports on the public form at `base` with a PDF attached (title [`PDF_REPORT_TITLE`]),
/// as a browser would.
pub(crate) async fn report_a_pdf(base: &str) {
    let web = browser();
    let home = format!("{base}/");
    let r = post_report(&web, &home, ("utskrift.pdf", PDF)).await;
    assert_eq!(r.status(), 303, "the form with a file is taken");
}

/// Posts the public form at `home` with `file` attached, with a fresh CSRF token.
async fn post_report(web: &reqwest::Client, home: &str, file: (&str, &[u8])) -> reqwest::Response {
    let t = token(web, home).await;
    web.post(home)
        .multipart(report_form(&t, file))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn files_come_from_the_form_and_the_status_page_and_html_named_pdf_is_refused() {
    let app = TestApp::spawn().await;
    let tok = crate::authz::tokens(&app).await;
    let web = browser();
    let home = format!("{}/", app.base);

    // HTML bytes under a PDF name: refused at the input, nothing filed.
    let r = post_report(&web, &home, ("report.pdf", HTML_AS_PDF)).await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("report.pdf: den sortens fil tas inte emot"),
        "{html}"
    );
    assert_eq!(app.app_state.services.register.read().list().len(), 0);
    // A PDF under a picture's name: refused too.
    let t = crate::staff_ui::csrf_token(&html);
    let r = web
        .post(&home)
        .multipart(report_form(&t, ("bild.png", PDF)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("innehållet stämmer inte med filnamnet"));

    // A real PDF: filed with the report.
    let r = post_report(&web, &home, ("utskrift.pdf", PDF)).await;
    assert_eq!(r.status(), 303);
    let receipt = web
        .get(format!("{}/receipt", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let i = receipt.find("href=\"/status/").expect("status link");
    let status_path = receipt[i + 6..][..receipt[i + 6..].find('"').unwrap()].to_string();
    let d = app.app_state.services.register.read().list()[0].clone();
    assert_eq!(d.attachments.len(), 1);
    assert_eq!(d.attachments[0].content_type, "application/pdf");
    assert!(d.attachments[0].from_reporter);

    // From the status page: a file alone is enough.
    let status_url = format!("{}{status_path}", app.base);
    let t = token(&web, &status_url).await;
    let text = b"Jag glomde: skrivaren star i plan 3.\n";
    let r = web
        .post(&status_url)
        .multipart(
            Form::new()
                .text("authenticity_token", t)
                .text("text", "")
                .part(
                    "bilaga",
                    Part::bytes(text.to_vec()).file_name("anteckning.txt"),
                ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{:?}", r.text().await);
    let d = app
        .app_state
        .services
        .register
        .read()
        .by_reference(d.reference)
        .cloned()
        .unwrap();
    assert_eq!(d.attachments.len(), 2);
    assert_eq!(d.attachments[1].content_type, "text/plain");

    // Staff download each as a neutral download.
    for (a, bytes) in d.attachments.iter().zip([PDF, &text[..]]) {
        let r = app
            .client
            .get(format!(
                "{}/api/v1/deviations/{}/attachments/{}",
                app.base, d.reference, a.sha256
            ))
            .bearer_auth(&tok["ciso"])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let h = r.headers().clone();
        assert_eq!(h["content-type"], "application/octet-stream");
        assert!(h["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment;"));
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(r.bytes().await.unwrap().as_ref(), bytes);
    }
    let (s, v) = crate::helpers::bearer_get(
        &app,
        &tok["ciso"],
        &format!("/api/v1/deviations/{}", d.reference),
    )
    .await;
    assert_eq!(s, 200);
    let v: Value = serde_json::from_str(&v).unwrap();
    assert_eq!(v["attachments"][0]["filename"], "utskrift.pdf");

    // Sealed at rest: the text is in no file under the data directory.
    let dir = app.stop().await;
    let needle = b"skrivaren star i plan 3";
    let mut hits = Vec::new();
    let mut stack = vec![dir.path().join("data")];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path)
                .unwrap_or_default()
                .windows(needle.len())
                .any(|w| w == needle)
            {
                hits.push(path);
            }
        }
    }
    assert!(hits.is_empty(), "{hits:?}");
}
