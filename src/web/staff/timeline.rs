//! A deviation's timeline: its own events and the e-mail events about it, decoded into the
//! domain's and the notifier's typed events and told in Swedish, newest first. A renamed
//! payload field fails to decode here (and says so) instead of silently showing nothing.

use avvik_events::RecordedEvent;
use uuid::Uuid;

use crate::domain::deviation::DeviationEvent;
use crate::domain::labels;
use crate::notify::events::{
    EscalationAcknowledged, NotificationAbandoned, NotificationFailed, NotificationSent,
    NotificationUndeliverable, ESCALATION_ACKNOWLEDGED, NOTIFICATION_ABANDONED,
    NOTIFICATION_FAILED, NOTIFICATION_SENT, NOTIFICATION_UNDELIVERABLE,
};
use crate::web::pages::{stockholm_display, PageError};
use crate::web::AppState;

pub struct TimelineEntry {
    pub seq: u64,
    pub at: String,
    pub at_iso: String,
    pub actor: String,
    pub what: String,
    pub details: Vec<String>,
}

/// Everything the timeline shows, typed.
#[derive(Debug)]
enum TimelineEvent {
    Deviation(DeviationEvent),
    Sent(NotificationSent),
    Failed(NotificationFailed),
    Abandoned(NotificationAbandoned),
    Undeliverable(NotificationUndeliverable),
    Acknowledged(EscalationAcknowledged),
}

impl TimelineEvent {
    /// Decodes a stored record; `None` for a type the timeline does not know.
    fn decode(r: &RecordedEvent) -> Option<Result<Self, serde_json::Error>> {
        fn typed<T: serde::de::DeserializeOwned>(
            r: &RecordedEvent,
            wrap: fn(T) -> TimelineEvent,
        ) -> Option<Result<TimelineEvent, serde_json::Error>> {
            Some(T::deserialize(&r.data).map(wrap))
        }
        match r.event_type.as_str() {
            NOTIFICATION_SENT => typed(r, TimelineEvent::Sent),
            NOTIFICATION_FAILED => typed(r, TimelineEvent::Failed),
            NOTIFICATION_ABANDONED => typed(r, TimelineEvent::Abandoned),
            NOTIFICATION_UNDELIVERABLE => typed(r, TimelineEvent::Undeliverable),
            ESCALATION_ACKNOWLEDGED => typed(r, TimelineEvent::Acknowledged),
            ty => {
                DeviationEvent::from_parts(ty, &r.data).map(|res| res.map(TimelineEvent::Deviation))
            }
        }
    }
}

/// The timeline of deviation `id`, newest first.
pub fn entries(state: &AppState, id: Uuid) -> Result<Vec<TimelineEntry>, PageError> {
    let mut records = state
        .services
        .store
        .read_stream(id, 1)
        .map_err(|e| PageError::Internal(e.into()))?;
    for r in &mut records {
        state.services.keys.open_record(r);
    }
    // E-mail deliveries and acknowledgements live in their own streams (read opened);
    // merge by seq.
    records.extend(
        state
            .notify
            .timeline_for(id)
            .map_err(|e| PageError::Internal(e.into()))?,
    );
    records.sort_by_key(|r| r.seq);
    records.dedup_by_key(|r| r.seq);
    Ok(records.iter().rev().map(entry).collect())
}

fn entry(r: &RecordedEvent) -> TimelineEntry {
    let (what, details) = match TimelineEvent::decode(r) {
        Some(Ok(e)) => describe(&e),
        Some(Err(error)) => {
            tracing::warn!(seq = r.seq, event_type = %r.event_type, %error, "a stored event does not decode for the timeline");
            (
                r.event_type.clone(),
                vec!["Händelsen kunde inte läsas.".to_string()],
            )
        }
        None => (r.event_type.clone(), Vec::new()),
    };
    TimelineEntry {
        seq: r.seq,
        at: stockholm_display(r.at),
        at_iso: r.at.to_rfc3339(),
        actor: actor_sv(&r.actor),
        what,
        details: details.into_iter().filter(|x| !x.is_empty()).collect(),
    }
}

/// Who did something, for people.
pub fn actor_sv(actor: &str) -> String {
    crate::domain::Actor::parse(actor).label_sv()
}

/// A line per event: what happened, in Swedish, with its details.
fn describe(e: &TimelineEvent) -> (String, Vec<String>) {
    match e {
        TimelineEvent::Deviation(d) => describe_deviation(d),
        TimelineEvent::Sent(n) => (
            format!("E-post skickad: {}", n.subject),
            vec![format!(
                "Till {} (försök {})",
                n.recipients.join(", "),
                n.attempt
            )],
        ),
        TimelineEvent::Failed(n) => (
            "E-post kunde inte skickas".into(),
            vec![format!(
                "Till {}: {} (försök {}, nytt försök {})",
                n.recipients.join(", "),
                n.error,
                n.attempt,
                stockholm_display(n.next_retry_at)
            )],
        ),
        TimelineEvent::Abandoned(n) => (
            "E-post uppgiven efter upprepade fel".into(),
            vec![format!(
                "Till {}: {}",
                n.recipients.join(", "),
                n.last_error
            )],
        ),
        TimelineEvent::Undeliverable(n) => (
            "E-post kunde inte skickas: ingen mottagare".into(),
            vec![format!(
                "Ingen e-postadress för {}; skickas när en adress läggs till",
                n.group.label_sv()
            )],
        ),
        TimelineEvent::Acknowledged(a) => (
            "Kvitterad".into(),
            vec![format!("{} ({})", a.recipient, a.group.label_sv())],
        ),
    }
}

fn describe_deviation(e: &DeviationEvent) -> (String, Vec<String>) {
    match e {
        DeviationEvent::Reported(r) => ("Rapporterad".into(), vec![r.title.clone()]),
        DeviationEvent::Classified(c) => {
            let mut d = vec![format!("Kategori: {}", c.category)];
            if !c.rationale.is_empty() {
                d.push(format!("Motivering: {}", c.rationale));
            }
            (
                format!("Klassad som {} avvikelse", labels::severity(c.severity)),
                d,
            )
        }
        DeviationEvent::DecisionRecorded(x) => {
            (format!("Beslut ({})", x.role), vec![x.text.clone()])
        }
        DeviationEvent::MeasureAdded(m) => (
            "Åtgärd tillagd".into(),
            vec![format!(
                "{} – ansvarig {}, klar senast {}",
                m.description,
                m.owner,
                m.due.format("%Y-%m-%d")
            )],
        ),
        DeviationEvent::MeasureCompleted(m) => ("Åtgärd slutförd".into(), vec![m.note.clone()]),
        DeviationEvent::CommentAdded(c) => {
            let what = if c.unverified_email && c.from_reporter {
                "Overifierad e-post (avsändaren anger rapportörens adress)"
            } else if c.unverified_email {
                "Overifierad e-post (avsändaren kunde inte kontrolleras)"
            } else if c.from_reporter {
                "Meddelande från rapportören"
            } else if c.to_reporter {
                "Meddelande till rapportören"
            } else {
                "Intern kommentar"
            };
            (what.into(), vec![c.text.clone()])
        }
        DeviationEvent::Closed(c) => ("Avslutad".into(), vec![c.resolution.clone()]),
        DeviationEvent::Reopened(r) => ("Återöppnad".into(), vec![r.reason.clone()]),
        DeviationEvent::FilingRecorded(f) => (
            "Anmälan registrerad".into(),
            vec![format!(
                "{} till {}{}",
                labels::filing_kind(f.kind),
                f.authority,
                match &f.their_reference {
                    Some(r) if !r.is_empty() => format!(", diarienummer {r}"),
                    _ => String::new(),
                }
            )],
        ),
        DeviationEvent::FilingDeclined(f) => (
            "Beslut att inte anmäla".into(),
            vec![format!("{}: {}", labels::filing_kind(f.kind), f.rationale)],
        ),
        DeviationEvent::AwarenessRecorded(a) => (
            format!("Kännedom om {}", a.regime.label_sv()),
            vec![match &a.reason {
                Some(r) => format!("Ändrad till {}: {r}", stockholm_display(a.aware_at)),
                None => format!(
                    "{} (första klassningen som sådan)",
                    stockholm_display(a.aware_at)
                ),
            }],
        ),
        DeviationEvent::IncidentHandlingEnded(e) => (
            "Incidenthanteringen avslutad (NIS2)".into(),
            vec![stockholm_display(e.ended_at)],
        ),
        DeviationEvent::Shredded(s) => (
            "Gallrad".into(),
            vec![format!("Enligt gallringsbeslut {}", s.decision)],
        ),
        DeviationEvent::BreachRecordSaved(r) => (
            "Uppgifter om personuppgiftsincidenten sparade".into(),
            vec![r.summary.clone()],
        ),
        DeviationEvent::Nis2RecordSaved(r) => (
            "Uppgifter om NIS2-incidenten sparade".into(),
            vec![r.summary.clone()],
        ),
        DeviationEvent::AffectedNoticeDecided(n) => (
            "Beslut om information till de berörda (art. 34)".into(),
            vec![n.decision.label_sv().to_string(), n.text.clone()],
        ),
        DeviationEvent::LinkedToIncident(l) => (
            "Kopplad till incident".into(),
            vec![format!(
                "{} till {}",
                l.relation.label_sv(),
                l.incident_reference
            )],
        ),
        DeviationEvent::AttachmentAdded(a) => (
            if a.from_reporter {
                "Bilaga från rapportören".into()
            } else {
                "Bilaga".into()
            },
            vec![format!(
                "{} ({}, {} byte)",
                a.filename, a.content_type, a.size
            )],
        ),
        DeviationEvent::UnlinkedFromIncident(_) => {
            ("Kopplingen till incidenten borttagen".into(), vec![])
        }
        DeviationEvent::SupplierRecorded(s) => (
            "Leverantör".into(),
            vec![format!(
                "{}{}",
                s.supplier.as_deref().unwrap_or("ingen"),
                if s.reported_by_supplier {
                    " (rapporten kom från leverantören)"
                } else {
                    ""
                }
            )],
        ),
        DeviationEvent::HandlersAssigned(h) => (
            "Handläggare".into(),
            vec![format!(
                "Handläggare: {}. Ersättare: {}.",
                h.owner.as_deref().unwrap_or("ingen"),
                h.deputy.as_deref().unwrap_or("ingen")
            )],
        ),
        DeviationEvent::AffectedNotified(n) => (
            "De berörda informerade".into(),
            vec![format!(
                "{} via {}{}{}",
                stockholm_display(n.sent_at),
                crate::domain::filing_record::label(
                    crate::domain::filing_record::NOTICE_CHANNELS,
                    &n.channel
                )
                .to_lowercase(),
                n.recipients_approx
                    .map(|c| format!(", till omkring {c} personer"))
                    .unwrap_or_default(),
                if n.note.is_empty() {
                    String::new()
                } else {
                    format!(". {}", n.note)
                }
            )],
        ),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    use super::*;

    fn record(ty: &str, data: serde_json::Value) -> RecordedEvent {
        RecordedEvent {
            seq: 7,
            id: Uuid::from_u128(1),
            stream: Uuid::from_u128(2),
            version: 1,
            at: Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap(),
            actor: "user:ciso@kommunen.example".into(),
            event_type: ty.into(),
            schema: 1,
            data,
            prev: String::new(),
        }
    }

    #[test]
    fn a_declined_filing_shows_its_rationale() {
        let e = entry(&record(
            "FilingDeclined",
            json!({"kind": "nis2_early_warning", "rationale": "Ingen betydande påverkan"}),
        ));
        assert_eq!(e.what, "Beslut att inte anmäla");
        assert_eq!(
            e.details,
            ["NIS2 tidig varning (24 h): Ingen betydande påverkan"]
        );
        assert_eq!(e.actor, "ciso@kommunen.example");
    }

    #[test]
    fn an_event_that_does_not_decode_says_so() {
        let e = entry(&record("DeviationClosed", json!({"resolved": "x"})));
        assert_eq!(e.what, "DeviationClosed");
        assert_eq!(e.details, ["Händelsen kunde inte läsas."]);
        let unknown = entry(&record("SomethingNew", json!({})));
        assert_eq!(unknown.what, "SomethingNew");
        assert!(unknown.details.is_empty());
    }
}
