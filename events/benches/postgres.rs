//! The PostgreSQL backend's append rate against `pgbench` on the same server: a
//! throw-away cluster on loopback (events/tests/support/pg_cluster.rs, durable commits:
//! `fsync` and `synchronous_commit` on, as installed), first `pgbench` with 64 clients each
//! inserting one row of the size of a stored report per transaction, then the store with
//! 64 concurrent appenders, each append a new stream's report, chain included.
//!
//! `cargo bench -p avvik-events --bench postgres`; `AVVIK_BENCH_WINDOW_S=S` sets each
//! measuring window (default 10 s, after a 2 s warm-up), `AVVIK_BENCH_CLIENTS=N` the
//! clients and appenders (default 64).

use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use avvik_events::{EventStore, ExpectedVersion, NewEvent, PostgresEventStore, PostgresOptions};
use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

#[path = "../tests/support/pg_cluster.rs"]
mod pg_cluster;

type AnyResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const WARMUP: Duration = Duration::from_secs(2);

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A report's data as the service stores it in the clear (about 600 bytes of record).
fn report_data(n: u64) -> serde_json::Value {
    json!({
        "reference": format!("AVV-2026-{n:04}"),
        "title": "Obehörig åtkomst till journalsystemet",
        "description": "En medarbetare upptäckte att ett konto som skulle ha stängts vid avslutad anställning fortfarande kunde logga in i verksamhetssystemet. Kontot användes senast förra veckan.",
        "sector": "Socialtjänsten",
        "channel": "web",
        "reporter": {"name": "Anna Andersson", "email": "anna.andersson@kommunen.example"},
        "discovered_at": "2026-11-30T08:15:00Z",
    })
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench postgres: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> AnyResult<()> {
    let window = Duration::from_secs(env_or("AVVIK_BENCH_WINDOW_S", 10));
    let clients = env_or("AVVIK_BENCH_CLIENTS", 64) as usize;
    let cluster = pg_cluster::Cluster::shared();

    // The probe's record size, so pgbench inserts rows of the same size.
    let probe = NewEvent::new("DeviationReported", report_data(1), "reporter", Utc::now());
    let row_bytes = serde_json::to_vec(&probe.data)?.len() + 250;

    let baseline = cluster.database();
    baseline.psql("CREATE TABLE bench_rows (id bigserial PRIMARY KEY, bytes bytea NOT NULL)");
    let script = std::env::temp_dir().join(format!("avvik-pgbench-{}.sql", std::process::id()));
    std::fs::write(
        &script,
        format!("INSERT INTO bench_rows (bytes) VALUES (convert_to(repeat('x', {row_bytes}), 'UTF8'));\n"),
    )?;
    eprintln!("baseline: pgbench, {clients} clients, one {row_bytes}-byte row per transaction");
    let pgbench = pgbench(cluster, baseline.name(), &script, clients, window)?;
    let _ = std::fs::remove_file(&script);

    eprintln!("store: {clients} concurrent appenders");
    let db = cluster.database();
    let (rate, p50, p99, ops) = appends(db.url(), clients, window)?;

    let ratio = rate / pgbench.max(1e-9);
    println!();
    println!("| figure | value |");
    println!("|---|---|");
    println!("| baseline: pgbench, {clients} clients, 1 row ({row_bytes} B) per transaction | {pgbench:.0} tps |");
    println!("| PostgreSQL store, {clients} appenders, chain included | {rate:.0} appends/s (p50 {p50:.2} ms, p99 {p99:.2} ms; {ops} appends) |");
    println!(
        "| store / pgbench | {ratio:.2}× (target ≥ 1.0×: {}) |",
        if ratio >= 1.0 { "met" } else { "not met" }
    );
    Ok(())
}

/// pgbench's rate (tps, without the initial connection time) for `script`.
fn pgbench(
    cluster: &pg_cluster::Cluster,
    db: &str,
    script: &std::path::Path,
    clients: usize,
    window: Duration,
) -> AnyResult<f64> {
    // AVVIK_PG_BIN, or the newest /usr/lib/postgresql/<version>/bin (as the cluster).
    let bin = match std::env::var_os("AVVIK_PG_BIN") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::fs::read_dir("/usr/lib/postgresql")?
            .flatten()
            .filter_map(|e| Some((e.file_name().to_str()?.parse::<u32>().ok()?, e.path())))
            .max()
            .map(|(_, p)| p.join("bin"))
            .ok_or("PostgreSQL is not installed: run scripts/test")?,
    };
    let out = Command::new(bin.join("pgbench"))
        .env("PGPASSWORD", cluster.password())
        .args([
            "-n",
            "-h",
            "127.0.0.1",
            "-p",
            &cluster.port().to_string(),
            "-U",
            "postgres",
        ])
        .args(["-c", &clients.to_string(), "-j", "2"])
        .args(["-T", &(window + WARMUP).as_secs().to_string()])
        .arg("-f")
        .arg(script)
        .arg(db)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        return Err(format!(
            "pgbench failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    eprint!("{text}");
    text.lines()
        .find_map(|l| {
            let l = l.trim();
            l.strip_prefix("tps = ")?
                .split_whitespace()
                .next()?
                .parse::<f64>()
                .ok()
        })
        .ok_or_else(|| format!("no tps in pgbench's output: {text}").into())
}

/// The store's append rate in the window after the warm-up, with p50 and p99 (ms).
fn appends(url: &str, clients: usize, window: Duration) -> AnyResult<(f64, f64, f64, usize)> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let store = Arc::new(PostgresEventStore::connect(
        url,
        PostgresOptions::default(),
    )?);
    let start = Instant::now();
    let (from, to) = (start + WARMUP, start + WARMUP + window);
    let done = rt.block_on(async {
        let mut tasks = Vec::new();
        for c in 0..clients {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut done = Vec::new();
                let mut n = c as u64 * 1_000_000;
                while Instant::now() < to {
                    n += 1;
                    let event =
                        NewEvent::new("DeviationReported", report_data(n), "reporter", Utc::now());
                    let t = Instant::now();
                    store
                        .append(Uuid::now_v7(), ExpectedVersion::NoStream, vec![event])
                        .await?;
                    let end = Instant::now();
                    done.push((end, end - t));
                }
                Ok::<_, avvik_events::StoreError>(done)
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await??);
        }
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(all)
    })?;
    let mut in_window: Vec<Duration> = done
        .iter()
        .filter(|(end, _)| *end >= from && *end <= to)
        .map(|(_, d)| *d)
        .collect();
    in_window.sort();
    let ops = in_window.len();
    let pct = |p: f64| {
        in_window
            .get(((ops as f64 * p) as usize).min(ops.saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let report = store.verify()?;
    if !report.ok {
        return Err("the chain does not verify after the run".into());
    }
    Ok((ops as f64 / window.as_secs_f64(), pct(0.5), pct(0.99), ops))
}
