//! What an API write must look like: a JSON body (415 otherwise). Together with the
//! `Staff` extractor refusing the session cookie for API writes (bearer tokens only), a
//! form on another origin — another port of the same host, another `*.kommunen.se` host,
//! which SameSite=Lax does not stop — cannot change anything through the API.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Writes open to anyone, which no cookie authorizes or hinders (the public report).
const PUBLIC_WRITES: &[&str] = &["/api/v1/deviations"];

/// The operations whose body is JSON, as the OpenAPI document declares them: only these
/// get the 415 check, so a method a path does not have is answered 405 by the router and
/// a body of another type by contract (`message/rfc822` for intake) is left to its route.
#[derive(Debug, Default)]
pub struct JsonWrites(Vec<(Method, Vec<String>)>);

impl JsonWrites {
    pub fn from_doc(doc: &utoipa::openapi::OpenApi) -> Self {
        let mut out = Vec::new();
        for (path, item) in &doc.paths.paths {
            let segments: Vec<String> = path.split('/').map(str::to_string).collect();
            for (method, op) in [
                (Method::POST, &item.post),
                (Method::PUT, &item.put),
                (Method::PATCH, &item.patch),
                (Method::DELETE, &item.delete),
            ] {
                let json = op
                    .as_ref()
                    .and_then(|o| o.request_body.as_ref())
                    .is_some_and(|b| matches!(b, utoipa::openapi::RefOr::T(b) if b.content.keys().any(|ct| is_json(ct))));
                if json {
                    out.push((method, segments.clone()));
                }
            }
        }
        Self(out)
    }

    /// Does `method path` name an operation that takes a JSON body?
    pub fn takes_json(&self, method: &Method, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').collect();
        self.0.iter().any(|(m, template)| {
            m == method
                && template.len() == parts.len()
                && template
                    .iter()
                    .zip(&parts)
                    .all(|(t, p)| (t.starts_with('{') && !p.is_empty()) || t == p)
        })
    }
}

/// Is this `Content-Type` JSON (`application/json`, `application/problem+json`, with or
/// without parameters)?
pub fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Is a method one that may change something?
pub fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// A request without a body (no `Content-Length` above 0, no chunked body).
fn bodyless(req: &Request) -> bool {
    let h = req.headers();
    if h.contains_key(header::TRANSFER_ENCODING) {
        return false;
    }
    match h.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()) {
        Some(n) => n.trim() == "0",
        None => true,
    }
}

/// Does the request carry the staff session cookie?
fn has_session_cookie(req: &Request) -> bool {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .any(|c| {
            c.trim()
                .starts_with(&format!("{}=", crate::auth::session::SESSION_COOKIE))
        })
}

/// Middleware for the API router. A staff write that comes with the session cookie and
/// no bearer token is refused (401) — what a browser sends for a form on another origin;
/// then a write with a body that is not declared JSON is answered 415, before any
/// handler sees it.
pub async fn require_json(
    State(writes): State<Arc<JsonWrites>>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path();
    if is_write(req.method()) && path.starts_with("/api/") {
        if !PUBLIC_WRITES.contains(&path)
            && !req.headers().contains_key(header::AUTHORIZATION)
            && has_session_cookie(&req)
        {
            tracing::warn!(path = %path, "API write with a session cookie and no bearer token refused");
            return crate::auth::session::AuthRejection::ApiWriteWithCookie.into_response();
        }
        if !writes.takes_json(req.method(), path) {
            return next.run(req).await;
        }
        let declared = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let ok = match declared {
            Some(ct) => is_json(ct),
            None => bodyless(&req),
        };
        if !ok {
            ::metrics::counter!("avvik_http_unsupported_media_type_total").increment(1);
            return unsupported_media_type();
        }
    }
    next.run(req).await
}

fn unsupported_media_type() -> Response {
    let body = serde_json::json!({
        "type": "urn:avvik:problem:unsupported-media-type",
        "title": "Unsupported Media Type",
        "status": 415,
        "detail": "API writes take a JSON body: send Content-Type: application/json",
        "detail_sv": "Begäran måste skickas som JSON.",
    });
    let mut r = (StatusCode::UNSUPPORTED_MEDIA_TYPE, axum::Json(body)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/problem+json"),
    );
    r.headers_mut().insert(
        header::HeaderName::from_static("accept-post"),
        header::HeaderValue::from_static("application/json"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_types() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-www-form-urlencoded"));
        assert!(!is_json("multipart/form-data; boundary=x"));
        assert!(!is_json("text/json+plain"));
    }
}
