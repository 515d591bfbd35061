//! CSRF protection for every state-changing HTML form, with `axum_csrf` (double-submit:
//! a private cookie holds a random token, the form carries its HMAC).
//!
//! The pattern for a page with a form:
//! ```ignore
//! // GET: put the token in the form and send the cookie along.
//! async fn show(csrf: CsrfToken, State(state): State<AppState>) -> Result<Response, PageError> {
//!     let page = MyPage { layout: Layout::staff("…", nav), csrf: form_token(&csrf)?, … };
//!     Ok((csrf, render(StatusCode::OK, &page)).into_response())
//! }
//! // POST: `CsrfForm` answers 403 (Swedish page) before the handler runs if the token is
//! // missing or wrong.
//! async fn save(CsrfForm { csrf, form }: CsrfForm<MyForm>, …) -> Result<Response, PageError>
//! ```
//! and in the template, inside the `<form method="post">`:
//! `<input type="hidden" name="authenticity_token" value="{{ csrf }}">`.

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum_csrf::{CsrfConfig, CsrfToken, Key, SameSite};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::pages::PageError;
use super::AppState;
use crate::secret::Secret;

/// The hidden form field that carries the token.
pub const CSRF_FIELD: &str = "authenticity_token";
const COOKIE: &str = "avvik_csrf";
/// How long a form stays good after it was shown.
const LIFETIME_HOURS: i64 = 12;

/// The CSRF configuration: cookie key and HMAC salt come from the installation secret, so
/// forms stay valid across restarts and every instance of one installation agrees.
pub fn csrf_config(secret: &Secret, base_url: &str) -> CsrfConfig {
    let secure = base_url.starts_with("https://");
    let mut key = Vec::with_capacity(64);
    key.extend_from_slice(&secret.derive("csrf-cookie-1"));
    key.extend_from_slice(&secret.derive("csrf-cookie-2"));
    CsrfConfig::default()
        .with_key(Some(Key::from(&key)))
        .with_salt(hex::encode(secret.derive("csrf-salt")))
        .with_cookie_name(COOKIE)
        .with_cookie_same_site(SameSite::Lax)
        .with_http_only(true)
        .with_secure(secure)
        // `__Host-` binds the cookie to this host and path `/`; it requires Secure.
        .with_prefix_with_host(secure)
        .with_lifetime(time::Duration::hours(LIFETIME_HOURS))
}

/// Derived per request (three SHA-256 runs): cheaper than keeping it in `AppState` in step
/// with the secret.
impl FromRef<AppState> for CsrfConfig {
    fn from_ref(state: &AppState) -> Self {
        csrf_config(&state.secret, &state.config.http.base_url)
    }
}

/// The value for the hidden `authenticity_token` field.
pub fn form_token(csrf: &CsrfToken) -> Result<String, PageError> {
    csrf.authenticity_token()
        .map_err(|e| PageError::Internal(anyhow::anyhow!("CSRF token: {e}")))
}

/// A posted `application/x-www-form-urlencoded` form whose CSRF token checked out.
/// Repeated fields deserialize into `Vec`s (serde_html_form). Rejections are Swedish
/// pages: 403 for a bad or missing token, 400 for an unreadable body, 413 for too large.
pub struct CsrfForm<T> {
    /// Hand back with the response (it re-sends the cookie) when showing the form again.
    pub csrf: CsrfToken,
    pub form: T,
}

#[derive(Deserialize)]
struct TokenField {
    #[serde(default)]
    authenticity_token: String,
}

impl<S, T> FromRequest<S> for CsrfForm<T>
where
    S: Send + Sync,
    CsrfConfig: FromRef<S>,
    T: DeserializeOwned,
{
    type Rejection = PageError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let csrf = match CsrfToken::from_request_parts(&mut parts, state).await {
            Ok(t) => t,
            Err((_, why)) => return Err(PageError::Internal(anyhow::anyhow!(why))),
        };
        let is_form = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Err(PageError::BadRequest("not a form post".into()));
        }
        let bytes = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|e| {
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    PageError::PayloadTooLarge
                } else {
                    PageError::BadRequest(e.body_text())
                }
            })?;
        let token: TokenField = serde_html_form::from_bytes(&bytes)
            .map_err(|e| PageError::BadRequest(format!("form: {e}")))?;
        if csrf.verify(&token.authenticity_token).is_err() {
            tracing::info!("form refused: CSRF token missing or invalid");
            return Err(PageError::Csrf);
        }
        let form = serde_html_form::from_bytes(&bytes)
            .map_err(|e| PageError::BadRequest(format!("form: {e}")))?;
        Ok(CsrfForm { csrf, form })
    }
}
