//! The IMAP collector: polls the configured mailbox (IDLE when the server offers it),
//! hands each message to the intake pipeline, and only after its outcome is durable moves
//! it to the processed folder (or flags it `$AvvikProcessed`). A crash in between leaves
//! the message in place; the next pass finds it again and the pipeline calls it a
//! duplicate, so every message is handled exactly once.
//!
//! `poll_once` is one connection and one pass, for tests; `spawn` runs the loop with
//! reconnects and back-off until shutdown. The password is only ever sent to the server.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::TryStreamExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::rustls;

use super::record::Source;
use super::{Intake, IntakeResult};
use crate::config::{ImapConfig, ImapMark, TlsMode};

/// The keyword that marks a handled message in `mark = "flag"` mode.
pub const PROCESSED_KEYWORD: &str = "$AvvikProcessed";
/// Longest wait for one IMAP command (IDLE waits are separate).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// Most messages handled in one pass (the rest in the next).
const PASS_LIMIT: usize = 500;
/// Longest back-off between failed connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// A plain or TLS connection to the IMAP server.
#[derive(Debug)]
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

type Session = async_imap::Session<Conn>;

#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    #[error("IMAP: {0}")]
    Imap(#[from] async_imap::error::Error),
    #[error("connecting to the IMAP server: {0}")]
    Connect(#[source] io::Error),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("the IMAP server did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the IMAP server: {0}")]
    Server(String),
}

/// What the server offers that the collector uses.
#[derive(Debug, Clone, Copy, Default)]
struct Caps {
    idle: bool,
    mv: bool,
    uidplus: bool,
}

/// One pass: the messages handled, and those left for the next pass, by UID.
#[derive(Debug, Default)]
pub struct PollReport {
    pub handled: Vec<(u32, IntakeResult)>,
    /// Messages the pipeline could not record now (they stay in the folder).
    pub deferred: Vec<(u32, String)>,
}

#[derive(Clone)]
pub struct ImapCollector {
    intake: Arc<Intake>,
    cfg: ImapConfig,
}

async fn timed<F: std::future::Future>(f: F) -> Result<F::Output, CollectorError> {
    tokio::time::timeout(COMMAND_TIMEOUT, f)
        .await
        .map_err(|_| CollectorError::Timeout(COMMAND_TIMEOUT))
}

/// Waits until shutdown is asked for (or its sender is gone).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

fn tls_config() -> Result<Arc<rustls::ClientConfig>, CollectorError> {
    let mut roots = rustls::RootCertStore::empty();
    let loaded = rustls_native_certs::load_native_certs();
    for cert in loaded.certs {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err(CollectorError::Tls(
            "no CA certificates found in the system store".into(),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CollectorError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

async fn tls_wrap(tcp: TcpStream, host: &str) -> Result<Conn, CollectorError> {
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| CollectorError::Tls(format!("{host}: {e}")))?;
    let connector = tokio_rustls::TlsConnector::from(tls_config()?);
    let stream = timed(connector.connect(name, tcp))
        .await?
        .map_err(|e| CollectorError::Tls(e.to_string()))?;
    Ok(Conn::Tls(Box::new(stream)))
}

impl ImapCollector {
    pub fn new(intake: Arc<Intake>, cfg: ImapConfig) -> Self {
        Self { intake, cfg }
    }

    /// Connects, logs in, and reads the capabilities.
    async fn connect(&self) -> Result<(Session, Caps), CollectorError> {
        connect_imap(&self.cfg).await
    }
}

/// For `avvik doctor`: connects, logs in, selects the folder and logs out; reads nothing.
pub async fn check_login(cfg: &ImapConfig) -> Result<(), CollectorError> {
    let (mut session, _) = connect_imap(cfg).await?;
    let selected = timed(session.select(&cfg.folder)).await?;
    let _ = timed(session.logout()).await;
    selected.map(drop).map_err(CollectorError::from)
}

async fn connect_imap(cfg: &ImapConfig) -> Result<(Session, Caps), CollectorError> {
    {
        let tcp = timed(TcpStream::connect((cfg.host.as_str(), cfg.port)))
            .await?
            .map_err(CollectorError::Connect)?;
        let conn = match cfg.tls {
            TlsMode::Tls => tls_wrap(tcp, &cfg.host).await?,
            TlsMode::None | TlsMode::Starttls => Conn::Plain(tcp),
        };
        let mut client = async_imap::Client::new(conn);
        let greeting = timed(client.read_response()).await?.map_err(|e| {
            CollectorError::Connect(io::Error::new(e.kind(), format!("greeting: {e}")))
        })?;
        if greeting.is_none() {
            return Err(CollectorError::Server("closed before greeting".into()));
        }
        if cfg.tls == TlsMode::Starttls {
            timed(client.run_command_and_check_ok("STARTTLS", None)).await??;
            let Conn::Plain(tcp) = client.into_inner() else {
                return Err(CollectorError::Tls("STARTTLS on a TLS connection".into()));
            };
            client = async_imap::Client::new(tls_wrap(tcp, &cfg.host).await?);
        }
        let mut session = timed(client.login(&cfg.user, &cfg.password))
            .await?
            .map_err(|(e, _)| e)?;
        let caps = timed(session.capabilities()).await??;
        let caps = Caps {
            idle: caps.has_str("IDLE"),
            mv: caps.has_str("MOVE"),
            uidplus: caps.has_str("UIDPLUS"),
        };
        if cfg.mark == ImapMark::Move {
            // Fails harmlessly when the folder exists; a real problem shows at the move.
            if let Ok(Err(e)) = timed(session.create(&cfg.processed_folder)).await {
                tracing::debug!(error = %e, "IMAP CREATE of the processed folder");
            }
        }
        Ok((session, caps))
    }
}

impl ImapCollector {
    /// One connection, one pass over the folder.
    pub async fn poll_once(&self) -> Result<PollReport, CollectorError> {
        let (mut session, caps) = self.connect().await?;
        let report = self.pass(&mut session, caps).await;
        let _ = timed(session.logout()).await;
        report
    }

    /// Handles every waiting message (up to `PASS_LIMIT`), oldest first.
    async fn pass(&self, session: &mut Session, caps: Caps) -> Result<PollReport, CollectorError> {
        let cfg = &self.cfg;
        let mailbox = timed(session.select(&cfg.folder)).await??;
        let query = match cfg.mark {
            ImapMark::Move => "UNDELETED".to_string(),
            ImapMark::Flag => {
                let may = mailbox.permanent_flags.iter().any(|f| {
                    matches!(f, async_imap::types::Flag::MayCreate)
                        || matches!(f, async_imap::types::Flag::Custom(k) if k == PROCESSED_KEYWORD)
                });
                if !may {
                    return Err(CollectorError::Server(format!(
                        "the folder does not allow the keyword {PROCESSED_KEYWORD}; use mark = \"move\""
                    )));
                }
                format!("UNDELETED UNKEYWORD {PROCESSED_KEYWORD}")
            }
        };
        let mut uids: Vec<u32> = timed(session.uid_search(&query))
            .await??
            .into_iter()
            .collect();
        uids.sort_unstable();
        uids.truncate(PASS_LIMIT);
        let mut report = PollReport::default();
        if uids.is_empty() {
            return Ok(report);
        }
        let set = uids
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let sizes: HashMap<u32, u32> = {
            let fetches: Vec<async_imap::types::Fetch> = timed(async {
                session
                    .uid_fetch(&set, "(UID RFC822.SIZE)")
                    .await?
                    .try_collect()
                    .await
            })
            .await??;
            fetches
                .iter()
                .filter_map(|f| Some((f.uid?, f.size?)))
                .collect()
        };
        let whole_limit = self
            .intake
            .limits()
            .max_message_bytes
            .saturating_mul(super::UPLOAD_FACTOR);
        for uid in uids {
            let Some(size) = sizes.get(&uid).map(|s| *s as usize) else {
                // Gone meanwhile (expunged by someone else).
                continue;
            };
            let headers_only = size > whole_limit;
            let item = if headers_only {
                "(UID BODY.PEEK[HEADER])"
            } else {
                "(UID BODY.PEEK[])"
            };
            let fetches: Vec<async_imap::types::Fetch> = timed(async {
                session
                    .uid_fetch(uid.to_string(), item)
                    .await?
                    .try_collect()
                    .await
            })
            .await??;
            let Some(fetch) = fetches.iter().find(|f| f.uid == Some(uid)) else {
                continue;
            };
            let bytes = if headers_only {
                fetch.header()
            } else {
                fetch.body()
            }
            .unwrap_or_default()
            .to_vec();
            drop(fetches);
            let processed = if headers_only {
                self.intake
                    .process_headers_only(bytes, size, Source::Imap)
                    .await
            } else {
                self.intake.process(bytes, Source::Imap).await
            };
            let result = match processed {
                Ok(r) => r,
                Err(e) => {
                    // Not recorded: leave it for the next pass, go on with the others.
                    metrics::counter!("avvik_intake_failures_total", "source" => "imap")
                        .increment(1);
                    tracing::warn!(uid, error = %e, "IMAP message not recorded; will retry");
                    report.deferred.push((uid, e.to_string()));
                    continue;
                }
            };
            // The outcome is durable: now the message may leave the inbox.
            self.mark(session, caps, uid).await?;
            report.handled.push((uid, result));
        }
        // Unilateral server responses are not needed; keep the channel from filling.
        while session.unsolicited_responses.try_recv().is_ok() {}
        Ok(report)
    }

    async fn mark(
        &self,
        session: &mut Session,
        caps: Caps,
        uid: u32,
    ) -> Result<(), CollectorError> {
        let uid_s = uid.to_string();
        let folder = &self.cfg.processed_folder;
        match self.cfg.mark {
            ImapMark::Flag => {
                timed(async {
                    session
                        .uid_store(&uid_s, format!("+FLAGS.SILENT ({PROCESSED_KEYWORD})"))
                        .await?
                        .try_collect::<Vec<_>>()
                        .await
                })
                .await??;
            }
            ImapMark::Move if caps.mv => {
                timed(session.uid_mv(&uid_s, folder)).await??;
            }
            ImapMark::Move => {
                timed(session.uid_copy(&uid_s, folder)).await??;
                timed(async {
                    session
                        .uid_store(&uid_s, "+FLAGS.SILENT (\\Deleted)")
                        .await?
                        .try_collect::<Vec<_>>()
                        .await
                })
                .await??;
                if caps.uidplus {
                    timed(async {
                        session
                            .uid_expunge(&uid_s)
                            .await?
                            .try_collect::<Vec<_>>()
                            .await
                    })
                    .await??;
                } else {
                    timed(async { session.expunge().await?.try_collect::<Vec<_>>().await })
                        .await??;
                }
            }
        }
        Ok(())
    }

    /// Waits for new mail (IDLE) or the interval; `None` on shutdown.
    async fn wait(
        &self,
        session: Session,
        caps: Caps,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Option<Session>, CollectorError> {
        let interval = Duration::from_secs(self.cfg.interval_s.max(1));
        if !(caps.idle && self.cfg.idle) {
            tokio::select! {
                _ = stopped(shutdown) => return Ok(None),
                _ = tokio::time::sleep(interval) => return Ok(Some(session)),
            }
        }
        let mut idle = session.idle();
        timed(idle.init()).await??;
        let (waiting, interrupt) = idle.wait_with_timeout(interval);
        let woke = tokio::select! {
            _ = stopped(shutdown) => None,
            r = waiting => Some(r),
        };
        drop(interrupt);
        match woke {
            None => Ok(None),
            Some(r) => {
                r?;
                Ok(Some(timed(idle.done()).await??))
            }
        }
    }

    /// Runs until shutdown: connect, pass, wait, pass, …; reconnects with back-off.
    pub fn spawn(self, mut shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let host = self.cfg.host.clone();
            let folder = self.cfg.folder.clone();
            tokio::select! {
                _ = stopped(&mut shutdown) => return,
                _ = self.intake.ready() => {}
            }
            tracing::info!(%host, %folder, "IMAP collector started");
            let mut backoff = Duration::from_secs(1);
            'connect: loop {
                if *shutdown.borrow() {
                    break;
                }
                let failure = match self.connect().await {
                    Ok((mut session, caps)) => loop {
                        match self.pass(&mut session, caps).await {
                            Ok(r) => {
                                backoff = Duration::from_secs(1);
                                if !r.handled.is_empty() || !r.deferred.is_empty() {
                                    tracing::debug!(
                                        handled = r.handled.len(),
                                        deferred = r.deferred.len(),
                                        "IMAP pass done"
                                    );
                                }
                            }
                            Err(e) => break e,
                        }
                        session = match self.wait(session, caps, &mut shutdown).await {
                            Ok(Some(s)) => s,
                            Ok(None) => break 'connect,
                            Err(e) => break e,
                        };
                    },
                    Err(e) => e,
                };
                metrics::counter!("avvik_intake_failures_total", "source" => "imap").increment(1);
                tracing::warn!(error = %failure, retry_in_s = backoff.as_secs(), "IMAP collector: will reconnect");
                tokio::select! {
                    _ = stopped(&mut shutdown) => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            tracing::info!("IMAP collector stopped");
        })
    }
}
