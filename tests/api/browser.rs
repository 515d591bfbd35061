//! Real-browser tests: headless Chromium driven over WebDriver (chromedriver + fantoccini),
//! with axe-core checking every page for WCAG 2.1 A/AA problems.
//!
//! WebDriver rather than CDP (chromiumoxide): fantoccini is small, speaks the W3C protocol
//! that chromedriver implements for this exact Chromium build (Debian ships both from one
//! source), and its keyboard actions are the W3C input model — what "keyboard only" means.
//!
//! Needs Debian's `chromium` and `chromium-driver` and axe-core from npm; `scripts/test`
//! installs all three. Paths: `AVVIK_CHROMIUM` (default /usr/bin/chromium),
//! `AVVIK_CHROMEDRIVER` (default /usr/bin/chromedriver), `AVVIK_AXE_JS` (default
//! /var/tmp/avvik-npm/node_modules/axe-core/axe.min.js). A missing piece fails the test
//! with a message saying how to get it; nothing is skipped silently.
//!
//! For more flows (staff pages): `Browser::start()`, `goto`, `tab_to`, `type_text`,
//! `press`, `fill`, `text`, `wait_for_path`, `click_and_load`, `run_axe()` / `assert_accessible(what)`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::helpers::TestApp;

const AXE_DEFAULT: &str = "/var/tmp/avvik-npm/node_modules/axe-core/axe.min.js";

fn env_path(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default))
}

fn require(path: &Path, var: &str, what: &str) {
    assert!(
        path.is_file(),
        "{what} not found at {} — run scripts/test (it installs chromium, chromium-driver \
         and axe-core), or set {var} to its path",
        path.display()
    );
}

/// axe-core's source, read from the npm cache.
pub fn axe_source() -> String {
    let path = env_path("AVVIK_AXE_JS", AXE_DEFAULT);
    require(&path, "AVVIK_AXE_JS", "axe-core (axe.min.js)");
    std::fs::read_to_string(&path).expect("axe.min.js readable")
}

/// One axe-core rule that failed, with the elements it failed on.
#[derive(Debug, Clone, Deserialize)]
pub struct AxeViolation {
    pub id: String,
    /// minor, moderate, serious or critical.
    pub impact: Option<String>,
    pub help: String,
    pub nodes: Vec<String>,
}

impl AxeViolation {
    pub fn is_serious(&self) -> bool {
        matches!(self.impact.as_deref(), Some("serious" | "critical"))
    }
}

/// A headless Chromium with its own chromedriver on a free loopback port and a fresh
/// profile. Dropping it ends both processes.
pub struct Browser {
    pub client: Client,
    pub base: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a browser session; `base` is prefixed to paths in `goto`.
    pub async fn start(base: &str) -> Browser {
        let chromium = env_path("AVVIK_CHROMIUM", "/usr/bin/chromium");
        let chromedriver = env_path("AVVIK_CHROMEDRIVER", "/usr/bin/chromedriver");
        require(&chromium, "AVVIK_CHROMIUM", "Chromium");
        require(&chromedriver, "AVVIK_CHROMEDRIVER", "chromedriver");
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            l.local_addr().expect("port").port()
        };
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", chromedriver.display()));
        let profile = tempfile::tempdir().expect("profile dir");
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--lang=sv-SE",
                    "--window-size=1280,1024",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
                "prefs": {"intl.accept_languages": "sv-SE,sv"},
            }
        });
        let caps = match caps {
            Value::Object(m) => m,
            _ => unreachable!("a JSON object"),
        };
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut driver = driver;
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) => {
                    if Instant::now() > deadline {
                        let _ = driver.kill();
                        panic!("no WebDriver session from chromedriver on {url}: {e}");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        Browser {
            client,
            base: base.to_string(),
            driver,
            _profile: profile,
        }
    }

    pub async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{}", self.base, path))
            .await
            .unwrap_or_else(|e| panic!("goto {path}: {e}"));
    }

    pub async fn path(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("url")
            .path()
            .to_string()
    }

    /// Waits until the page's path is `path` (after a form post and redirect).
    pub async fn wait_for_path(&self, path: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = self.path().await;
            if now == path {
                return;
            }
            assert!(Instant::now() < deadline, "still at {now}, expected {path}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Presses and releases one key (see `fantoccini::key::Key` for Tab, Enter, …).
    pub async fn press(&self, key: impl Into<char>) {
        let k = key.into();
        let actions = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: k })
            .then(KeyAction::Up { value: k });
        self.client
            .perform_actions(actions)
            .await
            .expect("key press");
    }

    /// Types text into whatever has focus, key by key.
    pub async fn type_text(&self, text: &str) {
        let mut actions = KeyActions::new("keyboard".into());
        for c in text.chars() {
            actions = actions
                .then(KeyAction::Down { value: c })
                .then(KeyAction::Up { value: c });
        }
        self.client.perform_actions(actions).await.expect("typing");
    }

    /// `id` (or, failing that, the tag name) of the focused element.
    pub async fn focused(&self) -> String {
        let el = self.client.active_element().await.expect("active element");
        match el.attr("id").await.expect("id") {
            Some(id) if !id.is_empty() => id,
            _ => el.tag_name().await.expect("tag"),
        }
    }

    /// Presses Tab until the element with `id` has focus; fails if it never gets it.
    /// Returns the ids focused on the way (the tab order).
    pub async fn tab_to(&self, id: &str) -> Vec<String> {
        let mut seen = Vec::new();
        for _ in 0..40 {
            self.press(Key::Tab).await;
            let f = self.focused().await;
            if f == id {
                return seen;
            }
            seen.push(f);
        }
        panic!("Tab never reached #{id}; focus went through {seen:?}");
    }

    /// Presses Tab until a link to `href` has focus.
    pub async fn tab_to_href(&self, href: &str) {
        for _ in 0..60 {
            self.press(Key::Tab).await;
            let el = self.client.active_element().await.expect("active element");
            if el.attr("href").await.expect("href").as_deref() == Some(href) {
                return;
            }
        }
        panic!("Tab never reached a link to {href}");
    }

    /// Clicks the element found by CSS, as a mouse user would.
    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Clicks an element that loads a new page (a GET form's submit, a link) and waits until
    /// the new page has replaced the old one: for when the new page has the same elements as
    /// the old one (the register filtered), so `wait_for` would find the old page's.
    pub async fn click_and_load(&self, css: &str) {
        self.client
            .execute("window.avvikOldPage = true;", vec![])
            .await
            .expect("mark the page");
        self.click(css).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let loaded = self
                .client
                .execute(
                    "return window.avvikOldPage === undefined && document.readyState === 'complete';",
                    vec![],
                )
                .await
                .ok()
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            if loaded {
                return;
            }
            assert!(Instant::now() < deadline, "{css} did not load a new page");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The `value` property of an input.
    pub async fn value(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .prop("value")
            .await
            .expect("value")
            .unwrap_or_default()
    }

    /// Types into an input found by CSS (a shortcut for long flows where the keyboard path
    /// is not what is being tested).
    #[allow(dead_code)] // for the staff flows
    pub async fn fill(&self, css: &str, text: &str) {
        let el = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        el.clear().await.expect("clear");
        el.send_keys(text).await.expect("send keys");
    }

    /// Waits for an element to appear (after a form post that returns to the same path,
    /// where `wait_for_path` would not wait).
    pub async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("waiting for {css}: {e}"))
    }

    pub async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .text()
            .await
            .expect("text")
    }

    /// Runs axe-core on the current page (WCAG 2.0/2.1 A and AA plus best practices).
    pub async fn run_axe(&self) -> Vec<AxeViolation> {
        self.client
            .execute(&axe_source(), vec![])
            .await
            .expect("axe-core loads into the page");
        let result = self
            .client
            .execute_async(
                r#"
                const done = arguments[arguments.length - 1];
                axe.run(document, {
                    runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']},
                    resultTypes: ['violations'],
                }).then(r => done({violations: r.violations.map(v => ({
                    id: v.id,
                    impact: v.impact,
                    help: v.help,
                    nodes: v.nodes.map(n => n.target.join(' ')),
                }))})).catch(e => done({error: String(e)}));
                "#,
                vec![],
            )
            .await
            .expect("axe.run answers");
        if let Some(e) = result.get("error") {
            panic!("axe.run failed: {e}");
        }
        serde_json::from_value(result["violations"].clone()).expect("axe result shape")
    }

    /// Fails on any serious or critical axe violation; prints the milder ones.
    pub async fn assert_accessible(&self, what: &str) {
        let violations = self.run_axe().await;
        for v in violations.iter().filter(|v| !v.is_serious()) {
            eprintln!(
                "axe ({what}), {:?}: {} – {} {:?}",
                v.impact, v.id, v.help, v.nodes
            );
        }
        let serious: Vec<&AxeViolation> = violations.iter().filter(|v| v.is_serious()).collect();
        assert!(
            serious.is_empty(),
            "serious accessibility problems on {what}: {serious:#?}"
        );
    }

    /// Fails when two elements share an id (labels and error links would find the wrong
    /// one; axe reports this only for focusable elements).
    pub async fn assert_unique_ids(&self, what: &str) {
        let dups = self
            .client
            .execute(
                "const seen = {}; document.querySelectorAll('[id]').forEach(e => \
                   seen[e.id] = (seen[e.id] || 0) + 1); \
                 return Object.keys(seen).filter(id => seen[id] > 1);",
                vec![],
            )
            .await
            .expect("ids listed");
        assert_eq!(dups, json!([]), "duplicate ids on {what}");
    }

    /// Saves a full-page PNG as `<dir>/avvik-<name>.png` when `AVVIK_SCREENSHOTS` names a
    /// directory (for looking at the pages; nothing is written otherwise).
    pub async fn screenshot(&self, name: &str) {
        let Some(dir) = std::env::var_os("AVVIK_SCREENSHOTS") else {
            return;
        };
        let height = self
            .client
            .execute("return document.documentElement.scrollHeight;", vec![])
            .await
            .expect("page height")
            .as_u64()
            .unwrap_or(1024);
        let (width, old_height) = (1280, 1024);
        self.client
            .set_window_size(
                width,
                u32::try_from(height).unwrap_or(old_height).max(old_height),
            )
            .await
            .expect("window resized");
        let png = self.client.screenshot().await.expect("screenshot");
        self.client
            .set_window_size(width, old_height)
            .await
            .expect("window size restored");
        let path = PathBuf::from(dir).join(format!("avvik-{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Types a date (`YYYY-MM-DD`) or time (`HH:MM`) into the focused input, key by key.
/// Chromium's segmented inputs take the digits in the browser locale's order (the
/// Debian package without chromium-l10n is en-US: month/day/year, 12 h), so the order
/// is read from the browser's own `Intl` first.
async fn type_date_or_time(b: &Browser, id: &str, value: &str) {
    let keys = if let Some((y, rest)) = value.split_once('-') {
        let (m, d) = rest.split_once('-').expect("YYYY-MM-DD");
        let order = b
            .client
            .execute(
                "return new Intl.DateTimeFormat().formatToParts(new Date(2025, 6, 1))\
                   .map(p => p.type).filter(t => ['year', 'month', 'day'].includes(t));",
                vec![],
            )
            .await
            .expect("locale date order");
        let order: Vec<String> = serde_json::from_value(order).expect("list of parts");
        order
            .iter()
            .map(|part| match part.as_str() {
                "year" => y,
                "month" => m,
                _ => d,
            })
            .collect::<String>()
    } else {
        let (h, min) = value.split_once(':').expect("HH:MM");
        let h12 = b
            .client
            .execute(
                "return new Intl.DateTimeFormat(undefined, {hour: 'numeric'})\
                   .resolvedOptions().hour12 === true;",
                vec![],
            )
            .await
            .expect("locale clock");
        if h12 == Value::Bool(true) {
            let hour: u32 = h.parse().expect("hour");
            let (h12, half) = match hour {
                0 => (12, 'A'),
                1..=11 => (hour, 'A'),
                12 => (12, 'P'),
                _ => (hour - 12, 'P'),
            };
            format!("{h12:02}{min}{half}")
        } else {
            format!("{h}{min}")
        }
    };
    b.type_text(&keys).await;
    let got = b.value(&format!("#{id}")).await;
    assert_eq!(got, value, "#{id} after typing {keys}");
}

/// The acceptance run, in one browser: an employee files a report with the keyboard,
/// reads the receipt and follows the status link; a CISO signs in, finds the deviation
/// in the register and classifies it as major through the form; then the other staff
/// pages (annual report, accounts, audit) are opened by the roles that use them. axe-core
/// checks every page on the way.
#[tokio::test]
async fn a_report_filed_in_the_browser_is_classified_by_the_ciso_in_the_browser() {
    let app = TestApp::spawn().await;
    let b = Browser::start(&app.base).await;
    let (reference, status_link) = report_with_the_keyboard_only(&b, &app).await;
    follow_the_status_link(&b, &app, &reference, &status_link).await;

    crate::authz::tokens(&app).await;
    classify_as_ciso(&b, &app, &reference).await;
    annual_report_as_ciso(&b, &reference).await;
    quarantine_as_ciso(&b, &app).await;
    sign_out(&b).await;
    accounts_as_admin(&b).await;
    audit_as_auditor(&b, &reference).await;
    b.close().await;
}

/// The public form, filled in field by field with Tab and typing; returns the reference
/// and the status link from the receipt.
async fn report_with_the_keyboard_only(b: &Browser, app: &TestApp) -> (String, String) {
    // The form: skip link first, then straight into the form.
    b.goto("/").await;
    assert_eq!(
        b.client.title().await.unwrap(),
        "Rapportera en avvikelse – Avvikelserapportering"
    );
    b.assert_accessible("the report form").await;
    b.press(Key::Tab).await;
    let skip = b.client.active_element().await.unwrap();
    assert_eq!(skip.text().await.unwrap(), "Hoppa till innehållet");
    b.press(Key::Enter).await;
    assert_eq!(b.focused().await, "main");

    // Sending the empty form: the error summary gets focus and links to the fields.
    b.tab_to("title").await;
    b.tab_to("reporter_email").await;
    b.press(Key::Tab).await;
    assert_eq!(
        b.client
            .active_element()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "Skicka rapporten"
    );
    b.press(Key::Enter).await;
    let summary = b.wait_for(".error-summary").await;
    assert_eq!(b.path().await, "/");
    let focused = b.client.active_element().await.unwrap();
    assert_eq!(
        focused.attr("class").await.unwrap().as_deref(),
        Some("error-summary"),
        "the error summary has focus"
    );
    assert!(summary
        .text()
        .await
        .unwrap()
        .contains("Vad har hänt: Fältet måste fyllas i."));
    assert!(b.client.title().await.unwrap().starts_with("Fel: "));
    b.assert_accessible("the report form with errors").await;

    // Filling it in, field by field, with Tab and typing.
    let order = b.tab_to("title").await;
    assert!(
        order
            .iter()
            .all(|id| id.is_empty() || !id.starts_with("reporter")),
        "{order:?}"
    );
    b.type_text("Nätfiskemejl öppnat").await;
    b.tab_to("description").await;
    b.type_text("Jag klickade på en länk i ett mejl som såg ut att komma från IT-avdelningen.")
        .await;
    b.tab_to("occurred_date").await;
    type_date_or_time(b, "occurred_date", "2025-07-01").await;
    b.tab_to("occurred_time").await;
    type_date_or_time(b, "occurred_time", "09:15").await;
    b.tab_to("discovered_date").await;
    type_date_or_time(b, "discovered_date", "2025-07-01").await;
    b.tab_to("discovered_time").await;
    type_date_or_time(b, "discovered_time", "10:30").await;
    b.tab_to("sector").await;
    b.type_text("Soc").await;
    assert_eq!(b.value("#sector").await, "Socialtjänsten");
    b.tab_to("asset").await;
    b.type_text("Outlook").await;
    b.tab_to("personal_data").await;
    b.press(' ').await;
    b.tab_to("anonymous").await;
    b.tab_to("reporter_name").await;
    b.type_text("Anna Andersson").await;
    b.tab_to("reporter_email").await;
    b.type_text("anna.andersson@kommunen.example").await;
    b.press(Key::Enter).await;

    // The receipt: reference and status link.
    b.wait_for_path("/receipt").await;
    let year = avvik::domain::stockholm_year(chrono::Utc::now());
    let reference = b.text(".reference").await;
    assert_eq!(reference, format!("AVV-{year}-0001"));
    let link = b
        .client
        .find(Locator::Css(".status-link a"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .expect("status link");
    assert!(
        link.starts_with("/status/") && link.len() == 8 + 64,
        "{link}"
    );
    b.assert_accessible("the receipt").await;

    // What was stored matches what was typed (Stockholm summer time → UTC).
    {
        let reg = app.app_state.services.register.read();
        let d = reg.list()[0].clone();
        assert_eq!(d.title, "Nätfiskemejl öppnat");
        assert_eq!(d.sector.as_deref(), Some("Socialtjänsten"));
        assert!(d.personal_data_suspected);
        assert_eq!(
            d.discovered_at,
            chrono::DateTime::parse_from_rfc3339("2025-07-01T08:30:00Z").unwrap()
        );
        assert_eq!(
            d.reporter.unwrap().email.as_str(),
            "anna.andersson@kommunen.example"
        );
    }
    (reference, link)
}

/// From the receipt to the status page with the keyboard, adding information there.
async fn follow_the_status_link(b: &Browser, app: &TestApp, reference: &str, link: &str) {
    b.tab_to_href(link).await;
    b.press(Key::Enter).await;
    b.wait_for_path(link).await;
    assert!(b.text(".status").await.contains("mottagen"));
    assert!(b.text("h1").await.contains(reference));
    b.assert_accessible("the status page").await;

    // Adding information.
    b.tab_to("text").await;
    b.type_text("Jag har bytt lösenord efteråt.").await;
    // Past the (optional) file input to the button.
    b.tab_to("bilaga").await;
    b.press(Key::Tab).await;
    b.press(Key::Enter).await;
    let notice = b.wait_for(".notice").await.text().await.unwrap();
    assert_eq!(b.path().await, link);
    assert!(notice.contains("Tack"), "{notice}");
    assert!(b
        .text(".messages")
        .await
        .contains("Jag har bytt lösenord efteråt."));
    b.assert_accessible("the status page after adding information")
        .await;
    {
        let reg = app.app_state.services.register.read();
        let c = reg.list()[0].comments.last().cloned().unwrap();
        assert!(c.from_reporter);
        assert_eq!(c.by, "reporter");
    }

    // An unknown link gets the Swedish 404 page, which is accessible too.
    b.goto(&format!("/status/{}", "0".repeat(64))).await;
    assert_eq!(b.text("h1").await, "Sidan finns inte");
    b.assert_accessible("the 404 page").await;
}

/// Signs in on the login page with the keyboard and waits for the page the role lands on.
pub(crate) async fn sign_in(b: &Browser, email: &str, lands_on: &str) {
    b.goto("/staff/login").await;
    b.tab_to("email").await;
    b.type_text(email).await;
    b.tab_to("password").await;
    b.type_text(crate::staff_ui::PASSWORD).await;
    b.press(Key::Enter).await;
    b.wait_for_path(lands_on).await;
}

/// Signs out through the navigation and the logout page's button.
pub(crate) async fn sign_out(b: &Browser) {
    b.click("nav a[href='/staff/logout']").await;
    b.wait_for_path("/staff/logout").await;
    b.assert_accessible("the logout page").await;
    b.click("main form button[type=submit]").await;
    b.wait_for_path("/staff/login").await;
}

/// The CISO signs in, opens the deviation from the register and classifies it as major
/// with the keyboard; the timeline then says so.
async fn classify_as_ciso(b: &Browser, app: &TestApp, reference: &str) {
    b.goto("/staff/login").await;
    assert_eq!(b.text("h1").await, "Logga in");
    b.assert_accessible("the login page").await;
    sign_in(b, "ciso@kommunen.example", "/staff").await;
    b.assert_accessible("the register").await;
    b.screenshot("register").await;

    let page = format!("/staff/deviations/{reference}");
    b.tab_to_href(&page).await;
    b.press(Key::Enter).await;
    b.wait_for_path(&page).await;
    assert!(b.text("h1").await.contains("Nätfiskemejl öppnat"));
    b.assert_accessible("the deviation page").await;
    b.assert_unique_ids("the deviation page").await;

    // Saving without a severity: the error summary has focus and its links lead to
    // elements on the page.
    b.click("form[action$='/classify'] button[type=submit]")
        .await;
    b.wait_for_path(&format!("{page}/classify")).await;
    let summary = b.text(".error-summary").await;
    assert!(
        summary.contains("Allvarlighet: Välj mindre eller större avvikelse."),
        "{summary}"
    );
    assert_eq!(
        b.client
            .active_element()
            .await
            .unwrap()
            .attr("class")
            .await
            .unwrap()
            .as_deref(),
        Some("error-summary"),
        "the error summary has focus"
    );
    let dangling = b
        .client
        .execute(
            "return [...document.querySelectorAll('.error-summary a')]\
               .map(a => a.getAttribute('href').slice(1))\
               .filter(id => !document.getElementById(id));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(dangling, json!([]), "error summary links without a target");
    b.assert_accessible("the deviation page with errors").await;
    b.screenshot("deviation-errors").await;
    b.assert_unique_ids("the deviation page with errors").await;

    // Major, confidentiality 3, phishing, a personal data breach, with a rationale.
    b.tab_to("severity-minor").await;
    b.press(Key::Down).await;
    assert_eq!(b.focused().await, "severity-major");
    b.tab_to("aspect_confidentiality").await;
    b.type_text("3").await;
    assert_eq!(b.value("#aspect_confidentiality").await, "3");
    b.tab_to("category").await;
    b.type_text("nätfiske").await;
    assert_eq!(b.value("#category").await, "nätfiske");
    b.tab_to("pdb-no").await;
    b.press(Key::Down).await;
    b.press(Key::Down).await;
    assert_eq!(b.focused().await, "pdb-yes");
    b.tab_to("rationale").await;
    b.type_text("Inloggningsuppgifter till e-post med personuppgifter kan ha röjts.")
        .await;
    b.press(Key::Tab).await;
    let button = b.client.active_element().await.unwrap();
    assert_eq!(button.text().await.unwrap(), "Spara klassning");
    b.press(Key::Enter).await;

    // Back on the deviation page: saved, the badge, and the classification in the timeline.
    b.wait_for_path(&page).await;
    assert_eq!(
        b.wait_for(".panel--success").await.text().await.unwrap(),
        "Ändringen är sparad."
    );
    assert_eq!(
        b.text(".badge--major").await.to_lowercase(),
        "större avvikelse"
    );
    let entry = b
        .client
        .find(Locator::XPath(
            "//ol[@class='timeline']/li[.//strong[normalize-space()='Klassad som större avvikelse']]",
        ))
        .await
        .expect("the classification is in the timeline");
    assert!(entry.is_displayed().await.unwrap());
    let entry = entry.text().await.unwrap();
    assert!(entry.contains("Kategori: nätfiske"), "{entry}");
    assert!(
        b.text("main")
            .await
            .contains("Anmälan av personuppgiftsincident till IMY (72 h)"),
        "the GDPR deadline is shown"
    );
    b.assert_accessible("the deviation page after classification")
        .await;
    b.assert_unique_ids("the deviation page after classification")
        .await;
    b.screenshot("deviation").await;

    let d = app
        .app_state
        .services
        .register
        .read()
        .by_reference(avvik::domain::Reference::parse(reference).unwrap())
        .cloned()
        .unwrap();
    assert_eq!(d.severity, Some(avvik::domain::Severity::Major));
    let c = d.classifications.last().unwrap();
    assert_eq!(c.by, "user:ciso@kommunen.example");
    assert_eq!(c.classification.category, "nätfiske");
    assert_eq!(
        c.classification.personal_data_breach,
        avvik::domain::PersonalDataBreach::Yes
    );
}

/// This year's annual report (a draft) lists the major deviation.
async fn annual_report_as_ciso(b: &Browser, reference: &str) {
    let year = avvik::domain::stockholm_year(chrono::Utc::now());
    b.goto(&format!("/staff/reports/{year}")).await;
    assert!(b.text("h1").await.contains(&year.to_string()));
    assert!(
        b.text("main").await.contains(reference),
        "the major deviation is in the report"
    );
    b.assert_accessible("the annual report").await;
    b.screenshot("annual-report").await;
    // The report is a document of its own, without the staff navigation: back to it.
    b.client.back().await.expect("back");
    b.wait_for_path(&format!("/staff/deviations/{reference}"))
        .await;
}

/// A message without a sender waits in the e-mail quarantine; the CISO registers it as a
/// deviation with the page's button and lands on that deviation.
async fn quarantine_as_ciso(b: &Browser, app: &TestApp) {
    let raw = b"To: avvikelse@kommunen.example\r\nSubject: Skrivaren skriver ut fel dokument\r\n\
                Message-ID: <browser-quarantine@kommunen.example>\r\n\r\n\
                Skrivaren skriver ut andras dokument.\r\n"
        .to_vec();
    let r = app
        .app_state
        .intake
        .process(raw, avvik::intake::record::Source::Http)
        .await
        .expect("processed");
    assert_eq!(r.outcome, avvik::intake::Outcome::Quarantined);
    b.goto("/staff/intake/quarantine").await;
    assert_eq!(b.text("h1").await, "Karantän för e-post");
    assert!(b
        .text("main")
        .await
        .contains("Skrivaren skriver ut fel dokument"));
    b.assert_accessible("the e-mail quarantine").await;
    b.assert_unique_ids("the e-mail quarantine").await;
    b.click("main form[action$='/release'] button").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.path().await.starts_with("/staff/deviations/") {
        assert!(Instant::now() < deadline, "the new deviation did not open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(b
        .text("h1")
        .await
        .contains("Skrivaren skriver ut fel dokument"));
    b.assert_accessible("a deviation released from the quarantine")
        .await;
    b.goto("/staff/intake/quarantine").await;
    assert!(b
        .text("main")
        .await
        .contains("Släppt ur karantänen som ny avvikelse"));
}

/// The administrator's accounts page and one account.
async fn accounts_as_admin(b: &Browser) {
    sign_in(b, "admin@kommunen.example", "/staff/admin").await;
    assert_eq!(b.text("h1").await, "Konton");
    b.assert_accessible("the accounts page").await;
    b.screenshot("accounts").await;
    b.assert_unique_ids("the accounts page").await;
    b.click("main table a[href^='/staff/admin/accounts/']")
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.path().await.starts_with("/staff/admin/accounts/") {
        assert!(Instant::now() < deadline, "the account page did not open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.assert_accessible("an account page").await;
    b.screenshot("account").await;
    b.assert_unique_ids("an account page").await;
    sign_out(b).await;
}

/// The auditor's pages: the overview, the register as of now, a deviation's history,
/// changes and accounts.
async fn audit_as_auditor(b: &Browser, reference: &str) {
    sign_in(b, "revisor@kommunen.example", "/staff").await;
    b.click("nav a[href='/audit']").await;
    b.wait_for_path("/audit").await;
    assert!(b.text("#verify-result").await.contains("obruten"));
    b.assert_accessible("the audit overview").await;
    b.screenshot("audit").await;
    b.assert_unique_ids("the audit overview").await;
    b.click("form[action='/audit/register'] button[type=submit]")
        .await;
    b.wait_for_path("/audit/register").await;
    b.assert_accessible("the register as of a moment").await;
    b.click(&format!("main a[href='/audit/deviations/{reference}']"))
        .await;
    b.wait_for_path(&format!("/audit/deviations/{reference}"))
        .await;
    b.assert_accessible("a deviation's history").await;
    b.goto("/audit/changes?from=seq%3A1").await;
    b.assert_accessible("the changes page").await;
    b.goto("/audit/accounts").await;
    b.assert_accessible("the accounts as of a moment").await;
}

/// The harness itself: axe must report a page that is broken on purpose, or a green run
/// of the test above would mean nothing.
#[tokio::test]
async fn axe_reports_a_page_with_known_problems() {
    let app = TestApp::spawn().await;
    let b = Browser::start(&app.base).await;
    b.goto("/finns-inte").await;
    b.client
        .execute(
            "document.querySelector('main').innerHTML = \
             '<input type=\"text\"><p style=\"color:#bbb\">Svag kontrast</p>';",
            vec![],
        )
        .await
        .expect("page changed");
    let violations = b.run_axe().await;
    let ids: Vec<&str> = violations.iter().map(|v| v.id.as_str()).collect();
    assert!(ids.contains(&"label"), "{violations:#?}");
    assert!(violations.iter().any(|v| v.id == "label" && v.is_serious()));
    b.close().await;
}
