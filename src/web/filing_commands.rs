//! The bodies of the filing records (breach record, NIS2 record, the art. 34 decision and
//! notice): read by the JSON API and built by the staff forms, parsed by the same `parse`,
//! every bad field reported.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::ToSchema;

use super::body::{Field, Problems, Unknown};
use super::commands::{not_in_future, SHORT_MAX, TEXT_MAX};
use super::error::ApiError;
use crate::domain::filing_record::{
    AffectedNoticeDecided, AffectedNotified, BreachRecord, Nis2Record, NoticeDecision,
    CONSEQUENCES, DATA_CATEGORIES, NIS2_SEVERITIES, NOTICE_CHANNELS, SUBJECT_CATEGORIES,
};
use crate::domain::Command;

/// The breach record (GDPR art. 33(3), IMY's form). Saved whole: a field left out is
/// empty in the new version.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct BreachRecordBody {
    /// Who the authority contacts about this breach (empty: the DPO's contact).
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 200)]
    pub contact: Field<String>,
    /// What happened.
    #[serde(default)]
    #[schema(value_type = String, required = true, max_length = 20000)]
    pub summary: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub occurred_from: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub occurred_to: Field<String>,
    /// employees, pupils, children, care_recipients, residents, guardians, other
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub subject_categories: Field<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = Option<u64>)]
    pub subjects_approx: Field<u64>,
    #[serde(default)]
    #[schema(value_type = Option<u64>)]
    pub records_approx: Field<u64>,
    /// identity, personnummer, contact, financial, credentials, location, health,
    /// special_category, criminal, social, other
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub data_categories: Field<Vec<String>>,
    /// loss_of_control, identity_theft, financial_loss, discrimination, reputation,
    /// secrecy, physical, other
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub consequences: Field<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 20000)]
    pub consequences_text: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 20000)]
    pub measures_taken: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 20000)]
    pub measures_proposed: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    pub cross_border: Field<bool>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 20000)]
    pub cross_border_details: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    pub processor_involved: Field<bool>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 20000)]
    pub processor: Field<String>,
    /// Why the notification comes after 72 hours, when it does.
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 20000)]
    pub delay_reason: Field<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

impl BreachRecordBody {
    pub fn parse(&self, now: DateTime<Utc>) -> Result<Command, ApiError> {
        let mut f = Problems::default();
        let text = |f: &mut Problems, k: &str, v: &Field<String>, max: usize| {
            f.text(k, v, false, max).unwrap_or_default()
        };
        let contact = text(&mut f, "contact", &self.contact, SHORT_MAX);
        let summary = f
            .text("summary", &self.summary, true, TEXT_MAX)
            .unwrap_or_default();
        let occurred_from = not_in_future(&mut f, "occurred_from", &self.occurred_from, now, false);
        let occurred_to = not_in_future(&mut f, "occurred_to", &self.occurred_to, now, false);
        if let (Some(a), Some(b)) = (occurred_from, occurred_to) {
            if b < a {
                f.error(
                    "occurred_to",
                    "must not be before occurred_from",
                    "Slutet får inte ligga före början.",
                );
            }
        }
        let record = BreachRecord {
            contact,
            summary,
            occurred_from,
            occurred_to,
            subject_categories: codes(
                &mut f,
                "subject_categories",
                &self.subject_categories,
                SUBJECT_CATEGORIES,
            ),
            subjects_approx: count(&mut f, "subjects_approx", &self.subjects_approx),
            records_approx: count(&mut f, "records_approx", &self.records_approx),
            data_categories: codes(
                &mut f,
                "data_categories",
                &self.data_categories,
                DATA_CATEGORIES,
            ),
            consequences: codes(&mut f, "consequences", &self.consequences, CONSEQUENCES),
            consequences_text: text(
                &mut f,
                "consequences_text",
                &self.consequences_text,
                TEXT_MAX,
            ),
            measures_taken: text(&mut f, "measures_taken", &self.measures_taken, TEXT_MAX),
            measures_proposed: text(
                &mut f,
                "measures_proposed",
                &self.measures_proposed,
                TEXT_MAX,
            ),
            cross_border: f
                .boolean("cross_border", &self.cross_border, false)
                .unwrap_or(false),
            cross_border_details: text(
                &mut f,
                "cross_border_details",
                &self.cross_border_details,
                TEXT_MAX,
            ),
            processor_involved: f
                .boolean("processor_involved", &self.processor_involved, false)
                .unwrap_or(false),
            processor: text(&mut f, "processor", &self.processor, TEXT_MAX),
            delay_reason: text(&mut f, "delay_reason", &self.delay_reason, TEXT_MAX),
        };
        f.finish(&self.unknown)?;
        Ok(Command::SaveBreachRecord(record))
    }
}

/// The NIS2 record (cybersäkerhetslagen 2025:1506). Saved whole.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct Nis2RecordBody {
    /// Who the CSIRT contacts about this incident (empty: the organisation's contact).
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 200)]
    pub contact: Field<String>,
    /// What happened.
    #[serde(default)]
    #[schema(value_type = String, required = true, max_length = 20000)]
    pub summary: Field<String>,
    /// Suspected to be caused by an unlawful or malicious act (early warning).
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    pub suspected_malicious: Field<bool>,
    /// May have cross-border effects (early warning).
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    pub cross_border: Field<bool>,
    /// low, moderate, high, critical
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub severity: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 20000)]
    pub initial_assessment: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 20000)]
    pub impact: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 20000)]
    pub indicators: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<u64>)]
    pub users_affected_approx: Field<u64>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 20000)]
    pub threat_and_cause: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 20000)]
    pub mitigation: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 20000)]
    pub cross_border_details: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    pub recipients_informed: Field<bool>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 20000)]
    pub recipients_information: Field<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

impl Nis2RecordBody {
    pub fn parse(&self) -> Result<Command, ApiError> {
        let mut f = Problems::default();
        let text = |f: &mut Problems, k: &str, v: &Field<String>| {
            f.text(k, v, false, TEXT_MAX).unwrap_or_default()
        };
        let severity = f.text("severity", &self.severity, false, SHORT_MAX);
        if let Some(s) = &severity {
            if !NIS2_SEVERITIES.iter().any(|(c, _)| c == s) {
                f.error(
                    "severity",
                    "must be one of: low, moderate, high, critical",
                    "Välj en allvarlighetsgrad i listan.",
                );
            }
        }
        let record = Nis2Record {
            contact: f
                .text("contact", &self.contact, false, SHORT_MAX)
                .unwrap_or_default(),
            summary: f
                .text("summary", &self.summary, true, TEXT_MAX)
                .unwrap_or_default(),
            suspected_malicious: f.boolean("suspected_malicious", &self.suspected_malicious, false),
            cross_border: f.boolean("cross_border", &self.cross_border, false),
            severity,
            initial_assessment: text(&mut f, "initial_assessment", &self.initial_assessment),
            impact: text(&mut f, "impact", &self.impact),
            indicators: text(&mut f, "indicators", &self.indicators),
            users_affected_approx: count(
                &mut f,
                "users_affected_approx",
                &self.users_affected_approx,
            ),
            threat_and_cause: text(&mut f, "threat_and_cause", &self.threat_and_cause),
            mitigation: text(&mut f, "mitigation", &self.mitigation),
            cross_border_details: text(&mut f, "cross_border_details", &self.cross_border_details),
            recipients_informed: f
                .boolean("recipients_informed", &self.recipients_informed, false)
                .unwrap_or(false),
            recipients_information: text(
                &mut f,
                "recipients_information",
                &self.recipients_information,
            ),
        };
        f.finish(&self.unknown)?;
        Ok(Command::SaveNis2Record(record))
    }
}

/// The decision on telling the people affected (art. 34): `notify` with the notice text,
/// or a ground not to (`no_high_risk`, or art. 34(3) `unintelligible`, `risk_mitigated`,
/// `public_communication`) with the reasoning.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct AffectedNoticeBody {
    #[serde(default)]
    #[schema(value_type = NoticeDecision, required = true)]
    pub decision: Field<NoticeDecision>,
    /// The notice's text (to tell), or why they are not told.
    #[serde(default)]
    #[schema(value_type = String, required = true, max_length = 20000)]
    pub text: Field<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

impl AffectedNoticeBody {
    pub fn parse(&self) -> Result<Command, ApiError> {
        let mut f = Problems::default();
        let decision = f.parsed(
            "decision",
            &self.decision,
            true,
            (
                "one of \"notify\", \"no_high_risk\", \"unintelligible\", \"risk_mitigated\", \"public_communication\"",
                "Välj om de berörda ska informeras, och annars varför inte.",
            ),
        );
        let text = f.text("text", &self.text, true, TEXT_MAX);
        f.finish(&self.unknown)?;
        match (decision, text) {
            (Some(decision), Some(text)) => {
                Ok(Command::DecideAffectedNotice(AffectedNoticeDecided {
                    decision,
                    text,
                }))
            }
            _ => Err(ApiError::BadRequest("incomplete notice decision".into())),
        }
    }
}

/// The notice to the people affected went out: when, how, to about how many.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct AffectedNotifiedBody {
    #[serde(default)]
    #[schema(value_type = String, format = DateTime, required = true)]
    pub sent_at: Field<String>,
    /// letter, email, digital_mailbox, sms, phone, in_person, public
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    pub channel: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<u64>)]
    pub recipients_approx: Field<u64>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 20000)]
    pub note: Field<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

impl AffectedNotifiedBody {
    pub fn parse(&self, now: DateTime<Utc>) -> Result<Command, ApiError> {
        let mut f = Problems::default();
        let sent_at = not_in_future(&mut f, "sent_at", &self.sent_at, now, false);
        if sent_at.is_none() && matches!(self.sent_at, Field::Absent) {
            f.error("sent_at", "is required", "Ange när informationen gick ut.");
        }
        let channel = f.text("channel", &self.channel, true, SHORT_MAX);
        if let Some(c) = &channel {
            if !NOTICE_CHANNELS.iter().any(|(x, _)| x == c) {
                f.error(
                    "channel",
                    "must be one of: letter, email, digital_mailbox, sms, phone, in_person, public",
                    "Välj hur de berörda informerades.",
                );
            }
        }
        let recipients_approx = count(&mut f, "recipients_approx", &self.recipients_approx);
        let note = f
            .text("note", &self.note, false, TEXT_MAX)
            .unwrap_or_default();
        f.finish(&self.unknown)?;
        match (sent_at, channel) {
            (Some(sent_at), Some(channel)) => {
                Ok(Command::RecordAffectedNotified(AffectedNotified {
                    sent_at,
                    channel,
                    recipients_approx,
                    note,
                }))
            }
            _ => Err(ApiError::BadRequest("incomplete notice".into())),
        }
    }
}

/// An optional count: a whole number from 0 to 10^10.
fn count(f: &mut Problems, field: &str, value: &Field<u64>) -> Option<u64> {
    match value {
        Field::Absent => None,
        Field::Given(n) if *n <= 10_000_000_000 => Some(*n),
        _ => {
            f.error(
                field,
                "must be a whole number from 0 to 10000000000",
                "Ange ett heltal (ungefärligt antal).",
            );
            None
        }
    }
}

/// Codes from one list, each once, in the list's order.
fn codes(
    f: &mut Problems,
    field: &str,
    value: &Field<Vec<String>>,
    list: &[(&str, &str)],
) -> Vec<String> {
    match value {
        Field::Absent => Vec::new(),
        Field::Given(given) => {
            if let Some(bad) = given.iter().find(|g| !list.iter().any(|(c, _)| c == g)) {
                let all: Vec<&str> = list.iter().map(|(c, _)| *c).collect();
                let en = format!(
                    "unknown code {:?}; must be among: {}",
                    bad.chars().take(40).collect::<String>(),
                    all.join(", ")
                );
                f.error(field, &en, "Välj bland alternativen i listan.");
                return Vec::new();
            }
            list.iter()
                .filter(|(c, _)| given.iter().any(|g| g == c))
                .map(|(c, _)| (*c).to_string())
                .collect()
        }
        Field::Wrong => {
            f.error(
                field,
                "must be a list of codes",
                "Välj bland alternativen i listan.",
            );
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::body::from_json;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 10, 25, 12, 0, 0).unwrap()
    }

    fn fields(r: Result<Command, ApiError>) -> Vec<String> {
        match r {
            Err(ApiError::Validation(e)) => e.into_iter().map(|e| e.field).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_breach_record_keeps_codes_in_list_order_and_checks_every_field() {
        let b: BreachRecordBody = from_json(
            br#"{"summary": " Lista med elevers personnummer skickad till fel mottagare ",
                 "data_categories": ["health", "personnummer", "health"],
                 "subjects_approx": 1200, "cross_border": false,
                 "occurred_from": "2026-10-24T08:00:00+02:00"}"#,
        )
        .unwrap();
        let Ok(Command::SaveBreachRecord(r)) = b.parse(now()) else {
            panic!()
        };
        assert_eq!(
            r.summary,
            "Lista med elevers personnummer skickad till fel mottagare"
        );
        assert_eq!(r.data_categories, ["personnummer", "health"]);
        assert_eq!(r.subjects_approx, Some(1200));
        assert_eq!(
            r.occurred_from,
            Some(Utc.with_ymd_and_hms(2026, 10, 24, 6, 0, 0).unwrap())
        );

        let b: BreachRecordBody = from_json(
            br#"{"data_categories": ["dna"], "subjects_approx": -1, "records_approx": "many",
                 "occurred_from": "2026-10-24T08:00:00Z", "occurred_to": "2026-10-23T08:00:00Z",
                 "cross_border": "ja", "colour": 1}"#,
        )
        .unwrap();
        assert_eq!(
            fields(b.parse(now())),
            [
                "summary",
                "occurred_to",
                "subjects_approx",
                "records_approx",
                "data_categories",
                "cross_border",
                "colour"
            ]
        );
    }

    #[test]
    fn a_nis2_record_checks_its_severity() {
        let b: Nis2RecordBody =
            from_json(br#"{"summary": "Utpressningsvirus", "severity": "huge"}"#).unwrap();
        assert_eq!(fields(b.parse()), ["severity"]);
        let b: Nis2RecordBody = from_json(
            br#"{"summary": "Utpressningsvirus", "severity": "high", "suspected_malicious": true}"#,
        )
        .unwrap();
        let Ok(Command::SaveNis2Record(r)) = b.parse() else {
            panic!()
        };
        assert_eq!(r.severity.as_deref(), Some("high"));
        assert_eq!(r.suspected_malicious, Some(true));
        assert_eq!(r.cross_border, None);
    }

    #[test]
    fn the_notice_needs_a_decision_text_time_and_channel() {
        let b: AffectedNoticeBody = from_json(br#"{"decision": "maybe"}"#).unwrap();
        assert_eq!(fields(b.parse()), ["decision", "text"]);
        let b: AffectedNotifiedBody =
            from_json(br#"{"channel": "pigeon", "sent_at": "2027-01-01T00:00:00Z"}"#).unwrap();
        assert_eq!(fields(b.parse(now())), ["sent_at", "channel"]);
        let b: AffectedNotifiedBody = from_json(br#"{}"#).unwrap();
        assert_eq!(fields(b.parse(now())), ["sent_at", "channel"]);
    }
}
