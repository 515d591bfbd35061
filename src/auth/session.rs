//! Who is asking: a bearer API token or a private (encrypted, signed) session cookie.
//! The `Staff` extractor turns either into a `Principal`, checked against the current
//! accounts on every request (disabled accounts and old sessions stop working at once).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, Key, PrivateCookieJar, SameSite};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::accounts::Account;
use super::policy::Principal;

pub const SESSION_COOKIE: &str = "avvik_session";
/// Absolute session lifetime.
pub use crate::domain::account::SESSION_HOURS;

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SessionClaims {
    /// Account id.
    pub(crate) a: Uuid,
    /// Issued at (unix seconds).
    pub(crate) i: i64,
    /// Session id, named in `SignedOut` when the user signs out.
    pub(crate) s: Uuid,
    /// The second factor was given in this session (absent in older cookies: not given).
    #[serde(default, rename = "f2", skip_serializing_if = "std::ops::Not::not")]
    pub(crate) second_factor: bool,
    /// Signed in through this identity provider (`[[auth.oidc]]` id), not with a password.
    #[serde(default, rename = "p", skip_serializing_if = "Option::is_none")]
    pub(crate) provider: Option<String>,
}

/// The cookie key, derived from the installation secret.
pub fn session_key(secret: &crate::secret::Secret) -> Key {
    let mut k = Vec::with_capacity(64);
    k.extend_from_slice(&secret.derive("session-cookie-1"));
    k.extend_from_slice(&secret.derive("session-cookie-2"));
    Key::from(&k)
}

/// A new session cookie for `account`; `second_factor`: the user gave one.
pub fn session_cookie(
    account: Uuid,
    now: DateTime<Utc>,
    secure: bool,
    second_factor: bool,
) -> Cookie<'static> {
    let claims = SessionClaims {
        second_factor,
        ..SessionClaims::new(account, now)
    };
    claims_cookie(claims, secure)
}

/// A new session cookie for `account`, signed in through identity provider `provider`.
pub fn provider_session_cookie(
    account: Uuid,
    now: DateTime<Utc>,
    secure: bool,
    provider: &str,
) -> Cookie<'static> {
    let claims = SessionClaims {
        provider: Some(provider.to_string()),
        ..SessionClaims::new(account, now)
    };
    claims_cookie(claims, secure)
}

fn claims_cookie(claims: SessionClaims, secure: bool) -> Cookie<'static> {
    let value = serde_json::to_string(&claims).unwrap_or_default();
    let mut c = Cookie::new(SESSION_COOKIE, value);
    c.set_http_only(true);
    c.set_secure(secure);
    c.set_same_site(SameSite::Lax);
    c.set_path("/");
    // No Max-Age: the cookie ends with the browser session; the server enforces the
    // absolute lifetime from the issue time inside the cookie.
    c
}

/// A cookie that removes the session.
pub fn removal_cookie() -> Cookie<'static> {
    let mut c = Cookie::from(SESSION_COOKIE);
    c.set_path("/");
    c
}

/// The session a cookie jar holds (not checked for validity; for signing out).
pub(crate) fn session_in(jar: &PrivateCookieJar) -> Option<SessionClaims> {
    let c = jar.get(SESSION_COOKIE)?;
    serde_json::from_str(c.value()).ok()
}

impl SessionClaims {
    /// A new session (a fresh id) of `account` from `now`, by password alone.
    fn new(account: Uuid, now: DateTime<Utc>) -> Self {
        SessionClaims {
            a: account,
            i: now.timestamp(),
            s: Uuid::new_v4(),
            second_factor: false,
            provider: None,
        }
    }

    /// When the session was issued.
    pub(crate) fn issued_at(&self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(self.i, 0)
    }
}

/// Is this session still good for this account under the sign-in policy? A session
/// through an identity provider needs that provider configured still; a password session
/// needs a password, set before the session began, and passwords allowed (`sso_only`
/// off).
pub(crate) fn session_valid(
    claims: &SessionClaims,
    account: &Account,
    now: DateTime<Utc>,
    policy: &crate::config::AuthConfig,
) -> bool {
    let Some(issued) = DateTime::<Utc>::from_timestamp(claims.i, 0) else {
        return false;
    };
    if account.disabled
        || account.ended_sessions.contains_key(&claims.s)
        || now - issued > Duration::hours(SESSION_HOURS)
        || issued > now + Duration::minutes(5)
    {
        return false;
    }
    // A password change ends every session issued before it.
    let password_before = account
        .password_changed_at
        .map(|changed| changed.timestamp() <= claims.i);
    match &claims.provider {
        Some(p) => policy.provider(p).is_some() && password_before.unwrap_or(true),
        None => !policy.sso_only && password_before.unwrap_or(false),
    }
}

/// How far a valid session has come through signing in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Signed in: the password, and the second factor where the account has one.
    Complete,
    /// The password was right; the account has a second factor not given yet.
    NeedsSecondFactor,
    /// The password was right; a role of the account requires a second factor and it has
    /// none: only adding one (and signing out) is open.
    MustEnrol,
}

/// Where a valid session stands for this account under the sign-in policy. This and
/// `session_valid` are the one check every cookie-authenticated request goes through
/// (the `Staff` extractor).
pub(crate) fn standing(
    claims: &SessionClaims,
    account: &Account,
    policy: &crate::config::AuthConfig,
) -> Standing {
    if claims.second_factor || claims.provider.is_some() {
        // The provider decides how its users sign in (its own second factor).
        Standing::Complete
    } else if account.has_second_factor() {
        Standing::NeedsSecondFactor
    } else if policy.requires_second_factor(&account.roles) {
        Standing::MustEnrol
    } else {
        Standing::Complete
    }
}

/// The signed-in staff member.
#[derive(Debug, Clone)]
pub struct Staff(pub Principal);

/// A staff member who must add a second factor before anything else, or is fully signed
/// in: for the pages where a second factor is added (and signing out). `complete` tells
/// which.
#[derive(Debug, Clone)]
pub struct Enrolling {
    pub who: Principal,
    pub complete: bool,
}

/// The path of the second sign-in step.
pub const SECOND_FACTOR_PATH: &str = "/staff/login/second-factor";
/// Where an account that must add a second factor is sent.
pub const ENROL_PATH: &str = "/staff/account";

/// Why a request is not signed in: JSON 401 for the API, a redirect to the login page for
/// the web UI.
pub enum AuthRejection {
    Api,
    /// An API write with only the session cookie: writes need a bearer token, so a form
    /// on another origin that the browser sends the cookie with cannot write.
    ApiWriteWithCookie,
    Web {
        next: String,
    },
    /// A cookie session whose second factor is still to come (or to be added).
    ApiSecondFactor,
    /// The password was right; the second factor is asked for next.
    WebSecondFactor {
        next: String,
    },
    /// The account must add a second factor first.
    WebEnrol,
}

/// A 401 problem answer that asks for a bearer token.
fn unauthorized(kind: &str, detail: &str, detail_sv: &str) -> Response {
    let body = serde_json::json!({
        "type": kind,
        "title": "Unauthorized",
        "status": 401,
        "detail": detail,
        "detail_sv": detail_sv,
    });
    let mut r = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/problem+json"),
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"avvik\""),
    );
    r
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        match self {
            AuthRejection::Api => unauthorized(
                "urn:avvik:problem:unauthorized",
                "a valid bearer token or session is required",
                "Du behöver logga in.",
            ),
            AuthRejection::ApiWriteWithCookie => unauthorized(
                "urn:avvik:problem:bearer-required",
                "API writes need a bearer token; the session cookie is accepted for reading only",
                "Ändringar via API:t kräver en API-nyckel.",
            ),
            AuthRejection::Web { next } => {
                let next = url_escape(&next);
                Redirect::to(&format!("/staff/login?next={next}")).into_response()
            }
            AuthRejection::ApiSecondFactor => unauthorized(
                "urn:avvik:problem:second-factor-required",
                "the session has not completed the second sign-in factor",
                "Logga in med din andra faktor först.",
            ),
            AuthRejection::WebSecondFactor { next } => {
                let next = url_escape(&next);
                Redirect::to(&format!("{SECOND_FACTOR_PATH}?next={next}")).into_response()
            }
            AuthRejection::WebEnrol => Redirect::to(ENROL_PATH).into_response(),
        }
    }
}

impl AuthRejection {
    /// `ApiWriteWithCookie` when the request carried a cookie (a clearer answer), else
    /// `self`.
    pub fn or_cookie(self, parts: &axum::http::request::Parts) -> Self {
        if parts.headers.contains_key(header::COOKIE) {
            AuthRejection::ApiWriteWithCookie
        } else {
            self
        }
    }
}

/// Percent-encodes a local path for a query value.
fn url_escape(s: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::auth::OidcProviderConfig;
    use crate::config::AuthConfig;
    use figment::providers::Format;

    fn account(password_at: Option<DateTime<Utc>>) -> Account {
        let mut accounts = crate::domain::account::Accounts::default();
        let id = Uuid::from_u128(1);
        let mut events = vec![crate::domain::account::AccountEvent::Created(
            crate::domain::account::AccountCreated {
                account_id: id,
                email: crate::domain::EmailAddress::parse("a@kommunen.se").unwrap(),
                name: "A".into(),
            },
        )];
        if password_at.is_some() {
            events.push(crate::domain::account::AccountEvent::PasswordChanged(
                crate::domain::account::PasswordChanged {
                    account_id: id,
                    password_hash: "x".into(),
                    pepper: None,
                },
            ));
        }
        for (i, ev) in events.into_iter().enumerate() {
            accounts.apply(&avvik_events::RecordedEvent {
                seq: i as u64 + 1,
                id: Uuid::now_v7(),
                stream: id,
                version: i as u32 + 1,
                at: password_at.unwrap_or_else(Utc::now),
                actor: "test".into(),
                event_type: ev.type_name().into(),
                schema: 1,
                data: ev.to_data(),
                prev: String::new(),
            });
        }
        accounts.get(id).unwrap().clone()
    }

    fn provider() -> OidcProviderConfig {
        let toml = r#"
            id = "kommunen"
            issuer = "https://login.kommunen.se"
            client_id = "avvik"
            client_secret = "s"
        "#;
        figment::Figment::from(figment::providers::Toml::string(toml))
            .extract()
            .unwrap()
    }

    #[test]
    fn sso_only_ends_password_sessions_and_a_provider_session_needs_its_provider() {
        let now = Utc::now();
        let earlier = now - Duration::minutes(5);
        let with_password = account(Some(earlier));
        let without = account(None);
        let claims = |provider: Option<&str>| SessionClaims {
            a: with_password.id,
            i: now.timestamp(),
            s: Uuid::new_v4(),
            second_factor: false,
            provider: provider.map(str::to_string),
        };
        let mut policy = AuthConfig {
            oidc: vec![provider()],
            ..AuthConfig::default()
        };
        assert!(session_valid(&claims(None), &with_password, now, &policy));
        assert!(!session_valid(&claims(None), &without, now, &policy));
        assert!(session_valid(
            &claims(Some("kommunen")),
            &without,
            now,
            &policy
        ));
        assert!(!session_valid(
            &claims(Some("annan")),
            &without,
            now,
            &policy
        ));
        assert_eq!(
            standing(&claims(Some("kommunen")), &without, &policy),
            Standing::Complete
        );
        policy.sso_only = true;
        assert!(!session_valid(&claims(None), &with_password, now, &policy));
        assert!(session_valid(
            &claims(Some("kommunen")),
            &with_password,
            now,
            &policy
        ));
    }
}
