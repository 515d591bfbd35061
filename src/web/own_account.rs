//! `/staff/account`: the signed-in user's own account — their API tokens, which only they
//! create (an admin cannot make a token that acts as someone else), and their calendar
//! link (the secret URL of their feed of deadlines, `web::calendar`).

use super::Routes;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_csrf::CsrfToken;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::csrf::{form_token, CsrfForm};
use super::pages::{render, stockholm_display, Layout, PageError};
use super::staff::staff_nav;
use super::AppState;
use crate::auth::service::AccountError;
use crate::auth::{Principal, Staff};

pub const PATH: &str = "/staff/account";

pub fn router() -> Routes {
    Routes::new()
        .get(PATH, page)
        .post("/staff/account/tokens", create_token)
        .post("/staff/account/tokens/{token_id}/revoke", revoke_token)
        .post("/staff/account/calendar", create_calendar)
        .post("/staff/account/calendar/{feed_id}/revoke", revoke_calendar)
}

#[derive(Template)]
#[template(path = "staff/own_account.html")]
struct OwnAccountPage {
    layout: Layout,
    csrf: String,
    name: String,
    email: String,
    roles: String,
    /// (label, created, revoked, id)
    tokens: Vec<(String, String, Option<String>, Uuid)>,
    new_token: Option<String>,
    /// The calendar link in use: (created, id).
    calendar: Option<(String, Uuid)>,
    /// A new calendar link's full URL, shown once.
    new_calendar_url: Option<String>,
}

fn view(state: &AppState, who: &Principal, csrf: String) -> Result<OwnAccountPage, PageError> {
    let reg = state.services.register.read();
    let a = reg
        .accounts
        .get(who.account_id)
        .ok_or(PageError::NotFound)?;
    Ok(OwnAccountPage {
        layout: Layout::staff("Mitt konto", staff_nav(who, PATH)),
        csrf,
        name: a.name.clone(),
        email: a.email.to_string(),
        roles: a
            .roles
            .iter()
            .map(|g| g.role.label_sv())
            .collect::<Vec<_>>()
            .join(", "),
        tokens: a
            .tokens
            .iter()
            .map(|t| {
                (
                    if t.label.is_empty() {
                        "API-nyckel".into()
                    } else {
                        t.label.clone()
                    },
                    stockholm_display(t.created_at),
                    t.revoked_at.map(stockholm_display),
                    t.id,
                )
            })
            .collect(),
        new_token: None,
        calendar: a
            .active_calendar_feed()
            .map(|f| (stockholm_display(f.created_at), f.id)),
        new_calendar_url: None,
    })
}

async fn page(
    State(state): State<AppState>,
    Staff(who): Staff,
    csrf: CsrfToken,
) -> Result<Response, PageError> {
    let page = view(&state, &who, form_token(&csrf)?)?;
    Ok((csrf, render(StatusCode::OK, &page)).into_response())
}

async fn create_token(
    State(state): State<AppState>,
    Staff(who): Staff,
    CsrfForm { csrf, form }: CsrfForm<Map<String, Value>>,
) -> Result<Response, PageError> {
    let label = form
        .get("label")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .trim()
        .chars()
        .take(200)
        .collect::<String>();
    match state
        .services
        .create_api_token(who.account_id, &label, &who.actor())
        .await
    {
        Ok(token) => {
            // Shown once, in this answer, never in a URL.
            let mut page = view(&state, &who, form_token(&csrf)?)?;
            page.new_token = Some(token);
            Ok((csrf, render(StatusCode::OK, &page)).into_response())
        }
        Err(AccountError::NotFound) => Err(PageError::NotFound),
        Err(e) => Err(PageError::Unavailable(e.to_string())),
    }
}

async fn revoke_token(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path(token_id): Path<String>,
    CsrfForm { .. }: CsrfForm<Map<String, Value>>,
) -> Result<Response, PageError> {
    let token_id = Uuid::parse_str(&token_id).map_err(|_| PageError::NotFound)?;
    let owns = state
        .services
        .register
        .read()
        .accounts
        .get(who.account_id)
        .is_some_and(|a| a.tokens.iter().any(|t| t.id == token_id));
    if !owns {
        return Err(PageError::NotFound);
    }
    match state
        .services
        .revoke_api_token(who.account_id, token_id, &who.actor())
        .await
    {
        Ok(()) => Ok(Redirect::to(PATH).into_response()),
        Err(AccountError::NotFound) => Err(PageError::NotFound),
        Err(e) => Err(PageError::Unavailable(e.to_string())),
    }
}

async fn create_calendar(
    State(state): State<AppState>,
    Staff(who): Staff,
    CsrfForm { csrf, .. }: CsrfForm<Map<String, Value>>,
) -> Result<Response, PageError> {
    match state
        .services
        .create_calendar_feed(who.account_id, &who.actor())
        .await
    {
        Ok(token) => {
            // Shown once, in this answer; only its hash is stored.
            let mut page = view(&state, &who, form_token(&csrf)?)?;
            page.new_calendar_url = Some(format!(
                "{}{}",
                state.config.http.base_url.trim_end_matches('/'),
                super::calendar::feed_path(&token)
            ));
            Ok((csrf, render(StatusCode::OK, &page)).into_response())
        }
        Err(AccountError::NotFound) => Err(PageError::NotFound),
        Err(e) => Err(PageError::Unavailable(e.to_string())),
    }
}

async fn revoke_calendar(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path(feed_id): Path<String>,
    CsrfForm { .. }: CsrfForm<Map<String, Value>>,
) -> Result<Response, PageError> {
    let feed_id = Uuid::parse_str(&feed_id).map_err(|_| PageError::NotFound)?;
    let owns = state
        .services
        .register
        .read()
        .accounts
        .get(who.account_id)
        .and_then(|a| a.active_calendar_feed().map(|f| f.id))
        == Some(feed_id);
    if !owns {
        return Err(PageError::NotFound);
    }
    match state
        .services
        .revoke_calendar_feed(who.account_id, feed_id, &who.actor())
        .await
    {
        Ok(()) => Ok(Redirect::to(PATH).into_response()),
        Err(AccountError::NotFound) => Err(PageError::NotFound),
        Err(e) => Err(PageError::Unavailable(e.to_string())),
    }
}
