//! Reaching the database: the connection settings parsed from the URL, TLS, one connection
//! at a time, the idle read connections, and the store's own tokio runtime that every
//! connection lives on.

use std::future::Future;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::{AsyncMessage, Client, Config, Connection, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_rustls::rustls;

use crate::store::{Result, StoreError};

/// How the connection is protected.
#[derive(Clone)]
pub(crate) enum Tls {
    Plain,
    Rustls(MakeRustlsConnect),
}

/// Where and how to connect, parsed once from the URL. Keeps no copy of the URL, so no
/// message can show the password.
pub(crate) struct Target {
    config: Config,
    tls: Tls,
    /// `user@host:port/dbname`, for messages.
    pub(crate) name: String,
    /// The schema the tables are in, when not the default one.
    pub(crate) schema: Option<String>,
    /// The channel commits notify.
    pub(crate) channel: String,
}

impl Target {
    /// Parses a `postgres://` URL or a `key=value` connection string.
    ///
    /// `sslmode=require`, `verify-ca` and `verify-full` all connect with TLS and check the
    /// server's certificate against the system CA store and its name against the host:
    /// a connection that may be read or altered on the way is no place for a hash chain.
    /// `sslmode=disable` connects in plain text. Without `sslmode` (or with `prefer`), a
    /// loopback host or a Unix socket connects in plain text and any other host with TLS.
    ///
    /// `schema` puts the tables in a schema of their own (`search_path` of every
    /// connection), for a second log in the same database; its commits notify a channel
    /// of their own.
    pub(crate) fn parse(
        url: &str,
        connect_timeout: Duration,
        schema: Option<&str>,
    ) -> Result<Self> {
        let (url, verify) = without_verify_mode(url);
        let mut config = Config::from_str(&url).map_err(|e| {
            StoreError::Storage(format!("the PostgreSQL connection URL is not valid: {e}"))
        })?;
        if let Some(schema) = schema {
            let plain = schema.len() <= 48
                && schema.starts_with(|c: char| c.is_ascii_lowercase())
                && schema
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !plain {
                return Err(StoreError::Storage(format!(
                    "the schema name {schema:?} must be lower-case letters, digits and _"
                )));
            }
            let options = match config.get_options() {
                Some(o) if !o.is_empty() => format!("{o} -c search_path={schema}"),
                _ => format!("-c search_path={schema}"),
            };
            config.options(&options);
        }
        let channel = schema.map_or_else(
            || super::schema::CHANNEL.to_string(),
            |s| format!("{s}_head"),
        );
        config.connect_timeout(connect_timeout);
        if config.get_application_name().is_none() {
            config.application_name("avvik");
        }
        let local = config.get_hosts().iter().all(|h| match h {
            Host::Tcp(name) => is_loopback(name),
            #[cfg(unix)]
            Host::Unix(_) => true,
        }) && config.get_hostaddrs().iter().all(IpAddr::is_loopback);
        let tls = match config.get_ssl_mode() {
            SslMode::Disable => false,
            SslMode::Require => true,
            _ => verify || !local,
        };
        let tls = if tls {
            config.ssl_mode(SslMode::Require);
            Tls::Rustls(MakeRustlsConnect::new(tls_config()?))
        } else {
            config.ssl_mode(SslMode::Disable);
            Tls::Plain
        };
        let name = describe(&config);
        Ok(Self {
            config,
            tls,
            name,
            schema: schema.map(str::to_string),
            channel,
        })
    }

    /// Opens one connection and starts driving it on the current runtime. Notifications
    /// (`LISTEN`) go to `notify` when given.
    pub(crate) async fn connect(
        &self,
        notify: Option<mpsc::UnboundedSender<String>>,
    ) -> Result<Client> {
        let connected = match &self.tls {
            Tls::Plain => self.config.connect(NoTls).await.map(|(client, conn)| {
                tokio::spawn(drive(conn, notify));
                client
            }),
            Tls::Rustls(tls) => self
                .config
                .connect(tls.clone())
                .await
                .map(|(client, conn)| {
                    tokio::spawn(drive(conn, notify));
                    client
                }),
        };
        connected.map_err(|e| {
            StoreError::Storage(format!(
                "could not connect to PostgreSQL at {}: {}",
                self.name,
                error_text(&e)
            ))
        })
    }
}

/// Drives a connection until it closes, handing notifications on.
async fn drive<S, T>(mut conn: Connection<S, T>, notify: Option<mpsc::UnboundedSender<String>>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match std::future::poll_fn(|cx| conn.poll_message(cx)).await {
            Some(Ok(AsyncMessage::Notification(n))) => {
                if let Some(tx) = &notify {
                    let _ = tx.send(n.payload().to_string());
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                tracing::debug!(error = %e, "PostgreSQL connection closed");
                return;
            }
            None => return,
        }
    }
}

/// The URL with `sslmode=verify-full` or `verify-ca` read as `require` (the client library
/// knows only the latter; certificates are verified in every TLS mode), and whether one
/// of them was asked for.
fn without_verify_mode(url: &str) -> (String, bool) {
    let mut verify = false;
    let mut out = url.to_string();
    for mode in ["sslmode=verify-full", "sslmode=verify-ca"] {
        if out.contains(mode) {
            verify = true;
            out = out.replace(mode, "sslmode=require");
        }
    }
    (out, verify)
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `user@host:port/dbname`, without the password.
fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("(default user)");
    let db = config.get_dbname().unwrap_or(user);
    format!("{user}@{host}:{port}/{db}")
}

fn tls_config() -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err(StoreError::Storage(
            "TLS to PostgreSQL needs CA certificates, and none were found in the system store"
                .into(),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Storage(format!("TLS set-up for PostgreSQL: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// An error's text with its cause (the client library's own text is often only "db error").
pub(crate) fn error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e} ({cause})"),
            None => e.to_string(),
        },
    }
}

/// The store's view of whether the database can be reached.
#[derive(Default)]
pub(crate) struct Health {
    degraded: AtomicBool,
}

impl Health {
    pub(crate) fn degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    pub(crate) fn reached(&self) {
        self.degraded.store(false, Ordering::Relaxed);
    }

    pub(crate) fn unreachable(&self) {
        self.degraded.store(true, Ordering::Relaxed);
    }

    /// Maps a client error to `Storage`. An error the server answered with (a SQLSTATE)
    /// means it was reached; anything else (a closed or failed connection) marks the store
    /// degraded.
    pub(crate) fn failed(&self, what: &str, e: &tokio_postgres::Error) -> StoreError {
        if e.as_db_error().is_some() {
            self.reached();
        } else {
            self.unreachable();
        }
        StoreError::Storage(format!("PostgreSQL {what}: {}", error_text(e)))
    }

    /// Waits for `fut` at most `limit`; past it the store is degraded and the caller gets
    /// a `Storage` error, so no call hangs on a database that does not answer.
    pub(crate) async fn within<T>(
        &self,
        limit: Duration,
        what: &str,
        fut: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(limit, fut).await {
            Ok(r) => r,
            Err(_) => {
                self.unreachable();
                Err(StoreError::Storage(format!(
                    "PostgreSQL did not answer within {} s ({what})",
                    limit.as_secs_f32()
                )))
            }
        }
    }
}

/// Idle connections for reads. A read takes one for itself (a walk in a transaction must
/// not share it) and gives it back when done, unless it failed.
pub(crate) struct Pool {
    idle: Mutex<Vec<Client>>,
    max_idle: usize,
}

impl Pool {
    pub(crate) fn new(max_idle: usize) -> Self {
        Self {
            idle: Mutex::new(Vec::new()),
            max_idle: max_idle.max(1),
        }
    }

    pub(crate) fn take(&self) -> Option<Client> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(c) = idle.pop() {
            if !c.is_closed() {
                return Some(c);
            }
        }
        None
    }

    pub(crate) fn give_back(&self, client: Client) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if !client.is_closed() && idle.len() < self.max_idle {
            idle.push(client);
        }
    }

    pub(crate) fn clear(&self) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// The store's own single-threaded tokio runtime, on a thread of its own. Every
/// connection is driven there, so the synchronous API can wait for a query from any
/// thread, a tokio worker of the caller's runtime included: it hands the query over and
/// blocks on a plain channel, never entering a runtime itself. (The `postgres` crate's
/// synchronous client starts a runtime per call and panics on a tokio worker thread.)
pub(crate) struct Io {
    handle: tokio::runtime::Handle,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Io {
    pub(crate) fn start() -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = rt.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("avvik-postgres".into())
            .spawn(move || {
                rt.block_on(async {
                    let _ = stopped.await;
                });
                // Dropping the runtime ends every task and closes every connection.
                drop(rt);
            })?;
        Ok(Self {
            handle,
            stop: Mutex::new(Some(stop)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Runs `fut` on the store's runtime and waits for it, from any thread. Never call it
    /// from a task on the store's own runtime.
    pub(crate) fn block_on<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().map_err(|_| StoreError::Closed)?
    }

    /// Runs `fut` on the store's runtime; the answer can be awaited on any runtime.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T>> + Send + 'static,
    ) -> impl Future<Output = Result<T>> + Send + 'static {
        let task = self.handle.spawn(fut);
        async move { task.await.map_err(|_| StoreError::Closed)? }
    }

    pub(crate) fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        self.handle.spawn(fut);
    }

    /// Ends the runtime and waits until its thread is gone (its connections closed).
    pub(crate) fn stop(&self) {
        if let Some(stop) = self.stop.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_only_on_loopback_unless_asked() {
        let t = Duration::from_secs(1);
        let plain = |url: &str| matches!(Target::parse(url, t, None).unwrap().tls, Tls::Plain);
        assert!(plain("postgres://avvik:pw@127.0.0.1:5432/avvik"));
        assert!(plain("postgres://avvik:pw@localhost/avvik"));
        assert!(plain("postgres://avvik:pw@[::1]:5432/avvik"));
        assert!(plain(
            "postgres://avvik@db.kommunen.example/avvik?sslmode=disable"
        ));
        // The system store may be empty in a build container; then TLS refuses with a
        // message instead of connecting in plain text.
        for url in [
            "postgres://avvik@db.kommunen.example/avvik",
            "postgres://avvik@127.0.0.1/avvik?sslmode=require",
            "postgres://avvik@127.0.0.1/avvik?sslmode=verify-full",
            "host=127.0.0.1 user=avvik sslmode=verify-ca",
        ] {
            match Target::parse(url, t, None) {
                Ok(target) => assert!(matches!(target.tls, Tls::Rustls(_)), "{url}"),
                Err(StoreError::Storage(m)) => assert!(m.contains("CA certificates"), "{m}"),
                Err(e) => panic!("{url}: {e}"),
            }
        }
    }

    #[test]
    fn messages_name_the_target_but_never_the_password() {
        let t = Duration::from_secs(1);
        let target =
            Target::parse("postgres://avvik:s3cret@127.0.0.1:5433/events", t, None).unwrap();
        assert_eq!(target.name, "avvik@127.0.0.1:5433/events");
        let err = Target::parse("postgres://avvik:s3cret@127.0.0.1:notaport/x", t, None)
            .err()
            .expect("bad port");
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
}
