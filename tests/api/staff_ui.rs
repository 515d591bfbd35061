//! The staff web UI: login, register, deviation page, actions through forms (with CSRF),
//! and every user-supplied string inert in the staff pages.

use serde_json::{json, Value};

use crate::helpers::TestApp;

pub const PASSWORD: &str = "ett långt lösenord 123";

/// A cookie-keeping client, logged in as `email`.
pub async fn login(app: &TestApp, email: &str) -> reqwest::Client {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    login_with(app, email, client).await
}

/// Signs `client` (which keeps cookies) in as `email`.
pub async fn login_with(app: &TestApp, email: &str, client: reqwest::Client) -> reqwest::Client {
    let page = client
        .get(format!("{}/staff/login", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let token = csrf_token(&html);
    let r = client
        .post(format!("{}/staff/login", app.base))
        .form(&[
            ("authenticity_token", token.as_str()),
            ("email", email),
            ("password", PASSWORD),
            ("next", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "login as {email}");
    client
}

pub fn csrf_token(html: &str) -> String {
    let i = html
        .find("name=\"authenticity_token\" value=\"")
        .expect("form has a CSRF token");
    let rest = &html[i + "name=\"authenticity_token\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

async fn get_html(client: &reqwest::Client, url: &str) -> (u16, String) {
    let r = client.get(url).send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.text().await.unwrap())
}

#[tokio::test]
async fn login_register_and_classify_through_the_forms() {
    let app = TestApp::spawn().await;
    crate::authz::tokens(&app).await;
    let r = app
        .post_json("/api/v1/deviations", json!({"title": "Obehörig inloggning", "description": "Okänd IP", "sector": "Socialtjänsten"}))
        .await;
    let reference = r.json::<Value>().await.unwrap()["reference"]
        .as_str()
        .unwrap()
        .to_string();

    // Not logged in: the staff pages send you to the login page.
    let anon = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = anon
        .get(format!("{}/staff", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/staff/login"));

    // Wrong password: 401 page, no session.
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let html = client
        .get(format!("{}/staff/login", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let r = client
        .post(format!("{}/staff/login", app.base))
        .form(&[
            ("authenticity_token", csrf_token(&html).as_str()),
            ("email", "ciso@kommunen.example"),
            ("password", "fel lösenord här"),
            ("next", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Fel e-postadress eller lösenord"));

    let ciso = login(&app, "ciso@kommunen.example").await;
    let (s, html) = get_html(&ciso, &format!("{}/staff", app.base)).await;
    assert_eq!(s, 200);
    assert!(html.contains(&reference) && html.contains("<html lang=\"sv\">"));
    // Filters narrow the register.
    let (_, html) = get_html(&ciso, &format!("{}/staff?status=closed", app.base)).await;
    assert!(!html.contains(&format!(">{reference}<")));

    let url = format!("{}/staff/deviations/{reference}", app.base);
    let (s, html) = get_html(&ciso, &url).await;
    assert_eq!(s, 200);
    let token = csrf_token(&html);
    // Invalid classification: shown again with the error at the form.
    let r = ciso
        .post(format!("{url}/classify"))
        .form(&[
            ("authenticity_token", token.as_str()),
            ("category", "nätfiske"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("Välj mindre eller större avvikelse."),
        "{html}"
    );
    // Valid: major, and it appears in the timeline.
    let r = ciso
        .post(format!("{url}/classify"))
        .form(&[
            ("authenticity_token", token.as_str()),
            ("severity", "major"),
            ("aspect_confidentiality", "3"),
            ("aspect_integrity", ""),
            ("category", "obehörig åtkomst"),
            ("personal_data_breach", "investigating"),
            ("rationale", "Konto med behörighet till journaler"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let (_, html) = get_html(&ciso, &url).await;
    assert!(
        html.contains("Klassad som större avvikelse"),
        "timeline shows the classification"
    );
    assert!(html.contains("Konfidentialitet 3 (allvarlig)"));
    assert!(
        html.contains("Anmälan av personuppgiftsincident till IMY (72 h)"),
        "GDPR clock shown"
    );
    let d = app
        .app_state
        .services
        .register
        .read()
        .by_reference(avvik::domain::Reference::parse(&reference).unwrap())
        .cloned()
        .unwrap();
    assert_eq!(d.severity, Some(avvik::domain::Severity::Major));
    assert_eq!(d.classifications[0].by, "user:ciso@kommunen.example");

    // A form without a CSRF token is refused and changes nothing.
    let r = ciso
        .post(format!("{url}/decide"))
        .form(&[("text", "Utan token")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Filing with a local Stockholm time.
    let r = ciso
        .post(format!("{url}/filing"))
        .form(&[
            ("authenticity_token", token.as_str()),
            ("kind", "gdpr"),
            ("authority", "IMY"),
            ("filed_at", "2026-01-10T10:00"),
            ("their_reference", "IMY-2026-1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let d = app
        .app_state
        .services
        .register
        .read()
        .by_reference(avvik::domain::Reference::parse(&reference).unwrap())
        .cloned()
        .unwrap();
    assert_eq!(
        d.filings[0].filed_at.unwrap().to_rfc3339(),
        "2026-01-10T09:00:00+00:00"
    );
    // Close through the form; the decision form disappears, reopen appears.
    let r = ciso
        .post(format!("{url}/close"))
        .form(&[
            ("authenticity_token", token.as_str()),
            ("resolution", "Kontot spärrat"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let (_, html) = get_html(&ciso, &url).await;
    assert!(html.contains("Återöppna avvikelsen"));
    assert!(!html.contains(&format!("action=\"/staff/deviations/{reference}/decide\"")));

    // Another sector's contact cannot see it at all; the auditor sees it but gets no forms.
    let other = login(&app, "kontakt.bou@kommunen.example").await;
    let (s, _) = get_html(&other, &url).await;
    assert_eq!(s, 404);
    let auditor = login(&app, "revisor@kommunen.example").await;
    let (s, html) = get_html(&auditor, &url).await;
    assert_eq!(s, 200);
    assert!(
        !html.contains("method=\"post\""),
        "an auditor gets no forms"
    );
    let (_, logout_html) = get_html(&auditor, &format!("{}/staff/logout", app.base)).await;
    let r = auditor
        .post(format!("{url}/reopen"))
        .form(&[
            ("authenticity_token", csrf_token(&logout_html).as_str()),
            ("reason", "försök"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Logout ends the session.
    let (_, html) = get_html(&ciso, &format!("{}/staff/logout", app.base)).await;
    let r = ciso
        .post(format!("{}/staff/logout", app.base))
        .form(&[("authenticity_token", csrf_token(&html).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = ciso
        .get(format!("{}/staff", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
}

#[tokio::test]
async fn user_supplied_strings_are_inert_in_staff_pages() {
    let app = TestApp::spawn().await;
    let tok = crate::authz::tokens(&app).await;
    let payloads = [
        "<script>alert(1)</script>",
        "\"onmouseover=alert(1) x=\"",
        "'><img src=x onerror=alert(1)>",
    ];
    let p = payloads.join(" ");
    let r = app
        .post_json(
            "/api/v1/deviations",
            json!({"title": p, "description": p, "asset": p, "reporter": {"name": p, "email": "x@kommunen.example"}, "sector": "Socialtjänsten"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let reference = r.json::<Value>().await.unwrap()["reference"]
        .as_str()
        .unwrap()
        .to_string();
    let api = |path: String, body: Value| {
        let c = app.client.clone();
        let t = tok["ciso"].clone();
        let base = app.base.clone();
        async move {
            let r = c
                .post(format!("{base}{path}"))
                .bearer_auth(t)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{path}: {}", r.status());
        }
    };
    api(format!("/api/v1/deviations/{reference}/classification"), json!({"severity": "major", "category": "nätfiske", "personal_data_breach": "no", "nis2_significant": false, "rationale": p})).await;
    api(
        format!("/api/v1/deviations/{reference}/decisions"),
        json!({"text": p}),
    )
    .await;
    api(
        format!("/api/v1/deviations/{reference}/measures"),
        json!({"description": p, "owner": p, "due": "2026-12-31"}),
    )
    .await;
    api(
        format!("/api/v1/deviations/{reference}/comments"),
        json!({"text": p, "to_reporter": true}),
    )
    .await;
    api(format!("/api/v1/deviations/{reference}/filings"), json!({"kind": "gdpr", "authority": p, "filed_at": "2026-01-01T00:00:00Z", "their_reference": p})).await;
    api(
        format!("/api/v1/deviations/{reference}/close"),
        json!({"resolution": p}),
    )
    .await;
    let ciso = login(&app, "ciso@kommunen.example").await;
    for url in [
        format!("{}/staff", app.base),
        format!("{}/staff/deviations/{reference}", app.base),
    ] {
        let (s, html) = get_html(&ciso, &url).await;
        assert_eq!(s, 200);
        for raw in [
            "<script>alert(1)</script>",
            "<img src=x",
            "\"onmouseover=alert(1)",
        ] {
            assert!(!html.contains(raw), "{url} contains raw {raw}");
        }
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;")
                || html.contains("&#60;script&#62;"),
            "{url} shows the text escaped"
        );
    }
}

#[tokio::test]
async fn the_deviation_page_shows_notices_and_delivery_failures() {
    // SMTP pointed at a closed loopback port: every delivery fails and is recorded.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = TestApp::spawn_with(
        move |c| {
            c.mail.transport = avvik::config::MailTransport::Smtp;
            c.mail.smtp.host = "127.0.0.1".into();
            c.mail.smtp.port = closed;
            c.mail.smtp.tls = avvik::config::TlsMode::None;
            c.mail.smtp.timeout_s = 2;
            c.recipients.ledningsgrupp = vec!["ledning@kommunen.example".into()];
        },
        std::sync::Arc::new(avvik::clock::SystemClock),
    )
    .await;
    let tok = crate::authz::tokens(&app).await;
    let r = app
        .post_json(
            "/api/v1/deviations",
            json!({"title": "Intrång", "description": "d", "sector": "Socialtjänsten"}),
        )
        .await;
    let reference = r.json::<Value>().await.unwrap()["reference"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .client
        .post(format!("{}/api/v1/deviations/{reference}/classification", app.base))
        .bearer_auth(&tok["ciso"])
        .json(&json!({"severity": "major", "category": "obehörig åtkomst", "personal_data_breach": "no", "nis2_significant": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.app_state
        .notify
        .deliver_pending_once(chrono::Utc::now())
        .await;
    let ciso = login(&app, "ciso@kommunen.example").await;
    let (s, html) = get_html(&ciso, &format!("{}/staff/deviations/{reference}", app.base)).await;
    assert_eq!(s, 200);
    assert!(
        html.contains(
            "Större avvikelse rapporterad till ledning@kommunen.example (ledningsgruppen)"
        ),
        "{html}"
    );
    assert!(html.contains("misslyckades, försöker igen"), "{html}");
    assert!(
        html.contains("E-post kunde inte skickas"),
        "the failure is in the timeline: {html}"
    );
}

#[tokio::test]
async fn quarantined_mail_and_attachments_show_in_the_staff_ui() {
    let app = TestApp::spawn_with(
        |c| {
            c.intake.token = "intake-test-token".into();
            c.intake.max_message_bytes = 4096;
        },
        std::sync::Arc::new(avvik::clock::SystemClock),
    )
    .await;
    crate::authz::tokens(&app).await;
    let upload = |raw: String| {
        let c = app.client.clone();
        let url = format!("{}/api/v1/intake/email", app.base);
        async move {
            let r = c
                .post(url)
                .bearer_auth("intake-test-token")
                .header("content-type", "message/rfc822")
                .body(raw)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
            r.json::<Value>().await.unwrap()
        }
    };
    // Over the size limit: quarantined.
    let big = format!(
        "From: Olle <olle@kommunen.example>\r\nTo: avvikelse@kommunen.example\r\nSubject: Stor bilaga\r\nMessage-ID: <big-1@kommunen.example>\r\n\r\n{}\r\n",
        "x".repeat(6000)
    );
    let v = upload(big).await;
    assert_eq!(v["outcome"], "quarantined", "{v}");
    // With an attachment: a deviation whose page lists it.
    let with_attachment = "From: Anna <anna@kommunen.example>\r\nTo: avvikelse@kommunen.example\r\nSubject: =?UTF-8?Q?Borttappat_USB-minne?=\r\nMessage-ID: <att-1@kommunen.example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nMinnet hade kundlistor.\r\n--b\r\nContent-Type: text/plain; name=\"lista.txt\"\r\nContent-Disposition: attachment; filename=\"lista.txt\"\r\n\r\nnamn;telefon\r\n--b--\r\n".to_string();
    let v = upload(with_attachment).await;
    assert_eq!(v["outcome"], "created", "{v}");
    let reference = v["reference"].as_str().unwrap().to_string();
    let ciso = login(&app, "ciso@kommunen.example").await;
    let (s, html) = get_html(&ciso, &format!("{}/staff/intake/quarantine", app.base)).await;
    assert_eq!(s, 200);
    assert!(
        html.contains("olle@kommunen.example") && html.contains("Stor bilaga"),
        "{html}"
    );
    let (_, html) = get_html(&ciso, &format!("{}/staff/deviations/{reference}", app.base)).await;
    assert!(html.contains("lista.txt"), "{html}");
    let href = format!("/api/v1/deviations/{reference}/attachments/");
    let i = html.find(&href).expect("a download link");
    let link: String = html[i..].chars().take_while(|c| *c != '"').collect();
    let r = ciso
        .get(format!("{}{}", app.base, link))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap().trim(), "namn;telefon");
    // A contact of another sector cannot open the quarantine.
    let other = login(&app, "kontakt.bou@kommunen.example").await;
    let (s, _) = get_html(&other, &format!("{}/staff/intake/quarantine", app.base)).await;
    assert_eq!(s, 403);

    // The CISO releases the quarantined message from the page: it becomes a deviation.
    let (_, html) = get_html(&ciso, &format!("{}/staff/intake/quarantine", app.base)).await;
    let token = csrf_token(&html);
    let i = html
        .find("action=\"/staff/intake/quarantine/")
        .expect("a release form");
    let action: String = html[i + "action=\"".len()..]
        .chars()
        .take_while(|c| *c != '"')
        .collect();
    assert!(action.ends_with("/release"), "{action}");
    let post = |client: &reqwest::Client, token: Option<&str>| {
        let mut form = Vec::new();
        if let Some(t) = token {
            form.push(("authenticity_token", t.to_string()));
        }
        client
            .post(format!("{}{action}", app.base))
            .form(&form)
            .send()
    };
    assert_eq!(
        post(&ciso, None).await.unwrap().status(),
        403,
        "no CSRF token"
    );
    let other_token = {
        let (_, html) = get_html(&other, &format!("{}/staff/logout", app.base)).await;
        csrf_token(&html)
    };
    assert_eq!(
        post(&other, Some(&other_token)).await.unwrap().status(),
        403,
        "not the CISO"
    );
    let r = post(&ciso, Some(&token)).await.unwrap();
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with("/staff/deviations/AVV-") && location.ends_with("?sparat=1"),
        "{location}"
    );
    let (s, html) = get_html(&ciso, &format!("{}{location}", app.base)).await;
    assert_eq!(s, 200);
    assert!(html.contains("Stor bilaga"), "{html}");
    // Handled now: no button, and a second try says so.
    let (_, html) = get_html(&ciso, &format!("{}/staff/intake/quarantine", app.base)).await;
    assert!(
        html.contains("Släppt ur karantänen som ny avvikelse"),
        "{html}"
    );
    assert!(!html.contains("/release\""), "{html}");
    let r = post(&ciso, Some(&token)).await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/staff/intake/quarantine?redan=1");
    let (_, html) = get_html(
        &ciso,
        &format!("{}/staff/intake/quarantine?redan=1", app.base),
    )
    .await;
    assert!(html.contains("Meddelandet var redan hanterat."), "{html}");
}

#[tokio::test]
async fn signing_out_ends_the_session_for_copies_of_its_cookie_too() {
    let app = TestApp::spawn().await;
    let tokens = crate::authz::tokens(&app).await;
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let browser = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let browser = login_with(&app, "ciso@kommunen.example", browser).await;
    use reqwest::cookie::CookieStore;
    let copied = jar
        .cookies(&app.base.parse().unwrap())
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(copied.contains("avvik_session="));
    let thief = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let with_copy = || {
        thief
            .get(format!("{}/staff", app.base))
            .header("cookie", copied.as_str())
            .send()
    };
    assert_eq!(with_copy().await.unwrap().status(), 200, "the copy works");

    let (_, html) = get_html(&browser, &format!("{}/staff/logout", app.base)).await;
    let r = browser
        .post(format!("{}/staff/logout", app.base))
        .form(&[("authenticity_token", csrf_token(&html).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = with_copy().await.unwrap();
    assert_eq!(r.status(), 303, "a copy of a signed-out cookie is refused");
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/staff/login"));
    // The sign-out is an event on the account's stream.
    let audit = app
        .client
        .get(format!("{}/api/v1/audit/events", app.base))
        .bearer_auth(&tokens["auditor"])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(audit.matches("\"SignedOut\"").count(), 1, "{audit}");
    // Signing in again gives a new, working session.
    let again = login(&app, "ciso@kommunen.example").await;
    let (s, _) = get_html(&again, &format!("{}/staff", app.base)).await;
    assert_eq!(s, 200);
}
