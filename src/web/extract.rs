//! The staff extractors: who is asking, from an API token or the session cookie, and how
//! far the session has come through signing in (password, second factor).

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use axum_extra::extract::cookie::PrivateCookieJar;

use super::AppState;
use crate::auth::session::{
    session_valid, standing, AuthRejection, Enrolling, SessionClaims, Standing, SESSION_COOKIE,
};
use crate::auth::{Principal, Staff};

fn bearer(parts: &Parts) -> Option<&str> {
    let v = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Who asks and how far they have signed in; `Err` when nobody valid is asking.
fn identify(parts: &Parts, state: &AppState) -> Result<(Principal, Standing), AuthRejection> {
    let is_api = parts.uri.path().starts_with("/api/");
    let reject = || {
        if is_api {
            AuthRejection::Api
        } else {
            AuthRejection::Web {
                next: parts.uri.path().to_string(),
            }
        }
    };
    let register = &state.services.register;
    if let Some(token) = bearer(parts) {
        // A token is made by its owner once signed in; it stands for a complete sign-in.
        let hash = avvik_events::hash_hex(token.as_bytes());
        let reg = register.read();
        return reg
            .accounts
            .by_token_hash(&hash)
            .map(|a| (Principal::from_account(a), Standing::Complete))
            .ok_or(AuthRejection::Api);
    }
    if is_api && !parts.method.is_safe() {
        // The cookie is sent by the browser with any form, from any origin of the
        // same site; it never authorizes an API write.
        if parts.headers.contains_key(header::COOKIE) {
            tracing::warn!(path = %parts.uri.path(), "API write with a session cookie and no bearer token refused");
        }
        return Err(AuthRejection::Api.or_cookie(parts));
    }
    let jar = PrivateCookieJar::from_headers(&parts.headers, state.session_key.clone());
    let Some(cookie) = jar.get(SESSION_COOKIE) else {
        return Err(reject());
    };
    let Ok(claims) = serde_json::from_str::<SessionClaims>(cookie.value()) else {
        return Err(reject());
    };
    let now = state.services.clock.now();
    let reg = register.read();
    match reg.accounts.get(claims.a) {
        Some(a) if session_valid(&claims, a, now, &state.config.auth) => Ok((
            Principal::from_account(a),
            standing(&claims, a, &state.config.auth),
        )),
        _ => Err(reject()),
    }
}

/// The next page after the second step: where the request was going (staff and audit
/// pages only).
fn next_of(parts: &Parts) -> String {
    let path = parts.uri.path();
    if path.starts_with("/staff") || path.starts_with("/audit") {
        path.to_string()
    } else {
        String::new()
    }
}

impl FromRequestParts<AppState> for Staff {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (who, standing) = identify(parts, state)?;
        let is_api = parts.uri.path().starts_with("/api/");
        match standing {
            Standing::Complete => Ok(Staff(who)),
            _ if is_api => Err(AuthRejection::ApiSecondFactor),
            Standing::NeedsSecondFactor => Err(AuthRejection::WebSecondFactor {
                next: next_of(parts),
            }),
            Standing::MustEnrol => Err(AuthRejection::WebEnrol),
        }
    }
}

impl FromRequestParts<AppState> for Enrolling {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (who, standing) = identify(parts, state)?;
        match standing {
            Standing::Complete => Ok(Enrolling {
                who,
                complete: true,
            }),
            Standing::MustEnrol => Ok(Enrolling {
                who,
                complete: false,
            }),
            Standing::NeedsSecondFactor => Err(AuthRejection::WebSecondFactor {
                next: next_of(parts),
            }),
        }
    }
}
