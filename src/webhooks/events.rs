//! The events webhook delivery writes, each in the delivery's own stream (so they never
//! conflict with commands on the deviation). None holds personal data or free text: the
//! webhook is named, never its URL, and an error is avvik's own description of it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const WEBHOOK_DELIVERED: &str = "WebhookDelivered";
pub const WEBHOOK_FAILED: &str = "WebhookFailed";
pub const WEBHOOK_ABANDONED: &str = "WebhookAbandoned";

/// Every event type this module writes.
pub const TYPES: &[&str] = &[WEBHOOK_DELIVERED, WEBHOOK_FAILED, WEBHOOK_ABANDONED];

/// Namespace of delivery ids.
const DELIVERY_NS: Uuid = Uuid::from_u128(0x6176_7669_6b2d_7765_6268_6f6f_6b73_0001);

/// The id of the delivery of the event `trigger_event_id` to the webhook `webhook`: the
/// same after every restart, so it is the receiver's key for deduplication too.
pub fn delivery_id(trigger_event_id: Uuid, webhook: &str) -> Uuid {
    let mut name = trigger_event_id.as_bytes().to_vec();
    name.extend_from_slice(webhook.as_bytes());
    Uuid::new_v5(&DELIVERY_NS, &name)
}

/// What every delivery event says about its delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryHead {
    pub delivery_id: Uuid,
    /// The webhook's `name` from the configuration.
    pub webhook: String,
    pub deviation_id: Uuid,
    /// The event sent, and its seq.
    pub trigger_event_id: Uuid,
    pub trigger_seq: u64,
    pub event_type: String,
    /// When the event was stored (the delivery was due from then).
    pub due_at: DateTime<Utc>,
}

/// The receiver answered 2xx.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookDelivered {
    #[serde(flatten)]
    pub head: DeliveryHead,
    pub attempt: u32,
    /// The HTTP status of the answer.
    pub status: u16,
}

/// One attempt failed (5xx, 408, 429, a timeout, no connection); another follows at
/// `next_retry_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookFailed {
    #[serde(flatten)]
    pub head: DeliveryHead,
    pub attempt: u32,
    /// English, for logs and the API.
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub next_retry_at: DateTime<Utc>,
}

/// Delivery was given up: the receiver refused it (another 4xx, a redirect), or
/// `max_attempts` attempts failed, or `notifications.give_up_after_h` passed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookAbandoned {
    #[serde(flatten)]
    pub head: DeliveryHead,
    pub attempts: u32,
    pub last_error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_ids_are_stable_and_differ_per_webhook() {
        let e = Uuid::from_u128(7);
        assert_eq!(delivery_id(e, "siem"), delivery_id(e, "siem"));
        assert_ne!(delivery_id(e, "siem"), delivery_id(e, "chat"));
        assert_ne!(
            delivery_id(e, "siem"),
            delivery_id(Uuid::from_u128(8), "siem")
        );
    }
}
