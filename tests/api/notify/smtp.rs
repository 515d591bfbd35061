//! A small SMTP server on loopback for tests: speaks real SMTP (EHLO/HELO, MAIL, RCPT,
//! DATA with dot-unstuffing, RSET, NOOP, QUIT), keeps what it received, and can be stopped
//! and started again on the same port. In `Stall` mode it takes the message and never
//! answers the end of DATA, like a server that accepted but whose answer never arrived.
//!
//! Started with `start_tls` it protects every connection with TLS (rustls on ring): from
//! the first byte (SMTPS), or by STARTTLS, which it then offers and requires before MAIL.
//! Each message records whether it came over TLS, and failed handshakes are kept.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Read the whole message, record it, then never answer.
    Stall,
}

/// How a TLS sink protects its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// TLS from the first byte (SMTPS; `mail.smtp.tls = "tls"`).
    Implicit,
    /// A plain greeting, then `STARTTLS` (offered, and required before MAIL;
    /// `mail.smtp.tls = "starttls"`).
    StartTls,
}

#[derive(Clone)]
struct TlsSetup {
    mode: TlsMode,
    acceptor: TlsAcceptor,
}

/// A rustls server configuration (ring provider) for a PEM certificate chain and key.
fn acceptor(cert: &Path, key: &Path) -> TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .unwrap_or_else(|e| panic!("certificate {}: {e}", cert.display()));
    let key =
        PrivateKeyDer::from_pem_file(key).unwrap_or_else(|e| panic!("key {}: {e}", key.display()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("certificate and key match");
    TlsAcceptor::from(Arc::new(config))
}

/// One message as the server received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: Vec<u8>,
    /// Whether the message came over TLS.
    pub tls: bool,
    /// The server name the client asked for in the TLS handshake (SNI).
    pub sni: Option<String>,
}

impl Received {
    pub fn parsed(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(&self.data)
            .expect("a parsable message")
    }
    pub fn subject(&self) -> String {
        self.parsed().subject().unwrap_or_default().to_string()
    }
    pub fn message_id(&self) -> String {
        self.parsed().message_id().unwrap_or_default().to_string()
    }
    pub fn text(&self) -> String {
        self.parsed()
            .body_text(0)
            .map(|t| t.into_owned())
            .unwrap_or_default()
    }
    pub fn html(&self) -> String {
        self.parsed()
            .body_html(0)
            .map(|t| t.into_owned())
            .unwrap_or_default()
    }
    pub fn header(&self, name: &str) -> Option<String> {
        let raw = String::from_utf8_lossy(&self.data);
        let prefix = format!("{}:", name.to_ascii_lowercase());
        raw.lines()
            .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
            .map(|l| l[prefix.len()..].trim().to_string())
    }
    pub fn rcpt(&self) -> String {
        self.to.first().cloned().unwrap_or_default()
    }
}

pub struct SmtpSink {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    accept: Option<JoinHandle<()>>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    tls: Option<TlsSetup>,
    /// Why TLS handshakes failed, in order (e.g. the client refused the certificate).
    handshake_errors: Arc<Mutex<Vec<String>>>,
}

async fn bind(port: u16) -> TcpListener {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    // A restarted sink needs the same port back at once.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_reuseaddr(true).expect("reuseaddr");
        match socket.bind(addr).and_then(|()| socket.listen(64)) {
            Ok(l) => return l,
            Err(e) if Instant::now() < deadline => {
                eprintln!("smtp sink: bind {addr}: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("smtp sink cannot bind {addr}: {e}"),
        }
    }
}

impl SmtpSink {
    fn new(port: u16, tls: Option<TlsSetup>) -> Self {
        SmtpSink {
            port,
            received: Arc::default(),
            accept: None,
            conns: Arc::default(),
            tls,
            handshake_errors: Arc::default(),
        }
    }

    pub async fn start(mode: Mode) -> Self {
        let mut s = Self::new(0, None);
        s.listen(mode).await;
        s
    }

    /// Starts with TLS, presenting the PEM certificate (chain) `cert` with the PKCS#8 PEM
    /// `key`. A restart keeps the TLS setup.
    pub async fn start_tls(tls: TlsMode, cert: &Path, key: &Path) -> Self {
        let setup = TlsSetup {
            mode: tls,
            acceptor: acceptor(cert, key),
        };
        let mut s = Self::new(0, Some(setup));
        s.listen(Mode::Normal).await;
        s
    }

    /// A port that was free a moment ago and on which nothing listens now.
    pub async fn closed_port() -> u16 {
        let l = bind(0).await;
        l.local_addr().expect("addr").port()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    async fn listen(&mut self, mode: Mode) {
        let listener = bind(self.port).await;
        self.port = listener.local_addr().expect("addr").port();
        let received = self.received.clone();
        let conns = self.conns.clone();
        let tls = self.tls.clone();
        let handshake_errors = self.handshake_errors.clone();
        self.accept = Some(tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let received = received.clone();
                let tls = tls.clone();
                let handshake_errors = handshake_errors.clone();
                let h = tokio::spawn(async move {
                    let _ = match tls {
                        None => session(stream, mode, received).await,
                        Some(tls) => {
                            tls_session(stream, mode, tls, received, handshake_errors).await
                        }
                    };
                });
                conns.lock().unwrap().push(h);
            }
        }));
    }

    /// Stops listening and drops every open connection.
    pub async fn stop(&mut self) {
        if let Some(a) = self.accept.take() {
            a.abort();
            let _ = a.await;
        }
        let conns: Vec<_> = self.conns.lock().unwrap().drain(..).collect();
        for c in conns {
            c.abort();
            let _ = c.await;
        }
    }

    /// Listens again on the same port, keeping what was received.
    pub async fn restart(&mut self, mode: Mode) {
        self.stop().await;
        self.listen(mode).await;
    }

    /// Starts on a given port (e.g. one from `closed_port`).
    pub async fn start_on(port: u16, mode: Mode) -> Self {
        let mut s = Self::new(port, None);
        s.listen(mode).await;
        s
    }

    pub fn messages(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Why TLS handshakes failed so far (a TLS sink only).
    pub fn handshake_errors(&self) -> Vec<String> {
        self.handshake_errors.lock().unwrap().clone()
    }

    /// Waits until at least `n` TLS handshakes have failed (bounded), then returns why.
    pub async fn wait_for_handshake_errors(&self, timeout: Duration, n: usize) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let e = self.handshake_errors();
            if e.len() >= n || Instant::now() >= deadline {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until `pred` holds for the received messages (bounded), then returns them.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        pred: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.messages();
            if pred(&m) || Instant::now() >= deadline {
                return m;
            }
            // Checking is costly with many messages: poll less often then.
            let pause = 25 + m.len() as u64 / 100;
            tokio::time::sleep(Duration::from_millis(pause.min(2000))).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(a) = self.accept.take() {
            a.abort();
        }
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

fn address(arg: &str) -> String {
    let a = arg.split_once(':').map(|x| x.1).unwrap_or("").trim();
    let a = a.split_whitespace().next().unwrap_or("");
    a.trim_matches(|c| c == '<' || c == '>').to_string()
}

const GREETING: &[u8] = b"220 sink.test ESMTP test sink\r\n";

/// What one connection is at a point of the dialogue.
struct Channel {
    /// Protected by TLS.
    tls: bool,
    sni: Option<String>,
    /// STARTTLS is offered and required before MAIL.
    starttls: bool,
}

/// How a dialogue ended.
enum End {
    /// QUIT, or the client went away.
    Closed,
    /// STARTTLS was accepted: the caller upgrades the stream and starts over.
    StartTls,
}

async fn session(
    stream: TcpStream,
    mode: Mode,
    received: Arc<Mutex<Vec<Received>>>,
) -> std::io::Result<()> {
    let mut s = BufReader::new(stream);
    reply(&mut s, GREETING).await?;
    let plain = Channel {
        tls: false,
        sni: None,
        starttls: false,
    };
    dialogue(&mut s, mode, &plain, &received).await?;
    Ok(())
}

async fn tls_session(
    stream: TcpStream,
    mode: Mode,
    tls: TlsSetup,
    received: Arc<Mutex<Vec<Received>>>,
    handshake_errors: Arc<Mutex<Vec<String>>>,
) -> std::io::Result<()> {
    match tls.mode {
        TlsMode::Implicit => {
            let (stream, channel) = handshake(&tls.acceptor, stream, &handshake_errors).await?;
            let mut s = BufReader::new(stream);
            reply(&mut s, GREETING).await?;
            dialogue(&mut s, mode, &channel, &received).await?;
        }
        TlsMode::StartTls => {
            let mut s = BufReader::new(stream);
            reply(&mut s, GREETING).await?;
            let plain = Channel {
                tls: false,
                sni: None,
                starttls: true,
            };
            if let End::StartTls = dialogue(&mut s, mode, &plain, &received).await? {
                // Anything sent after STARTTLS but before the handshake is an injection.
                if !s.buffer().is_empty() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "plain-text data after STARTTLS",
                    ));
                }
                let (stream, channel) =
                    handshake(&tls.acceptor, s.into_inner(), &handshake_errors).await?;
                // RFC 3207: no new greeting; the client starts again with EHLO.
                let mut s = BufReader::new(stream);
                dialogue(&mut s, mode, &channel, &received).await?;
            }
        }
    }
    Ok(())
}

/// The server side of a TLS handshake; a failure is recorded with its reason.
async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    errors: &Mutex<Vec<String>>,
) -> std::io::Result<(tokio_rustls::server::TlsStream<TcpStream>, Channel)> {
    match acceptor.accept(stream).await {
        Ok(s) => {
            let channel = Channel {
                tls: true,
                sni: s.get_ref().1.server_name().map(str::to_string),
                starttls: false,
            };
            Ok((s, channel))
        }
        Err(e) => {
            errors.lock().unwrap().push(e.to_string());
            Err(e)
        }
    }
}

async fn reply<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
    bytes: &[u8],
) -> std::io::Result<()> {
    s.write_all(bytes).await?;
    s.flush().await
}

async fn dialogue<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
    mode: Mode,
    channel: &Channel,
    received: &Mutex<Vec<Received>>,
) -> std::io::Result<End> {
    let mut from = String::new();
    let mut to = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if s.read_until(b'\n', &mut line).await? == 0 {
            return Ok(End::Closed);
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        let verb = text
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" if channel.starttls => {
                reply(
                    s,
                    b"250-sink.test\r\n250-8BITMIME\r\n250-STARTTLS\r\n250 SMTPUTF8\r\n",
                )
                .await?
            }
            "EHLO" => reply(s, b"250-sink.test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n").await?,
            "HELO" => reply(s, b"250 sink.test\r\n").await?,
            "STARTTLS" if channel.starttls => {
                reply(s, b"220 2.0.0 Ready to start TLS\r\n").await?;
                return Ok(End::StartTls);
            }
            "MAIL" if channel.starttls => {
                reply(s, b"530 5.7.0 Must issue a STARTTLS command first\r\n").await?
            }
            "MAIL" => {
                from = address(&text);
                to.clear();
                reply(s, b"250 2.1.0 OK\r\n").await?;
            }
            "RCPT" => {
                to.push(address(&text));
                reply(s, b"250 2.1.5 OK\r\n").await?;
            }
            "DATA" => {
                reply(s, b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
                let mut data = Vec::new();
                loop {
                    line.clear();
                    if s.read_until(b'\n', &mut line).await? == 0 {
                        return Ok(End::Closed);
                    }
                    if line == b".\r\n" || line == b".\n" {
                        break;
                    }
                    let body = if line.starts_with(b"..") {
                        &line[1..]
                    } else {
                        &line[..]
                    };
                    data.extend_from_slice(body);
                }
                received.lock().unwrap().push(Received {
                    from: from.clone(),
                    to: std::mem::take(&mut to),
                    data,
                    tls: channel.tls,
                    sni: channel.sni.clone(),
                });
                if mode == Mode::Stall {
                    std::future::pending::<()>().await;
                }
                reply(s, b"250 2.0.0 queued\r\n").await?;
            }
            "RSET" => {
                to.clear();
                reply(s, b"250 OK\r\n").await?;
            }
            "NOOP" => reply(s, b"250 OK\r\n").await?,
            "QUIT" => {
                reply(s, b"221 bye\r\n").await?;
                return Ok(End::Closed);
            }
            _ => reply(s, b"502 5.5.2 not implemented\r\n").await?,
        }
    }
}
