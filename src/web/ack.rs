//! The public acknowledgement route: `GET /ack/{notification_id}/{signature}` shows a
//! confirmation page, `POST` to the same address records the acknowledgement. GET never
//! records, so mail scanners that follow links do not acknowledge on anyone's behalf. The
//! signed link is the credential (no login, no CSRF token: a forged request would need the
//! signature); a forged or altered link gets 403.

use super::Routes;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use uuid::Uuid;

use super::AppState;
use crate::notify::links::verify_ack;
use crate::notify::{AckOutcome, Acknowledgement, EscalationNotice};

pub fn router() -> Routes {
    Routes::new()
        .get("/ack/{notification_id}/{signature}", show)
        .post("/ack/{notification_id}/{signature}", record)
}

enum AckPage {
    Confirm {
        reference: String,
        deviation_title: String,
        group: &'static str,
    },
    Recorded {
        reference: String,
        at: String,
    },
    Already {
        reference: String,
        at: Option<String>,
    },
    Refused,
    Unknown,
    Unavailable,
}

#[derive(Template)]
#[template(path = "notify/ack.html")]
struct AckHtml {
    title: &'static str,
    page: AckPage,
}

fn answer(status: StatusCode, page: AckPage) -> Response {
    let title = match &page {
        AckPage::Confirm { .. } => "Kvittera större avvikelse",
        AckPage::Recorded { .. } => "Tack, kvitteringen är registrerad",
        AckPage::Already { .. } => "Redan kvitterad",
        AckPage::Refused => "Länken gäller inte",
        AckPage::Unknown => "Länken gäller inte längre",
        AckPage::Unavailable => "Försök igen om en stund",
    };
    match (AckHtml { title, page }).render() {
        Ok(html) => (
            status,
            [
                (header::CACHE_CONTROL, "no-store"),
                (header::HeaderName::from_static("x-robots-tag"), "noindex"),
            ],
            Html(html),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering the acknowledgement page failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "Ett fel uppstod.").into_response()
        }
    }
}

/// The notice a link names, if its signature holds. Any malformed part is a refusal.
fn verified(state: &AppState, id: &str, signature: &str) -> Option<Uuid> {
    let id = Uuid::parse_str(id).ok()?;
    verify_ack(state.notify.secret(), id, signature).then_some(id)
}

fn reference_of(e: &EscalationNotice) -> String {
    e.reference.map(|r| r.to_string()).unwrap_or_default()
}

fn at(a: &Acknowledgement) -> String {
    avvik_notifiers::time::stockholm(a.at)
}

async fn show(
    State(state): State<AppState>,
    Path((id, signature)): Path<(String, String)>,
) -> Response {
    let Some(id) = verified(&state, &id, &signature) else {
        return answer(StatusCode::FORBIDDEN, AckPage::Refused);
    };
    if !state.notify.is_ready() {
        return answer(StatusCode::SERVICE_UNAVAILABLE, AckPage::Unavailable);
    }
    match state.notify.escalation(id) {
        None => answer(StatusCode::NOT_FOUND, AckPage::Unknown),
        Some(e) => match &e.acknowledged {
            Some(a) => answer(
                StatusCode::OK,
                AckPage::Already {
                    reference: reference_of(&e),
                    at: Some(at(a)),
                },
            ),
            None => answer(
                StatusCode::OK,
                AckPage::Confirm {
                    reference: reference_of(&e),
                    deviation_title: e.title.clone().unwrap_or_default(),
                    group: e.group.label_sv(),
                },
            ),
        },
    }
}

async fn record(
    State(state): State<AppState>,
    Path((id, signature)): Path<(String, String)>,
) -> Response {
    let Some(id) = verified(&state, &id, &signature) else {
        return answer(StatusCode::FORBIDDEN, AckPage::Refused);
    };
    if !state.notify.is_ready() {
        return answer(StatusCode::SERVICE_UNAVAILABLE, AckPage::Unavailable);
    }
    let reference = state
        .notify
        .escalation(id)
        .map(|e| reference_of(&e))
        .unwrap_or_default();
    match state.notify.acknowledge(id).await {
        Ok(AckOutcome::Recorded(a)) => answer(
            StatusCode::OK,
            AckPage::Recorded {
                reference,
                at: at(&a),
            },
        ),
        Ok(AckOutcome::AlreadyRecorded(a)) => answer(
            StatusCode::OK,
            AckPage::Already {
                reference,
                at: a.as_ref().map(at),
            },
        ),
        Ok(AckOutcome::Unknown) => answer(StatusCode::NOT_FOUND, AckPage::Unknown),
        Err(e) => {
            tracing::error!(error = %e, "could not record an acknowledgement");
            answer(StatusCode::SERVICE_UNAVAILABLE, AckPage::Unavailable)
        }
    }
}
