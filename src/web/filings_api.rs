//! The filing records in the JSON API: the breach record, the NIS2 record, the art. 34
//! decision and notice, and each phase's document (JSON or PDF) as it is sent.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::api::{load_authorized, run};
use super::body::from_json;
use super::error::{ApiError, Problem};
use super::filing_commands::{
    AffectedNoticeBody, AffectedNotifiedBody, BreachRecordBody, Nis2RecordBody,
};
use super::AppState;
use crate::access_log::AccessKind;
use crate::auth::{Action, Principal, Staff};
use crate::domain::{Deviation, FilingKind};
use crate::filing::document::{self, FilingDocument};

pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(breach_record))
        .routes(routes!(nis2_record))
        .routes(routes!(affected_notice))
        .routes(routes!(affected_notified))
        .routes(routes!(filing_document))
}

#[utoipa::path(post, path = "/api/v1/deviations/{reference}/breach-record", tag = "staff", security(("bearer" = [])), params(("reference" = String, Path, description = "AVV-YYYY-NNNN")), request_body = BreachRecordBody, responses((status = 200, description = "The deviation with the record's new version", body = super::api::DeviationView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
/// Saves a new version of the breach record (GDPR art. 33(3)); the whole record each time.
async fn breach_record(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path(reference): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let d = load_authorized(&state, &who, &reference, Action::RecordFiling)?;
    let cmd = from_json::<BreachRecordBody>(&body)?.parse(state.services.clock.now())?;
    run(&state, &who, &d, cmd).await
}

#[utoipa::path(post, path = "/api/v1/deviations/{reference}/nis2-record", tag = "staff", security(("bearer" = [])), params(("reference" = String, Path, description = "AVV-YYYY-NNNN")), request_body = Nis2RecordBody, responses((status = 200, description = "The deviation with the record's new version", body = super::api::DeviationView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
/// Saves a new version of the NIS2 record; the whole record each time.
async fn nis2_record(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path(reference): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let d = load_authorized(&state, &who, &reference, Action::RecordFiling)?;
    let cmd = from_json::<Nis2RecordBody>(&body)?.parse()?;
    run(&state, &who, &d, cmd).await
}

#[utoipa::path(post, path = "/api/v1/deviations/{reference}/affected-notice", tag = "staff", security(("bearer" = [])), params(("reference" = String, Path, description = "AVV-YYYY-NNNN")), request_body = AffectedNoticeBody, responses((status = 200, description = "The deviation after the decision", body = super::api::DeviationView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
/// Records the decision on telling the people affected (art. 34), with the notice's text
/// or the ground not to.
async fn affected_notice(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path(reference): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let d = load_authorized(&state, &who, &reference, Action::RecordFiling)?;
    let cmd = from_json::<AffectedNoticeBody>(&body)?.parse()?;
    run(&state, &who, &d, cmd).await
}

#[utoipa::path(post, path = "/api/v1/deviations/{reference}/affected-notice/sent", tag = "staff", security(("bearer" = [])), params(("reference" = String, Path, description = "AVV-YYYY-NNNN")), request_body = AffectedNotifiedBody, responses((status = 200, description = "The deviation with the notice recorded as sent", body = super::api::DeviationView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
/// Records that the notice to the people affected went out: when, how, to about how many.
async fn affected_notified(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path(reference): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let d = load_authorized(&state, &who, &reference, Action::RecordFiling)?;
    let cmd = from_json::<AffectedNotifiedBody>(&body)?.parse(state.services.clock.now())?;
    run(&state, &who, &d, cmd).await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct DocumentQuery {
    /// `json` (default) or `pdf`.
    format: Option<String>,
}

/// The document of one phase for `d`, as the organisation details stand now.
pub(crate) fn document_of(state: &AppState, d: &Deviation, kind: FilingKind) -> FilingDocument {
    let org = crate::filing::organisation::current(
        state.services.store.as_ref(),
        &state.config.organisation,
    );
    document::build(d, &org, kind)
}

/// The download of a document as JSON or PDF, recorded in the access log first.
pub(crate) async fn download(
    state: &AppState,
    who: &Principal,
    d: &Deviation,
    kind: FilingKind,
    pdf: bool,
) -> Result<Response, ApiError> {
    let doc = document_of(state, d, kind);
    let sha256 = doc.sha256();
    super::access_log::seen(
        &state.access_log,
        &who.actor(),
        AccessKind::FilingDocument {
            filing: kind.as_str().to_string(),
            format: if pdf { "pdf" } else { "json" }.to_string(),
            sha256: sha256.clone(),
        },
        Some(d),
    )
    .await?;
    let name = format!("{}-{}", d.reference, kind.as_str());
    let (bytes, content_type, ext) = if pdf {
        (doc.to_pdf(), "application/pdf", "pdf")
    } else {
        (doc.to_json(), "application/json", "json")
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.{ext}\""),
            ),
            (header::HeaderName::from_static("x-content-sha256"), sha256),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        bytes,
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/v1/deviations/{reference}/filing-documents/{kind}", tag = "staff", security(("bearer" = [])), params(("reference" = String, Path, description = "AVV-YYYY-NNNN"), ("kind" = FilingKind, Path, description = "The phase, e.g. gdpr or nis2_notification"), DocumentQuery), responses((status = 200, description = "The phase's document as it is sent, in the order of the authority's form: JSON (docs/filing.schema.json), or PDF (application/pdf) with format=pdf. X-Content-SHA256 is the SHA-256 of the JSON document, the content_sha256 to record with the filing.", content_type = "application/json"), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
/// One phase's document (JSON or PDF); every download is in the access log.
async fn filing_document(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path((reference, kind)): Path<(String, String)>,
    Query(q): Query<DocumentQuery>,
) -> Result<Response, ApiError> {
    let d = load_authorized(&state, &who, &reference, Action::RecordFiling)?;
    let kind = FilingKind::parse(&kind).ok_or(ApiError::NotFound)?;
    let pdf = match q.format.as_deref() {
        None | Some("json") => false,
        Some("pdf") => true,
        Some(_) => {
            return Err(ApiError::Validation(vec![super::error::FieldError::new(
                "format",
                "must be \"json\" or \"pdf\"",
                "Välj json eller pdf.",
            )]))
        }
    };
    download(&state, &who, &d, kind, pdf).await
}
