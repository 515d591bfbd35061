//! Acknowledged reports survive SIGKILL.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use serde_json::{json, Value};

use crate::helpers::{avvik, Server};

/// Posts reports from `clients` tasks until the server dies; returns the answered refs.
pub(crate) async fn hammer(base: String, clients: usize, acked: Arc<Mutex<Vec<String>>>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = client.clone();
        let url = format!("{base}/api/v1/deviations");
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let r = client
                    .post(&url)
                    .json(
                        &json!({"title": format!("Rapport {c}-{i}"), "description": "krasch-test"}),
                    )
                    .send()
                    .await;
                let Ok(r) = r else { break };
                if r.status() != 201 {
                    break;
                }
                let Ok(v) = r.json::<Value>().await else {
                    break;
                };
                acked
                    .lock()
                    .unwrap()
                    .push(v["reference"].as_str().unwrap().to_string());
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answered_report_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let acked = Arc::new(Mutex::new(Vec::new()));
    let mut rng = rand::thread_rng();
    for _cycle in 0..3 {
        // Unlimited: the load must still be running when the server is killed.
        let server = Server::start(&data, &[("AVVIK_HTTP__RATE_LIMIT_PER_MINUTE", "0")]);
        let load = tokio::spawn(hammer(server.base.clone(), 8, acked.clone()));
        tokio::time::sleep(Duration::from_millis(rng.gen_range(150..600))).await;
        server.kill9();
        load.await.unwrap();
    }
    let acked: BTreeSet<String> = acked.lock().unwrap().iter().cloned().collect();
    assert!(acked.len() > 20, "load reached the server: {}", acked.len());

    let d = data.to_str().unwrap();
    let (code, out, err) = avvik(&["verify", "--data", d], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = avvik(
        &[
            "replay",
            "--data",
            d,
            "--as-of",
            &format!("seq:{}", u64::MAX),
        ],
        &[],
    );
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    let stored: BTreeSet<String> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["reference"].as_str().unwrap().to_string())
        .collect();
    let lost: Vec<&String> = acked.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    // References stay gap-free across crashes.
    let mut numbers: Vec<u64> = stored
        .iter()
        .map(|r| avvik::domain::Reference::parse(r).unwrap().number)
        .collect();
    numbers.sort();
    assert_eq!(numbers, (1..=numbers.len() as u64).collect::<Vec<_>>());
    // And the service comes up again on the same data.
    let server = Server::start(&data, &[]);
    server.kill9();
}
