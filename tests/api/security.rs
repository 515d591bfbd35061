//! What a penetration test found, each reproduced as an attack that must fail: CSRF
//! through the API cookie, an admin who makes themselves anyone, forged e-mail comments,
//! receipts to anyone, lockout as a weapon, titles in the draft annual report, and the
//! informational findings. SECURITY.md names the test for each promise.

use std::net::SocketAddr;

use serde_json::{json, Value};

use crate::browser::Browser;
use crate::helpers::TestApp;
use crate::staff_ui::{csrf_token, login, PASSWORD};

async fn report(app: &TestApp, title: &str) -> String {
    let r = app
        .post_json(
            "/api/v1/deviations",
            json!({"title": title, "description": "test", "sector": "Socialtjänsten",
                   "reporter": {"name": "Anna", "email": "anna@kommunen.example"}}),
        )
        .await;
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["reference"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A page on its own loopback port (another origin, the same site for the browser's
/// SameSite rules) that posts `body_name=body_value` as `text/plain` to `action` as soon
/// as it loads: the classic JSON CSRF.
async fn attacker_site(action: String, name: &'static str, value: &'static str) -> SocketAddr {
    let html = format!(
        "<!doctype html><html><body><form method=\"post\" enctype=\"text/plain\" action=\"{action}\">\
         <input type=\"hidden\" name='{name}' value='{value}'></form>\
         <script>document.forms[0].submit();</script></body></html>"
    );
    let router = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let html = html.clone();
            async move { axum::response::Html(html) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

/// Finding 1: a text/plain form on another port of the same host, opened by a signed-in
/// CISO in Chromium, must not add a comment (to the reporter) in the CISO's name.
#[tokio::test]
async fn a_cross_origin_form_cannot_write_through_the_api_in_chromium() {
    let app = TestApp::spawn().await;
    crate::authz::tokens(&app).await;
    let reference = report(&app, "Nätfiske").await;
    let b = Browser::start(&app.base).await;
    b.goto("/staff/login").await;
    b.fill("#email", "ciso@kommunen.example").await;
    b.fill("#password", PASSWORD).await;
    b.click("main form button[type=submit]").await;
    b.wait_for_path("/staff").await;
    // The browser holds a working session (the attack would have something to ride on).
    b.goto(&format!("/staff/deviations/{reference}")).await;
    assert_eq!(b.path().await, format!("/staff/deviations/{reference}"));

    // Body: {"to_reporter":true,"text":"Klicka här = http://evil.example"}
    let site = attacker_site(
        format!("{}/api/v1/deviations/{reference}/comments", app.base),
        "{\"to_reporter\":true,\"text\":\"Klicka här ",
        " http://evil.example\"}",
    )
    .await;
    b.client
        .goto(&format!("http://{site}/"))
        .await
        .expect("attacker page");
    // The form submits on load; wait until the browser shows the API's answer.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let url = b.client.current_url().await.unwrap();
        if url.port() != Some(site.port()) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the form was not sent"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let answer = b.client.source().await.unwrap();
    let comments = {
        let reg = app.app_state.services.register.read();
        reg.by_reference(avvik::domain::Reference::parse(&reference).unwrap())
            .unwrap()
            .comments
            .clone()
    };
    assert!(comments.is_empty(), "CSRF wrote: {comments:?}");
    // Refused for riding on the session cookie: so the browser did send it, and the old
    // code would have taken the comment.
    assert!(
        answer.contains("urn:avvik:problem:bearer-required"),
        "{answer}"
    );
    b.close().await;
}

/// Finding 1 without a browser: the cookie never authorizes an API write, and a write
/// that is not JSON is 415, with a bearer token too.
#[tokio::test]
async fn api_writes_need_a_bearer_token_and_a_json_body() {
    let app = TestApp::spawn().await;
    let tok = crate::authz::tokens(&app).await;
    let reference = report(&app, "Förlorad dator").await;
    let url = format!("{}/api/v1/deviations/{reference}/comments", app.base);
    let ciso = login(&app, "ciso@kommunen.example").await;
    // Reading with the cookie still works (downloads from the pages).
    let r = ciso
        .get(format!("{}/api/v1/deviations/{reference}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for content_type in ["text/plain", "application/json"] {
        let r = ciso
            .post(&url)
            .header("content-type", content_type)
            .header("origin", "http://127.0.0.1:1")
            .body(r#"{"to_reporter":true,"text":"x"}"#)
            .send()
            .await
            .unwrap();
        assert!(
            [401, 415].contains(&r.status().as_u16()),
            "{content_type}: {}",
            r.status()
        );
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{content_type}"
        );
    }
    let r = app
        .client
        .post(&url)
        .bearer_auth(&tok["ciso"])
        .header("content-type", "text/plain")
        .body(r#"{"to_reporter":false,"text":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], 415);
    let r = app
        .client
        .post(&url)
        .bearer_auth(&tok["ciso"])
        .json(&json!({"to_reporter": false, "text": "Med nyckel"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let reg = app.app_state.services.register.read();
    let d = reg
        .by_reference(avvik::domain::Reference::parse(&reference).unwrap())
        .unwrap();
    assert_eq!(d.comments.len(), 1);
    assert_eq!(d.comments[0].text, "Med nyckel");
    let _ = csrf_token;
}

fn upload(app: &TestApp, raw: String) -> impl std::future::Future<Output = Value> {
    let req = app
        .client
        .post(format!("{}/api/v1/intake/email", app.base))
        .bearer_auth("intake-test-token-0123")
        .header("content-type", "message/rfc822")
        .body(raw)
        .send();
    async move {
        let r = req.await.unwrap();
        assert_eq!(r.status(), 202);
        r.json::<Value>().await.unwrap()
    }
}

fn reply(from: &str, reference: &str, n: u32, auth: &str, text: &str) -> String {
    format!(
        "{auth}From: <{from}>\r\nTo: avvikelse@kommunen.example\r\nSubject: Re: [{reference}] Nätfiske\r\n\
         Message-ID: <reply-{n}@kommunen.example>\r\nDate: Tue, 1 Dec 2026 10:00:00 +0100\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n"
    )
}

/// Finding 3: a mail with `From: ciso@…` and the reference in the subject is not an
/// internal comment in the CISO's name unless the trusted MTA authenticated the sender;
/// kept as an unverified e-mail, and the timeline says so.
#[tokio::test]
async fn a_forged_sender_does_not_comment_in_a_staff_members_name() {
    let app = TestApp::spawn_with(
        |c| {
            c.intake.token = "intake-test-token-0123".into();
            c.intake.trusted_authserv_ids = vec!["mx.kommunen.example".into()];
        },
        std::sync::Arc::new(avvik::clock::SystemClock),
    )
    .await;
    crate::authz::tokens(&app).await;
    let reference = report(&app, "Nätfiske").await;
    let ciso = "ciso@kommunen.example";
    // No Authentication-Results at all; one from a server not trusted; one trusted but
    // for another domain; one trusted and aligned.
    let cases = [
        ("", "Förfalskad 1"),
        (
            "Authentication-Results: evil.example; dkim=pass header.d=kommunen.example\r\n",
            "Förfalskad 2",
        ),
        (
            "Authentication-Results: mx.kommunen.example; dkim=pass header.d=evil.example; dmarc=fail header.from=kommunen.example\r\n",
            "Förfalskad 3",
        ),
        (
            "Authentication-Results: mx.kommunen.example;\r\n dkim=pass (signature ok) header.d=kommunen.example header.s=s1\r\n",
            "Äkta",
        ),
    ];
    for (n, (auth, text)) in cases.iter().enumerate() {
        let v = upload(&app, reply(ciso, &reference, n as u32, auth, text)).await;
        assert_eq!(v["outcome"], "comment", "{v}");
    }
    {
        let reg = app.app_state.services.register.read();
        let d = reg
            .by_reference(avvik::domain::Reference::parse(&reference).unwrap())
            .unwrap();
        assert_eq!(d.comments.len(), 4);
        for c in &d.comments[..3] {
            assert!(c.unverified_email, "{c:?}");
            assert_ne!(c.by, "user:ciso@kommunen.example", "{c:?}");
            assert!(!c.from_reporter && !c.to_reporter);
        }
        assert!(!d.comments[3].unverified_email);
        assert_eq!(d.comments[3].by, "user:ciso@kommunen.example");
    }
    // The stored event carries the mark.
    let id = {
        let reg = app.app_state.services.register.read();
        reg.by_reference(avvik::domain::Reference::parse(&reference).unwrap())
            .unwrap()
            .id
    };
    let records = app.app_state.services.store.read_stream(id, 1).unwrap();
    let comments: Vec<&Value> = records
        .iter()
        .filter(|r| r.event_type == "CommentAdded")
        .map(|r| &r.data)
        .collect();
    assert_eq!(comments[0]["unverified_email"], true);
    assert!(
        comments[3].get("unverified_email").is_none(),
        "old shape kept"
    );
    // The staff timeline marks it.
    let staff = login(&app, ciso).await;
    let html = staff
        .get(format!("{}/staff/deviations/{reference}", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(html.matches("Overifierad e-post").count(), 3, "{html}");
}

/// An event from before the field reads as before: a verified comment.
#[test]
fn old_comment_events_read_as_before() {
    let old: avvik::domain::deviation::CommentAdded =
        serde_json::from_value(json!({"text": "x", "to_reporter": false, "from_reporter": true}))
            .unwrap();
    assert!(!old.unverified_email);
    assert_eq!(
        serde_json::to_value(&old).unwrap(),
        json!({"text": "x", "to_reporter": false, "from_reporter": true})
    );
}

/// Finding 4: no receipt e-mail to an address outside the municipality's domains (the
/// page says so); inside, the title is quoted and its links are not clickable.
#[tokio::test]
async fn receipts_go_only_to_own_domains_with_inert_titles() {
    use crate::notify::smtp::{Mode, SmtpSink};
    let sink = SmtpSink::start(Mode::Normal).await;
    let clock = std::sync::Arc::new(avvik::clock::ManualClock::new(crate::notify::t(
        "2026-03-27T09:30:00Z",
    )));
    let app = crate::notify::app_at(sink.port(), clock.clone()).await;
    let title = "Logga in på https://evil.example/konto och www.evil.example";
    let r = app
        .post_json(
            "/api/v1/deviations",
            json!({"title": title, "description": "x",
                   "reporter": {"name": "Mallory", "email": "victim@elsewhere.example"}}),
        )
        .await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<Value>().await.unwrap()["receipt_emailed"], false);
    let r = app
        .post_json(
            "/api/v1/deviations",
            json!({"title": title, "description": "x",
                   "reporter": {"name": "Anna", "email": "anna@kommunen.example"}}),
        )
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["receipt_emailed"], true);
    crate::notify::deliver(&app, &clock).await;
    let messages = sink.messages();
    let receipts: Vec<_> = messages
        .iter()
        .filter(|m| m.subject().contains("Vi har tagit emot din rapport"))
        .collect();
    let rcpts: Vec<String> = receipts.iter().map(|m| m.rcpt()).collect();
    assert_eq!(
        rcpts,
        ["anna@kommunen.example"],
        "no receipt to another domain"
    );
    let m = receipts[0];
    assert!(!m.text().contains("https://evil"), "{}", m.text());
    assert!(
        m.text()
            .contains("”Logga in på https[:]//evil.example/konto och www[.]evil.example”"),
        "{}",
        m.text()
    );
    assert!(!m.html().contains("https://evil"), "{}", m.html());
    assert!(!m.html().contains("<a href=\"https[:]"), "{}", m.html());
    assert!(m.html().contains("<q>"), "{}", m.html());

    // The form's receipt page says that no e-mail comes.
    let mut s = crate::helpers::WebSession::new(&app.base);
    let csrf = s.get("/").await.csrf_token();
    let r = s
        .post_form(
            "/",
            &[
                ("authenticity_token", csrf.as_str()),
                ("title", "Borttappad mobil"),
                ("description", "Jag tappade mobilen."),
                ("reporter_name", "Mallory"),
                ("reporter_email", "victim@elsewhere.example"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let page = s.get("/receipt").await;
    assert!(
        page.body.contains("Inget kvitto med e-post"),
        "{}",
        page.body
    );
    let mut s = crate::helpers::WebSession::new(&app.base);
    let csrf = s.get("/").await.csrf_token();
    s.post_form(
        "/",
        &[
            ("authenticity_token", csrf.as_str()),
            ("title", "Borttappad mobil"),
            ("description", "Jag tappade mobilen."),
            ("reporter_name", "Anna"),
            ("reporter_email", "anna@kommunen.example"),
        ],
    )
    .await;
    let page = s.get("/receipt").await;
    assert!(!page.body.contains("Inget kvitto med e-post"));
}

async fn login_from(app: &TestApp, email: &str, password: &str, from: &str) -> (u16, String) {
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
    let token = csrf_token(&html);
    let r = client
        .post(format!("{}/staff/login", app.base))
        .header("x-forwarded-for", from)
        .form(&[
            ("authenticity_token", token.as_str()),
            ("email", email),
            ("password", password),
            ("next", ""),
        ])
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.text().await.unwrap_or_default())
}

/// Finding 5: an attacker's failed logins slow down the attacker's address only; the
/// CISO sees who is being slowed down, and from where.
#[tokio::test]
async fn failed_logins_do_not_lock_the_owner_out_from_another_address() {
    let app = TestApp::spawn_with(
        |c| c.http.trusted_proxies = vec!["127.0.0.1/32".into()],
        // A clock that stands still: a wait cannot run out while the test runs, however
        // slow the hashing is on a loaded machine.
        std::sync::Arc::new(avvik::clock::ManualClock::new(chrono::Utc::now())),
    )
    .await;
    crate::authz::tokens(&app).await;
    let attacker = "192.0.2.66";
    for _ in 0..6 {
        let (s, _) = login_from(
            &app,
            "ciso@kommunen.example",
            "fel lösenord 12345",
            attacker,
        )
        .await;
        assert_eq!(s, 401);
    }
    // The attacker, even with the right password, must wait now.
    let (s, body) = login_from(&app, "ciso@kommunen.example", PASSWORD, attacker).await;
    assert_eq!(s, 401);
    assert!(body.contains("Vänta"), "{body}");
    // The owner from their own address gets in at once.
    let (s, _) = login_from(&app, "ciso@kommunen.example", PASSWORD, "198.51.100.7").await;
    assert_eq!(s, 303, "the owner is not locked out");
    // The CISO's list names account and address; others may not see it.
    let ciso = login(&app, "ciso@kommunen.example").await;
    let html = ciso
        .get(format!("{}/staff", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("href=\"/staff/security/logins\""));
    let r = ciso
        .get(format!("{}/staff/security/logins", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("ciso@kommunen.example") && html.contains(attacker),
        "{html}"
    );
    assert!(!html.contains("198.51.100.7"));
    let admin = login(&app, "admin@kommunen.example").await;
    let r = admin
        .get(format!("{}/staff/security/logins", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

/// Finding 6: ledning sees counts, not titles, in the draft annual report; CISO and
/// auditor see the titles.
#[tokio::test]
async fn the_draft_annual_report_shows_ledning_no_titles() {
    let app = TestApp::spawn().await;
    let tok = crate::authz::tokens(&app).await;
    let secret_title = "Journal för Kalle Karlsson skickad fel";
    report(&app, secret_title).await;
    let year = avvik::domain::stockholm_year(chrono::Utc::now());
    for (who, sees) in [("ciso", true), ("auditor", true), ("ledning", false)] {
        for format in ["json", "csv"] {
            let r = app
                .client
                .get(format!(
                    "{}/api/v1/reports/annual/{year}?format={format}",
                    app.base
                ))
                .bearer_auth(&tok[who])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{who}");
            let body = r.text().await.unwrap();
            assert_eq!(body.contains(secret_title), sees, "{who} {format}: {body}");
            if !sees {
                assert!(
                    body.contains("AVV-"),
                    "the reference and counts stay: {body}"
                );
            }
        }
    }
    let ledning = login(&app, "ledning@kommunen.example").await;
    let html = ledning
        .get(format!("{}/staff/reports/{year}", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!html.contains(secret_title));
}

/// Finding 7a: a password reset revokes the account's API tokens unless the admin unticks
/// the box; the revocation is an event.
#[tokio::test]
async fn a_password_reset_revokes_api_tokens_by_default() {
    let app = TestApp::spawn().await;
    let tok = crate::authz::tokens(&app).await;
    let admin = login(&app, "admin@kommunen.example").await;
    let call = |t: String| {
        let c = app.client.clone();
        let url = format!("{}/api/v1/deviations", app.base);
        async move {
            c.get(url)
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let id = |e: &str| {
        avvik::auth::accounts::account_id(&avvik::domain::EmailAddress::parse(e).unwrap())
    };
    let page = |e: &str| format!("{}/staff/admin/accounts/{}", app.base, id(e));
    let html = admin
        .get(page("dso@kommunen.example"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("name=\"revoke_tokens\" value=\"ja\" checked"),
        "{html}"
    );
    let token = csrf_token(&html);
    // Kept: offered and unticked.
    let r = admin
        .post(format!("{}/password", page("dso@kommunen.example")))
        .form(&[
            ("authenticity_token", token.as_str()),
            ("password", "ett nytt långt lösenord"),
            ("revoke_tokens_offered", "ja"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(call(tok["dso"].clone()).await, 200);
    // Default: revoked.
    let r = admin
        .post(format!("{}/password", page("ciso@kommunen.example")))
        .form(&[
            ("authenticity_token", token.as_str()),
            ("password", "ett nytt långt lösenord"),
            ("revoke_tokens_offered", "ja"),
            ("revoke_tokens", "ja"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(call(tok["ciso"].clone()).await, 401);
    let records = app
        .app_state
        .services
        .store
        .read_stream(id("ciso@kommunen.example"), 1)
        .unwrap();
    let last: Vec<&str> = records
        .iter()
        .rev()
        .take(2)
        .map(|r| r.event_type.as_str())
        .collect();
    assert_eq!(last, ["ApiTokenRevoked", "PasswordChanged"]);
}

/// Finding 7b: a `next` with CR/LF after login is ignored, not a 500.
#[tokio::test]
async fn a_next_parameter_with_control_characters_is_ignored() {
    let app = TestApp::spawn().await;
    crate::authz::tokens(&app).await;
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let html = client
        .get(format!(
            "{}/staff/login?next=%2Fstaff%0D%0ASet-Cookie%3A%20x%3D1",
            app.base
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = csrf_token(&html);
    let r = client
        .post(format!("{}/staff/login", app.base))
        .form(&[
            ("authenticity_token", token.as_str()),
            ("email", "ciso@kommunen.example"),
            ("password", PASSWORD),
            ("next", "/staff\r\nSet-Cookie: x=1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/staff");
}

/// Finding 7c: an attachment that can run script is saved with a neutral extension.
#[tokio::test]
async fn script_attachments_download_with_a_neutral_extension() {
    let app = TestApp::spawn_with(
        |c| c.intake.token = "intake-test-token-0123".into(),
        std::sync::Arc::new(avvik::clock::SystemClock),
    )
    .await;
    let tok = crate::authz::tokens(&app).await;
    let raw = "From: Olle <olle@kommunen.example>\r\nTo: avvikelse@kommunen.example\r\n\
        Subject: Konstig bilaga\r\nMessage-ID: <att-1@kommunen.example>\r\nMIME-Version: 1.0\r\n\
        Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nSe bilagan.\r\n\
        --b\r\nContent-Type: text/html; name=\"faktura.html\"\r\nContent-Disposition: attachment; filename=\"faktura.html\"\r\n\r\n\
        <script>alert(1)</script>\r\n--b\r\nContent-Type: image/svg+xml\r\nContent-Disposition: attachment; filename=\"logo.svg\"\r\n\r\n\
        <svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>\r\n\
        --b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"rapport.pdf\"\r\n\r\n%PDF-1.4\r\n--b--\r\n";
    let v = upload(&app, raw.to_string()).await;
    assert_eq!(v["outcome"], "created", "{v}");
    let reference = v["reference"].as_str().unwrap();
    let list: Value = app
        .client
        .get(format!(
            "{}/api/v1/deviations/{reference}/attachments",
            app.base
        ))
        .bearer_auth(&tok["ciso"])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut saved = Vec::new();
    for a in list.as_array().unwrap() {
        let sha = a["sha256"].as_str().unwrap();
        let r = app
            .client
            .get(format!(
                "{}/api/v1/deviations/{reference}/attachments/{sha}",
                app.base
            ))
            .bearer_auth(&tok["ciso"])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        saved.push(
            r.headers()["content-disposition"]
                .to_str()
                .unwrap()
                .to_string(),
        );
    }
    saved.sort();
    assert_eq!(saved.len(), 3, "{saved:?}");
    assert!(
        saved
            .iter()
            .any(|d| d.contains("filename=\"faktura.html.txt\"")),
        "{saved:?}"
    );
    assert!(
        saved
            .iter()
            .any(|d| d.contains("filename=\"logo.svg.txt\"")),
        "{saved:?}"
    );
    assert!(
        saved.iter().any(|d| d.contains("filename=\"rapport.pdf\"")),
        "{saved:?}"
    );
    assert!(saved
        .iter()
        .all(|d| !d.ends_with(".html\"") && !d.contains(".svg\";")));
}
