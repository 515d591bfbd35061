//! The registerutdrag (GDPR art. 15) and the gallring list.
//!
//! The registerutdrag finds a person by e-mail address through the blind index: the clear
//! `blind_index` of each event holds HMACs of the addresses its sealed fields name, so the
//! search compares HMACs over the log and opens only the events that match — no mass
//! decryption. Staff are found by their clear actor name (`user:<address>`) and as owners
//! of measures.

use std::collections::BTreeMap;

use avvik_events::{EventStore, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::domain::retention::{RetentionClass, RetentionRules};
use crate::domain::{Deviation, Reference};
use crate::privacy::Keyring;
use crate::register::Register;

/// How the person appears in a deviation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Involvement {
    /// Reported it.
    Reporter,
    /// Sent e-mail about it.
    MailSender,
    /// Was sent e-mail about it.
    MailRecipient,
    /// Handled it (staff): an event of theirs, or a measure they own.
    Handler,
}

impl Involvement {
    pub fn label_sv(self) -> &'static str {
        match self {
            Involvement::Reporter => "rapportör",
            Involvement::MailSender => "avsändare av e-post",
            Involvement::MailRecipient => "mottagare av e-post",
            Involvement::Handler => "handläggare",
        }
    }
}

/// An e-mail about the person, received or sent.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ExtractMail {
    pub at: DateTime<Utc>,
    /// `received` or `sent`.
    pub direction: &'static str,
    #[schema(value_type = String)]
    pub reference: Option<Reference>,
    pub subject: Option<String>,
    pub from: Option<String>,
    /// File names of attachments that came with it.
    pub attachments: Vec<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ExtractDeviation {
    pub involvement: Vec<Involvement>,
    pub deviation: Deviation,
}

/// Everything avvik holds about one person.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RegisterExtract {
    /// The address searched for, normalised.
    pub subject: String,
    pub generated_at: DateTime<Utc>,
    pub deviations: Vec<ExtractDeviation>,
    pub mails: Vec<ExtractMail>,
}

/// The deviation a record is about: the one whose key seals it, else its stream.
fn deviation_of(rec: &avvik_events::RecordedEvent) -> Option<Uuid> {
    crate::privacy::deviation_of_record(rec).or(Some(rec.stream))
}

/// The registerutdrag for `address`, from the log up to now. Blocking (reads the log).
pub fn register_extract(
    store: &dyn EventStore,
    keys: &Keyring,
    register: &Register,
    address: &str,
    now: DateTime<Utc>,
) -> Result<Option<RegisterExtract>, StoreError> {
    let Some(subject) = crate::privacy::seal::normalize_address(address) else {
        return Ok(None);
    };
    let Some(index) = keys.blind_index(&subject) else {
        return Ok(None);
    };
    let actor = format!("user:{subject}");
    let mut involved: BTreeMap<Uuid, Vec<Involvement>> = BTreeMap::new();
    let mut mails = Vec::new();
    let mut add = |id: Uuid, how: Involvement| {
        let v = involved.entry(id).or_default();
        if !v.contains(&how) {
            v.push(how);
        }
    };
    for rec in avvik_events::read_all(store, 1) {
        let rec = match rec {
            Ok(r) => r,
            Err(StoreError::Corrupt { .. }) => continue,
            Err(e) => return Err(e),
        };
        let indexed = rec
            .data
            .get("blind_index")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|h| h.as_str() == Some(index.as_str())));
        let legacy = !indexed && rec.data.get("sealed").is_none() && mentions(&rec.data, &subject);
        if rec.actor.eq_ignore_ascii_case(&actor) {
            if let Some(d) = deviation_of(&rec) {
                add(d, Involvement::Handler);
            }
        }
        if !(indexed || legacy) {
            continue;
        }
        let Some(dev) = deviation_of(&rec) else {
            continue;
        };
        let rec = keys.opened(&rec);
        let reference = register.get(dev).map(|d| d.reference);
        match rec.event_type.as_str() {
            "DeviationReported" => add(dev, Involvement::Reporter),
            "EmailReceived" => {
                add(dev, Involvement::MailSender);
                mails.push(ExtractMail {
                    at: rec.at,
                    direction: "received",
                    reference,
                    subject: str_of(&rec.data, "subject"),
                    from: str_of(&rec.data, "from"),
                    attachments: rec
                        .data
                        .get("attachments")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(|x| x.get("filename")?.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default(),
                });
            }
            "NotificationSent" => {
                add(dev, Involvement::MailRecipient);
                mails.push(ExtractMail {
                    at: rec.at,
                    direction: "sent",
                    reference,
                    subject: str_of(&rec.data, "subject"),
                    from: None,
                    attachments: Vec::new(),
                });
            }
            _ => add(dev, Involvement::MailRecipient),
        }
    }
    for d in register.list() {
        if d.measures
            .iter()
            .any(|m| m.owner.eq_ignore_ascii_case(&subject))
        {
            add(d.id, Involvement::Handler);
        }
    }
    let mut deviations: Vec<ExtractDeviation> = involved
        .into_iter()
        .filter_map(|(id, mut involvement)| {
            involvement.sort();
            Some(ExtractDeviation {
                involvement,
                deviation: register.get(id)?.clone(),
            })
        })
        .collect();
    deviations.sort_by_key(|d| d.deviation.reference);
    Ok(Some(RegisterExtract {
        subject,
        generated_at: now,
        deviations,
        mails,
    }))
}

fn str_of(v: &Value, f: &str) -> Option<String> {
    v.get(f)?.as_str().map(str::to_string)
}

/// Events from before sealing have no blind index: does the clear data name the address?
fn mentions(data: &Value, subject: &str) -> bool {
    match data {
        Value::String(s) => crate::privacy::seal::normalize_address(s).as_deref() == Some(subject),
        Value::Array(a) => a.iter().any(|v| mentions(v, subject)),
        Value::Object(o) => o.values().any(|v| mentions(v, subject)),
        _ => false,
    }
}

/// A deviation due for gallring.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DueItem {
    pub id: Uuid,
    #[schema(value_type = String)]
    pub reference: Reference,
    /// `filed`, `major` or `minor`.
    #[schema(value_type = String)]
    pub class: RetentionClass,
    /// The rule in the plan's words, e.g. "gallras 2 år efter avslut".
    pub rule: String,
    pub closed_at: Option<DateTime<Utc>>,
    pub due_at: DateTime<Utc>,
}

/// Closed deviations whose retention has run out, oldest due first.
pub fn due_for_gallring(
    register: &Register,
    rules: &RetentionRules,
    now: DateTime<Utc>,
) -> Vec<DueItem> {
    let mut out: Vec<DueItem> = register
        .list()
        .into_iter()
        .filter_map(|d| {
            let due_at = rules.due_at(d)?;
            (due_at <= now).then(|| {
                let class = RetentionRules::class_of(d);
                DueItem {
                    id: d.id,
                    reference: d.reference,
                    class,
                    rule: rules.keep(class).label_sv(),
                    closed_at: d.closed_at,
                    due_at,
                }
            })
        })
        .collect();
    out.sort_by_key(|i| (i.due_at, i.reference));
    out
}
