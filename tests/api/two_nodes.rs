//! Two `avvik serve` nodes on one PostgreSQL database (a throw-away cluster): both take
//! reports and classifications, one is SIGKILLed midway — the one delivering the outbox —
//! and the survivor carries on: every acknowledged report is there once, the chain
//! verifies, the outbox duty has moved to the survivor within 10 s, every major
//! escalation reaches the loopback SMTP server (repeats only with the same Message-ID),
//! and what the killed node took in (a file, a läslogg entry) the survivor shows.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::crash_loop::{assert_escalated_once, check, escalation_env, list_all, start, Acked};
use crate::helpers::Server;
use crate::notify::smtp::{Mode, SmtpSink};

/// Reports sent in all, over both nodes.
const REPORTS: usize = 2_000;
/// Concurrent clients per node.
const CLIENTS: usize = 4;

pub async fn readyz(base: &str) -> Option<Value> {
    let r = reqwest::Client::new()
        .get(format!("{base}/readyz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    r.json().await.ok()
}

async fn holds_outbox(base: &str) -> bool {
    readyz(base)
        .await
        .is_some_and(|v| v["duties"]["outbox"] == true)
}

/// Client `worker` sends reports (every third classified major) to its node until `REPORTS`
/// have been attempted in all; a node that stops answering is left for the other, as a
/// load balancer would. A request without an answer is attempted, not acknowledged.
async fn client(
    worker: usize,
    bases: [String; 2],
    down: Arc<[AtomicBool; 2]>,
    token: String,
    sent: Arc<AtomicUsize>,
    acked: Arc<Mutex<Acked>>,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut node = worker % 2;
    loop {
        let i = sent.fetch_add(1, Ordering::SeqCst);
        if i >= REPORTS {
            return;
        }
        if down[node].load(Ordering::SeqCst) {
            node = 1 - node;
        }
        let base = &bases[node];
        let title = format!("Två noder {worker}-{i}");
        acked.lock().unwrap().attempted.insert(title.clone());
        let r = http
            .post(format!("{base}/api/v1/deviations"))
            .json(&json!({"title": title, "description": "två noder", "sector": "Socialtjänsten"}))
            .send()
            .await;
        let reference = match r {
            Ok(r) if r.status() == 201 => {
                let v: Value = r.json().await.unwrap();
                v["reference"].as_str().unwrap().to_string()
            }
            Ok(r) => panic!("node {node} answered {} to a report", r.status()),
            Err(_) => {
                down[node].store(true, Ordering::SeqCst);
                continue;
            }
        };
        acked
            .lock()
            .unwrap()
            .reports
            .insert(title, reference.clone());
        if i.is_multiple_of(3) {
            // Classified at once on the other node (while it lives): it catches up with
            // this node's commit before it answers, so the report is there.
            let other = 1 - node;
            let on = if down[other].load(Ordering::SeqCst) {
                node
            } else {
                other
            };
            let r = http
                .post(format!("{}/api/v1/deviations/{reference}/classification", bases[on]))
                .bearer_auth(&token)
                .json(&json!({"severity": "major", "category": "obehörig åtkomst", "personal_data_breach": "no", "nis2_significant": false}))
                .send()
                .await;
            match r {
                Ok(r) if r.status() == 200 => {
                    acked.lock().unwrap().major.insert(reference);
                }
                Ok(r) => panic!(
                    "node {on} answered {} to classifying {reference}, reported on node {node} just before",
                    r.status()
                ),
                Err(_) => down[on].store(true, Ordering::SeqCst),
            }
        }
    }
}

/// Waits until the node's register has folded in the whole log and the log stands still.
async fn settled(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = None;
    while Instant::now() < deadline {
        if let Some(v) = readyz(base).await {
            let head = v["head_seq"].as_u64();
            if head.is_some() && v["register_seq"].as_u64() == head && last == head {
                return;
            }
            last = head;
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    panic!("{base} did not settle");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_one_killed_midway_lose_nothing_and_the_survivor_takes_the_outbox() {
    let db = crate::postgres::pg_cluster::Cluster::shared().database();
    let dir = tempfile::tempdir().unwrap();
    let (data_a, data_b) = (dir.path().join("a"), dir.path().join("b"));
    let store = [
        ("AVVIK_STORE__BACKEND", "postgres".to_string()),
        ("AVVIK_STORE__POSTGRES__URL", db.url().to_string()),
    ];
    let store_env: Vec<(&str, &str)> = store.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let token = crate::helpers::cli_ciso_token_with(&data_a, &store_env);
    // The second node gets the first one's secret, as the README says.
    std::fs::create_dir_all(&data_b).unwrap();
    std::fs::copy(data_a.join("secret.key"), data_b.join("secret.key")).unwrap();

    let sink = SmtpSink::start(Mode::Normal).await;
    let mut env = escalation_env(&sink);
    env.extend(store.iter().cloned());
    let a = start(data_a.clone(), env.clone()).await;
    let b = start(data_b.clone(), env.clone()).await;
    // One of them delivers the outbox, not both.
    let deadline = Instant::now() + Duration::from_secs(15);
    let holder = loop {
        let (ha, hb) = (holds_outbox(&a.base).await, holds_outbox(&b.base).await);
        assert!(!(ha && hb), "both nodes hold the outbox duty");
        if ha || hb {
            break if ha { 0 } else { 1 };
        }
        assert!(Instant::now() < deadline, "no node took the outbox duty");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut nodes: [Option<Server>; 2] = [Some(a), Some(b)];
    let bases = [
        nodes[0].as_ref().unwrap().base.clone(),
        nodes[1].as_ref().unwrap().base.clone(),
    ];
    let survivor = bases[1 - holder].clone();
    // A file reported on the node about to die.
    crate::uploads::report_a_pdf(&bases[holder]).await;

    let acked = Arc::new(Mutex::new(Acked::default()));
    let sent = Arc::new(AtomicUsize::new(0));
    let down = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
    let mut clients = Vec::new();
    for w in 0..2 * CLIENTS {
        clients.push(tokio::spawn(client(
            w,
            bases.clone(),
            down.clone(),
            token.clone(),
            sent.clone(),
            acked.clone(),
        )));
    }
    // Midway, the node that delivers the outbox is killed.
    while sent.load(Ordering::SeqCst) < REPORTS / 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A CISO reads one deviation on the node about to die: the läslogg entry it writes
    // is shown on the survivor too.
    let seen = acked
        .lock()
        .unwrap()
        .reports
        .values()
        .next()
        .unwrap()
        .clone();
    let r = crate::helpers::get_authed(
        format!("{}/api/v1/deviations/{seen}", bases[holder]),
        &token,
    )
    .await;
    assert_eq!(r.status(), 200);
    let killed = nodes[holder].take().unwrap();
    tokio::task::spawn_blocking(move || killed.kill9())
        .await
        .unwrap();
    let killed_at = Instant::now();
    down[holder].store(true, Ordering::SeqCst);
    // The survivor takes the outbox duty over within 10 s.
    loop {
        if holds_outbox(&survivor).await {
            break;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(10),
            "the outbox duty did not move to the survivor within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "two nodes: the outbox duty moved {:?} after the SIGKILL",
        killed_at.elapsed()
    );
    for c in clients {
        c.await.unwrap();
    }

    // Every acknowledged report is there once, with its reference; the chain verifies;
    // every acknowledged major classification holds.
    settled(&survivor).await;
    let mut snapshot = acked.lock().unwrap().clone();
    snapshot
        .attempted
        .insert(crate::uploads::PDF_REPORT_TITLE.to_string());
    assert!(
        snapshot.reports.len() > REPORTS / 2,
        "most reports were answered: {}",
        snapshot.reports.len()
    );
    check(&survivor, &token, &snapshot, 0).await;
    let all = list_all(&survivor, &token, "").await;
    let mut titles: HashMap<String, usize> = HashMap::new();
    for d in &all {
        *titles
            .entry(d["title"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let twice: Vec<_> = titles.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "reports stored more than once: {twice:?}");

    // The file reported on the killed node is served by the survivor.
    let with_file = all
        .iter()
        .find(|d| d["title"] == crate::uploads::PDF_REPORT_TITLE)
        .expect("the report with a file is there");
    let r = crate::helpers::get_authed(
        format!(
            "{survivor}/api/v1/deviations/{}/attachments/{}",
            with_file["reference"].as_str().unwrap(),
            with_file["attachments"][0]["sha256"].as_str().unwrap()
        ),
        &token,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), crate::uploads::PDF);

    let log: Value = crate::helpers::get_json(
        format!("{survivor}/api/v1/audit/access?reference={seen}"),
        &token,
    )
    .await;
    assert!(
        log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["what"]["kind"] == "deviation_api"),
        "the read on the killed node is in the survivor's läslogg: {log:#}"
    );

    // Every major deviation's escalation arrives, delivered by the survivor for whatever
    // the killed node had not sent.
    let majors: BTreeSet<String> = list_all(&survivor, &token, "&severity=major")
        .await
        .iter()
        .map(|d| d["reference"].as_str().unwrap().to_string())
        .collect();
    assert!(snapshot.major.is_subset(&majors));
    let delivered = assert_escalated_once(&sink, &majors).await;
    eprintln!(
        "two nodes: {} acknowledged reports, {} major, {} escalations delivered, lost: 0",
        snapshot.reports.len(),
        snapshot.major.len(),
        delivered
    );
}

#[test]
fn doctor_says_whether_a_node_has_the_installations_secret() {
    let db = crate::postgres::pg_cluster::Cluster::shared().database();
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("a"), dir.path().join("b"));
    let env = |data: &std::path::Path| {
        vec![
            ("AVVIK_STORE__BACKEND", "postgres".to_string()),
            ("AVVIK_STORE__POSTGRES__URL", db.url().to_string()),
            ("AVVIK_STORE__DATA_DIR", data.to_str().unwrap().to_string()),
        ]
    };
    let doctor = |data: &std::path::Path| -> String {
        let env = env(data);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (_, out, err) = crate::helpers::avvik(&["doctor"], &env);
        let line = out
            .lines()
            .skip_while(|l| !l.contains(" nodes "))
            .take(3)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(!line.is_empty(), "{out}{err}");
        line
    };
    // A database nobody has started on yet: the first node's secret becomes it.
    assert!(doctor(&first).starts_with("[OK"), "{}", doctor(&first));
    let first_env = env(&first);
    let first_env: Vec<(&str, &str)> = first_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    crate::helpers::cli_ciso_token_with(&first, &first_env);
    assert!(doctor(&first).starts_with("[OK"));
    // A second node without the file, or with another one, is told to copy it.
    let without = doctor(&second);
    assert!(without.starts_with("[FEL"), "{without}");
    assert!(without.contains("secret.key"), "{without}");
    std::fs::create_dir_all(&second).unwrap();
    std::fs::write(second.join("secret.key"), [7u8; 32]).unwrap();
    let other = doctor(&second);
    assert!(
        other.starts_with("[FEL") && other.contains("Kopiera secret.key"),
        "{other}"
    );
    std::fs::copy(first.join("secret.key"), second.join("secret.key")).unwrap();
    assert!(doctor(&second).starts_with("[OK"));
}
