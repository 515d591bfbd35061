//! The events e-mail delivery writes: each in the notice's own stream, so they never
//! conflict with commands on the deviation. Every payload about a deviation names its
//! `deviation_id`, so a deviation's timeline can include them; e-mails about no deviation
//! name their `trigger_event_id` instead.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::rules::{Group, Rule};

pub const NOTIFICATION_SENT: &str = "NotificationSent";
pub const NOTIFICATION_FAILED: &str = "NotificationFailed";
pub const NOTIFICATION_ABANDONED: &str = "NotificationAbandoned";
pub const ESCALATION_ACKNOWLEDGED: &str = "EscalationAcknowledged";
pub const NOTIFICATION_UNDELIVERABLE: &str = "NotificationUndeliverable";

/// Every event type this module writes.
pub const TYPES: &[&str] = &[
    NOTIFICATION_SENT,
    NOTIFICATION_FAILED,
    NOTIFICATION_ABANDONED,
    ESCALATION_ACKNOWLEDGED,
    NOTIFICATION_UNDELIVERABLE,
];

/// The mail server (or the file system) accepted the e-mail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationSent {
    pub notification_id: Uuid,
    /// The deviation it is about; absent for e-mails about no deviation (the annual report,
    /// the policy reminder, a quarantined e-mail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deviation_id: Option<Uuid>,
    pub rule: Rule,
    pub group: Group,
    pub recipients: Vec<String>,
    /// The event that called for the e-mail (none for clock-driven reminders).
    #[serde(default)]
    pub trigger_event_id: Option<Uuid>,
    pub due_at: DateTime<Utc>,
    pub subject: String,
    pub message_id: String,
    pub attempt: u32,
}

/// One delivery attempt failed; another follows at `next_retry_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationFailed {
    pub notification_id: Uuid,
    /// The deviation it is about; absent for e-mails about no deviation (the annual report,
    /// the policy reminder, a quarantined e-mail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deviation_id: Option<Uuid>,
    pub rule: Rule,
    pub group: Group,
    pub recipients: Vec<String>,
    #[serde(default)]
    pub trigger_event_id: Option<Uuid>,
    pub due_at: DateTime<Utc>,
    pub attempt: u32,
    pub error: String,
    pub next_retry_at: DateTime<Utc>,
}

/// Delivery was given up after `notifications.give_up_after_h`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationAbandoned {
    pub notification_id: Uuid,
    /// The deviation it is about; absent for e-mails about no deviation (the annual report,
    /// the policy reminder, a quarantined e-mail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deviation_id: Option<Uuid>,
    pub rule: Rule,
    pub group: Group,
    pub recipients: Vec<String>,
    #[serde(default)]
    pub trigger_event_id: Option<Uuid>,
    pub due_at: DateTime<Utc>,
    pub attempts: u32,
    pub last_error: String,
}

/// A rule fired for a group whose recipient list is empty: nothing could be sent. Stored
/// once per such e-mail (in a stream of its own, created once); the e-mail is owed and goes
/// out when an address is added to the list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationUndeliverable {
    /// The id of the owed e-mail (derived from the trigger, the rule and the group).
    pub notification_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deviation_id: Option<Uuid>,
    pub rule: Rule,
    pub group: Group,
    #[serde(default)]
    pub trigger_event_id: Option<Uuid>,
    pub due_at: DateTime<Utc>,
    /// English, for logs and the API.
    pub reason: String,
}

/// A board or management member confirmed, through their signed link, that they read an
/// escalation. Stored once per escalation e-mail (its stream can only be created once).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EscalationAcknowledged {
    pub deviation_id: Uuid,
    /// The escalation e-mail whose link was used.
    pub notification_id: Uuid,
    /// The classification event that made the deviation major.
    pub escalation_event_id: Uuid,
    pub recipient: String,
    pub group: Group,
}

/// The stream an acknowledgement is stored in: derived from the escalation e-mail, and
/// appended with "no stream yet", so a second click is refused by the store itself.
pub fn acknowledgement_stream(notification_id: Uuid) -> Uuid {
    Uuid::new_v5(&notification_id, b"acknowledgement")
}
