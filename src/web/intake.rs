//! Intake over HTTP: the upload endpoint the MTA pipe posts to, and the staff routes for
//! attachments and the quarantine (JSON; the staff HTML links to the downloads).

#![allow(dead_code)] // the body types exist for their schemas

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::error::ApiError;
use super::AppState;
use crate::auth::{authorize, Action, Principal, Staff};
use crate::domain::{Deviation, Reference};
use crate::intake::blobs::is_sha256_hex;
use crate::intake::record::Source;
use crate::intake::{IntakeError, Released};

/// The intake routes and their OpenAPI documentation (merged into the API router).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload_email))
        .routes(routes!(list_attachments))
        .routes(routes!(download_attachment))
        .routes(routes!(list_quarantine))
        .routes(routes!(download_quarantined))
        .routes(routes!(resolve_quarantined))
        .routes(routes!(release_quarantined))
}

pub use crate::intake::{RFC822, UPLOAD_FACTOR};

/// The answer to an upload.
#[derive(ToSchema)]
pub struct IntakeAnswer {
    /// "created" | "comment" | "duplicate" | "ignored" | "quarantined"
    pub outcome: String,
    /// AVV-YYYY-NNNN, for created, comment and (when known) duplicate.
    pub reference: Option<String>,
}

#[derive(ToSchema)]
pub struct AttachmentItem {
    pub sha256: String,
    pub filename: String,
    pub content_type: String,
    pub size: u64,
    pub inline: bool,
    pub received_at: String,
    pub message_id: Option<String>,
    /// "created" (came with the report) or "comment" (came with a reply)
    pub disposition: String,
}

#[derive(ToSchema)]
pub struct QuarantineItem {
    /// Use in the quarantine routes.
    pub id: Uuid,
    pub seq: u64,
    pub received_at: String,
    pub key: String,
    pub message_id: Option<String>,
    /// "imap" | "http"
    pub source: String,
    pub raw_sha256: String,
    pub raw_size: u64,
    pub from: Option<String>,
    pub subject: Option<String>,
    pub reason: serde_json::Value,
    pub reason_sv: String,
    pub file: String,
    pub resolved: Option<serde_json::Value>,
}

/// A note on what was done with a quarantined message (required to resolve, optional to
/// release).
#[derive(Debug, Default, serde::Deserialize, ToSchema)]
pub struct ResolveBody {
    #[serde(default)]
    /// What was done with the message.
    #[schema(value_type = String, max_length = 20000, example = "Vidarebefordrat till IT-supporten.")]
    pub note: crate::web::body::Field<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: crate::web::body::Unknown,
}

/// The quarantine, newest first, and how many are still open.
#[derive(ToSchema)]
pub struct QuarantineListBody {
    pub items: Vec<QuarantineItem>,
    pub open: usize,
}

/// A problem answer of a kind `ApiError` does not have.
fn problem(status: StatusCode, kind: &str, title: &str, detail: &str, detail_sv: &str) -> Response {
    let body = serde_json::json!({
        "type": kind,
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
        "detail_sv": detail_sv,
    });
    let mut r = (status, Json(body)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    r
}

fn unavailable(e: IntakeError) -> Response {
    metrics::counter!("avvik_intake_failures_total", "source" => "http").increment(1);
    tracing::error!(error = %e, "e-mail upload failed; the sender should retry");
    ApiError::Unavailable("the message could not be recorded now; retry".into()).into_response()
}

fn token_matches(given: &str, expected: &str) -> bool {
    // Compare digests, so the comparison takes the same time wherever they differ.
    Sha256::digest(given.as_bytes()) == Sha256::digest(expected.as_bytes())
}

#[utoipa::path(post, path = "/api/v1/intake/email", tag = "intake", security(("bearer" = [])),
    request_body(content = String, content_type = "message/rfc822", description = "The raw message (RFC 5322)"),
    responses(
        (status = 202, body = IntakeAnswer, description = "Recorded; the outcome says what it became"),
        (status = 401, body = crate::web::openapi::Problem, description = "Missing or wrong intake token"),
        (status = 404, body = crate::web::openapi::Problem, description = "Upload is off (intake.token is empty)"),
        (status = 413, body = crate::web::openapi::Problem),
        (status = 415, body = crate::web::openapi::Problem),
        (status = 503, body = crate::web::openapi::Problem, description = "Not recorded; retry later")))]
/// For the MTA pipe (`avvik intake`): one raw message, authorized with the intake token
/// (`Authorization: Bearer <intake.token>`). Safe to repeat: a message is recorded once.
pub async fn upload_email(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let expected = &state.config.intake.token;
    if expected.is_empty() {
        return ApiError::NotFound.into_response();
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or("");
    if !token_matches(given, expected) {
        let mut r = problem(
            StatusCode::UNAUTHORIZED,
            "urn:avvik:problem:unauthorized",
            "Unauthorized",
            "a valid intake token is required",
            "En giltig nyckel för e-postmottagning krävs.",
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"avvik-intake\""),
        );
        return r;
    }
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = ctype.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case(RFC822) {
        return problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "urn:avvik:problem:unsupported-media-type",
            "Unsupported media type",
            "send the message as Content-Type: message/rfc822",
            "Meddelandet måste skickas som message/rfc822.",
        );
    }
    let limit = state
        .config
        .intake
        .max_message_bytes
        .saturating_mul(UPLOAD_FACTOR);
    let raw = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b.to_vec(),
        Err(_) => {
            return problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "urn:avvik:problem:too-large",
                "Message too large",
                &format!("messages larger than {limit} bytes are refused"),
                "Meddelandet är för stort för att tas emot.",
            )
        }
    };
    match state.intake.process(raw, Source::Http).await {
        Ok(result) => (StatusCode::ACCEPTED, Json(result)).into_response(),
        Err(e) => unavailable(e),
    }
}

/// Looks a deviation up for `who`: 404 when they may not see it, so existence does not
/// leak.
fn visible_deviation(
    state: &AppState,
    who: &Principal,
    reference: &str,
) -> Result<Deviation, ApiError> {
    let reference = Reference::parse(reference).ok_or(ApiError::NotFound)?;
    let reg = state.services.register.read();
    let d = reg.by_reference(reference).ok_or(ApiError::NotFound)?;
    if !authorize(who, Action::ViewDeviation, Some(d)) {
        return Err(ApiError::NotFound);
    }
    Ok(d.clone())
}

#[utoipa::path(get, path = "/api/v1/deviations/{reference}/attachments", tag = "staff", security(("bearer" = [])),
    params(("reference" = String, Path, description = "AVV-YYYY-NNNN")),
    responses((status = 200, body = [AttachmentItem]), (status = 401, body = crate::web::openapi::Problem), (status = 404, body = crate::web::openapi::Problem)))]
/// Attachments that came by e-mail with the report or with replies, oldest first.
pub async fn list_attachments(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path(reference): Path<String>,
) -> Result<Response, ApiError> {
    let d = visible_deviation(&state, &who, &reference)?;
    if d.shredded.is_some() {
        return Ok(Json(Vec::<()>::new()).into_response());
    }
    // The list names the files, and file names can be personal.
    super::access_log::seen(
        &state.access_log,
        &who.actor(),
        crate::access_log::AccessKind::DeviationApi,
        Some(&d),
    )
    .await?;
    let view = state.intake.view().read();
    Ok(Json(view.attachments(d.id)).into_response())
}

#[utoipa::path(get, path = "/api/v1/deviations/{reference}/attachments/{sha256}", tag = "staff", security(("bearer" = [])),
    params(("reference" = String, Path, description = "AVV-YYYY-NNNN"), ("sha256" = String, Path, description = "The attachment's SHA-256, hex")),
    responses((status = 200, content_type = "application/octet-stream", description = "The attachment, as a download"), (status = 401, body = crate::web::openapi::Problem), (status = 404, body = crate::web::openapi::Problem)))]
/// Downloads an attachment of a deviation the caller may see.
pub async fn download_attachment(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path((reference, sha256)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let d = visible_deviation(&state, &who, &reference)?;
    if !is_sha256_hex(&sha256) {
        return Err(ApiError::NotFound);
    }
    let listed = {
        let view = state.intake.view().read();
        view.attachments(d.id)
            .iter()
            .find(|a| a.attachment.sha256 == sha256)
            .map(|a| neutral_filename(&a.attachment.filename, &a.attachment.content_type))
    }
    .or_else(|| {
        d.attachments
            .iter()
            .find(|a| a.sha256 == sha256)
            .map(|a| neutral_filename(&a.filename, &a.content_type))
    });
    let filename = listed.ok_or(ApiError::NotFound)?;
    if d.shredded.is_some() {
        return Err(ApiError::NotFound);
    }
    super::access_log::seen(
        &state.access_log,
        &who.actor(),
        crate::access_log::AccessKind::Attachment {
            sha256: sha256.clone(),
        },
        Some(&d),
    )
    .await?;
    let blobs = state.intake.blobs().clone();
    let keys = state.services.keys.clone();
    let sha = sha256.clone();
    let id = d.id;
    let bytes =
        tokio::task::spawn_blocking(move || match blobs.read_deviation_attachment(id, &sha)? {
            Some(sealed) => keys.open_file(id, &sha, &sealed),
            None => blobs.read_attachment(&sha),
        })
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ApiError::NotFound,
            _ => ApiError::Internal(anyhow::anyhow!("attachment {sha256}: {e}")),
        })?;
    Ok(download(bytes, &filename))
}

/// Extensions of files that run script (or code) when the saved file is opened.
const ACTIVE_TEXT: &[&str] = &[
    "htm", "html", "shtml", "xht", "xhtml", "mht", "mhtml", "svg", "svgz", "xml", "xsl", "xslt",
    "js", "mjs", "jse", "vbs", "vbe", "wsf", "wsh", "hta", "ps1", "bat", "cmd", "php", "asp",
    "aspx", "jsp", "url", "desktop", "reg", "sh",
];
const ACTIVE_BINARY: &[&str] = &[
    "exe",
    "com",
    "scr",
    "msi",
    "dll",
    "jar",
    "lnk",
    "cpl",
    "pif",
    "swf",
    "appref-ms",
];
/// Content types a browser or viewer may run script from.
const ACTIVE_TYPES: &[&str] = &[
    "text/html",
    "application/xhtml+xml",
    "image/svg+xml",
    "text/xml",
    "application/xml",
    "text/javascript",
    "application/javascript",
    "application/ecmascript",
    "application/hta",
];

/// The name an attachment is saved under: its own, unless its extension or its declared
/// type can run script when the file is opened — then with `.txt` (text that can be read
/// safely) or `.bin` added, so opening it shows it rather than runs it.
pub fn neutral_filename(filename: &str, content_type: &str) -> String {
    let ext = filename
        .rsplit_once('.')
        .map(|(_, e)| e.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if ACTIVE_BINARY.contains(&ext.as_str()) {
        format!("{filename}.bin")
    } else if ACTIVE_TEXT.contains(&ext.as_str()) || ACTIVE_TYPES.contains(&essence.as_str()) {
        format!("{filename}.txt")
    } else {
        filename.to_string()
    }
}

/// A download that a browser saves and never renders.
fn download(bytes: Vec<u8>, filename: &str) -> Response {
    let ascii: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._- ".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let disposition = format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{}",
        percent_encode(filename)
    );
    let mut r = (StatusCode::OK, bytes).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// RFC 8187 value characters: everything but attr-char percent-encoded.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The quarantine entry a route names, for someone who may handle the quarantine.
fn quarantine_id(who: &Principal, id: &str) -> Result<Uuid, ApiError> {
    may_handle_quarantine(who)?;
    Uuid::parse_str(id).map_err(|_| ApiError::NotFound)
}

/// `{"note": "…"}`: what was done with a quarantined message.
fn note_body(body: &[u8], required: bool) -> Result<String, ApiError> {
    let body: ResolveBody = crate::web::body::from_json(body)?;
    let mut f = crate::web::body::Problems::default();
    let note = f.text(
        "note",
        &body.note,
        required,
        crate::domain::limits::DESCRIPTION_MAX,
    );
    f.finish(&body.unknown)?;
    Ok(note.unwrap_or_default())
}

fn may_handle_quarantine(who: &Principal) -> Result<(), ApiError> {
    if authorize(who, Action::HandleQuarantine, None) {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

#[derive(Serialize)]
struct QuarantineList<'a> {
    items: Vec<&'a crate::intake::record::QuarantineEntry>,
    open: usize,
}

#[utoipa::path(get, path = "/api/v1/intake/quarantine", tag = "intake", security(("bearer" = [])),
    responses((status = 200, description = "The quarantine and how many are open", body = QuarantineListBody), (status = 401, body = crate::web::openapi::Problem), (status = 403, body = crate::web::openapi::Problem)))]
/// Messages kept for manual handling, newest first (CISO).
pub async fn list_quarantine(
    State(state): State<AppState>,
    Staff(who): Staff,
) -> Result<Response, ApiError> {
    may_handle_quarantine(&who)?;
    let view = state.intake.view().read();
    let items = view.quarantine();
    let open = view.open_quarantine();
    Ok(Json(QuarantineList { items, open }).into_response())
}

#[utoipa::path(get, path = "/api/v1/intake/quarantine/{id}/raw", tag = "intake", security(("bearer" = [])),
    params(("id" = String, Path, description = "The quarantine entry's id")),
    responses((status = 200, content_type = "application/octet-stream", description = "The raw message (.eml), as a download"), (status = 401, body = crate::web::openapi::Problem), (status = 403, body = crate::web::openapi::Problem), (status = 404, body = crate::web::openapi::Problem)))]
/// Downloads a quarantined message's raw bytes (CISO).
pub async fn download_quarantined(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = quarantine_id(&who, &id)?;
    let sha = {
        let view = state.intake.view().read();
        view.quarantined(id)
            .map(|e| e.record.message.raw_sha256.clone())
            .ok_or(ApiError::NotFound)?
    };
    let blobs = state.intake.blobs().clone();
    let name = format!("{sha}.eml");
    let bytes = tokio::task::spawn_blocking(move || blobs.read_quarantined(&sha))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("quarantined message: {e}")))?;
    Ok(download(bytes, &name))
}

#[utoipa::path(post, path = "/api/v1/intake/quarantine/{id}/resolve", tag = "intake", security(("bearer" = [])),
    params(("id" = String, Path, description = "The quarantine entry's id")), request_body = ResolveBody,
    responses((status = 200, description = "Marked as handled", body = QuarantineItem), (status = 401, body = crate::web::openapi::Problem), (status = 403, body = crate::web::openapi::Problem), (status = 404, body = crate::web::openapi::Problem), (status = 422, body = crate::web::openapi::Problem), (status = 503, body = crate::web::openapi::Problem)))]
/// Marks a quarantined message as handled (CISO), with a note on what was done.
pub async fn resolve_quarantined(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let id = quarantine_id(&who, &id)?;
    if state.intake.view().read().quarantined(id).is_none() {
        return Err(ApiError::NotFound);
    }
    let note = note_body(&body, true)?;
    match state
        .intake
        .resolve_quarantined(id, note, &who.actor())
        .await
    {
        Ok(true) => {}
        Ok(false) => return Err(ApiError::NotFound),
        Err(e) => return Ok(unavailable(e)),
    }
    let view = state.intake.view().read();
    Ok(Json(view.quarantined(id)).into_response())
}

#[utoipa::path(post, path = "/api/v1/intake/quarantine/{id}/release", tag = "intake", security(("bearer" = [])),
    params(("id" = String, Path, description = "The quarantine entry's id")), request_body = ResolveBody,
    responses((status = 200, description = "Filed: a new deviation, or a comment on the one the message answers", body = IntakeAnswer), (status = 401, body = crate::web::openapi::Problem), (status = 403, body = crate::web::openapi::Problem), (status = 404, body = crate::web::openapi::Problem), (status = 409, description = "Already handled", body = crate::web::openapi::Problem), (status = 422, body = crate::web::openapi::Problem), (status = 503, body = crate::web::openapi::Problem)))]
/// Releases a quarantined message (CISO): it is filed without the size limits, as a new
/// deviation or a comment on the one it answers; one that still cannot be read as a report
/// becomes a deviation made from its sender, subject and the reason. The optional `note`
/// is kept with the resolution.
pub async fn release_quarantined(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let id = quarantine_id(&who, &id)?;
    let note = if body.iter().all(u8::is_ascii_whitespace) {
        String::new()
    } else {
        note_body(&body, false)?
    };
    match state
        .intake
        .release_quarantined(id, note, &who.actor())
        .await
    {
        Ok(Released::Filed(result)) => Ok(Json(result).into_response()),
        Ok(Released::NotFound) => Err(ApiError::NotFound),
        Ok(Released::AlreadyHandled) => Ok(problem(
            StatusCode::CONFLICT,
            "urn:avvik:problem:conflict",
            "Already handled",
            "the message has been handled already (resolved or released)",
            "Meddelandet är redan hanterat.",
        )),
        Err(e) => Ok(unavailable(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::neutral_filename;

    #[test]
    fn script_types_get_a_neutral_extension() {
        assert_eq!(
            neutral_filename("faktura.html", "text/html"),
            "faktura.html.txt"
        );
        assert_eq!(neutral_filename("Bild.SVG", "image/png"), "Bild.SVG.txt");
        assert_eq!(neutral_filename("bild", "image/svg+xml"), "bild.txt");
        assert_eq!(
            neutral_filename("setup.exe", "application/octet-stream"),
            "setup.exe.bin"
        );
        assert_eq!(
            neutral_filename("rapport.pdf", "application/pdf"),
            "rapport.pdf"
        );
        assert_eq!(neutral_filename("foto.jpg", "image/jpeg"), "foto.jpg");
    }
}
