//! Delivery: builds the MIME message (text + HTML, with inline images as a
//! `multipart/related` part when there are any; Message-ID, Auto-Submitted) and hands it
//! to the one transport this process uses: a pooled lettre SMTP transport, lettre's file
//! transport (.eml files), or lettre's stub transport in tests.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::PoolConfig;
use lettre::transport::stub::AsyncStubTransport;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use uuid::Uuid;

use crate::content::Rendered;

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text; the configuration allows this only for a loopback host.
    None,
    /// Connect in plain text, then require STARTTLS.
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
}

#[derive(Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// Empty: no authentication.
    pub user: String,
    pub password: String,
    /// Per network operation (connect, each command and answer).
    pub timeout: Duration,
    /// Connections kept in the pool at most.
    pub pool_max: u32,
}

impl fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("timeout", &self.timeout)
            .field("pool_max", &self.pool_max)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub enum TransportSettings {
    /// Write each e-mail as an .eml file into `dir` (nothing leaves the machine).
    File {
        dir: PathBuf,
    },
    Smtp(SmtpSettings),
}

#[derive(Debug, Clone)]
pub struct MailerSettings {
    pub transport: TransportSettings,
    /// Sender of every e-mail.
    pub from: String,
    pub reply_to: Option<String>,
}

/// One e-mail to one recipient.
#[derive(Debug, Clone)]
pub struct OutgoingEmail {
    pub to: String,
    /// `<…@…>`, derived from the notice id so a re-sent notice keeps its Message-ID.
    pub message_id: String,
    pub rendered: Rendered,
}

#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    #[error("`{0}` is not a usable sender address")]
    From(String),
    #[error("`{0}` is not a usable Reply-To address")]
    ReplyTo(String),
    #[error("cannot create the outbox directory {path}: {source}")]
    OutboxDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("SMTP settings: {0}")]
    Smtp(String),
}

/// Why one delivery attempt failed. The text goes into `NotificationFailed` events and
/// logs, so it never holds credentials (lettre's errors carry the server's reply only).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("the e-mail could not be built: {0}")]
    Build(String),
    #[error("{0}")]
    Transport(String),
    #[error("no answer from the mail server within {0} s")]
    Timeout(u64),
}

/// `Auto-Submitted: auto-generated` (RFC 3834): tells autoresponders and mailing lists
/// that no human sent this, so out-of-office replies do not loop back.
#[derive(Debug, Clone)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }
    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".to_string())
    }
}

/// Microsoft's equivalent of Auto-Submitted for Exchange/Outlook, which most
/// municipalities run.
#[derive(Debug, Clone)]
struct AutoResponseSuppress;

impl Header for AutoResponseSuppress {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("X-Auto-Response-Suppress")
    }
    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoResponseSuppress)
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "All".to_string())
    }
}

enum Transport {
    /// Plain SMTP and STARTTLS: our sockets (TCP_NODELAY), lettre's SMTP.
    Nodelay(crate::smtp_pool::NodelayPool),
    /// SMTPS (TLS from the first byte): lettre's own pooled transport.
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    File(AsyncFileTransport<Tokio1Executor>),
    Stub(AsyncStubTransport),
}

/// Sends e-mail. Create one per process and share it: the SMTP pool lives inside.
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
    reply_to: Option<Mailbox>,
    /// Bound on one whole delivery, on top of lettre's per-operation timeout, so a server
    /// that trickles bytes cannot hold a delivery slot for ever.
    overall_timeout: Duration,
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.transport {
            Transport::Nodelay(_) | Transport::Smtp(_) => "smtp",
            Transport::File(_) => "file",
            Transport::Stub(_) => "stub",
        };
        f.debug_struct("Mailer")
            .field("transport", &kind)
            .field("from", &self.from.to_string())
            .finish()
    }
}

/// The Message-ID for a notice: stable for the notice id, in the sender's domain.
pub fn message_id_for(notice_id: Uuid, from: &str) -> String {
    let domain = from
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('>').trim())
        .filter(|d| !d.is_empty())
        .unwrap_or("avvik.invalid");
    format!("<{notice_id}@{domain}>")
}

fn mailbox(s: &str) -> Option<Mailbox> {
    s.trim().parse::<Mailbox>().ok()
}

/// An error's text for an event or a log line: one line, bounded.
/// An error as one line for logs and events: control characters blanked, a segment that
/// lettre repeats ("Connection error: Connection error: …") said once, at most 500 chars.
fn describe(e: &dyn fmt::Display) -> String {
    let text = e.to_string();
    let mut parts: Vec<&str> = text.split(": ").collect();
    parts.dedup();
    parts
        .join(": ")
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(500)
        .collect()
}

impl Mailer {
    /// Builds the transport. Needs a Tokio runtime (the SMTP pool starts a task).
    pub fn new(settings: &MailerSettings) -> Result<Self, MailerError> {
        let from =
            mailbox(&settings.from).ok_or_else(|| MailerError::From(settings.from.clone()))?;
        let reply_to = match settings.reply_to.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(r) => Some(mailbox(r).ok_or_else(|| MailerError::ReplyTo(r.to_string()))?),
        };
        let (transport, per_op) = match &settings.transport {
            TransportSettings::File { dir } => {
                std::fs::create_dir_all(dir).map_err(|source| MailerError::OutboxDir {
                    path: dir.clone(),
                    source,
                })?;
                (
                    Transport::File(AsyncFileTransport::new(dir)),
                    Duration::from_secs(30),
                )
            }
            TransportSettings::Smtp(s) => {
                let pool = crate::smtp_pool::NodelayPool::new(s)
                    .map_err(|e| MailerError::Smtp(describe(&e)))?;
                match pool {
                    Some(p) => (Transport::Nodelay(p), s.timeout),
                    None => (Transport::Smtp(smtp_transport(s)?), s.timeout),
                }
            }
        };
        Ok(Self {
            transport,
            from,
            reply_to,
            // Connect, EHLO, (STARTTLS, AUTH), MAIL, RCPT, DATA, end of data: a handful of
            // round trips, each bounded by `per_op` inside lettre.
            overall_timeout: per_op.saturating_mul(4).max(Duration::from_secs(1)),
        })
    }

    /// A mailer on lettre's own pooled SMTP transport, whatever the TLS mode: what avvik
    /// used before its sockets set TCP_NODELAY. Kept for the delivery benchmark's
    /// comparison.
    pub fn with_lettre_pool(settings: &MailerSettings) -> Result<Self, MailerError> {
        let mut m = Self::new(&MailerSettings {
            transport: TransportSettings::File {
                dir: std::env::temp_dir(),
            },
            ..settings.clone()
        })?;
        let TransportSettings::Smtp(s) = &settings.transport else {
            return Err(MailerError::Smtp("not an SMTP transport".into()));
        };
        m.transport = Transport::Smtp(smtp_transport(s)?);
        m.overall_timeout = s.timeout.saturating_mul(4).max(Duration::from_secs(1));
        Ok(m)
    }

    /// Opens a connection as a delivery would (EHLO, STARTTLS, AUTH) and closes it again,
    /// sending nothing. For `avvik doctor`.
    pub async fn check_connection(&self) -> Result<String, SendError> {
        match &self.transport {
            Transport::Nodelay(p) => {
                let attempt = async {
                    let mut c = p
                        .connect()
                        .await
                        .map_err(|e| SendError::Transport(describe(&e)))?;
                    let info = c.server_info().to_string();
                    let encrypted = c.is_encrypted();
                    let _ = c.quit().await;
                    Ok(format!(
                        "{}{}",
                        describe(&info),
                        if encrypted { " (TLS)" } else { "" }
                    ))
                };
                match tokio::time::timeout(self.overall_timeout, attempt).await {
                    Ok(r) => r,
                    Err(_) => Err(SendError::Timeout(self.overall_timeout.as_secs())),
                }
            }
            Transport::Smtp(t) => {
                match tokio::time::timeout(self.overall_timeout, t.test_connection()).await {
                    Ok(Ok(true)) => Ok("connected (TLS)".into()),
                    Ok(Ok(false)) => Err(SendError::Transport(
                        "the server did not answer NOOP".into(),
                    )),
                    Ok(Err(e)) => Err(SendError::Transport(describe(&e))),
                    Err(_) => Err(SendError::Timeout(self.overall_timeout.as_secs())),
                }
            }
            Transport::File(_) => Ok("file transport: nothing to connect to".into()),
            Transport::Stub(_) => Ok("stub transport".into()),
        }
    }

    /// A mailer that records messages instead of sending them (unit tests); `ok: false`
    /// makes every send fail.
    pub fn stub(from: &str, ok: bool) -> Result<Self, MailerError> {
        let from = mailbox(from).ok_or_else(|| MailerError::From(from.to_string()))?;
        let stub = if ok {
            AsyncStubTransport::new_ok()
        } else {
            AsyncStubTransport::new_error()
        };
        Ok(Self {
            transport: Transport::Stub(stub),
            from,
            reply_to: None,
            overall_timeout: Duration::from_secs(5),
        })
    }

    /// What the stub transport recorded: (recipients, raw message).
    pub async fn stub_messages(&self) -> Vec<(Vec<String>, String)> {
        match &self.transport {
            Transport::Stub(s) => s
                .messages()
                .await
                .into_iter()
                .map(|(env, raw)| (env.to().iter().map(|a| a.to_string()).collect(), raw))
                .collect(),
            _ => Vec::new(),
        }
    }

    pub fn from_address(&self) -> String {
        self.from.email.to_string()
    }

    /// The full MIME message for one recipient.
    pub fn message(&self, email: &OutgoingEmail) -> Result<Message, SendError> {
        let to = mailbox(&email.to)
            .ok_or_else(|| SendError::Build(format!("`{}` is not an e-mail address", email.to)))?;
        let mut b = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.rendered.subject.clone())
            .message_id(Some(email.message_id.clone()))
            .date_now()
            .user_agent("avvik".to_string())
            .header(AutoSubmitted)
            .header(AutoResponseSuppress);
        if let Some(r) = &self.reply_to {
            b = b.reply_to(r.clone());
        }
        b.multipart(body(&email.rendered)?)
            .map_err(|e| SendError::Build(describe(&e)))
    }

    /// One delivery attempt. `Ok` means the server (or the file system) took the message.
    pub async fn send(&self, email: &OutgoingEmail) -> Result<(), SendError> {
        let msg = self.message(email)?;
        let attempt = async {
            match &self.transport {
                Transport::Nodelay(p) => p
                    .send(msg.envelope(), &msg.formatted())
                    .await
                    .map_err(|e| SendError::Transport(describe(&e))),
                Transport::Smtp(t) => t
                    .send(msg)
                    .await
                    .map(drop)
                    .map_err(|e| SendError::Transport(describe(&e))),
                Transport::File(t) => t
                    .send(msg)
                    .await
                    .map(drop)
                    .map_err(|e| SendError::Transport(describe(&e))),
                Transport::Stub(t) => t
                    .send(msg)
                    .await
                    .map(drop)
                    .map_err(|e| SendError::Transport(describe(&e))),
            }
        };
        match tokio::time::timeout(self.overall_timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(SendError::Timeout(self.overall_timeout.as_secs())),
        }
    }
}

/// `multipart/alternative` of the text and the HTML; with images, the HTML goes into a
/// `multipart/related` together with one inline part per image (Content-ID, filename), so
/// mail clients show them where the HTML says `cid:…` and nowhere else.
fn body(r: &crate::content::Rendered) -> Result<MultiPart, SendError> {
    if r.images.is_empty() {
        return Ok(MultiPart::alternative_plain_html(
            r.text.clone(),
            r.html.clone(),
        ));
    }
    let mut related = MultiPart::related().singlepart(SinglePart::html(r.html.clone()));
    for img in &r.images {
        let content_type = ContentType::parse(&img.content_type).map_err(|e| {
            SendError::Build(format!(
                "image {}: content type `{}`: {}",
                img.filename,
                img.content_type,
                describe(&e)
            ))
        })?;
        related = related.singlepart(
            Attachment::new_inline_with_name(img.content_id.clone(), img.filename.clone())
                .body(img.body.clone(), content_type),
        );
    }
    Ok(MultiPart::alternative()
        .singlepart(SinglePart::plain(r.text.clone()))
        .multipart(related))
}

fn smtp_transport(s: &SmtpSettings) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailerError> {
    let smtp_err = |e: lettre::transport::smtp::Error| MailerError::Smtp(describe(&e));
    let builder = match s.tls {
        SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host),
        SmtpTls::Starttls => {
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&s.host).map_err(smtp_err)?
        }
        SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&s.host).map_err(smtp_err)?,
    };
    let mut builder = builder
        .port(s.port)
        .timeout(Some(s.timeout))
        .pool_config(PoolConfig::new().max_size(s.pool_max.max(1)));
    if !s.user.is_empty() {
        builder = builder.credentials(Credentials::new(s.user.clone(), s.password.clone()));
    }
    Ok(builder.build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::{render, NoticeContent};

    fn email() -> OutgoingEmail {
        OutgoingEmail {
            to: "styrelse@kommunen.example".into(),
            message_id: message_id_for(Uuid::nil(), "avvik@kommunen.example"),
            rendered: render(&NoticeContent::Test {
                sent_at: "2026-03-27 kl. 10:00".into(),
            })
            .unwrap(),
        }
    }

    #[tokio::test]
    async fn builds_multipart_with_message_id_and_auto_submitted() {
        let m = Mailer::stub("avvik@kommunen.example", true).unwrap();
        m.send(&email()).await.unwrap();
        let sent = m.stub_messages().await;
        assert_eq!(sent.len(), 1);
        let (to, raw) = &sent[0];
        assert_eq!(to, &["styrelse@kommunen.example".to_string()]);
        assert!(
            raw.contains("Message-ID: <00000000-0000-0000-0000-000000000000@kommunen.example>"),
            "{raw}"
        );
        assert!(raw.contains("Auto-Submitted: auto-generated"));
        assert!(raw.contains("X-Auto-Response-Suppress: All"));
        assert!(raw.contains("multipart/alternative"));
        assert!(raw.contains("text/plain") && raw.contains("text/html"));
    }

    #[tokio::test]
    async fn inline_images_go_into_a_related_part_after_the_html() {
        let m = Mailer::stub("avvik@kommunen.example", true).unwrap();
        let mut e = email();
        e.rendered.html = "<p><img src=\"cid:diagram-1@avvik\" alt=\"Diagram\"></p>".into();
        e.rendered.images = vec![crate::content::InlineImage {
            content_id: "diagram-1@avvik".into(),
            filename: "diagram-2026.svg".into(),
            content_type: "image/svg+xml".into(),
            body: b"<svg xmlns=\"http://www.w3.org/2000/svg\"><text>\xc3\xa5r</text></svg>"
                .to_vec(),
        }];
        m.send(&e).await.unwrap();
        let (_, raw) = m.stub_messages().await.remove(0);
        let alt = raw.find("multipart/alternative").expect("alternative");
        let plain = raw.find("text/plain").expect("text part");
        let related = raw.find("multipart/related").expect("related");
        let html = raw.find("text/html").expect("html part");
        let svg = raw.find("image/svg+xml").expect("image part");
        assert!(
            alt < plain && plain < related && related < html && html < svg,
            "{raw}"
        );
        assert!(raw.contains("Content-ID: <diagram-1@avvik>"), "{raw}");
        assert!(
            raw.contains("Content-Disposition: inline; filename=\"diagram-2026.svg\""),
            "{raw}"
        );
        e.rendered.images[0].content_type = "inte en typ".into();
        assert!(matches!(m.send(&e).await, Err(SendError::Build(_))));
    }

    #[tokio::test]
    async fn failures_are_errors_not_panics() {
        let m = Mailer::stub("avvik@kommunen.example", false).unwrap();
        assert!(matches!(
            m.send(&email()).await,
            Err(SendError::Transport(_))
        ));
        let mut bad = email();
        bad.to = "inte en adress".into();
        assert!(matches!(m.send(&bad).await, Err(SendError::Build(_))));
        assert!(Mailer::stub("nej", true).is_err());
    }

    #[tokio::test]
    async fn file_transport_writes_eml_files() {
        let dir = tempfile::tempdir().unwrap();
        let m = Mailer::new(&MailerSettings {
            transport: TransportSettings::File {
                dir: dir.path().join("outbox"),
            },
            from: "avvik@kommunen.example".into(),
            reply_to: Some("ciso@kommunen.example".into()),
        })
        .unwrap();
        m.send(&email()).await.unwrap();
        let files: Vec<_> = std::fs::read_dir(dir.path().join("outbox"))
            .unwrap()
            .collect();
        assert_eq!(files.len(), 1);
        let raw = std::fs::read_to_string(files[0].as_ref().unwrap().path()).unwrap();
        assert!(raw.contains("Reply-To: ciso@kommunen.example"), "{raw}");
    }

    #[tokio::test]
    async fn tls_transports_build_with_rustls_and_ring() {
        for tls in [SmtpTls::Starttls, SmtpTls::Tls, SmtpTls::None] {
            let m = Mailer::new(&MailerSettings {
                transport: TransportSettings::Smtp(SmtpSettings {
                    host: "smtp.kommunen.example".into(),
                    port: 587,
                    tls,
                    user: "avvik".into(),
                    password: "hemligt-lösen".into(),
                    timeout: Duration::from_secs(5),
                    pool_max: 2,
                }),
                from: "avvik@kommunen.example".into(),
                reply_to: None,
            });
            let m = m.unwrap_or_else(|e| panic!("{tls:?}: {e}"));
            assert!(!format!("{m:?}").contains("hemligt"));
        }
    }

    #[test]
    fn the_password_is_not_in_debug_output() {
        let s = SmtpSettings {
            host: "smtp.kommunen.se".into(),
            port: 587,
            tls: SmtpTls::Starttls,
            user: "avvik".into(),
            password: "hemligt-lösen".into(),
            timeout: Duration::from_secs(30),
            pool_max: 4,
        };
        assert!(!format!("{s:?}").contains("hemligt"));
    }

    #[test]
    fn errors_read_as_one_line_without_repeats() {
        assert_eq!(
            describe(
                &"Connection error: Connection error: invalid peer certificate: UnknownIssuer"
            ),
            "Connection error: invalid peer certificate: UnknownIssuer"
        );
        assert_eq!(describe(&"rad ett\nrad två"), "rad ett rad två");
        assert_eq!(describe(&"x".repeat(600)).len(), 500);
    }
}
