//! Event-store benchmark: durable appends, replay into the register, and start-up with a
//! large log, each next to a raw sled baseline, in one run on one machine. Prints a
//! markdown table to stdout (progress goes to stderr). Results and method: BENCHMARKS.md.
//!
//! `cargo bench --bench store` runs the full size (1,000,000 events for replay and
//! start-up, 10 s append windows). `AVVIK_BENCH_QUICK=1` (or `--quick`) scales it down to
//! 10,000 events and 0.8 s windows; that is also what runs when the binary is started
//! without `--bench` (e.g. by `cargo test --benches`), so only `cargo bench` runs the long
//! version.
//!
//! Appends and replay run twice, side by side: with the personal fields sealed under
//! per-deviation keys (as the service stores them, `avvik::privacy`) and in the clear.
//! `AVVIK_BENCH_SEAL=on|off` runs only one of them.
//!
//! For investigating one part: `AVVIK_BENCH_EVENTS=N` (replay size),
//! `AVVIK_BENCH_WINDOW_S=S` (append window), `AVVIK_BENCH_ONLY=append|replay`,
//! `AVVIK_BENCH_APPENDERS=N` (one appender count), `AVVIK_BENCH_LOG=DIR` (keep the replay
//! log there and reuse it next time), `AVVIK_BENCH_DIR=DIR` (scratch directory, default
//! the system temp dir; it must be on a real disk, not tmpfs, or the durability numbers
//! mean nothing).

use std::collections::VecDeque;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::process::{Command as Process, ExitCode};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use avvik::domain::{
    Aspects, Channel, Classification, DeviationEvent, EmailAddress, Level, PersonalDataBreach,
    Reference, Reported, Reporter, Severity,
};
use avvik::privacy::Keyring;
use avvik::register::Register;
use avvik_events::{
    hash_hex, EventStore, ExpectedVersion, NewEvent, RecordedEvent, SledEventStore, StoreOptions,
    GENESIS_HASH,
};
use chrono::{DateTime, SubsecRound, TimeZone, Utc};
use tempfile::TempDir;
use uuid::Uuid;

/// The store's default page cache; the baselines use the same sled settings.
const CACHE_BYTES: u64 = 256 * 1024 * 1024;
/// Key prefix of log records in the store's tree (the baselines write the same keys).
const K_LOG: u8 = b'L';
const CONCURRENCY: [usize; 3] = [1, 16, 64];

type AnyResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[derive(Debug, Clone, Copy)]
struct Scale {
    full: bool,
    /// Events in the replay / start-up log.
    events: u64,
    /// Measured window per append configuration (after `warmup`).
    window: Duration,
    warmup: Duration,
    /// Replay passes per method; the best is reported.
    passes: usize,
    appends: bool,
    replay: bool,
}

impl Scale {
    fn from_env(args: &[String]) -> Self {
        let by_cargo_bench = args.iter().any(|a| a == "--bench");
        let quick = args.iter().any(|a| a == "--quick")
            || std::env::var("AVVIK_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
            || !by_cargo_bench;
        let mut s = if quick {
            Scale {
                full: false,
                events: 10_000,
                window: Duration::from_millis(800),
                warmup: Duration::from_millis(200),
                passes: 1,
                appends: true,
                replay: true,
            }
        } else {
            Scale {
                full: true,
                events: 1_000_000,
                window: Duration::from_secs(10),
                warmup: Duration::from_secs(1),
                passes: 3,
                appends: true,
                replay: true,
            }
        };
        if let Some(n) = std::env::var("AVVIK_BENCH_EVENTS")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            s.events = n;
        }
        if let Some(secs) = std::env::var("AVVIK_BENCH_WINDOW_S")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            s.window = Duration::from_secs_f64(secs);
        }
        match std::env::var("AVVIK_BENCH_ONLY").as_deref() {
            Ok("append") => s.replay = false,
            Ok("replay") => s.appends = false,
            _ => {}
        }
        s
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    // A child process measures start-up on its own, so its peak RSS is start-up's alone.
    if let Some(pos) = args.iter().position(|a| a == "--startup-child") {
        return match args.get(pos + 1) {
            Some(dir) => match startup_child(Path::new(dir)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("start-up child failed: {e}");
                    ExitCode::FAILURE
                }
            },
            None => ExitCode::FAILURE,
        };
    }
    let scale = Scale::from_env(&args);
    match run(scale) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 8, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// A report as the web form files it: a payload (`data`) of ~500 bytes.
fn reported(number: u64, at: DateTime<Utc>) -> DeviationEvent {
    DeviationEvent::Reported(Reported {
        reference: Reference::new(2026, number),
        title: "Felskickad e-post med elevuppgifter".into(),
        description: "En klasslista med telefonnummer skickades till fel mottagare.".into(),
        occurred_at: Some(at - chrono::Duration::hours(2)),
        discovered_at: at - chrono::Duration::hours(1),
        sector: Some("Utbildningsförvaltningen".into()),
        asset: Some("Outlook".into()),
        personal_data: true,
        reporter: Some(Reporter {
            name: "Anna Svensson".into(),
            email: EmailAddress::parse("anna.svensson@kommunen.se").expect("valid address"),
        }),
        channel: Channel::Web,
        status_token_hash: hash_hex(&number.to_be_bytes()),
        reported_at: at,
    })
}

fn classified() -> DeviationEvent {
    DeviationEvent::Classified(Classification {
        severity: Severity::Minor,
        aspects: Aspects {
            confidentiality: Level::new(2),
            ..Aspects::default()
        },
        category: "felskickad e-post".into(),
        personal_data_breach: PersonalDataBreach::Investigating,
        nis2_significant: false,
        rationale: "Begränsad spridning, mottagaren har raderat meddelandet.".into(),
        role: "ciso".into(),
    })
}

/// Generates a valid hash-chained NDJSON export on the fly (no ~750 MB temp file): four
/// reports for every classification of an earlier report.
struct ExportGen {
    /// Seals the records as the service would (`None`: in the clear).
    seal: Option<(Arc<Keyring>, SledEventStore, TempDir)>,
    total: u64,
    seq: u64,
    reports: u64,
    prev: String,
    to_classify: VecDeque<Uuid>,
    line: Vec<u8>,
    pos: usize,
    stored_bytes: u64,
}

impl ExportGen {
    fn new(total: u64, seal: Option<Arc<Keyring>>) -> AnyResult<Self> {
        let seal = match seal {
            Some(k) => {
                // An empty store for the keyring's lookups: every report opens a new stream.
                let dir = tempfile::tempdir()?;
                let s = SledEventStore::open(dir.path(), StoreOptions::default())?;
                Some((k, s, dir))
            }
            None => None,
        };
        Ok(Self {
            seal,
            total,
            seq: 0,
            reports: 0,
            prev: GENESIS_HASH.to_string(),
            to_classify: VecDeque::new(),
            line: Vec::new(),
            pos: 0,
            stored_bytes: 0,
        })
    }

    fn next_record(&mut self) -> Option<RecordedEvent> {
        if self.seq >= self.total {
            return None;
        }
        self.seq += 1;
        let at = t0() + chrono::Duration::seconds(self.seq as i64 * 20);
        let (stream, version, actor, ev) = match self.to_classify.pop_front() {
            Some(stream) if self.seq.is_multiple_of(5) => (
                stream,
                2,
                "user:ciso@kommunen.example".to_string(),
                classified(),
            ),
            other => {
                if let Some(s) = other {
                    self.to_classify.push_front(s);
                }
                self.reports += 1;
                let stream = Uuid::now_v7();
                self.to_classify.push_back(stream);
                (
                    stream,
                    1,
                    "reporter".to_string(),
                    reported(self.reports, at),
                )
            }
        };
        let id = Uuid::now_v7();
        let data = match &self.seal {
            Some((keys, store, _)) => {
                if version == 1 {
                    keys.prepare_new(stream).ok()?;
                }
                keys.seal(store, stream, id, ev.type_name(), ev.to_data())
                    .ok()?
            }
            None => ev.to_data(),
        };
        let rec = RecordedEvent {
            seq: self.seq,
            id,
            stream,
            version,
            at,
            actor,
            event_type: ev.type_name().to_string(),
            schema: 1,
            data,
            prev: std::mem::take(&mut self.prev),
        };
        Some(rec)
    }
}

impl Read for ExportGen {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.line.len() {
            let Some(rec) = self.next_record() else {
                return Ok(0);
            };
            self.line = rec.to_bytes();
            self.prev = hash_hex(&self.line);
            self.stored_bytes += self.line.len() as u64;
            self.line.push(b'\n');
            self.pos = 0;
        }
        let n = out.len().min(self.line.len() - self.pos);
        out[..n].copy_from_slice(&self.line[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Stored bytes of reports as the append runs store them, so the baselines write values of
/// the same sizes (cycled in this order).
fn sample_records() -> Vec<Vec<u8>> {
    (100_001..=100_003)
        .map(|n| {
            let now = Utc::now();
            let ev = reported(n, now);
            RecordedEvent {
                seq: n,
                id: Uuid::now_v7(),
                stream: Uuid::now_v7(),
                version: 1,
                at: now.trunc_subsecs(6),
                actor: "reporter".into(),
                event_type: ev.type_name().into(),
                schema: 1,
                data: ev.to_data(),
                prev: hash_hex(&n.to_be_bytes()),
            }
            .to_bytes()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Measurements
// ---------------------------------------------------------------------------------------

/// Completion instants and latencies of individual operations.
struct Samples {
    done: Vec<(Instant, Duration)>,
}

struct Throughput {
    per_sec: f64,
    p50: Duration,
    p99: Duration,
    ops: usize,
}

impl Samples {
    /// Operations completed inside `[from, to)`; `events_per_op` scales the rate.
    fn summarise(mut self, from: Instant, to: Instant, events_per_op: usize) -> Throughput {
        self.done.retain(|(t, _)| *t >= from && *t < to);
        let mut lat: Vec<Duration> = self.done.iter().map(|(_, l)| *l).collect();
        lat.sort_unstable();
        let pct = |p: usize| {
            if lat.is_empty() {
                Duration::ZERO
            } else {
                lat[(lat.len() * p / 100).min(lat.len() - 1)]
            }
        };
        Throughput {
            per_sec: (lat.len() * events_per_op) as f64 / (to - from).as_secs_f64(),
            p50: pct(50),
            p99: pct(99),
            ops: lat.len(),
        }
    }
}

fn scratch(root: &Path, name: &str) -> AnyResult<TempDir> {
    Ok(tempfile::Builder::new().prefix(name).tempdir_in(root)?)
}

fn sled_db(dir: &Path) -> AnyResult<sled::Db> {
    Ok(sled::Config::new()
        .path(dir)
        .cache_capacity(CACHE_BYTES)
        .mode(sled::Mode::HighThroughput)
        .open()?)
}

fn log_key(seq: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = K_LOG;
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// Plain sled: insert `per_flush` values, then `flush()`, for the window. One op = one flush.
fn raw_append(
    root: &Path,
    scale: Scale,
    values: &[Vec<u8>],
    per_flush: usize,
) -> AnyResult<Throughput> {
    let dir = scratch(root, "raw-append-")?;
    let db = sled_db(dir.path())?;
    let tree = db.open_tree("log")?;
    let start = Instant::now();
    let from = start + scale.warmup;
    let to = from + scale.window;
    let mut samples = Samples { done: Vec::new() };
    let mut seq = 0u64;
    loop {
        let t = Instant::now();
        if t >= to {
            break;
        }
        for _ in 0..per_flush {
            seq += 1;
            tree.insert(log_key(seq), values[seq as usize % values.len()].as_slice())?;
        }
        tree.flush()?;
        let end = Instant::now();
        samples.done.push((end, end - t));
    }
    Ok(samples.summarise(from, to, per_flush))
}

/// `appenders` tokio tasks, each appending one report per call on a shared store.
/// Also returns the mean stored record size and the store's disk bytes per event.
/// The bench's data keys in `dir` (a fixed secret, so a kept log opens again).
fn bench_keys(dir: &Path) -> AnyResult<Arc<Keyring>> {
    Ok(Keyring::open_dir(
        dir,
        &avvik::secret::Secret::from_bytes([42; 32]),
    )?)
}

fn store_append(
    root: &Path,
    scale: Scale,
    appenders: usize,
    sealed: bool,
) -> AnyResult<(Throughput, f64, f64)> {
    let dir = scratch(root, "store-append-")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let store = Arc::new(SledEventStore::open(dir.path(), StoreOptions::default())?);
    let keys = if sealed {
        Some(bench_keys(dir.path())?)
    } else {
        None
    };
    let numbers = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let from = start + scale.warmup;
    let to = from + scale.window;
    let samples = rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..appenders {
            let store = store.clone();
            let numbers = numbers.clone();
            let keys = keys.clone();
            tasks.push(tokio::spawn(async move {
                let mut done = Vec::new();
                while Instant::now() < to {
                    let now = Utc::now();
                    let n = numbers.fetch_add(1, Ordering::Relaxed) + 1;
                    let ev = reported(n, now);
                    let t = Instant::now();
                    // Sealing (key, AEAD) is timed with the append, as the command path does it.
                    let stream = Uuid::now_v7();
                    let mut event = NewEvent::new(ev.type_name(), ev.to_data(), "reporter", now);
                    if let Some(keys) = &keys {
                        // As the command path does for a report: the new stream's key
                        // first, without a store lookup.
                        keys.prepare_new(stream)
                            .map_err(avvik_events::StoreError::Io)?;
                        let data = std::mem::take(&mut event.data);
                        event.data = keys
                            .seal(store.as_ref(), stream, event.id, ev.type_name(), data)
                            .map_err(avvik_events::StoreError::Io)?;
                    }
                    store
                        .append(stream, ExpectedVersion::NoStream, vec![event])
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
    let head = store.head().seq;
    let mut bytes = 0u64;
    store.for_each_raw(1, head, &mut |_, b| {
        bytes += b.len() as u64;
        Ok(())
    })?;
    let avg_record = bytes as f64 / head.max(1) as f64;
    let disk_per_event = store.size_on_disk()? as f64 / head.max(1) as f64;
    drop(store);
    Ok((
        Samples { done: samples }.summarise(from, to, 1),
        avg_record,
        disk_per_event,
    ))
}

/// Builds the replay log with `SledEventStore::import` from a generated export.
fn build_log(dir: &Path, events: u64, sealed: bool) -> AnyResult<(Duration, f64)> {
    let t = Instant::now();
    let keys = if sealed { Some(bench_keys(dir)?) } else { None };
    let mut gen = std::io::BufReader::with_capacity(1 << 20, ExportGen::new(events, keys)?);
    let head = SledEventStore::import(
        dir,
        StoreOptions::default(),
        &mut gen as &mut dyn BufRead,
        &avvik::cli::counter_of,
    )?;
    if head.seq != events {
        return Err(format!("import stored {} of {events} records", head.seq).into());
    }
    let avg = gen.get_ref().stored_bytes as f64 / events as f64;
    Ok((t.elapsed(), avg))
}

/// Register::fold over the whole log of an open store.
fn replay_store(dir: &Path, events: u64) -> AnyResult<(Duration, Sched)> {
    let store = SledEventStore::open(dir, StoreOptions::default())?;
    let keys = bench_keys(dir)?;
    let head = store.head().seq;
    // The fold reads on this thread and folds on another: count both.
    let sched = Sched::all_threads();
    let t = Instant::now();
    let reg = Register::fold(&store, &keys, head)?;
    let took = t.elapsed();
    let sched = Sched::all_threads() - sched;
    let reports = events - events / 5;
    if reg.seq() != events || reg.len() as u64 != reports || reg.undecodable != 0 {
        return Err(format!(
            "fold ended at seq {} with {} deviations ({} undecodable); expected {events} and {reports}",
            reg.seq(),
            reg.len(),
            reg.undecodable
        )
        .into());
    }
    drop(reg);
    Ok((took, sched))
}

/// Plain sled scan of the log keys + `serde_json` decode into `RecordedEvent`.
fn replay_raw(dir: &Path, events: u64) -> AnyResult<(Duration, Sched)> {
    let db = sled_db(&dir.join("events"))?;
    let tree = db.open_tree("log")?;
    let sched = Sched::thread();
    let t = Instant::now();
    let mut n = 0u64;
    let mut check = 0u64;
    for item in tree.scan_prefix([K_LOG]) {
        let (_, v) = item?;
        let rec: RecordedEvent = serde_json::from_slice(&v)?;
        check = check.wrapping_add(rec.seq);
        n += 1;
    }
    let took = t.elapsed();
    let sched = Sched::thread() - sched;
    if n != events || check != events * (events + 1) / 2 {
        return Err(format!("raw scan read {n} of {events} records").into());
    }
    Ok((took, sched))
}

/// What `avvik serve` does before it is ready: open the store, start the projections it
/// runs on (register, outbox, intake view; one shared pass over the log catches them up)
/// and wait until all three have caught up. Prints `seconds seq vmhwm_kib on_cpu_s
/// open_seconds open_vmhwm_kib` (the last two: when the store was open, before the
/// projections started).
fn startup_child(dir: &Path) -> AnyResult<()> {
    let t = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut config = avvik::config::Config::defaults()?;
    config.store.data_dir = dir.to_path_buf();
    let (seconds, seq, opened) = rt.block_on(async {
        let store: Arc<dyn EventStore> = avvik::startup::open_store(&config)?;
        let opened = (t.elapsed().as_secs_f64(), vm_hwm_kib().unwrap_or(0));
        let head = store.head().seq;
        let (stop, _) = tokio::sync::watch::channel(false);
        let rules = Arc::new(avvik::notify::rules::Rules::from_config(&config));
        let keys = bench_keys(dir).map_err(|e| e.to_string())?;
        let p = avvik::startup::Projections::start(
            store.clone(),
            keys,
            rules,
            Default::default(),
            &stop,
        );
        let limit = Duration::from_secs(600);
        if !(p.register.wait_for(head, limit).await
            && p.outbox.wait_for(head, limit).await
            && p.intake.wait_for(head, limit).await)
        {
            return Err("the projections did not catch up within 600 s".into());
        }
        let seconds = t.elapsed().as_secs_f64();
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>((seconds, p.register.seq(), opened))
    })?;
    println!(
        "{seconds} {seq} {} {} {} {}",
        vm_hwm_kib().unwrap_or(0),
        Sched::all_threads().on_cpu.as_secs_f64(),
        opened.0,
        opened.1,
    );
    Ok(())
}

struct Startup {
    seconds: f64,
    seq: u64,
    hwm_kib: u64,
    sched: Sched,
    /// Time and peak RSS when the store was open (before the projections started).
    open_seconds: f64,
    open_hwm_kib: u64,
}

fn measure_startup(dir: &Path) -> AnyResult<Startup> {
    let out = Process::new(std::env::current_exe()?)
        .arg("--startup-child")
        .arg(dir)
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "start-up child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let text = String::from_utf8(out.stdout)?;
    let mut parts = text.split_whitespace();
    let mut next = || parts.next().ok_or("start-up child printed too little");
    let seconds: f64 = next()?.parse()?;
    let seq: u64 = next()?.parse()?;
    let hwm_kib: u64 = next()?.parse()?;
    let on_cpu: f64 = next()?.parse()?;
    let open_seconds: f64 = next()?.parse()?;
    let open_hwm_kib: u64 = next()?.parse()?;
    Ok(Startup {
        seconds,
        seq,
        hwm_kib,
        open_seconds,
        open_hwm_kib,
        sched: Sched {
            on_cpu: Duration::from_secs_f64(on_cpu),
            waiting: None,
        },
    })
}

/// Time spent running on a CPU and waiting runnable for one, from the kernel's schedstat.
/// The wait shows how much other load on the machine stretched a wall-clock figure; it is
/// known per live thread only, so figures over threads that have ended have none.
#[derive(Debug, Clone, Copy, Default)]
struct Sched {
    on_cpu: Duration,
    waiting: Option<Duration>,
}

impl Sched {
    fn read(path: &Path) -> Option<Sched> {
        let text = std::fs::read_to_string(path).ok()?;
        let mut f = text.split_whitespace().map(|v| v.parse::<u64>().ok());
        Some(Sched {
            on_cpu: Duration::from_nanos(f.next()??),
            waiting: Some(Duration::from_nanos(f.next()??)),
        })
    }

    /// The calling thread so far.
    fn thread() -> Sched {
        Self::read(Path::new("/proc/thread-self/schedstat")).unwrap_or_default()
    }

    /// Every thread of this process so far, ended ones included (user + system time from
    /// `/proc/self/stat`, in the kernel's 10 ms ticks); no wait figure.
    fn all_threads() -> Sched {
        let ticks = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|text| {
                // Fields after the command name (which may hold spaces): state is field 3,
                // utime 14, stime 15.
                let rest = &text[text.rfind(')')? + 2..];
                let f: Vec<u64> = rest
                    .split_whitespace()
                    .skip(11)
                    .take(2)
                    .filter_map(|v| v.parse().ok())
                    .collect();
                Some(f.iter().sum::<u64>())
            })
            .unwrap_or(0);
        Sched {
            on_cpu: Duration::from_millis(ticks * 10),
            waiting: None,
        }
    }
}

impl std::ops::Sub for Sched {
    type Output = Sched;
    fn sub(self, earlier: Sched) -> Sched {
        Sched {
            on_cpu: self.on_cpu.saturating_sub(earlier.on_cpu),
            waiting: self
                .waiting
                .zip(earlier.waiting)
                .map(|(now, then)| now.saturating_sub(then)),
        }
    }
}

impl std::fmt::Display for Sched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.waiting {
            Some(w) => write!(
                f,
                "on CPU {:.2} s, waited for a CPU {:.2} s",
                self.on_cpu.as_secs_f64(),
                w.as_secs_f64()
            ),
            None => write!(f, "on CPU {:.2} s, all threads", self.on_cpu.as_secs_f64()),
        }
    }
}

/// Peak resident set size of this process (kernel's high-water mark), in KiB.
fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Allocated bytes of every file under `dir` (what `du` counts).
fn du(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.blocks() * 512;
            }
        }
    }
    total
}

// ---------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------

struct Row {
    figure: String,
    value: String,
    baseline: String,
    target: String,
    met: String,
}

fn row(figure: impl Into<String>, value: impl Into<String>) -> Row {
    Row {
        figure: figure.into(),
        value: value.into(),
        baseline: "—".into(),
        target: "—".into(),
        met: "—".into(),
    }
}

impl Row {
    fn against(
        mut self,
        baseline: impl Into<String>,
        target: impl Into<String>,
        met: bool,
    ) -> Self {
        self.baseline = baseline.into();
        self.target = target.into();
        self.met = if met { "met" } else { "NOT met" }.into();
        self
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn rate(r: f64) -> String {
    if r >= 10_000.0 {
        format!("{:.0}k ev/s", r / 1e3)
    } else {
        format!("{r:.0} ev/s")
    }
}

/// (sealed, per-appender-count throughput, replay events/s) of one mode.
type ModeResult = (bool, Vec<(usize, f64)>, Option<f64>);

fn run(scale: Scale) -> AnyResult<()> {
    let root = std::env::var_os("AVVIK_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&root)?;
    let mode = if scale.full { "full" } else { "quick" };
    eprintln!(
        "avvik store bench ({mode}): {} events for replay, {:?} append windows, scratch in {}",
        scale.events,
        scale.window,
        root.display()
    );
    let mut rows = Vec::new();
    let modes: &[bool] = match std::env::var("AVVIK_BENCH_SEAL").as_deref() {
        Ok("on") => &[true],
        Ok("off") => &[false],
        _ => &[false, true],
    };
    let mut seen: Vec<ModeResult> = Vec::new();
    for &sealed in modes {
        let label = if sealed { "sealed" } else { "clear" };
        eprintln!("== personal fields {label} ==");
        let mut a = Vec::new();
        let mut r = None;
        if scale.appends {
            a = appends(&root, scale, &mut rows, sealed)?;
        }
        if scale.replay {
            r = Some(replay_and_startup(&root, scale, &mut rows, sealed)?);
        }
        seen.push((sealed, a, r));
    }
    if let (Some(clear), Some(sealed)) = (seen.iter().find(|s| !s.0), seen.iter().find(|s| s.0)) {
        for ((n, c), (_, s)) in clear.1.iter().zip(&sealed.1) {
            let ratio = s / c.max(1e-9);
            rows.push(
                row(
                    format!("sealed vs clear: append, {n} appender(s)"),
                    format!("{} vs {} ({:.0}%)", rate(*s), rate(*c), ratio * 100.0),
                )
                .against("clear", "within 15%", (ratio - 1.0).abs() <= 0.15),
            );
        }
        if let (Some(c), Some(s)) = (clear.2, sealed.2) {
            let ratio = s / c.max(1e-9);
            rows.push(
                row(
                    "sealed vs clear: replay (Register::fold)",
                    format!("{} vs {} ({:.0}%)", rate(s), rate(c), ratio * 100.0),
                )
                .against("clear", "within 15%", (ratio - 1.0).abs() <= 0.15),
            );
        }
    }
    rows.push(row(
        "peak RSS of the whole bench process (VmHWM)",
        format!("{:.0} MiB", vm_hwm_kib().unwrap_or(0) as f64 / 1024.0),
    ));

    println!("## avvik store benchmark ({mode})\n");
    println!("| figure | value | baseline | target | met |");
    println!("|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            r.figure, r.value, r.baseline, r.target, r.met
        );
    }
    Ok(())
}

fn appends(
    root: &Path,
    scale: Scale,
    rows: &mut Vec<Row>,
    sealed: bool,
) -> AnyResult<Vec<(usize, f64)>> {
    let tag = if sealed { "sealed" } else { "clear" };
    let values = sample_records();
    let sizes: Vec<usize> = values.iter().map(Vec::len).collect();
    eprintln!("baseline: sled insert + flush per event (values of {sizes:?} B)");
    let per_event = raw_append(root, scale, &values, 1)?;
    eprintln!("baseline: sled insert, flush per 100 events");
    let per_100 = raw_append(root, scale, &values, 100)?;
    let mut appends = Vec::new();
    let mut record_bytes = 0.0;
    let mut disk_per_event = 0.0;
    let only: Option<usize> = std::env::var("AVVIK_BENCH_APPENDERS")
        .ok()
        .and_then(|v| v.parse().ok());
    for n in CONCURRENCY
        .into_iter()
        .filter(|n| only.is_none_or(|o| o == *n))
    {
        eprintln!("store: {n} concurrent appenders");
        let (t, avg, disk) = store_append(root, scale, n, sealed)?;
        record_bytes = avg;
        disk_per_event = disk;
        appends.push((n, t));
    }
    rows.push(row(
        "baseline: sled insert+flush per event",
        format!(
            "{} (p50 {}, p99 {})",
            rate(per_event.per_sec),
            ms(per_event.p50),
            ms(per_event.p99)
        ),
    ));
    rows.push(row(
        "baseline: sled insert, flush per 100",
        format!(
            "{} (per-100 commit p50 {}, p99 {})",
            rate(per_100.per_sec),
            ms(per_100.p50),
            ms(per_100.p99)
        ),
    ));
    for (n, t) in &appends {
        let value = format!(
            "{} (p50 {}, p99 {}; {} appends)",
            rate(t.per_sec),
            ms(t.p50),
            ms(t.p99),
            t.ops
        );
        let r = row(format!("append ({tag}), {n} appender(s)"), value);
        rows.push(match n {
            1 => {
                let ratio = t.p50.as_secs_f64() / per_event.p50.as_secs_f64().max(1e-9);
                r.against(
                    format!("flush/event p50 {}", ms(per_event.p50)),
                    format!("p50 ≤ 2× baseline (is {ratio:.2}×)"),
                    ratio <= 2.0,
                )
            }
            64 => {
                let vs100 = t.per_sec / per_100.per_sec.max(1e-9);
                let vs1 = t.per_sec / per_event.per_sec.max(1e-9);
                r.against(
                    format!(
                        "flush/100 {}; flush/event {}",
                        rate(per_100.per_sec),
                        rate(per_event.per_sec)
                    ),
                    format!(
                        "≥ 50% of flush/100 (is {:.0}%) and ≥ 10× flush/event (is {vs1:.1}×)",
                        vs100 * 100.0
                    ),
                    vs100 >= 0.5 && vs1 >= 10.0,
                )
            }
            _ => r,
        });
    }
    let payload = serde_json::to_vec(&reported(100_001, Utc::now()).to_data())?.len();
    rows.push(row(
        format!("appended event ({tag}): stored record (mean) / its `data` in the clear"),
        format!("{record_bytes:.0} B / {payload} B (baseline values {sizes:?} B)"),
    ));
    rows.push(row(
        format!("disk per event ({tag}), store built by appends (last run above)"),
        format!("{disk_per_event:.0} B (size_on_disk / events)"),
    ));
    Ok(appends.iter().map(|(n, t)| (*n, t.per_sec)).collect())
}

fn replay_and_startup(
    root: &Path,
    scale: Scale,
    rows: &mut Vec<Row>,
    sealed: bool,
) -> AnyResult<f64> {
    let tag = if sealed { "sealed" } else { "clear" };
    // AVVIK_BENCH_LOG keeps the log in a named directory and reuses it on the next run.
    let (log_dir, _scratch_log) = match std::env::var_os("AVVIK_BENCH_LOG") {
        Some(dir) => (PathBuf::from(dir).join(tag), None),
        None => {
            let tmp = scratch(root, "replay-")?;
            (tmp.path().to_path_buf(), Some(tmp))
        }
    };
    let log = log_dir.as_path();
    let built = if log.join("events").exists() {
        eprintln!("reusing the log in {}", log.display());
        None
    } else {
        eprintln!("building a {}-event log with import", scale.events);
        Some(build_log(log, scale.events, sealed)?)
    };
    // Best of the passes (by wall time) for each, run alternately so load hits both alike.
    let mut best_fold = (Duration::MAX, Sched::default());
    let mut best_raw = (Duration::MAX, Sched::default());
    for pass in 0..scale.passes {
        eprintln!(
            "replay pass {}: raw scan + decode, then Register::fold",
            pass + 1
        );
        let raw = replay_raw(log, scale.events)?;
        if raw.0 < best_raw.0 {
            best_raw = raw;
        }
        let fold = replay_store(log, scale.events)?;
        if fold.0 < best_fold.0 {
            best_fold = fold;
        }
    }
    let fold_rate = scale.events as f64 / best_fold.0.as_secs_f64();
    let raw_rate = scale.events as f64 / best_raw.0.as_secs_f64();
    let share = fold_rate / raw_rate;
    let cpu_share = best_raw.1.on_cpu.as_secs_f64() / best_fold.1.on_cpu.as_secs_f64().max(1e-9);
    if let Some((took, avg_bytes)) = built {
        rows.push(row(
            format!("log built with import ({tag}, {} events)", scale.events),
            format!(
                "{:.1} s, {avg_bytes:.0} B per stored record (mean)",
                took.as_secs_f64()
            ),
        ));
    }
    rows.push(
        row(
            format!("replay ({tag}): Register::fold, {} events", scale.events),
            format!(
                "{} ({:.2} s; {})",
                rate(fold_rate),
                best_fold.0.as_secs_f64(),
                best_fold.1
            ),
        )
        .against(
            format!(
                "sled scan + decode {} ({:.2} s; {})",
                rate(raw_rate),
                best_raw.0.as_secs_f64(),
                best_raw.1
            ),
            format!(
                "≥ 50% of baseline (is {:.0}%; by CPU time {:.0}%)",
                share * 100.0,
                cpu_share * 100.0
            ),
            share >= 0.5,
        ),
    );

    eprintln!("start-up in a fresh process");
    let startup = measure_startup(log)?;
    if startup.seq != scale.events {
        return Err(format!(
            "start-up caught up to {}, not {}",
            startup.seq, scale.events
        )
        .into());
    }
    let on_disk = {
        let store = SledEventStore::open(log, StoreOptions::default())?;
        store.size_on_disk()?
    };
    let du_bytes = du(log);
    rows.push(
        row(
            format!("start-up to ready ({tag}), {} events", scale.events),
            format!(
                "{:.2} s ({}); of which opening the store {:.2} s",
                startup.seconds, startup.sched, startup.open_seconds
            ),
        )
        .against(
            "—",
            if scale.full {
                "≤ 3 s with 1M events"
            } else {
                "≤ 3 s (target is for 1M events)"
            },
            startup.seconds <= 3.0,
        ),
    );
    rows.push(row(
        format!("peak RSS of start-up ({tag}, VmHWM, fresh process)"),
        format!(
            "{:.0} MiB; {:.0} MiB when the store was open",
            startup.hwm_kib as f64 / 1024.0,
            startup.open_hwm_kib as f64 / 1024.0
        ),
    ));
    rows.push(row(
        format!("disk per event ({tag}), replay log (import-built)"),
        format!(
            "{:.0} B (size_on_disk {:.0} MiB); du {:.0} B ({:.0} MiB)",
            on_disk as f64 / scale.events as f64,
            on_disk as f64 / 1048576.0,
            du_bytes as f64 / scale.events as f64,
            du_bytes as f64 / 1048576.0
        ),
    ));
    Ok(fold_rate)
}
