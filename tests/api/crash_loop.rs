//! The crash loop: start `avvik serve`, drive concurrent reports and classifications
//! (some major) over HTTP, SIGKILL it at a random moment, restart, repeat. After each
//! restart every answered request is present, the chain verifies without gaps, the
//! register matches the answered requests, and at the end every major deviation's
//! escalation has reached the loopback SMTP server (duplicates only with one Message-ID).
//!
//! `CRASH_LOOP_CYCLES` sets the number of cycles (default 100; RELIABILITY.md documents a
//! 1,000-cycle run).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use serde_json::{json, Value};

use crate::helpers::Server;
use crate::notify::smtp::{Mode, SmtpSink};

pub(crate) const LEDNING: &str = "ledning@kommunen.example";
pub(crate) const KS: &str = "ks@kommunen.example";

#[derive(Default, Clone)]
pub(crate) struct Acked {
    /// title → reference, for reports answered 201.
    pub(crate) reports: HashMap<String, String>,
    /// titles attempted (answered or not).
    pub(crate) attempted: BTreeSet<String>,
    /// references whose major classification was answered 200.
    pub(crate) major: BTreeSet<String>,
}

pub(crate) async fn drive(base: String, token: String, cycle: usize, acked: Arc<Mutex<Acked>>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for worker in 0..4 {
        let (client, base, token, acked) =
            (client.clone(), base.clone(), token.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                // Paced (some hundred reports a second in all) so that the outbox, which
                // sends at a real SMTP pace, keeps up over a long run, as it does in use.
                if i > 0 {
                    tokio::time::sleep(Duration::from_millis(8)).await;
                }
                let title = format!("Krasch {cycle}-{worker}-{i}");
                acked.lock().unwrap().attempted.insert(title.clone());
                let Ok(r) = client
                    .post(format!("{base}/api/v1/deviations"))
                    .json(&json!({"title": title, "description": "krasch-loop", "sector": "Socialtjänsten"}))
                    .send()
                    .await
                else {
                    return;
                };
                if r.status() != 201 {
                    return;
                }
                let Ok(v) = r.json::<Value>().await else { return };
                let reference = v["reference"].as_str().unwrap().to_string();
                acked.lock().unwrap().reports.insert(title, reference.clone());
                if i % 3 == 0 {
                    let Ok(r) = client
                        .post(format!("{base}/api/v1/deviations/{reference}/classification"))
                        .bearer_auth(&token)
                        .json(&json!({"severity": "major", "category": "obehörig åtkomst", "personal_data_breach": "no", "nis2_significant": false}))
                        .send()
                        .await
                    else {
                        return;
                    };
                    if r.status() != 200 {
                        return;
                    }
                    acked.lock().unwrap().major.insert(reference);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

pub(crate) async fn start(data: std::path::PathBuf, env: Vec<(&'static str, String)>) -> Server {
    tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Server::start(&data, &env)
    })
    .await
    .unwrap()
}

/// Every deviation the token may see, page by page.
pub(crate) async fn list_all(base: &str, token: &str, filter: &str) -> Vec<Value> {
    let client = reqwest::Client::new();
    let mut items = Vec::new();
    loop {
        let page: Value = client
            .get(format!(
                "{base}/api/v1/deviations?limit=1000&offset={}{filter}",
                items.len()
            ))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let got = page["items"].as_array().unwrap().clone();
        let total = page["total"].as_u64().unwrap() as usize;
        let empty = got.is_empty();
        items.extend(got);
        if empty || items.len() >= total {
            return items;
        }
    }
}

/// Checks the running server against what was answered.
pub(crate) async fn check(base: &str, token: &str, acked: &Acked, cycle: usize) {
    let client = reqwest::Client::new();
    let v: Value = client
        .get(format!("{base}/api/v1/audit/verify"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["ok"], true, "cycle {cycle}: chain broken: {v}");
    let mut stored: HashMap<String, (String, Value)> = HashMap::new();
    for d in &list_all(base, token, "").await {
        stored.insert(
            d["title"].as_str().unwrap().to_string(),
            (
                d["reference"].as_str().unwrap().to_string(),
                d["severity"].clone(),
            ),
        );
    }
    for (title, reference) in &acked.reports {
        let got = stored.get(title).unwrap_or_else(|| {
            panic!("cycle {cycle}: answered report {reference} ({title}) is lost")
        });
        assert_eq!(&got.0, reference, "cycle {cycle}: reference changed");
    }
    for title in stored.keys() {
        assert!(
            acked.attempted.contains(title),
            "cycle {cycle}: a report nobody sent: {title}"
        );
    }
    let by_ref: HashMap<&String, &Value> = stored.values().map(|(r, s)| (r, s)).collect();
    for r in &acked.major {
        assert_eq!(
            by_ref.get(r).map(|s| s.as_str()),
            Some(Some("major")),
            "cycle {cycle}: answered classification of {r} lost"
        );
    }
    // Gap-free references.
    let mut numbers: Vec<u64> = stored
        .values()
        .map(|(r, _)| avvik::domain::Reference::parse(r).unwrap().number)
        .collect();
    numbers.sort();
    assert_eq!(
        numbers,
        (1..=numbers.len() as u64).collect::<Vec<_>>(),
        "cycle {cycle}: reference numbers have gaps"
    );
}

fn cycles(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loop_loses_no_acknowledged_write_and_no_escalation() {
    let dir = tempfile::tempdir().unwrap();
    let data = match std::env::var("CRASH_LOOP_DATA") {
        Ok(p) => std::path::PathBuf::from(p),
        Err(_) => dir.path().join("data"),
    };
    crash_loop(data, cycles("CRASH_LOOP_CYCLES", 100), Vec::new()).await;
}

/// The same loop with the log in PostgreSQL (a throw-away cluster's database):
/// `CRASH_LOOP_PG_CYCLES` cycles (default 25).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loop_on_postgres_loses_no_acknowledged_write_and_no_escalation() {
    let db = crate::postgres::pg_cluster::Cluster::shared().database();
    let dir = tempfile::tempdir().unwrap();
    let store = vec![
        ("AVVIK_STORE__BACKEND", "postgres".to_string()),
        ("AVVIK_STORE__POSTGRES__URL", db.url().to_string()),
    ];
    crash_loop(
        dir.path().join("data"),
        cycles("CRASH_LOOP_PG_CYCLES", 25),
        store,
    )
    .await;
}

/// `cycles` crash-and-restart cycles on `data`, with `store` (the backend's settings) in
/// every process's environment.
async fn crash_loop(data: std::path::PathBuf, cycles: usize, store: Vec<(&'static str, String)>) {
    // A CISO to classify with, created before the first start.
    let store_env: Vec<(&str, &str)> = store.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let token = crate::helpers::cli_ciso_token_with(&data, &store_env);

    let sink = SmtpSink::start(Mode::Normal).await;
    let mut env = escalation_env(&sink);
    env.extend(store.iter().cloned());
    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut rng = rand::thread_rng();
    for cycle in 0..cycles {
        let server = start(data.clone(), env.clone()).await;
        let snapshot = acked.lock().unwrap().clone();
        check(&server.base, &token, &snapshot, cycle).await;
        eprintln!(
            "crash loop: cycle {cycle} checked: {} acknowledged reports, {} major",
            snapshot.reports.len(),
            snapshot.major.len()
        );
        let load = tokio::spawn(drive(
            server.base.clone(),
            token.clone(),
            cycle,
            acked.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(rng.gen_range(30..250))).await;
        tokio::task::spawn_blocking(move || server.kill9())
            .await
            .unwrap();
        load.await.unwrap();
    }
    // Last restart: check, then let the outbox deliver every escalation.
    let server = start(data.clone(), env.clone()).await;
    let snapshot = acked.lock().unwrap().clone();
    check(&server.base, &token, &snapshot, cycles).await;
    let majors: BTreeSet<String> = list_all(&server.base, &token, "&severity=major")
        .await
        .iter()
        .map(|d| d["reference"].as_str().unwrap().to_string())
        .collect();
    let acked_major = acked.lock().unwrap().major.clone();
    assert!(acked_major.is_subset(&majors));
    assert!(!majors.is_empty(), "some deviations were classified major");
    let delivered = assert_escalated_once(&sink, &majors).await;
    let a = acked.lock().unwrap().clone();
    eprintln!(
        "crash loop: {cycles} cycles, {} acknowledged reports and {} acknowledged major classifications checked after every restart, {} escalations delivered, lost: 0",
        a.reports.len(),
        a.major.len(),
        delivered
    );
    tokio::task::spawn_blocking(move || server.kill9())
        .await
        .unwrap();
}

/// Waits until every major deviation's escalation has reached both recipient lists at the
/// loopback SMTP server, and checks that any repeat carries the same Message-ID. Returns
/// how many (deviation, recipient) escalations arrived.
pub(crate) async fn assert_escalated_once(sink: &SmtpSink, majors: &BTreeSet<String>) -> usize {
    let escalated = |m: &[crate::notify::smtp::Received]| -> BTreeSet<(String, String)> {
        m.iter()
            .filter(|x| x.subject().contains("Större avvikelse"))
            .filter_map(|x| {
                let s = x.subject();
                let r = s.strip_prefix('[')?.split(']').next()?.to_string();
                Some((r, x.rcpt()))
            })
            .collect()
    };
    let want: BTreeSet<(String, String)> = majors
        .iter()
        .flat_map(|r| {
            [
                (r.clone(), LEDNING.to_string()),
                (r.clone(), KS.to_string()),
            ]
        })
        .collect();
    let m = sink
        .wait_until(Duration::from_secs(60 + want.len() as u64 / 20), |m| {
            want.is_subset(&escalated(m))
        })
        .await;
    let got = escalated(&m);
    let missing: Vec<_> = want.difference(&got).collect();
    assert!(
        missing.is_empty(),
        "escalations never delivered: {missing:?}"
    );
    // Duplicates only with the same Message-ID: one Message-ID per (deviation, recipient).
    let mut ids: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for x in m
        .iter()
        .filter(|x| x.subject().contains("Större avvikelse"))
    {
        let s = x.subject();
        let r = s
            .strip_prefix('[')
            .and_then(|s| s.split(']').next())
            .unwrap_or("")
            .to_string();
        ids.entry((r, x.rcpt())).or_default().insert(x.message_id());
    }
    for (k, v) in &ids {
        assert_eq!(
            v.len(),
            1,
            "{k:?} escalated under several Message-IDs: {v:?}"
        );
    }
    got.len()
}

/// Unlimited requests, e-mail over SMTP to `sink`, one recipient per list, fast retries:
/// the settings under which every major escalation must arrive.
pub(crate) fn escalation_env(sink: &SmtpSink) -> Vec<(&'static str, String)> {
    escalation_env_at("127.0.0.1", sink.port(), "none")
}

/// `escalation_env` to an SMTP server at `host:port` with TLS mode `tls`.
pub(crate) fn escalation_env_at(host: &str, port: u16, tls: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AVVIK_HTTP__RATE_LIMIT_PER_MINUTE", "0".into()),
        ("AVVIK_MAIL__TRANSPORT", "smtp".into()),
        ("AVVIK_MAIL__SMTP__HOST", host.into()),
        ("AVVIK_MAIL__SMTP__PORT", port.to_string()),
        ("AVVIK_MAIL__SMTP__TLS", tls.into()),
        ("AVVIK_MAIL__SMTP__TIMEOUT_S", "5".into()),
        (
            "AVVIK_RECIPIENTS__LEDNINGSGRUPP",
            format!("[\"{LEDNING}\"]"),
        ),
        ("AVVIK_RECIPIENTS__KOMMUNSTYRELSEN", format!("[\"{KS}\"]")),
        ("AVVIK_NOTIFICATIONS__RETRY_FIRST_S", "1".into()),
        ("AVVIK_NOTIFICATIONS__RETRY_MAX_S", "2".into()),
        ("AVVIK_NOTIFICATIONS__POLL_INTERVAL_S", "1".into()),
    ]
}
