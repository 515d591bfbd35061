//! The annual report to kommunstyrelsen: its content computed from the log as of a seq,
//! its renderings (HTML, CSV, JSON, e-mail, charts), and issuing it as a frozen event.
//!
//! Frozen means: the issue event records the log's seq and hash and the SHA-256 of the
//! report's canonical JSON; rebuilding the report from records `1..=as_of_seq` gives the
//! same JSON (and the same HTML and CSV), byte for byte, because the computation depends
//! on nothing but those records: no clock, no configuration.

pub mod build;
pub mod charts;
pub mod command;
pub mod export;
mod format;
pub mod http;
pub mod issue;
pub mod model;
pub mod redact;
pub mod render;

pub use build::{build_report, record_hash, ReportError};
pub use charts::{charts, Chart};
pub use export::{content_hash, to_csv, to_json};
pub use http::{into_response, ReportFormat};
pub use issue::{
    annual_report_document, annual_reports_stream, issue_annual_report, issues, latest_issue,
    load_document, AnnualReportIssued, IssueError, IssueTrigger, IssuedReport, ReportDocument,
    ANNUAL_REPORT_ISSUED,
};
pub use model::{compute, AnnualReport, Period, Source, REPORT_SCHEMA};
pub use render::{render_draft_html, render_email, render_html, InlineImage, ReportEmail};
