//! A real OpenID Connect provider for the OIDC sign-in tests: npm's oidc-provider, run by
//! `tests/oidc/provider.mjs` under Node on a free loopback port, with its users in a JSON
//! file in a temporary directory (re-read on every lookup, so `set_users` takes effect on
//! the next sign-in). Stopped when dropped.
//!
//! Needs `node` on the PATH and `npm ci` of tests/oidc/package.json in
//! `AVVIK_OIDC_PROVIDER_DIR` (default /var/tmp/avvik-npm-oidc); `scripts/test` does both.
//! Nothing is skipped silently: a missing piece fails the test with a message saying how to
//! get it.
//!
//! One confidential client (`client_id`/`client_secret`, client_secret_basic or
//! client_secret_post), authorization code with PKCE S256 (required). Every authorization
//! request shows the provider's login form (`#login`, `#password`, `#sign-in`), with or
//! without `prompt=login`; consent is granted automatically. The id_token carries `sub`,
//! `email`, `email_verified`, `name` and `groups` for `scope=openid email profile groups`.
//! RP-initiated logout at the end_session endpoint submits its own confirmation form and
//! ends at the post_logout_redirect_uri. `set_mode` makes the token endpoint hand out
//! broken id_tokens (see tests/oidc/provider.mjs for the modes).

// Not every test uses every helper.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::json;
use url::Url;

const DIR_DEFAULT: &str = "/var/tmp/avvik-npm-oidc";
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc/provider.mjs");
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// One account at the provider.
#[derive(Debug, Clone)]
pub struct OidcUser {
    pub login: String,
    pub password: String,
    pub sub: String,
    pub email: String,
    pub name: String,
    pub groups: Vec<String>,
}

impl OidcUser {
    /// `login` with sub `sub-<login>`, e-mail `<login>@example.test` and name `<login>`.
    pub fn new(login: &str, password: &str, groups: &[&str]) -> OidcUser {
        OidcUser {
            login: login.to_string(),
            password: password.to_string(),
            sub: format!("sub-{login}"),
            email: format!("{login}@example.test"),
            name: login.to_string(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }
}

/// The running provider. `issuer` is `http://127.0.0.1:<port>` (discovery at
/// `<issuer>/.well-known/openid-configuration`).
pub struct OidcProvider {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    child: Child,
    /// Held open: the provider exits when it closes (this process died without Drop).
    stdin: Option<ChildStdin>,
    users_file: PathBuf,
    log_file: PathBuf,
    _dir: tempfile::TempDir,
}

fn users_json(users: &[OidcUser]) -> String {
    let mut map = serde_json::Map::new();
    for u in users {
        map.insert(
            u.login.clone(),
            json!({
                "password": u.password,
                "sub": u.sub,
                "email": u.email,
                "name": u.name,
                "groups": u.groups,
            }),
        );
    }
    serde_json::to_string_pretty(&serde_json::Value::Object(map)).unwrap()
}

/// Written beside and renamed over, so the provider never reads half a file.
fn write_atomically(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).expect("write the provider's file");
    std::fs::rename(&tmp, path).expect("rename the provider's file");
}

fn provider_dir() -> PathBuf {
    let dir = std::env::var_os("AVVIK_OIDC_PROVIDER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DIR_DEFAULT));
    for pkg in ["oidc-provider", "jose"] {
        let manifest = dir.join("node_modules").join(pkg).join("package.json");
        assert!(
            manifest.is_file(),
            "{pkg} not found at {} — run scripts/test (it runs npm ci for tests/oidc into \
             {DIR_DEFAULT}), or set AVVIK_OIDC_PROVIDER_DIR to the directory where \
             tests/oidc/package.json was installed with npm ci",
            manifest.display()
        );
    }
    dir
}

impl OidcProvider {
    /// Starts the provider on a free loopback port with one client allowed these redirect
    /// and post-logout redirect URIs; returns when it listens (panics after 30 s, with its
    /// log).
    pub fn start(
        users: &[OidcUser],
        redirect_uris: &[String],
        post_logout_redirect_uris: &[String],
    ) -> OidcProvider {
        let install = provider_dir();
        let dir = tempfile::tempdir().expect("temp dir for the OIDC provider");
        let users_file = dir.path().join("users.json");
        write_atomically(&users_file, &users_json(users));
        let client_id = "avvik-test".to_string();
        let client_secret = format!("secret-{}", uuid::Uuid::new_v4().simple());
        let config_file = dir.path().join("config.json");
        let config = json!({
            "port": 0,
            "users_file": users_file,
            "client_id": client_id,
            "client_secret": client_secret,
            "redirect_uris": redirect_uris,
            "post_logout_redirect_uris": post_logout_redirect_uris,
            "exit_with_stdin": true,
        });
        write_atomically(&config_file, &config.to_string());
        let log_file = dir.path().join("provider.log");
        let log = std::fs::File::create(&log_file).expect("provider log file");

        let mut child = match Command::new("node")
            .arg(SCRIPT)
            .arg(&config_file)
            .env("AVVIK_OIDC_PROVIDER_DIR", &install)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
        {
            Ok(child) => child,
            Err(e) => panic!(
                "cannot run node ({e}): the OIDC tests need Node.js on the PATH and oidc-provider \
                 installed in AVVIK_OIDC_PROVIDER_DIR (default {DIR_DEFAULT}) — run scripts/test, \
                 which installs both"
            ),
        };
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("provider stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = tx.send(reader.read_line(&mut line).map(|_| line));
            // Keep draining so the provider never writes into a closed pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });

        let mut provider = OidcProvider {
            issuer: String::new(),
            client_id,
            client_secret,
            child,
            stdin,
            users_file,
            log_file,
            _dir: dir,
        };
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => provider.fail(&format!("reading its stdout failed: {e}")),
            Err(_) => provider.fail("it did not say LISTENING within 30 s"),
        };
        match line.trim_end().strip_prefix("LISTENING ") {
            Some(issuer) if issuer.starts_with("http://127.0.0.1:") => {
                provider.issuer = issuer.to_string();
            }
            _ => provider.fail(&format!(
                "it printed {line:?} instead of LISTENING <issuer>"
            )),
        }
        provider
    }

    fn fail(&mut self, why: &str) -> ! {
        let _ = self.child.kill();
        let status = self.child.wait().ok();
        panic!(
            "the OIDC provider (node {SCRIPT}) did not start: {why}; exit status {status:?}; \
             AVVIK_OIDC_PROVIDER_DIR must hold an npm ci of tests/oidc/package.json (scripts/test \
             does it). Its log:\n{}",
            self.log()
        );
    }

    /// Replaces the users; the provider reads the file on every lookup.
    pub fn set_users(&self, users: &[OidcUser]) {
        write_atomically(&self.users_file, &users_json(users));
    }

    /// `POST /__test/mode`: normal, wrong-nonce, expired, wrong-audience, unknown-key or
    /// rotated-key, for the id_tokens of every token response from now on.
    pub async fn set_mode(&self, mode: &str) {
        let resp = reqwest::Client::new()
            .post(format!("{}/__test/mode", self.issuer))
            .json(&json!({ "mode": mode }))
            .send()
            .await
            .expect("POST /__test/mode to the OIDC provider");
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        assert!(status.is_success(), "set_mode({mode:?}): {status} {body}");
    }

    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer)
    }

    /// The provider's log so far (its stderr: one line per request, errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    pub fn users_file(&self) -> &Path {
        &self.users_file
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// The value of the first `action="…"` of a `<form` in `html`.
fn form_action(html: &str) -> Option<String> {
    let form = html.find("<form")?;
    let rest = &html[form..];
    let end = rest.find('>')?;
    let tag = &rest[..end];
    let start = tag.find("action=\"")? + "action=\"".len();
    let value = &tag[start..];
    let value = &value[..value.find('"')?];
    Some(
        value
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// Signs in at the provider as a browser would: starting at `authorize_url` (the provider's
/// authorization URL, e.g. where the relying party's sign-in route redirected to), follows
/// the provider's redirects and submits its login form once, and returns the first redirect
/// leaving the provider's origin — the `redirect_uri?code=…&state=…&iss=…` URL — without
/// requesting it. `client` needs a cookie store and `reqwest::redirect::Policy::none()`.
/// Panics on a wrong password (the form comes back with 401) or any other surprise.
pub async fn sign_in_at_provider(
    client: &reqwest::Client,
    authorize_url: &str,
    login: &str,
    password: &str,
) -> String {
    let mut url = Url::parse(authorize_url).expect("authorize_url is a URL");
    let provider = origin(&url);
    let mut submitted = false;
    for _ in 0..20 {
        let resp = client
            .get(url.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert_eq!(
            resp.url(),
            &url,
            "sign_in_at_provider: the client followed redirects; build it with \
             reqwest::redirect::Policy::none() and cookie_store(true)"
        );
        let status = resp.status();
        if status.is_redirection() {
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .unwrap_or_else(|| panic!("{status} from {url} without a Location"));
            let next = url.join(location).expect("Location is a URL");
            if origin(&next) != provider {
                return next.to_string();
            }
            url = next;
            continue;
        }
        let body = resp.text().await.unwrap_or_default();
        assert!(
            status.is_success() && body.contains("id=\"sign-in\""),
            "expected the provider's login form at {url}, got {status}:\n{body}"
        );
        assert!(
            !submitted,
            "the provider showed its login form again after signing in as {login:?}:\n{body}"
        );
        let action = form_action(&body)
            .unwrap_or_else(|| panic!("no form action in the login page at {url}:\n{body}"));
        let action = url.join(&action).expect("form action is a URL");
        let resp = client
            .post(action.clone())
            .form(&[("login", login), ("password", password)])
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {action}: {e}"));
        let status = resp.status();
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_string);
        let body = resp.text().await.unwrap_or_default();
        let Some(location) = location.filter(|_| status.is_redirection()) else {
            panic!("signing in as {login:?} at the provider failed: {status}\n{body}");
        };
        submitted = true;
        url = action.join(&location).expect("Location is a URL");
        if origin(&url) != provider {
            return url.to_string();
        }
    }
    panic!("sign_in_at_provider: more than 20 steps, last at {url}");
}
