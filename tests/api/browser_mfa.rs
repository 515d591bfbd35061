//! Second factors in a real browser: the authenticator app and a recovery code, and a
//! passkey registered and used with Chromium's virtual authenticator (the WebDriver
//! WebAuthn extension), with axe-core on every page of the flows.

use std::sync::Arc;

use avvik::auth::second_factor::totp_code_base32;
use avvik::auth::Role;
use avvik::config::AuthConfig;
use fantoccini::wd::WebDriverCompatibleCommand;
use serde_json::{json, Value};

use crate::browser::{sign_out, Browser};
use crate::helpers::TestApp;
use crate::staff_ui::PASSWORD;

/// `POST /session/{id}/webauthn/authenticator`: adds a virtual authenticator (WebAuthn
/// level 2, "Automation").
#[derive(Debug)]
struct AddVirtualAuthenticator(Value);

impl WebDriverCompatibleCommand for AddVirtualAuthenticator {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/webauthn/authenticator",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.0.to_string()))
    }
}

/// A platform authenticator that holds resident keys and verifies its user.
async fn virtual_authenticator(b: &Browser) {
    b.client
        .issue_cmd(AddVirtualAuthenticator(json!({
            "protocol": "ctap2",
            "transport": "internal",
            "hasResidentKey": true,
            "hasUserVerification": true,
            "isUserVerified": true,
        })))
        .await
        .expect("chromedriver adds a virtual authenticator");
}

/// Types the password on the login page; waits for where it leads.
async fn password(b: &Browser, email: &str, lands_on: &str) {
    b.goto("/staff/login").await;
    b.fill("#email", email).await;
    b.fill("#password", PASSWORD).await;
    b.click("main form button[type=submit]").await;
    b.wait_for_path(lands_on).await;
}

async fn account(app: &TestApp, email: &str, role: Role) -> uuid::Uuid {
    crate::mfa::account(app, email, role).await
}

fn event_types(app: &TestApp, id: uuid::Uuid) -> Vec<(String, Value)> {
    app.app_state
        .services
        .store
        .read_stream(id, 1)
        .unwrap()
        .into_iter()
        .map(|r| (r.event_type, r.data))
        .collect()
}

#[tokio::test]
async fn browser_mfa_totp_sign_in_and_a_recovery_code() {
    let app = crate::mfa::spawn().await;
    let id = account(&app, "ciso@kommunen.example", Role::Ciso).await;
    let b = Browser::start(&app.base).await;

    // The password alone leads only to adding a second factor.
    password(&b, "ciso@kommunen.example", "/staff/account").await;
    assert!(b
        .text("#must-enrol")
        .await
        .contains("kräver en andra faktor"));
    b.assert_accessible("the enrolment page").await;
    b.goto("/staff").await;
    b.wait_for_path("/staff/account").await;
    b.goto("/audit").await;
    b.wait_for_path("/staff/account").await;

    b.click("#totp-start").await;
    b.wait_for("#totp-secret").await;
    b.assert_accessible("the authenticator app set-up").await;
    b.screenshot("mfa-totp-setup").await;
    b.assert_unique_ids("the authenticator app set-up").await;
    let secret = b.text("#totp-secret").await.replace(' ', "");
    let code = totp_code_base32(&secret, chrono::Utc::now()).unwrap();
    b.fill("#totp-code", &code).await;
    b.click("form[action='/staff/account/totp'] button[type=submit]")
        .await;
    b.wait_for("#recovery-codes").await;
    b.assert_accessible("the recovery codes").await;
    let codes: Vec<String> = serde_json::from_value(
        b.client
            .execute(
                "return [...document.querySelectorAll('#recovery-codes li code')].map(c => c.textContent);",
                vec![],
            )
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(codes.len(), 10);
    b.goto("/staff").await;
    b.wait_for_path("/staff").await;
    sign_out(&b).await;

    // The next sign-in takes the app's code.
    password(&b, "ciso@kommunen.example", "/staff/login/second-factor").await;
    b.assert_accessible("the second sign-in step").await;
    b.screenshot("mfa-second-step").await;
    let step = app
        .app_state
        .services
        .register
        .read()
        .accounts
        .get(id)
        .unwrap()
        .totp
        .as_ref()
        .unwrap()
        .last_step;
    let at = chrono::DateTime::from_timestamp(i64::try_from((step + 1) * 30).unwrap(), 0).unwrap();
    b.fill("#code", &totp_code_base32(&secret, at).unwrap())
        .await;
    b.click("form[action='/staff/login/second-factor'] button[type=submit]")
        .await;
    b.wait_for_path("/staff").await;
    sign_out(&b).await;

    // A recovery code works once, and says how many are left.
    password(&b, "ciso@kommunen.example", "/staff/login/second-factor").await;
    b.fill("#code", &codes[0]).await;
    b.click("form[action='/staff/login/second-factor'] button[type=submit]")
        .await;
    b.wait_for_path("/staff/account").await;
    assert!(b.text("main").await.contains("Du har 9 kvar"));
    b.assert_accessible("the account page after a recovery code")
        .await;
    sign_out(&b).await;
    password(&b, "ciso@kommunen.example", "/staff/login/second-factor").await;
    b.fill("#code", &codes[0]).await;
    b.click("form[action='/staff/login/second-factor'] button[type=submit]")
        .await;
    let refused = b.wait_for(".error-summary").await.text().await.unwrap();
    assert!(refused.contains("redan använd"), "{refused}");
    assert_eq!(b.path().await, "/staff/login/second-factor");
    b.assert_accessible("a refused recovery code").await;
    b.close().await;
}

#[tokio::test]
async fn browser_mfa_passkey_enrolment_and_sign_in_with_a_virtual_authenticator() {
    // WebAuthn needs a domain name: the browser opens the application as localhost.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let app = TestApp::spawn_with(
        |c| {
            c.http.addr = format!("127.0.0.1:{port}").parse().unwrap();
            c.http.base_url = format!("http://localhost:{port}");
            c.auth = AuthConfig::default();
        },
        Arc::new(avvik::clock::SystemClock),
    )
    .await;
    let id = account(&app, "revisor@kommunen.example", Role::Auditor).await;
    let b = Browser::start(&format!("http://localhost:{port}")).await;
    virtual_authenticator(&b).await;

    password(&b, "revisor@kommunen.example", "/staff/account").await;
    b.goto("/audit").await;
    b.wait_for_path("/staff/account").await;
    b.fill("#passkey-name", "Jobbdatorn").await;
    b.click("#passkey-add").await;
    b.wait_for("#recovery-codes").await;
    assert!(b.text("main").await.contains("Nyckeln är tillagd"));
    assert!(b.text("#passkeys").await.contains("Jobbdatorn"));
    b.assert_accessible("the account page with a passkey").await;
    b.screenshot("mfa-passkey-added").await;
    b.assert_unique_ids("the account page with a passkey").await;
    let registered = event_types(&app, id)
        .into_iter()
        .find(|(t, _)| t == "PasskeyRegistered")
        .expect("the passkey is an event");
    assert_eq!(registered.1["name"], "Jobbdatorn");
    b.goto("/audit").await;
    b.wait_for_path("/audit").await;
    sign_out(&b).await;

    // Signing in: the password, then the passkey.
    password(&b, "revisor@kommunen.example", "/staff/login/second-factor").await;
    b.goto("/audit").await;
    b.wait_for_path("/staff/login/second-factor").await;
    b.assert_accessible("the second step with a passkey").await;
    b.click("#passkey-button").await;
    b.wait_for_path("/audit").await;
    let used = event_types(&app, id)
        .into_iter()
        .find(|(t, _)| t == "SecondFactorUsed")
        .expect("the sign-in is an event");
    assert_eq!(used.1["method"], "passkey");
    b.close().await;
}
