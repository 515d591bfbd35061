//! Shared plumbing for HTML pages: the layout every page extends, rendering a template
//! into a response, Swedish error pages, form error lists, the stylesheet, time display.

use super::Routes;
use askama::Template;
use axum::extract::OriginalUri;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use chrono_tz::Europe::Stockholm;

use super::error::{ApiError, FieldError};
use crate::service::ServiceError;

/// The stylesheet, compiled in. No inline styles or scripts anywhere, so the CSP is strict.
pub const STYLESHEET: &str = include_str!("../../static/avvik.css");
pub const STYLESHEET_PATH: &str = "/static/avvik.css";
/// The one script: passkey registration and sign-in (no inline scripts: the CSP allows
/// scripts from 'self' only).
pub const PASSKEYS_JS: &str = include_str!("../../static/passkeys.js");
pub const PASSKEYS_JS_PATH: &str = "/static/passkeys.js";

/// Which part of the service a page belongs to (header text and home link).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    Public,
    Staff,
    Audit,
}

/// A link in the header navigation.
#[derive(Debug, Clone)]
pub struct NavLink {
    pub href: String,
    pub label: String,
    /// Marks the link with `aria-current="page"`.
    pub current: bool,
}

/// What `templates/base.html` needs from every page: each page template has a
/// `layout: Layout` field and `{% extends "base.html" %}`.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The page's own title; the `<title>` adds the service name (and "Fel: " when the
    /// page shows form errors, so screen-reader users hear it first).
    pub title: String,
    pub area: Area,
    pub nav: Vec<NavLink>,
    pub has_errors: bool,
    /// Recipient lists escalation needs that are empty (staff pages show a banner).
    pub missing_recipients: Vec<&'static str>,
}

tokio::task_local! {
    /// The empty required recipient lists, set per request by `web::recipients::banner`
    /// so that every staff page's layout names them without each handler asking.
    pub static MISSING_RECIPIENTS: Vec<&'static str>;
}

impl Layout {
    pub fn public(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            area: Area::Public,
            nav: Vec::new(),
            has_errors: false,
            missing_recipients: Vec::new(),
        }
    }

    pub fn staff(title: impl Into<String>, nav: Vec<NavLink>) -> Self {
        Self {
            title: title.into(),
            area: Area::Staff,
            nav,
            has_errors: false,
            missing_recipients: MISSING_RECIPIENTS
                .try_with(Clone::clone)
                .unwrap_or_default(),
        }
    }

    /// Marks the page as showing form errors.
    pub fn with_errors(mut self, has_errors: bool) -> Self {
        self.has_errors = has_errors;
        self
    }

    pub fn is_public(&self) -> bool {
        self.area == Area::Public
    }

    pub fn home_href(&self) -> &'static str {
        match self.area {
            Area::Public => "/",
            Area::Staff => "/staff",
            Area::Audit => "/audit",
        }
    }

    pub fn service_name(&self) -> &'static str {
        match self.area {
            Area::Public => "Avvikelserapportering",
            Area::Staff => "Avvikelsehantering",
            Area::Audit => "Granskning av avvikelser",
        }
    }
}

/// Renders a template as an HTML response with `status`. A template that fails to render
/// is logged and answered with the plain 500 page, never with half a page.
pub fn render<T: Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(body) => (status, Html(body)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, template = std::any::type_name::<T>(), "template failed to render");
            internal_error_page()
        }
    }
}

/// One error in a form: which input, and the Swedish message shown at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormError {
    /// The input's `id` (and `name`).
    pub field: String,
    /// Short name of the input for the error summary, e.g. "Rubrik".
    pub label: String,
    pub message: String,
}

/// The errors of a posted form, for the error summary at the top and the message at each
/// input (see the `field` macros in `templates/macros.html`).
#[derive(Debug, Clone, Default)]
pub struct FormErrors {
    pub items: Vec<FormError>,
}

impl FormErrors {
    /// `labels` maps input ids to the short names used in the summary.
    pub fn new(errors: &[FieldError], labels: &[(&str, &str)]) -> Self {
        let items = errors
            .iter()
            .map(|e| FormError {
                field: e.field.clone(),
                label: labels
                    .iter()
                    .find(|(f, _)| *f == e.field)
                    .map(|(_, l)| (*l).to_string())
                    .unwrap_or_default(),
                message: e.message_sv.clone(),
            })
            .collect();
        Self { items }
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The Swedish message for an input, if it has one.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.items
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.message.as_str())
    }
}

/// A Swedish error page: 400, 403, 404, 429, 500, 503.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The form's CSRF token was missing or wrong.
    #[error("forbidden: form token missing or invalid")]
    Csrf,
    #[error("forbidden")]
    Forbidden,
    #[error("not found")]
    NotFound,
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("too many requests")]
    TooManyRequests { retry_after_s: u64 },
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// Content is shown only once its reading is in the access log, which cannot be written.
    #[error("the access log cannot be written")]
    AccessLogUnavailable,
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl From<ServiceError> for PageError {
    fn from(e: ServiceError) -> Self {
        match ApiError::from(e) {
            ApiError::NotFound => PageError::NotFound,
            ApiError::Unavailable(why) => PageError::Unavailable(why),
            ApiError::Internal(e) => PageError::Internal(e),
            // Validation and domain refusals are the handler's to show in context; one that
            // gets here is a bug in the handler.
            other => PageError::Internal(anyhow::anyhow!("unhandled service error: {other}")),
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    heading: &'static str,
    message: &'static str,
    advice: &'static str,
}

impl PageError {
    pub fn status(&self) -> StatusCode {
        match self {
            PageError::BadRequest(_) => StatusCode::BAD_REQUEST,
            PageError::Csrf | PageError::Forbidden => StatusCode::FORBIDDEN,
            PageError::NotFound => StatusCode::NOT_FOUND,
            PageError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            PageError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            PageError::Unavailable(_) | PageError::AccessLogUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            PageError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn texts(&self) -> (&'static str, &'static str, &'static str) {
        match self {
            PageError::BadRequest(_) => (
                "Begäran kunde inte läsas",
                "Det som skickades gick inte att tolka.",
                "Gå tillbaka och försök igen.",
            ),
            PageError::Csrf => (
                "Formuläret kunde inte skickas",
                "Formuläret saknade en giltig säkerhetskod. Det kan bero på att sidan \
                 har varit öppen länge eller att cookies är avstängda i webbläsaren.",
                "Gå tillbaka, ladda om sidan och skicka igen. Det du skrev kan behöva \
                 fyllas i på nytt.",
            ),
            PageError::Forbidden => (
                "Du har inte behörighet",
                "Du har inte behörighet att se eller ändra det här.",
                "Kontakta en administratör om du behöver behörighet.",
            ),
            PageError::NotFound => (
                "Sidan finns inte",
                "Sidan du försökte nå finns inte. Om du följde en statuslänk kan den \
                 vara felskriven eller ofullständig.",
                "Kontrollera adressen. Kopiera gärna hela länken från kvittot igen.",
            ),
            PageError::PayloadTooLarge => (
                "Det du skickade är för stort",
                "Texten är för lång för att kunna tas emot.",
                "Gå tillbaka, korta ner texten och försök igen.",
            ),
            PageError::TooManyRequests { .. } => (
                "För många försök",
                "Det har skickats för många formulär från din dator på kort tid.",
                "Vänta en minut och försök sedan igen.",
            ),
            PageError::Unavailable(_) => (
                "Tjänsten är inte tillgänglig just nu",
                "Tjänsten kan inte ta emot ändringar för tillfället.",
                "Försök igen om en stund.",
            ),
            PageError::AccessLogUnavailable => (
                "Innehållet kan inte visas just nu",
                "Varje visning av en avvikelse skrivs i läsloggen, och läsloggen kan inte \
                 skrivas för tillfället. Därför visas inte innehållet.",
                "Försök igen om en stund. Kvarstår felet, kontakta den som förvaltar tjänsten.",
            ),
            PageError::Internal(_) => (
                "Något gick fel",
                "Ett oväntat fel inträffade. Felet har loggats.",
                "Försök igen om en stund.",
            ),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            PageError::Internal(e) => tracing::error!(error = ?e, "internal error"),
            PageError::Unavailable(why) => tracing::warn!(%why, "unavailable"),
            _ => {}
        }
        let (heading, message, advice) = self.texts();
        let page = ErrorPage {
            layout: Layout::public(heading),
            heading,
            message,
            advice,
        };
        let mut resp = render(status, &page);
        match self {
            PageError::TooManyRequests { retry_after_s } => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s.max(1)));
            }
            PageError::Unavailable(_) | PageError::AccessLogUnavailable => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {}
        }
        resp
    }
}

/// The last resort when a template cannot render: fixed text, no template.
fn internal_error_page() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Html(
            "<!DOCTYPE html><html lang=\"sv\"><head><meta charset=\"utf-8\">\
             <title>Något gick fel</title></head><body><main><h1>Något gick fel</h1>\
             <p>Ett oväntat fel inträffade. Försök igen om en stund.</p></main></body></html>",
        ),
    )
        .into_response()
}

/// Swedish 404 page, or problem+json under `/api/`.
pub async fn not_found(OriginalUri(uri): OriginalUri) -> Response {
    if uri.path().starts_with("/api/") {
        ApiError::NotFound.into_response()
    } else {
        PageError::NotFound.into_response()
    }
}

/// A UTC time as Stockholm local time for people: `2026-03-05 14:30`.
pub fn stockholm_display(t: DateTime<Utc>) -> String {
    t.with_timezone(&Stockholm)
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

/// Today's date in Stockholm, `YYYY-MM-DD` (for `max` on date inputs).
pub fn stockholm_today(now: DateTime<Utc>) -> String {
    now.with_timezone(&Stockholm).format("%Y-%m-%d").to_string()
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

async fn passkeys_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        PASSKEYS_JS,
    )
        .into_response()
}

/// Static assets.
pub fn router() -> Routes {
    Routes::new()
        .get(STYLESHEET_PATH, stylesheet)
        .get(PASSKEYS_JS_PATH, passkeys_js)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stockholm_display_follows_dst() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(
            stockholm_display(t("2026-01-15T07:00:00Z")),
            "2026-01-15 08:00"
        );
        assert_eq!(
            stockholm_display(t("2026-07-15T07:00:00Z")),
            "2026-07-15 09:00"
        );
    }

    #[test]
    fn error_pages_are_swedish_html() {
        for e in [
            PageError::NotFound,
            PageError::Csrf,
            PageError::TooManyRequests { retry_after_s: 3 },
            PageError::Internal(anyhow::anyhow!("boom")),
        ] {
            let status = e.status();
            let resp = e.into_response();
            assert_eq!(resp.status(), status);
            assert!(resp.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html"));
        }
    }
}
