//! Staff sign-in through a real OpenID Connect provider (npm's oidc-provider, see
//! oidc_provider.rs): accounts made and linked at the first sign-in, roles following the
//! group claim (each grant and revoke an event), RP-initiated logout, and every broken
//! answer refused with a Swedish message, nothing granted and a warn line without the
//! token or the code.

use std::io::Write;
use std::sync::Arc;

use avvik::auth::Role;
use avvik::clock::SystemClock;
use avvik::config::auth::{OidcProviderConfig, OidcRoleMapping};
use avvik::config::AuthConfig;

use crate::helpers::{LoggedServer, Page, TestApp, WebSession};
use crate::oidc_provider::{sign_in_at_provider, OidcProvider, OidcUser};

pub const CALLBACK: &str = "/staff/login/oidc/callback";
pub const IDP_PASSWORD: &str = "hemligt-hos-idp";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A provider that sends the browser back to avvik at `base`.
pub fn start_provider(base: &str, users: &[OidcUser]) -> OidcProvider {
    OidcProvider::start(
        users,
        &[format!("{base}{CALLBACK}")],
        &[format!("{base}/staff/login")],
    )
}

fn mapping(value: &str, role: Role, sectors: &[&str]) -> OidcRoleMapping {
    OidcRoleMapping {
        value: value.into(),
        role,
        sectors: sectors.iter().map(|s| s.to_string()).collect(),
    }
}

/// `[[auth.oidc]]` for the provider: groups avvik-ciso, avvik-revisor, avvik-kontakt-vard
/// and avvik-admin give ciso, auditor, kontakt (vård) and admin.
pub fn provider_config(idp: &OidcProvider) -> OidcProviderConfig {
    OidcProviderConfig {
        id: "kommunen".into(),
        label: "Logga in med kommunens konto".into(),
        issuer: idp.issuer.clone(),
        client_id: idp.client_id.clone(),
        client_secret: idp.client_secret.clone(),
        client_secret_file: Default::default(),
        client_secret_env: String::new(),
        scopes: vec!["email".into(), "profile".into(), "groups".into()],
        roles_claim: "groups".into(),
        roles: vec![
            mapping("avvik-ciso", Role::Ciso, &[]),
            mapping("avvik-revisor", Role::Auditor, &[]),
            mapping("avvik-kontakt-vard", Role::Kontakt, &["vard"]),
            mapping("avvik-admin", Role::Admin, &[]),
        ],
        link_existing_accounts: false,
        logout_at_provider: true,
    }
}

/// avvik in this process with the provider configured, and the default second-factor
/// policy (ciso, admin and auditor): a provider's sign-in counts as complete.
pub async fn spawn(users: &[OidcUser]) -> (TestApp, OidcProvider) {
    spawn_with(users, |_| {}).await
}

/// `spawn`, with more configuration.
pub async fn spawn_with(
    users: &[OidcUser],
    tweak: impl FnOnce(&mut avvik::config::Config) + Send + 'static,
) -> (TestApp, OidcProvider) {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let idp = start_provider(&base, users);
    let cfg = provider_config(&idp);
    let app = TestApp::spawn_with(
        move |c| {
            c.http.addr = format!("127.0.0.1:{port}").parse().unwrap();
            c.http.base_url = base;
            c.auth.oidc = vec![cfg];
            c.auth.second_factor_roles = AuthConfig::default().second_factor_roles;
            tweak(c);
        },
        Arc::new(SystemClock),
    )
    .await;
    (app, idp)
}

/// Presses the login page's provider button: the provider's authorization URL.
pub async fn start_at_provider(web: &mut WebSession) -> String {
    let page = web.get("/staff/login").await;
    assert!(page.body.contains("id=\"sso-kommunen\""), "{}", page.body);
    let csrf = page.csrf_token();
    let started = web
        .post_form(
            "/staff/login/oidc/kommunen",
            &[("authenticity_token", csrf.as_str()), ("next", "")],
        )
        .await;
    assert_eq!(started.status, 303, "{}", started.body);
    started.header("location").to_string()
}

/// Signs in at the provider: the URL it sends the browser back to avvik with.
pub async fn at_provider(authorize: &str, login: &str) -> String {
    let idp_browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    sign_in_at_provider(&idp_browser, authorize, login, IDP_PASSWORD).await
}

/// The whole sign-in in one web session: the callback's answer.
pub async fn sign_in(web: &mut WebSession, login: &str) -> Page {
    let authorize = start_at_provider(web).await;
    let back = at_provider(&authorize, login).await;
    callback(web, &back).await
}

pub async fn callback(web: &mut WebSession, back: &str) -> Page {
    let path = back
        .strip_prefix(&web.base)
        .unwrap_or_else(|| panic!("the provider sent the browser to {back}"));
    web.get(path).await
}

fn events(app: &TestApp, id: uuid::Uuid) -> Vec<(String, String, serde_json::Value)> {
    app.app_state
        .services
        .store
        .read_stream(id, 1)
        .unwrap()
        .into_iter()
        .map(|r| (r.event_type, r.actor, r.data))
        .collect()
}

#[tokio::test]
async fn sign_in_through_the_provider_links_the_account_and_roles_follow_the_group_claim() {
    let anna = OidcUser::new(
        "anna",
        IDP_PASSWORD,
        &["avvik-ciso", "avvik-revisor", "other"],
    );
    let olle = OidcUser::new("olle", IDP_PASSWORD, &["avvik-admin"]);
    let (app, idp) = spawn(&[anna.clone(), olle.clone()]).await;
    let mut web = WebSession::new(&app.base);

    // First sign-in: the account is made, linked, given the two mapped roles, and the
    // session reaches the register (no second factor asked: the provider decides that).
    let done = sign_in(&mut web, "anna").await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.header("location"), "/staff");
    assert!(web.cookies.contains_key("avvik_session"));
    assert_eq!(web.get("/staff").await.status, 200);
    let account = app
        .app_state
        .services
        .register
        .read()
        .accounts
        .by_identity(&idp.issuer, "sub-anna")
        .cloned()
        .expect("the account is linked to the provider's user");
    assert_eq!(account.email.as_str(), "anna@example.test");
    let roles: Vec<Role> = account.roles.iter().map(|g| g.role).collect();
    assert_eq!(roles, vec![Role::Ciso, Role::Auditor]);
    let first = events(&app, account.id);
    let types: Vec<&str> = first.iter().map(|(t, _, _)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "AccountCreated",
            "IdentityLinked",
            "RoleGranted",
            "RoleGranted"
        ]
    );
    assert!(first.iter().all(|(_, actor, _)| actor == "oidc:kommunen"));
    assert_eq!(first[1].2["issuer"], idp.issuer.as_str());
    assert_eq!(first[1].2["subject"], "sub-anna");
    // The admin's page of the account (an admin of the provider's admin group) says
    // where it signs in.
    let mut admin = WebSession::new(&app.base);
    assert_eq!(sign_in(&mut admin, "olle").await.status, 303);
    let page = admin
        .get(&format!("/staff/admin/accounts/{}", account.id))
        .await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Loggar in via"), "{}", page.body);
    assert!(
        page.body
            .contains("Logga in med kommunens konto (kommunen)"),
        "{}",
        page.body
    );

    // Signing out ends the session and sends the browser to the provider's logout.
    let logout = web.get("/staff/logout").await;
    let out = web
        .post_form(
            "/staff/logout",
            &[("authenticity_token", logout.csrf_token().as_str())],
        )
        .await;
    assert_eq!(out.status, 303);
    let to = out.header("location");
    assert!(to.starts_with(&idp.issuer), "{to}");
    assert!(to.contains("client_id="), "{to}");
    assert!(
        to.contains(&format!(
            "post_logout_redirect_uri={}",
            url_encode(&format!("{}/staff/login", app.base))
        )),
        "{to}"
    );
    assert_eq!(web.get("/staff").await.status, 303);

    // Out of the CISO group at the provider: at the next sign-in the role is gone, and
    // the revoke is an event.
    let mut moved = anna.clone();
    moved.groups = vec!["avvik-revisor".into()];
    idp.set_users(&[moved, olle.clone()]);
    let mut web = WebSession::new(&app.base);
    let again = sign_in(&mut web, "anna").await;
    assert_eq!(again.status, 303, "{}", again.body);
    let now = app
        .app_state
        .services
        .register
        .read()
        .accounts
        .get(account.id)
        .cloned()
        .unwrap();
    assert_eq!(now.roles.len(), 1);
    assert_eq!(now.roles[0].role, Role::Auditor);
    let after = events(&app, account.id);
    let (t, actor, data) = after.last().unwrap();
    assert_eq!(t, "RoleRevoked");
    assert_eq!(actor, "oidc:kommunen");
    assert_eq!(data["role"], "ciso");
    // The auditor reaches the audit pages, not the register.
    assert_eq!(web.get("/audit").await.status, 200);

    // Out of every mapped group: the roles go (an event), and no session is begun.
    let mut gone = anna.clone();
    gone.groups = vec!["other".into()];
    idp.set_users(&[gone, olle]);
    let mut web = WebSession::new(&app.base);
    let none = sign_in(&mut web, "anna").await;
    assert_eq!(none.status, 403);
    assert!(none.body.contains("ingen roll i avvik"), "{}", none.body);
    assert!(!web.cookies.contains_key("avvik_session"));
    let (t, _, _) = events(&app, account.id).pop().unwrap();
    assert_eq!(t, "RoleRevoked");
    app.stop().await;
}

#[tokio::test]
async fn a_local_account_of_the_same_address_is_not_taken_over_by_a_provider_sign_in() {
    let anna = OidcUser::new("anna", IDP_PASSWORD, &["avvik-ciso"]);
    let (app, _idp) = spawn(std::slice::from_ref(&anna)).await;
    let local = local_account(&app, "anna@example.test").await;
    let mut web = WebSession::new(&app.base);
    let refused = sign_in(&mut web, "anna").await;
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("lokalt konto"), "{}", refused.body);
    assert!(!web.cookies.contains_key("avvik_session"));
    let types: Vec<String> = events(&app, local).into_iter().map(|(t, _, _)| t).collect();
    assert!(
        !types
            .iter()
            .any(|t| t == "IdentityLinked" || t == "RoleRevoked"),
        "{types:?}"
    );
    app.stop().await;
}

/// A local account (ledning) with the tests' password.
async fn local_account(app: &TestApp, email: &str) -> uuid::Uuid {
    app.app_state
        .services
        .create_account(
            &avvik::domain::EmailAddress::parse(email).unwrap(),
            "Lokal",
            &[(Role::Ledning, Vec::new())],
            Some(crate::staff_ui::PASSWORD),
            "test",
        )
        .await
        .unwrap()
}

pub fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The real binary with the provider configured, its log kept.
fn logged_server(dir: &std::path::Path, users: &[OidcUser]) -> (LoggedServer, OidcProvider) {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let idp = start_provider(&base, users);
    let config = dir.join("avvik.toml");
    let mut f = std::fs::File::create(&config).unwrap();
    write!(
        f,
        r#"
[[auth.oidc]]
id = "kommunen"
issuer = "{issuer}"
client_id = "{client_id}"
client_secret_env = "AVVIK_TEST_OIDC_SECRET"
scopes = ["email", "profile", "groups"]
roles = [{{ value = "avvik-ciso", role = "ciso" }}]
"#,
        issuer = idp.issuer,
        client_id = idp.client_id,
    )
    .unwrap();
    let data = dir.join("data");
    let server = LoggedServer::start(
        &data,
        &[
            ("AVVIK_CONFIG", config.to_str().unwrap()),
            ("AVVIK_HTTP__ADDR", &format!("127.0.0.1:{port}")),
            ("AVVIK_HTTP__BASE_URL", &base),
            ("AVVIK_TEST_OIDC_SECRET", &idp.client_secret),
        ],
    );
    (server, idp)
}

/// The log since line `from`, checked for a warn line about the refusal naming `why`,
/// and for no token or code anywhere.
fn assert_refusal_logged(server: &LoggedServer, from: usize, why: &str, code: &str) {
    let found = |log: &[String]| {
        log[from.min(log.len())..].iter().any(|l| {
            l.contains("WARN")
                && l.contains("sign-in through the identity provider refused")
                && l.contains(why)
        })
    };
    // The log is read from the child's pipe by another thread: give it a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !found(&server.log()) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let log = server.log();
    assert!(
        found(&log),
        "no warn line naming {why:?} in {:#?}",
        &log[from.min(log.len())..]
    );
    for l in &log {
        assert!(!l.contains("eyJ"), "a token in the log: {l}");
        assert!(
            code.is_empty() || !l.contains(code),
            "the code in the log: {l}"
        );
    }
}

fn code_of(back: &str) -> String {
    url::Url::parse(back)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn broken_answers_from_the_provider_are_refused_in_swedish_with_nothing_granted() {
    let dir = tempfile::tempdir().unwrap();
    let berit = OidcUser::new("berit", IDP_PASSWORD, &["avvik-ciso"]);
    let (server, idp) = logged_server(dir.path(), std::slice::from_ref(&berit));
    let base = server.base.clone();

    // id_tokens the provider's token endpoint breaks, one way each.
    for (mode, why) in [
        ("wrong-nonce", "nonce"),
        ("expired", "Expired"),
        ("wrong-audience", "audience"),
        ("unknown-key", "Signature verification failed"),
    ] {
        idp.set_mode(mode).await;
        let from = server.log().len();
        let mut web = WebSession::new(&base);
        let authorize = start_at_provider(&mut web).await;
        let back = at_provider(&authorize, "berit").await;
        let page = callback(&mut web, &back).await;
        assert_eq!(page.status, 400, "{mode}: {}", page.body);
        assert!(
            page.body.contains("Inloggningen godtogs inte"),
            "{mode}: {}",
            page.body
        );
        assert!(!web.cookies.contains_key("avvik_session"), "{mode}");
        assert_eq!(web.get("/staff").await.status, 303, "{mode}");
        assert_refusal_logged(&server, from, why, &code_of(&back));
    }
    idp.set_mode("normal").await;

    // A state that is not the one this browser started with.
    let from = server.log().len();
    let mut web = WebSession::new(&base);
    let authorize = start_at_provider(&mut web).await;
    let back = at_provider(&authorize, "berit").await;
    let forged = back.replace("state=", "state=x");
    let page = callback(&mut web, &forged).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(
        page.body.contains("Inloggningen kunde inte slutföras"),
        "{}",
        page.body
    );
    assert!(!web.cookies.contains_key("avvik_session"));
    assert_refusal_logged(&server, from, "state", &code_of(&back));
    // The answer in another browser (no flow cookie): refused the same way.
    let mut other = WebSession::new(&base);
    let page = callback(&mut other, &back).await;
    assert_eq!(page.status, 400);
    assert!(!other.cookies.contains_key("avvik_session"));

    // Nothing was granted by any of it: no account exists yet, so the first good
    // sign-in makes it.
    assert!(!server
        .log()
        .iter()
        .any(|l| l.contains("staff login through the identity provider")));
    let mut web = WebSession::new(&base);
    let authorize = start_at_provider(&mut web).await;
    let good = at_provider(&authorize, "berit").await;
    let page = callback(&mut web, &good).await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert!(web.cookies.contains_key("avvik_session"));

    // The same code again, with a fresh flow of another sign-in: the provider refuses
    // a code it has already exchanged.
    let from = server.log().len();
    let mut replay = WebSession::new(&base);
    let authorize = start_at_provider(&mut replay).await;
    let state = url::Url::parse(&authorize)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let replayed = format!(
        "{base}{CALLBACK}?code={}&state={}",
        url_encode(&code_of(&good)),
        url_encode(&state)
    );
    let page = callback(&mut replay, &replayed).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.body.contains("Inloggningen godtogs inte"));
    assert!(!replay.cookies.contains_key("avvik_session"));
    assert_refusal_logged(&server, from, "invalid_grant", &code_of(&good));

    // The provider rotates its signing key: avvik fetches its keys again (at most once a
    // second) and accepts.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    idp.set_mode("rotated-key").await;
    let mut web = WebSession::new(&base);
    let page = sign_in(&mut web, "berit").await;
    assert_eq!(page.status, 303, "{}", page.body);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !server
        .log()
        .iter()
        .any(|l| l.contains("identity provider keys fetched again"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the keys were not fetched again"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_missing_client_secret_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("avvik.toml");
    std::fs::write(
        &config,
        "[[auth.oidc]]\nid = \"kommunen\"\nissuer = \"https://login.kommunen.se\"\nclient_id = \"avvik\"\nclient_secret_file = \"/finns/inte\"\n\n[http]\nbase_url = \"https://avvik.kommunen.se\"\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let (code, _out, err) = crate::helpers::avvik(
        &["serve"],
        &[
            ("AVVIK_CONFIG", config.to_str().unwrap()),
            ("AVVIK_STORE__DATA_DIR", data.to_str().unwrap()),
            ("AVVIK_HTTP__ADDR", "127.0.0.1:0"),
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("auth.oidc[0].client_secret_file"), "{err}");
}

#[tokio::test]
async fn with_sso_only_the_password_form_is_gone_and_passwords_are_refused() {
    let anna = OidcUser::new("anna", IDP_PASSWORD, &["avvik-ciso"]);
    let (app, _idp) = spawn_with(std::slice::from_ref(&anna), |c| c.auth.sso_only = true).await;
    local_account(&app, "lars@kommunen.example").await;
    let mut web = WebSession::new(&app.base);
    let page = web.get("/staff/login").await;
    assert!(page.body.contains("id=\"sso-kommunen\""));
    assert!(!page.body.contains("id=\"password\""), "{}", page.body);
    let refused = web
        .post_form(
            "/staff/login",
            &[
                ("authenticity_token", page.csrf_token().as_str()),
                ("email", "lars@kommunen.example"),
                ("password", crate::staff_ui::PASSWORD),
                ("next", ""),
            ],
        )
        .await;
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("Inloggning med lösenord är avstängd"));
    assert!(!web.cookies.contains_key("avvik_session"));
    // The provider's sign-in works.
    let done = sign_in(&mut web, "anna").await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(web.get("/staff").await.status, 200);
    app.stop().await;
}
