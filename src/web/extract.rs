//! The staff extractor: who is asking, from an API token or the session cookie.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use axum_extra::extract::cookie::PrivateCookieJar;

use super::AppState;
use crate::auth::session::{session_valid, AuthRejection, SessionClaims, SESSION_COOKIE};
use crate::auth::{Principal, Staff};

fn bearer(parts: &Parts) -> Option<&str> {
    let v = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl FromRequestParts<AppState> for Staff {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
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
            let hash = avvik_events::hash_hex(token.as_bytes());
            let reg = register.read();
            return reg
                .accounts
                .by_token_hash(&hash)
                .map(|a| Staff(Principal::from_account(a)))
                .ok_or(AuthRejection::Api);
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
            Some(a) if session_valid(&claims, a, now) => Ok(Staff(Principal::from_account(a))),
            _ => Err(reject()),
        }
    }
}
