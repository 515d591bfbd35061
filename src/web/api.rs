//! JSON API v1: the public report, and every staff action on deviations.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::body::from_json;
use super::commands::{
    AwarenessBody, ClassificationBody, CloseBody, CommentBody, CompleteMeasureBody, DecisionBody,
    FilingBody, HandlersBody, HandlingEndedBody, IncidentLinkBody, MeasureBody, ReopenBody,
    SupplierBody,
};
use super::error::{ApiError, Problem};
use super::openapi::{ApiDoc, ProblemAnswers};
use super::report_input::{parse_report_json, ReportBody};
use super::AppState;
use crate::access_log::AccessKind;
use crate::auth::{authorize, Action, Principal, Staff};
use crate::domain::{stockholm_year, Channel, Command, Deviation, FilingKind, Reference};
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

/// The API routes and their OpenAPI document, from the same annotations.
pub fn router() -> super::Routes {
    let (router, api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(create_deviation, list_deviations))
        .routes(routes!(get_deviation))
        .routes(routes!(history))
        .routes(routes!(classify))
        .routes(routes!(decide))
        .routes(routes!(add_measure))
        .routes(routes!(complete_measure))
        .routes(routes!(comment))
        .routes(routes!(close))
        .routes(routes!(reopen))
        .routes(routes!(filing))
        .routes(routes!(awareness))
        .routes(routes!(handling_ended))
        .routes(routes!(handlers))
        .routes(routes!(incident_link))
        .routes(routes!(supplier))
        .merge(super::audit_api::routes())
        .merge(super::access_log::api())
        .merge(super::recipients::api())
        .merge(super::reports::api())
        .merge(super::intake::routes())
        .merge(super::privacy::api())
        .merge(super::filings_api::api())
        .merge(super::exports::api())
        .split_for_parts();
    let mut api = api;
    utoipa::Modify::modify(&ProblemAnswers, &mut api);
    let json_writes = std::sync::Arc::new(super::api_guard::JsonWrites::from_doc(&api));
    let doc = std::sync::Arc::new(api);
    super::Routes::documented(router, &doc)
        .get("/api/v1/openapi.json", move || {
            let doc = doc.clone();
            async move { Json(doc.as_ref().clone()) }
        })
        .layer(axum::middleware::from_fn_with_state(
            json_writes,
            super::api_guard::require_json,
        ))
        .layer(axum::middleware::map_response(super::error::as_problem))
}

#[utoipa::path(post, path = "/api/v1/deviations", tag = "report", request_body = ReportBody, responses((status = 201, body = ReportCreated), (status = 422, body = Problem), (status = 429, description = "Too many reports from this address")))]
/// Public: anyone may report. Answers 201 with the reference and the private status token.
async fn create_deviation(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: ReportBody = from_json(&body)?;
    let now = state.services.clock.now();
    let report = parse_report_json(&body, &state.config.report, now, Channel::Api)
        .map_err(ApiError::Validation)?;
    let actor = match &report.reporter {
        // Who reported is in the sealed report, not in the clear envelope.
        Some(_) => crate::domain::Actor::REPORTER.to_string(),
        None => "reporter:anonymous".to_string(),
    };
    let receipt_emailed = report
        .reporter
        .as_ref()
        .is_some_and(|r| super::public::receipt_mailed_to(&state, r.email.as_str()));
    let receipt = state.services.report(report, &actor).await?;
    let location = format!("/api/v1/deviations/{}", receipt.reference);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(ReportCreated {
            id: receipt.id,
            reference: receipt.reference.to_string(),
            status_token: receipt.status_token,
            receipt_emailed,
        }),
    )
        .into_response())
}

/// What the public report answers: the reference and the private status token.
#[derive(Serialize, ToSchema)]
pub struct ReportCreated {
    pub id: Uuid,
    /// AVV-YYYY-NNNN
    pub reference: String,
    /// The reporter's private status token (shown once).
    pub status_token: String,
    /// Whether a receipt is e-mailed: only to addresses in `mail.receipt_domains`.
    pub receipt_emailed: bool,
}

/// A deviation as the API shows it: the state plus which clocks are overdue now.
#[derive(Serialize, ToSchema)]
pub struct DeviationView<'a> {
    #[serde(flatten)]
    #[schema(value_type = Deviation)]
    pub deviation: &'a Deviation,
    pub overdue: Vec<FilingKind>,
    /// The triage clock: classified within `notifications.triage_working_days` working
    /// days of the report (absent when there is none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub triage: Option<crate::domain::workdays::Triage>,
}

/// A page of the register.
#[derive(Serialize, ToSchema)]
pub struct DeviationList<'a> {
    pub items: Vec<DeviationView<'a>>,
    /// How many match, over all pages.
    pub total: usize,
}

/// A new measure and the deviation with it.
#[derive(Serialize, ToSchema)]
pub struct MeasureCreated<'a> {
    pub measure_id: Uuid,
    pub deviation: DeviationView<'a>,
}

/// The address of the account that may handle `d` (active, and allowed to see it).
pub fn handler(
    accounts: &crate::auth::Accounts,
    d: &Deviation,
    email: &crate::domain::EmailAddress,
) -> Option<String> {
    accounts
        .by_email(email)
        .filter(|a| {
            !a.disabled && authorize(&Principal::from_account(a), Action::ViewDeviation, Some(d))
        })
        .map(|a| a.email.as_str().to_string())
}

#[utoipa::path(post, path = "/api/v1/deviations/{reference}/handlers", tag = "staff", security(("bearer" = [])), params(("reference" = String, Path, description = "AVV-YYYY-NNNN")), request_body = HandlersBody, responses((status = 200, description = "The deviation with its owner and deputy", body = DeviationView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
/// Assigns the owner (handläggare) and deputy (ersättare); both each time.
async fn handlers(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path(reference): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let d = load_authorized(&state, &who, &reference, Action::AssignHandlers)?;
    let body = from_json::<HandlersBody>(&body)?;
    let cmd = {
        let reg = state.services.register.read();
        body.parse(|e| handler(&reg.accounts, &d, e))?
    };
    run(&state, &who, &d, cmd).await
}

/// Can `r` be the incident `d` is linked to, for `who`? Its id, or why not.
pub fn incident_for(
    reg: &crate::register::Register,
    who: &Principal,
    d: &Deviation,
    r: Reference,
) -> Result<Uuid, (&'static str, &'static str)> {
    let Some(p) = reg
        .by_reference(r)
        .filter(|p| authorize(who, Action::ViewDeviation, Some(p)))
    else {
        return Err((
            "no such deviation",
            "Det finns ingen avvikelse med den referensen.",
        ));
    };
    if p.id == d.id {
        return Err((
            "a deviation cannot be its own incident",
            "En avvikelse kan inte kopplas till sig själv.",
        ));
    }
    if p.incident.is_some() {
        return Err((
            "that deviation is itself linked to an incident: link to that one",
            "Den avvikelsen är själv kopplad till en incident. Koppla till den incidenten i stället.",
        ));
    }
    if p.shredded.is_some() {
        return Err(("that deviation is shredded", "Den avvikelsen är gallrad."));
    }
    if !authorize(who, Action::Classify, Some(p)) {
        return Err((
            "you may not handle that deviation",
            "Du får inte hantera den avvikelsen.",
        ));
    }
    if reg
        .list()
        .iter()
        .any(|x| x.incident.as_ref().is_some_and(|l| l.id == d.id))
    {
        return Err((
            "this deviation has reports of its own: it is an incident",
            "Avvikelsen har egna kopplade rapporter och är själv en incident.",
        ));
    }
    Ok(p.id)
}

#[utoipa::path(post, path = "/api/v1/deviations/{reference}/incident", tag = "staff", security(("bearer" = [])), params(("reference" = String, Path, description = "AVV-YYYY-NNNN")), request_body = IncidentLinkBody, responses((status = 200, description = "The deviation, linked (or unlinked)", body = DeviationView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
/// Links the deviation to an incident as another report of it or as a duplicate (then
/// classification, escalation and filings happen once, on the incident), or unlinks it.
async fn incident_link(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path(reference): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let d = load_authorized(&state, &who, &reference, Action::Classify)?;
    let body = from_json::<IncidentLinkBody>(&body)?;
    let cmd = {
        let reg = state.services.register.read();
        body.parse(|r| incident_for(&reg, &who, &d, r))?
    };
    run(&state, &who, &d, cmd).await
}

#[utoipa::path(post, path = "/api/v1/deviations/{reference}/supplier", tag = "staff", security(("bearer" = [])), params(("reference" = String, Path, description = "AVV-YYYY-NNNN")), request_body = SupplierBody, responses((status = 200, description = "The deviation with its supplier", body = DeviationView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
/// Records the supplier involved and whether the report came from it.
async fn supplier(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path(reference): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let d = load_authorized(&state, &who, &reference, Action::AssignHandlers)?;
    let cmd = from_json::<SupplierBody>(&body)?.parse()?;
    run(&state, &who, &d, cmd).await
}

pub fn view(d: &Deviation, now: DateTime<Utc>, triage_days: u32) -> DeviationView<'_> {
    DeviationView {
        deviation: d,
        triage: crate::domain::workdays::triage(d, triage_days, now),
        overdue: d
            .deadlines
            .iter()
            .filter(|dl| dl.settled_at.is_none() && dl.due < now)
            .map(|dl| dl.kind)
            .collect(),
    }
}

/// Looks a deviation up and checks `action` on it: 404 when the caller may not even see
/// it (so existence does not leak), 403 when they may see but not do.
pub(super) fn load_authorized(
    state: &AppState,
    who: &Principal,
    reference: &str,
    action: Action,
) -> Result<Deviation, ApiError> {
    let reference = Reference::parse(reference).ok_or(ApiError::NotFound)?;
    let reg = state.services.register.read();
    let d = reg.by_reference(reference).ok_or(ApiError::NotFound)?;
    if !authorize(who, Action::ViewDeviation, Some(d)) {
        return Err(ApiError::NotFound);
    }
    if !authorize(who, action, Some(d)) {
        return Err(ApiError::Forbidden);
    }
    Ok(d.clone())
}

#[derive(Debug, Deserialize, Default)]
pub struct ListQuery {
    pub status: Option<String>,
    pub severity: Option<String>,
    pub sector: Option<String>,
    pub category: Option<String>,
    #[serde(default, deserialize_with = "optional_year")]
    pub year: Option<i32>,
    pub q: Option<String>,
    /// "1": only the deviations the caller is owner or deputy of (Mina ärenden).
    pub mine: Option<String>,
    /// Only the reports linked to this incident (AVV-YYYY-NNNN).
    pub incident: Option<String>,
    pub limit: Option<usize>,
    pub offset: Option<usize>,
}

/// A year from a query string; empty (the register form's empty field) is none. Read from
/// text, so it also works inside a `#[serde(flatten)]`ed query, which hands every value
/// over as a string.
pub fn optional_year<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i32>, D::Error> {
    match Option::<String>::deserialize(d)?.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(y) => y
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("year: expected a year, got `{y}`"))),
    }
}

/// The register, filtered to what the caller may see and to the query.
pub fn filtered<'a>(
    reg: &'a crate::register::Register,
    who: &Principal,
    q: &ListQuery,
) -> Vec<&'a Deviation> {
    let needle =
        q.q.as_deref()
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty());
    let status = q.status.as_deref().filter(|s| !s.is_empty());
    let severity = q.severity.as_deref().filter(|s| !s.is_empty());
    let sector = q.sector.as_deref().filter(|s| !s.is_empty());
    let category = q.category.as_deref().filter(|s| !s.is_empty());
    let mine = matches!(q.mine.as_deref(), Some("1" | "true" | "ja"));
    let incident = q
        .incident
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| Reference::parse(&s.to_ascii_uppercase()));
    reg.list()
        .into_iter()
        .filter(|d| authorize(who, Action::ViewDeviation, Some(d)))
        .filter(|d| {
            status.is_none_or(|s| serde_json::to_value(d.status).ok() == Some(Value::from(s)))
        })
        .filter(|d| match severity {
            None => true,
            Some("none") => d.severity.is_none(),
            Some(s) => {
                d.severity.and_then(|x| serde_json::to_value(x).ok()) == Some(Value::from(s))
            }
        })
        .filter(|d| sector.is_none_or(|s| d.sector.as_deref() == Some(s)))
        .filter(|d| category.is_none_or(|c| d.category.as_deref() == Some(c)))
        .filter(|d| q.year.is_none_or(|y| stockholm_year(d.reported_at) == y))
        .filter(|d| match incident {
            None => true,
            Some(want) => d.incident.as_ref().map(|l| l.reference) == want,
        })
        .filter(|d| {
            !mine
                || [&d.owner, &d.deputy]
                    .into_iter()
                    .flatten()
                    .any(|h| h.eq_ignore_ascii_case(&who.email))
        })
        .filter(|d| {
            needle.as_deref().is_none_or(|n| {
                d.reference.to_string().to_lowercase().contains(n)
                    || d.title.to_lowercase().contains(n)
                    || d.description.to_lowercase().contains(n)
                    || d.asset
                        .as_deref()
                        .is_some_and(|a| a.to_lowercase().contains(n))
            })
        })
        .collect()
}

#[utoipa::path(get, path = "/api/v1/deviations", tag = "staff", security(("bearer" = [])), params(("status" = Option<String>, Query, description = "received|investigating|closed"), ("severity" = Option<String>, Query, description = "minor|major|none"), ("sector" = Option<String>, Query), ("category" = Option<String>, Query), ("year" = Option<i32>, Query, description = "Stockholm year of reporting"), ("q" = Option<String>, Query, description = "free text"), ("mine" = Option<String>, Query, description = "1: only deviations the caller is owner or deputy of"), ("incident" = Option<String>, Query, description = "only the reports linked to this incident, AVV-YYYY-NNNN"), ("limit" = Option<usize>, Query), ("offset" = Option<usize>, Query)), responses((status = 200, body = DeviationList), (status = 401, body = Problem)))]
async fn list_deviations(
    State(state): State<AppState>,
    Staff(who): Staff,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    if !authorize(&who, Action::ListDeviations, None) {
        return Err(ApiError::Forbidden);
    }
    let now = state.services.clock.now();
    let reg = state.services.register.read();
    let all = filtered(&reg, &who, &q);
    let total = all.len();
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let offset = q.offset.unwrap_or(0);
    let items: Vec<DeviationView> = all
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|d| view(d, now, state.config.notifications.triage_working_days))
        .collect();
    Ok(Json(DeviationList { items, total }).into_response())
}

#[utoipa::path(get, path = "/api/v1/deviations/{reference}", tag = "staff", security(("bearer" = [])), params(("reference" = String, Path, description = "AVV-YYYY-NNNN")), responses((status = 200, description = "The deviation", body = DeviationView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn get_deviation(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path(reference): Path<String>,
) -> Result<Response, ApiError> {
    let d = load_authorized(&state, &who, &reference, Action::ViewDeviation)?;
    super::access_log::seen(
        &state.access_log,
        &who.actor(),
        AccessKind::DeviationApi,
        Some(&d),
    )
    .await?;
    let now = state.services.clock.now();
    Ok(Json(view(
        &d,
        now,
        state.config.notifications.triage_working_days,
    ))
    .into_response())
}

/// One stored event of a deviation, as stored.
#[derive(Serialize, ToSchema)]
pub struct HistoryEntry {
    seq: u64,
    /// RFC 3339, microseconds, UTC.
    at: String,
    actor: String,
    #[serde(rename = "type")]
    event_type: String,
    /// The event's payload, as stored.
    #[schema(value_type = Object)]
    data: Value,
    /// Hex SHA-256 of the previous record's stored bytes.
    prev: String,
}

#[utoipa::path(get, path = "/api/v1/deviations/{reference}/history", tag = "staff", security(("bearer" = [])), params(("reference" = String, Path, description = "AVV-YYYY-NNNN")), responses((status = 200, body = [HistoryEntry]), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn history(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path(reference): Path<String>,
) -> Result<Response, ApiError> {
    let d = load_authorized(&state, &who, &reference, Action::ViewDeviation)?;
    super::access_log::seen(
        &state.access_log,
        &who.actor(),
        AccessKind::History,
        Some(&d),
    )
    .await?;
    let records = state
        .services
        .store
        .read_stream(d.id, 1)
        .map_err(|e| ApiError::Internal(e.into()))?;
    let out: Vec<HistoryEntry> = records
        .into_iter()
        .map(|r| HistoryEntry {
            seq: r.seq,
            at: r.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            actor: r.actor,
            event_type: r.event_type,
            data: r.data,
            prev: r.prev,
        })
        .collect();
    Ok(Json(out).into_response())
}

/// Runs `cmd` for `who` and answers with the new state.
pub(super) async fn run(
    state: &AppState,
    who: &Principal,
    d: &Deviation,
    cmd: Command,
) -> Result<Response, ApiError> {
    let updated = state
        .services
        .execute(d.reference, cmd, &who.actor())
        .await?;
    let now = state.services.clock.now();
    Ok(Json(view(
        &updated,
        now,
        state.config.notifications.triage_working_days,
    ))
    .into_response())
}

#[utoipa::path(post, path = "/api/v1/deviations/{reference}/classification", tag = "staff", security(("bearer" = [])), params(("reference" = String, Path, description = "AVV-YYYY-NNNN")), request_body = ClassificationBody, responses((status = 200, description = "The deviation after the change", body = DeviationView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn classify(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path(reference): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let d = load_authorized(&state, &who, &reference, Action::Classify)?;
    let cmd = from_json::<ClassificationBody>(&body)?.parse(
        &who,
        &state.config.report,
        state.services.clock.now(),
    )?;
    run(&state, &who, &d, cmd).await
}

#[utoipa::path(post, path = "/api/v1/deviations/{reference}/decisions", tag = "staff", security(("bearer" = [])), params(("reference" = String, Path, description = "AVV-YYYY-NNNN")), request_body = DecisionBody, responses((status = 200, description = "The deviation after the change", body = DeviationView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn decide(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path(reference): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let d = load_authorized(&state, &who, &reference, Action::RecordDecision)?;
    let cmd = from_json::<DecisionBody>(&body)?.parse(&who)?;
    run(&state, &who, &d, cmd).await
}

#[utoipa::path(post, path = "/api/v1/deviations/{reference}/measures", tag = "staff", security(("bearer" = [])), params(("reference" = String, Path, description = "AVV-YYYY-NNNN")), request_body = MeasureBody, responses((status = 201, body = MeasureCreated), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn add_measure(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path(reference): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let d = load_authorized(&state, &who, &reference, Action::AddMeasure)?;
    let (measure_id, cmd) = from_json::<MeasureBody>(&body)?.parse()?;
    let updated = state
        .services
        .execute(d.reference, cmd, &who.actor())
        .await?;
    let now = state.services.clock.now();
    Ok((
        StatusCode::CREATED,
        Json(MeasureCreated {
            measure_id,
            deviation: view(
                &updated,
                now,
                state.config.notifications.triage_working_days,
            ),
        }),
    )
        .into_response())
}

#[utoipa::path(post, path = "/api/v1/deviations/{reference}/measures/{measure_id}/complete", tag = "staff", security(("bearer" = [])), params(("reference" = String, Path, description = "AVV-YYYY-NNNN"), ("measure_id" = String, Path)), request_body = CompleteMeasureBody, responses((status = 200, description = "The deviation after the change", body = DeviationView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn complete_measure(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path((reference, measure_id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let measure_id = Uuid::parse_str(&measure_id).map_err(|_| ApiError::NotFound)?;
    let d = load_authorized(
        &state,
        &who,
        &reference,
        Action::CompleteMeasure(measure_id),
    )?;
    let cmd = from_json::<CompleteMeasureBody>(&body)?.parse(measure_id)?;
    run(&state, &who, &d, cmd).await
}

#[utoipa::path(post, path = "/api/v1/deviations/{reference}/comments", tag = "staff", security(("bearer" = [])), params(("reference" = String, Path, description = "AVV-YYYY-NNNN")), request_body = CommentBody, responses((status = 200, description = "The deviation after the change", body = DeviationView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn comment(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path(reference): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let d = load_authorized(&state, &who, &reference, Action::Comment)?;
    let cmd = from_json::<CommentBody>(&body)?.parse()?;
    run(&state, &who, &d, cmd).await
}

#[utoipa::path(post, path = "/api/v1/deviations/{reference}/close", tag = "staff", security(("bearer" = [])), params(("reference" = String, Path, description = "AVV-YYYY-NNNN")), request_body = CloseBody, responses((status = 200, description = "The deviation after the change", body = DeviationView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn close(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path(reference): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let d = load_authorized(&state, &who, &reference, Action::Close)?;
    let cmd = from_json::<CloseBody>(&body)?.parse()?;
    run(&state, &who, &d, cmd).await
}

#[utoipa::path(post, path = "/api/v1/deviations/{reference}/reopen", tag = "staff", security(("bearer" = [])), params(("reference" = String, Path, description = "AVV-YYYY-NNNN")), request_body = ReopenBody, responses((status = 200, description = "The deviation after the change", body = DeviationView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn reopen(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path(reference): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let d = load_authorized(&state, &who, &reference, Action::Reopen)?;
    let cmd = from_json::<ReopenBody>(&body)?.parse()?;
    run(&state, &who, &d, cmd).await
}

#[utoipa::path(post, path = "/api/v1/deviations/{reference}/filings", tag = "staff", security(("bearer" = [])), params(("reference" = String, Path, description = "AVV-YYYY-NNNN")), request_body = FilingBody, responses((status = 200, description = "The deviation after the change", body = DeviationView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn filing(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path(reference): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let d = load_authorized(&state, &who, &reference, Action::RecordFiling)?;
    let org = crate::filing::organisation::current(
        state.services.store.as_ref(),
        &state.config.organisation,
    );
    let cmd = from_json::<FilingBody>(&body)?.parse(state.services.clock.now(), &org)?;
    run(&state, &who, &d, cmd).await
}

#[utoipa::path(post, path = "/api/v1/deviations/{reference}/awareness", tag = "staff", security(("bearer" = [])), params(("reference" = String, Path, description = "AVV-YYYY-NNNN")), request_body = AwarenessBody, responses((status = 200, description = "The deviation after the change: the clocks run from the new awareness time", body = DeviationView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn awareness(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path(reference): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let d = load_authorized(&state, &who, &reference, Action::RecordAwareness)?;
    let cmd = from_json::<AwarenessBody>(&body)?.parse(state.services.clock.now())?;
    run(&state, &who, &d, cmd).await
}

#[utoipa::path(post, path = "/api/v1/deviations/{reference}/incident-handling-ended", tag = "staff", security(("bearer" = [])), params(("reference" = String, Path, description = "AVV-YYYY-NNNN")), request_body = HandlingEndedBody, responses((status = 200, description = "The deviation after the change: the NIS2 final report is due one month after", body = DeviationView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn handling_ended(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path(reference): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let d = load_authorized(&state, &who, &reference, Action::RecordFiling)?;
    let cmd = from_json::<HandlingEndedBody>(&body)?.parse(state.services.clock.now())?;
    run(&state, &who, &d, cmd).await
}
