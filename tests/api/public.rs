//! The public pages over HTTP: the report form, the receipt, the status page, and what
//! protects them (CSRF, rate limit, escaping, security headers, token-free logs).

use std::sync::Arc;

use avvik::clock::SystemClock;
use avvik::domain::deviation::CommentAdded;
use avvik::domain::Command;
use serde_json::{json, Value};

use crate::helpers::{attr_after, LoggedServer, Page, TestApp, WebSession};

const SCRIPT: &str = "<script>alert(1)</script>";
const ATTR: &str = "\"onmouseover=alert(1) x=\"";

/// A valid form (anonymous), with `extra` fields replacing or adding to it.
fn report_fields<'a>(csrf: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut fields = vec![
        ("authenticity_token", csrf),
        ("title", "Borttappad mobil"),
        ("description", "Jag tappade tjänstemobilen på bussen."),
        ("anonymous", "ja"),
    ];
    for (k, v) in extra {
        fields.retain(|(f, _)| f != k);
        fields.push((k, v));
    }
    fields
}

/// Files a report through the form; returns the session, the reference and the status path.
async fn report_via_form(app: &TestApp, extra: &[(&str, &str)]) -> (WebSession, String, String) {
    let mut s = WebSession::new(&app.base);
    let form = s.get("/").await;
    assert_eq!(form.status, 200);
    let csrf = form.csrf_token();
    let r = s.post_form("/", &report_fields(&csrf, extra)).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), "/receipt");
    let receipt = s.get("/receipt").await;
    assert_eq!(receipt.status, 200, "{}", receipt.body);
    let status_path = attr_after(&receipt.body, "class=\"status-link\"", "href")
        .or_else(|| {
            let i = receipt.body.find("href=\"/status/")?;
            let rest = &receipt.body[i + 6..];
            Some(rest[..rest.find('"')?].to_string())
        })
        .expect("status link on the receipt");
    let reference = receipt
        .body
        .split("class=\"reference\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .expect("reference on the receipt")
        .to_string();
    (s, reference, status_path)
}

fn assert_html(p: &Page) {
    assert!(
        p.header("content-type").starts_with("text/html"),
        "{}",
        p.header("content-type")
    );
    assert!(p.body.contains("<html lang=\"sv\">"));
}

#[tokio::test]
async fn the_form_is_swedish_accessible_html_with_a_csrf_token() {
    let app = TestApp::spawn().await;
    let mut s = WebSession::new(&app.base);
    let p = s.get("/").await;
    assert_eq!(p.status, 200);
    assert_html(&p);
    assert!(!p.csrf_token().is_empty());
    assert!(s.cookies.contains_key("avvik_csrf"), "{:?}", s.cookies);
    let b = &p.body;
    // Every input has a label; landmarks and skip link; no scripts or inline styles.
    for id in [
        "title",
        "description",
        "occurred_date",
        "occurred_time",
        "discovered_date",
        "discovered_time",
        "sector",
        "asset",
        "personal_data",
        "anonymous",
        "reporter_name",
        "reporter_email",
    ] {
        assert!(b.contains(&format!("for=\"{id}\"")), "label for {id}");
        assert!(b.contains(&format!("id=\"{id}\"")), "input {id}");
    }
    assert!(b.contains("type=\"date\"") && b.contains("type=\"time\""));
    for sector in &app.app_state.config.report.sectors {
        assert!(
            b.contains(&format!("<option value=\"{sector}\">")),
            "{sector}"
        );
    }
    assert!(b.contains("href=\"#main\"") && b.contains("<main id=\"main\""));
    assert!(b.contains("<header") && b.contains("<footer"));
    assert!(!b.contains("<script") && !b.contains("style=") && !b.contains("<style"));
}

#[tokio::test]
async fn without_anonymous_reports_the_form_asks_for_name_and_email() {
    let app =
        TestApp::spawn_with(|c| c.report.allow_anonymous = false, Arc::new(SystemClock)).await;
    let mut s = WebSession::new(&app.base);
    let p = s.get("/").await;
    assert!(!p.body.contains("id=\"anonymous\""));
    let csrf = p.csrf_token();
    let r = s.post_form("/", &report_fields(&csrf, &[])).await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("id=\"reporter_name-error\""));
    assert!(r.body.contains("Ange ditt namn."));
    assert_eq!(app.app_state.services.register.read().len(), 0);
}

#[tokio::test]
async fn an_invalid_form_is_shown_again_with_every_value_and_linked_messages() {
    let app = TestApp::spawn().await;
    let mut s = WebSession::new(&app.base);
    let csrf = s.get("/").await.csrf_token();
    let fields = [
        ("authenticity_token", csrf.as_str()),
        ("title", ""),
        ("description", "Skrev <b>fel</b> & skickade"),
        ("occurred_date", "2025-03-30"),
        ("occurred_time", "02:30"),
        ("discovered_date", "2999-01-01"),
        ("discovered_time", "10:00"),
        ("sector", "Socialtjänsten"),
        ("asset", "Procapita"),
        ("personal_data", "ja"),
        ("reporter_name", "Anna Andersson"),
        ("reporter_email", "inte-en-adress"),
    ];
    let p = s.post_form("/", &fields).await;
    assert_eq!(p.status, 422);
    assert_html(&p);
    let b = &p.body;
    assert!(
        b.contains("<title>Fel: "),
        "the title says there are errors"
    );
    // The summary is focusable, announced, and links to each bad input in form order.
    assert!(b.contains("class=\"error-summary\" role=\"alert\""));
    assert!(b.contains("tabindex=\"-1\" autofocus"));
    let summary = b.split("error-summary__list").nth(1).unwrap();
    let summary = summary.split("</ul>").next().unwrap();
    let links: Vec<&str> = summary
        .split("href=\"#")
        .skip(1)
        .map(|l| l.split('"').next().unwrap())
        .collect();
    assert_eq!(
        links,
        [
            "title",
            "occurred_time",
            "discovered_date",
            "reporter_email"
        ]
    );
    // Each message sits at its input and is tied to it.
    for (id, with_hint) in [
        ("title", true),
        ("occurred_time", false),
        ("discovered_date", false),
        ("reporter_email", false),
    ] {
        assert!(b.contains(&format!("id=\"{id}-error\"")), "{id}");
        let described = attr_after(b, &format!("id=\"{id}\" name="), "aria-describedby").unwrap();
        assert!(
            described.contains(&format!("{id}-error")),
            "{id}: {described}"
        );
        if with_hint {
            assert!(
                described.contains(&format!("{id}-hint")),
                "{id}: {described}"
            );
        }
        assert_eq!(
            attr_after(b, &format!("id=\"{id}\" name="), "aria-invalid").as_deref(),
            Some("true"),
            "{id}"
        );
    }
    assert!(b.contains("Fältet måste fyllas i."));
    assert!(b.contains("sommartid"));
    assert!(b.contains("Tidpunkten får inte ligga i framtiden."));
    assert!(b.contains("Ange en giltig e-postadress"));
    // Inputs without errors are not marked.
    assert!(attr_after(b, "id=\"asset\" name=", "aria-invalid").is_none());
    // Every value is kept.
    for (id, value) in [
        ("occurred_date", "2025-03-30"),
        ("occurred_time", "02:30"),
        ("discovered_date", "2999-01-01"),
        ("discovered_time", "10:00"),
        ("asset", "Procapita"),
        ("reporter_name", "Anna Andersson"),
        ("reporter_email", "inte-en-adress"),
    ] {
        assert_eq!(
            attr_after(b, &format!("id=\"{id}\" name="), "value").as_deref(),
            Some(value),
            "{id}"
        );
    }
    assert!(b.contains("&#60;b&#62;fel&#60;/b&#62; &#38; skickade</textarea>"));
    assert!(b.contains("<option value=\"Socialtjänsten\" selected>"));
    assert!(attr_after(b, "id=\"personal_data\"", "value").is_some());
    assert!(b.contains("id=\"personal_data\" name=\"personal_data\" value=\"ja\" checked"));
    assert!(!b.contains("id=\"anonymous\" name=\"anonymous\" value=\"ja\" checked"));
    // The form can be sent again as it is.
    assert!(!p.csrf_token().is_empty());
    assert_eq!(app.app_state.services.register.read().len(), 0);
}

#[tokio::test]
async fn a_valid_form_redirects_to_a_receipt_with_reference_and_private_status_link() {
    let app = TestApp::spawn().await;
    let year = avvik::domain::stockholm_year(chrono::Utc::now());
    let mut s = WebSession::new(&app.base);
    let csrf = s.get("/").await.csrf_token();
    let fields = report_fields(
        &csrf,
        &[
            ("occurred_date", "2025-07-01"),
            ("occurred_time", "09:15"),
            ("discovered_date", "2025-10-26"),
            ("discovered_time", "02:30"),
            ("sector", "Socialtjänsten"),
            ("asset", "Outlook"),
            ("personal_data", "ja"),
            ("anonymous", ""),
            ("reporter_name", "Anna Andersson"),
            ("reporter_email", "anna@kommunen.example"),
        ],
    );
    let fields: Vec<_> = fields
        .into_iter()
        .filter(|(k, _)| *k != "anonymous")
        .collect();
    let r = s.post_form("/", &fields).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), "/receipt");
    // The token travels in an encrypted, HttpOnly, short-lived cookie scoped to the receipt.
    let set_cookie: Vec<&str> = r
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    let receipt_cookie = set_cookie
        .iter()
        .find(|c| c.starts_with("avvik_receipt="))
        .expect("receipt cookie");
    for part in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/receipt",
        "Max-Age=600",
    ] {
        assert!(receipt_cookie.contains(part), "{receipt_cookie}");
    }

    let receipt = s.get("/receipt").await;
    assert_eq!(receipt.status, 200);
    assert_html(&receipt);
    assert_eq!(receipt.header("cache-control"), "no-store");
    let reference = format!("AVV-{year}-0001");
    assert!(receipt.body.contains(&reference), "{}", receipt.body);
    let i = receipt.body.find("href=\"/status/").expect("status link");
    let token = &receipt.body[i + 14..i + 14 + 64];
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
    assert!(!receipt_cookie.contains(token), "the cookie is encrypted");
    assert!(receipt
        .body
        .contains(&format!("http://127.0.0.1:8080/status/{token}")));

    // What was stored: Stockholm times in UTC (summer time; the repeated October hour
    // resolves to its first occurrence), the reporter, the channel.
    {
        let reg = app.app_state.services.register.read();
        let d = reg
            .by_token_hash(&avvik::service::token_hash(token))
            .expect("the link opens the new deviation");
        assert_eq!(d.reference.to_string(), reference);
        let utc = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        assert_eq!(d.occurred_at, Some(utc("2025-07-01T07:15:00Z")));
        assert_eq!(d.discovered_at, utc("2025-10-26T00:30:00Z"));
        assert_eq!(d.sector.as_deref(), Some("Socialtjänsten"));
        assert_eq!(d.asset.as_deref(), Some("Outlook"));
        assert!(d.personal_data_suspected);
        assert_eq!(d.reporter.as_ref().unwrap().name, "Anna Andersson");
        assert_eq!(d.channel, avvik::domain::Channel::Web);
    }

    // Another browser has no receipt.
    let gone = WebSession::new(&app.base).get("/receipt").await;
    assert_eq!(gone.status, 404);
    assert!(gone.body.contains("Kvittot visas inte längre"));
    assert!(!gone.body.contains(token));
}

#[tokio::test]
async fn an_anonymous_report_keeps_no_name_even_if_one_was_typed() {
    let app = TestApp::spawn().await;
    let (_, reference, _) = report_via_form(
        &app,
        &[
            ("reporter_name", "Anna Andersson"),
            ("reporter_email", "anna@kommunen.example"),
        ],
    )
    .await;
    let reg = app.app_state.services.register.read();
    let d = reg
        .by_reference(avvik::domain::Reference::parse(&reference).unwrap())
        .unwrap();
    assert!(d.reporter.is_none());
}

#[tokio::test]
async fn the_status_page_shows_status_messages_for_the_reporter_and_takes_information() {
    let app = TestApp::spawn().await;
    let (mut s, reference, status_path) = report_via_form(&app, &[]).await;
    let r = avvik::domain::Reference::parse(&reference).unwrap();
    let services = &app.app_state.services;
    for (text, to_reporter) in [
        ("Vi har tagit emot din rapport och undersöker saken.", true),
        ("Intern anteckning: kontrollera loggarna.", false),
    ] {
        services
            .execute(
                r,
                Command::Comment(CommentAdded {
                    text: text.into(),
                    to_reporter,
                    from_reporter: false,
                    unverified_email: false,
                }),
                "ciso@kommunen.example",
            )
            .await
            .unwrap();
    }
    let p = s.get(&status_path).await;
    assert_eq!(p.status, 200);
    assert_html(&p);
    assert_eq!(p.header("cache-control"), "no-store");
    assert!(p.body.contains(&reference));
    assert!(p.body.contains("Borttappad mobil"));
    assert!(p.body.contains("under utredning") || p.body.contains("mottagen"));
    assert!(p.body.contains("Vi har tagit emot din rapport"));
    assert!(
        !p.body.contains("Intern anteckning"),
        "internal notes stay internal"
    );
    assert!(
        !p.body.contains("ciso@kommunen.example"),
        "staff are not named"
    );

    // Empty information: 422 with the message at the field.
    let csrf = p.csrf_token();
    let e = s
        .post_form(
            &status_path,
            &[("authenticity_token", &csrf), ("text", "  ")],
        )
        .await;
    assert_eq!(e.status, 422);
    assert!(e.body.contains("id=\"text-error\""));
    assert!(e.body.contains("href=\"#text\""));

    let a = s
        .post_form(
            &status_path,
            &[
                ("authenticity_token", &csrf),
                ("text", "Mobilen hade inget skärmlås."),
            ],
        )
        .await;
    assert_eq!(a.status, 303, "{}", a.body);
    assert_eq!(a.header("location"), format!("{status_path}?sparat=1"));
    let p = s.get(a.header("location")).await;
    assert!(p.body.contains("role=\"status\""));
    assert!(p.body.contains("Mobilen hade inget skärmlås."));
    assert!(p.body.contains("Du skrev"));

    let reg = services.register.read();
    let d = reg.by_reference(r).unwrap();
    let c = d.comments.last().unwrap();
    assert_eq!(c.text, "Mobilen hade inget skärmlås.");
    assert!(c.from_reporter && !c.to_reporter);
    assert_eq!(c.by, "reporter");
}

#[tokio::test]
async fn unknown_status_tokens_and_paths_get_swedish_404_pages() {
    let app = TestApp::spawn().await;
    let mut s = WebSession::new(&app.base);
    for path in [
        format!("/status/{}", "ab".repeat(32)),
        "/status/kort".to_string(),
        "/status/".to_string(),
        "/finns-inte".to_string(),
    ] {
        let p = s.get(&path).await;
        assert_eq!(p.status, 404, "{path}");
        assert_html(&p);
        assert!(p.body.contains("Sidan finns inte"), "{path}");
    }
    // Posting to an unknown token is refused the same way (after the CSRF check).
    let csrf = s.get("/").await.csrf_token();
    let p = s
        .post_form(
            &format!("/status/{}", "cd".repeat(32)),
            &[("authenticity_token", &csrf), ("text", "hej")],
        )
        .await;
    assert_eq!(p.status, 404);
    // Under /api the answer stays problem+json.
    let r = app
        .client
        .get(format!("{}/api/v1/finns-inte", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn forms_without_a_valid_csrf_token_are_refused_403_in_swedish() {
    let app = TestApp::spawn().await;
    let (mut victim, _, status_path) = report_via_form(&app, &[]).await;
    let good = victim.get("/").await.csrf_token();

    // No token at all, with the victim's cookie.
    let p = victim.post_form("/", &report_fields("", &[])).await;
    assert_eq!(p.status, 403);
    assert_html(&p);
    assert!(p.body.contains("Formuläret kunde inte skickas"));
    // A forged token.
    let forged = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=";
    let p = victim.post_form("/", &report_fields(forged, &[])).await;
    assert_eq!(p.status, 403);
    // A real token, but from another browser (the attacker's own session).
    let mut attacker = WebSession::new(&app.base);
    let theirs = attacker.get("/").await.csrf_token();
    let p = victim.post_form("/", &report_fields(&theirs, &[])).await;
    assert_eq!(p.status, 403);
    // The victim's token without the victim's cookie (a cross-site post carries no cookie).
    let p = WebSession::new(&app.base)
        .post_form("/", &report_fields(&good, &[]))
        .await;
    assert_eq!(p.status, 403);
    // The status page's form is protected too.
    let p = WebSession::new(&app.base)
        .post_form(&status_path, &[("text", "Injicerad text")])
        .await;
    assert_eq!(p.status, 403);
    assert!(p.body.contains("Formuläret kunde inte skickas"));
    // Only the first report exists and it has no comment.
    let reg = app.app_state.services.register.read();
    assert_eq!(reg.len(), 1);
    assert!(reg.list()[0].comments.is_empty());
}

#[tokio::test]
async fn public_posts_are_rate_limited_per_ip_with_429() {
    let app =
        TestApp::spawn_with(|c| c.http.rate_limit_per_minute = 3, Arc::new(SystemClock)).await;
    let mut s = WebSession::new(&app.base);
    // Three posts pass the limiter (and fail the CSRF check)...
    for _ in 0..3 {
        assert_eq!(s.post_form("/", &[("title", "x")]).await.status, 403);
    }
    // ...the fourth does not.
    let p = s.post_form("/", &[("title", "x")]).await;
    assert_eq!(p.status, 429);
    assert_html(&p);
    assert!(p.body.contains("För många försök"));
    let retry: u64 = p.header("retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(p.header("x-frame-options"), "DENY");
    // The budget is per address and shared by the limited routes: the JSON API and the
    // status page are refused too, the API with problem+json.
    let r = app
        .post_json(
            "/api/v1/deviations",
            json!({"title": "t", "description": "d"}),
        )
        .await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], 429);
    assert!(v["detail_sv"].as_str().unwrap().contains("För många"));
    let p = s
        .post_form(&format!("/status/{}", "ab".repeat(32)), &[("text", "x")])
        .await;
    assert_eq!(p.status, 429);
    // Reading is not limited.
    assert_eq!(s.get("/").await.status, 200);
    assert_eq!(s.get("/healthz").await.status, 200);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_limit_is_per_forwarded_client() {
    let report = |client: &str| json!({"title": format!("Från {client}"), "description": "d"});
    // Loopback plays the reverse proxy.
    let app = TestApp::spawn_with(
        |c| {
            c.http.rate_limit_per_minute = 2;
            c.http.trusted_proxies = vec!["127.0.0.0/8".into()];
        },
        Arc::new(SystemClock),
    )
    .await;
    let http = reqwest::Client::new();
    let post = |client: &'static str| {
        http.post(format!("{}/api/v1/deviations", app.base))
            .header("x-forwarded-for", format!("198.51.100.99, {client}"))
            .json(&report(client))
            .send()
    };
    for _ in 0..2 {
        assert_eq!(post("203.0.113.1").await.unwrap().status(), 201);
    }
    assert_eq!(post("203.0.113.1").await.unwrap().status(), 429);
    // Another client behind the same proxy has its own budget; the forged left-most
    // entry (the same for both) does not count.
    assert_eq!(post("203.0.113.2").await.unwrap().status(), 201);

    // Without trusted proxies the header is ignored: everyone is the peer.
    let app =
        TestApp::spawn_with(|c| c.http.rate_limit_per_minute = 2, Arc::new(SystemClock)).await;
    let post = |client: &'static str| {
        http.post(format!("{}/api/v1/deviations", app.base))
            .header("x-forwarded-for", client)
            .json(&report(client))
            .send()
    };
    assert_eq!(post("203.0.113.1").await.unwrap().status(), 201);
    assert_eq!(post("203.0.113.2").await.unwrap().status(), 201);
    assert_eq!(post("203.0.113.3").await.unwrap().status(), 429);
}

#[tokio::test]
async fn the_default_rate_limit_lets_ordinary_use_through() {
    let app = TestApp::spawn().await;
    assert_eq!(app.app_state.config.http.rate_limit_per_minute, 60);
    for _ in 0..5 {
        let (_, reference, _) = report_via_form(&app, &[]).await;
        assert!(reference.starts_with("AVV-"));
    }
}

#[tokio::test]
async fn script_and_attribute_injection_is_escaped_everywhere_it_is_shown() {
    // No sector list: the sector is free text, so it can carry the payloads too.
    let app = TestApp::spawn_with(|c| c.report.sectors.clear(), Arc::new(SystemClock)).await;
    let payload = format!("{SCRIPT} {ATTR}");
    let p = payload.as_str();
    let text_fields = ["title", "description", "sector", "asset", "reporter_name"];
    let mut extra: Vec<(&str, &str)> = text_fields.iter().map(|f| (*f, p)).collect();
    extra.push(("reporter_email", "anna@kommunen.example"));
    extra.push(("anonymous", ""));

    // The form shown again with errors (the e-mail, date and time fields hold the payload).
    let mut s = WebSession::new(&app.base);
    let csrf = s.get("/").await.csrf_token();
    let mut bad = report_fields(&csrf, &extra);
    bad.retain(|(k, _)| *k != "anonymous");
    for f in [
        "reporter_email",
        "occurred_date",
        "occurred_time",
        "discovered_date",
        "discovered_time",
    ] {
        bad.retain(|(k, _)| k != &f);
        bad.push((f, p));
    }
    let shown = s.post_form("/", &bad).await;
    assert_eq!(shown.status, 422);
    assert_escaped(&shown.body);
    for f in text_fields
        .iter()
        .filter(|f| **f != "description")
        .chain(["reporter_email", "occurred_date", "discovered_time"].iter())
    {
        assert_eq!(
            attr_after(&shown.body, &format!("id=\"{f}\" name="), "value").as_deref(),
            Some(p),
            "{f} round-trips intact"
        );
    }

    // Filed, then shown on the status page with a staff message and the reporter's own.
    let csrf = shown.csrf_token();
    let mut good = report_fields(&csrf, &extra);
    good.retain(|(k, _)| *k != "anonymous");
    let r = s.post_form("/", &good).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let receipt = s.get("/receipt").await;
    assert_escaped(&receipt.body);
    let i = receipt.body.find("href=\"/status/").unwrap();
    let status_path = receipt.body[i + 6..i + 6 + 8 + 64].to_string();
    let reference = app.app_state.services.register.read().list()[0].reference;
    app.app_state
        .services
        .execute(
            reference,
            Command::Comment(CommentAdded {
                text: payload.clone(),
                to_reporter: true,
                from_reporter: false,
                unverified_email: false,
            }),
            "ciso@kommunen.example",
        )
        .await
        .unwrap();
    let page = s.get(&status_path).await;
    let csrf = page.csrf_token();
    let a = s
        .post_form(&status_path, &[("authenticity_token", &csrf), ("text", p)])
        .await;
    assert_eq!(a.status, 303);
    let page = s.get(&status_path).await;
    assert_eq!(page.status, 200);
    assert_escaped(&page.body);
    let escaped = "&#60;script&#62;alert(1)&#60;/script&#62; &#34;onmouseover=alert(1) x=&#34;";
    assert!(
        page.body.matches(escaped).count() >= 3,
        "title, staff message and reporter message are shown escaped: {}",
        page.body
    );
    // The same text stays wrong on the way back in, too: a comment that is not valid stays
    // in the textarea, escaped.
    let e = s
        .post_form(
            &status_path,
            &[("authenticity_token", &csrf), ("text", &"x".repeat(20_001))],
        )
        .await;
    assert_eq!(e.status, 422);
}

fn assert_escaped(body: &str) {
    assert!(!body.contains("<script"), "raw script tag in: {body}");
    assert!(
        !body.contains("\"onmouseover"),
        "attribute breakout in: {body}"
    );
    assert!(!body.contains("onmouseover=alert(1) x=\""), "{body}");
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let app = TestApp::spawn().await;
    let (mut s, _, status_path) = report_via_form(&app, &[]).await;
    let css = s.get("/static/avvik.css").await;
    assert_eq!(css.status, 200);
    assert!(css.header("content-type").starts_with("text/css"));
    assert!(css.header("cache-control").contains("max-age"));
    let pages = [
        s.get("/").await,
        s.get(&status_path).await,
        s.get("/finns-inte").await,
        s.post_form("/", &[("title", "x")]).await,
        s.get("/healthz").await,
        css,
    ];
    for p in &pages {
        assert_eq!(
            p.header("content-security-policy"),
            "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'; \
             form-action 'self'; base-uri 'none'"
        );
        assert_eq!(p.header("x-content-type-options"), "nosniff");
        assert_eq!(p.header("referrer-policy"), "no-referrer");
        assert_eq!(p.header("x-frame-options"), "DENY");
    }
    let api = app
        .post_json(
            "/api/v1/deviations",
            json!({"title": "t", "description": "d"}),
        )
        .await;
    assert_eq!(api.headers()["referrer-policy"], "no-referrer");
    assert_eq!(api.headers()["x-content-type-options"], "nosniff");
}

#[tokio::test]
async fn status_tokens_never_reach_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let server = LoggedServer::start(
        &dir.path().join("data"),
        &[(
            "RUST_LOG",
            "debug,sled=info,hyper=info,h2=info,reqwest=info",
        )],
    );
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r: Value = client
        .post(format!("{}/api/v1/deviations", server.base))
        .json(&json!({"title": "Loggtest", "description": "Syns token i loggen?"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = r["status_token"].as_str().unwrap().to_string();
    let mut s = WebSession::new(&server.base);
    let p = s.get(&format!("/status/{token}")).await;
    assert_eq!(p.status, 200);
    let csrf = p.csrf_token();
    let a = s
        .post_form(
            &format!("/status/{token}"),
            &[("authenticity_token", &csrf), ("text", "Mer information")],
        )
        .await;
    assert_eq!(a.status, 303);
    assert_eq!(s.get(&format!("/status/{token}/extra")).await.status, 404);
    // Wait for the last request's log lines.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !server.log().iter().any(|l| l.contains("<unmatched>")) {
        assert!(std::time::Instant::now() < deadline, "{:#?}", server.log());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let log = server.log();
    assert!(
        log.iter().any(|l| l.contains("route=\"/status/{token}\"")),
        "requests are logged by route: {log:#?}"
    );
    let leaks: Vec<&String> = log.iter().filter(|l| l.contains(&token)).collect();
    assert!(leaks.is_empty(), "the token is in the log: {leaks:#?}");
}

#[tokio::test]
async fn an_oversized_form_gets_a_swedish_413_page() {
    let app = TestApp::spawn().await;
    let mut s = WebSession::new(&app.base);
    let csrf = s.get("/").await.csrf_token();
    let long = "å".repeat(app.app_state.config.http.body_limit);
    let p = s
        .post_form(
            "/",
            &report_fields(&csrf, &[("description", long.as_str())]),
        )
        .await;
    assert_eq!(p.status, 413);
    assert_html(&p);
    assert!(p.body.contains("för lång"));
}

#[tokio::test]
async fn metrics_are_served_only_to_allowed_addresses() {
    let app = TestApp::spawn().await;
    let r = reqwest::get(format!("{}/metrics", app.base)).await.unwrap();
    assert_eq!(r.status(), 200, "loopback is allowed by default");
    assert!(r.text().await.unwrap().contains("avvik_log_head_seq"));
    // Through a reverse proxy on loopback that is not a trusted proxy: nobody to check.
    let get_forwarded = |base: String, client: &'static str| async move {
        reqwest::Client::new()
            .get(format!("{base}/metrics"))
            .header("x-forwarded-for", client)
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(get_forwarded(app.base.clone(), "203.0.113.5").await, 403);
    // A trusted proxy forwarding for an allowed scraper, and for anyone else.
    let proxied = TestApp::spawn_with(
        |c| {
            c.http.trusted_proxies = vec!["127.0.0.1".into()];
            c.http.metrics_allow = vec!["192.0.2.10".into()];
        },
        Arc::new(SystemClock),
    )
    .await;
    assert_eq!(get_forwarded(proxied.base.clone(), "192.0.2.10").await, 200);
    assert_eq!(
        get_forwarded(proxied.base.clone(), "203.0.113.5").await,
        403
    );
    let app = TestApp::spawn_with(
        |c| c.http.metrics_allow = vec!["192.0.2.0/24".into()],
        Arc::new(SystemClock),
    )
    .await;
    let r = reqwest::get(format!("{}/metrics", app.base)).await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(!r.text().await.unwrap().contains("avvik_"));
}
