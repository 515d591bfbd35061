//! Admins manage accounts in the UI; every change is an event and takes effect at once.

use serde_json::Value;

use crate::helpers::TestApp;
use crate::staff_ui::{csrf_token, login, PASSWORD};

#[tokio::test]
async fn admin_creates_grants_resets_and_disables_accounts() {
    let app = TestApp::spawn().await;
    crate::authz::tokens(&app).await;
    let admin = login(&app, "admin@kommunen.example").await;
    let html = admin
        .get(format!("{}/staff/admin", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("ciso@kommunen.example"));
    let token = csrf_token(&html);
    // Invalid: bad address and short password.
    let r = admin
        .post(format!("{}/staff/admin/accounts", app.base))
        .form(&[
            ("authenticity_token", token.as_str()),
            ("email", "inte-en-adress"),
            ("name", "Nils"),
            ("role", "kontakt"),
            ("sector", "Socialtjänsten"),
            ("password", "kort"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Ange en giltig e-postadress."));
    let r = admin
        .post(format!("{}/staff/admin/accounts", app.base))
        .form(&[
            ("authenticity_token", token.as_str()),
            ("email", "nils@kommunen.example"),
            ("name", "Nils Kontakt"),
            ("role", "kontakt"),
            ("sector", "Socialtjänsten"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    // The new account can log in and sees its sector's register.
    let nils = login(&app, "nils@kommunen.example").await;
    let r = nils
        .get(format!("{}/staff", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Grant the ledning role (no second admin needed), then disable: the session stops
    // working at once.
    let id = avvik::auth::accounts::account_id(
        &avvik::domain::EmailAddress::parse("nils@kommunen.example").unwrap(),
    );
    let page = format!("{}/staff/admin/accounts/{id}", app.base);
    let html = admin.get(&page).send().await.unwrap().text().await.unwrap();
    let token = csrf_token(&html);
    let r = nils
        .get(format!("{}/staff/reports", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a kontakt has no annual report");
    let r = admin
        .post(format!("{page}/grant"))
        .form(&[
            ("authenticity_token", token.as_str()),
            ("role", "ledning"),
            ("sector", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = nils
        .get(format!("{}/staff/reports", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "the new role takes effect at once");
    // API tokens are made by their owner only: not by the admin for Nils.
    let r = admin
        .post(format!("{page}/tokens"))
        .form(&[("authenticity_token", token.as_str()), ("label", "skript")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(!r.text().await.unwrap().contains("<code class=\"token\">"));
    let api_token = app
        .app_state
        .services
        .create_api_token(id, "skript", "user:nils@kommunen.example")
        .await
        .unwrap();
    let r = app
        .client
        .get(format!("{}/api/v1/deviations", app.base))
        .bearer_auth(&api_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = admin
        .post(format!("{page}/disable"))
        .form(&[("authenticity_token", token.as_str()), ("reason", "Slutat")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = nils
        .get(format!("{}/staff", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "disabled: back to login");
    let r = app
        .client
        .get(format!("{}/api/v1/deviations", app.base))
        .bearer_auth(&api_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // An admin cannot disable themselves.
    let admin_id = avvik::auth::accounts::account_id(
        &avvik::domain::EmailAddress::parse("admin@kommunen.example").unwrap(),
    );
    let r = admin
        .post(format!(
            "{}/staff/admin/accounts/{admin_id}/disable",
            app.base
        ))
        .form(&[("authenticity_token", token.as_str()), ("reason", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    // Non-admins get 403.
    let ciso = login(&app, "ciso@kommunen.example").await;
    let r = ciso
        .get(format!("{}/staff/admin", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Every change is an event with the admin as actor.
    let records = app.app_state.services.store.read_stream(id, 1).unwrap();
    let types: Vec<&str> = records.iter().map(|r| r.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "AccountCreated",
            "RoleGranted",
            "PasswordChanged",
            "RoleGranted",
            "ApiTokenCreated",
            "AccountDisabled"
        ]
    );
    assert!(records
        .iter()
        .filter(|r| r.event_type != "ApiTokenCreated")
        .all(|r| r.actor == "user:admin@kommunen.example"));
    // The stored hash is of the peppered password: useless without the installation secret.
    let changed = records
        .iter()
        .find(|r| r.event_type == "PasswordChanged")
        .unwrap();
    assert_eq!(changed.data["pepper"], "hmac-sha256-v1");
    let hash = changed.data["password_hash"].as_str().unwrap();
    assert!(hash.starts_with("$argon2id$"));
    assert!(!avvik::auth::password::verify_password(PASSWORD, hash));
    assert!(avvik::auth::password::verify_login(
        &app.app_state.services.secret,
        PASSWORD,
        hash,
        Some("hmac-sha256-v1")
    ));
    let _: Value = Value::Null;
}
