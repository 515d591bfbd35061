//! Webhooks against a receiver on loopback: signed, retried after a 500, abandoned when the
//! receiver refuses or keeps failing, and nothing lost across a SIGKILL of the real binary.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use avvik::clock::{Clock, ManualClock};
use avvik::config::{Config, WebhookConfig};
use avvik::domain::{PersonalDataBreach, Severity};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};

use crate::helpers::{avvik, Server, TestApp};
use crate::notify::{classify, exec, report, t};

pub const SECRET: &str = "ett-delat-hemligt-lösenord";

/// One POST the receiver got.
#[derive(Debug, Clone)]
pub struct Hit {
    pub delivery: String,
    pub event: String,
    pub timestamp: String,
    pub signature: String,
    pub body: Vec<u8>,
    /// What the receiver answered (0: it never answered).
    pub status: u16,
}

impl Hit {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }

    /// Checks the signature as a receiver would, from the documented scheme alone:
    /// HMAC-SHA256 of "<X-Avvik-Timestamp>.<body>" under the shared secret.
    pub fn signed_with(&self, secret: &str) -> bool {
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(self.timestamp.as_bytes());
        mac.update(b".");
        mac.update(&self.body);
        let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        expected == self.signature
    }
}

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 500 to the first POST of each delivery id, 200 after.
    FailFirst,
    Ok,
    AlwaysFail,
    /// 410 Gone.
    Gone,
    /// Takes the request and never answers.
    Stall,
}

#[derive(Clone)]
struct Shared {
    hits: Arc<Mutex<Vec<Hit>>>,
    mode: Arc<Mutex<Mode>>,
}

/// A webhook receiver on loopback (a small axum server).
pub struct Receiver {
    shared: Shared,
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

async fn take(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let mode = *s.mode.lock().unwrap();
    let delivery = h("x-avvik-delivery");
    let status = match mode {
        Mode::Ok => 200,
        Mode::AlwaysFail => 500,
        Mode::Gone => 410,
        Mode::Stall => 0,
        Mode::FailFirst => {
            let seen = s
                .hits
                .lock()
                .unwrap()
                .iter()
                .any(|x| x.delivery == delivery);
            if seen {
                200
            } else {
                500
            }
        }
    };
    s.hits.lock().unwrap().push(Hit {
        delivery,
        event: h("x-avvik-event"),
        timestamp: h("x-avvik-timestamp"),
        signature: h("x-avvik-signature"),
        body: body.to_vec(),
        status,
    });
    if status == 0 {
        std::future::pending::<()>().await;
    }
    StatusCode::from_u16(status).unwrap()
}

impl Receiver {
    pub async fn start(mode: Mode) -> Receiver {
        let shared = Shared {
            hits: Default::default(),
            mode: Arc::new(Mutex::new(mode)),
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(take))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { shared, port, task }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.shared.hits.lock().unwrap().clone()
    }

    /// Waits (at most `within`) until `done` holds for the hits so far; returns them.
    pub async fn wait_until(&self, within: Duration, done: impl Fn(&[Hit]) -> bool) -> Vec<Hit> {
        let deadline = Instant::now() + within;
        loop {
            let hits = self.hits();
            if done(&hits) || Instant::now() > deadline {
                return hits;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn webhook(name: &str, url: &str, events: &[&str]) -> WebhookConfig {
    WebhookConfig {
        name: name.into(),
        url: url.into(),
        secret: SECRET.into(),
        secret_file: Default::default(),
        secret_env: String::new(),
        events: events.iter().map(|e| e.to_string()).collect(),
        max_attempts: 10,
        timeout_s: 5,
    }
}

fn with_hooks(c: &mut Config, hooks: Vec<WebhookConfig>) {
    c.webhooks = hooks;
    c.notifications.retry_first_s = 60;
    c.notifications.retry_max_s = 600;
    c.validate().expect("a valid configuration");
}

/// Stored records of the given types, in log order.
fn records(app: &TestApp, types: &[&str]) -> Vec<avvik_events::RecordedEvent> {
    app.app_state
        .services
        .store
        .read_batch(1, 100_000)
        .unwrap()
        .into_iter()
        .filter(|r| types.contains(&r.event_type.as_str()))
        .collect()
}

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
async fn a_500_is_retried_and_each_delivery_arrives_once_signed_and_without_personal_data() {
    let rx = Receiver::start(Mode::FailFirst).await;
    let clock = Arc::new(ManualClock::new(t("2026-03-02T09:00:00Z")));
    let url = rx.url();
    let app = TestApp::spawn_with(
        |c| {
            with_hooks(
                c,
                vec![webhook(
                    "siem",
                    &url,
                    &["DeviationReported", "DeviationClassified"],
                )],
            )
        },
        clock.clone(),
    )
    .await;
    let (reference, id, _) = report(
        &app,
        json!({
            "title": "Borttappad telefon med journaler",
            "description": "Lämnad på bussen, olåst.",
            "sector": "Socialtjänsten",
            "personal_data": true,
            "reporter": {"name": "Anna Andersson", "email": "anna@kommunen.example"}
        }),
    )
    .await;
    exec(
        &app,
        reference,
        classify(Severity::Major, PersonalDataBreach::Yes, 3),
    )
    .await;
    // The first attempt of each: 500 (the background loop and this round share the work).
    app.app_state
        .webhooks
        .deliver_pending_once(clock.now())
        .await;
    let hits = rx
        .wait_until(Duration::from_secs(10), |h| h.len() >= 2)
        .await;
    assert_eq!(hits.len(), 2, "{hits:?}");
    assert!(hits.iter().all(|h| h.status == 500));
    let failed = records(&app, &["WebhookFailed"]);
    assert_eq!(failed.len(), 2);
    assert!(failed
        .iter()
        .all(|r| r.data["attempt"] == 1 && r.data["status"] == 500));
    assert_eq!(failed[0].actor, "system:webhooks");
    let ready = readyz(&app).await;
    assert_eq!(ready["webhooks_degraded"], true, "{ready}");
    assert_eq!(ready["webhooks"][0]["failing"], 2, "{ready}");
    assert_eq!(ready["ready"], true, "failing webhooks do not stop reports");

    // Not again before the back-off; then retried, and taken.
    app.app_state
        .webhooks
        .deliver_pending_once(clock.now())
        .await;
    assert_eq!(rx.hits().len(), 2);
    clock.advance(chrono::Duration::seconds(61));
    app.app_state
        .webhooks
        .deliver_pending_once(clock.now())
        .await;
    let hits = rx
        .wait_until(Duration::from_secs(10), |h| h.len() >= 4)
        .await;
    assert_eq!(hits.len(), 4, "{hits:?}");
    assert_eq!(records(&app, &["WebhookDelivered"]).len(), 2);
    // Nothing more is owed.
    clock.advance(chrono::Duration::hours(1));
    app.app_state
        .webhooks
        .deliver_pending_once(clock.now())
        .await;
    assert_eq!(rx.hits().len(), 4);

    // Each delivery: the same id and body on both attempts, one 200, a valid signature.
    let mut by_id: BTreeMap<String, Vec<&Hit>> = BTreeMap::new();
    for h in &hits {
        by_id.entry(h.delivery.clone()).or_default().push(h);
        assert!(h.signed_with(SECRET), "signature of {h:?}");
        assert!(!h.signed_with("another secret, not ours"));
        let ts: i64 = h.timestamp.parse().unwrap();
        assert!(
            ts == t("2026-03-02T09:00:00Z").timestamp()
                || ts == t("2026-03-02T09:01:01Z").timestamp()
        );
    }
    assert_eq!(by_id.len(), 2);
    for (delivery, attempts) in &by_id {
        let statuses: Vec<u16> = attempts.iter().map(|h| h.status).collect();
        assert_eq!(statuses, [500, 200], "{delivery}");
        assert_eq!(
            attempts[0].body, attempts[1].body,
            "the body is stable across retries"
        );
        let v = attempts[0].json();
        assert_eq!(v["delivery_id"], delivery.as_str());
        assert_eq!(v["event_type"], attempts[0].event.as_str());
        assert_eq!(v["reference"], reference.to_string());
        assert_eq!(v["deviation_id"], id.to_string());
        assert!(v["seq"].as_u64().unwrap() > 0);
    }
    let events: BTreeSet<String> = hits.iter().map(|h| h.event.clone()).collect();
    assert_eq!(
        events,
        BTreeSet::from([
            "DeviationClassified".to_string(),
            "DeviationReported".to_string()
        ])
    );
    let classified = hits
        .iter()
        .find(|h| h.event == "DeviationClassified")
        .unwrap()
        .json();
    assert_eq!(classified["data"]["severity"], "major");
    assert_eq!(classified["data"]["personal_data_breach"], "yes");
    let reported = hits
        .iter()
        .find(|h| h.event == "DeviationReported")
        .unwrap()
        .json();
    assert_eq!(reported["data"]["sector"], "Socialtjänsten");
    // Clear fields only: no title, description, reporter, rationale, status token.
    for h in &hits {
        let body = String::from_utf8_lossy(&h.body);
        for secret_text in [
            "Borttappad",
            "bussen",
            "Anna",
            "anna@kommunen.example",
            "bedömning",
            "status_token",
            "title",
            "description",
        ] {
            assert!(!body.contains(secret_text), "{secret_text} in {body}");
        }
    }
    let ready = readyz(&app).await;
    assert_eq!(ready["webhooks_degraded"], false, "{ready}");
    assert_eq!(ready["webhooks"][0]["delivered_total"], 2, "{ready}");
    let metrics = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("avvik_webhook_delivered_total{webhook=\"siem\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("avvik_webhook_pending{webhook=\"siem\"} 0"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_refusing_or_failing_receiver_is_abandoned_visibly() {
    let failing = Receiver::start(Mode::AlwaysFail).await;
    let gone = Receiver::start(Mode::Gone).await;
    let clock = Arc::new(ManualClock::new(t("2026-03-02T09:00:00Z")));
    let (f, g) = (failing.url(), gone.url());
    let app = TestApp::spawn_with(
        |c| {
            let mut flaky = webhook("flaky", &f, &["DeviationReported"]);
            flaky.max_attempts = 2;
            with_hooks(c, vec![flaky, webhook("gone", &g, &["DeviationReported"])])
        },
        clock.clone(),
    )
    .await;
    report(
        &app,
        json!({"title": "Nätfiske", "description": "Länk i mejl."}),
    )
    .await;
    app.app_state
        .webhooks
        .deliver_pending_once(clock.now())
        .await;
    // 410: refused, abandoned at the first attempt.
    gone.wait_until(Duration::from_secs(10), |h| !h.is_empty())
        .await;
    failing
        .wait_until(Duration::from_secs(10), |h| !h.is_empty())
        .await;
    clock.advance(chrono::Duration::seconds(61));
    app.app_state
        .webhooks
        .deliver_pending_once(clock.now())
        .await;
    failing
        .wait_until(Duration::from_secs(10), |h| h.len() >= 2)
        .await;
    clock.advance(chrono::Duration::hours(2));
    app.app_state
        .webhooks
        .deliver_pending_once(clock.now())
        .await;
    assert_eq!(gone.hits().len(), 1, "a refusal is not retried");
    assert_eq!(failing.hits().len(), 2, "max_attempts = 2");
    let abandoned = records(&app, &["WebhookAbandoned"]);
    let by_hook: BTreeMap<String, (u64, Value)> = abandoned
        .iter()
        .map(|r| {
            (
                r.data["webhook"].as_str().unwrap().to_string(),
                (
                    r.data["attempts"].as_u64().unwrap(),
                    r.data["status"].clone(),
                ),
            )
        })
        .collect();
    assert_eq!(by_hook["gone"], (1, json!(410)));
    assert_eq!(by_hook["flaky"], (2, json!(500)));
    let ready = readyz(&app).await;
    assert_eq!(ready["webhooks_degraded"], true, "{ready}");
    for w in ready["webhooks"].as_array().unwrap() {
        assert_eq!(w["abandoned_total"], 1, "{ready}");
        assert_eq!(w["pending"], 0, "{ready}");
        assert_eq!(w["healthy"], false, "{ready}");
    }
    // A later delivery that goes through makes the webhook healthy again.
    gone.set_mode(Mode::Ok);
    report(
        &app,
        json!({"title": "Nätfiske igen", "description": "Samma länk."}),
    )
    .await;
    app.app_state
        .webhooks
        .deliver_pending_once(clock.now())
        .await;
    gone.wait_until(Duration::from_secs(10), |h| h.len() >= 2)
        .await;
    app.app_state
        .webhooks
        .deliver_pending_once(clock.now())
        .await;
    let ready = readyz(&app).await;
    let gone_state = ready["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "gone")
        .unwrap()
        .clone();
    assert_eq!(gone_state["healthy"], true, "{ready}");
    app.stop().await;
}

#[tokio::test]
async fn a_webhook_added_later_is_not_sent_old_news() {
    let rx = Receiver::start(Mode::Ok).await;
    let clock = Arc::new(ManualClock::new(t("2026-03-02T09:00:00Z")));
    let app = TestApp::spawn_with(|_| {}, clock.clone()).await;
    report(
        &app,
        json!({"title": "Gammal", "description": "Före webhooken."}),
    )
    .await;
    let dir = app.stop().await;
    // Two days later the webhook is configured: the old report is past the give-up time.
    clock.advance(chrono::Duration::hours(49));
    let url = rx.url();
    let app = TestApp::spawn_in(
        dir,
        |c| with_hooks(c, vec![webhook("late", &url, &["DeviationReported"])]),
        clock.clone(),
    )
    .await;
    app.app_state
        .webhooks
        .deliver_pending_once(clock.now())
        .await;
    assert!(rx.hits().is_empty(), "{:?}", rx.hits());
    assert!(records(
        &app,
        &["WebhookDelivered", "WebhookFailed", "WebhookAbandoned"]
    )
    .is_empty());
    let metrics = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("avvik_webhook_expired_total{webhook=\"late\"} 1"),
        "{metrics}"
    );
    // What happens from now on is sent.
    let (reference, _, _) = report(&app, json!({"title": "Ny", "description": "Efter."})).await;
    app.app_state
        .webhooks
        .deliver_pending_once(clock.now())
        .await;
    let hits = rx
        .wait_until(Duration::from_secs(10), |h| !h.is_empty())
        .await;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].json()["reference"], reference.to_string());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_pending_at_sigkill_are_all_delivered_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The receiver takes each POST and never answers: avvik cannot know it arrived.
    let rx = Receiver::start(Mode::Stall).await;
    let config = dir.path().join("avvik.toml");
    std::fs::write(
        &config,
        format!(
            "[[webhooks]]\nname = \"siem\"\nurl = \"{}\"\nsecret_env = \"AVVIK_TEST_WEBHOOK_SECRET\"\nevents = [\"DeviationReported\"]\ntimeout_s = 30\n",
            rx.url()
        ),
    )
    .unwrap();
    let env: Vec<(&'static str, String)> = vec![
        ("AVVIK_CONFIG", config.display().to_string()),
        ("AVVIK_TEST_WEBHOOK_SECRET", SECRET.into()),
        ("AVVIK_NOTIFICATIONS__RETRY_FIRST_S", "1".into()),
        ("AVVIK_NOTIFICATIONS__RETRY_MAX_S", "2".into()),
        ("AVVIK_NOTIFICATIONS__POLL_INTERVAL_S", "1".into()),
    ];
    let start = |data: std::path::PathBuf, env: Vec<(&'static str, String)>| {
        tokio::task::spawn_blocking(move || {
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            Server::start(&data, &env)
        })
    };
    let server = start(data.clone(), env.clone()).await.unwrap();
    let client = reqwest::Client::new();
    let mut references = BTreeSet::new();
    for i in 0..6 {
        let r = client
            .post(format!("{}/api/v1/deviations", server.base))
            .json(&json!({"title": format!("Borttappad dator {i}"), "description": "På tåget."}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.unwrap();
        references.insert(v["reference"].as_str().unwrap().to_string());
    }
    let stalled = rx
        .wait_until(Duration::from_secs(10), |h| !h.is_empty())
        .await;
    assert!(!stalled.is_empty(), "delivery started");
    tokio::task::spawn_blocking(move || server.kill9())
        .await
        .unwrap();
    let before_restart = rx.hits().len();

    rx.set_mode(Mode::Ok);
    let server = start(data.clone(), env).await.unwrap();
    let delivered = |h: &[Hit]| {
        h.iter()
            .filter(|x| x.status == 200)
            .map(|x| x.delivery.clone())
            .collect::<BTreeSet<_>>()
            .len()
    };
    let hits = rx
        .wait_until(Duration::from_secs(20), |h| delivered(h) >= 6)
        .await;
    assert_eq!(delivered(&hits), 6, "{hits:?}");
    // Duplicates only with the same delivery id, and then with the same body.
    let mut by_id: BTreeMap<String, BTreeSet<Vec<u8>>> = BTreeMap::new();
    for h in &hits {
        assert!(h.signed_with(SECRET));
        by_id
            .entry(h.delivery.clone())
            .or_default()
            .insert(h.body.clone());
    }
    assert_eq!(by_id.len(), 6);
    assert!(by_id.values().all(|bodies| bodies.len() == 1));
    let sent_about: BTreeSet<String> = hits
        .iter()
        .map(|h| h.json()["reference"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sent_about, references);
    assert!(
        hits.len() > 6 && before_restart > 0,
        "the stalled deliveries were sent again after the restart"
    );
    // The last answers are recorded a moment after the receiver gave them.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ready: Value = client
            .get(format!("{}/readyz", server.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if ready["webhooks"][0]["pending"] == 0 {
            assert_eq!(ready["webhooks"][0]["delivered_total"], 6, "{ready}");
            break;
        }
        assert!(Instant::now() < deadline, "still pending: {ready}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::task::spawn_blocking(move || server.kill9())
        .await
        .unwrap();

    // The log records each as delivered exactly once.
    let (code, out, err) = avvik(&["export", "--data", data.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{err}");
    let delivered: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["type"] == "WebhookDelivered")
        .collect();
    let ids: BTreeSet<&str> = delivered
        .iter()
        .map(|r| r["data"]["delivery_id"].as_str().unwrap())
        .collect();
    assert_eq!(delivered.len(), 6);
    assert_eq!(ids.len(), 6);
    assert_eq!(ids, by_id.keys().map(String::as_str).collect());
}

#[test]
fn a_webhook_whose_secret_is_missing_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("avvik.toml");
    std::fs::write(
        &config,
        "[[webhooks]]\nname = \"siem\"\nurl = \"https://siem.kommunen.example/h\"\nsecret_env = \"AVVIK_TEST_NO_SUCH_SECRET\"\nevents = [\"DeviationReported\"]\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let (code, _, err) = avvik(
        &["--config", config.to_str().unwrap(), "serve"],
        &[
            ("AVVIK_STORE__DATA_DIR", data.to_str().unwrap()),
            ("AVVIK_HTTP__ADDR", "127.0.0.1:0"),
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("webhooks[0].secret_env"), "{err}");
    std::fs::write(
        &config,
        "[[webhooks]]\nname = \"siem\"\nurl = \"https://siem.kommunen.example/h\"\nsecret = \"ett-hemligt-delat-lösen\"\nevents = [\"DeviationRepotred\"]\n",
    )
    .unwrap();
    let (code, _, err) = avvik(&["--config", config.to_str().unwrap(), "serve"], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("webhooks[0].events"), "{err}");
    assert!(!err.contains("ett-hemligt-delat-lösen"), "{err}");
}
