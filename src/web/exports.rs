//! Exports on the web: a case as a PDF (`/staff/deviations/{reference}/export.pdf`,
//! `GET /api/v1/deviations/{reference}/export`) and the register as XLSX or CSV with the
//! register page's filters and sort (`/staff/export`, `GET /api/v1/deviations/export`).
//! An export shows what the pages show, to whom they show it (`ViewDeviation` per
//! deviation, `ListDeviations` for the register), and is in the läslogg before a byte of it
//! is sent: the format, the file's SHA-256 or the filters and the number of rows.

use super::Routes;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::access_log::seen;
use super::api::{filtered, ListQuery};
use super::error::{ApiError, FieldError, Problem};
use super::pages::PageError;
use super::AppState;
use crate::access_log::{AccessKind, ExportFilters};
use crate::auth::{authorize, Action, Principal, Staff};
use crate::domain::Reference;
use crate::export::{register, RegisterFormat};

pub fn pages() -> Routes {
    Routes::new()
        .get("/staff/deviations/{reference}/export.pdf", case_page)
        .get("/staff/export", register_page)
}

pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(api_register))
        .routes(routes!(api_case))
}

/// A file to download: never cached, never shown inline.
fn attachment(content_type: &str, filename: &str, bytes: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        bytes,
    )
        .into_response()
}

/// The case file of `reference` as a PDF, recorded in the läslogg first. 404 when the
/// caller may not see the deviation (so its existence does not leak).
async fn case_export(
    state: &AppState,
    who: &Principal,
    reference: &str,
) -> Result<Response, ApiError> {
    let d = {
        let reference = Reference::parse(reference).ok_or(ApiError::NotFound)?;
        let reg = state.services.register.read();
        let d = reg.by_reference(reference).ok_or(ApiError::NotFound)?;
        if !authorize(who, Action::ViewDeviation, Some(d)) {
            return Err(ApiError::NotFound);
        }
        d.clone()
    };
    let now = state.services.clock.now();
    let pdf = super::staff::case_pdf(state, who, d.clone(), now).map_err(|e| match e {
        PageError::NotFound => ApiError::NotFound,
        PageError::Internal(e) => ApiError::Internal(e),
        other => ApiError::Internal(anyhow::anyhow!("the case PDF: {other}")),
    })?;
    let sha256 = hex::encode(Sha256::digest(&pdf));
    seen(
        &state.access_log,
        &who.actor(),
        AccessKind::CaseExport {
            format: "pdf".into(),
            sha256,
        },
        Some(&d),
    )
    .await?;
    Ok(attachment(
        "application/pdf",
        &format!("{}.pdf", d.reference),
        pdf,
    ))
}

/// The register filters, the sort and the format (`xlsx`, the default, or `csv`).
#[derive(Debug, Deserialize, Default)]
pub struct RegisterExportQuery {
    format: Option<String>,
    status: Option<String>,
    severity: Option<String>,
    sector: Option<String>,
    category: Option<String>,
    #[serde(default, deserialize_with = "super::api::optional_year")]
    year: Option<i32>,
    q: Option<String>,
    mine: Option<String>,
    incident: Option<String>,
    sort: Option<String>,
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

/// Every deviation the caller may see that the filters give, in the register's sort, as
/// XLSX or CSV; recorded in the läslogg first.
async fn register_export(
    state: &AppState,
    who: &Principal,
    q: &RegisterExportQuery,
) -> Result<Response, ApiError> {
    if !authorize(who, Action::ListDeviations, None) {
        return Err(ApiError::Forbidden);
    }
    let format = match q.format.as_deref().map(str::trim) {
        None | Some("") => RegisterFormat::Xlsx,
        Some(f) => RegisterFormat::parse(f).ok_or_else(|| {
            ApiError::Validation(vec![FieldError::new(
                "format",
                "must be \"xlsx\" or \"csv\"",
                "Välj xlsx eller csv.",
            )])
        })?,
    };
    let list = ListQuery {
        status: q.status.clone(),
        severity: q.severity.clone(),
        sector: q.sector.clone(),
        category: q.category.clone(),
        year: q.year,
        q: q.q.clone(),
        mine: q.mine.clone(),
        incident: q.incident.clone(),
        limit: None,
        offset: None,
    };
    let sort = non_empty(&q.sort).unwrap_or_else(|| super::staff::DEFAULT_SORT.to_string());
    let now = state.services.clock.now();
    let rows = {
        let reg = state.services.register.read();
        let mut deviations = filtered(&reg, who, &list);
        super::staff::sort_register(&mut deviations, &sort);
        register::rows(&deviations, now)
    };
    let bytes = match format {
        RegisterFormat::Xlsx => register::to_xlsx(&rows, now),
        RegisterFormat::Csv => register::to_csv(&rows),
    }
    .map_err(|e| ApiError::Internal(e.into()))?;
    let filters = ExportFilters {
        status: non_empty(&q.status),
        severity: non_empty(&q.severity),
        sector: non_empty(&q.sector),
        category: non_empty(&q.category),
        year: q.year,
        free_text: non_empty(&q.q).is_some(),
    };
    seen(
        &state.access_log,
        &who.actor(),
        AccessKind::RegisterExport {
            format: format.as_str().into(),
            filters,
            rows: rows.len() as u64,
        },
        None,
    )
    .await?;
    let date = register::stockholm(now);
    let filename = format!("avvikelser-{}.{}", &date[..10], format.as_str());
    Ok(attachment(format.content_type(), &filename, bytes))
}

/// A refusal of the API as the page people get.
fn page_error(e: ApiError) -> PageError {
    match e {
        ApiError::NotFound => PageError::NotFound,
        ApiError::Forbidden => PageError::Forbidden,
        ApiError::AccessLogUnavailable => PageError::AccessLogUnavailable,
        ApiError::Validation(errors) => PageError::BadRequest(
            errors
                .into_iter()
                .map(|e| e.message_sv)
                .collect::<Vec<_>>()
                .join(" "),
        ),
        ApiError::Internal(e) => PageError::Internal(e),
        other => PageError::Unavailable(other.to_string()),
    }
}

async fn case_page(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path(reference): Path<String>,
) -> Result<Response, PageError> {
    case_export(&state, &who, &reference)
        .await
        .map_err(page_error)
}

async fn register_page(
    State(state): State<AppState>,
    Staff(who): Staff,
    Query(q): Query<RegisterExportQuery>,
) -> Result<Response, PageError> {
    register_export(&state, &who, &q).await.map_err(page_error)
}

#[derive(Debug, Deserialize)]
pub struct CaseExportQuery {
    format: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/deviations/{reference}/export", tag = "staff", security(("bearer" = [])),
    params(("reference" = String, Path, description = "AVV-YYYY-NNNN"),
           ("format" = Option<String>, Query, description = "pdf (the default and the only one)")),
    responses((status = 200, description = "The case file as a PDF: facts, classifications, clocks and deadlines, measures, decisions, filings, comments and the timeline, with the configured secrecy marking (export.secrecy_header) on every page. Recorded in the access log with the file's SHA-256.", content_type = "application/pdf"),
               (status = 401, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
/// A deviation as a PDF case file (whoever may see the deviation).
async fn api_case(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path(reference): Path<String>,
    Query(q): Query<CaseExportQuery>,
) -> Result<Response, ApiError> {
    match q.format.as_deref().map(str::trim) {
        None | Some("" | "pdf") => case_export(&state, &who, &reference).await,
        Some(_) => Err(ApiError::Validation(vec![FieldError::new(
            "format",
            "must be \"pdf\"",
            "Välj pdf.",
        )])),
    }
}

#[utoipa::path(get, path = "/api/v1/deviations/export", tag = "staff", security(("bearer" = [])),
    params(("format" = Option<String>, Query, description = "xlsx (the default) or csv"),
           ("status" = Option<String>, Query, description = "received|investigating|closed"),
           ("severity" = Option<String>, Query, description = "minor|major|none"),
           ("sector" = Option<String>, Query), ("category" = Option<String>, Query),
           ("year" = Option<i32>, Query, description = "Stockholm year of reporting"),
           ("q" = Option<String>, Query, description = "free text"),
           ("sort" = Option<String>, Query, description = "reference|title|sector|status|severity|reported|due, - in front for descending (default -reference)")),
    responses((status = 200, description = "Every deviation the caller may see that the filters give (the same filters as GET /api/v1/deviations), one row each, as XLSX or as CSV (RFC 4180, UTF-8, every field quoted; a text that a spreadsheet would run as a formula starts with '). Recorded in the access log with the format, the filters (a free-text search only as having been made) and the number of rows.",
                content((Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"), (String = "text/csv"))),
               (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
/// The register as XLSX or CSV, with the register's filters and sort.
async fn api_register(
    State(state): State<AppState>,
    Staff(who): Staff,
    Query(q): Query<RegisterExportQuery>,
) -> Result<Response, ApiError> {
    register_export(&state, &who, &q).await
}
