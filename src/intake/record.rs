//! The intake's own events: one stream per message (UUIDv5 of the message's key), so
//! "has this message been handled?" is one stream read, and a repeat is refused by the
//! store (the stream must not exist; the event id is derived too).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::parse::{IgnoreReason, QuarantineReason};
use crate::domain::Reference;

/// A message became a deviation or a comment on one.
pub const EMAIL_RECEIVED: &str = "EmailReceived";
/// A machine-generated message (auto-reply, bounce, loop) was recognised and dropped.
pub const EMAIL_IGNORED: &str = "EmailIgnored";
/// A message was kept for manual handling; the CISO is to be told.
pub const EMAIL_QUARANTINED: &str = "EmailQuarantined";
/// A person handled a quarantined message.
pub const EMAIL_QUARANTINE_RESOLVED: &str = "EmailQuarantineResolved";
/// The actor of intake's own events.
pub const INTAKE_ACTOR: &str = crate::domain::System::Intake.as_str();

/// Namespaces of the ids intake derives. Fixed forever: changing one would let a message
/// that was handled before the change be handled again.
const NS_MESSAGE: Uuid = Uuid::from_u128(0x6176_7669_6b2d_696e_7461_6b65_0000_0001);
const NS_DEVIATION: Uuid = Uuid::from_u128(0x6176_7669_6b2d_696e_7461_6b65_0000_0002);
const NS_EVENT: Uuid = Uuid::from_u128(0x6176_7669_6b2d_696e_7461_6b65_0000_0003);

/// The stream that records what became of the message with `key`.
pub fn message_stream(key: &str) -> Uuid {
    Uuid::new_v5(&NS_MESSAGE, key.as_bytes())
}

/// The deviation a new message files (its stream id).
pub fn deviation_stream(key: &str) -> Uuid {
    Uuid::new_v5(&NS_DEVIATION, key.as_bytes())
}

/// The id of the `DeviationReported` event a message files.
pub fn report_event_id(key: &str) -> Uuid {
    Uuid::new_v5(&NS_EVENT, format!("reported {key}").as_bytes())
}

/// The id of the comment a message adds to `deviation`.
pub fn comment_event_id(key: &str, deviation: Uuid) -> Uuid {
    Uuid::new_v5(&NS_EVENT, format!("comment {deviation} {key}").as_bytes())
}

/// The id of the event recording the message's disposition.
pub fn disposition_event_id(key: &str) -> Uuid {
    Uuid::new_v5(&NS_EVENT, format!("disposition {key}").as_bytes())
}

/// Where a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Imap,
    Http,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Imap => "imap",
            Source::Http => "http",
        }
    }
}

/// What the message became.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Disposition {
    Created,
    Comment,
}

/// An attachment as listed on a deviation. The bytes are in `attachments/<sha256>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentRef {
    pub sha256: String,
    pub filename: String,
    pub content_type: String,
    pub size: u64,
    pub inline: bool,
}

/// Facts every intake record carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageFacts {
    pub key: String,
    pub message_id: Option<String>,
    pub source: Source,
    pub raw_sha256: String,
    pub raw_size: u64,
    pub from: Option<String>,
    pub subject: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmailReceived {
    #[serde(flatten)]
    pub message: MessageFacts,
    pub disposition: Disposition,
    pub deviation: Uuid,
    pub reference: Reference,
    pub attachments: Vec<AttachmentRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmailIgnored {
    #[serde(flatten)]
    pub message: MessageFacts,
    pub reason: IgnoreReason,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmailQuarantined {
    #[serde(flatten)]
    pub message: MessageFacts,
    pub reason: QuarantineReason,
    /// Swedish, for the CISO's notice and the staff list.
    pub reason_sv: String,
    /// Where the raw bytes are, relative to the data directory.
    pub file: String,
    /// Who is to be told: always `ciso`.
    pub notify_role: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmailQuarantineResolved {
    pub note: String,
}

/// A quarantined message as the staff list shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuarantineEntry {
    /// The message stream id: what the API routes take.
    pub id: Uuid,
    pub seq: u64,
    pub received_at: DateTime<Utc>,
    #[serde(flatten)]
    pub record: EmailQuarantined,
    pub resolved: Option<Resolution>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resolution {
    pub by: String,
    pub at: DateTime<Utc>,
    pub note: String,
}

/// An attachment on a deviation, with the message it came with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListedAttachment {
    #[serde(flatten)]
    pub attachment: AttachmentRef,
    pub received_at: DateTime<Utc>,
    pub message_id: Option<String>,
    pub disposition: Disposition,
}
