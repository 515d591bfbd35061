//! The deviation aggregate: its events, its state, and the pure decider.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::filing_record::{
    AffectedNotice, AffectedNoticeDecided, AffectedNotified, BreachRecord, Nis2Record, NoticeSent,
    Saved,
};
use super::types::{
    Aspects, Channel, FilingKind, PersonalDataBreach, Reference, Regime, Reporter, Severity,
};

pub use super::deadlines::{Awareness, ClockStart};

/// A deviation was reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reported {
    pub reference: Reference,
    pub title: String,
    pub description: String,
    pub occurred_at: Option<DateTime<Utc>>,
    pub discovered_at: DateTime<Utc>,
    pub sector: Option<String>,
    pub asset: Option<String>,
    /// The reporter's guess that personal data may be involved.
    pub personal_data: bool,
    pub reporter: Option<Reporter>,
    pub channel: Channel,
    /// SHA-256 (hex) of the private status token; the token itself is never stored.
    pub status_token_hash: String,
    pub reported_at: DateTime<Utc>,
}

/// A (re)classification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Classification {
    pub severity: Severity,
    pub aspects: Aspects,
    pub category: String,
    pub personal_data_breach: PersonalDataBreach,
    pub nis2_significant: bool,
    pub rationale: String,
    /// The role the classifier acted in, e.g. `ciso` or `kontakt`.
    pub role: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecorded {
    pub text: String,
    pub role: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasureAdded {
    pub measure_id: Uuid,
    pub description: String,
    pub owner: String,
    pub due: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasureCompleted {
    pub measure_id: Uuid,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommentAdded {
    pub text: String,
    /// Shown to the reporter on the status page (and sent to them).
    pub to_reporter: bool,
    /// Written by the reporter rather than staff.
    pub from_reporter: bool,
    /// Came by e-mail whose sender the trusted MTA did not authenticate: the From address
    /// may be forged. Absent (false) in events from before this field.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unverified_email: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Closed {
    pub resolution: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reopened {
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilingRecorded {
    pub kind: FilingKind,
    pub authority: String,
    pub filed_at: DateTime<Utc>,
    pub their_reference: Option<String>,
    /// SHA-256 (hex) of the content sent to the authority. Absent in events from before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_sha256: Option<String>,
}

/// When the controller became aware: of a (possible) personal-data breach (GDPR art.
/// 33(1)) or of an incident's significance (NIS2). The clocks run from the latest one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AwarenessRecorded {
    pub regime: Regime,
    pub aware_at: DateTime<Utc>,
    /// Why it was set or changed; absent when set by default on classification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Who handles the deviation (handläggare) and who stands in (ersättare): staff e-mail
/// addresses, both given each time (`None` clears one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandlersAssigned {
    pub owner: Option<String>,
    pub deputy: Option<String>,
}

/// How a deviation relates to the incident it is linked to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    /// Another report of the same incident (e.g. twelve employees about one supplier
    /// breach): handled, classified, escalated and filed once, on the incident.
    Report,
    /// The same report twice.
    Duplicate,
}

impl LinkKind {
    pub fn label_sv(self) -> &'static str {
        match self {
            LinkKind::Report => "rapport om samma incident",
            LinkKind::Duplicate => "dubblett",
        }
    }
}

/// The deviation was linked to an incident (another deviation, the parent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkedToIncident {
    pub incident: Uuid,
    pub incident_reference: Reference,
    pub relation: LinkKind,
}

/// The link to the incident was removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnlinkedFromIncident {
    pub incident: Uuid,
}

/// Which supplier is involved, and whether the report came from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SupplierRecorded {
    /// The supplier's (an organisation's) name; `None` clears it.
    pub supplier: Option<String>,
    /// The report came from the supplier (the "leverantör" channel).
    pub reported_by_supplier: bool,
}

/// A file attached from the public form, the status page or the staff page: stored
/// sealed under `attachments/<deviation>/<sha256>`; its name is sealed here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttachmentAdded {
    pub sha256: String,
    pub filename: String,
    /// Sniffed from the content, e.g. `application/pdf`.
    pub content_type: String,
    pub size: u64,
    pub from_reporter: bool,
}

/// The handling of a NIS2 incident ended (it is no longer ongoing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentHandlingEnded {
    pub ended_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilingDeclined {
    pub kind: FilingKind,
    pub rationale: String,
}

/// Gallring: the deviation's personal and free-text fields are destroyed (its data key is
/// destroyed right after this is stored). Times, classification and filings stay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shredded {
    /// The gallringsbeslut's reference (diarienummer or the plan's point).
    pub decision: String,
    /// The retention class the deviation was due under, e.g. `minor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
}

/// The words every view shows in place of a shredded field.
pub fn shredded_text(at: DateTime<Utc>, decision: &str) -> String {
    let date = at
        .with_timezone(&chrono_tz::Europe::Stockholm)
        .format("%Y-%m-%d");
    format!("gallrad {date} enligt beslut {decision}")
}

super::event_enum! {
    /// Everything that can happen to a deviation. Stored as `type` + `data`.
    DeviationEvent {
    Reported(Reported) = "DeviationReported",
    Classified(Classification) = "DeviationClassified",
    DecisionRecorded(DecisionRecorded) = "DecisionRecorded",
    MeasureAdded(MeasureAdded) = "MeasureAdded",
    MeasureCompleted(MeasureCompleted) = "MeasureCompleted",
    CommentAdded(CommentAdded) = "CommentAdded",
    Closed(Closed) = "DeviationClosed",
    Reopened(Reopened) = "DeviationReopened",
    FilingRecorded(FilingRecorded) = "FilingRecorded",
    FilingDeclined(FilingDeclined) = "FilingDeclined",
    AwarenessRecorded(AwarenessRecorded) = "AwarenessRecorded",
    IncidentHandlingEnded(IncidentHandlingEnded) = "IncidentHandlingEnded",
    Shredded(Shredded) = "DeviationShredded",
    BreachRecordSaved(Box<BreachRecord>) = "BreachRecordSaved",
    Nis2RecordSaved(Box<Nis2Record>) = "Nis2RecordSaved",
    AffectedNoticeDecided(AffectedNoticeDecided) = "AffectedNoticeDecided",
    AffectedNotified(AffectedNotified) = "AffectedNotified",
    HandlersAssigned(HandlersAssigned) = "HandlersAssigned",
    LinkedToIncident(LinkedToIncident) = "LinkedToIncident",
    UnlinkedFromIncident(UnlinkedFromIncident) = "UnlinkedFromIncident",
    SupplierRecorded(SupplierRecorded) = "SupplierRecorded",
    AttachmentAdded(AttachmentAdded) = "AttachmentAdded",
    }
}

/// Where a deviation is in its handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Received,
    Investigating,
    Closed,
}

impl Status {
    pub fn label_sv(self) -> &'static str {
        match self {
            Status::Received => "mottagen",
            Status::Investigating => "under utredning",
            Status::Closed => "avslutad",
        }
    }
}

/// Envelope facts evolve needs (who and when), taken from the stored record.
#[derive(Debug, Clone, PartialEq)]
pub struct EventMeta {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub actor: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClassificationEntry {
    #[serde(flatten)]
    pub classification: Classification,
    pub by: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Decision {
    pub text: String,
    pub by: String,
    pub role: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Measure {
    pub id: Uuid,
    pub description: String,
    pub owner: String,
    pub due: NaiveDate,
    pub added_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub completion_note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Comment {
    pub text: String,
    pub by: String,
    pub at: DateTime<Utc>,
    pub to_reporter: bool,
    pub from_reporter: bool,
    /// From an e-mail whose sender was not authenticated (`CommentAdded.unverified_email`).
    #[serde(default)]
    pub unverified_email: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Filing {
    pub kind: FilingKind,
    pub authority: Option<String>,
    pub filed_at: Option<DateTime<Utc>>,
    pub their_reference: Option<String>,
    /// SHA-256 (hex) of what was sent.
    #[serde(default)]
    pub content_sha256: Option<String>,
    /// Set when it was decided not to file.
    pub not_filed_rationale: Option<String>,
    pub recorded_by: String,
    pub recorded_at: DateTime<Utc>,
}

/// A file attached on the web.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Attachment {
    pub sha256: String,
    pub filename: String,
    pub content_type: String,
    pub size: u64,
    pub from_reporter: bool,
    pub by: String,
    pub at: DateTime<Utc>,
}

/// The incident a deviation is linked to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IncidentLink {
    pub id: Uuid,
    #[schema(value_type = String, example = "AVV-2026-0001")]
    pub reference: Reference,
    pub relation: LinkKind,
    pub by: String,
    pub at: DateTime<Utc>,
}

/// When and under which decision a deviation was gallrad.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Shredding {
    pub at: DateTime<Utc>,
    pub by: String,
    pub decision: String,
    /// "gallrad ÅÅÅÅ-MM-DD enligt beslut …"
    pub text: String,
}

/// A statutory clock and whether it is settled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Deadline {
    pub kind: FilingKind,
    pub due: DateTime<Utc>,
    /// When it was filed or decided not to file.
    pub settled_at: Option<DateTime<Utc>>,
    /// Frozen once settled: filed after `due`.
    pub late: Option<bool>,
}

/// The current state of one deviation: a fold over its events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Deviation {
    pub id: Uuid,
    #[schema(value_type = String, example = "AVV-2026-0001")]
    pub reference: Reference,
    pub title: String,
    pub description: String,
    pub status: Status,
    pub severity: Option<Severity>,
    pub aspects: Aspects,
    pub category: Option<String>,
    pub sector: Option<String>,
    pub asset: Option<String>,
    pub personal_data_suspected: bool,
    pub personal_data_breach: Option<PersonalDataBreach>,
    pub nis2_significant: Option<bool>,
    pub reporter: Option<Reporter>,
    pub channel: Channel,
    pub occurred_at: Option<DateTime<Utc>>,
    pub discovered_at: DateTime<Utc>,
    pub reported_at: DateTime<Utc>,
    pub classified_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub resolution: Option<String>,
    pub classifications: Vec<ClassificationEntry>,
    pub decisions: Vec<Decision>,
    pub measures: Vec<Measure>,
    pub comments: Vec<Comment>,
    pub filings: Vec<Filing>,
    pub deadlines: Vec<Deadline>,
    /// Every recorded awareness time, oldest first (the latest per regime counts).
    #[serde(default)]
    pub awareness: Vec<Awareness>,
    /// When the handling of the NIS2 incident ended.
    #[serde(default)]
    pub incident_handling_ended_at: Option<DateTime<Utc>>,
    /// Set once the deviation is gallrad: its personal and free-text fields then read as
    /// `shredding.text`.
    #[serde(default)]
    pub shredded: Option<Box<Shredding>>,
    /// The breach record (GDPR art. 33(3)), as last saved.
    #[serde(default)]
    pub breach_record: Option<Box<Saved<BreachRecord>>>,
    /// The NIS2 record, as last saved.
    #[serde(default)]
    pub nis2_record: Option<Box<Saved<Nis2Record>>>,
    /// The decision on telling the people affected (art. 34) and when it went out.
    #[serde(default)]
    pub affected_notice: Option<Box<AffectedNotice>>,
    /// The handläggare (a staff e-mail address).
    #[serde(default)]
    pub owner: Option<String>,
    /// The ersättare, who stands in for the owner.
    #[serde(default)]
    pub deputy: Option<String>,
    /// The incident this deviation is a report of (or a duplicate of): classification,
    /// escalation and filings happen there.
    #[serde(default)]
    pub incident: Option<Box<IncidentLink>>,
    /// The supplier involved (an organisation's name).
    #[serde(default)]
    pub supplier: Option<String>,
    /// The report came from the supplier.
    #[serde(default)]
    pub reported_by_supplier: bool,
    /// Files attached on the web (intake's e-mail attachments are intake's).
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    /// Number of events in the stream.
    pub version: u32,
    /// Seq of the last event applied.
    pub last_seq: u64,
    pub updated_at: DateTime<Utc>,
}

impl Deviation {
    pub fn measure(&self, id: Uuid) -> Option<&Measure> {
        self.measures.iter().find(|m| m.id == id)
    }

    pub fn filing(&self, kind: FilingKind) -> Option<&Filing> {
        self.filings.iter().find(|f| f.kind == kind)
    }

    /// Replaces every personal and free-text field with `text` (gallring). Times,
    /// classification, filings' kinds and times, and measure owners stay.
    pub fn scrub(&mut self, text: &str) {
        let t = || text.to_string();
        self.title = t();
        self.description = t();
        if self.asset.is_some() {
            self.asset = Some(t());
        }
        self.reporter = None;
        if self.resolution.is_some() {
            self.resolution = Some(t());
        }
        for c in &mut self.classifications {
            c.classification.rationale = t();
        }
        for x in &mut self.decisions {
            x.text = t();
        }
        for m in &mut self.measures {
            m.description = t();
            if m.completion_note.is_some() {
                m.completion_note = Some(t());
            }
        }
        for c in &mut self.comments {
            c.text = t();
        }
        for f in &mut self.filings {
            if f.not_filed_rationale.is_some() {
                f.not_filed_rationale = Some(t());
            }
        }
        for a in &mut self.awareness {
            if a.reason.is_some() {
                a.reason = Some(t());
            }
        }
        if let Some(r) = &mut self.breach_record {
            r.record.scrub(text);
        }
        if let Some(r) = &mut self.nis2_record {
            r.record.scrub(text);
        }
        if let Some(n) = &mut self.affected_notice {
            n.scrub(text);
        }
        for a in &mut self.attachments {
            a.filename = t();
        }
    }

    /// Recomputes the statutory clocks from awareness, classification and filings.
    fn recompute_deadlines(&mut self) {
        self.deadlines = super::deadlines::compute(self);
    }

    /// Has any classification so far marked this regime (a possible breach, a
    /// significant incident)?
    pub fn ever_marked(&self, regime: Regime) -> bool {
        self.classifications
            .iter()
            .any(|c| c.classification.marks(regime))
    }
}

impl Classification {
    /// Does this classification mark the deviation as a (possible) personal-data breach
    /// or a significant NIS2 incident?
    pub fn marks(&self, regime: Regime) -> bool {
        match regime {
            Regime::Gdpr => matches!(
                self.personal_data_breach,
                PersonalDataBreach::Yes | PersonalDataBreach::Investigating
            ),
            Regime::Nis2 => self.nis2_significant,
        }
    }
}

/// What staff and reporters ask the decider to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Report(Reported),
    Classify(Classification),
    /// A classification by someone whose first marking of a breach or significant
    /// incident is the controller's awareness (CISO, DPO: see `auth::policy`).
    ClassifyAsController {
        classification: Classification,
        now: DateTime<Utc>,
    },
    RecordDecision {
        text: String,
        role: String,
    },
    AddMeasure(MeasureAdded),
    CompleteMeasure {
        measure_id: Uuid,
        note: String,
    },
    Comment(CommentAdded),
    Close {
        resolution: String,
    },
    Reopen {
        reason: String,
    },
    RecordFiling(FilingRecorded),
    DeclineFiling(FilingDeclined),
    /// Set or change the awareness time, with a reason.
    RecordAwareness(AwarenessRecorded),
    EndIncidentHandling(IncidentHandlingEnded),
    /// Gallra (destroy the personal and free-text fields) under a gallringsbeslut.
    Shred(Shredded),
    /// Save the breach record (a new version).
    SaveBreachRecord(BreachRecord),
    /// Save the NIS2 record (a new version).
    SaveNis2Record(Nis2Record),
    /// Decide on telling the people affected (art. 34).
    DecideAffectedNotice(AffectedNoticeDecided),
    /// The notice to the people affected went out.
    RecordAffectedNotified(AffectedNotified),
    /// Assign (or change, or clear) the owner and the deputy.
    AssignHandlers(HandlersAssigned),
    /// Link to an incident (the caller checked that it exists and is not itself linked).
    LinkToIncident(LinkedToIncident),
    Unlink,
    RecordSupplier(SupplierRecorded),
    AddAttachment(AttachmentAdded),
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("deviation not found")]
    NotFound,
    #[error("deviation already exists")]
    AlreadyReported,
    #[error("the deviation is closed")]
    Closed,
    #[error("the deviation is not closed")]
    NotClosed,
    #[error("unknown measure {0}")]
    UnknownMeasure(Uuid),
    #[error("measure {0} already exists")]
    DuplicateMeasure(Uuid),
    #[error("measure {0} is already completed")]
    MeasureAlreadyCompleted(Uuid),
    #[error("a {0:?} filing or decision not to file is already recorded")]
    FilingAlreadyRecorded(FilingKind),
    #[error("the classification is unchanged")]
    Unchanged,
    #[error("the deviation has been shredded (gallrad)")]
    Shredded,
    #[error("the deviation is not marked as a {0:?} case")]
    NotMarked(Regime),
    #[error("the awareness time is unchanged")]
    AwarenessUnchanged,
    #[error("the record is unchanged")]
    RecordUnchanged,
    #[error("no decision to tell the people affected is recorded")]
    NoNoticeDecision,
    #[error("the deviation is linked to incident {0}: do this there")]
    LinkedToIncident(Reference),
    #[error("the deviation is not linked to an incident")]
    NotLinked,
}

impl DomainError {
    /// A Swedish sentence for people.
    pub fn message_sv(&self) -> String {
        match self {
            DomainError::NotFound => "Avvikelsen finns inte.".into(),
            DomainError::AlreadyReported => "Avvikelsen finns redan.".into(),
            DomainError::Closed => "Avvikelsen är avslutad. Återöppna den först.".into(),
            DomainError::NotClosed => "Avvikelsen är inte avslutad.".into(),
            DomainError::UnknownMeasure(_) => "Åtgärden finns inte.".into(),
            DomainError::DuplicateMeasure(_) => "Åtgärden finns redan.".into(),
            DomainError::MeasureAlreadyCompleted(_) => "Åtgärden är redan slutförd.".into(),
            DomainError::FilingAlreadyRecorded(_) => {
                "En anmälan eller ett beslut att inte anmäla finns redan registrerat.".into()
            }
            DomainError::Unchanged => "Klassningen är oförändrad.".into(),
            DomainError::Shredded => {
                "Avvikelsen är gallrad; inget mer kan registreras på den.".into()
            }
            DomainError::NotMarked(r) => format!(
                "Avvikelsen är inte klassad som {}; ingen tidpunkt för kännedom gäller.",
                r.label_sv()
            ),
            DomainError::AwarenessUnchanged => "Tidpunkten för kännedom är oförändrad.".into(),
            DomainError::RecordUnchanged => "Uppgifterna är oförändrade.".into(),
            DomainError::NoNoticeDecision => {
                "Registrera först beslutet att informera de berörda.".into()
            }
            DomainError::LinkedToIncident(r) => format!(
                "Avvikelsen är kopplad till incidenten {r}. Klassning, anmälningar och eskalering görs där."
            ),
            DomainError::NotLinked => "Avvikelsen är inte kopplad till någon incident.".into(),
        }
    }
}

/// Decides which events a command produces. Pure: time and ids come in the command.
pub fn decide(state: Option<&Deviation>, cmd: Command) -> Result<Vec<DeviationEvent>, DomainError> {
    let Some(d) = state else {
        return match cmd {
            Command::Report(r) => Ok(vec![DeviationEvent::Reported(r)]),
            _ => Err(DomainError::NotFound),
        };
    };
    let open = || {
        if d.status == Status::Closed {
            Err(DomainError::Closed)
        } else {
            Ok(())
        }
    };
    if d.shredded.is_some() {
        return Err(match cmd {
            Command::Report(_) => DomainError::AlreadyReported,
            _ => DomainError::Shredded,
        });
    }
    if let Some(link) = &d.incident {
        if matches!(
            cmd,
            Command::Classify(_)
                | Command::ClassifyAsController { .. }
                | Command::RecordFiling(_)
                | Command::DeclineFiling(_)
                | Command::RecordAwareness(_)
                | Command::EndIncidentHandling(_)
                | Command::SaveBreachRecord(_)
                | Command::SaveNis2Record(_)
                | Command::DecideAffectedNotice(_)
                | Command::RecordAffectedNotified(_)
        ) {
            return Err(DomainError::LinkedToIncident(link.reference));
        }
    }
    let classify = |c: &Classification| {
        open()?;
        if d.classifications.last().map(|e| &e.classification) == Some(c) {
            return Err(DomainError::Unchanged);
        }
        Ok(())
    };
    let ev = match cmd {
        Command::Report(_) => return Err(DomainError::AlreadyReported),
        Command::Classify(c) => {
            classify(&c)?;
            DeviationEvent::Classified(c)
        }
        Command::ClassifyAsController {
            classification: c,
            now,
        } => {
            classify(&c)?;
            // The first marking is the controller's awareness, unless one is recorded
            // (or an earlier marking without one keeps the clock at discovery).
            let aware: Vec<DeviationEvent> = [Regime::Gdpr, Regime::Nis2]
                .into_iter()
                .filter(|r| c.marks(*r) && !d.ever_marked(*r) && d.aware_at(*r).is_none())
                .map(|regime| {
                    DeviationEvent::AwarenessRecorded(AwarenessRecorded {
                        regime,
                        aware_at: now,
                        reason: None,
                    })
                })
                .collect();
            return Ok(std::iter::once(DeviationEvent::Classified(c))
                .chain(aware)
                .collect());
        }
        Command::RecordDecision { text, role } => {
            open()?;
            DeviationEvent::DecisionRecorded(DecisionRecorded { text, role })
        }
        Command::AddMeasure(m) => {
            open()?;
            if d.measure(m.measure_id).is_some() {
                return Err(DomainError::DuplicateMeasure(m.measure_id));
            }
            DeviationEvent::MeasureAdded(m)
        }
        Command::CompleteMeasure { measure_id, note } => {
            match d.measure(measure_id) {
                None => return Err(DomainError::UnknownMeasure(measure_id)),
                Some(m) if m.completed_at.is_some() => {
                    return Err(DomainError::MeasureAlreadyCompleted(measure_id))
                }
                Some(_) => {}
            }
            DeviationEvent::MeasureCompleted(MeasureCompleted { measure_id, note })
        }
        Command::Comment(c) => DeviationEvent::CommentAdded(c),
        Command::Close { resolution } => {
            open()?;
            DeviationEvent::Closed(Closed { resolution })
        }
        Command::Reopen { reason } => {
            if d.status != Status::Closed {
                return Err(DomainError::NotClosed);
            }
            DeviationEvent::Reopened(Reopened { reason })
        }
        Command::RecordFiling(f) => {
            if !f.kind.repeatable() && d.filing(f.kind).is_some() {
                return Err(DomainError::FilingAlreadyRecorded(f.kind));
            }
            DeviationEvent::FilingRecorded(f)
        }
        Command::DeclineFiling(f) => {
            if d.filing(f.kind).is_some() {
                return Err(DomainError::FilingAlreadyRecorded(f.kind));
            }
            DeviationEvent::FilingDeclined(f)
        }
        Command::RecordAwareness(a) => {
            if !d.ever_marked(a.regime) && !d.has_filing_in(a.regime) {
                return Err(DomainError::NotMarked(a.regime));
            }
            if d.aware_at(a.regime) == Some(a.aware_at) {
                return Err(DomainError::AwarenessUnchanged);
            }
            DeviationEvent::AwarenessRecorded(a)
        }
        Command::EndIncidentHandling(e) => {
            if !d.ever_marked(Regime::Nis2) && !d.has_filing_in(Regime::Nis2) {
                return Err(DomainError::NotMarked(Regime::Nis2));
            }
            if d.incident_handling_ended_at == Some(e.ended_at) {
                return Err(DomainError::Unchanged);
            }
            DeviationEvent::IncidentHandlingEnded(e)
        }
        Command::Shred(s) => {
            if d.status != Status::Closed {
                return Err(DomainError::NotClosed);
            }
            DeviationEvent::Shredded(s)
        }
        Command::SaveBreachRecord(r) => {
            if !d.ever_marked(Regime::Gdpr) && !d.has_filing_in(Regime::Gdpr) {
                return Err(DomainError::NotMarked(Regime::Gdpr));
            }
            if d.breach_record.as_ref().map(|s| &s.record) == Some(&r) {
                return Err(DomainError::RecordUnchanged);
            }
            DeviationEvent::BreachRecordSaved(Box::new(r))
        }
        Command::SaveNis2Record(r) => {
            if !d.ever_marked(Regime::Nis2) && !d.has_filing_in(Regime::Nis2) {
                return Err(DomainError::NotMarked(Regime::Nis2));
            }
            if d.nis2_record.as_ref().map(|s| &s.record) == Some(&r) {
                return Err(DomainError::RecordUnchanged);
            }
            DeviationEvent::Nis2RecordSaved(Box::new(r))
        }
        Command::DecideAffectedNotice(n) => {
            if !d.ever_marked(Regime::Gdpr) && !d.has_filing_in(Regime::Gdpr) {
                return Err(DomainError::NotMarked(Regime::Gdpr));
            }
            if d.affected_notice
                .as_ref()
                .is_some_and(|a| a.decision == n.decision && a.text == n.text)
            {
                return Err(DomainError::RecordUnchanged);
            }
            DeviationEvent::AffectedNoticeDecided(n)
        }
        Command::AssignHandlers(h) => {
            open()?;
            if d.owner == h.owner && d.deputy == h.deputy {
                return Err(DomainError::RecordUnchanged);
            }
            DeviationEvent::HandlersAssigned(h)
        }
        Command::LinkToIncident(l) => {
            if l.incident == d.id {
                return Err(DomainError::Unchanged);
            }
            if d.incident
                .as_ref()
                .is_some_and(|x| x.id == l.incident && x.relation == l.relation)
            {
                return Err(DomainError::RecordUnchanged);
            }
            DeviationEvent::LinkedToIncident(l)
        }
        Command::Unlink => match &d.incident {
            Some(x) => {
                DeviationEvent::UnlinkedFromIncident(UnlinkedFromIncident { incident: x.id })
            }
            None => return Err(DomainError::NotLinked),
        },
        Command::AddAttachment(a) => {
            if d.attachments.iter().any(|x| x.sha256 == a.sha256) {
                return Err(DomainError::RecordUnchanged);
            }
            DeviationEvent::AttachmentAdded(a)
        }
        Command::RecordSupplier(s) => {
            if d.supplier == s.supplier && d.reported_by_supplier == s.reported_by_supplier {
                return Err(DomainError::RecordUnchanged);
            }
            DeviationEvent::SupplierRecorded(s)
        }
        Command::RecordAffectedNotified(n) => {
            if !d
                .affected_notice
                .as_ref()
                .is_some_and(|a| a.decision.tells())
            {
                return Err(DomainError::NoNoticeDecision);
            }
            DeviationEvent::AffectedNotified(n)
        }
    };
    Ok(vec![ev])
}

/// Applies one event. `stream` is the deviation's id. Events that do not fit the state
/// (which a correct log never holds) leave it unchanged rather than panic.
pub fn evolve(
    state: Option<Deviation>,
    stream: Uuid,
    event: &DeviationEvent,
    meta: &EventMeta,
) -> Option<Deviation> {
    let mut d = match (state, event) {
        (None, DeviationEvent::Reported(r)) => {
            let mut d = Deviation {
                id: stream,
                reference: r.reference,
                title: r.title.clone(),
                description: r.description.clone(),
                status: Status::Received,
                severity: None,
                aspects: Aspects::default(),
                category: None,
                sector: r.sector.clone(),
                asset: r.asset.clone(),
                personal_data_suspected: r.personal_data,
                personal_data_breach: None,
                nis2_significant: None,
                reporter: r.reporter.clone(),
                channel: r.channel,
                occurred_at: r.occurred_at,
                discovered_at: r.discovered_at,
                reported_at: r.reported_at,
                classified_at: None,
                closed_at: None,
                resolution: None,
                classifications: Vec::new(),
                decisions: Vec::new(),
                measures: Vec::new(),
                comments: Vec::new(),
                filings: Vec::new(),
                deadlines: Vec::new(),
                awareness: Vec::new(),
                incident_handling_ended_at: None,
                shredded: None,
                breach_record: None,
                nis2_record: None,
                affected_notice: None,
                owner: None,
                deputy: None,
                incident: None,
                supplier: None,
                reported_by_supplier: false,
                attachments: Vec::new(),
                version: 0,
                last_seq: 0,
                updated_at: meta.at,
            };
            d.recompute_deadlines();
            d
        }
        (None, _) => return None,
        (Some(d), DeviationEvent::Reported(_)) => return Some(d),
        (Some(mut d), ev) => {
            match ev {
                DeviationEvent::Reported(_) => {}
                DeviationEvent::Classified(c) => {
                    d.severity = Some(c.severity);
                    d.aspects = c.aspects;
                    d.category = Some(c.category.clone());
                    d.personal_data_breach = Some(c.personal_data_breach);
                    d.nis2_significant = Some(c.nis2_significant);
                    d.classified_at.get_or_insert(meta.at);
                    if d.status == Status::Received {
                        d.status = Status::Investigating;
                    }
                    d.classifications.push(ClassificationEntry {
                        classification: c.clone(),
                        by: meta.actor.clone(),
                        at: meta.at,
                    });
                }
                DeviationEvent::DecisionRecorded(x) => {
                    if d.status == Status::Received {
                        d.status = Status::Investigating;
                    }
                    d.decisions.push(Decision {
                        text: x.text.clone(),
                        by: meta.actor.clone(),
                        role: x.role.clone(),
                        at: meta.at,
                    })
                }
                DeviationEvent::MeasureAdded(m) => {
                    if d.status == Status::Received {
                        d.status = Status::Investigating;
                    }
                    d.measures.push(Measure {
                        id: m.measure_id,
                        description: m.description.clone(),
                        owner: m.owner.clone(),
                        due: m.due,
                        added_at: meta.at,
                        completed_at: None,
                        completion_note: None,
                    })
                }
                DeviationEvent::MeasureCompleted(c) => {
                    if let Some(m) = d.measures.iter_mut().find(|m| m.id == c.measure_id) {
                        m.completed_at = Some(meta.at);
                        m.completion_note = Some(c.note.clone());
                    }
                }
                DeviationEvent::CommentAdded(c) => d.comments.push(Comment {
                    text: c.text.clone(),
                    by: meta.actor.clone(),
                    at: meta.at,
                    to_reporter: c.to_reporter,
                    from_reporter: c.from_reporter,
                    unverified_email: c.unverified_email,
                }),
                DeviationEvent::Closed(c) => {
                    d.status = Status::Closed;
                    d.closed_at = Some(meta.at);
                    d.resolution = Some(c.resolution.clone());
                }
                DeviationEvent::Reopened(_) => {
                    d.status = Status::Investigating;
                    d.closed_at = None;
                    d.resolution = None;
                }
                DeviationEvent::FilingRecorded(f) => d.filings.push(Filing {
                    kind: f.kind,
                    authority: Some(f.authority.clone()),
                    filed_at: Some(f.filed_at),
                    their_reference: f.their_reference.clone(),
                    content_sha256: f.content_sha256.clone(),
                    not_filed_rationale: None,
                    recorded_by: meta.actor.clone(),
                    recorded_at: meta.at,
                }),
                DeviationEvent::FilingDeclined(f) => d.filings.push(Filing {
                    kind: f.kind,
                    authority: None,
                    filed_at: None,
                    their_reference: None,
                    content_sha256: None,
                    not_filed_rationale: Some(f.rationale.clone()),
                    recorded_by: meta.actor.clone(),
                    recorded_at: meta.at,
                }),
                DeviationEvent::AwarenessRecorded(a) => d.awareness.push(Awareness {
                    regime: a.regime,
                    aware_at: a.aware_at,
                    reason: a.reason.clone(),
                    by: meta.actor.clone(),
                    recorded_at: meta.at,
                }),
                DeviationEvent::IncidentHandlingEnded(e) => {
                    d.incident_handling_ended_at = Some(e.ended_at)
                }
                DeviationEvent::BreachRecordSaved(r) => {
                    d.breach_record = Some(Box::new(Saved {
                        record: (**r).clone(),
                        version: d.breach_record.as_ref().map_or(0, |s| s.version) + 1,
                        by: meta.actor.clone(),
                        at: meta.at,
                    }))
                }
                DeviationEvent::Nis2RecordSaved(r) => {
                    d.nis2_record = Some(Box::new(Saved {
                        record: (**r).clone(),
                        version: d.nis2_record.as_ref().map_or(0, |s| s.version) + 1,
                        by: meta.actor.clone(),
                        at: meta.at,
                    }))
                }
                DeviationEvent::AffectedNoticeDecided(n) => {
                    let sent = d.affected_notice.take().map(|a| a.sent).unwrap_or_default();
                    d.affected_notice = Some(Box::new(AffectedNotice {
                        decision: n.decision,
                        text: n.text.clone(),
                        decided_by: meta.actor.clone(),
                        decided_at: meta.at,
                        sent,
                    }))
                }
                DeviationEvent::LinkedToIncident(l) => {
                    d.incident = Some(Box::new(IncidentLink {
                        id: l.incident,
                        reference: l.incident_reference,
                        relation: l.relation,
                        by: meta.actor.clone(),
                        at: meta.at,
                    }))
                }
                DeviationEvent::UnlinkedFromIncident(_) => d.incident = None,
                DeviationEvent::AttachmentAdded(a) => d.attachments.push(Attachment {
                    sha256: a.sha256.clone(),
                    filename: a.filename.clone(),
                    content_type: a.content_type.clone(),
                    size: a.size,
                    from_reporter: a.from_reporter,
                    by: meta.actor.clone(),
                    at: meta.at,
                }),
                DeviationEvent::SupplierRecorded(s) => {
                    d.supplier = s.supplier.clone();
                    d.reported_by_supplier = s.reported_by_supplier;
                }
                DeviationEvent::HandlersAssigned(h) => {
                    d.owner = h.owner.clone();
                    d.deputy = h.deputy.clone();
                }
                DeviationEvent::AffectedNotified(n) => {
                    if let Some(a) = &mut d.affected_notice {
                        a.sent.push(NoticeSent {
                            sent_at: n.sent_at,
                            channel: n.channel.clone(),
                            recipients_approx: n.recipients_approx,
                            note: n.note.clone(),
                            recorded_by: meta.actor.clone(),
                        })
                    }
                }
                DeviationEvent::Shredded(s) => {
                    let text = shredded_text(meta.at, &s.decision);
                    d.scrub(&text);
                    d.shredded = Some(Box::new(Shredding {
                        at: meta.at,
                        by: meta.actor.clone(),
                        decision: s.decision.clone(),
                        text,
                    }));
                }
            }
            d.recompute_deadlines();
            d
        }
    };
    d.version += 1;
    d.last_seq = meta.seq;
    d.updated_at = meta.at;
    Some(d)
}
