//! The annual report over HTTP: the printable page `/staff/reports/{year}`, JSON and CSV
//! from `/api/v1/reports/annual/{year}`, and issuing (or re-issuing, with a reason).

use super::Routes;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::body::{from_json, Field, Problems, Unknown};
use super::error::{ApiError, FieldError};
use super::openapi::Problem;
use super::pages::PageError;
use super::AppState;
use crate::auth::{authorize, Action, Staff};
use crate::domain::stockholm_year;
use crate::report::http::{into_response, ReportFormat};
use crate::report::issue::IssueError;
use crate::report::ReportError;

pub fn pages() -> Routes {
    Routes::new()
        .get("/staff/reports", latest_page)
        .get("/staff/reports/{year}", report_page)
}

pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(report_data))
        .routes(routes!(issue))
}

fn parse_year(s: &str) -> Option<i32> {
    s.parse::<i32>()
        .ok()
        .filter(|y| crate::report::build::YEARS.contains(y))
}

/// The report page sets its own CSP: the report is a self-contained document (it is also
/// the e-mail and the frozen copy), so its one `<style>` is allowed by hash, nothing else.
fn with_style_hashes(mut resp: Response, html: &[u8]) -> Response {
    let text = String::from_utf8_lossy(html);
    let mut hashes = Vec::new();
    let mut rest = text.as_ref();
    while let Some(start) = rest.find("<style>") {
        let after = &rest[start + "<style>".len()..];
        let Some(end) = after.find("</style>") else {
            break;
        };
        let digest = Sha256::digest(&after.as_bytes()[..end]);
        hashes.push(format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(digest)
        ));
        rest = &after[end..];
    }
    let csp = format!(
        "default-src 'none'; img-src 'self' data:; style-src 'self' {}; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        hashes.join(" ")
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        resp.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, v);
    }
    resp
}

/// A draft shows its titles and other free text only to those who may read them (ciso,
/// auditor); everyone else sees the counts until the report is issued.
fn for_reader(doc: &mut crate::report::ReportDocument, who: &crate::auth::Principal) {
    if doc.is_draft() && !authorize(who, Action::ViewDraftReportTitles, None) {
        crate::report::redact::counts_only(&mut doc.report);
    }
}

async fn latest_page(
    State(state): State<AppState>,
    Staff(who): Staff,
) -> Result<Response, PageError> {
    if !authorize(&who, Action::ViewReports, None) {
        return Err(PageError::Forbidden);
    }
    let last_year = stockholm_year(state.services.clock.now()) - 1;
    Ok(Redirect::to(&format!("/staff/reports/{last_year}")).into_response())
}

async fn report_page(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path(year): Path<String>,
) -> Result<Response, PageError> {
    if !authorize(&who, Action::ViewReports, None) {
        return Err(PageError::Forbidden);
    }
    let year = parse_year(&year).ok_or(PageError::NotFound)?;
    let mut doc = crate::report::annual_report_document(
        state.services.store.clone(),
        state.services.keys.clone(),
        year,
    )
    .await
    .map_err(|e| match e {
        ReportError::InvalidYear(_) => PageError::NotFound,
        other => PageError::Internal(other.into()),
    })?;
    for_reader(&mut doc, &who);
    let body = crate::report::http::render(&doc, ReportFormat::Html);
    Ok(with_style_hashes(
        into_response(&doc, ReportFormat::Html),
        &body,
    ))
}

#[derive(Debug, Deserialize)]
pub struct FormatQuery {
    format: Option<String>,
}

/// The annual report on a year: the issued edition as of its issue, or a draft as of now.
#[utoipa::path(get, path = "/api/v1/reports/annual/{year}", tag = "staff", security(("bearer" = [])),
    params(("year" = i32, Path), ("format" = Option<String>, Query, description = "json (default) or csv")),
    responses((status = 200, description = "The report (JSON, or CSV with format=csv); x-avvik-report-status says issued or draft, x-avvik-content-hash pins an issued one", content((serde_json::Value = "application/json"), (String = "text/csv"))),
              (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn report_data(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path(year): Path<String>,
    Query(q): Query<FormatQuery>,
) -> Result<Response, ApiError> {
    if !authorize(&who, Action::ViewReports, None) {
        return Err(ApiError::Forbidden);
    }
    let year = parse_year(&year).ok_or(ApiError::NotFound)?;
    let format = match q.format.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => ReportFormat::Json,
        Some(f) => match ReportFormat::parse(f) {
            Some(ReportFormat::Html) | None => {
                return Err(ApiError::Validation(vec![FieldError::new(
                    "format",
                    "must be json or csv",
                    "Välj formatet json eller csv.",
                )]))
            }
            Some(f) => f,
        },
    };
    let mut doc = crate::report::annual_report_document(
        state.services.store.clone(),
        state.services.keys.clone(),
        year,
    )
    .await
    .map_err(|e| match e {
        ReportError::InvalidYear(_) => ApiError::NotFound,
        other => ApiError::Internal(other.into()),
    })?;
    for_reader(&mut doc, &who);
    Ok(into_response(&doc, format))
}

/// Issuing the annual report: the reason for a new edition (optional the first time).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct IssueBody {
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 2000)]
    pub reason: Field<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

/// An issued edition of the annual report.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct IssuedAnswer {
    pub year: i32,
    pub edition: u32,
    /// The position of the issue event in the log.
    pub seq: u64,
    /// Hex SHA-256 of the issued document.
    pub content_hash: String,
    /// The log position the report reflects.
    pub as_of_seq: u64,
}

/// Issues the annual report on a year (first time: reason optional; again: a new edition
/// with a reason). Frozen: the event records the content hash.
#[utoipa::path(post, path = "/api/v1/reports/annual/{year}/issue", tag = "staff", security(("bearer" = [])),
    params(("year" = i32, Path)), request_body = IssueBody,
    responses((status = 201, description = "The issued edition", body = IssuedAnswer), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn issue(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path(year): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    if !authorize(&who, Action::IssueReport, None) {
        return Err(ApiError::Forbidden);
    }
    let year = parse_year(&year).ok_or(ApiError::NotFound)?;
    let body: IssueBody = if body.is_empty() {
        IssueBody::default()
    } else {
        from_json(&body)?
    };
    let mut f = Problems::default();
    let reason = f.text("reason", &body.reason, false, 2000);
    f.finish(&body.unknown)?;
    let now = state.services.clock.now();
    match crate::report::issue_annual_report(
        state.services.store.clone(),
        state.services.keys.clone(),
        year,
        reason,
        &who.actor(),
        now,
    )
    .await
    {
        Ok((issued, _)) => Ok((
            StatusCode::CREATED,
            Json(IssuedAnswer {
                year,
                edition: issued.event.edition,
                seq: issued.seq,
                content_hash: issued.event.content_hash,
                as_of_seq: issued.event.as_of_seq,
            }),
        )
            .into_response()),
        Err(IssueError::AlreadyIssued { .. }) => Err(ApiError::Validation(vec![FieldError::new(
            "reason",
            "the report is already issued; issuing it again needs a reason",
            "Rapporten är redan utfärdad. Ange skälet till en ny utgåva.",
        )])),
        Err(IssueError::ReasonTooLong) => Err(ApiError::Validation(vec![FieldError::new(
            "reason",
            "must be at most 2000 characters",
            "Skälet får vara högst 2000 tecken.",
        )])),
        Err(IssueError::Contention) => Err(ApiError::Unavailable(
            "too many concurrent changes; retry".into(),
        )),
        Err(IssueError::Report(ReportError::InvalidYear(_))) => Err(ApiError::NotFound),
        Err(other) => Err(ApiError::Internal(other.into())),
    }
}
