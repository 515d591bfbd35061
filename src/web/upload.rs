//! Files attached from the public form, the status page and the staff page: read from a
//! `multipart/form-data` post (CSRF-checked like every form), their type sniffed from the
//! content (never taken from the name or the browser's claim), sealed with the
//! deviation's key and stored content-addressed as intake's attachments are, each one an
//! `AttachmentAdded` event with its SHA-256.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum_csrf::CsrfToken;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::pages::PageError;
use super::AppState;
use crate::domain::deviation::AttachmentAdded;
use crate::domain::{Command, Deviation};
use crate::web::error::FieldError;

/// Files in one post, at most.
pub const MAX_FILES: usize = 5;

/// One uploaded file, as posted.
#[derive(Debug, Clone)]
pub struct Upload {
    pub filename: String,
    pub bytes: Vec<u8>,
}

/// A posted form (urlencoded or multipart) whose CSRF token checked out, with its files.
pub struct CsrfUpload<T> {
    pub csrf: CsrfToken,
    pub form: T,
    /// The files of `multipart/form-data` inputs that held one (empty file inputs are
    /// left out).
    pub files: Vec<Upload>,
}

/// Form-url-encodes pairs (so multipart text fields are read exactly as a form's).
fn encode(pairs: &[(String, String)]) -> String {
    let enc = |s: &str| {
        let mut out = String::new();
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    out.push(b as char)
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

impl<T> FromRequest<AppState> for CsrfUpload<T>
where
    T: DeserializeOwned,
{
    type Rejection = PageError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if !content_type.starts_with("multipart/form-data") {
            let super::csrf::CsrfForm { csrf, form } =
                super::csrf::CsrfForm::<T>::from_request(req, state).await?;
            return Ok(CsrfUpload {
                csrf,
                form,
                files: Vec::new(),
            });
        }
        let boundary = multer::parse_boundary(&content_type)
            .map_err(|_| PageError::BadRequest("multipart without a boundary".into()))?;
        let (mut parts, body) = req.into_parts();
        let csrf = match CsrfToken::from_request_parts(&mut parts, state).await {
            Ok(t) => t,
            Err((_, why)) => return Err(PageError::Internal(anyhow::anyhow!(why))),
        };
        let per_file = state.config.intake.max_attachment_bytes as u64;
        let text_limit = state.config.http.body_limit as u64;
        let whole = per_file
            .saturating_mul(MAX_FILES as u64)
            .saturating_add(text_limit);
        let constraints = multer::Constraints::new().size_limit(
            multer::SizeLimit::new()
                .whole_stream(whole)
                .per_field(per_file.max(text_limit)),
        );
        let stream = axum::body::Body::new(body)
            .into_data_stream()
            .map(|r| r.map_err(std::io::Error::other));
        let mut mp = multer::Multipart::with_constraints(stream, boundary, constraints);
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut files = Vec::new();
        let mut text_bytes = 0usize;
        let too_large = |e: &multer::Error| {
            matches!(
                e,
                multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. }
            )
        };
        loop {
            let field = match mp.next_field().await {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) if too_large(&e) => return Err(PageError::PayloadTooLarge),
                Err(e) => return Err(PageError::BadRequest(format!("multipart: {e}"))),
            };
            let name = field.name().unwrap_or("").to_string();
            let filename = field.file_name().map(str::to_string);
            let data: Bytes = match field.bytes().await {
                Ok(b) => b,
                Err(e) if too_large(&e) => return Err(PageError::PayloadTooLarge),
                Err(e) => return Err(PageError::BadRequest(format!("multipart: {e}"))),
            };
            match filename {
                Some(f) => {
                    if f.is_empty() && data.is_empty() {
                        continue; // an empty file input
                    }
                    if files.len() == MAX_FILES {
                        return Err(PageError::PayloadTooLarge);
                    }
                    files.push(Upload {
                        filename: f,
                        bytes: data.to_vec(),
                    });
                }
                None => {
                    text_bytes += data.len();
                    if text_bytes as u64 > text_limit {
                        return Err(PageError::PayloadTooLarge);
                    }
                    let value = String::from_utf8(data.to_vec())
                        .map_err(|_| PageError::BadRequest("form field is not UTF-8".into()))?;
                    pairs.push((name, value));
                }
            }
        }
        let token = pairs
            .iter()
            .find(|(k, _)| k == super::csrf::CSRF_FIELD)
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        if csrf.verify(token).is_err() {
            tracing::info!("form refused: CSRF token missing or invalid");
            return Err(PageError::Csrf);
        }
        let form = serde_html_form::from_str(&encode(&pairs))
            .map_err(|e| PageError::BadRequest(format!("form: {e}")))?;
        Ok(CsrfUpload { csrf, form, files })
    }
}

/// What a file's bytes are, from their first bytes: its MIME type and the extensions its
/// name may have. Only these are accepted.
fn sniff(bytes: &[u8]) -> Option<(&'static str, &'static [&'static str])> {
    let starts = |m: &[u8]| bytes.starts_with(m);
    if starts(b"%PDF-") {
        return Some(("application/pdf", &["pdf"]));
    }
    if starts(b"\x89PNG\r\n\x1a\n") {
        return Some(("image/png", &["png"]));
    }
    if starts(&[0xFF, 0xD8, 0xFF]) {
        return Some(("image/jpeg", &["jpg", "jpeg"]));
    }
    if starts(b"GIF87a") || starts(b"GIF89a") {
        return Some(("image/gif", &["gif"]));
    }
    if starts(b"PK\x03\x04") {
        return Some((
            "application/zip",
            &["zip", "docx", "xlsx", "pptx", "odt", "ods", "odp"],
        ));
    }
    let text = std::str::from_utf8(bytes).ok()?;
    if text.contains('\0') {
        return None;
    }
    let head: String = text.chars().take(2048).collect::<String>().to_lowercase();
    // Markup a browser or viewer could run is never "text".
    let markup = [
        "<html",
        "<!doctype",
        "<script",
        "<svg",
        "<?xml",
        "<iframe",
        "<body",
        "<head",
        "<meta",
        "<object",
        "<embed",
        "<a ",
        "<img",
        "<div",
        "<form",
        "<style",
    ];
    if markup.iter().any(|m| head.contains(m)) {
        return None;
    }
    Some(("text/plain", &["txt", "log", "csv", "text"]))
}

/// Checks every file (name, size, content) and answers its type, or a problem for the
/// input `field` in English and Swedish.
pub fn check(
    files: &[Upload],
    field: &str,
    max_bytes: usize,
) -> Result<Vec<(Upload, &'static str)>, Vec<FieldError>> {
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        let name: String = f
            .filename
            .rsplit(['/', '\\'])
            .next()
            .unwrap_or("")
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect();
        let name = name.trim().to_string();
        let shown = if name.is_empty() { "filen" } else { &name };
        if f.bytes.is_empty() {
            errors.push(FieldError::new(
                field,
                "the file is empty",
                &format!("{shown} är tom."),
            ));
            continue;
        }
        if f.bytes.len() > max_bytes {
            errors.push(FieldError::new(
                field,
                &format!("the file is larger than {max_bytes} bytes"),
                &format!(
                    "{shown} är för stor (högst {} MB).",
                    max_bytes / (1024 * 1024)
                ),
            ));
            continue;
        }
        let ext = name
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .unwrap_or_default();
        match sniff(&f.bytes) {
            Some((ty, exts)) if exts.contains(&ext.as_str()) => ok.push((
                Upload {
                    filename: name.clone(),
                    bytes: f.bytes.clone(),
                },
                ty,
            )),
            Some((ty, _)) => errors.push(FieldError::new(
                field,
                &format!("the file's content ({ty}) does not match its name"),
                &format!(
                    "{shown}: innehållet stämmer inte med filnamnet. Spara filen med rätt filändelse och försök igen."
                ),
            )),
            None => errors.push(FieldError::new(
                field,
                "this kind of file is not accepted (PDF, PNG, JPEG, GIF, plain text and Office documents are)",
                &format!(
                    "{shown}: den sortens fil tas inte emot. Bifoga PDF, bilder (PNG, JPEG, GIF), vanlig text eller Office-dokument."
                ),
            )),
        }
    }
    if errors.is_empty() {
        Ok(ok)
    } else {
        Err(errors)
    }
}

/// Seals and stores each checked file with `d`'s key, then records it on `d`.
pub async fn attach(
    state: &AppState,
    d: &Deviation,
    files: Vec<(Upload, &'static str)>,
    from_reporter: bool,
    actor: &str,
) -> Result<(), PageError> {
    for (f, ty) in files {
        let sha256 = hex::encode(Sha256::digest(&f.bytes));
        let size = f.bytes.len() as u64;
        let (store, keys, blobs) = (
            state.services.store.clone(),
            state.services.keys.clone(),
            state.intake.blobs().clone(),
        );
        let (id, sha, bytes) = (d.id, sha256.clone(), f.bytes);
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let sealed = keys.seal_file(store.as_ref(), id, &sha, &bytes)?;
            blobs.put_deviation_attachment(id, &sha, &sealed)
        })
        .await
        .map_err(|e| PageError::Internal(e.into()))?
        .map_err(|e| PageError::Internal(anyhow::anyhow!("storing an attachment: {e}")))?;
        let cmd = Command::AddAttachment(AttachmentAdded {
            sha256,
            filename: f.filename,
            content_type: ty.to_string(),
            size,
            from_reporter,
        });
        match state.services.execute(d.reference, cmd, actor).await {
            Ok(_) | Err(crate::service::ServiceError::Domain(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
