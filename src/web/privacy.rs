//! Gallring and the registerutdrag, for the CISO and the dataskyddsombud: the list of
//! deviations due for gallring, the `Gallra` command, and everything held about one
//! person (GDPR art. 15), as pages and as JSON.

use super::Routes;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use axum_csrf::CsrfToken;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::body::{from_json, Field, Problems, Unknown};
use super::csrf::{form_token, CsrfForm};
use super::error::{ApiError, FieldError};
use super::pages::{render, stockholm_display, Layout, PageError};
use super::staff::staff_nav;
use super::AppState;
use crate::audit::extract::{due_for_gallring, register_extract, DueItem, RegisterExtract};
use crate::auth::{authorize, Action, Principal, Staff};
use crate::domain::{DomainError, Reference};
use crate::service::ServiceError;

/// Longest gallringsbeslut reference kept (the key's tombstone holds it).
pub const DECISION_MAX: usize = 100;

pub const RETENTION_PATH: &str = "/staff/privacy/retention";
pub const EXTRACT_PATH: &str = "/staff/privacy/extract";

pub fn pages() -> Routes {
    Routes::new()
        .get(RETENTION_PATH, retention_page)
        .post("/staff/privacy/retention/{reference}", shred_form)
        .get(EXTRACT_PATH, extract_form)
        .post(EXTRACT_PATH, extract_page)
}

pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(due_api))
        .routes(routes!(shred_api))
        .routes(routes!(extract_api))
}

/// A gallring, with the gallringsbeslut it is made under.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ShredBody {
    /// The gallringsbeslut's reference (diarienummer or the plan's point), at most 100
    /// characters.
    #[serde(default)]
    #[schema(value_type = String, required = true, max_length = 100, example = "KS 2026/123")]
    pub decision: Field<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

/// Whom a registerutdrag is about.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ExtractBody {
    #[serde(default)]
    #[schema(value_type = String, required = true, example = "anna.svensson@kommunen.se")]
    pub email: Field<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

fn parse_decision(f: &mut Problems, v: &Field<String>) -> Option<String> {
    f.text("decision", v, true, DECISION_MAX)
}

async fn shred(
    state: &AppState,
    who: &Principal,
    reference: &str,
    decision: String,
) -> Result<crate::domain::Deviation, ServiceError> {
    let r = Reference::parse(reference).ok_or(DomainError::NotFound)?;
    let class = state.services.register.read().by_reference(r).map(|d| {
        format!(
            "{:?}",
            crate::domain::retention::RetentionRules::class_of(d)
        )
        .to_lowercase()
    });
    state
        .services
        .shred(r, &decision, class, &who.actor())
        .await
}

fn due_now(state: &AppState) -> Vec<DueItem> {
    let now = state.services.clock.now();
    due_for_gallring(
        &state.services.register.read(),
        &state.config.retention,
        now,
    )
}

#[utoipa::path(get, path = "/api/v1/privacy/retention", tag = "privacy", security(("bearer" = [])),
    responses((status = 200, body = [DueItem], description = "Closed deviations whose retention has run out"), (status = 401, body = crate::web::openapi::Problem), (status = 403, body = crate::web::openapi::Problem)))]
/// Deviations due for gallring under `[retention]`, oldest due first.
async fn due_api(State(state): State<AppState>, Staff(who): Staff) -> Result<Response, ApiError> {
    if !authorize(&who, Action::ViewRetention, None) {
        return Err(ApiError::Forbidden);
    }
    Ok(Json(due_now(&state)).into_response())
}

#[utoipa::path(post, path = "/api/v1/deviations/{reference}/shred", tag = "privacy", security(("bearer" = [])),
    params(("reference" = String, Path, description = "AVV-YYYY-NNNN")), request_body = ShredBody,
    responses((status = 200, description = "The deviation after gallring", body = crate::web::api::DeviationView), (status = 401, body = crate::web::openapi::Problem), (status = 403, body = crate::web::openapi::Problem), (status = 404, body = crate::web::openapi::Problem), (status = 409, body = crate::web::openapi::Problem), (status = 422, body = crate::web::openapi::Problem)))]
/// Gallra: destroys the deviation's personal and free-text fields for good, under a
/// gallringsbeslut. The deviation must be closed. Times, classification and filings stay.
async fn shred_api(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path(reference): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let r = Reference::parse(&reference).ok_or(ApiError::NotFound)?;
    {
        let reg = state.services.register.read();
        let d = reg.by_reference(r).ok_or(ApiError::NotFound)?;
        if !authorize(&who, Action::ViewDeviation, Some(d)) {
            return Err(ApiError::NotFound);
        }
        if !authorize(&who, Action::Shred, Some(d)) {
            return Err(ApiError::Forbidden);
        }
    }
    let body: ShredBody = from_json(&body)?;
    let mut f = Problems::default();
    let decision = parse_decision(&mut f, &body.decision);
    f.finish(&body.unknown)?;
    let d = shred(&state, &who, &reference, decision.unwrap_or_default()).await?;
    let now = state.services.clock.now();
    Ok(Json(crate::web::api::view(
        &d,
        now,
        state.config.notifications.triage_working_days,
    ))
    .into_response())
}

#[utoipa::path(post, path = "/api/v1/privacy/extract", tag = "privacy", security(("bearer" = [])),
    request_body = ExtractBody,
    responses((status = 200, body = RegisterExtract, description = "Everything held about the person"), (status = 401, body = crate::web::openapi::Problem), (status = 403, body = crate::web::openapi::Problem), (status = 422, body = crate::web::openapi::Problem)))]
/// The registerutdrag (GDPR art. 15): every deviation, comment and e-mail about the person
/// with this address. A POST, so the address is in no URL or access log.
async fn extract_api(
    State(state): State<AppState>,
    Staff(who): Staff,
    body: Bytes,
) -> Result<Response, ApiError> {
    if !authorize(&who, Action::RegisterExtract, None) {
        return Err(ApiError::Forbidden);
    }
    let body: ExtractBody = from_json(&body)?;
    let mut f = Problems::default();
    let email = f.text("email", &body.email, true, 254);
    f.finish(&body.unknown)?;
    let email = email.unwrap_or_default();
    if let Some(subject_index) = state.services.keys.blind_index(&email) {
        super::access_log::seen(
            &state.access_log,
            &who.actor(),
            crate::access_log::AccessKind::RegisterExtract { subject_index },
            None,
        )
        .await?;
    }
    match run_extract(&state, email).await? {
        Some(x) => Ok(Json(x).into_response()),
        None => Err(ApiError::Validation(vec![FieldError::new(
            "email",
            "not an e-mail address",
            "Ange en e-postadress.",
        )])),
    }
}

async fn run_extract(state: &AppState, email: String) -> Result<Option<RegisterExtract>, ApiError> {
    let store = state.services.store.clone();
    let keys = state.services.keys.clone();
    let register = state.services.register.clone();
    let now = state.services.clock.now();
    tokio::task::spawn_blocking(move || {
        let reg = register.read();
        register_extract(store.as_ref(), &keys, &reg, &email, now)
    })
    .await
    .map_err(|e| ApiError::Internal(e.into()))?
    .map_err(|e| ApiError::Internal(e.into()))
}

struct DueRow {
    reference: String,
    class: &'static str,
    rule: String,
    closed: String,
    due: String,
}

#[derive(Template)]
#[template(path = "staff/retention.html")]
struct RetentionPage {
    layout: Layout,
    plan: String,
    items: Vec<DueRow>,
    may_shred: bool,
    csrf: String,
    done: Option<String>,
    error: Option<String>,
}

async fn retention_page(
    State(state): State<AppState>,
    Staff(who): Staff,
    csrf: CsrfToken,
) -> Result<Response, PageError> {
    retention_response(&state, &who, csrf, None, None, StatusCode::OK)
}

fn retention_response(
    state: &AppState,
    who: &Principal,
    csrf: CsrfToken,
    done: Option<String>,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, PageError> {
    if !authorize(who, Action::ViewRetention, None) {
        return Err(PageError::Forbidden);
    }
    let items = due_now(state)
        .into_iter()
        .map(|i| DueRow {
            reference: i.reference.to_string(),
            class: i.class.label_sv(),
            rule: i.rule,
            closed: i.closed_at.map(stockholm_display).unwrap_or_default(),
            due: stockholm_display(i.due_at),
        })
        .collect();
    let page = RetentionPage {
        layout: Layout::staff("Gallring", staff_nav(who, RETENTION_PATH)),
        plan: state.config.retention.plan.clone(),
        items,
        may_shred: authorize(who, Action::Shred, None),
        csrf: form_token(&csrf)?,
        done,
        error,
    };
    Ok((csrf, render(status, &page)).into_response())
}

#[derive(Deserialize)]
struct ShredForm {
    #[serde(default)]
    decision: String,
}

async fn shred_form(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path(reference): Path<String>,
    CsrfForm { csrf, form }: CsrfForm<ShredForm>,
) -> Result<Response, PageError> {
    if !authorize(&who, Action::Shred, None) {
        return Err(PageError::Forbidden);
    }
    let decision = form.decision.trim().to_string();
    if decision.is_empty()
        || decision.chars().count() > DECISION_MAX
        || decision.chars().any(char::is_control)
    {
        return retention_response(
            &state,
            &who,
            csrf,
            None,
            Some(format!(
                "Ange gallringsbeslutets diarienummer för {reference} (högst {DECISION_MAX} tecken)."
            )),
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    }
    match shred(&state, &who, &reference, decision).await {
        Ok(d) => {
            let text = d.shredded.map(|s| s.text).unwrap_or_default();
            retention_response(
                &state,
                &who,
                csrf,
                Some(format!("{reference} är {text}.")),
                None,
                StatusCode::OK,
            )
        }
        Err(ServiceError::Domain(e)) if e != DomainError::NotFound => retention_response(
            &state,
            &who,
            csrf,
            None,
            Some(format!("{reference}: {}", e.message_sv())),
            StatusCode::CONFLICT,
        ),
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "staff/extract.html")]
struct ExtractPage {
    layout: Layout,
    csrf: String,
    email: String,
    error: Option<String>,
    result: Option<ExtractView>,
}

struct ExtractView {
    subject: String,
    generated: String,
    deviations: Vec<ExtractDeviationRow>,
    mails: Vec<ExtractMailRow>,
}

struct ExtractDeviationRow {
    reference: String,
    involvement: String,
    title: String,
    description: String,
    status: &'static str,
    reported: String,
    shredded: Option<String>,
    comments: Vec<(String, String)>,
}

struct ExtractMailRow {
    at: String,
    direction: &'static str,
    reference: String,
    subject: String,
    attachments: String,
}

async fn extract_form(Staff(who): Staff, csrf: CsrfToken) -> Result<Response, PageError> {
    if !authorize(&who, Action::RegisterExtract, None) {
        return Err(PageError::Forbidden);
    }
    let page = ExtractPage {
        layout: Layout::staff("Registerutdrag", staff_nav(&who, EXTRACT_PATH)),
        csrf: form_token(&csrf)?,
        email: String::new(),
        error: None,
        result: None,
    };
    Ok((csrf, render(StatusCode::OK, &page)).into_response())
}

#[derive(Deserialize)]
struct ExtractForm {
    #[serde(default)]
    email: String,
}

async fn extract_page(
    State(state): State<AppState>,
    Staff(who): Staff,
    CsrfForm { csrf, form }: CsrfForm<ExtractForm>,
) -> Result<Response, PageError> {
    if !authorize(&who, Action::RegisterExtract, None) {
        return Err(PageError::Forbidden);
    }
    let email = form.email.trim().to_string();
    if let Some(subject_index) = state.services.keys.blind_index(&email) {
        super::access_log::seen_page(
            &state.access_log,
            &who.actor(),
            crate::access_log::AccessKind::RegisterExtract { subject_index },
            None,
        )
        .await?;
    }
    let found = if email.len() > 254 {
        None
    } else {
        run_extract(&state, email.clone())
            .await
            .map_err(|e| match e {
                ApiError::Internal(e) => PageError::Internal(e),
                other => PageError::Internal(anyhow::anyhow!("{other}")),
            })?
    };
    let (status, error, result) = match found {
        None => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("Ange en e-postadress, till exempel anna.svensson@kommunen.se.".to_string()),
            None,
        ),
        Some(x) => (StatusCode::OK, None, Some(view_of(x))),
    };
    let page = ExtractPage {
        layout: Layout::staff("Registerutdrag", staff_nav(&who, EXTRACT_PATH)),
        csrf: form_token(&csrf)?,
        email,
        error,
        result,
    };
    Ok((csrf, render(status, &page)).into_response())
}

fn view_of(x: RegisterExtract) -> ExtractView {
    ExtractView {
        subject: x.subject,
        generated: stockholm_display(x.generated_at),
        deviations: x
            .deviations
            .into_iter()
            .map(|e| {
                let d = e.deviation;
                ExtractDeviationRow {
                    reference: d.reference.to_string(),
                    involvement: e
                        .involvement
                        .iter()
                        .map(|i| i.label_sv())
                        .collect::<Vec<_>>()
                        .join(", "),
                    title: d.title.clone(),
                    description: d.description.clone(),
                    status: d.status.label_sv(),
                    reported: stockholm_display(d.reported_at),
                    shredded: d.shredded.as_ref().map(|s| s.text.clone()),
                    comments: d
                        .comments
                        .iter()
                        .map(|c| (stockholm_display(c.at), c.text.clone()))
                        .collect(),
                }
            })
            .collect(),
        mails: x
            .mails
            .into_iter()
            .map(|m| ExtractMailRow {
                at: stockholm_display(m.at),
                direction: if m.direction == "sent" {
                    "skickat"
                } else {
                    "mottaget"
                },
                reference: m.reference.map(|r| r.to_string()).unwrap_or_default(),
                subject: m.subject.unwrap_or_else(|| "–".into()),
                attachments: m.attachments.join(", "),
            })
            .collect(),
    }
}
