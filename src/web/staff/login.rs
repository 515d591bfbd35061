//! Signing in and out: the login form, the back-off after failed logins, the logout page.

use crate::web::Routes;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_csrf::CsrfToken;
use axum_extra::extract::cookie::PrivateCookieJar;
use serde::Deserialize;

use super::staff_nav;
use crate::auth::password::{dummy_hash, verify_login, PEPPER_V1};
use crate::auth::session::{removal_cookie, session_cookie, session_in};
use crate::auth::{authorize, Action, Principal, Staff};
use crate::web::csrf::{form_token, CsrfForm};
use crate::web::pages::{render, Layout, PageError};
use crate::web::AppState;

/// Sign-in and sign-out.
pub(super) fn routes() -> Routes {
    Routes::new()
        .get("/staff/login", login_page)
        .post("/staff/login", login)
        .get("/staff/logout", logout_page)
        .post("/staff/logout", logout)
}

#[derive(Template)]
#[template(path = "staff/login.html")]
struct LoginPage {
    layout: Layout,
    csrf: String,
    next: String,
    email: String,
    message: Option<String>,
    /// Nobody can log in yet: the page says how to make the first account.
    no_accounts: bool,
}

/// A wait as people read it.
fn wait_sv(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(1);
    if s < 90 {
        format!("{s} sekunder")
    } else {
        format!("{} minuter", (s + 59) / 60)
    }
}

#[derive(Deserialize, Default)]
struct NextQuery {
    next: Option<String>,
}

/// Only local staff/audit paths are followed after login (no open redirect), and only
/// ones that can be a `Location` header (no control characters: CR/LF would make the
/// redirect fail, or split the header).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if (n.starts_with("/staff") || n.starts_with("/audit"))
                && !n.starts_with("//")
                && !n.contains("://")
                && !n.contains('\\')
                && !n.chars().any(|c| c.is_control() || c == ' ')
                && axum::http::HeaderValue::from_str(n).is_ok() =>
        {
            n.to_string()
        }
        _ => String::new(),
    }
}

async fn login_page(
    State(state): State<AppState>,
    csrf: CsrfToken,
    Query(q): Query<NextQuery>,
) -> Result<Response, PageError> {
    let page = LoginPage {
        layout: Layout::staff("Logga in", Vec::new()),
        csrf: form_token(&csrf)?,
        next: safe_next(q.next.as_deref()),
        email: String::new(),
        message: None,
        no_accounts: state.services.register.read().accounts.is_empty(),
    };
    Ok((csrf, render(StatusCode::OK, &page)).into_response())
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

async fn login(
    State(state): State<AppState>,
    crate::web::security::ClientAddr(address): crate::web::security::ClientAddr,
    CsrfForm { csrf, form }: CsrfForm<LoginForm>,
) -> Result<Response, PageError> {
    let jar = PrivateCookieJar::new(state.session_key.clone());
    let now = state.services.clock.now();
    let key = form.email.trim().to_lowercase();
    let again = |message: &str| -> Result<Response, PageError> {
        let page = LoginPage {
            layout: Layout::staff("Logga in", Vec::new()).with_errors(true),
            csrf: form_token(&csrf)?,
            next: safe_next(Some(&form.next)),
            email: form.email.trim().to_string(),
            message: Some(message.to_string()),
            no_accounts: state.services.register.read().accounts.is_empty(),
        };
        Ok((csrf.clone(), render(StatusCode::UNAUTHORIZED, &page)).into_response())
    };
    if let Some(wait) = state.login_guard.wait(&key, address, now) {
        tracing::warn!(account = %key, %address, wait_s = wait.num_seconds(), "login refused: too many failed attempts for this account from this address");
        return again(&format!(
            "För många misslyckade inloggningar från din adress. Vänta {} och försök igen.",
            wait_sv(wait)
        ));
    }
    let account = crate::domain::EmailAddress::parse(&key).and_then(|e| {
        state
            .services
            .register
            .read()
            .accounts
            .by_email(&e)
            .cloned()
    });
    let password = form.password.clone();
    let (stored, pepper) = match account.as_ref().and_then(|a| {
        a.password_hash
            .clone()
            .map(|h| (h, a.password_pepper.clone()))
    }) {
        Some(found) => found,
        None => (dummy_hash().to_string(), Some(PEPPER_V1.to_string())),
    };
    let secret = state.services.secret.clone();
    // Hashing is slow on purpose; keep it off the async threads.
    let ok = tokio::task::spawn_blocking(move || {
        verify_login(&secret, &password, &stored, pepper.as_deref())
    })
    .await
    .unwrap_or(false);
    match account {
        Some(a) if ok && !a.disabled && a.password_hash.is_some() => {
            state.login_guard.succeeded(&key, address);
            tracing::info!(account = %a.id, "staff login");
            let secure = state.config.http.base_url.starts_with("https://");
            let jar = jar.add(session_cookie(a.id, now, secure));
            let who = Principal::from_account(&a);
            let mut next = safe_next(Some(&form.next));
            if next.is_empty() {
                next = home_for(&who).to_string();
            }
            Ok((jar, Redirect::to(&next)).into_response())
        }
        _ => {
            match state.login_guard.failed(&key, address, now) {
                Some(wait) => {
                    tracing::warn!(account = %key, %address, wait_s = wait.num_seconds(), "staff login failed; further attempts for this account from this address are slowed down")
                }
                None => tracing::info!(account = %key, %address, "staff login failed"),
            }
            again("Fel e-postadress eller lösenord, eller så är kontot avstängt.")
        }
    }
}

/// Where a user lands: the register, or the part their roles open.
fn home_for(who: &Principal) -> &'static str {
    if authorize(who, Action::ListDeviations, None) {
        "/staff"
    } else if authorize(who, Action::ManageAccounts, None) {
        "/staff/admin"
    } else {
        "/audit"
    }
}

#[derive(Template)]
#[template(path = "staff/logout.html")]
struct LogoutPage {
    layout: Layout,
    csrf: String,
    name: String,
    email: String,
}

async fn logout_page(csrf: CsrfToken, Staff(who): Staff) -> Result<Response, PageError> {
    let page = LogoutPage {
        layout: Layout::staff("Logga ut", staff_nav(&who, "/staff/logout")),
        csrf: form_token(&csrf)?,
        name: who.name.clone(),
        email: who.email.clone(),
    };
    Ok((csrf, render(StatusCode::OK, &page)).into_response())
}

async fn logout(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    CsrfForm { .. }: CsrfForm<Vec<(String, String)>>,
) -> Response {
    // The jar must hold the incoming cookie for `remove` to send a removal cookie.
    let jar = PrivateCookieJar::from_headers(&headers, state.session_key.clone());
    // End the session on the server too, so a copied cookie stops working.
    if let Some((account, session, issued)) = session_in(&jar) {
        let actor = state
            .services
            .register
            .read()
            .accounts
            .get(account)
            .map(|a| a.email.as_str().to_string())
            .unwrap_or_else(|| account.to_string());
        if let Err(e) = state
            .services
            .sign_out(account, session, issued, &actor)
            .await
        {
            tracing::error!(%account, error = %e, "sign-out not recorded; the session stays valid until it expires");
            let jar = jar.remove(removal_cookie());
            return (
                jar,
                PageError::Unavailable("sign-out could not be recorded".into()),
            )
                .into_response();
        }
    }
    (jar.remove(removal_cookie()), Redirect::to("/staff/login")).into_response()
}
