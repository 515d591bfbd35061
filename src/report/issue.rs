//! Issuing annual reports. An issue is an `AnnualReportIssued` event in the annual-report
//! stream that pins the log (`as_of_seq`, `head_hash`) and the content (`content_hash`).
//! The report is never stored: it is rebuilt from the log as of `as_of_seq`, which gives
//! the same bytes. Issuing a year again needs a reason and is a new event.

use std::sync::Arc;

use avvik_events::{EventStore, RecordedEvent, StoreError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::build::{build_report, ReportError, YEARS};
use super::export::content_hash;
use super::model::AnnualReport;
use crate::clock::SystemClock;
use crate::command::{CommandError, CommandHandler, Current, Envelope, Executed, Load};
use crate::domain::Fact;

/// Event type of an issue.
pub const ANNUAL_REPORT_ISSUED: &str = "AnnualReportIssued";

/// The stream holding every annual report issue and the annual-report job's runs.
pub fn annual_reports_stream() -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_URL, b"urn:avvik:stream:annual-reports")
}

/// An annual report was issued (or issued again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnualReportIssued {
    pub year: i32,
    /// The report covers records 1..=as_of_seq.
    pub as_of_seq: u64,
    /// Hash of record `as_of_seq`.
    pub head_hash: String,
    /// SHA-256 of the report's canonical JSON (`report::to_json`).
    pub content_hash: String,
    /// The report layout version it was computed with.
    pub report_schema: u16,
    /// 1 for the first issue of a year, then 2, 3, …
    pub edition: u32,
    /// Why it was issued again (required for edition 2 on; optional for a manual first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Seq of the issue event this one replaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reissue_of: Option<u64>,
    /// `scheduled` or `manual`.
    pub trigger: IssueTrigger,
    /// The report as issued, kept whole: gallring later removes deviations' texts from
    /// the log, not from a document already sent to the board. Absent in issues from
    /// before this field (those are rebuilt from the log as of `as_of_seq`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IssueTrigger {
    Scheduled,
    Manual,
}

/// A stored issue with its envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IssuedReport {
    pub seq: u64,
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub event: AnnualReportIssued,
}

impl IssuedReport {
    pub fn from_record(rec: &RecordedEvent) -> Option<Self> {
        if rec.event_type != ANNUAL_REPORT_ISSUED {
            return None;
        }
        let event = rec.decode::<AnnualReportIssued>().ok()?;
        Some(Self {
            seq: rec.seq,
            id: rec.id,
            at: rec.at,
            actor: rec.actor.clone(),
            event,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("the annual report for {year} is already issued (seq {seq}); issuing it again needs a reason")]
    AlreadyIssued { year: i32, seq: u64 },
    #[error("the reason is too long (at most 2000 characters)")]
    ReasonTooLong,
    #[error("too many concurrent changes to the annual reports; retry")]
    Contention,
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<CommandError> for IssueError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Contention => IssueError::Contention,
            CommandError::Store(e) => IssueError::Store(e),
        }
    }
}

/// Every issue of `year`, oldest first.
pub fn issues(store: &dyn EventStore, year: i32) -> Result<Vec<IssuedReport>, StoreError> {
    Ok(store
        .read_stream(annual_reports_stream(), 1)?
        .iter()
        .filter_map(IssuedReport::from_record)
        .filter(|i| i.event.year == year)
        .collect())
}

/// The issue in force for `year`: the latest one.
pub fn latest_issue(store: &dyn EventStore, year: i32) -> Result<Option<IssuedReport>, StoreError> {
    Ok(issues(store, year)?.pop())
}

/// What an issue is decided on: the annual-report stream, and the report built from the
/// log as of the head it was read at.
pub(crate) struct IssueState {
    pub stream: Vec<RecordedEvent>,
    pub report: AnnualReport,
}

/// Loads the state an issue of `year` is decided on. Blocking (builds the report).
pub(crate) fn load_issue_state(
    store: &dyn EventStore,
    keys: &crate::privacy::Keyring,
    year: i32,
) -> Result<Current<IssueState>, IssueError> {
    if !YEARS.contains(&year) {
        return Err(ReportError::InvalidYear(year).into());
    }
    let stream = store.read_stream(annual_reports_stream(), 1)?;
    let version = stream.last().map(|r| r.version);
    let head = store.head().seq;
    let report = build_report(store, keys, year, head)?;
    Ok(Current::new(IssueState { stream, report }, version))
}

/// The loader of `load_issue_state`, off the async threads.
pub(crate) fn issue_loader(
    store: Arc<dyn EventStore>,
    keys: Arc<crate::privacy::Keyring>,
    year: i32,
) -> Load<'static, IssueState, IssueError> {
    Box::new(move || {
        let store = store.clone();
        let keys = keys.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || load_issue_state(store.as_ref(), &keys, year))
                .await
                .map_err(|e| StoreError::Storage(format!("report task failed: {e}")))?
        })
    })
}

/// The issue decider: the issue event for `year`, or why not. Pure. `reason: None`
/// refuses when the year is already issued.
pub(crate) fn decide_issue(
    state: &IssueState,
    year: i32,
    reason: Option<&str>,
    trigger: IssueTrigger,
) -> Result<AnnualReportIssued, IssueError> {
    let reason = reason
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty());
    if reason.as_ref().is_some_and(|r| r.chars().count() > 2000) {
        return Err(IssueError::ReasonTooLong);
    }
    let previous: Vec<IssuedReport> = state
        .stream
        .iter()
        .filter_map(IssuedReport::from_record)
        .filter(|i| i.event.year == year)
        .collect();
    let last = previous.last();
    if let (Some(last), None) = (last, &reason) {
        return Err(IssueError::AlreadyIssued {
            year,
            seq: last.seq,
        });
    }
    let report = &state.report;
    Ok(AnnualReportIssued {
        year,
        as_of_seq: report.source.as_of_seq,
        head_hash: report.source.head_hash.clone(),
        content_hash: content_hash(report),
        report_schema: report.schema,
        edition: previous.len() as u32 + 1,
        reason,
        reissue_of: last.map(|l| l.seq),
        trigger,
        report: serde_json::to_value(report).ok(),
    })
}

/// The stored form of an issue.
pub(crate) fn issue_fact(event: &AnnualReportIssued) -> Fact {
    Fact::new(ANNUAL_REPORT_ISSUED, event)
}

/// Issues the report on `year` by hand (e.g. the CISO from the staff UI). The first issue
/// of a year may omit the reason; any later one must give it and becomes a new edition.
/// Returns the stored issue and the report it pins.
pub async fn issue_annual_report(
    store: Arc<dyn EventStore>,
    keys: Arc<crate::privacy::Keyring>,
    year: i32,
    reason: Option<String>,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(IssuedReport, AnnualReport), IssueError> {
    let commands = CommandHandler::new(store.clone(), Arc::new(SystemClock));
    let env = Envelope::new(annual_reports_stream(), actor).at(now);
    let outcome = commands
        .execute(&env, issue_loader(store, keys, year), |state, _ctx| {
            let event = decide_issue(state, year, reason.as_deref(), IssueTrigger::Manual)?;
            Ok(vec![issue_fact(&event)])
        })
        .await?;
    match outcome {
        Executed::Committed { records, state, .. } => {
            let issued = records
                .iter()
                .find_map(IssuedReport::from_record)
                .ok_or(IssueError::Contention)?;
            Ok((issued, state.report))
        }
        Executed::Unchanged(_) => Err(IssueError::Contention),
    }
}

/// A report to show: the issued one rebuilt as of its issue, or a draft as of the head.
#[derive(Debug, Clone)]
pub struct ReportDocument {
    pub report: AnnualReport,
    /// The issue in force; `None` for a draft.
    pub issue: Option<IssuedReport>,
    /// For an issued report: does the rebuilt content still hash to the recorded value?
    /// `false` means the report code changed since it was issued; say so loudly.
    pub hash_matches: Option<bool>,
}

impl ReportDocument {
    pub fn is_draft(&self) -> bool {
        self.issue.is_none()
    }
}

/// The report on `year` for display. Blocking; see [`annual_report_document`].
pub fn load_document(
    store: &dyn EventStore,
    keys: &crate::privacy::Keyring,
    year: i32,
) -> Result<ReportDocument, ReportError> {
    if !YEARS.contains(&year) {
        return Err(ReportError::InvalidYear(year));
    }
    match latest_issue(store, year)? {
        Some(issue) => {
            let kept = issue
                .event
                .report
                .as_ref()
                .and_then(|v| serde_json::from_value::<AnnualReport>(v.clone()).ok());
            let report = match kept {
                Some(r) => r,
                None => build_report(store, keys, year, issue.event.as_of_seq)?,
            };
            let matches = content_hash(&report) == issue.event.content_hash;
            if !matches {
                tracing::error!(
                    year,
                    seq = issue.seq,
                    "the rebuilt annual report does not match its recorded content hash"
                );
            }
            Ok(ReportDocument {
                report,
                issue: Some(issue),
                hash_matches: Some(matches),
            })
        }
        None => Ok(ReportDocument {
            report: build_report(store, keys, year, store.head().seq)?,
            issue: None,
            hash_matches: None,
        }),
    }
}

/// The report on `year` for display, off the async threads: for HTTP handlers.
pub async fn annual_report_document(
    store: Arc<dyn EventStore>,
    keys: Arc<crate::privacy::Keyring>,
    year: i32,
) -> Result<ReportDocument, ReportError> {
    tokio::task::spawn_blocking(move || load_document(store.as_ref(), &keys, year))
        .await
        .map_err(|e| ReportError::Store(StoreError::Storage(format!("report task failed: {e}"))))?
}
