//! The e-mail quarantine: mail the intake could not take in, and its release.

use crate::web::Routes;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_csrf::CsrfToken;
use serde::Deserialize;
use uuid::Uuid;

use super::staff_nav;
use super::timeline::actor_sv;
use crate::auth::{authorize, Action, Staff};
use crate::intake::Released;
use crate::web::csrf::{form_token, CsrfForm};
use crate::web::pages::{render, stockholm_display, Layout, PageError};
use crate::web::AppState;

pub(super) fn routes() -> Routes {
    Routes::new()
        .get("/staff/intake/quarantine", quarantine_page)
        .post("/staff/intake/quarantine/{id}/release", release_quarantined)
}

struct QuarantineRow {
    id: Uuid,
    received: String,
    from: String,
    subject: String,
    reason: String,
    size: String,
    state: String,
    open: bool,
}

#[derive(Template)]
#[template(path = "staff/quarantine.html")]
struct QuarantinePage {
    layout: Layout,
    items: Vec<QuarantineRow>,
    csrf: String,
    /// Set when a release found the message handled already.
    already_handled: bool,
}

#[derive(Deserialize)]
struct QuarantineQuery {
    #[serde(default)]
    redan: Option<String>,
}

/// Mail the intake could not take in, for manual handling (raw bytes downloadable; an
/// open one can be released as a deviation).
async fn quarantine_page(
    State(state): State<AppState>,
    Staff(who): Staff,
    csrf: CsrfToken,
    Query(q): Query<QuarantineQuery>,
) -> Result<Response, PageError> {
    if !authorize(&who, Action::HandleQuarantine, None) {
        return Err(PageError::Forbidden);
    }
    let items = state
        .intake
        .view()
        .read()
        .quarantine()
        .into_iter()
        .map(|q| QuarantineRow {
            id: q.id,
            received: stockholm_display(q.received_at),
            from: q.record.message.from.clone().unwrap_or_else(|| "–".into()),
            subject: q
                .record
                .message
                .subject
                .clone()
                .unwrap_or_else(|| "–".into()),
            reason: q.record.reason_sv.clone(),
            size: format!("{} byte", q.record.message.raw_size),
            state: match &q.resolved {
                Some(r) => format!(
                    "hanterat av {} {}: {}",
                    actor_sv(&r.by),
                    stockholm_display(r.at),
                    r.note
                ),
                None => "ej hanterat".into(),
            },
            open: q.resolved.is_none(),
        })
        .collect();
    let page = QuarantinePage {
        layout: Layout::staff(
            "Karantän för e-post",
            staff_nav(&who, "/staff/intake/quarantine"),
        ),
        items,
        csrf: form_token(&csrf)?,
        already_handled: q.redan.is_some(),
    };
    Ok((csrf, render(StatusCode::OK, &page)).into_response())
}

/// Releases a quarantined message as a deviation (or a comment on the one it answers)
/// and shows that deviation.
async fn release_quarantined(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path(id): Path<String>,
    CsrfForm { .. }: CsrfForm<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    if !authorize(&who, Action::HandleQuarantine, None) {
        return Err(PageError::Forbidden);
    }
    let id = Uuid::parse_str(&id).map_err(|_| PageError::NotFound)?;
    match state
        .intake
        .release_quarantined(id, String::new(), &who.actor())
        .await
    {
        Ok(Released::Filed(r)) => match r.reference {
            Some(reference) => Ok(
                Redirect::to(&format!("/staff/deviations/{reference}?sparat=1")).into_response(),
            ),
            None => Ok(Redirect::to("/staff/intake/quarantine").into_response()),
        },
        Ok(Released::AlreadyHandled) => {
            Ok(Redirect::to("/staff/intake/quarantine?redan=1").into_response())
        }
        Ok(Released::NotFound) => Err(PageError::NotFound),
        Err(e) => {
            tracing::error!(error = %e, "releasing a quarantined e-mail failed");
            Err(PageError::Unavailable(
                "the message could not be released now; retry".into(),
            ))
        }
    }
}
