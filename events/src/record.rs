//! The stored record: the envelope every event is kept in, and its hash link.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// `prev` of the first record in a log.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One event as it is stored. The stored value is exactly `serde_json::to_vec(&record)`;
/// field order is the declaration order below and is part of the export format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// Global position, contiguous from 1.
    pub seq: u64,
    /// Event id (UUIDv7); re-sending an id that is stored returns the stored record.
    pub id: Uuid,
    /// The stream (aggregate) the event belongs to.
    pub stream: Uuid,
    /// Position within the stream, from 1.
    pub version: u32,
    /// Commit time (UTC). Never decreases along the log.
    #[serde(with = "rfc3339")]
    pub at: DateTime<Utc>,
    /// Who caused the event, e.g. `user:ciso@kommunen.example`, `reporter`, `system`.
    pub actor: String,
    /// Event type name, e.g. `DeviationReported`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Schema version of `data` for this type.
    pub schema: u16,
    /// The event payload.
    pub data: Value,
    /// Hex SHA-256 of the previous record's stored bytes.
    pub prev: String,
}

impl RecordedEvent {
    /// The exact bytes this record is stored as.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing a struct of plain fields into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes the event's payload into a typed value.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.data)
    }
}

/// Hex SHA-256 of stored bytes: the value the next record carries in `prev`.
pub fn hash_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// An event not yet stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub id: Uuid,
    pub event_type: String,
    pub schema: u16,
    pub data: Value,
    pub actor: String,
    /// Requested time; the store never lets `at` go backwards along the log.
    pub at: DateTime<Utc>,
}

impl NewEvent {
    /// A new event with a fresh UUIDv7 id.
    pub fn new(
        event_type: impl Into<String>,
        data: Value,
        actor: impl Into<String>,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            id: Uuid::now_v7(),
            event_type: event_type.into(),
            schema: 1,
            data,
            actor: actor.into(),
            at,
        }
    }
}

/// RFC 3339 with microseconds and a `Z`, so stored times sort and read the same everywhere.
pub mod rfc3339 {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Micros, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_bytes_round_trip_exactly() {
        let rec = RecordedEvent {
            seq: 1,
            id: Uuid::nil(),
            stream: Uuid::nil(),
            version: 1,
            at: DateTime::parse_from_rfc3339("2026-01-02T03:04:05.123456Z")
                .unwrap()
                .with_timezone(&Utc),
            actor: "system".into(),
            event_type: "X".into(),
            schema: 1,
            data: serde_json::json!({"b": 1, "a": "å"}),
            prev: GENESIS_HASH.into(),
        };
        let bytes = rec.to_bytes();
        let back: RecordedEvent = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, rec);
        assert_eq!(back.to_bytes(), bytes);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with(r#"{"seq":1,"id":"00000000-0000-0000-0000-000000000000","#));
        assert!(text.contains(r#""at":"2026-01-02T03:04:05.123456Z""#));
    }
}
