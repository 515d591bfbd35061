//! Signing in and out: the login form, the second step (an authenticator app's code, a
//! recovery code or a passkey) for accounts with a second factor, the back-off after
//! failed attempts, the logout page.

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
use crate::auth::second_factor::Used;
use crate::auth::service::AccountError;
use crate::auth::session::{
    removal_cookie, session_cookie, session_in, session_valid, standing, SessionClaims, Standing,
    ENROL_PATH, SECOND_FACTOR_PATH, SESSION_COOKIE,
};
use crate::auth::{authorize, Account, Action, Principal};
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
        .get(SECOND_FACTOR_PATH, second_factor_page)
        .post(SECOND_FACTOR_PATH, second_factor)
        .post(
            "/staff/login/second-factor/passkey/options",
            passkey_options,
        )
        .post("/staff/login/second-factor/passkey", passkey_sign_in)
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
    /// The identity providers' sign-in buttons: (id, text).
    providers: Vec<(String, String)>,
    /// The password form is offered (`auth.sso_only` off).
    passwords: bool,
}

/// The login page, with a message (after a refused attempt) and the answer's status.
pub(super) fn login_view(
    state: &AppState,
    csrf: &CsrfToken,
    next: &str,
    email: &str,
    message: Option<String>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let page = LoginPage {
        layout: Layout::staff("Logga in", Vec::new()).with_errors(message.is_some()),
        csrf: form_token(csrf)?,
        next: safe_next(Some(next)),
        email: email.to_string(),
        message,
        no_accounts: state.services.register.read().accounts.is_empty(),
        providers: state.oidc.buttons(),
        passwords: !state.config.auth.sso_only,
    };
    Ok((csrf.clone(), form_targets(state), render(status, &page)).into_response())
}

/// The security policy's `form-action` opened to the identity providers (the sign-in
/// buttons and signing out lead there).
fn form_targets(state: &AppState) -> [(axum::http::HeaderName, String); 1] {
    [(
        axum::http::header::CONTENT_SECURITY_POLICY,
        crate::web::security::policy_with_form_targets(&state.oidc.form_origins()),
    )]
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
    let next = safe_next(q.next.as_deref());
    login_view(&state, &csrf, &next, "", None, StatusCode::OK)
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
        login_view(
            &state,
            &csrf,
            &form.next,
            form.email.trim(),
            Some(message.to_string()),
            StatusCode::UNAUTHORIZED,
        )
    };
    if state.config.auth.sso_only {
        tracing::info!(account = %key, "password login refused: staff sign in through the identity provider only (auth.sso_only)");
        return login_view(
            &state,
            &csrf,
            &form.next,
            "",
            Some("Inloggning med lösenord är avstängd. Logga in med kommunens konto.".into()),
            StatusCode::FORBIDDEN,
        );
    }
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
            let secure = state.config.http.base_url.starts_with("https://");
            let jar = jar.add(session_cookie(a.id, now, secure, false));
            let next = safe_next(Some(&form.next));
            let to = if a.has_second_factor() {
                tracing::info!(account = %a.id, "staff password accepted; second factor next");
                format!("{SECOND_FACTOR_PATH}?next={}", query_escape(&next))
            } else if !state.config.auth.requires_second_factor(&a.roles) {
                tracing::info!(account = %a.id, "staff login");
                landing(&a, next)
            } else {
                tracing::info!(account = %a.id, "staff password accepted; the account must add a second factor");
                ENROL_PATH.to_string()
            };
            Ok((jar, Redirect::to(&to)).into_response())
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

/// Where a signed-in user goes: `next`, or the home of their roles.
pub(super) fn landing(a: &Account, next: String) -> String {
    if next.is_empty() {
        home_for(&Principal::from_account(a)).to_string()
    } else {
        next
    }
}

/// Percent-encodes a local path for a query value.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The session cookie of a request whose password was right and whose second factor is
/// still to come, with its account.
pub(crate) fn pending_session(
    state: &AppState,
    headers: &axum::http::HeaderMap,
) -> Option<(SessionClaims, Account, Standing)> {
    let jar = PrivateCookieJar::from_headers(headers, state.session_key.clone());
    let claims: SessionClaims = serde_json::from_str(jar.get(SESSION_COOKIE)?.value()).ok()?;
    let now = state.services.clock.now();
    let account = state
        .services
        .register
        .read()
        .accounts
        .get(claims.a)
        .cloned()?;
    if !session_valid(&claims, &account, now, &state.config.auth) {
        return None;
    }
    let standing = standing(&claims, &account, &state.config.auth);
    Some((claims, account, standing))
}

/// The throttle's key for second-step attempts (shown in the CISO's list of slowed-down
/// sign-ins).
fn second_step_key(a: &Account) -> String {
    format!("{} (andra steget)", a.email.as_str().to_lowercase())
}

#[derive(Template)]
#[template(path = "staff/second_factor.html")]
struct SecondFactorPage {
    layout: Layout,
    csrf: String,
    next: String,
    message: Option<String>,
    has_totp: bool,
    has_passkey: bool,
    recovery_left: usize,
}

fn second_factor_view(
    a: &Account,
    csrf: String,
    next: String,
    message: Option<String>,
) -> SecondFactorPage {
    SecondFactorPage {
        layout: Layout::staff("Bekräfta inloggningen", Vec::new()).with_errors(message.is_some()),
        csrf,
        next,
        message,
        has_totp: a.totp.is_some(),
        has_passkey: !a.passkeys.is_empty(),
        recovery_left: a.recovery_codes_left(),
    }
}

async fn second_factor_page(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    csrf: CsrfToken,
    Query(q): Query<NextQuery>,
) -> Result<Response, PageError> {
    let next = safe_next(q.next.as_deref());
    match pending_session(&state, &headers) {
        None => Ok(Redirect::to("/staff/login").into_response()),
        Some((_, a, Standing::NeedsSecondFactor)) => {
            let page = second_factor_view(&a, form_token(&csrf)?, next, None);
            Ok((csrf, render(StatusCode::OK, &page)).into_response())
        }
        Some((_, _, Standing::MustEnrol)) => Ok(Redirect::to(ENROL_PATH).into_response()),
        Some((_, a, Standing::Complete)) => Ok(Redirect::to(&landing(&a, next)).into_response()),
    }
}

#[derive(Deserialize)]
struct SecondFactorForm {
    #[serde(default)]
    code: String,
    #[serde(default)]
    next: String,
}

/// A session cookie for a sign-in whose second factor was just given (a new session id:
/// the password-only cookie is not upgraded in place).
pub(crate) fn completed_session(state: &AppState, account: uuid::Uuid) -> PrivateCookieJar {
    let secure = state.config.http.base_url.starts_with("https://");
    PrivateCookieJar::new(state.session_key.clone()).add(session_cookie(
        account,
        state.services.clock.now(),
        secure,
        true,
    ))
}

async fn second_factor(
    State(state): State<AppState>,
    crate::web::security::ClientAddr(address): crate::web::security::ClientAddr,
    headers: axum::http::HeaderMap,
    CsrfForm { csrf, form }: CsrfForm<SecondFactorForm>,
) -> Result<Response, PageError> {
    let next = safe_next(Some(&form.next));
    let a = match pending_session(&state, &headers) {
        Some((_, a, Standing::NeedsSecondFactor)) => a,
        Some((_, a, Standing::Complete)) => {
            return Ok(Redirect::to(&landing(&a, next)).into_response())
        }
        _ => return Ok(Redirect::to("/staff/login").into_response()),
    };
    let now = state.services.clock.now();
    let key = second_step_key(&a);
    let again = |status: StatusCode, message: String| -> Result<Response, PageError> {
        let page = second_factor_view(&a, form_token(&csrf)?, next.clone(), Some(message));
        Ok((csrf.clone(), render(status, &page)).into_response())
    };
    if let Some(wait) = state.login_guard.wait(&key, address, now) {
        tracing::warn!(account = %a.id, %address, wait_s = wait.num_seconds(), "second sign-in step refused: too many wrong codes from this address");
        return again(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "För många felaktiga koder från din adress. Vänta {} och försök igen.",
                wait_sv(wait)
            ),
        );
    }
    let actor = format!("user:{}", a.email.as_str());
    match state
        .services
        .second_factor_code(a.id, &form.code, &actor)
        .await
    {
        Ok(used) => {
            state.login_guard.succeeded(&key, address);
            let to = match used {
                Used::Totp => {
                    tracing::info!(account = %a.id, method = "totp", "staff login");
                    landing(&a, next)
                }
                Used::RecoveryCode { left } => {
                    tracing::warn!(account = %a.id, method = "recovery-code", codes_left = left, "staff login with a recovery code");
                    format!("{ENROL_PATH}?koder_kvar={left}")
                }
            };
            Ok((completed_session(&state, a.id), Redirect::to(&to)).into_response())
        }
        Err(AccountError::Invalid(message)) => {
            match state.login_guard.failed(&key, address, now) {
                Some(wait) => {
                    tracing::warn!(account = %a.id, %address, wait_s = wait.num_seconds(), "wrong second-factor code; further attempts from this address are slowed down")
                }
                None => tracing::info!(account = %a.id, %address, "wrong second-factor code"),
            }
            again(StatusCode::UNAUTHORIZED, message)
        }
        Err(e) => Err(PageError::Unavailable(e.to_string())),
    }
}

/// The options for `navigator.credentials.get` in the second step, and the ceremony's id
/// (JSON, for static/passkeys.js).
async fn passkey_options(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    CsrfForm { .. }: CsrfForm<Vec<(String, String)>>,
) -> Response {
    let Some((_, a, Standing::NeedsSecondFactor)) = pending_session(&state, &headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    match state
        .services
        .start_passkey_sign_in(&state.config, &state.passkeys, &a)
    {
        Ok((ceremony, options)) => axum::Json(serde_json::json!({
            "ceremony": ceremony,
            "options": options,
        }))
        .into_response(),
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(serde_json::json!({ "detail_sv": e.message_sv() })),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct PasskeyForm {
    #[serde(default)]
    ceremony: String,
    #[serde(default)]
    credential: String,
    #[serde(default)]
    next: String,
}

/// The second step with a passkey (the form static/passkeys.js submits).
async fn passkey_sign_in(
    State(state): State<AppState>,
    crate::web::security::ClientAddr(address): crate::web::security::ClientAddr,
    headers: axum::http::HeaderMap,
    CsrfForm { csrf, form }: CsrfForm<PasskeyForm>,
) -> Result<Response, PageError> {
    let next = safe_next(Some(&form.next));
    let a = match pending_session(&state, &headers) {
        Some((_, a, Standing::NeedsSecondFactor)) => a,
        Some((_, a, Standing::Complete)) => {
            return Ok(Redirect::to(&landing(&a, next)).into_response())
        }
        _ => return Ok(Redirect::to("/staff/login").into_response()),
    };
    let now = state.services.clock.now();
    let key = second_step_key(&a);
    let again = |status: StatusCode, message: String| -> Result<Response, PageError> {
        let page = second_factor_view(&a, form_token(&csrf)?, next.clone(), Some(message));
        Ok((csrf.clone(), render(status, &page)).into_response())
    };
    if let Some(wait) = state.login_guard.wait(&key, address, now) {
        return again(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "För många misslyckade försök från din adress. Vänta {} och försök igen.",
                wait_sv(wait)
            ),
        );
    }
    let actor = format!("user:{}", a.email.as_str());
    match state
        .services
        .finish_passkey_sign_in(
            &state.config,
            &state.passkeys,
            a.id,
            &form.ceremony,
            &form.credential,
            &actor,
        )
        .await
    {
        Ok(()) => {
            state.login_guard.succeeded(&key, address);
            tracing::info!(account = %a.id, method = "passkey", "staff login");
            Ok((
                completed_session(&state, a.id),
                Redirect::to(&landing(&a, next)),
            )
                .into_response())
        }
        Err(AccountError::Invalid(message)) => {
            state.login_guard.failed(&key, address, now);
            tracing::info!(account = %a.id, %address, "passkey sign-in failed");
            again(StatusCode::UNAUTHORIZED, message)
        }
        Err(e) => Err(PageError::Unavailable(e.to_string())),
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

/// Open to every valid session, also one still in the second step or without a second
/// factor it must add.
async fn logout_page(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    csrf: CsrfToken,
) -> Result<Response, PageError> {
    let Some((_, a, standing)) = pending_session(&state, &headers) else {
        return Ok(Redirect::to("/staff/login?next=/staff/logout").into_response());
    };
    let who = Principal::from_account(&a);
    let nav = match standing {
        Standing::Complete => staff_nav(&who, "/staff/logout"),
        Standing::MustEnrol => super::enrolment_nav("/staff/logout"),
        Standing::NeedsSecondFactor => Vec::new(),
    };
    let page = LogoutPage {
        layout: Layout::staff("Logga ut", nav),
        csrf: form_token(&csrf)?,
        name: who.name.clone(),
        email: who.email.clone(),
    };
    Ok((csrf, form_targets(&state), render(StatusCode::OK, &page)).into_response())
}

async fn logout(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    CsrfForm { .. }: CsrfForm<Vec<(String, String)>>,
) -> Response {
    // The jar must hold the incoming cookie for `remove` to send a removal cookie.
    let jar = PrivateCookieJar::from_headers(&headers, state.session_key.clone());
    // End the session on the server too, so a copied cookie stops working.
    let claims = session_in(&jar);
    let provider = claims.as_ref().and_then(|c| c.provider.clone());
    if let Some((account, session, issued)) = claims
        .as_ref()
        .and_then(|c| Some((c.a, c.s, c.issued_at()?)))
    {
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
    // Signed in through a provider: sign out there too, where it offers that.
    let base = state.config.http.base_url.trim_end_matches('/');
    let to = match provider {
        Some(p) => state
            .oidc
            .logout_url(&p, &format!("{base}/staff/login"))
            .await
            .unwrap_or_else(|| "/staff/login".into()),
        None => "/staff/login".into(),
    };
    (jar.remove(removal_cookie()), Redirect::to(&to)).into_response()
}
