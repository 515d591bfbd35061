//! The stored record: the envelope every event is kept in, and its hash link.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
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

/// A stored record read in place: strings borrowed where they have no escapes, the payload
/// left as raw JSON for the reader to decode straight into its own type. Folds over the
/// whole log use it; building a `Value` tree for every payload was most of their work.
#[derive(Debug, Deserialize)]
pub struct RecordView<'a> {
    pub seq: u64,
    pub id: Uuid,
    pub stream: Uuid,
    pub version: u32,
    #[serde(with = "rfc3339")]
    pub at: DateTime<Utc>,
    #[serde(borrow)]
    pub actor: Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    pub event_type: Cow<'a, str>,
    pub schema: u16,
    #[serde(borrow)]
    pub data: &'a RawValue,
    #[serde(borrow)]
    pub prev: Cow<'a, str>,
}

impl<'a> RecordView<'a> {
    /// Reads stored bytes; fails exactly where decoding a `RecordedEvent` fails.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The whole record, payload decoded.
    pub fn to_record(&self) -> Result<RecordedEvent, serde_json::Error> {
        Ok(RecordedEvent {
            seq: self.seq,
            id: self.id,
            stream: self.stream,
            version: self.version,
            at: self.at,
            actor: self.actor.clone().into_owned(),
            event_type: self.event_type.clone().into_owned(),
            schema: self.schema,
            data: serde_json::from_str(self.data.get())?,
            prev: self.prev.clone().into_owned(),
        })
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
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Micros, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        struct Rfc3339;
        impl serde::de::Visitor<'_> for Rfc3339 {
            type Value = DateTime<Utc>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an RFC 3339 time")
            }
            // Borrowed or not, the text is parsed where it is, without a copy.
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
                DateTime::parse_from_rfc3339(s)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(E::custom)
            }
        }
        d.deserialize_str(Rfc3339)
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
        let view = RecordView::parse(text.as_bytes()).unwrap();
        assert_eq!(view.to_record().unwrap(), rec);
        assert_eq!(view.data.get(), r#"{"a":"å","b":1}"#);
    }

    #[test]
    fn a_view_fails_where_a_record_fails() {
        let good = r#"{"seq":1,"id":"00000000-0000-0000-0000-000000000000","stream":"00000000-0000-0000-0000-000000000000","version":1,"at":"2026-01-02T03:04:05.123456Z","actor":"a\"b","type":"X","schema":1,"data":{"k":[1,2]},"prev":"00"}"#;
        let view = RecordView::parse(good.as_bytes()).unwrap();
        assert_eq!(view.actor, "a\"b");
        let whole: RecordedEvent = serde_json::from_str(good).unwrap();
        assert_eq!(view.to_record().unwrap(), whole);
        for bad in [
            "not json",
            &good.replace("2026-01-02T03:04:05.123456Z", "yesterday"),
            &good.replace(r#""data":{"k":[1,2]},"#, ""),
            &good.replace(r#"{"k":[1,2]}"#, r#"{"k":[1,2}"#),
            &good.replace(r#""version":1"#, r#""version":-1"#),
        ] {
            assert!(RecordView::parse(bad.as_bytes()).is_err(), "{bad}");
            assert!(serde_json::from_str::<RecordedEvent>(bad).is_err(), "{bad}");
        }
    }
}
