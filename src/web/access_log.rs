//! The läslogg on the web: handlers record a reading here before they show a deviation's
//! content (`seen` for the API, `seen_page` for people; when the access log cannot be
//! written the content is not shown), and the auditor, the DPO and the CISO read the log
//! per deviation or per user at `/audit/access` and `/api/v1/audit/access`.

use super::Routes;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiError, FieldError};
use super::openapi::Problem;
use super::pages::{render, stockholm_display, Layout, PageError};
use super::staff::staff_nav;
use super::AppState;
use crate::access_log::{AccessEntry, AccessKind, AccessLog, AccessLogFilter, ExportFilters};
use crate::auth::{authorize, Action, Principal, Staff};
use crate::domain::{labels, Deviation, Reference, Severity, Status};

/// Records that `actor` saw `what` (of `d`); the API's refusal when it cannot be written.
pub async fn seen(
    log: &AccessLog,
    actor: &str,
    what: AccessKind,
    d: Option<&Deviation>,
) -> Result<(), ApiError> {
    log.record(actor, what, d.map(|d| (d.id, d.reference)))
        .await
        .map_err(|_| ApiError::AccessLogUnavailable)
}

/// Like `seen`, with the Swedish page as the refusal.
pub async fn seen_page(
    log: &AccessLog,
    actor: &str,
    what: AccessKind,
    d: Option<&Deviation>,
) -> Result<(), PageError> {
    log.record(actor, what, d.map(|d| (d.id, d.reference)))
        .await
        .map_err(|_| PageError::AccessLogUnavailable)
}

pub fn pages() -> Routes {
    Routes::new().get("/audit/access", page)
}

pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(api_access))
}

/// The actor a `user` filter names: an address means that staff member; `system:…` and
/// other actors are taken as written.
fn actor_of(user: &str) -> String {
    let user = user.trim();
    if user.contains(':') {
        user.to_string()
    } else {
        format!("user:{user}")
    }
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

enum Lookup {
    /// Neither a deviation nor a user was asked for.
    Nothing,
    UnknownReference,
    Found {
        deviation: Option<Box<Deviation>>,
        user: Option<String>,
        entries: Vec<AccessEntry>,
    },
}

/// Looks the entries up and records the look itself first (by deviation, or by user
/// without the address).
async fn look_up(
    state: &AppState,
    who: &Principal,
    reference: Option<&str>,
    user: Option<&str>,
) -> Result<Lookup, ApiError> {
    let deviation = match reference {
        None => None,
        Some(r) => {
            let found = Reference::parse(r)
                .and_then(|r| state.services.register.read().by_reference(r).cloned());
            match found {
                Some(d) => Some(d),
                None => return Ok(Lookup::UnknownReference),
            }
        }
    };
    let actor = user.map(actor_of);
    if deviation.is_none() && actor.is_none() {
        return Ok(Lookup::Nothing);
    }
    let filter = if deviation.is_some() {
        AccessLogFilter::Deviation
    } else {
        AccessLogFilter::User
    };
    seen(
        &state.access_log,
        &who.actor(),
        AccessKind::AccessLog { filter },
        deviation.as_ref(),
    )
    .await?;
    let entries = match (&deviation, &actor) {
        (Some(d), None) => state.access_log.for_deviation(d.id),
        (Some(d), Some(a)) => state
            .access_log
            .for_deviation(d.id)
            .into_iter()
            .filter(|e| e.actor.eq_ignore_ascii_case(a))
            .collect(),
        (None, Some(a)) => state.access_log.for_actor(a),
        (None, None) => Vec::new(),
    };
    Ok(Lookup::Found {
        deviation: deviation.map(Box::new),
        user: user.map(|u| u.trim().to_string()),
        entries,
    })
}

async fn verify_report(state: &AppState) -> Result<avvik_events::VerifyReport, anyhow::Error> {
    let log = state.access_log.clone();
    Ok(tokio::task::spawn_blocking(move || log.verify()).await??)
}

#[derive(Debug, Deserialize)]
pub struct AccessQuery {
    reference: Option<String>,
    user: Option<String>,
}

/// The access log's answer: the entries, newest first, and its own chain's state.
#[derive(Serialize, ToSchema)]
pub struct AccessLogView {
    /// The deviation asked for (AVV-YYYY-NNNN).
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<String>,
    /// The user asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    entries: Vec<AccessEntry>,
    /// The access log's own chain: {ok, records, head_seq, head_hash, first_bad_seq?, reason?}.
    #[schema(value_type = Object)]
    verify: avvik_events::VerifyReport,
}

/// Who saw a deviation's content, or what a user saw, newest first (auditor, DPO, CISO).
/// Looking is itself recorded (the user's address is not).
#[utoipa::path(get, path = "/api/v1/audit/access", tag = "audit", security(("bearer" = [])),
    params(("reference" = Option<String>, Query, description = "AVV-YYYY-NNNN"),
           ("user" = Option<String>, Query, description = "a staff member's e-mail address, or an actor such as system:cli")),
    responses((status = 200, body = AccessLogView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn api_access(
    State(state): State<AppState>,
    Staff(who): Staff,
    Query(q): Query<AccessQuery>,
) -> Result<Response, ApiError> {
    if !authorize(&who, Action::ViewAccessLog, None) {
        return Err(ApiError::Forbidden);
    }
    match look_up(&state, &who, non_empty(&q.reference), non_empty(&q.user)).await? {
        Lookup::Nothing => Err(ApiError::Validation(vec![FieldError::new(
            "reference",
            "give a reference or a user",
            "Ange en avvikelse eller en användare.",
        )])),
        Lookup::UnknownReference => Err(ApiError::NotFound),
        Lookup::Found {
            deviation,
            user,
            entries,
        } => {
            let verify = verify_report(&state).await.map_err(ApiError::Internal)?;
            Ok(Json(AccessLogView {
                reference: deviation.map(|d| d.reference.to_string()),
                user,
                entries,
                verify,
            })
            .into_response())
        }
    }
}

#[derive(Debug, Deserialize, Default)]
struct PageQuery {
    deviation: Option<String>,
    user: Option<String>,
}

struct Row {
    who: String,
    what: &'static str,
    detail: String,
    at: String,
    at_iso: String,
    reference: String,
}

#[derive(Template)]
#[template(path = "audit/access.html")]
struct AccessPage {
    layout: Layout,
    /// The form's values.
    deviation: String,
    user: String,
    /// What the rows are about ("" before a search).
    heading: String,
    searched: bool,
    by_user: bool,
    error: Option<String>,
    rows: Vec<Row>,
    verify: avvik_events::VerifyReport,
}

fn detail_of(what: &AccessKind) -> String {
    match what {
        AccessKind::Attachment { sha256 } => format!("SHA-256 {sha256}"),
        AccessKind::Export { from_seq, to_seq } => format!("händelse {from_seq}–{to_seq}"),
        AccessKind::FilingDocument {
            filing,
            format,
            sha256,
        } => format!("{filing} ({format}), SHA-256 {sha256}"),
        AccessKind::CaseExport { format, sha256 } => {
            format!("{}, SHA-256 {sha256}", format.to_uppercase())
        }
        AccessKind::RegisterExport {
            format,
            filters,
            rows,
        } => {
            let mut s = format!(
                "{}, {rows} {}",
                format.to_uppercase(),
                if *rows == 1 {
                    "avvikelse"
                } else {
                    "avvikelser"
                }
            );
            let applied = filters_sv(filters);
            if applied.is_empty() {
                s.push_str(", alla som användaren får se");
            } else {
                s.push_str("; ");
                s.push_str(&applied.join(", "));
            }
            s
        }
        AccessKind::CalendarFeed { entries } => format!("{entries} poster"),
        _ => String::new(),
    }
}

/// The filters of a register export, in Swedish.
fn filters_sv(f: &ExportFilters) -> Vec<String> {
    let status = f.status.as_deref().map(|s| {
        serde_json::from_value::<Status>(serde_json::Value::from(s))
            .map_or_else(|_| s.to_string(), |s| labels::status(s).to_string())
    });
    let severity = f.severity.as_deref().map(|s| match s {
        "none" => labels::severity_or_unclassified(None).to_string(),
        s => serde_json::from_value::<Severity>(serde_json::Value::from(s))
            .map_or_else(|_| s.to_string(), |x| labels::severity(x).to_string()),
    });
    let mut out = Vec::new();
    for (label, value) in [
        ("status", status),
        ("allvarlighet", severity),
        ("sektor", f.sector.clone()),
        ("kategori", f.category.clone()),
        ("år", f.year.map(|y| y.to_string())),
    ] {
        if let Some(v) = value {
            out.push(format!("{label} {v}"));
        }
    }
    if f.free_text {
        out.push("fritextsökning".to_string());
    }
    out
}

async fn page(
    State(state): State<AppState>,
    Staff(who): Staff,
    Query(q): Query<PageQuery>,
) -> Result<Response, PageError> {
    if !authorize(&who, Action::ViewAccessLog, None) {
        return Err(PageError::Forbidden);
    }
    let (reference, user) = (non_empty(&q.deviation), non_empty(&q.user));
    let found = look_up(&state, &who, reference, user)
        .await
        .map_err(|e| match e {
            ApiError::AccessLogUnavailable => PageError::AccessLogUnavailable,
            other => PageError::Internal(other.into()),
        })?;
    let verify = verify_report(&state).await.map_err(PageError::Internal)?;
    let mut l = Layout::staff("Läslogg".to_string(), staff_nav(&who, "/audit"));
    l.area = super::pages::Area::Audit;
    let mut page = AccessPage {
        layout: l,
        deviation: reference.unwrap_or_default().to_string(),
        user: user.unwrap_or_default().to_string(),
        heading: String::new(),
        searched: false,
        by_user: false,
        error: None,
        rows: Vec::new(),
        verify,
    };
    let status = match found {
        Lookup::Nothing => StatusCode::OK,
        Lookup::UnknownReference => {
            page.error = Some("Det finns ingen avvikelse med det diarienumret.".into());
            page.layout = page.layout.with_errors(true);
            StatusCode::NOT_FOUND
        }
        Lookup::Found {
            deviation,
            user,
            entries,
        } => {
            page.searched = true;
            page.by_user = deviation.is_none();
            page.heading = match (&deviation, &user) {
                (Some(d), Some(u)) => format!("Läsningar av {} gjorda av {u}", d.reference),
                (Some(d), None) => format!("Läsningar av {}", d.reference),
                (None, Some(u)) => format!("Läsningar gjorda av {u}"),
                (None, None) => String::new(),
            };
            page.rows = entries
                .iter()
                .map(|e| Row {
                    who: e.who().to_string(),
                    what: e.what.label_sv(),
                    detail: detail_of(&e.what),
                    at: stockholm_display(e.at),
                    at_iso: e.at.to_rfc3339(),
                    reference: e.reference.clone().unwrap_or_default(),
                })
                .collect();
            StatusCode::OK
        }
    };
    Ok(render(status, &page))
}
