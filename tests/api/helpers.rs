//! Shared test plumbing: in-process applications on port 0, and the real binary as a child.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use avvik::clock::{Clock, SystemClock};
use avvik::config::Config;
use avvik::startup::Application;
use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_avvik");

pub fn test_config(dir: &Path) -> Config {
    let mut c = Config::defaults().expect("defaults load");
    c.http.addr = "127.0.0.1:0".parse().expect("addr");
    c.store.data_dir = dir.join("data");
    c.mail.outbox_dir = dir.join("data/outbox");
    c
}

/// An application running in this process on a free port.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub dir: TempDir,
    pub app_state: avvik::web::AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}, Arc::new(SystemClock)).await
    }

    pub async fn spawn_with(tweak: impl FnOnce(&mut Config), clock: Arc<dyn Clock>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = test_config(dir.path());
        tweak(&mut config);
        let app = Application::build_with_clock(config, clock)
            .await
            .expect("application builds");
        let port = app.port();
        let app_state = app.state().clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            let _ = app
                .run_until(async move {
                    let _ = rx.await;
                })
                .await;
        });
        let t = TestApp {
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
            dir,
            app_state,
            stop: Some(tx),
            handle: Some(handle),
        };
        t.wait_ready().await;
        t
    }

    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(r) = self
                .client
                .get(format!("{}/readyz", self.base))
                .send()
                .await
            {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("not ready in time");
    }

    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.client
            .post(format!("{}{}", self.base, path))
            .json(&body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn stop(mut self) -> TempDir {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
        // Drop every handle on the store so the data directory is free again.
        drop(self.app_state);
        self.dir
    }
}

/// The real `avvik serve` as a child process.
pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Server {
    /// Starts `avvik serve` on a free port with `data` as data directory.
    pub fn start(data: &Path, envs: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .env("AVVIK_HTTP__ADDR", "127.0.0.1:0")
            .env("AVVIK_STORE__DATA_DIR", data)
            .env("AVVIK_MAIL__OUTBOX_DIR", data.join("outbox"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("avvik starts");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[avvik] {line}");
                if !sent {
                    if let Some(i) = line.find("addr=") {
                        let addr = line[i + 5..]
                            .split_whitespace()
                            .next()
                            .unwrap_or("")
                            .to_string();
                        let _ = tx.send(addr);
                        sent = true;
                    }
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("server printed its address");
        let s = Server {
            child,
            base: format!("http://{addr}"),
        };
        s.wait_ready();
        s
    }

    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if blocking_status(&self.base, "/readyz") == Some(200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("server not ready in time");
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill(); // SIGKILL on Unix
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary with arguments; returns (exit code, stdout, stderr).
pub fn avvik(args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("avvik runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn data_path(dir: &TempDir) -> PathBuf {
    dir.path().join("data")
}

/// Status code of a plain GET, without an async runtime.
pub fn blocking_status(base: &str, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace().nth(1)?.parse().ok()
}
