//! The one mapping from failures to HTTP answers: `application/problem+json` (RFC 9457),
//! English for the API, with a Swedish sentence alongside for people.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::domain::DomainError;
use crate::service::ServiceError;

/// One bad input field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
    pub message_sv: String,
}

impl FieldError {
    pub fn new(field: &str, message: &str, message_sv: &str) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
            message_sv: message_sv.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    #[error("malformed request: {0}")]
    BadRequest(String),
    #[error("not found")]
    NotFound,
    #[error("forbidden: your roles do not allow this")]
    Forbidden,
    #[error("{0}")]
    Domain(DomainError),
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// Content is shown only once its reading is in the access log, which cannot be written.
    #[error("the access log cannot be written, so the content is not shown; retry later")]
    AccessLogUnavailable,
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// RFC 9457 problem details: `detail` in English, `detail_sv` in Swedish; a 422 lists every
/// bad field in `errors`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    pub detail_sv: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Domain(DomainError::NotFound) => ApiError::NotFound,
            ServiceError::Domain(d) => ApiError::Domain(d),
            ServiceError::NotReady => ApiError::Unavailable("the register is being rebuilt".into()),
            ServiceError::Contention => {
                ApiError::Unavailable("too many concurrent changes; retry".into())
            }
            ServiceError::Store(avvik_events::StoreError::Closed) => {
                ApiError::Unavailable("the service is shutting down".into())
            }
            ServiceError::Store(s @ avvik_events::StoreError::Storage(_))
            | ServiceError::Store(s @ avvik_events::StoreError::Io(_)) => {
                tracing::error!(error = %s, "write failed in the event store");
                ApiError::Unavailable("the event store cannot write right now".into())
            }
            ServiceError::Store(other) => ApiError::Internal(other.into()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind, title, detail_sv) = match &self {
            ApiError::Validation(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "urn:avvik:problem:validation",
                "Invalid input",
                "Uppgifterna behöver rättas.".to_string(),
            ),
            ApiError::BadRequest(_) => (
                StatusCode::BAD_REQUEST,
                "urn:avvik:problem:bad-request",
                "Malformed request",
                "Begäran kunde inte läsas.".to_string(),
            ),
            ApiError::NotFound => (
                StatusCode::NOT_FOUND,
                "urn:avvik:problem:not-found",
                "Not found",
                "Det du söker finns inte.".to_string(),
            ),
            ApiError::Forbidden => (
                StatusCode::FORBIDDEN,
                "urn:avvik:problem:forbidden",
                "Forbidden",
                "Din roll ger inte behörighet till detta.".to_string(),
            ),
            ApiError::Domain(d) => (
                StatusCode::CONFLICT,
                "urn:avvik:problem:conflict",
                "Not allowed in the current state",
                d.message_sv(),
            ),
            ApiError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "urn:avvik:problem:unavailable",
                "Service unavailable",
                "Tjänsten kan inte ta emot ändringar just nu. Försök igen om en stund.".to_string(),
            ),
            ApiError::AccessLogUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "urn:avvik:problem:access-log-unavailable",
                "Service unavailable",
                "Läsloggen kan inte skrivas just nu, därför visas inte innehållet. Försök igen om en stund.".to_string(),
            ),
            ApiError::Internal(e) => {
                tracing::error!(error = ?e, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "urn:avvik:problem:internal",
                    "Internal error",
                    "Ett oväntat fel inträffade.".to_string(),
                )
            }
        };
        let detail = match &self {
            ApiError::Internal(_) => "an unexpected error occurred".to_string(),
            other => other.to_string(),
        };
        let errors = match &self {
            ApiError::Validation(list) => Some(list.clone()),
            _ => None,
        };
        let body = Problem {
            kind: kind.to_string(),
            title: title.to_string(),
            status: status.as_u16(),
            detail,
            detail_sv,
            errors,
        };
        let mut resp = (status, axum::Json(body)).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        }
        resp
    }
}

/// Makes every error answer of the API a problem: axum's own refusals (a path or query
/// that does not parse, a wrong method, a body over the limit) come as plain text, which
/// the API never answers. Answers that are problems already pass unchanged.
pub async fn as_problem(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_problem = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if is_problem {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let reason = status.canonical_reason().unwrap_or("Error");
    let (kind, detail_sv) = match status {
        StatusCode::BAD_REQUEST => ("urn:avvik:problem:bad-request", "Begäran kunde inte läsas."),
        StatusCode::NOT_FOUND => ("urn:avvik:problem:not-found", "Det du söker finns inte."),
        StatusCode::METHOD_NOT_ALLOWED => (
            "urn:avvik:problem:method-not-allowed",
            "Metoden används inte för den här adressen.",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ("urn:avvik:problem:too-large", "Begäran är för stor."),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "urn:avvik:problem:unsupported-media-type",
            "Innehållstypen stöds inte.",
        ),
        StatusCode::UNPROCESSABLE_ENTITY => (
            "urn:avvik:problem:validation",
            "Uppgifterna behöver rättas.",
        ),
        s if s.is_server_error() => (
            "urn:avvik:problem:unavailable",
            "Tjänsten kan inte svara just nu. Försök igen om en stund.",
        ),
        _ => ("urn:avvik:problem:client", "Begäran kunde inte utföras."),
    };
    let detail = if text.is_empty() {
        reason.to_lowercase()
    } else {
        text
    };
    let body = Problem {
        kind: kind.to_string(),
        title: reason.to_string(),
        status: status.as_u16(),
        detail,
        detail_sv: detail_sv.to_string(),
        errors: None,
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    parts.headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/problem+json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(bytes))
}
