//! `/staff/account`: the signed-in user's own account — their second factors (an
//! authenticator app, passkeys, recovery codes), their API tokens, which only they
//! create (an admin cannot make a token that acts as someone else), and their calendar
//! link (the secret URL of their feed of deadlines, `web::calendar`).
//!
//! An account whose role requires a second factor and that has none reaches only this
//! page, with only the second-factor part (`Enrolling`), until it has added one.

use super::Routes;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_csrf::CsrfToken;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::csrf::{form_token, CsrfForm};
use super::pages::{render, stockholm_display, Layout, PageError};
use super::staff::staff_nav;
use super::AppState;
use crate::auth::second_factor::{new_totp, reshow_totp, NewTotp};
use crate::auth::service::AccountError;
use crate::auth::session::Enrolling;
use crate::auth::{Principal, Staff};

pub const PATH: &str = "/staff/account";

pub fn router() -> Routes {
    Routes::new()
        .get(PATH, page)
        .post("/staff/account/tokens", create_token)
        .post("/staff/account/tokens/{token_id}/revoke", revoke_token)
        .post("/staff/account/totp/new", start_totp)
        .post("/staff/account/totp", confirm_totp)
        .post("/staff/account/totp/remove", remove_totp)
        .post("/staff/account/recovery-codes", new_recovery_codes)
        .post("/staff/account/passkeys/options", passkey_options)
        .post("/staff/account/passkeys", register_passkey)
        .post(
            "/staff/account/passkeys/{passkey_id}/remove",
            remove_passkey,
        )
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
    /// Signed in completely; false: the account must add a second factor first, and only
    /// that part of the page is shown.
    complete: bool,
    /// A role of the account requires a second factor.
    required: bool,
    /// When the authenticator app was added.
    totp: Option<String>,
    /// (name, registered, last used, id)
    passkeys: Vec<(String, String, Option<String>, Uuid)>,
    /// Passkeys can be used at this address (WebAuthn needs a domain name).
    passkeys_available: bool,
    recovery_left: usize,
    /// An app secret being added, shown until it is confirmed.
    new_totp: Option<NewTotp>,
    /// New recovery codes, shown once.
    new_recovery_codes: Option<Vec<String>>,
    /// What was saved, or why a change was refused.
    saved: Option<String>,
    refused: Option<String>,
}

impl OwnAccountPage {
    /// The app secret in groups of four, as people type it.
    fn secret_grouped(&self) -> String {
        self.new_totp
            .as_ref()
            .map(|t| {
                t.secret_base32
                    .as_bytes()
                    .chunks(4)
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    }

    fn has_second_factor(&self) -> bool {
        self.totp.is_some() || !self.passkeys.is_empty()
    }
}

fn view(state: &AppState, who: &Principal, csrf: String) -> Result<OwnAccountPage, PageError> {
    view_as(state, who, true, csrf)
}

fn view_as(
    state: &AppState,
    who: &Principal,
    complete: bool,
    csrf: String,
) -> Result<OwnAccountPage, PageError> {
    let reg = state.services.register.read();
    let a = reg
        .accounts
        .get(who.account_id)
        .ok_or(PageError::NotFound)?;
    let mut layout = if complete {
        Layout::staff("Mitt konto", staff_nav(who, PATH))
    } else {
        Layout::staff("Mitt konto", super::staff::enrolment_nav(PATH))
    };
    if !complete {
        // The banner's link leads to a page not open before the second factor is added.
        layout.missing_recipients.clear();
    }
    Ok(OwnAccountPage {
        layout,
        complete,
        required: state.config.auth.requires_second_factor(&a.roles),
        totp: a.totp.as_ref().map(|t| stockholm_display(t.enrolled_at)),
        passkeys: a
            .passkeys
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    stockholm_display(p.registered_at),
                    p.last_used_at.map(stockholm_display),
                    p.id,
                )
            })
            .collect(),
        passkeys_available: crate::auth::passkey::available(&state.config),
        recovery_left: a.recovery_codes_left(),
        new_totp: None,
        new_recovery_codes: None,
        saved: None,
        refused: None,
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

#[derive(serde::Deserialize, Default)]
struct PageQuery {
    /// Recovery codes left after signing in with one.
    koder_kvar: Option<usize>,
}

async fn page(
    State(state): State<AppState>,
    Enrolling { who, complete }: Enrolling,
    Query(q): Query<PageQuery>,
    csrf: CsrfToken,
) -> Result<Response, PageError> {
    let mut page = view_as(&state, &who, complete, form_token(&csrf)?)?;
    if let Some(left) = q.koder_kvar {
        page.saved = Some(format!(
            "Du loggade in med en återställningskod. Den fungerar inte igen. Du har {left} kvar{}",
            if left <= 3 {
                ": skapa nya koder nedan, och lägg till appen eller nyckeln på nytt om du har tappat bort den."
            } else {
                "."
            }
        ));
    }
    Ok((csrf, render(StatusCode::OK, &page)).into_response())
}

/// The form's text field `name`, trimmed.
fn text(form: &Map<String, Value>, name: &str) -> String {
    form.get(name)
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .trim()
        .to_string()
}

/// Shows a new authenticator-app secret to add to the app, with the form that confirms it.
async fn start_totp(
    State(state): State<AppState>,
    Enrolling { who, complete }: Enrolling,
    CsrfForm { csrf, .. }: CsrfForm<Map<String, Value>>,
) -> Result<Response, PageError> {
    let mut page = view_as(&state, &who, complete, form_token(&csrf)?)?;
    if page.totp.is_some() {
        page.refused =
            Some("Du har redan en autentiseringsapp. Ta bort den först om du vill byta.".into());
        page.layout = page.layout.with_errors(true);
        return Ok((csrf, render(StatusCode::UNPROCESSABLE_ENTITY, &page)).into_response());
    }
    let account = state
        .services
        .register
        .read()
        .accounts
        .get(who.account_id)
        .cloned()
        .ok_or(PageError::NotFound)?;
    page.new_totp = Some(new_totp(
        &state.secret,
        &account,
        state.services.clock.now(),
    ));
    Ok((csrf, render(StatusCode::OK, &page)).into_response())
}

/// Confirms the app with a current code. The session then counts as signed in with the
/// second factor (the code proved it).
async fn confirm_totp(
    State(state): State<AppState>,
    Enrolling { who, complete }: Enrolling,
    CsrfForm { csrf, form }: CsrfForm<Map<String, Value>>,
) -> Result<Response, PageError> {
    let pending = text(&form, "pending");
    match state
        .services
        .enrol_totp(who.account_id, &pending, &text(&form, "code"), &who.actor())
        .await
    {
        Ok(codes) => {
            tracing::info!(account = %who.account_id, "authenticator app added");
            let mut page = view_as(&state, &who, true, form_token(&csrf)?)?;
            page.saved = Some("Autentiseringsappen är tillagd. Från och med nu anger du en kod från appen när du loggar in.".into());
            page.new_recovery_codes = codes;
            let jar = crate::web::staff::completed_session(&state, who.account_id);
            Ok((jar, csrf, render(StatusCode::OK, &page)).into_response())
        }
        Err(AccountError::Invalid(message)) => {
            let mut page = view_as(&state, &who, complete, form_token(&csrf)?)?;
            page.new_totp = reshow_totp(
                &state.secret,
                who.account_id,
                &who.email,
                &pending,
                state.services.clock.now(),
            );
            page.refused = Some(message);
            page.layout = page.layout.with_errors(true);
            Ok((csrf, render(StatusCode::UNPROCESSABLE_ENTITY, &page)).into_response())
        }
        Err(AccountError::NotFound) => Err(PageError::NotFound),
        Err(e) => Err(PageError::Unavailable(e.to_string())),
    }
}

/// The password again before a second factor is removed or recovery codes replaced, so a
/// session left open is not enough to take the factor away.
async fn password_confirmed(state: &AppState, who: &Principal, password: String) -> bool {
    let Some((hash, pepper)) = state
        .services
        .register
        .read()
        .accounts
        .get(who.account_id)
        .and_then(|a| {
            a.password_hash
                .clone()
                .map(|h| (h, a.password_pepper.clone()))
        })
    else {
        return false;
    };
    let secret = state.services.secret.clone();
    tokio::task::spawn_blocking(move || {
        crate::auth::password::verify_login(&secret, &password, &hash, pepper.as_deref())
    })
    .await
    .unwrap_or(false)
}

/// Re-renders the page with a refusal.
fn refused(
    state: &AppState,
    who: &Principal,
    csrf: CsrfToken,
    message: String,
) -> Result<Response, PageError> {
    let mut page = view(state, who, form_token(&csrf)?)?;
    page.refused = Some(message);
    page.layout = page.layout.with_errors(true);
    Ok((csrf, render(StatusCode::UNPROCESSABLE_ENTITY, &page)).into_response())
}

/// The options for `navigator.credentials.create`, and the ceremony's id (JSON, for
/// static/passkeys.js).
async fn passkey_options(
    State(state): State<AppState>,
    Enrolling { who, .. }: Enrolling,
    CsrfForm { .. }: CsrfForm<Map<String, Value>>,
) -> Result<Response, PageError> {
    let account = state
        .services
        .register
        .read()
        .accounts
        .get(who.account_id)
        .cloned()
        .ok_or(PageError::NotFound)?;
    match state
        .services
        .start_passkey_registration(&state.config, &state.passkeys, &account)
    {
        Ok((ceremony, options)) => Ok(axum::Json(serde_json::json!({
            "ceremony": ceremony,
            "options": options,
        }))
        .into_response()),
        Err(e) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(serde_json::json!({ "detail_sv": e.message_sv() })),
        )
            .into_response()),
    }
}

/// Finishes a passkey registration (the form static/passkeys.js submits). The session then
/// counts as signed in with the second factor (the passkey proved it, with user
/// verification).
async fn register_passkey(
    State(state): State<AppState>,
    Enrolling { who, complete }: Enrolling,
    CsrfForm { csrf, form }: CsrfForm<Map<String, Value>>,
) -> Result<Response, PageError> {
    match state
        .services
        .finish_passkey_registration(
            &state.config,
            &state.passkeys,
            who.account_id,
            &text(&form, "ceremony"),
            &text(&form, "credential"),
            &text(&form, "name"),
            &who.actor(),
        )
        .await
    {
        Ok(codes) => {
            tracing::info!(account = %who.account_id, "passkey added");
            let mut page = view_as(&state, &who, true, form_token(&csrf)?)?;
            page.saved = Some(
                "Nyckeln är tillagd. Från och med nu kan du använda den när du loggar in.".into(),
            );
            page.new_recovery_codes = codes;
            let jar = crate::web::staff::completed_session(&state, who.account_id);
            Ok((jar, csrf, render(StatusCode::OK, &page)).into_response())
        }
        Err(AccountError::Invalid(message)) => {
            let mut page = view_as(&state, &who, complete, form_token(&csrf)?)?;
            page.refused = Some(message);
            page.layout = page.layout.with_errors(true);
            Ok((csrf, render(StatusCode::UNPROCESSABLE_ENTITY, &page)).into_response())
        }
        Err(AccountError::NotFound) => Err(PageError::NotFound),
        Err(e) => Err(PageError::Unavailable(e.to_string())),
    }
}

async fn remove_passkey(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path(passkey_id): Path<String>,
    CsrfForm { csrf, form }: CsrfForm<Map<String, Value>>,
) -> Result<Response, PageError> {
    let passkey_id = Uuid::parse_str(&passkey_id).map_err(|_| PageError::NotFound)?;
    if !password_confirmed(&state, &who, text(&form, "password")).await {
        return refused(&state, &who, csrf, WRONG_PASSWORD.into());
    }
    match state
        .services
        .remove_passkey(who.account_id, passkey_id, &who.actor())
        .await
    {
        Ok(()) => {
            tracing::info!(account = %who.account_id, "passkey removed");
            let mut page = view(&state, &who, form_token(&csrf)?)?;
            page.saved = Some("Nyckeln är borttagen.".into());
            Ok((csrf, render(StatusCode::OK, &page)).into_response())
        }
        Err(AccountError::Invalid(m)) => refused(&state, &who, csrf, m),
        Err(AccountError::NotFound) => Err(PageError::NotFound),
        Err(e) => Err(PageError::Unavailable(e.to_string())),
    }
}

const WRONG_PASSWORD: &str = "Fel lösenord. Skriv ditt lösenord för att bekräfta ändringen.";

async fn remove_totp(
    State(state): State<AppState>,
    Staff(who): Staff,
    CsrfForm { csrf, form }: CsrfForm<Map<String, Value>>,
) -> Result<Response, PageError> {
    if !password_confirmed(&state, &who, text(&form, "password")).await {
        return refused(&state, &who, csrf, WRONG_PASSWORD.into());
    }
    match state
        .services
        .remove_totp(who.account_id, &who.actor())
        .await
    {
        Ok(()) => {
            tracing::info!(account = %who.account_id, "authenticator app removed");
            let mut page = view(&state, &who, form_token(&csrf)?)?;
            page.saved = Some("Autentiseringsappen är borttagen.".into());
            Ok((csrf, render(StatusCode::OK, &page)).into_response())
        }
        Err(AccountError::Invalid(m)) => refused(&state, &who, csrf, m),
        Err(AccountError::NotFound) => Err(PageError::NotFound),
        Err(e) => Err(PageError::Unavailable(e.to_string())),
    }
}

async fn new_recovery_codes(
    State(state): State<AppState>,
    Staff(who): Staff,
    CsrfForm { csrf, form }: CsrfForm<Map<String, Value>>,
) -> Result<Response, PageError> {
    if !password_confirmed(&state, &who, text(&form, "password")).await {
        return refused(&state, &who, csrf, WRONG_PASSWORD.into());
    }
    match state
        .services
        .issue_recovery_codes(who.account_id, &who.actor())
        .await
    {
        Ok(codes) => {
            let mut page = view(&state, &who, form_token(&csrf)?)?;
            page.saved =
                Some("Nya återställningskoder är skapade. De gamla fungerar inte längre.".into());
            page.new_recovery_codes = Some(codes);
            Ok((csrf, render(StatusCode::OK, &page)).into_response())
        }
        Err(AccountError::Invalid(m)) => refused(&state, &who, csrf, m),
        Err(AccountError::NotFound) => Err(PageError::NotFound),
        Err(e) => Err(PageError::Unavailable(e.to_string())),
    }
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
