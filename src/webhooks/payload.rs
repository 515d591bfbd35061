//! What a webhook POST carries: a JSON body of clear fields only, and its signature.
//!
//! The body names the event (type, id, seq, time), the deviation (id, reference) and the
//! event's structural fields from a per-type allow-list: times, severity, aspects,
//! category, sector, kinds, ids. Titles, descriptions, names, addresses, rationales and
//! every other field `privacy::seal` seals are never in it, and neither is anything a type
//! not listed here holds (a new event type sends its envelope only until it is listed).
//!
//! Signature: `X-Avvik-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`
//! where `<timestamp>` is the `X-Avvik-Timestamp` header (Unix seconds) and `<body>` the
//! exact bytes sent.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

pub const SIGNATURE_HEADER: &str = "x-avvik-signature";
pub const TIMESTAMP_HEADER: &str = "x-avvik-timestamp";
pub const EVENT_HEADER: &str = "x-avvik-event";
pub const DELIVERY_HEADER: &str = "x-avvik-delivery";

/// The body's format version.
pub const PAYLOAD_VERSION: u32 = 1;

/// The fields of each event type's `data` a webhook may carry: none of them personal or
/// free text. Checked against `privacy::seal::SPECS` by a test.
pub fn clear_fields(event_type: &str) -> &'static [&'static str] {
    match event_type {
        "DeviationReported" => &[
            "occurred_at",
            "discovered_at",
            "sector",
            "personal_data",
            "channel",
            "reported_at",
        ],
        "DeviationClassified" => &[
            "severity",
            "aspects",
            "category",
            "personal_data_breach",
            "nis2_significant",
            "role",
        ],
        "DecisionRecorded" => &["role"],
        // Not the owner: an e-mail address.
        "MeasureAdded" => &["measure_id", "due"],
        "MeasureCompleted" => &["measure_id"],
        "CommentAdded" => &["to_reporter", "from_reporter"],
        "FilingRecorded" => &[
            "kind",
            "authority",
            "filed_at",
            "their_reference",
            "content_sha256",
        ],
        "FilingDeclined" => &["kind"],
        "AwarenessRecorded" => &["regime", "aware_at"],
        "IncidentHandlingEnded" => &["ended_at"],
        "DeviationShredded" => &["class"],
        "AffectedNoticeDecided" => &["decision"],
        "AffectedNotified" => &["sent_at", "recipients_approx"],
        // Staff addresses, like the actors in the log; no reporter data.
        "HandlersAssigned" => &["owner", "deputy"],
        "LinkedToIncident" => &["incident", "incident_reference", "relation"],
        "UnlinkedFromIncident" => &["incident"],
        "SupplierRecorded" => &["reported_by_supplier"],
        "AttachmentAdded" => &["sha256", "content_type", "size", "from_reporter"],
        // Closed, reopened, the breach and NIS2 records: free text only.
        _ => &[],
    }
}

/// The event's clear fields, taken from its stored `data` (sealed fields are never
/// among them, so the stored form serves as it is).
pub fn clear_data(event_type: &str, data: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    for field in clear_fields(event_type) {
        if let Some(v) = data.get(*field) {
            if !v.is_null() {
                out.insert((*field).to_string(), v.clone());
            }
        }
    }
    out
}

/// The JSON body of one delivery.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Payload {
    pub version: u32,
    /// Also in `X-Avvik-Delivery`; the same on every retry.
    pub delivery_id: Uuid,
    pub webhook: String,
    pub event_type: String,
    pub event_id: Uuid,
    pub seq: u64,
    /// When the event was stored (RFC 3339, UTC).
    pub at: DateTime<Utc>,
    pub deviation_id: Uuid,
    /// `AVV-YYYY-NNNN`
    pub reference: String,
    /// The event's clear fields (`clear_fields`).
    pub data: Map<String, Value>,
}

impl Payload {
    /// The exact bytes sent (and signed).
    pub fn to_body(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// `sha256=<hex>` of HMAC-SHA256 over `<timestamp>.<body>`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Does `header` (an `X-Avvik-Signature` value) sign `<timestamp>.<body>` under `secret`?
/// Compares in constant time. What a receiver does, for tests and the documentation.
pub fn verify(secret: &[u8], timestamp: i64, body: &[u8], header: &str) -> bool {
    let Some(sig) = header
        .strip_prefix("sha256=")
        .and_then(|h| hex::decode(h).ok())
    else {
        return false;
    };
    let mut mac =
        <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::DeviationEvent;
    use crate::privacy::seal::spec;

    #[test]
    fn no_clear_field_is_a_sealed_one() {
        for ty in DeviationEvent::TYPES {
            let Some(spec) = spec(ty) else { continue };
            for f in clear_fields(ty) {
                assert!(
                    !spec.fields.iter().any(|(sealed, _)| sealed == f),
                    "{ty}.{f} is sealed"
                );
            }
        }
    }

    #[test]
    fn only_listed_fields_are_taken() {
        let data = serde_json::json!({
            "reference": "AVV-2026-0001",
            "title": {"c": "sealed"},
            "description": "a description",
            "reporter": {"name": "Anna", "email": "anna@kommunen.example"},
            "sector": "Socialtjänsten",
            "discovered_at": "2026-03-02T08:15:00Z",
            "occurred_at": null,
            "status_token_hash": "ab",
            "blind_index": ["x"],
        });
        let clear = clear_data("DeviationReported", &data);
        let keys: Vec<&str> = clear.keys().map(String::as_str).collect();
        assert_eq!(keys, ["discovered_at", "sector"]);
        assert!(clear_data("DeviationClosed", &serde_json::json!({"resolution": "x"})).is_empty());
        assert!(clear_data("SomethingNew", &data).is_empty());
        let m = serde_json::json!({"measure_id": "m", "owner": "a@b.se", "due": "2026-12-31", "description": "d"});
        let keys: Vec<String> = clear_data("MeasureAdded", &m).keys().cloned().collect();
        assert_eq!(keys, ["due", "measure_id"]);
    }

    #[test]
    fn the_signature_covers_timestamp_and_body() {
        let secret = b"ett hemligt delat losenord";
        let body = br#"{"a":1}"#;
        let sig = signature(secret, 1_767_225_600, body);
        assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64);
        assert!(verify(secret, 1_767_225_600, body, &sig));
        assert!(!verify(secret, 1_767_225_601, body, &sig));
        assert!(!verify(secret, 1_767_225_600, br#"{"a":2}"#, &sig));
        assert!(!verify(b"another secret!!", 1_767_225_600, body, &sig));
        assert!(!verify(secret, 1_767_225_600, body, "sha256=zz"));
        // The documented scheme, spelled out: HMAC-SHA256 over "<ts>.<body>".
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret).unwrap();
        mac.update(b"1767225600.{\"a\":1}");
        assert_eq!(
            sig,
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        );
    }
}
