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
    // Most tests sign in with the password alone; the second-factor policy (on for ciso,
    // admin and auditor by default) has its own tests (mfa.rs), which turn it back on.
    c.auth.second_factor_roles = Vec::new();
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
        Self::spawn_in(tempfile::tempdir().expect("tempdir"), tweak, clock).await
    }

    /// Like `spawn_with`, on the data of an earlier application (`stop` gives its `dir`).
    pub async fn spawn_in(
        dir: TempDir,
        tweak: impl FnOnce(&mut Config),
        clock: Arc<dyn Clock>,
    ) -> Self {
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
        let data_dir = self.app_state.config.store.data_dir.clone();
        drop(self.app_state);
        // Background workers let go of the store as they see the shutdown; wait for the
        // lock file to be free so the directory can be opened again right away.
        let lock = data_dir.join("avvik.lock");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match std::fs::OpenOptions::new().write(true).open(&lock) {
                Ok(f) if f.try_lock().is_ok() => break,
                Err(_) => break,
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
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
            .recv_timeout(Duration::from_secs(60))
            .expect("server printed its address");
        let s = Server {
            child,
            base: format!("http://{addr}"),
        };
        s.wait_ready();
        s
    }

    pub fn wait_ready(&self) {
        // Generous: the long crash-loop run restarts over hundreds of thousands of events.
        let deadline = Instant::now() + Duration::from_secs(60);
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

/// Creates a CISO account in `data` with the CLI (before a server starts on it) and
/// returns a fresh API token for it.
pub fn cli_ciso_token(data: &Path) -> String {
    cli_ciso_token_with(data, &[])
}

/// `cli_ciso_token` with more settings (e.g. the store's backend) in the environment.
pub fn cli_ciso_token_with(data: &Path, envs: &[(&str, &str)]) -> String {
    let d = data.to_str().unwrap();
    let mut child = Command::new(BIN)
        .envs(envs.iter().copied())
        .args([
            "user",
            "add",
            "--data",
            d,
            "--email",
            "ciso@kommunen.example",
            "--name",
            "CISO",
            "--role",
            "ciso",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all("ett långt lösenord 123\n".as_bytes())
            .unwrap();
    }
    assert!(child.wait().unwrap().success(), "avvik user add");
    let (code, out, err) = avvik(
        &[
            "token",
            "create",
            "--data",
            d,
            "--user",
            "ciso@kommunen.example",
        ],
        envs,
    );
    assert_eq!(code, 0, "{err}");
    out.lines().last().unwrap().trim().to_string()
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

/// An HTML page as a browser would get it.
pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The form's CSRF token (the hidden `authenticity_token` input).
    pub fn csrf_token(&self) -> String {
        attr_after(&self.body, "name=\"authenticity_token\"", "value")
            .expect("the page has a CSRF token field")
    }
}

/// The value of attribute `attr` in the first tag after `marker`, HTML entities decoded.
pub fn attr_after(html: &str, marker: &str, attr: &str) -> Option<String> {
    let start = html.find(marker)?;
    let tag_end = start + html[start..].find('>')?;
    let tag_start = html[..start].rfind('<')?;
    let tag = &html[tag_start..tag_end];
    let key = format!("{attr}=\"");
    let v = tag.find(&key)? + key.len();
    let end = v + tag[v..].find('"')?;
    Some(html_unescape(&tag[v..end]))
}

/// Decodes the entities askama writes (`&#NN;`, `&amp;`, `&lt;`, `&gt;`, `&quot;`).
pub fn html_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';') else { break };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with('#') => e[1..].parse::<u32>().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A browser-like HTTP session against one server: keeps cookies, does not follow
/// redirects (tests look at each 303).
pub struct WebSession {
    pub base: String,
    client: reqwest::Client,
    pub cookies: std::collections::BTreeMap<String, String>,
}

impl WebSession {
    pub fn new(base: &str) -> Self {
        Self {
            base: base.to_string(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            cookies: Default::default(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn finish(&mut self, req: reqwest::RequestBuilder) -> Page {
        let req = if self.cookies.is_empty() {
            req
        } else {
            req.header(reqwest::header::COOKIE, self.cookie_header())
        };
        let resp = req.send().await.expect("request sent");
        for v in resp.headers().get_all(reqwest::header::SET_COOKIE) {
            let v = v.to_str().unwrap_or("");
            if let Some((name, value)) = v.split(';').next().and_then(|kv| kv.split_once('=')) {
                if v.contains("Max-Age=0") {
                    self.cookies.remove(name.trim());
                } else {
                    self.cookies
                        .insert(name.trim().to_string(), value.trim().to_string());
                }
            }
        }
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap_or_default();
        Page {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let req = self.client.get(format!("{}{}", self.base, path));
        self.finish(req).await
    }

    /// Posts a urlencoded form (repeat a name for several values).
    pub async fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let req = self
            .client
            .post(format!("{}{}", self.base, path))
            .form(fields);
        self.finish(req).await
    }
}

/// `avvik serve` as a child whose log lines are kept for the test to read.
pub struct LoggedServer {
    pub child: Child,
    pub base: String,
    pub lines: Arc<std::sync::Mutex<Vec<String>>>,
}

impl LoggedServer {
    pub fn start(data: &Path, envs: &[(&str, &str)]) -> LoggedServer {
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .env("AVVIK_HTTP__ADDR", "127.0.0.1:0")
            .env("AVVIK_STORE__DATA_DIR", data)
            .env("AVVIK_MAIL__OUTBOX_DIR", data.join("outbox"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("avvik starts");
        let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        for stream in [
            Box::new(stdout) as Box<dyn std::io::Read + Send>,
            Box::new(stderr),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = loop {
            let found = lines.lock().unwrap().iter().find_map(|l| {
                l.find("addr=").map(|i| {
                    l[i + 5..]
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_string()
                })
            });
            if let Some(a) = found {
                break a;
            }
            assert!(Instant::now() < deadline, "server printed no address");
            std::thread::sleep(Duration::from_millis(20));
        };
        let s = LoggedServer {
            child,
            base: format!("http://{addr}"),
            lines,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while blocking_status(&s.base, "/readyz") != Some(200) {
            assert!(Instant::now() < deadline, "server not ready in time");
            std::thread::sleep(Duration::from_millis(25));
        }
        s
    }

    pub fn log(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for LoggedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Stored records (as JSON from an export or the audit API) with their sealed fields
/// opened by the data directory's keys, as the service's readers see them.
pub fn opened(data: &Path, records: &[serde_json::Value]) -> Vec<serde_json::Value> {
    let secret = avvik::secret::Secret::load_or_create(data).expect("the secret key");
    let keys = avvik::privacy::Keyring::open_dir(data, &secret).expect("the data keys");
    records
        .iter()
        .map(
            |v| match serde_json::from_value::<avvik_events::RecordedEvent>(v.clone()) {
                Ok(rec) => serde_json::to_value(keys.opened(&rec)).expect("a record"),
                Err(_) => v.clone(),
            },
        )
        .collect()
}

/// `record` with one character of its sealed ciphertext changed: still valid JSON, the
/// same length, a different record.
pub fn tamper_ciphertext(record: &str) -> String {
    let at = record.find("\"c\":\"").expect("a sealed record") + "\"c\":\"".len();
    let old = record.as_bytes()[at];
    let new = if old == b'A' { 'B' } else { 'A' };
    let mut s = record.to_string();
    s.replace_range(at..at + 1, &new.to_string());
    s
}

/// `GET path` with a bearer token: status and body text.
pub async fn bearer_get(app: &TestApp, token: &str, path: &str) -> (u16, String) {
    let r = app
        .client
        .get(format!("{}{path}", app.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// `GET url` with a bearer token, to a server anywhere (the real binary as a child too).
pub async fn get_authed(url: String, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// `get_authed`, its body as JSON.
pub async fn get_json(url: String, token: &str) -> serde_json::Value {
    get_authed(url, token).await.json().await.unwrap()
}

/// How many files are under `dir`, at any depth.
pub fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|es| {
            es.flatten()
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        count_files(&p)
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}
