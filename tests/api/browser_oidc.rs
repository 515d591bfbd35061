//! Signing in through the municipality's identity provider in a real browser: the login
//! page's button, the provider's own login form (npm's oidc-provider), back to avvik with
//! the role the group claim gives; signing out at the provider too; and, taken out of the
//! group, the role gone at the next sign-in, as an event.

use avvik::auth::Role;

use crate::browser::{sign_out, Browser};
use crate::oidc::IDP_PASSWORD;
use crate::oidc_provider::OidcUser;

async fn sign_in_at_provider(b: &Browser, login: &str, lands_on: &str) {
    b.goto("/staff/login").await;
    b.click("#sso-kommunen").await;
    b.wait_for("#login").await;
    b.fill("#login", login).await;
    b.fill("#password", IDP_PASSWORD).await;
    b.click("#sign-in").await;
    b.wait_for_path(lands_on).await;
}

#[tokio::test]
async fn browser_oidc_sign_in_the_role_follows_the_group_claim() {
    let anna = OidcUser::new("anna", IDP_PASSWORD, &["avvik-ciso", "avvik-revisor"]);
    let (app, idp) = crate::oidc::spawn(std::slice::from_ref(&anna)).await;
    let b = Browser::start(&app.base).await;
    b.goto("/staff/login").await;
    b.assert_accessible("the login page with the provider's button")
        .await;
    assert_eq!(
        b.text("#sso-kommunen").await,
        "Logga in med kommunens konto"
    );

    // The CISO group gives the register (no second factor asked: the provider's sign-in
    // is complete).
    sign_in_at_provider(&b, "anna", "/staff").await;
    b.assert_accessible("the register after signing in through the provider")
        .await;
    let id = app
        .app_state
        .services
        .register
        .read()
        .accounts
        .by_identity(&idp.issuer, "sub-anna")
        .map(|a| a.id)
        .expect("the account is linked");
    let roles = |app: &crate::helpers::TestApp| -> Vec<Role> {
        app.app_state
            .services
            .register
            .read()
            .accounts
            .get(id)
            .unwrap()
            .roles
            .iter()
            .map(|g| g.role)
            .collect()
    };
    assert_eq!(roles(&app), vec![Role::Ciso, Role::Auditor]);

    // Signing out goes through the provider's logout and back to the login page.
    sign_out(&b).await;
    b.goto("/staff").await;
    b.wait_for_path("/staff/login").await;

    // Out of the CISO group: at the next sign-in only the auditor's role is left, and the
    // revoke is in the account's stream.
    let mut moved = anna.clone();
    moved.groups = vec!["avvik-revisor".into()];
    idp.set_users(&[moved]);
    sign_in_at_provider(&b, "anna", "/staff").await;
    assert_eq!(roles(&app), vec![Role::Auditor]);
    let last = app
        .app_state
        .services
        .store
        .read_stream(id, 1)
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(last.event_type, "RoleRevoked");
    assert_eq!(last.actor, "oidc:kommunen");
    assert_eq!(last.data["role"], "ciso");
    b.goto("/audit").await;
    b.wait_for_path("/audit").await;
    b.close().await;
    app.stop().await;
}
