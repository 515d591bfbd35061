//! Real-browser tests for a new installation: a major deviation on the default (empty)
//! recipient lists is flagged everywhere and escalated once the admin adds the board in
//! the UI; the first-run setup link creates the first admin and CISO, once, for an hour.

use std::sync::Arc;
use std::time::Duration;

use avvik::auth::Role;
use avvik::clock::{ManualClock, SystemClock};
use avvik::domain::EmailAddress;
use fantoccini::key::Key;
use serde_json::{json, Value};

use crate::browser::{sign_in, sign_out, Browser};
use crate::helpers::TestApp;
use crate::notify::smtp::{Mode, SmtpSink};
use crate::notify::{sorted, to, KS, LG};

async fn readyz(app: &TestApp) -> Value {
    app.client
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_major_deviation_without_board_addresses_is_flagged_and_escalated_once_they_are_added() {
    let sink = SmtpSink::start(Mode::Normal).await;
    let app = TestApp::spawn_with(
        |c| {
            crate::notify::mail_to_sink(c, sink.port());
            // The default configuration: no recipients at all.
            c.recipients = Default::default();
            c.notifications.poll_interval_s = 1;
        },
        Arc::new(SystemClock),
    )
    .await;
    crate::authz::tokens(&app).await;
    let r = app
        .post_json(
            "/api/v1/deviations",
            json!({"title": "Ransomware på filservern", "description": "Filerna är krypterade", "sector": "Socialtjänsten"}),
        )
        .await;
    let reference = r.json::<Value>().await.unwrap()["reference"]
        .as_str()
        .unwrap()
        .to_string();

    let b = Browser::start(&app.base).await;
    sign_in(&b, "ciso@kommunen.example", "/staff").await;
    let banner = b.text("#missing-recipients").await;
    assert!(
        banner.contains("Ledningsgruppen") && banner.contains("Kommunstyrelsen"),
        "{banner}"
    );
    let page = format!("/staff/deviations/{reference}");
    b.goto(&page).await;
    b.tab_to("severity-minor").await;
    b.press(Key::Down).await;
    assert_eq!(b.focused().await, "severity-major");
    b.tab_to("aspect_availability").await;
    b.type_text("4").await;
    b.tab_to("category").await;
    b.type_text("skadlig kod").await;
    b.tab_to("pdb-no").await;
    b.press(Key::Down).await;
    b.press(Key::Down).await;
    assert_eq!(b.focused().await, "pdb-yes");
    b.fill("#rationale", "Journaler kan ha lästs.").await;
    b.click("form[action$='/classify'] button[type=submit]")
        .await;
    b.wait_for_path(&page).await;
    // Red on the deviation page: the escalation went nowhere.
    let warning = b.wait_for("#undeliverable").await.text().await.unwrap();
    assert!(
        warning.contains("Större avvikelse rapporterad"),
        "{warning}"
    );
    assert!(
        warning.contains("ledningsgruppen") && warning.contains("kommunstyrelsen"),
        "{warning}"
    );
    b.assert_accessible("the deviation page with undeliverable e-mail")
        .await;
    b.goto("/staff").await;
    assert!(
        b.text("main").await.contains("Utskick saknar mottagare"),
        "the register marks it"
    );
    let ready = readyz(&app).await;
    assert_eq!(ready["escalation_ready"], false);
    assert!(ready["missing_recipients"]
        .as_array()
        .unwrap()
        .contains(&json!("ledningsgrupp")));
    sign_out(&b).await;

    // The admin follows the banner's link and adds the board.
    sign_in(&b, "admin@kommunen.example", "/staff/admin").await;
    b.click("#missing-recipients a[href='/staff/admin/recipients']")
        .await;
    b.wait_for_path("/staff/admin/recipients").await;
    b.assert_accessible("the recipients page").await;
    b.assert_unique_ids("the recipients page").await;
    b.fill("#ledningsgrupp", &LG.join("\n")).await;
    b.fill("#kommunstyrelsen", &KS.join("\n")).await;
    b.click("main form button[type=submit]").await;
    assert_eq!(
        b.wait_for(".panel--success").await.text().await.unwrap(),
        "Mottagarlistorna är sparade."
    );
    let banner = b.text("#missing-recipients").await;
    assert!(
        !banner.contains("Ledningsgruppen") && banner.contains("CISO"),
        "{banner}"
    );
    assert!(b
        .text("main table")
        .await
        .contains("user:admin@kommunen.example"));

    // No new classification: the owed escalation reaches the SMTP server, once each.
    let m = sink
        .wait_until(Duration::from_secs(20), |m| {
            to(m, "Större avvikelse").len() >= 4
        })
        .await;
    let mut board: Vec<&str> = LG.iter().chain(KS.iter()).copied().collect();
    board.sort();
    assert_eq!(to(&m, "Större avvikelse"), sorted(&board));
    app.app_state
        .notify
        .deliver_pending_once(chrono::Utc::now())
        .await;
    assert_eq!(to(&sink.messages(), "Större avvikelse").len(), 4);
    assert_eq!(readyz(&app).await["missing_recipients"], json!(["ciso"]));
    b.close().await;
}

/// The link `avvik serve` offers (see `the_binary_logs_the_setup_link_once`).
async fn setup_path(app: &TestApp) -> String {
    let mut rx = avvik::startup::spawn_setup_link(
        app.app_state.services.clone(),
        app.app_state.config.http.base_url.clone(),
    );
    let link = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|l| l.is_some()))
        .await
        .expect("a setup link is issued")
        .unwrap()
        .clone()
        .unwrap();
    let path = link.strip_prefix("http://127.0.0.1:8080").unwrap_or(&link);
    assert!(path.starts_with("/setup/"), "{link}");
    path.to_string()
}

#[tokio::test]
async fn the_first_run_link_creates_the_first_admin_and_ciso_once_and_expires() {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let app = TestApp::spawn_with(|_| {}, clock.clone()).await;
    let path = setup_path(&app).await;
    // Only the hash is stored.
    let token = path.trim_start_matches("/setup/");
    let log = app.app_state.services.store.read_batch(1, 1000).unwrap();
    let issued = log
        .iter()
        .find(|r| r.event_type == "SetupLinkIssued")
        .unwrap();
    assert!(!issued.data.to_string().contains(token));
    assert_eq!(
        issued.data["token_hash"],
        json!(avvik_events::hash_hex(token.as_bytes()))
    );

    let b = Browser::start(&app.base).await;
    // The login page tells a newcomer how to get in.
    b.goto("/staff/login").await;
    assert!(b.text("#no-accounts").await.contains("engångslänken"));
    b.goto(&path).await;
    assert_eq!(b.text("h1").await, "Kom igång med avvik");
    b.assert_accessible("the setup page").await;
    b.fill("#admin_name", "Ali Admin").await;
    b.fill("#admin_email", "ali@kommunen.example").await;
    b.fill("#admin_password", "ett långt lösenord 123").await;
    b.fill("#ciso_name", "Karin CISO").await;
    b.fill("#ciso_email", "karin@kommunen.example").await;
    b.fill("#ciso_password", "ett annat långt lösenord").await;
    b.click("main form button[type=submit]").await;
    assert!(b
        .wait_for("#setup-done")
        .await
        .text()
        .await
        .unwrap()
        .contains("Kontona är skapade"));
    {
        let reg = app.app_state.services.register.read();
        let admin = reg
            .accounts
            .by_email(&EmailAddress::parse("ali@kommunen.example").unwrap())
            .expect("the admin account");
        assert!(admin.roles.iter().any(|g| g.role == Role::Admin));
        let ciso = reg
            .accounts
            .by_email(&EmailAddress::parse("karin@kommunen.example").unwrap())
            .expect("the CISO account");
        assert!(ciso.roles.iter().any(|g| g.role == Role::Ciso));
    }
    // The link is dead now.
    b.goto(&path).await;
    assert!(b
        .text("#setup-refused")
        .await
        .contains("Länken har redan använts"));
    b.assert_accessible("the used setup link").await;
    // And the admin can sign in.
    b.goto("/staff/login").await;
    b.fill("#email", "ali@kommunen.example").await;
    b.fill("#password", "ett långt lösenord 123").await;
    b.press(Key::Enter).await;
    b.wait_for_path("/staff/admin").await;
    b.close().await;

    // Another new installation: its link is refused after an hour.
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let app = TestApp::spawn_with(|_| {}, clock.clone()).await;
    let path = setup_path(&app).await;
    let b = Browser::start(&app.base).await;
    clock.advance(chrono::Duration::minutes(61));
    b.goto(&path).await;
    assert!(b
        .text("#setup-refused")
        .await
        .contains("Länken har gått ut"));
    // A made-up link is refused too.
    b.goto(&format!("/setup/{}", "0".repeat(64))).await;
    assert!(b
        .text("#setup-refused")
        .await
        .contains("Länken gäller inte"));
    assert!(app.app_state.services.register.read().accounts.is_empty());
    b.close().await;
}

/// `avvik serve` on an empty data directory logs the setup link once; it opens the setup
/// page. With an account (made with the CLI) no link is offered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_logs_the_setup_link_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = crate::helpers::LoggedServer::start(&data, &[]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let link = loop {
        let found = server.log().iter().find_map(|l| {
            l.find("setup_url=").map(|i| {
                l[i + 10..]
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
        });
        if let Some(l) = found {
            break l;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no setup link in the log"
        );
        std::thread::sleep(Duration::from_millis(25));
    };
    let path = &link[link.find("/setup/").expect("a setup path")..];
    let page = reqwest::get(format!("{}{path}", server.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Kom igång med avvik"), "{page}");
    let n = server
        .log()
        .iter()
        .filter(|l| l.contains("setup_url="))
        .count();
    assert_eq!(n, 1, "logged once");
    drop(server);
    crate::helpers::cli_ciso_token(&data);
    let server = crate::helpers::LoggedServer::start(&data, &[]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(!server.log().iter().any(|l| l.contains("setup_url=")));
}
