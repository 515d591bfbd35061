//! JSON API v1.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::error::ApiError;
use super::report_input::parse_report_json;
use super::AppState;
use crate::domain::Channel;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/deviations", post(create_deviation))
}

fn json_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("body is not valid JSON: {e}")))
}

/// Public: anyone may report. Answers 201 with the reference and the private status token.
async fn create_deviation(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let value = json_body(&body)?;
    let now = state.services.clock.now();
    let report = parse_report_json(&value, &state.config.report, now, Channel::Api)
        .map_err(ApiError::Validation)?;
    let actor = match &report.reporter {
        Some(r) => format!("reporter:{}", r.email),
        None => "reporter:anonymous".to_string(),
    };
    let receipt = state.services.report(report, &actor).await?;
    let location = format!("/api/v1/deviations/{}", receipt.reference);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(json!({
            "id": receipt.id,
            "reference": receipt.reference,
            "status_token": receipt.status_token,
        })),
    )
        .into_response())
}
