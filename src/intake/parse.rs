//! The pure half of intake: raw bytes in, a verdict out (accept, ignore, quarantine) with
//! everything the rest of the pipeline needs. No I/O, no clock, no panics on any input:
//! this is the function the fuzz target and the corpus test call.
//!
//! MIME structure, transfer encodings, charsets and RFC 2047 words are all mail-parser's
//! job; this module only chooses among the parts it returns.

use chrono::{DateTime, Utc};
use mail_parser::{Addr, HeaderValue, Message, MessageParser, MessagePart, MimeHeaders, PartType};
use serde::Serialize;
use sha2::{Digest, Sha256};

pub use super::text::strip_quoted;
use super::text::{
    body_text, bounded_line, clean_text, forwarded_summary, raw_8bit_header, truncate_chars,
};
use crate::domain::{EmailAddress, Reference, Reporter};

/// Longest title, as the web form allows.
pub const TITLE_MAX: usize = crate::domain::limits::TITLE_MAX;
/// Longest description, as the web form allows; the full text is kept as an attachment.
pub const DESCRIPTION_MAX: usize = crate::domain::limits::DESCRIPTION_MAX;
/// Longest reporter name and attachment file name.
const NAME_MAX: usize = 200;
/// A Message-ID longer than a header line may be is not one.
const MESSAGE_ID_MAX: usize = 998;
/// Line width HTML is rendered at: wide, so paragraphs stay one line each.
pub(super) const HTML_WIDTH: usize = 1000;
/// Larger HTML gets mail-parser's plainer, linear conversion: html5ever's tree building
/// is quadratic in nesting depth, and a hostile message must not pin a thread for long.
pub(super) const HTML_RENDER_MAX: usize = 128 * 1024;
/// Title of a message with an empty subject.
pub const NO_SUBJECT: &str = "E-post utan ämne";
/// Description of a message without text.
pub const NO_TEXT: &str = "(Meddelandet innehöll ingen text.)";
/// Name of the attachment holding a body text too long for the description.
pub const FULL_TEXT_NAME: &str = "meddelandetext.txt";

/// Size limits, from `[intake]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_message_bytes: usize,
    pub max_attachment_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 25 * 1024 * 1024,
            max_attachment_bytes: 10 * 1024 * 1024,
        }
    }
}

/// What a message is, once looked at.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// The deduplication key: `mid:<normalized Message-ID>`, or `sha256:<hex of the raw
    /// bytes>` for a message without a usable Message-ID.
    pub key: String,
    /// The normalized Message-ID (no angle brackets, lower case), if any.
    pub message_id: Option<String>,
    /// Hex SHA-256 of the raw bytes.
    pub raw_sha256: String,
    pub raw_size: usize,
    /// Sender address as written (for the audit record), if one could be read.
    pub from: Option<String>,
    /// Decoded subject (bounded), if any.
    pub subject: Option<String>,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// A message people wrote: becomes a deviation or a comment.
    Accept(Box<Accepted>),
    /// Machine-generated: nothing is created and nothing is answered.
    Ignore(IgnoreReason),
    /// Kept for manual handling.
    Quarantine(QuarantineReason),
}

/// Why a message is machine-generated (RFC 3834 and common practice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IgnoreReason {
    /// From one of avvik's own addresses: a loop.
    OwnAddress,
    /// `Auto-Submitted` other than `no`.
    AutoSubmitted,
    /// `Precedence: bulk`, `junk` or `list`.
    Precedence,
    /// `X-Autoreply`, `X-Autorespond` and friends.
    AutoReplyHeader,
    /// A delivery or disposition report (`multipart/report`, `message/delivery-status`).
    DeliveryReport,
    /// From MAILER-DAEMON or postmaster, or with an empty Return-Path.
    MailerDaemon,
}

impl IgnoreReason {
    pub fn as_str(self) -> &'static str {
        match self {
            IgnoreReason::OwnAddress => "own_address",
            IgnoreReason::AutoSubmitted => "auto_submitted",
            IgnoreReason::Precedence => "precedence",
            IgnoreReason::AutoReplyHeader => "auto_reply_header",
            IgnoreReason::DeliveryReport => "delivery_report",
            IgnoreReason::MailerDaemon => "mailer_daemon",
        }
    }
}

/// Why a message needs a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum QuarantineReason {
    /// Larger than `intake.max_message_bytes`.
    TooLarge { size: usize, limit: usize },
    /// mail-parser found no message in the bytes.
    Unparseable,
    /// No From address that is a usable e-mail address.
    NoSender,
    /// An attachment larger than `intake.max_attachment_bytes`.
    AttachmentTooLarge {
        filename: String,
        size: usize,
        limit: usize,
    },
    /// Only the headers could be fetched (the message was too large to fetch whole; it is
    /// still in the mailbox's processed folder).
    HeadersOnly { size: usize },
}

impl QuarantineReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            QuarantineReason::TooLarge { .. } => "too_large",
            QuarantineReason::Unparseable => "unparseable",
            QuarantineReason::NoSender => "no_sender",
            QuarantineReason::AttachmentTooLarge { .. } => "attachment_too_large",
            QuarantineReason::HeadersOnly { .. } => "headers_only",
        }
    }

    /// A Swedish sentence for the staff list.
    pub fn message_sv(&self) -> String {
        match self {
            QuarantineReason::TooLarge { size, limit } => {
                format!("Meddelandet är för stort ({size} byte, gränsen är {limit}).")
            }
            QuarantineReason::Unparseable => "Meddelandet gick inte att tolka.".into(),
            QuarantineReason::NoSender => "Meddelandet saknar en användbar avsändaradress.".into(),
            QuarantineReason::AttachmentTooLarge {
                filename,
                size,
                limit,
            } => format!("Bilagan \"{filename}\" är för stor ({size} byte, gränsen är {limit})."),
            QuarantineReason::HeadersOnly { size } => format!(
                "Meddelandet var för stort för att hämtas ({size} byte); bara rubrikerna \
                 sparades. Det finns kvar i brevlådans mapp för behandlade meddelanden."
            ),
        }
    }
}

/// A message people wrote, ready to become a deviation or a comment.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub reporter: Reporter,
    /// Bounded, single line, never empty.
    pub title: String,
    /// Bounded, never empty: the text body (HTML converted), forwarded messages appended.
    pub description: String,
    /// The reply's own words, with the quoted original cut off (for comments).
    pub reply_text: String,
    /// `[AVV-YYYY-NNNN]` tags found in the subject, in order.
    pub subject_references: Vec<Reference>,
    /// Normalized Message-IDs from In-Reply-To and References.
    pub replied_to: Vec<String>,
    /// The Date header, if it parses.
    pub sent_at: Option<DateTime<Utc>>,
    pub attachments: Vec<Attachment>,
    /// The raw values of the `Authentication-Results` headers, topmost first (judged by
    /// `sender_auth` against the trusted `authserv-id`s).
    pub authentication_results: Vec<String>,
}

/// One attachment, decoded.
#[derive(Clone, PartialEq)]
pub struct Attachment {
    pub filename: String,
    pub content_type: String,
    /// Shown inside the message (Content-ID or inline disposition) rather than attached.
    pub inline: bool,
    pub sha256: String,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Attachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attachment")
            .field("filename", &self.filename)
            .field("content_type", &self.content_type)
            .field("inline", &self.inline)
            .field("sha256", &self.sha256)
            .field("size", &self.bytes.len())
            .finish()
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Looks at a raw RFC 5322 message. `own_addresses` are avvik's own sender addresses
/// (lower case); mail from them is a loop and ignored.
///
/// Never panics: a panic inside the MIME parser (mail-parser 0.11 has a `debug_assert!`
/// that odd multipart nesting reaches in debug builds, found by fuzzing) makes the
/// message unparseable, so it is quarantined rather than retried forever.
pub fn analyze(raw: &[u8], limits: &Limits, own_addresses: &[String]) -> Analysis {
    let guarded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        analyze_unguarded(raw, limits, own_addresses)
    }));
    guarded.unwrap_or_else(|_| {
        let raw_sha256 = sha256_hex(raw);
        Analysis {
            key: key_for(None, &raw_sha256),
            message_id: None,
            raw_sha256,
            raw_size: raw.len(),
            from: None,
            subject: None,
            verdict: Verdict::Quarantine(QuarantineReason::Unparseable),
        }
    })
}

fn analyze_unguarded(raw: &[u8], limits: &Limits, own_addresses: &[String]) -> Analysis {
    let raw_sha256 = sha256_hex(raw);
    let raw_size = raw.len();
    let raw = without_envelope_line(raw);
    let parser = MessageParser::default();
    if raw_size > limits.max_message_bytes {
        // Headers only: enough for the key and the audit record, cheap on any size.
        let headers = parser.parse_headers(raw);
        let message_id = headers
            .as_ref()
            .and_then(|m| m.message_id())
            .and_then(normalize_message_id);
        return Analysis {
            key: key_for(message_id.as_deref(), &raw_sha256),
            from: headers.as_ref().and_then(from_address),
            subject: headers.as_ref().and_then(subject),
            message_id,
            raw_sha256,
            raw_size,
            verdict: Verdict::Quarantine(QuarantineReason::TooLarge {
                size: raw_size,
                limit: limits.max_message_bytes,
            }),
        };
    }
    let parsed = if looks_like_a_message(raw) {
        parser.parse(raw)
    } else {
        None
    };
    let Some(msg) = parsed else {
        return Analysis {
            key: key_for(None, &raw_sha256),
            message_id: None,
            raw_sha256,
            raw_size,
            from: None,
            subject: None,
            verdict: Verdict::Quarantine(QuarantineReason::Unparseable),
        };
    };
    let message_id = msg.message_id().and_then(normalize_message_id);
    let verdict = match ignore_reason(&msg, own_addresses) {
        Some(reason) => Verdict::Ignore(reason),
        None => accept(&msg, limits),
    };
    Analysis {
        key: key_for(message_id.as_deref(), &raw_sha256),
        from: from_address(&msg),
        subject: subject(&msg),
        message_id,
        raw_sha256,
        raw_size,
        verdict,
    }
}

/// Like `analyze` for a message of which only the headers could be fetched.
pub fn analyze_headers_only(
    header_bytes: &[u8],
    full_size: usize,
    own_addresses: &[String],
) -> Analysis {
    let limits = Limits {
        max_message_bytes: usize::MAX,
        max_attachment_bytes: usize::MAX,
    };
    let mut a = analyze(header_bytes, &limits, own_addresses);
    if !matches!(a.verdict, Verdict::Ignore(_)) {
        a.verdict = Verdict::Quarantine(QuarantineReason::HeadersOnly { size: full_size });
    }
    a.raw_size = full_size;
    a
}

/// mail-parser accepts almost anything as a body; a message must at least start with
/// something that looks like a header field.
fn looks_like_a_message(raw: &[u8]) -> bool {
    let start = raw
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(raw.len());
    let line_end = raw[start..]
        .iter()
        .position(|b| *b == b'\n')
        .map_or(raw.len(), |i| start + i);
    let line = &raw[start..line_end];
    match line.iter().position(|b| *b == b':') {
        Some(colon) if colon > 0 => line[..colon]
            .iter()
            .all(|b| b.is_ascii_graphic() && *b != b':'),
        _ => false,
    }
}

/// The message without the mbox envelope line ("From sender date") that Postfix's
/// local(8) and other MDAs put before the headers when they pipe mail to a command.
pub fn without_envelope_line(raw: &[u8]) -> &[u8] {
    if raw.starts_with(b"From ") {
        match raw.iter().position(|b| *b == b'\n') {
            Some(i) => &raw[i + 1..],
            None => &[],
        }
    } else {
        raw
    }
}

fn key_for(message_id: Option<&str>, raw_sha256: &str) -> String {
    match message_id {
        Some(id) => format!("mid:{id}"),
        None => format!("sha256:{raw_sha256}"),
    }
}

/// `<Abc@Example.ORG>` → `abc@example.org`; `None` when it cannot be an id.
pub fn normalize_message_id(s: &str) -> Option<String> {
    let s = s
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    let ok = !s.is_empty()
        && s.len() <= MESSAGE_ID_MAX
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>');
    ok.then(|| s.to_lowercase())
}

fn header_text<'a>(msg: &'a Message<'_>, name: &'static str) -> Option<&'a str> {
    msg.header_raw(name).map(str::trim)
}

fn ignore_reason(msg: &Message<'_>, own_addresses: &[String]) -> Option<IgnoreReason> {
    let from = msg
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .map(|a| a.trim().to_lowercase());
    if let Some(f) = &from {
        if own_addresses.iter().any(|o| o == f) {
            return Some(IgnoreReason::OwnAddress);
        }
    }
    if let Some(v) = header_text(msg, "Auto-Submitted") {
        let token = v.split(';').next().unwrap_or("").trim();
        if !token.eq_ignore_ascii_case("no") {
            return Some(IgnoreReason::AutoSubmitted);
        }
    }
    if let Some(v) = header_text(msg, "Precedence") {
        let v = v.to_ascii_lowercase();
        if ["bulk", "junk", "list"].contains(&v.as_str()) {
            return Some(IgnoreReason::Precedence);
        }
    }
    for name in [
        "X-Autoreply",
        "X-Autorespond",
        "X-Autoresponder",
        "X-Autoreply-From",
    ] {
        if let Some(v) = header_text(msg, name) {
            if !v.eq_ignore_ascii_case("no") {
                return Some(IgnoreReason::AutoReplyHeader);
            }
        }
    }
    if msg.parts.iter().any(|p| {
        p.content_type().is_some_and(|ct| {
            let sub = ct.subtype().unwrap_or("");
            (ct.ctype().eq_ignore_ascii_case("multipart") && sub.eq_ignore_ascii_case("report"))
                || (ct.ctype().eq_ignore_ascii_case("message")
                    && (sub.eq_ignore_ascii_case("delivery-status")
                        || sub.eq_ignore_ascii_case("global-delivery-status")
                        || sub.eq_ignore_ascii_case("disposition-notification")))
        })
    }) {
        return Some(IgnoreReason::DeliveryReport);
    }
    let daemon = |addr: &str| {
        let local = addr.rsplit_once('@').map_or(addr, |(l, _)| l);
        local.eq_ignore_ascii_case("mailer-daemon") || local.eq_ignore_ascii_case("postmaster")
    };
    let sender = msg
        .sender()
        .and_then(|a| a.first())
        .and_then(|a| a.address());
    if from.as_deref().is_some_and(daemon) || sender.is_some_and(daemon) {
        return Some(IgnoreReason::MailerDaemon);
    }
    if let Some(rp) = header_text(msg, "Return-Path") {
        let inner = rp.trim_start_matches('<').trim_end_matches('>').trim();
        if inner.is_empty() || daemon(inner) {
            return Some(IgnoreReason::MailerDaemon);
        }
    }
    None
}

fn first_from<'a>(msg: &'a Message<'_>) -> Option<&'a Addr<'a>> {
    msg.from().and_then(|a| a.first())
}

fn from_address(msg: &Message<'_>) -> Option<String> {
    first_from(msg)
        .and_then(|a| a.address())
        .map(|a| bounded_line(a, 254))
        .filter(|a| !a.is_empty())
}

fn subject(msg: &Message<'_>) -> Option<String> {
    let raw8 = raw_8bit_header(msg, "Subject");
    raw8.as_deref()
        .or_else(|| msg.subject())
        .map(|s| bounded_line(s, TITLE_MAX))
        .filter(|s| !s.is_empty())
}

fn accept(msg: &Message<'_>, limits: &Limits) -> Verdict {
    let Some(from) = first_from(msg) else {
        return Verdict::Quarantine(QuarantineReason::NoSender);
    };
    let Some(email) = from.address().and_then(EmailAddress::parse) else {
        return Verdict::Quarantine(QuarantineReason::NoSender);
    };
    let name = from
        .name()
        .map(|n| bounded_line(n, NAME_MAX))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| bounded_line(email.as_str(), NAME_MAX));
    let title = subject(msg).unwrap_or_else(|| NO_SUBJECT.to_string());

    let mut attachments = Vec::new();
    for (i, part) in msg.attachments().enumerate() {
        let Some(a) = attachment(part, i) else {
            continue;
        };
        if a.bytes.len() > limits.max_attachment_bytes {
            return Verdict::Quarantine(QuarantineReason::AttachmentTooLarge {
                filename: a.filename,
                size: a.bytes.len(),
                limit: limits.max_attachment_bytes,
            });
        }
        attachments.push(a);
    }

    let body = body_text(msg);
    let mut full = body.clone();
    for part in msg.attachments() {
        if let PartType::Message(inner) = &part.body {
            full.push_str(&forwarded_summary(inner));
        }
    }
    let full = clean_text(&full);
    let description = if full.is_empty() {
        NO_TEXT.to_string()
    } else if full.chars().count() > DESCRIPTION_MAX {
        let bytes = full.clone().into_bytes();
        attachments.push(Attachment {
            filename: FULL_TEXT_NAME.into(),
            content_type: "text/plain".into(),
            inline: false,
            sha256: sha256_hex(&bytes),
            bytes,
        });
        truncate_chars(&full, DESCRIPTION_MAX - 1) + "…"
    } else {
        full
    };
    let reply = clean_text(&strip_quoted(&body));
    let reply_text = if reply.is_empty() {
        description.clone()
    } else {
        truncate_chars(&reply, DESCRIPTION_MAX)
    };

    Verdict::Accept(Box::new(Accepted {
        reporter: Reporter { name, email },
        subject_references: references_in(&title),
        replied_to: replied_to(msg),
        sent_at: msg
            .date()
            .and_then(|d| DateTime::<Utc>::from_timestamp(d.to_timestamp(), 0)),
        title,
        description,
        reply_text,
        attachments,
        authentication_results: authentication_results(msg),
    }))
}

/// The `Authentication-Results` header values as received (mail-parser's offsets into
/// the raw message), in header order, i.e. topmost — the last MTA's — first.
fn authentication_results(msg: &Message<'_>) -> Vec<String> {
    msg.headers()
        .iter()
        .filter(|h| {
            h.name
                .as_str()
                .eq_ignore_ascii_case("Authentication-Results")
        })
        .filter_map(|h| {
            msg.raw_message
                .get(h.offset_start as usize..h.offset_end as usize)
                .map(|b| String::from_utf8_lossy(b).into_owned())
        })
        .collect()
}

fn attachment(part: &MessagePart<'_>, index: usize) -> Option<Attachment> {
    let content_type = part
        .content_type()
        .map(|ct| match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub),
            None => ct.ctype().to_string(),
        })
        .map(|s| bounded_line(&s, 100).to_ascii_lowercase())
        .filter(|s| !s.is_empty() && s.is_ascii())
        .unwrap_or_else(|| "application/octet-stream".into());
    let (bytes, default_name, content_type) = match &part.body {
        PartType::Binary(b) | PartType::InlineBinary(b) => {
            (b.to_vec(), format!("bilaga-{}", index + 1), content_type)
        }
        PartType::Text(t) => (
            t.as_bytes().to_vec(),
            format!("bilaga-{}.txt", index + 1),
            content_type,
        ),
        PartType::Html(t) => (
            t.as_bytes().to_vec(),
            format!("bilaga-{}.html", index + 1),
            content_type,
        ),
        PartType::Message(m) => {
            let name = m
                .subject()
                .map(|s| format!("{}.eml", bounded_line(s, 100)))
                .unwrap_or_else(|| format!("bilaga-{}.eml", index + 1));
            (m.raw_message().to_vec(), name, "message/rfc822".into())
        }
        PartType::Multipart(_) => return None,
    };
    let filename = part
        .attachment_name()
        .map(safe_filename)
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| safe_filename(&default_name));
    let inline = part.content_id().is_some()
        || part
            .content_disposition()
            .is_some_and(|d| d.ctype().eq_ignore_ascii_case("inline"));
    Some(Attachment {
        filename,
        content_type,
        inline,
        sha256: sha256_hex(&bytes),
        bytes,
    })
}

/// A file name without directories or control characters, bounded.
pub fn safe_filename(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| if c == '"' { '\'' } else { c })
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').trim();
    truncate_chars(cleaned, NAME_MAX)
}

/// Every `[AVV-YYYY-NNNN]` in `subject`.
pub fn references_in(subject: &str) -> Vec<Reference> {
    let mut out = Vec::new();
    let mut rest = subject;
    while let Some(open) = rest.find('[') {
        rest = &rest[open + 1..];
        let Some(close) = rest.find(']') else { break };
        if let Some(r) = Reference::parse(&rest[..close]) {
            if !out.contains(&r) {
                out.push(r);
            }
        }
        rest = &rest[close..];
    }
    out
}

fn ids_of(value: &HeaderValue<'_>) -> Vec<String> {
    let raw: Vec<&str> = match value {
        HeaderValue::Text(t) => vec![t.as_ref()],
        HeaderValue::TextList(list) => list.iter().map(|t| t.as_ref()).collect(),
        _ => Vec::new(),
    };
    raw.into_iter().filter_map(normalize_message_id).collect()
}

fn replied_to(msg: &Message<'_>) -> Vec<String> {
    let mut out = ids_of(msg.in_reply_to());
    for id in ids_of(msg.references()) {
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out.truncate(100);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own() -> Vec<String> {
        vec!["avvik@kommunen.example".into()]
    }

    fn accepted(raw: &str) -> Accepted {
        match analyze(raw.as_bytes(), &Limits::default(), &own()).verdict {
            Verdict::Accept(a) => *a,
            other => panic!("not accepted: {other:?}"),
        }
    }

    #[test]
    fn message_ids_normalize() {
        assert_eq!(
            normalize_message_id(" <Abc.1@Example.ORG> ").as_deref(),
            Some("abc.1@example.org")
        );
        assert_eq!(normalize_message_id("<>"), None);
        assert_eq!(normalize_message_id("a b@c"), None);
    }

    #[test]
    fn subject_tags_are_found() {
        assert_eq!(
            references_in("SV: [AVV-2026-0042] Borttappad dator [avv-2026-0007] [x]"),
            vec![Reference::new(2026, 42), Reference::new(2026, 7)]
        );
        assert!(references_in("AVV-2026-0042 utan klamrar").is_empty());
        assert!(references_in("[[[[").is_empty());
    }

    #[test]
    fn quoted_text_is_cut() {
        let body =
            "Här är mer information.\n\nDen 3 mars 2026 skrev avvik:\n> Tack för din rapport.";
        assert_eq!(strip_quoted(body), "Här är mer information.");
        let body = "Svar\n\nFrån: avvik\nSkickat: den 3 mars\nÄmne: x";
        assert_eq!(strip_quoted(body), "Svar");
        assert_eq!(strip_quoted("> bara citat"), "");
    }

    #[test]
    fn a_plain_message_is_accepted() {
        let a = accepted(
            "From: Anna Svensson <anna@kommunen.example>\r\nTo: avvikelse@kommunen.example\r\n\
             Subject: Borttappad telefon\r\nMessage-ID: <1@kommunen.example>\r\n\r\n\
             Jag tappade min telefon på bussen.\r\n",
        );
        assert_eq!(a.title, "Borttappad telefon");
        assert_eq!(a.description, "Jag tappade min telefon på bussen.");
        assert_eq!(a.reporter.email.as_str(), "anna@kommunen.example");
        assert_eq!(a.reporter.name, "Anna Svensson");
    }

    #[test]
    fn auto_replies_and_loops_are_ignored() {
        let base = "From: Anna <anna@kommunen.example>\r\nSubject: x\r\n";
        for (extra, reason) in [
            (
                "Auto-Submitted: auto-replied\r\n",
                IgnoreReason::AutoSubmitted,
            ),
            ("Precedence: bulk\r\n", IgnoreReason::Precedence),
            ("X-Autoreply: yes\r\n", IgnoreReason::AutoReplyHeader),
            ("Return-Path: <>\r\n", IgnoreReason::MailerDaemon),
        ] {
            let raw = format!("{base}{extra}\r\nhej\r\n");
            let a = analyze(raw.as_bytes(), &Limits::default(), &own());
            assert_eq!(a.verdict, Verdict::Ignore(reason), "{extra}");
        }
        let raw = "From: avvik@kommunen.example\r\nSubject: x\r\n\r\nloop\r\n";
        assert_eq!(
            analyze(raw.as_bytes(), &Limits::default(), &own()).verdict,
            Verdict::Ignore(IgnoreReason::OwnAddress)
        );
        let raw =
            "From: Anna <anna@kommunen.example>\r\nAuto-Submitted: no\r\nSubject: x\r\n\r\nhej\r\n";
        assert!(matches!(
            analyze(raw.as_bytes(), &Limits::default(), &own()).verdict,
            Verdict::Accept(_)
        ));
    }

    #[test]
    fn limits_and_garbage_quarantine() {
        let raw = "From: a@b.se\r\nMessage-ID: <big@b.se>\r\n\r\n".to_string() + &"x".repeat(2000);
        let limits = Limits {
            max_message_bytes: 1024,
            max_attachment_bytes: 512,
        };
        let a = analyze(raw.as_bytes(), &limits, &own());
        assert!(matches!(
            a.verdict,
            Verdict::Quarantine(QuarantineReason::TooLarge { .. })
        ));
        assert_eq!(a.key, "mid:big@b.se");
        for garbage in [&b""[..], b"\x00\x01\x02", b"just some words\n"] {
            let a = analyze(garbage, &Limits::default(), &own());
            assert_eq!(
                a.verdict,
                Verdict::Quarantine(QuarantineReason::Unparseable)
            );
            assert!(a.key.starts_with("sha256:"));
        }
        let raw = "Subject: ingen avsändare\r\n\r\ntext\r\n";
        assert_eq!(
            analyze(raw.as_bytes(), &Limits::default(), &own()).verdict,
            Verdict::Quarantine(QuarantineReason::NoSender)
        );
    }

    #[test]
    fn long_bodies_are_kept_whole_as_an_attachment() {
        let body = "å".repeat(DESCRIPTION_MAX + 10);
        let raw = format!(
            "From: a@kommunen.example\r\nSubject: lång\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
        );
        let a = accepted(&raw);
        assert_eq!(a.description.chars().count(), DESCRIPTION_MAX);
        let full = a
            .attachments
            .iter()
            .find(|x| x.filename == FULL_TEXT_NAME)
            .unwrap();
        assert_eq!(full.bytes, body.as_bytes());
    }

    #[test]
    fn an_mbox_envelope_line_is_skipped() {
        let a = accepted(
            "From anna@kommunen.example Mon Mar  2 08:00:00 2026\nReturn-Path: <anna@kommunen.example>\n\
             From: anna@kommunen.example\nSubject: Via pipe\n\ntext\n",
        );
        assert_eq!(a.title, "Via pipe");
        let raw = "From MAILER-DAEMON Mon Mar  2 08:00:00 2026\nReturn-Path: <>\nFrom: x@y.se\n\nbounce\n";
        assert_eq!(
            analyze(raw.as_bytes(), &Limits::default(), &own()).verdict,
            Verdict::Ignore(IgnoreReason::MailerDaemon)
        );
    }

    #[test]
    fn file_names_are_made_safe() {
        assert_eq!(safe_filename("../../etc/passwd"), "passwd");
        assert_eq!(safe_filename("C:\\temp\\a\"b.txt"), "a'b.txt");
        assert_eq!(safe_filename("..."), "");
    }

    /// Deeply nested HTML must not overflow a blocking-pool thread's stack (2 MiB), on
    /// either conversion path.
    #[test]
    fn deeply_nested_html_is_rendered_on_a_small_stack() {
        for (tag, depth) in [
            ("div", 6_000),
            ("table><tr><td", 6_000),
            ("ul><li", 4_000),
            ("blockquote", 6_000),
            ("b", 6_000),
            ("div", 40_000),
        ] {
            let open = format!("<{tag}>").repeat(depth);
            let raw = format!(
                "From: a@kommunen.example\r\nSubject: djup\r\nContent-Type: text/html\r\n\r\n{open}djupt"
            );
            let verdict = std::thread::Builder::new()
                .stack_size(2 * 1024 * 1024)
                .spawn(move || analyze(raw.as_bytes(), &Limits::default(), &[]).verdict)
                .unwrap()
                .join()
                .unwrap();
            assert!(
                matches!(verdict, Verdict::Accept(_) | Verdict::Quarantine(_)),
                "{tag}"
            );
        }
    }
}
