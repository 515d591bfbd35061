//! Which fields of which events are personal or free text, and so stored sealed; which
//! deviation's key seals them; and what a shredded field reads as.
//!
//! Everything else stays in the clear: times, severity, aspects, category, sector, status,
//! filing kinds and times, ids, so statistics and the annual report survive gallring.

/// Whose key seals an event's fields.
#[derive(Debug, Clone, Copy)]
pub enum KeyedBy {
    /// The event's stream is the deviation.
    Stream,
    /// The deviation's id is in this field of the data (intake and notification records).
    Field(&'static str),
}

/// What a sealed field reads as once its key is destroyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blank {
    /// "gallrad ÅÅÅÅ-MM-DD enligt beslut …"
    Text,
    /// `null` (optional structured values: the reporter, a mail's sender).
    Null,
    /// `[]` (lists of personal values: recipients, attachments).
    List,
}

/// Where an e-mail address to index sits in the data (before sealing).
#[derive(Debug, Clone, Copy)]
pub enum Indexed {
    /// `field.sub` (a string)
    Nested(&'static str, &'static str),
    /// A string field (an address, or `Name <address>`).
    Field(&'static str),
    /// A list of strings.
    List(&'static str),
}

#[derive(Debug)]
pub struct Spec {
    pub event_type: &'static str,
    pub keyed_by: KeyedBy,
    pub fields: &'static [(&'static str, Blank)],
    /// Addresses put in the clear `blind_index` (HMACs), for the registerutdrag.
    pub indexed: &'static [Indexed],
}

use Blank::*;
use KeyedBy::*;

/// The sealed fields of every event type that has any.
pub const SPECS: &[Spec] = &[
    Spec {
        event_type: "DeviationReported",
        keyed_by: Stream,
        fields: &[
            ("title", Text),
            ("description", Text),
            ("asset", Text),
            ("reporter", Null),
        ],
        indexed: &[Indexed::Nested("reporter", "email")],
    },
    Spec {
        event_type: "DeviationClassified",
        keyed_by: Stream,
        fields: &[("rationale", Text)],
        indexed: &[],
    },
    Spec {
        event_type: "DecisionRecorded",
        keyed_by: Stream,
        fields: &[("text", Text)],
        indexed: &[],
    },
    Spec {
        event_type: "MeasureAdded",
        keyed_by: Stream,
        fields: &[("description", Text)],
        indexed: &[],
    },
    Spec {
        event_type: "MeasureCompleted",
        keyed_by: Stream,
        fields: &[("note", Text)],
        indexed: &[],
    },
    Spec {
        event_type: "CommentAdded",
        keyed_by: Stream,
        fields: &[("text", Text)],
        indexed: &[],
    },
    Spec {
        event_type: "DeviationClosed",
        keyed_by: Stream,
        fields: &[("resolution", Text)],
        indexed: &[],
    },
    Spec {
        event_type: "DeviationReopened",
        keyed_by: Stream,
        fields: &[("reason", Text)],
        indexed: &[],
    },
    Spec {
        event_type: "FilingRecorded",
        keyed_by: Stream,
        fields: &[("notes", Text)],
        indexed: &[],
    },
    Spec {
        event_type: "FilingDeclined",
        keyed_by: Stream,
        fields: &[("rationale", Text)],
        indexed: &[],
    },
    Spec {
        event_type: "AwarenessRecorded",
        keyed_by: Stream,
        fields: &[("reason", Text)],
        indexed: &[],
    },
    Spec {
        event_type: "BreachRecordSaved",
        keyed_by: Stream,
        fields: &[
            ("contact", Text),
            ("summary", Text),
            ("consequences_text", Text),
            ("measures_taken", Text),
            ("measures_proposed", Text),
            ("cross_border_details", Text),
            ("processor", Text),
            ("delay_reason", Text),
        ],
        indexed: &[],
    },
    Spec {
        event_type: "Nis2RecordSaved",
        keyed_by: Stream,
        fields: &[
            ("contact", Text),
            ("summary", Text),
            ("initial_assessment", Text),
            ("impact", Text),
            ("indicators", Text),
            ("threat_and_cause", Text),
            ("mitigation", Text),
            ("cross_border_details", Text),
            ("recipients_information", Text),
        ],
        indexed: &[],
    },
    Spec {
        event_type: "AffectedNoticeDecided",
        keyed_by: Stream,
        fields: &[("text", Text)],
        indexed: &[],
    },
    Spec {
        event_type: "AffectedNotified",
        keyed_by: Stream,
        fields: &[("note", Text)],
        indexed: &[],
    },
    Spec {
        event_type: "AttachmentAdded",
        keyed_by: Stream,
        fields: &[("filename", Text)],
        indexed: &[],
    },
    Spec {
        event_type: "EmailReceived",
        keyed_by: Field("deviation"),
        fields: &[("from", Null), ("subject", Null), ("attachments", List)],
        indexed: &[Indexed::Field("from")],
    },
    Spec {
        event_type: "NotificationSent",
        keyed_by: Field("deviation_id"),
        fields: &[("recipients", List), ("subject", Text)],
        indexed: &[Indexed::List("recipients")],
    },
    Spec {
        event_type: "NotificationFailed",
        keyed_by: Field("deviation_id"),
        fields: &[("recipients", List), ("error", Text)],
        indexed: &[Indexed::List("recipients")],
    },
    Spec {
        event_type: "NotificationAbandoned",
        keyed_by: Field("deviation_id"),
        fields: &[("recipients", List), ("last_error", Text)],
        indexed: &[Indexed::List("recipients")],
    },
];

/// The spec of an event type, if it has sealed fields.
pub fn spec(event_type: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.event_type == event_type)
}

/// An e-mail address as the blind index normalises it: the part in `<…>` if any, trimmed,
/// lower case. `None` when it does not look like an address.
pub fn normalize_address(s: &str) -> Option<String> {
    let s = match (s.rfind('<'), s.rfind('>')) {
        (Some(a), Some(b)) if a < b => &s[a + 1..b],
        _ => s,
    };
    let s = s.trim().to_lowercase();
    (s.contains('@') && !s.chars().any(char::is_whitespace)).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_normalise_for_the_index() {
        assert_eq!(
            normalize_address("Anna Svensson <Anna.Svensson@Kommunen.SE>").as_deref(),
            Some("anna.svensson@kommunen.se")
        );
        assert_eq!(
            normalize_address(" anna@x.se ").as_deref(),
            Some("anna@x.se")
        );
        assert_eq!(normalize_address("anonym"), None);
    }

    #[test]
    fn every_deviation_event_with_free_text_is_sealed() {
        for ty in [
            "DeviationReported",
            "DeviationClassified",
            "DecisionRecorded",
            "MeasureAdded",
            "MeasureCompleted",
            "CommentAdded",
            "DeviationClosed",
            "DeviationReopened",
            "FilingDeclined",
            "BreachRecordSaved",
            "Nis2RecordSaved",
            "AffectedNoticeDecided",
            "AffectedNotified",
        ] {
            assert!(spec(ty).is_some(), "{ty}");
        }
    }
}
