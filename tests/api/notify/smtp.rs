//! A small SMTP server on loopback for tests: speaks real SMTP (EHLO/HELO, MAIL, RCPT,
//! DATA with dot-unstuffing, RSET, NOOP, QUIT), keeps what it received, and can be stopped
//! and started again on the same port. In `Stall` mode it takes the message and never
//! answers the end of DATA, like a server that accepted but whose answer never arrived.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Read the whole message, record it, then never answer.
    Stall,
}

/// One message as the server received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: Vec<u8>,
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
    pub async fn start(mode: Mode) -> Self {
        let mut s = SmtpSink {
            port: 0,
            received: Arc::default(),
            accept: None,
            conns: Arc::default(),
        };
        s.listen(mode).await;
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
        self.accept = Some(tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let received = received.clone();
                let h = tokio::spawn(async move {
                    let _ = session(stream, mode, received).await;
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
        let mut s = SmtpSink {
            port,
            received: Arc::default(),
            accept: None,
            conns: Arc::default(),
        };
        s.listen(mode).await;
        s
    }

    pub fn messages(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
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

async fn session(
    stream: TcpStream,
    mode: Mode,
    received: Arc<Mutex<Vec<Received>>>,
) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    w.write_all(b"220 sink.test ESMTP test sink\r\n").await?;
    let mut from = String::new();
    let mut to = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        let verb = text
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => {
                w.write_all(b"250-sink.test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
                    .await?
            }
            "HELO" => w.write_all(b"250 sink.test\r\n").await?,
            "MAIL" => {
                from = address(&text);
                to.clear();
                w.write_all(b"250 2.1.0 OK\r\n").await?;
            }
            "RCPT" => {
                to.push(address(&text));
                w.write_all(b"250 2.1.5 OK\r\n").await?;
            }
            "DATA" => {
                w.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let mut data = Vec::new();
                loop {
                    line.clear();
                    if r.read_until(b'\n', &mut line).await? == 0 {
                        return Ok(());
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
                });
                if mode == Mode::Stall {
                    std::future::pending::<()>().await;
                }
                w.write_all(b"250 2.0.0 queued\r\n").await?;
            }
            "RSET" => {
                to.clear();
                w.write_all(b"250 OK\r\n").await?;
            }
            "NOOP" => w.write_all(b"250 OK\r\n").await?,
            "QUIT" => {
                w.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => w.write_all(b"502 5.5.2 not implemented\r\n").await?,
        }
    }
}
