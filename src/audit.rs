//! Audit views over the log: the register and accounts as of a moment, one deviation's
//! history with the state after each step, and what changed between two moments. All
//! are folds; nothing here writes.

use std::collections::BTreeMap;

use avvik_events::{EventStore, RecordedEvent, StoreError};
use serde::Serialize;
use serde_json::Value;

use crate::domain::{evolve, Deviation, DeviationEvent};
use crate::register::Register;

/// One step of a deviation's history, with the state it left.
#[derive(Debug, Serialize)]
pub struct HistoryStep {
    pub seq: u64,
    pub at: String,
    pub actor: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub data: Value,
    pub prev: String,
    /// Hex SHA-256 of this record's stored bytes (the next record's `prev`).
    pub hash: String,
    pub state: Option<Deviation>,
}

/// Every event of one deviation's stream, each with the state after it.
pub fn history(
    store: &dyn EventStore,
    keys: &crate::privacy::Keyring,
    deviation: uuid::Uuid,
) -> Result<Vec<HistoryStep>, StoreError> {
    let records = store.read_stream(deviation, 1)?;
    let mut state: Option<Deviation> = None;
    let mut out = Vec::with_capacity(records.len());
    for stored in records {
        // The hash is of the stored (sealed) bytes; the data shown is opened.
        let hash = avvik_events::hash_hex(&stored.to_bytes());
        let rec = keys.opened(&stored);
        if let Some(Ok(ev)) = DeviationEvent::from_parts(&rec.event_type, &rec.data) {
            let meta = crate::projection::meta_of(&rec);
            state = evolve(state, rec.stream, &ev, &meta);
        }
        let mut s = step(&rec, state.clone());
        s.hash = hash;
        out.push(s);
    }
    Ok(out)
}

fn step(rec: &RecordedEvent, state: Option<Deviation>) -> HistoryStep {
    HistoryStep {
        seq: rec.seq,
        at: rec.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        actor: rec.actor.clone(),
        event_type: rec.event_type.clone(),
        data: rec.data.clone(),
        prev: rec.prev.clone(),
        hash: avvik_events::hash_hex(&rec.to_bytes()),
        state,
    }
}

/// One field that differs between two states.
#[derive(Debug, Serialize, PartialEq)]
pub struct FieldChange {
    pub field: String,
    pub before: Value,
    pub after: Value,
}

/// How one deviation changed in an interval.
#[derive(Debug, Serialize)]
pub struct DeviationChange {
    pub reference: String,
    pub title: String,
    /// What happened, in plain words: added, reclassified, decided, measures, closed, reopened…
    pub kinds: Vec<&'static str>,
    pub fields: Vec<FieldChange>,
}

#[derive(Debug, Serialize)]
pub struct Changes {
    pub from_seq: u64,
    pub to_seq: u64,
    pub changes: Vec<DeviationChange>,
}

/// Fields compared, in display order. Bookkeeping fields (version, last_seq, updated_at)
/// are left out: they change with every event.
const FIELDS: &[&str] = &[
    "title",
    "description",
    "status",
    "severity",
    "aspects",
    "category",
    "sector",
    "asset",
    "personal_data_breach",
    "nis2_significant",
    "resolution",
    "classifications",
    "decisions",
    "measures",
    "comments",
    "filings",
    "deadlines",
];

/// Field-by-field differences of every deviation between two points of the log.
pub fn changes(before: &Register, after: &Register) -> Changes {
    let mut out = Vec::new();
    for d in after.list().into_iter().rev() {
        let old = before.get(d.id);
        let new_v = serde_json::to_value(d).unwrap_or(Value::Null);
        let old_v = old.map(|o| serde_json::to_value(o).unwrap_or(Value::Null));
        let mut fields = Vec::new();
        for f in FIELDS {
            let a = old_v
                .as_ref()
                .and_then(|v| v.get(*f))
                .cloned()
                .unwrap_or(Value::Null);
            let b = new_v.get(*f).cloned().unwrap_or(Value::Null);
            if a != b {
                fields.push(FieldChange {
                    field: (*f).to_string(),
                    before: a,
                    after: b,
                });
            }
        }
        if old.is_some() && fields.is_empty() {
            continue;
        }
        let mut kinds = Vec::new();
        match old {
            None => kinds.push("added"),
            Some(o) => {
                if o.classifications.len() < d.classifications.len() {
                    kinds.push(if o.classifications.is_empty() {
                        "classified"
                    } else {
                        "reclassified"
                    });
                }
                if o.decisions.len() < d.decisions.len() {
                    kinds.push("decided");
                }
                if o.measures != d.measures {
                    kinds.push("measures");
                }
                if o.comments.len() < d.comments.len() {
                    kinds.push("commented");
                }
                if o.filings.len() < d.filings.len() {
                    kinds.push("filed");
                }
                if o.status != d.status {
                    kinds.push(match d.status {
                        crate::domain::Status::Closed => "closed",
                        _ if o.status == crate::domain::Status::Closed => "reopened",
                        _ => "status",
                    });
                }
            }
        }
        out.push(DeviationChange {
            reference: d.reference.to_string(),
            title: d.title.clone(),
            kinds,
            fields,
        });
    }
    Changes {
        from_seq: before.seq(),
        to_seq: after.seq(),
        changes: out,
    }
}

/// Accounts with their roles as they stood, for "who could do what, when".
#[derive(Debug, Serialize)]
pub struct AccountAsOf {
    pub email: String,
    pub name: String,
    pub disabled: bool,
    pub roles: Vec<crate::domain::account::RoleGrant>,
}

pub fn accounts(reg: &Register) -> Vec<AccountAsOf> {
    reg.accounts
        .list()
        .into_iter()
        .map(|a| AccountAsOf {
            email: a.email.to_string(),
            name: a.name.clone(),
            disabled: a.disabled,
            roles: a.roles.clone(),
        })
        .collect()
}

/// Counts of event types in a range (for the audit overview).
pub fn type_counts(
    store: &dyn EventStore,
    to_seq: u64,
) -> Result<BTreeMap<String, u64>, StoreError> {
    let mut counts = BTreeMap::new();
    for rec in avvik_events::read_all(store, 1) {
        let rec = match rec {
            Ok(rec) => rec,
            // Counted, not fatal: the integrity check names it.
            Err(StoreError::Corrupt { seq, .. }) if seq <= to_seq => {
                *counts.entry("(unreadable)".to_string()).or_insert(0) += 1;
                continue;
            }
            Err(StoreError::Corrupt { .. }) => break,
            Err(e) => return Err(e),
        };
        if rec.seq > to_seq {
            break;
        }
        *counts.entry(rec.event_type).or_insert(0) += 1;
    }
    Ok(counts)
}
