//! Second factors for local accounts: an authenticator app (TOTP) with recovery codes,
//! the policy that some roles must have one, the admin's removal of a lost one, and
//! that no secret is ever in the log's export or the server's log in clear.

use avvik::auth::second_factor::totp_code_base32;
use avvik::auth::Role;
use avvik::config::AuthConfig;
use avvik::domain::EmailAddress;
use chrono::Utc;

use crate::helpers::{attr_after, html_unescape, TestApp, WebSession};
use crate::staff_ui::PASSWORD;

/// An application with the default second-factor policy (ciso, admin, auditor).
pub async fn spawn() -> TestApp {
    TestApp::spawn_with(
        |c| c.auth = AuthConfig::default(),
        std::sync::Arc::new(avvik::clock::SystemClock),
    )
    .await
}

pub async fn account(app: &TestApp, email: &str, role: Role) -> uuid::Uuid {
    app.app_state
        .services
        .create_account(
            &EmailAddress::parse(email).unwrap(),
            "Karin Persson",
            &[(role, Vec::new())],
            Some(PASSWORD),
            "test",
        )
        .await
        .unwrap()
}

/// Posts the password form; returns the answer (a 303 on success).
pub async fn password(s: &mut WebSession, email: &str) -> crate::helpers::Page {
    let token = s.get("/staff/login").await.csrf_token();
    s.post_form(
        "/staff/login",
        &[
            ("authenticity_token", &token),
            ("email", email),
            ("password", PASSWORD),
            ("next", ""),
        ],
    )
    .await
}

pub fn location(p: &crate::helpers::Page) -> String {
    p.header("location").to_string()
}

/// The text inside the element with `id`, tags dropped.
fn text_of(html: &str, id: &str) -> String {
    let start = html.find(&format!("id=\"{id}\"")).expect(id);
    let open_end = start + html[start..].find('>').unwrap() + 1;
    let close = open_end + html[open_end..].find("</").unwrap();
    html_unescape(&html[open_end..close])
}

/// The recovery codes shown on a page.
pub fn recovery_codes(html: &str) -> Vec<String> {
    let start = html.find("id=\"recovery-codes\"").expect("codes shown");
    html[start..]
        .split("<li><code>")
        .skip(1)
        .map(|c| c[..c.find("</code>").unwrap()].to_string())
        .collect()
}

/// Adds the authenticator app on the own-account page; returns its secret (base32) and
/// the recovery codes shown.
pub async fn enrol_totp(s: &mut WebSession) -> (String, Vec<String>) {
    let page = s.get("/staff/account").await;
    assert_eq!(page.status, 200);
    let token = page.csrf_token();
    let shown = s
        .post_form("/staff/account/totp/new", &[("authenticity_token", &token)])
        .await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    let secret = text_of(&shown.body, "totp-secret").replace(' ', "");
    let uri = text_of(&shown.body, "totp-uri");
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    assert!(uri.contains("issuer=avvik"), "{uri}");
    assert!(shown.body.contains("<svg"), "a QR code is shown");
    let pending = attr_after(&shown.body, "name=\"pending\"", "value").unwrap();
    let token = shown.csrf_token();

    // A wrong code is refused, in Swedish, and the same secret is shown again.
    let right = totp_code_base32(&secret, Utc::now()).unwrap();
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    let refused = s
        .post_form(
            "/staff/account/totp",
            &[
                ("authenticity_token", &token),
                ("pending", &pending),
                ("code", wrong),
            ],
        )
        .await;
    assert_eq!(refused.status, 422);
    assert!(
        refused.body.contains("Koden stämmer inte"),
        "{}",
        refused.body
    );
    assert_eq!(
        text_of(&refused.body, "totp-secret").replace(' ', ""),
        secret
    );

    let done = s
        .post_form(
            "/staff/account/totp",
            &[
                ("authenticity_token", &refused.csrf_token()),
                ("pending", &pending),
                ("code", &totp_code_base32(&secret, Utc::now()).unwrap()),
            ],
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("Autentiseringsappen är tillagd"));
    let codes = recovery_codes(&done.body);
    assert_eq!(codes.len(), 10, "{codes:?}");
    (secret, codes)
}

/// Posts a code in the second sign-in step.
pub async fn second_step(s: &mut WebSession, code: &str) -> crate::helpers::Page {
    let page = s.get("/staff/login/second-factor").await;
    assert_eq!(page.status, 200, "the second step is shown");
    s.post_form(
        "/staff/login/second-factor",
        &[
            ("authenticity_token", &page.csrf_token()),
            ("code", code),
            ("next", ""),
        ],
    )
    .await
}

async fn sign_out(s: &mut WebSession) {
    let page = s.get("/staff/logout").await;
    assert_eq!(page.status, 200);
    let out = s
        .post_form(
            "/staff/logout",
            &[("authenticity_token", &page.csrf_token())],
        )
        .await;
    assert_eq!(out.status, 303);
    s.cookies.remove("avvik_session");
}

#[tokio::test]
async fn mfa_a_required_role_without_a_factor_reaches_only_the_enrolment_page() {
    let app = spawn().await;
    let id = account(&app, "revisor@kommunen.example", Role::Auditor).await;
    let token = app
        .app_state
        .services
        .create_api_token(id, "test", "test")
        .await
        .unwrap();
    let mut s = WebSession::new(&app.base);
    let login = password(&mut s, "revisor@kommunen.example").await;
    assert_eq!(login.status, 303);
    assert_eq!(location(&login), "/staff/account");
    for path in ["/audit", "/staff", "/staff/reports", "/staff/admin"] {
        let p = s.get(path).await;
        assert_eq!(p.status, 303, "{path}");
        assert_eq!(location(&p), "/staff/account", "{path}");
    }
    // The cookie does not read the API either; the token made earlier still does.
    let api = s.get("/api/v1/deviations").await;
    assert_eq!(api.status, 401);
    assert!(api.body.contains("second-factor-required"), "{}", api.body);
    let (status, _) = crate::helpers::bearer_get(&app, &token, "/api/v1/deviations").await;
    assert_eq!(status, 200);

    // The enrolment page shows the second-factor part only: no API tokens to make.
    let page = s.get("/staff/account").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("id=\"must-enrol\""));
    assert!(!page.body.contains("/staff/account/tokens"));
    assert!(
        !page.body.contains("href=\"/audit\""),
        "no navigation to closed pages"
    );
    let made = s
        .post_form(
            "/staff/account/tokens",
            &[("authenticity_token", &page.csrf_token()), ("label", "x")],
        )
        .await;
    assert_eq!(made.status, 303);
    assert_eq!(location(&made), "/staff/account");
    assert_eq!(
        app.app_state
            .services
            .register
            .read()
            .accounts
            .get(id)
            .unwrap()
            .tokens
            .len(),
        1,
        "no token was made"
    );
    assert_eq!(
        s.get("/staff/logout").await.status,
        200,
        "signing out is open"
    );

    // Once the app is added, everything the role opens is reachable.
    enrol_totp(&mut s).await;
    assert_eq!(s.get("/audit").await.status, 200);
    assert_eq!(s.get("/api/v1/deviations").await.status, 200);

    // A role the policy does not name signs in with the password alone.
    account(&app, "ledning@kommunen.example", Role::Ledning).await;
    let mut other = WebSession::new(&app.base);
    let login = password(&mut other, "ledning@kommunen.example").await;
    assert_eq!(location(&login), "/staff");
    assert_eq!(other.get("/staff").await.status, 200);
}

#[tokio::test]
async fn mfa_totp_sign_in_refuses_wrong_and_reused_codes() {
    let app = spawn().await;
    let id = account(&app, "ciso@kommunen.example", Role::Ciso).await;
    let mut s = WebSession::new(&app.base);
    password(&mut s, "ciso@kommunen.example").await;
    let (secret, _) = enrol_totp(&mut s).await;
    sign_out(&mut s).await;

    let login = password(&mut s, "ciso@kommunen.example").await;
    assert_eq!(location(&login), "/staff/login/second-factor?next=");
    let p = s.get("/staff/reports").await;
    assert_eq!(p.status, 303);
    assert_eq!(
        location(&p),
        "/staff/login/second-factor?next=/staff/reports"
    );
    assert_eq!(s.get("/api/v1/deviations").await.status, 401);

    // The code that confirmed the app (its time step) is spent.
    let now = Utc::now();
    let step = last_step(&app, id);
    let used = code_of_step(&secret, step);
    let again = second_step(&mut s, &used).await;
    assert_eq!(again.status, 401);
    assert!(
        again.body.contains("Koden har redan använts"),
        "{}",
        again.body
    );
    // A wrong code.
    let wrong = (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|c| {
            (-2..=2).all(|k| {
                totp_code_base32(&secret, now + chrono::Duration::seconds(30 * k)).unwrap() != *c
            })
        })
        .unwrap();
    let refused = second_step(&mut s, &wrong).await;
    assert_eq!(refused.status, 401);
    assert!(
        refused.body.contains("Koden stämmer inte"),
        "{}",
        refused.body
    );
    assert_eq!(s.get("/staff").await.status, 303, "still not signed in");

    // The next step's code (one step of skew is allowed) signs in.
    let next = code_of_step(&secret, step + 1);
    let ok = second_step(&mut s, &next).await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert_eq!(location(&ok), "/staff");
    assert_eq!(s.get("/staff").await.status, 200);
    assert_eq!(s.get("/api/v1/deviations").await.status, 200);

    // The same code again, in a new sign-in, is refused.
    sign_out(&mut s).await;
    password(&mut s, "ciso@kommunen.example").await;
    let reused = second_step(&mut s, &next).await;
    assert_eq!(reused.status, 401);
    assert!(reused.body.contains("Koden har redan använts"));

    let account = app
        .app_state
        .services
        .register
        .read()
        .accounts
        .get(id)
        .cloned()
        .unwrap();
    assert_eq!(account.totp.as_ref().unwrap().last_step, step + 1);
    let used: Vec<_> = app
        .app_state
        .services
        .store
        .read_stream(id, 1)
        .unwrap()
        .into_iter()
        .filter(|r| r.event_type == "SecondFactorUsed")
        .collect();
    assert_eq!(used.len(), 1, "one sign-in with the app");
    assert_eq!(used[0].data["method"], "totp");
    assert_eq!(used[0].data["totp_step"], step + 1);
}

/// The latest time step the account's app code was accepted for.
fn last_step(app: &TestApp, id: uuid::Uuid) -> u64 {
    app.app_state
        .services
        .register
        .read()
        .accounts
        .get(id)
        .unwrap()
        .totp
        .as_ref()
        .unwrap()
        .last_step
}

/// The app's code of a time step.
fn code_of_step(secret: &str, step: u64) -> String {
    let at = chrono::DateTime::from_timestamp(i64::try_from(step * 30).unwrap(), 0).unwrap();
    totp_code_base32(secret, at).unwrap()
}

#[tokio::test]
async fn mfa_wrong_codes_are_slowed_down_like_passwords() {
    let app = spawn().await;
    let id = account(&app, "ciso@kommunen.example", Role::Ciso).await;
    let mut s = WebSession::new(&app.base);
    password(&mut s, "ciso@kommunen.example").await;
    let (secret, _) = enrol_totp(&mut s).await;
    sign_out(&mut s).await;
    password(&mut s, "ciso@kommunen.example").await;
    let now = Utc::now();
    let wrong = (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|c| {
            (-2..=2).all(|k| {
                totp_code_base32(&secret, now + chrono::Duration::seconds(30 * k)).unwrap() != *c
            })
        })
        .unwrap();
    for _ in 0..avvik::auth::throttle::FREE_FAILURES + 1 {
        assert_eq!(second_step(&mut s, &wrong).await.status, 401);
    }
    let next = code_of_step(&secret, last_step(&app, id) + 1);
    let slowed = second_step(&mut s, &next).await;
    assert_eq!(slowed.status, 429);
    assert!(
        slowed.body.contains("För många felaktiga koder"),
        "{}",
        slowed.body
    );
    assert_eq!(s.get("/staff").await.status, 303);
}

#[tokio::test]
async fn mfa_a_recovery_code_works_once() {
    let app = spawn().await;
    let id = account(&app, "ciso@kommunen.example", Role::Ciso).await;
    let mut s = WebSession::new(&app.base);
    password(&mut s, "ciso@kommunen.example").await;
    let (_, codes) = enrol_totp(&mut s).await;
    sign_out(&mut s).await;

    password(&mut s, "ciso@kommunen.example").await;
    let used = second_step(&mut s, &codes[3].to_uppercase()).await;
    assert_eq!(used.status, 303, "{}", used.body);
    assert_eq!(location(&used), "/staff/account?koder_kvar=9");
    let page = s.get(&location(&used)).await;
    assert!(page.body.contains("Du har 9 kvar"), "{}", page.body);
    assert_eq!(s.get("/staff").await.status, 200);
    sign_out(&mut s).await;

    password(&mut s, "ciso@kommunen.example").await;
    let again = second_step(&mut s, &codes[3]).await;
    assert_eq!(again.status, 401);
    assert!(again
        .body
        .contains("Återställningskoden är fel eller redan använd"));
    assert_eq!(second_step(&mut s, &codes[4]).await.status, 303);

    let types: Vec<String> = app
        .app_state
        .services
        .store
        .read_stream(id, 1)
        .unwrap()
        .into_iter()
        .map(|r| r.event_type)
        .collect();
    for t in ["TotpEnrolled", "RecoveryCodesIssued", "RecoveryCodeUsed"] {
        assert!(types.iter().any(|x| x == t), "{t} in {types:?}");
    }
    let a = app
        .app_state
        .services
        .register
        .read()
        .accounts
        .get(id)
        .cloned()
        .unwrap();
    assert_eq!(a.recovery_codes_left(), 8);
}

#[tokio::test]
async fn mfa_an_admin_removes_a_lost_factor_with_a_reason() {
    let app = TestApp::spawn_with(
        |c| c.auth.second_factor_roles = vec![Role::Ciso],
        std::sync::Arc::new(avvik::clock::SystemClock),
    )
    .await;
    let ciso = account(&app, "ciso@kommunen.example", Role::Ciso).await;
    account(&app, "admin@kommunen.example", Role::Admin).await;
    let mut s = WebSession::new(&app.base);
    password(&mut s, "ciso@kommunen.example").await;
    enrol_totp(&mut s).await;
    sign_out(&mut s).await;

    let mut admin = WebSession::new(&app.base);
    password(&mut admin, "admin@kommunen.example").await;
    let path = format!("/staff/admin/accounts/{ciso}");
    let page = admin.get(&path).await;
    assert!(page
        .body
        .contains("autentiseringsapp, 10 oanvända återställningskoder"));
    let action = format!("{path}/second-factor");
    let no_reason = admin
        .post_form(
            &action,
            &[("authenticity_token", &page.csrf_token()), ("reason", " ")],
        )
        .await;
    assert_eq!(no_reason.status, 422);
    assert!(no_reason.body.contains("Ange ett skäl"));
    let done = admin
        .post_form(
            &action,
            &[
                ("authenticity_token", &no_reason.csrf_token()),
                ("reason", "Tappat telefonen, identitet kontrollerad"),
            ],
        )
        .await;
    assert_eq!(done.status, 303);
    let reset = app
        .app_state
        .services
        .store
        .read_stream(ciso, 1)
        .unwrap()
        .into_iter()
        .find(|r| r.event_type == "SecondFactorsReset")
        .expect("the removal is an event");
    assert_eq!(
        reset.data["reason"],
        "Tappat telefonen, identitet kontrollerad"
    );
    assert_eq!(reset.actor, "user:admin@kommunen.example");

    // The CISO signs in with the password and must add a new factor.
    let login = password(&mut s, "ciso@kommunen.example").await;
    assert_eq!(location(&login), "/staff/account");
    assert_eq!(location(&s.get("/staff").await), "/staff/account");
}

#[tokio::test]
async fn mfa_no_secret_in_the_export_or_the_log_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let data = crate::helpers::data_path(&dir);
    let token = crate::helpers::cli_ciso_token(&data);
    // The binary with its default configuration: the CISO must add a second factor.
    let server = crate::helpers::LoggedServer::start(&data, &[("RUST_LOG", "debug")]);
    let mut s = WebSession::new(&server.base);
    let login = password(&mut s, "ciso@kommunen.example").await;
    assert_eq!(location(&login), "/staff/account");
    let (secret, codes) = enrol_totp(&mut s).await;
    sign_out(&mut s).await;
    password(&mut s, "ciso@kommunen.example").await;
    assert_eq!(second_step(&mut s, &codes[0]).await.status, 303);

    let export = reqwest::Client::new()
        .get(format!("{}/api/v1/audit/events", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&export);
    assert!(
        text.contains("\"TotpEnrolled\""),
        "the enrolment is in the log"
    );
    assert!(text.contains("\"RecoveryCodeUsed\""));
    let raw = {
        // The secret's bytes, as hex and base64 too.
        let b32 = secret.to_uppercase();
        let mut bits = 0u64;
        let mut n = 0;
        let mut out = Vec::new();
        for c in b32.bytes() {
            let v = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
                .iter()
                .position(|x| *x == c)
                .unwrap() as u64;
            bits = (bits << 5) | v;
            n += 5;
            if n >= 8 {
                n -= 8;
                out.push((bits >> n) as u8);
                bits &= (1 << n) - 1;
            }
        }
        out
    };
    assert_eq!(raw.len(), 20);
    let hex_secret: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let log = server.log().join("\n");
    for (what, needle) in [
        ("base32 secret", secret.clone()),
        ("base32 secret, lower case", secret.to_lowercase()),
        ("hex secret", hex_secret),
        ("recovery code", codes[0].clone()),
        ("recovery code without dashes", codes[1].replace('-', "")),
    ] {
        assert!(!text.contains(&needle), "{what} in the export");
        assert!(!log.contains(&needle), "{what} in the log");
    }
    assert!(
        !export.windows(raw.len()).any(|w| w == raw.as_slice()),
        "raw secret bytes in the export"
    );
}

#[tokio::test]
async fn mfa_the_cli_removes_the_second_factor_of_a_locked_out_admin() {
    let app = spawn().await;
    let id = account(&app, "admin@kommunen.example", Role::Admin).await;
    let mut s = WebSession::new(&app.base);
    password(&mut s, "admin@kommunen.example").await;
    enrol_totp(&mut s).await;
    let dir = app.stop().await;
    let data = crate::helpers::data_path(&dir);
    let d = data.to_str().unwrap();
    let reset = |reason: &str| {
        crate::helpers::avvik(
            &[
                "user",
                "reset-second-factor",
                "--data",
                d,
                "--email",
                "admin@kommunen.example",
                "--reason",
                reason,
            ],
            &[],
        )
    };
    let (code, _, err) = reset("");
    assert_ne!(code, 0);
    assert!(err.contains("Ange ett skäl"), "{err}");
    let (code, out, err) = reset("Enda administratören tappade telefonen");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("second factors removed"), "{out}");
    let (code, _, err) = reset("igen");
    assert_ne!(code, 0);
    assert!(err.contains("ingen andra faktor"), "{err}");

    let app = TestApp::spawn_in(
        dir,
        |c| c.auth = AuthConfig::default(),
        std::sync::Arc::new(avvik::clock::SystemClock),
    )
    .await;
    let a = app
        .app_state
        .services
        .register
        .read()
        .accounts
        .get(id)
        .cloned()
        .unwrap();
    assert!(!a.has_second_factor());
    let mut s = WebSession::new(&app.base);
    assert_eq!(
        location(&password(&mut s, "admin@kommunen.example").await),
        "/staff/account"
    );
}
