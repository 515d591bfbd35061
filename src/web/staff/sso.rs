//! Signing in through the municipality's identity provider (`[[auth.oidc]]`): the login
//! page's button starts it, the provider sends the browser back to `CALLBACK_PATH`, and
//! a verified id_token becomes a session (`crate::auth::oidc` does the protocol).

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_csrf::CsrfToken;
use axum_extra::extract::cookie::{Cookie, PrivateCookieJar, SameSite};
use serde::Deserialize;

use super::login::{landing, login_view};
use crate::auth::oidc::{CallbackQuery, Flow, Refusal, CALLBACK_PATH, FLOW_COOKIE, FLOW_MINUTES};
use crate::auth::service::AccountError;
use crate::auth::session::provider_session_cookie;
use crate::web::csrf::CsrfForm;
use crate::web::pages::PageError;
use crate::web::{AppState, Routes};

/// Sign-in through an identity provider.
pub(super) fn routes() -> Routes {
    Routes::new()
        .post("/staff/login/oidc/{provider}", start)
        .get(CALLBACK_PATH, callback)
}

fn secure(state: &AppState) -> bool {
    state.config.http.base_url.starts_with("https://")
}

fn redirect_uri(state: &AppState) -> String {
    format!(
        "{}{CALLBACK_PATH}",
        state.config.http.base_url.trim_end_matches('/')
    )
}

fn flow_cookie(value: String, secure: bool) -> Cookie<'static> {
    let mut c = Cookie::new(FLOW_COOKIE, value);
    c.set_http_only(true);
    c.set_secure(secure);
    // Lax: the browser sends it along when the provider redirects back (a top-level GET).
    c.set_same_site(SameSite::Lax);
    c.set_path("/staff/login/oidc");
    c.set_max_age(time::Duration::minutes(FLOW_MINUTES));
    c
}

fn flow_removal() -> Cookie<'static> {
    let mut c = Cookie::from(FLOW_COOKIE);
    c.set_path("/staff/login/oidc");
    c
}

#[derive(Deserialize)]
struct StartForm {
    #[serde(default)]
    next: String,
}

fn outcome(provider: &str, outcome: &'static str) {
    metrics::counter!("avvik_oidc_sign_ins_total", "provider" => provider.to_string(), "outcome" => outcome)
        .increment(1);
}

/// The login page again, with the refusal's message.
fn refused(
    state: &AppState,
    csrf: &CsrfToken,
    next: &str,
    provider: &str,
    r: &Refusal,
) -> Result<Response, PageError> {
    tracing::warn!(provider = %provider, reason = %r.reason, "sign-in through the identity provider refused");
    let status = if r.unavailable {
        outcome(provider, "unavailable");
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        outcome(provider, "refused");
        StatusCode::BAD_REQUEST
    };
    login_view(
        state,
        csrf,
        next,
        "",
        Some(r.message_sv.to_string()),
        status,
    )
}

/// The button: sends the browser to the provider, keeping the flow in a cookie.
async fn start(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    CsrfForm { csrf, form }: CsrfForm<StartForm>,
) -> Result<Response, PageError> {
    let next = super::safe_next(Some(&form.next));
    let now = state.services.clock.now().timestamp();
    let Some(started) = state
        .oidc
        .start(&provider, &redirect_uri(&state), next.clone(), now)
        .await
    else {
        return Err(PageError::NotFound);
    };
    match started {
        Ok((url, flow)) => {
            let value = serde_json::to_string(&flow).unwrap_or_default();
            let jar = PrivateCookieJar::new(state.session_key.clone())
                .add(flow_cookie(value, secure(&state)));
            tracing::info!(provider = %provider, "sign-in through the identity provider started");
            Ok((jar, Redirect::to(&url)).into_response())
        }
        Err(r) => refused(&state, &csrf, &next, &provider, &r),
    }
}

/// Where the provider sends the browser back: the answer checked, the account made or
/// brought up to date, a session begun.
async fn callback(
    State(state): State<AppState>,
    csrf: CsrfToken,
    RawQuery(query): RawQuery,
    headers: axum::http::HeaderMap,
) -> Result<Response, PageError> {
    let jar = PrivateCookieJar::from_headers(&headers, state.session_key.clone());
    let answer: CallbackQuery =
        serde_html_form::from_str(query.as_deref().unwrap_or("")).unwrap_or_default();
    let flow: Option<Flow> = jar
        .get(FLOW_COOKIE)
        .and_then(|c| serde_json::from_str(c.value()).ok());
    // The flow is good for one answer.
    let jar = jar.remove(flow_removal());
    let provider = flow.as_ref().map(|f| f.p.clone()).unwrap_or_default();
    let next = flow.as_ref().map(|f| f.next.clone()).unwrap_or_default();
    // The flow's age on avvik's clock (which started it); the id_token's times are
    // checked against the system clock, as the provider's are.
    let now = state.services.clock.now();
    let user = match state
        .oidc
        .finish(flow, &answer, &redirect_uri(&state), now.timestamp())
        .await
    {
        Ok(u) => u,
        Err(r) => return Ok((jar, refused(&state, &csrf, &next, &provider, &r)?).into_response()),
    };
    let account = match state.services.provider_sign_in(&user).await {
        Ok(a) => a,
        Err(AccountError::Invalid(message)) => {
            tracing::warn!(provider = %provider, "sign-in through the identity provider refused: the account cannot be used ({message})");
            outcome(&provider, "refused");
            let page = login_view(
                &state,
                &csrf,
                &next,
                "",
                Some(message),
                StatusCode::FORBIDDEN,
            )?;
            return Ok((jar, page).into_response());
        }
        Err(e) => return Err(PageError::Unavailable(e.to_string())),
    };
    if account.roles.is_empty() {
        tracing::warn!(provider = %provider, account = %account.id, "signed in at the identity provider, but the provider's claim gives no avvik role; no session");
        outcome(&provider, "no-role");
        let page = login_view(
            &state,
            &csrf,
            &next,
            "",
            Some("Du är inloggad hos kommunen men har ingen roll i avvik. Kontakta administratören om du behöver komma åt registret.".into()),
            StatusCode::FORBIDDEN,
        )?;
        return Ok((jar, page).into_response());
    }
    tracing::info!(provider = %provider, account = %account.id, "staff login through the identity provider");
    outcome(&provider, "ok");
    let jar = jar.add(provider_session_cookie(
        account.id,
        now,
        secure(&state),
        &provider,
    ));
    Ok((jar, Redirect::to(&landing(&account, next))).into_response())
}
