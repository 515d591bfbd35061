//! `avvik serve` on PostgreSQL (`store.backend = "postgres"`), against a throw-away
//! cluster (events/tests/support/pg_cluster.rs): acknowledged reports survive SIGKILL, the
//! log moves between sled and PostgreSQL with `avvik migrate --from … --to …` keeping its
//! head hash, and a wrong password stops start-up naming the key.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use serde_json::Value;

use crate::helpers::{avvik, Server};

#[path = "../../events/tests/support/pg_cluster.rs"]
pub mod pg_cluster;

fn on_postgres(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AVVIK_STORE__BACKEND", "postgres".into()),
        ("AVVIK_STORE__POSTGRES__URL", url.to_string()),
        // Unlimited: the load must still be running when the server is killed.
        ("AVVIK_HTTP__RATE_LIMIT_PER_MINUTE", "0".into()),
    ]
}

fn envs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// The deviations as `avvik replay` shows them (sealed fields opened with the keys): of
/// the sled data directory `data`, or of the store `env` configures.
fn replayed(data: Option<&str>, env: &[(&str, &str)]) -> Vec<Value> {
    let max = format!("seq:{}", u64::MAX);
    let mut args = vec!["replay", "--as-of", &max];
    if let Some(d) = data {
        args.extend(["--data", d]);
    }
    let (code, out, err) = avvik(&args, env);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    v["items"].as_array().unwrap().clone()
}

/// The references of the reports in a sled data directory.
fn stored_references(data: &str) -> BTreeSet<String> {
    replayed(Some(data), &[])
        .iter()
        .map(|d| d["reference"].as_str().unwrap().to_string())
        .collect()
}

/// The head hash `avvik verify --json` reports for a sled data directory.
fn verified_head(data: &str) -> String {
    let (code, out, err) = avvik(&["verify", "--data", data, "--json"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    v["head_hash"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_every_answered_report_survives_sigkill_and_migrate_keeps_the_chain() {
    let db = pg_cluster::Cluster::shared().database();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let pg = on_postgres(db.url());
    let acked = Arc::new(Mutex::new(Vec::new()));
    let mut rng = rand::thread_rng();
    // At least three kills, and on until the load has reached the server (a loaded CI
    // machine answers fewer reports per cycle).
    for cycle in 0.. {
        let server = Server::start(&data, &envs(&pg));
        let load = tokio::spawn(crate::crash::hammer(server.base.clone(), 8, acked.clone()));
        tokio::time::sleep(Duration::from_millis(rng.gen_range(300..900))).await;
        server.kill9();
        load.await.unwrap();
        let n = acked.lock().unwrap().len();
        if cycle >= 2 && n > 20 {
            break;
        }
        assert!(cycle < 20, "load reached the server: {n} reports answered");
    }
    let acked: BTreeSet<String> = acked.lock().unwrap().iter().cloned().collect();
    // One report with a file: the file is kept in the database too, not in the directory.
    let server = Server::start(&data, &envs(&pg));
    crate::uploads::report_a_pdf(&server.base).await;
    server.kill9();
    assert!(!data.join("attachments").exists());
    // Nothing was written to sled in the data directory.
    assert!(!data.join("events").exists());

    // PostgreSQL → sled, verbatim: the chain verifies and every answered report is there.
    // Run on a node (its data directory set), the secret the data keys are wrapped under
    // goes along with the keys, so the sealed fields still open.
    let copy = dir.path().join("copy");
    let from = format!("postgres:{}", db.url());
    let to = format!("sled:{}", copy.display());
    let node_dir = [("AVVIK_STORE__DATA_DIR", data.to_str().unwrap())];
    let out = migrate(&from, &to, &node_dir);
    assert!(out.contains("data-key batches and 1 files"), "{out}");
    assert_eq!(
        crate::helpers::count_files(&copy.join("attachments")),
        1,
        "the sealed file is under the copy's attachments"
    );
    assert_eq!(
        std::fs::read(copy.join("secret.key")).unwrap(),
        std::fs::read(data.join("secret.key")).unwrap()
    );
    let titles = stored_titles(copy.to_str().unwrap());
    assert!(!titles.is_empty());
    assert!(
        titles
            .iter()
            .all(|t| t.starts_with("Rapport ") || t == crate::uploads::PDF_REPORT_TITLE),
        "sealed titles open after the copy: {titles:?}"
    );
    assert!(
        !out.contains(pg_cluster::Cluster::shared().password()),
        "{out}"
    );
    let copy_s = copy.to_str().unwrap();
    let head = verified_head(copy_s);
    assert!(out.contains(&head), "{out} names the head {head}");
    let stored = stored_references(copy_s);
    let lost: Vec<&String> = acked.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    // The commands read the configured store: `avvik verify` walks the chain in
    // PostgreSQL and ends at the same head.
    let mut cli_env = envs(&pg);
    let data_s = data.to_str().unwrap().to_string();
    cli_env.push(("AVVIK_STORE__DATA_DIR", &data_s));
    let (code, out, err) = avvik(&["verify", "--json"], &cli_env);
    assert_eq!(code, 0, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["head_hash"], head.as_str());

    // And back, sled → a new PostgreSQL database: the same head hash; the service
    // starts on it.
    let back = pg_cluster::Cluster::shared().database();
    let out = migrate(&to, &format!("postgres:{}", back.url()), &[]);
    assert!(out.contains(&head), "{out}");
    assert!(out.contains("and 1 files"), "{out}");
    // A second copy into a store that holds a log is refused.
    let (code, _, _) = avvik(&["migrate", "--from", &from, "--to", &to], &[]);
    assert_ne!(code, 0);
    // A node with the installation's secret starts on it; one with another secret is
    // refused, naming the file to copy.
    let data2 = dir.path().join("data2");
    std::fs::create_dir_all(&data2).unwrap();
    std::fs::copy(data.join("secret.key"), data2.join("secret.key")).unwrap();
    let server = Server::start(&data2, &envs(&on_postgres(back.url())));
    server.kill9();
    let data3 = dir.path().join("data3");
    let (code, out, err) = avvik(
        &["serve"],
        &[
            ("AVVIK_STORE__BACKEND", "postgres"),
            ("AVVIK_STORE__POSTGRES__URL", back.url()),
            ("AVVIK_STORE__DATA_DIR", data3.to_str().unwrap()),
            ("AVVIK_HTTP__ADDR", "127.0.0.1:0"),
        ],
    );
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("secret.key"), "{err}");

    // A key transfer from PostgreSQL into another installation on PostgreSQL: the log
    // alone does not open there; with the keys imported into its database it does.
    let node_env = |url: &str, dir: &std::path::Path| {
        vec![
            ("AVVIK_STORE__BACKEND", "postgres".to_string()),
            ("AVVIK_STORE__POSTGRES__URL", url.to_string()),
            ("AVVIK_STORE__DATA_DIR", dir.to_str().unwrap().to_string()),
        ]
    };
    let keys_file = dir.path().join("keys.json");
    let on_back = node_env(back.url(), &data);
    let (code, out, err) = avvik(
        &[
            "keys",
            "export",
            "--transfer",
            "Återläsningstest",
            "--out",
            keys_file.to_str().unwrap(),
        ],
        &envs(&on_back),
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, log, err) = avvik(&["export"], &envs(&on_back));
    assert_eq!(code, 0, "{err}");
    let other = dir.path().join("other");
    let log_file = dir.path().join("log.ndjson");
    std::fs::write(&log_file, &log).unwrap();
    let (code, _, err) = avvik(
        &[
            "import",
            "--data",
            other.to_str().unwrap(),
            log_file.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let third = pg_cluster::Cluster::shared().database();
    migrate(
        &format!("sled:{}", other.display()),
        &format!("postgres:{}", third.url()),
        &[],
    );
    let on_third = node_env(third.url(), &other);
    let titles = |env: &[(&'static str, String)]| -> Vec<String> {
        replayed(None, &envs(env))
            .iter()
            .map(|d| d["title"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert!(!titles(&on_third).iter().any(|t| t.starts_with("Rapport ")));
    let (code, out, err) = avvik(
        &["keys", "import", keys_file.to_str().unwrap()],
        &envs(&on_third),
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("into the PostgreSQL store"), "{out}");
    assert!(titles(&on_third).iter().any(|t| t.starts_with("Rapport ")));
}

/// `avvik migrate --from FROM --to TO`, which must succeed; its standard output.
fn migrate(from: &str, to: &str, env: &[(&str, &str)]) -> String {
    let (code, out, err) = avvik(&["migrate", "--from", from, "--to", to], env);
    assert_eq!(code, 0, "{out}{err}");
    out
}

/// The titles of the reports in a sled data directory, opened with its keys.
fn stored_titles(data: &str) -> Vec<String> {
    replayed(Some(data), &[])
        .iter()
        .map(|d| d["title"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// `avvik serve` with the log at `url` stops, naming the key, without `secret`.
fn serve_stops_naming_the_key(url: &str, secret: &str, data: &std::path::Path) {
    let started = std::time::Instant::now();
    let (code, out, err) = avvik(
        &["serve"],
        &[
            ("AVVIK_STORE__BACKEND", "postgres"),
            ("AVVIK_STORE__POSTGRES__URL", url),
            ("AVVIK_STORE__DATA_DIR", data.to_str().unwrap()),
            ("AVVIK_HTTP__ADDR", "127.0.0.1:0"),
        ],
    );
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("store.postgres.url"), "{err}");
    assert!(!err.contains(secret), "{err}");
    // Within the connect timeout.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_wrong_postgres_password_or_url_stops_start_up_naming_the_key() {
    let cluster = pg_cluster::Cluster::shared();
    let db = cluster.database();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let wrong = db.url().replace(cluster.password(), "fel-losenord-123");
    serve_stops_naming_the_key(&wrong, "fel-losenord-123", &data);
    // A URL where no server listens.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nowhere = format!("postgres://avvik:hemligt-pg@127.0.0.1:{port}/avvik");
    serve_stops_naming_the_key(&nowhere, "hemligt-pg", &data);
}

/// Posts reports until `stop`; returns the references answered 201 and how many were
/// answered 503 with the Swedish message.
async fn report_until(
    base: String,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> (BTreeSet<String>, usize) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(40))
        .build()
        .unwrap();
    let (mut acked, mut unavailable) = (BTreeSet::new(), 0);
    let mut i = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        i += 1;
        let r = client
            .post(format!("{base}/api/v1/deviations"))
            .json(&serde_json::json!({"title": format!("Under last {i}"), "description": "pg stoppas"}))
            .send()
            .await
            .expect("the service answers while the database is down");
        match r.status().as_u16() {
            201 => {
                let v: Value = r.json().await.unwrap();
                acked.insert(v["reference"].as_str().unwrap().to_string());
            }
            503 => {
                let v: Value = r.json().await.unwrap();
                assert!(
                    v["detail_sv"]
                        .as_str()
                        .unwrap_or("")
                        .contains("Försök igen"),
                    "{v}"
                );
                unavailable += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("unexpected {other}: {}", r.text().await.unwrap_or_default()),
        }
    }
    (acked, unavailable)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_under_load_answers_503_and_avvik_recovers_by_itself() {
    let cluster = pg_cluster::Cluster::own();
    let db = cluster.database();
    let url = db.url().to_string();
    let app = crate::helpers::TestApp::spawn_with(
        move |c| {
            c.store.backend = avvik::config::StoreBackend::Postgres;
            c.store.postgres.url = url;
            c.http.rate_limit_per_minute = 0;
        },
        Arc::new(avvik::clock::SystemClock),
    )
    .await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = tokio::spawn(report_until(app.base.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The database goes away under load: writes answer 503, /readyz says the store.
    tokio::task::spawn_blocking(move || cluster.stop_server())
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let ready = loop {
        let r = app
            .client
            .get(format!("{}/readyz", app.base))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        if status == 503 && v["store_degraded"] == true {
            break v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "readyz never said so: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ready["ready"], false);
    // A write meanwhile: 503 with the Swedish message.
    let r = app
        .client
        .post(format!("{}/api/v1/deviations", app.base))
        .json(
            &serde_json::json!({"title": "Medan databasen är borta", "description": "pg stoppad"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["detail_sv"]
            .as_str()
            .unwrap_or("")
            .contains("Försök igen"),
        "{v}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Back: avvik takes reports again without a restart.
    tokio::task::spawn_blocking(move || cluster.start_server())
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = app
            .client
            .get(format!("{}/readyz", app.base))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "avvik did not recover"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    // The load's own writes during the outage were answered 503 (checked in
    // `report_until`) or, if they waited out the outage, 201.
    let (acked, _unavailable) = load.await.unwrap();
    assert!(
        acked.len() > 5,
        "reports were taken before and after: {}",
        acked.len()
    );

    // Nothing acknowledged is lost: every answered reference is in the log.
    let records = app.app_state.services.store.read_batch(1, 100_000).unwrap();
    let stored: BTreeSet<String> = records
        .iter()
        .filter(|r| r.event_type == "DeviationReported")
        .filter_map(|r| r.data["reference"].as_str().map(str::to_string))
        .collect();
    let lost: Vec<&String> = acked.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    assert!(app.app_state.services.store.verify().unwrap().ok);
    app.stop().await;
}

/// An installation that ran an earlier version with the log in PostgreSQL kept the data
/// keys, the attachments and the läslogg in the data directory. Started on this version,
/// a node takes them over into the database: nothing sealed earlier reads as missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_an_earlier_version_kept_in_the_data_directory_are_taken_over() {
    let db = pg_cluster::Cluster::shared().database();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = crate::helpers::cli_ciso_token(&data);
    let server = Server::start(&data, &[("AVVIK_HTTP__RATE_LIMIT_PER_MINUTE", "0")]);
    crate::uploads::report_a_pdf(&server.base).await;
    let list: Value =
        crate::helpers::get_json(format!("{}/api/v1/deviations", server.base), &token).await;
    let d = list["items"][0].clone();
    let reference = d["reference"].as_str().unwrap().to_string();
    let sha = d["attachments"][0]["sha256"].as_str().unwrap().to_string();
    // A read the läslogg records, before the move.
    let r = crate::helpers::get_authed(
        format!("{}/api/v1/deviations/{reference}", server.base),
        &token,
    )
    .await;
    assert_eq!(r.status(), 200);
    server.kill9();
    // The log moves to PostgreSQL; the keys and files stay behind only in the directory,
    // as an earlier version left them.
    migrate(
        &format!("sled:{}", data.display()),
        &format!("postgres:{}", db.url()),
        &[],
    );
    db.psql("DELETE FROM avvik_files WHERE kind <> 'installation'");
    std::fs::remove_dir_all(data.join("events")).unwrap();

    let server = Server::start(&data, &envs(&on_postgres(db.url())));
    // The läslogg from before is the database's now: the read above is in it (asked
    // first, so no read on this node can be the one found).
    let log: Value = crate::helpers::get_json(
        format!(
            "{}/api/v1/audit/access?user=ciso@kommunen.example",
            server.base
        ),
        &token,
    )
    .await;
    let entries = log["entries"].as_array().unwrap();
    assert!(
        entries.iter().any(|e| e["what"]["kind"] == "deviation_api"),
        "{log:#}"
    );
    let v: Value = crate::helpers::get_json(
        format!("{}/api/v1/deviations/{reference}", server.base),
        &token,
    )
    .await;
    assert_eq!(v["title"], crate::uploads::PDF_REPORT_TITLE, "{v}");
    let r = crate::helpers::get_authed(
        format!(
            "{}/api/v1/deviations/{reference}/attachments/{sha}",
            server.base
        ),
        &token,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), crate::uploads::PDF);
    server.kill9();
}

/// Two nodes on one database: the node doing a gallring dies between storing the event and
/// destroying the key, and never comes back (its data directory is gone). Another node,
/// started afterwards, finishes it: the intent was in the database, not only in the dead
/// node's directory.
#[tokio::test]
async fn a_gallring_cut_short_on_a_node_that_never_returns_is_finished_by_another() {
    let db = pg_cluster::Cluster::shared().database();
    let DyingNode {
        _dir,
        data_a,
        data_b,
        pg,
        token,
        a,
    } = dying_node(db.url());
    let reference = crate::privacy::closed_with_personnummer(&a.base, &token).await;
    let before_gallring = chrono::Utc::now().to_rfc3339();
    crate::privacy::gallring_cut_short(&a.base, &token, &reference).await;
    a.kill9();
    std::fs::remove_dir_all(&data_a).unwrap();
    let intents = || db.psql("SELECT count(*) FROM avvik_files WHERE kind = 'gallring-intents'");
    assert_eq!(intents().trim(), "1", "the intent is in the database");

    let b = Server::start(&data_b, &envs(&pg));
    b.wait_ready();
    let d =
        crate::helpers::get_json(format!("{}/api/v1/deviations/{reference}", b.base), &token).await;
    assert!(
        d["description"]
            .as_str()
            .unwrap()
            .ends_with("enligt beslut KS 2026/9"),
        "node B shows the deviation gallrad: {d}"
    );
    drop(b);
    assert_eq!(intents().trim(), "0", "nothing left for a later start");
    key_destroyed(&pg, &data_b, &before_gallring);
}

/// The key of the deviation gallrad (decision KS 2026/9) after `before_gallring` is
/// destroyed: in the register as it stood then, its sealed fields read as the key's
/// tombstone, not the personnummer. `node` is a data directory with the installation's
/// secret.
fn key_destroyed(pg: &[(&'static str, String)], node: &std::path::Path, before_gallring: &str) {
    let mut env = envs(pg);
    env.push(("AVVIK_STORE__DATA_DIR", node.to_str().unwrap()));
    let (code, out, err) = avvik(&["replay", "--as-of", before_gallring], &env);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("19121212"), "the key is still live: {out}");
    assert!(
        out.contains("enligt beslut KS 2026/9"),
        "the sealed fields read as the key's tombstone: {out}"
    );
}

/// Two nodes running on one database; the one holding the `gallring` duty dies between
/// storing a gallring event and destroying the key. The survivor, still running, takes the
/// duty over and finishes the gallring without a restart.
#[tokio::test]
async fn a_running_node_finishes_the_gallring_a_dead_node_left() {
    let db = pg_cluster::Cluster::shared().database();
    let DyingNode {
        _dir,
        data_a: _,
        data_b,
        pg,
        token,
        a,
    } = dying_node(db.url());
    let holds = |base: String| async move {
        let r = crate::two_nodes::readyz(&base).await.unwrap_or_default();
        r["duties"]["gallring"].as_bool()
    };
    // A, started first, takes the duty; B waits for it.
    let until = std::time::Instant::now() + Duration::from_secs(15);
    while holds(a.base.clone()).await != Some(true) {
        assert!(
            std::time::Instant::now() < until,
            "node A never took the gallring duty"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let b = Server::start(&data_b, &envs(&pg));
    b.wait_ready();
    assert_eq!(holds(b.base.clone()).await, Some(false));

    let reference = crate::privacy::closed_with_personnummer(&a.base, &token).await;
    let before_gallring = chrono::Utc::now().to_rfc3339();
    crate::privacy::gallring_cut_short(&a.base, &token, &reference).await;
    a.kill9();
    let intents = || db.psql("SELECT count(*) FROM avvik_files WHERE kind = 'gallring-intents'");
    let until = std::time::Instant::now() + Duration::from_secs(30);
    while intents().trim() != "0" {
        assert!(
            std::time::Instant::now() < until,
            "the running node did not finish the gallring within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(holds(b.base.clone()).await, Some(true));
    drop(b);
    key_destroyed(&pg, &data_b, &before_gallring);
}

/// Two nodes' data directories with the installation's secret, a CISO token, and node A
/// started on the database at `url`, set to die right after storing a gallring event.
struct DyingNode {
    _dir: tempfile::TempDir,
    data_a: std::path::PathBuf,
    data_b: std::path::PathBuf,
    pg: Vec<(&'static str, String)>,
    token: String,
    a: Server,
}

fn dying_node(url: &str) -> DyingNode {
    let dir = tempfile::tempdir().unwrap();
    let (data_a, data_b) = (dir.path().join("a"), dir.path().join("b"));
    let pg = on_postgres(url);
    let token = crate::helpers::cli_ciso_token_with(&data_a, &envs(&pg));
    std::fs::create_dir_all(&data_b).unwrap();
    std::fs::copy(data_a.join("secret.key"), data_b.join("secret.key")).unwrap();
    let mut env_a = envs(&pg);
    env_a.push(("AVVIK_FAILPOINT", "gallring-after-event"));
    let a = Server::start(&data_a, &env_a);
    a.wait_ready();
    DyingNode {
        _dir: dir,
        data_a,
        data_b,
        pg,
        token,
        a,
    }
}
