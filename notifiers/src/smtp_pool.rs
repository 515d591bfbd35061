//! SMTP connections with TCP_NODELAY, reused, at most `pool_max` at once. lettre's own
//! pool (0.11.23) never sets TCP_NODELAY, so every message waits for the server's delayed
//! ACK (about 40 ms on Linux); here lettre still speaks SMTP, over a socket we open and
//! configure ourselves (`AsyncSmtpConnection::connect_with_transport`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::mailer::{SmtpSettings, SmtpTls};

/// An idle connection older than this is closed rather than reused: servers drop idle
/// clients after a minute or so, and a dead connection costs a failed attempt.
const MAX_IDLE: Duration = Duration::from_secs(30);

/// What can go wrong: lettre's SMTP error, or the socket before lettre had it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    #[error("Connection error: {0}")]
    Io(String),
}

impl Error {
    /// The server answered (4xx or 5xx): the connection itself is fine.
    fn is_answer(&self) -> bool {
        matches!(self, Error::Smtp(e) if e.is_permanent() || e.is_transient())
    }
}

/// Plain SMTP or STARTTLS over sockets with TCP_NODELAY.
pub struct NodelayPool {
    host: String,
    port: u16,
    starttls: Option<TlsParameters>,
    credentials: Option<Credentials>,
    timeout: Duration,
    hello: ClientId,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
    slots: Semaphore,
}

impl NodelayPool {
    /// `None` for implicit TLS (SMTPS), which lettre's own transport handles.
    pub fn new(s: &SmtpSettings) -> Result<Option<Self>, Error> {
        let starttls = match s.tls {
            SmtpTls::Tls => return Ok(None),
            SmtpTls::None => None,
            SmtpTls::Starttls => Some(TlsParameters::new(s.host.clone()).map_err(Error::Smtp)?),
        };
        Ok(Some(Self {
            host: s.host.clone(),
            port: s.port,
            starttls,
            credentials: (!s.user.is_empty())
                .then(|| Credentials::new(s.user.clone(), s.password.clone())),
            timeout: s.timeout,
            hello: ClientId::default(),
            idle: Mutex::new(Vec::new()),
            slots: Semaphore::new(s.pool_max.max(1) as usize),
        }))
    }

    /// A new connection: TCP with TCP_NODELAY, greeting and EHLO, STARTTLS and EHLO again
    /// when configured (required, never skipped), AUTH when credentials are set.
    pub async fn connect(&self) -> Result<AsyncSmtpConnection, Error> {
        let tcp = tokio::time::timeout(
            self.timeout,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| io_error(std::io::ErrorKind::TimedOut, "connection timed out"))?
        .map_err(|e| io_error(e.kind(), &e.to_string()))?;
        tcp.set_nodelay(true)
            .map_err(|e| io_error(e.kind(), &e.to_string()))?;
        let mut conn = bounded(self.timeout, async {
            AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello)
                .await
                .map_err(Error::from)
        })
        .await?;
        if let Some(tls) = &self.starttls {
            if !conn.can_starttls() {
                conn.abort().await;
                return Err(io_error(
                    std::io::ErrorKind::Unsupported,
                    "the server does not offer STARTTLS, which mail.smtp.tls = \"starttls\" requires",
                ));
            }
            bounded(self.timeout, async {
                conn.starttls(tls.clone(), &self.hello)
                    .await
                    .map_err(Error::from)
            })
            .await?;
        }
        if let Some(c) = &self.credentials {
            bounded(self.timeout, async {
                conn.auth(DEFAULT_MECHANISMS, c).await.map_err(Error::from)
            })
            .await?;
        }
        Ok(conn)
    }

    fn take_idle(&self) -> Option<AsyncSmtpConnection> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((c, since)) = idle.pop() {
            if since.elapsed() < MAX_IDLE && !c.has_broken() {
                return Some(c);
            }
        }
        None
    }

    fn put_back(&self, c: AsyncSmtpConnection) {
        if !c.has_broken() {
            self.idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((c, Instant::now()));
        }
    }

    /// Sends one message on a reused connection, or a new one. A reused connection that
    /// fails below SMTP (the server closed it while idle) is replaced once; an SMTP answer
    /// (4xx, 5xx) is the result.
    pub async fn send(&self, envelope: &Envelope, message: &[u8]) -> Result<(), Error> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| io_error(std::io::ErrorKind::Other, "the mailer is closed"))?;
        if let Some(mut c) = self.take_idle() {
            match bounded(self.timeout, async {
                c.send(envelope, message).await.map_err(Error::from)
            })
            .await
            {
                Ok(_) => {
                    self.put_back(c);
                    return Ok(());
                }
                Err(e) if e.is_answer() => {
                    self.put_back(c);
                    return Err(e);
                }
                Err(_) => {} // stale: try a new connection
            }
        }
        let mut c = self.connect().await?;
        let r = bounded(self.timeout, async {
            c.send(envelope, message).await.map_err(Error::from)
        })
        .await;
        if r.as_ref().map_or_else(Error::is_answer, |_| true) {
            self.put_back(c);
        }
        r.map(drop)
    }
}

fn io_error(_kind: std::io::ErrorKind, msg: &str) -> Error {
    Error::Io(msg.to_string())
}

/// One SMTP exchange bounded by the per-operation timeout (lettre bounds only the connect
/// of the sockets it opens itself).
async fn bounded<T>(
    timeout: Duration,
    f: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::time::timeout(timeout, f)
        .await
        .map_err(|_| io_error(std::io::ErrorKind::TimedOut, "no answer in time"))?
}
