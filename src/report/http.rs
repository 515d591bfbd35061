//! Turning a report document into an HTTP answer, for the routes `/staff/reports/{year}`
//! and `/api/v1/reports/annual/{year}` (wired behind authentication by the web layer).

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::export::{to_csv, to_json};
use super::issue::ReportDocument;
use super::render::{render_draft_html, render_html};

/// The formats a report is served in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ReportFormat {
    Html,
    Json,
    Csv,
}

impl ReportFormat {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "html" => Some(Self::Html),
            "json" => Some(Self::Json),
            "csv" => Some(Self::Csv),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Html => "text/html; charset=utf-8",
            Self::Json => "application/json",
            Self::Csv => "text/csv; charset=utf-8; header=present",
        }
    }
}

/// The rendered body: exactly what `avvik report --format …` prints.
pub fn render(doc: &ReportDocument, format: ReportFormat) -> Vec<u8> {
    match format {
        ReportFormat::Html if doc.is_draft() => render_draft_html(&doc.report).into_bytes(),
        ReportFormat::Html => render_html(&doc.report).into_bytes(),
        ReportFormat::Json => to_json(&doc.report),
        ReportFormat::Csv => to_csv(&doc.report).into_bytes(),
    }
}

/// 200 with the body and headers saying what it is:
/// `x-avvik-report-status: issued|draft`, `x-avvik-as-of-seq`, `x-avvik-head-hash`, and
/// for an issued report `x-avvik-content-hash` (SHA-256 of the JSON body),
/// `x-avvik-edition` and `x-avvik-content-verified` (does the rebuilt report still match?).
pub fn into_response(doc: &ReportDocument, format: ReportFormat) -> Response {
    let mut resp = (StatusCode::OK, render(doc, format)).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(HeaderName::from_static(name), v);
        }
    };
    set(
        "x-avvik-report-status",
        if doc.is_draft() { "draft" } else { "issued" }.to_string(),
    );
    set("x-avvik-as-of-seq", doc.report.source.as_of_seq.to_string());
    set("x-avvik-head-hash", doc.report.source.head_hash.clone());
    if let Some(issue) = &doc.issue {
        set("x-avvik-content-hash", issue.event.content_hash.clone());
        set("x-avvik-edition", issue.event.edition.to_string());
        // `false` means the rebuilt report no longer hashes to what was issued.
        set(
            "x-avvik-content-verified",
            doc.hash_matches.unwrap_or(false).to_string(),
        );
    }
    if format == ReportFormat::Csv {
        set(
            "content-disposition",
            format!(
                "attachment; filename=\"avvikelser-{}.csv\"",
                doc.report.year
            ),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::report::model::{compute, Period, Source};

    fn draft() -> ReportDocument {
        let report = compute(
            2026,
            Period::of_year(2026).unwrap(),
            Source {
                as_of_seq: 0,
                head_hash: avvik_events::GENESIS_HASH.into(),
                as_of_at: None,
                unreadable_records: Vec::new(),
            },
            [],
            &HashMap::new(),
        );
        ReportDocument {
            report,
            issue: None,
            hash_matches: None,
        }
    }

    #[test]
    fn responses_say_what_they_are() {
        let doc = draft();
        let r = into_response(&doc, ReportFormat::Csv);
        let h = r.headers();
        assert_eq!(h["content-type"], "text/csv; charset=utf-8; header=present");
        assert_eq!(h["x-avvik-report-status"], "draft");
        assert_eq!(h["x-avvik-as-of-seq"], "0");
        assert!(h["content-disposition"]
            .to_str()
            .unwrap()
            .contains("avvikelser-2026.csv"));
        assert!(h.get("x-avvik-content-hash").is_none());
        let html = String::from_utf8(render(&doc, ReportFormat::Html)).unwrap();
        assert!(html.contains("Utkast"));
        assert!(html.contains("Inga större avvikelser rapporterades 2026."));
        assert_eq!(ReportFormat::parse(" JSON "), Some(ReportFormat::Json));
        assert_eq!(ReportFormat::parse("pdf"), None);
    }
}
