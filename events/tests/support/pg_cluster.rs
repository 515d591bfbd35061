//! A throw-away PostgreSQL cluster for tests, never the system service: one per test
//! process, started on first use in a temporary directory on a free loopback port, and a
//! new database for each test.
//!
//! Needs only the standard library, so any test crate can include it:
//!
//! ```ignore
//! #[path = "../events/tests/support/pg_cluster.rs"]
//! mod pg_cluster;
//!
//! let db = pg_cluster::Cluster::shared().database();
//! let store = PostgresEventStore::connect(db.url(), PostgresOptions::default())?;
//! ```
//!
//! Test binaries end without running destructors, so the cluster is stopped by a small
//! watcher process started with it: it waits for its standard input to close, which the
//! kernel does when this process ends however it ends, then stops the server and removes
//! the directory. Clusters left by a run that was killed before its watcher could act are
//! removed by the next run.
//!
//! Needs Debian's `postgresql` package (which `scripts/test` installs). Run as root, the
//! server runs as the `postgres` user, as `initdb` demands.

// Each test crate uses a different part of it.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// Directories of test clusters in the temporary directory start with this.
const PREFIX: &str = "avvik-pg-test-";

/// A running test cluster.
pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    password: String,
    next_db: AtomicU64,
    /// Holds the watcher's standard input open until this process ends.
    _watcher: Mutex<Child>,
}

/// A database of its own for one test; dropped with the value.
pub struct Database {
    cluster: &'static Cluster,
    name: String,
    url: String,
}

impl Database {
    /// `postgres://postgres:…@127.0.0.1:PORT/NAME`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs SQL in this database as the superuser; returns what psql printed.
    pub fn psql(&self, sql: &str) -> String {
        self.cluster.psql(&self.name, sql)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = self.cluster.try_psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

impl Cluster {
    /// This process's cluster, started on first use. Panics, naming `scripts/test`, when
    /// PostgreSQL is not installed: nothing is skipped silently.
    pub fn shared() -> &'static Cluster {
        static CLUSTER: OnceLock<Cluster> = OnceLock::new();
        CLUSTER.get_or_init(|| Cluster::start().unwrap_or_else(|e| panic!("{e}")))
    }

    /// A cluster of its own, for a test that stops and starts the server; it lives (and
    /// is removed) as the shared one does.
    pub fn own() -> &'static Cluster {
        Box::leak(Box::new(Cluster::start().unwrap_or_else(|e| panic!("{e}"))))
    }

    /// Stops the server at once (`pg_ctl stop -m immediate`): every connection drops.
    pub fn stop_server(&self) {
        let stop = stop_command(is_root(), &self.bin, &self.dir.join("data"));
        run(Command::new("sh").args(["-c", &stop])).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Starts the stopped server again on the same port.
    pub fn start_server(&self) {
        run(&mut pg_ctl_start(
            is_root(),
            &self.bin,
            &self.dir,
            self.port,
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// A new, empty database.
    pub fn database(&'static self) -> Database {
        let n = self.next_db.fetch_add(1, Ordering::Relaxed);
        let name = format!("avvik_test_{n}");
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        Database {
            cluster: self,
            url: self.url(&name),
            name,
        }
    }

    /// The URL of database `db`, as the superuser, with the password.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/{db}",
            self.password, self.port
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    /// Runs SQL in database `db` as the superuser (over the Unix socket); panics on error.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        self.try_psql(db, sql)
            .unwrap_or_else(|e| panic!("psql in {db}: {sql}: {e}"))
    }

    fn try_psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).to_string())
        }
    }

    fn start() -> Result<Cluster, String> {
        let bin = server_bin()?;
        remove_stale_clusters(&bin);
        let root = is_root();
        let dir = std::env::temp_dir().join(format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        std::fs::write(dir.join("owner.pid"), std::process::id().to_string())
            .map_err(|e| format!("owner.pid: {e}"))?;
        let password = format!("pw-{:x}", std::process::id() as u64 * 7919 + 17);
        std::fs::write(dir.join("pw"), &password).map_err(|e| format!("pw: {e}"))?;
        if root {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir))?;
        }
        let data = dir.join("data");
        run(server_command(root, &bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .arg(format!("--pwfile={}", dir.join("pw").display())))?;
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port()?;
            let started = run(&mut pg_ctl_start(root, &bin, &dir, port));
            match started {
                Ok(()) => {
                    let watcher = watch(root, &bin, &dir)?;
                    return Ok(Cluster {
                        dir,
                        bin,
                        port,
                        password,
                        next_db: AtomicU64::new(1),
                        _watcher: Mutex::new(watcher),
                    });
                }
                Err(e) => {
                    let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                    last = format!("{e}\n{log}");
                }
            }
        }
        Err(format!("the test PostgreSQL cluster did not start: {last}"))
    }
}

/// `pg_ctl start` of the cluster in `dir` on `port`, waiting until it accepts connections.
fn pg_ctl_start(root: bool, bin: &Path, dir: &Path, port: u16) -> Command {
    let mut c = server_command(root, &bin.join("pg_ctl"));
    c.arg("-D")
        .arg(dir.join("data"))
        .arg("-l")
        .arg(dir.join("server.log"))
        .args(["-w", "-t", "30", "-o"])
        .arg(format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200",
            dir.display()
        ))
        .arg("start");
    c
}

/// Starts the process that stops the cluster and removes its directory once this process
/// has ended (its standard input, a pipe from us, then reads end-of-file).
fn watch(root: bool, bin: &Path, dir: &Path) -> Result<Child, String> {
    let stop = stop_command(root, bin, &dir.join("data"));
    let script = format!(
        "trap '' INT TERM HUP; read _; {stop} >/dev/null 2>&1; rm -rf '{}'",
        dir.display()
    );
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting the cluster's watcher: {e}"))?;
    // Nothing is ever written; the pipe only has to stay open.
    if let Some(stdin) = child.stdin.as_mut() {
        let _ = stdin.flush();
    }
    Ok(child)
}

/// The shell command that stops the cluster in `data` at once.
fn stop_command(root: bool, bin: &Path, data: &Path) -> String {
    let pg_ctl = format!(
        "'{}' stop -D '{}' -m immediate -w",
        bin.join("pg_ctl").display(),
        data.display()
    );
    if root {
        format!("runuser -u postgres -- {pg_ctl}")
    } else {
        pg_ctl
    }
}

/// Stops and removes clusters whose test process is gone (one killed before its watcher
/// could act, or whose watcher was killed with it).
fn remove_stale_clusters(bin: &Path) {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    let root = is_root();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.starts_with(PREFIX) {
            continue;
        }
        let dir = entry.path();
        let owner = std::fs::read_to_string(dir.join("owner.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        let alive = owner.is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if alive || owner.is_none() {
            continue;
        }
        if dir.join("data").join("postmaster.pid").exists() {
            let _ = Command::new("sh")
                .args(["-c", &stop_command(root, bin, &dir.join("data"))])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The directory with `initdb` and `pg_ctl`: `AVVIK_PG_BIN`, or the newest
/// `/usr/lib/postgresql/<version>/bin`.
fn server_bin() -> Result<PathBuf, String> {
    let missing = "PostgreSQL's server programs (initdb, pg_ctl) were not found under \
                   /usr/lib/postgresql/<version>/bin: run scripts/test, which installs the \
                   postgresql package, or set AVVIK_PG_BIN to their directory";
    if let Some(dir) = std::env::var_os("AVVIK_PG_BIN") {
        let dir = PathBuf::from(dir);
        return if dir.join("initdb").exists() {
            Ok(dir)
        } else {
            Err(missing.into())
        };
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| missing.to_string())?
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| missing.into())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A server program, run as the `postgres` user when we are root.
fn server_command(root: bool, program: &Path) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port: {e}"))
}
