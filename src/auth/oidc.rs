//! Staff sign-in through the municipality's identity provider (OpenID Connect, with the
//! `openidconnect` crate): discovery, the authorization-code flow with PKCE (S256), and the
//! id_token's checks — signature against the provider's keys (fetched again once when a
//! token names a key not seen yet: key rotation), issuer, audience, expiry and nonce.
//!
//! The sign-in in progress (state, nonce, PKCE verifier) travels in a private cookie of
//! the browser that started it (`Flow`, encrypted and signed with the session key), so the
//! answer is accepted only in that browser, within `FLOW_MINUTES`, and any node can finish
//! it. The provider's user becomes a `ProviderUser`; `Services::provider_sign_in` turns it
//! into account events. Nothing here logs a code or a token.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreClientAuthMethod, CoreJsonWebKeySet,
};
use openidconnect::{
    AuthType, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IssuerUrl, LogoutRequest, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, PostLogoutRedirectUrl, ProviderMetadataWithLogout, RedirectUrl, Scope,
    TokenResponse,
};
use serde::{Deserialize, Serialize};

use crate::config::auth::OidcProviderConfig;
use crate::config::{AuthConfig, ConfigError};
use crate::domain::identity::ProviderUser;
use crate::domain::EmailAddress;

/// Where the provider sends the browser back (one path for every provider: the flow
/// cookie says which).
pub const CALLBACK_PATH: &str = "/staff/login/oidc/callback";
/// The cookie holding the sign-in in progress.
pub const FLOW_COOKIE: &str = "avvik_oidc";
/// How long a started sign-in may be finished.
pub const FLOW_MINUTES: i64 = 10;
/// How long the provider's discovery document is used before it is read again.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// The provider's keys are fetched again at most this often (tokens naming an unknown key
/// cannot make avvik hammer the provider).
const JWKS_REFRESH_MIN: Duration = Duration::from_secs(1);

type Metadata = ProviderMetadataWithLogout;
type Rp = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// A sign-in in progress, kept in the browser that started it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Flow {
    /// Provider id.
    pub p: String,
    /// The `state` sent to the provider.
    s: String,
    /// The nonce the id_token must carry.
    n: String,
    /// The PKCE verifier.
    v: String,
    /// Started (unix seconds).
    t: i64,
    /// Where to go after signing in (a checked local path).
    pub next: String,
}

/// Why a sign-in through a provider did not happen: a reason for the log (English,
/// never a token or a code) and a message for the person (Swedish).
#[derive(Debug, Clone)]
pub struct Refusal {
    pub reason: String,
    pub message_sv: &'static str,
    /// The provider could not be reached (503), rather than the answer refused (400).
    pub unavailable: bool,
}

impl Refusal {
    fn refused(reason: impl Into<String>, message_sv: &'static str) -> Self {
        Refusal {
            reason: reason.into(),
            message_sv,
            unavailable: false,
        }
    }

    fn unavailable(reason: impl Into<String>) -> Self {
        Refusal {
            reason: reason.into(),
            message_sv: "Kommunens inloggning svarar inte just nu. Försök igen om en stund, eller kontakta IT-supporten.",
            unavailable: true,
        }
    }
}

const NOT_FINISHED: &str = "Inloggningen kunde inte slutföras: den började inte i den här webbläsaren, eller tog för lång tid. Börja om från inloggningssidan.";
const NOT_ACCEPTED: &str = "Inloggningen godtogs inte: svaret från kommunens inloggning kunde inte kontrolleras. Börja om från inloggningssidan. Kvarstår felet, kontakta IT-supporten.";

struct Discovered {
    meta: Metadata,
    at: Instant,
    jwks_at: Instant,
}

struct Provider {
    config: OidcProviderConfig,
    secret: String,
    discovered: tokio::sync::Mutex<Option<Discovered>>,
}

/// The configured identity providers.
pub struct Providers {
    http: reqwest::Client,
    list: Vec<Provider>,
}

impl Providers {
    /// The providers of `[[auth.oidc]]`, their client secrets read (a missing file or
    /// variable stops start-up naming the key).
    pub fn from_config(config: &AuthConfig) -> Result<Self, ConfigError> {
        let list = config
            .oidc
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Ok(Provider {
                    config: p.clone(),
                    secret: p.resolve_secret(i)?,
                    discovered: tokio::sync::Mutex::new(None),
                })
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        // The provider's endpoints are never followed to somewhere else.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ConfigError(format!("key `auth.oidc`: no HTTP client: {e}")))?;
        Ok(Providers { http, list })
    }

    /// (id, button text) of each provider, in configuration order.
    pub fn buttons(&self) -> Vec<(String, String)> {
        self.list
            .iter()
            .map(|p| (p.config.id.clone(), p.config.label.clone()))
            .collect()
    }

    /// The origins a sign-in or sign-out form may lead to: each provider's issuer, and
    /// its authorization and end-session endpoints once discovered.
    pub fn form_origins(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut add = |u: &str| {
            if let Ok(u) = reqwest::Url::parse(u) {
                let o = u.origin().ascii_serialization();
                if o != "null" && !out.contains(&o) {
                    out.push(o);
                }
            }
        };
        for p in &self.list {
            add(&p.config.issuer);
            if let Ok(slot) = p.discovered.try_lock() {
                if let Some(d) = slot.as_ref() {
                    add(d.meta.authorization_endpoint().as_str());
                    if let Some(e) = &d.meta.additional_metadata().end_session_endpoint {
                        add(e.as_str());
                    }
                }
            }
        }
        out
    }

    fn get(&self, id: &str) -> Option<&Provider> {
        self.list.iter().find(|p| p.config.id == id)
    }

    /// The provider's metadata (discovery), read again when old; with `fresh_keys`, its
    /// keys fetched again (at most every `JWKS_REFRESH_MIN`).
    async fn metadata(&self, p: &Provider, fresh_keys: bool) -> Result<Metadata, Refusal> {
        let mut slot = p.discovered.lock().await;
        let stale = slot.as_ref().is_none_or(|d| d.at.elapsed() > DISCOVERY_TTL);
        if stale {
            let issuer = IssuerUrl::new(p.config.issuer.clone())
                .map_err(|e| Refusal::unavailable(format!("issuer URL: {e}")))?;
            let meta = Metadata::discover_async(issuer, &self.http)
                .await
                .map_err(|e| Refusal::unavailable(format!("discovery failed: {e}")))?;
            *slot = Some(Discovered {
                meta,
                at: Instant::now(),
                jwks_at: Instant::now(),
            });
        } else if let Some(d) = slot
            .as_mut()
            .filter(|d| fresh_keys && d.jwks_at.elapsed() >= JWKS_REFRESH_MIN)
        {
            let jwks = CoreJsonWebKeySet::fetch_async(d.meta.jwks_uri(), &self.http)
                .await
                .map_err(|e| {
                    Refusal::unavailable(format!("fetching the provider's keys failed: {e}"))
                })?;
            d.meta = d.meta.clone().set_jwks(jwks);
            d.jwks_at = Instant::now();
            tracing::info!(provider = %p.config.id, "identity provider keys fetched again");
        }
        match slot.as_ref() {
            Some(d) => Ok(d.meta.clone()),
            None => Err(Refusal::unavailable("no discovery document")),
        }
    }

    fn client(&self, p: &Provider, meta: Metadata, redirect: &str) -> Result<Rp, Refusal> {
        let post_only = meta
            .token_endpoint_auth_methods_supported()
            .is_some_and(|m| {
                m.contains(&CoreClientAuthMethod::ClientSecretPost)
                    && !m.contains(&CoreClientAuthMethod::ClientSecretBasic)
            });
        let redirect = RedirectUrl::new(redirect.to_string())
            .map_err(|e| Refusal::unavailable(format!("redirect URL: {e}")))?;
        let client = CoreClient::from_provider_metadata(
            meta,
            ClientId::new(p.config.client_id.clone()),
            Some(ClientSecret::new(p.secret.clone())),
        )
        .set_redirect_uri(redirect);
        Ok(if post_only {
            client.set_auth_type(AuthType::RequestBody)
        } else {
            client
        })
    }

    /// Starts a sign-in at provider `id`: the URL to send the browser to, and the flow to
    /// keep in it. `None` for an unknown provider.
    pub async fn start(
        &self,
        id: &str,
        redirect: &str,
        next: String,
        now: i64,
    ) -> Option<Result<(String, Flow), Refusal>> {
        let p = self.get(id)?;
        Some(self.start_at(p, redirect, next, now).await)
    }

    async fn start_at(
        &self,
        p: &Provider,
        redirect: &str,
        next: String,
        now: i64,
    ) -> Result<(String, Flow), Refusal> {
        let meta = self.metadata(p, false).await?;
        let client = self.client(p, meta, redirect)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for s in &p.config.scopes {
            request = request.add_scope(Scope::new(s.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        let flow = Flow {
            p: p.config.id.clone(),
            s: state.secret().clone(),
            n: nonce.secret().clone(),
            v: verifier.secret().clone(),
            t: now,
            next,
        };
        Ok((url.to_string(), flow))
    }

    /// Finishes a sign-in: checks the answer against the flow, exchanges the code, checks
    /// the id_token and maps its claims. `now`: unix seconds.
    pub async fn finish(
        &self,
        flow: Option<Flow>,
        answer: &CallbackQuery,
        redirect: &str,
        now: i64,
    ) -> Result<ProviderUser, Refusal> {
        let Some(flow) = flow else {
            return Err(Refusal::refused(
                "no sign-in in progress in this browser (no or unreadable flow cookie)",
                NOT_FINISHED,
            ));
        };
        let Some(p) = self.get(&flow.p) else {
            return Err(Refusal::refused(
                "the flow names an unknown provider",
                NOT_FINISHED,
            ));
        };
        if !constant_time_eq(
            answer.state.as_deref().unwrap_or("").as_bytes(),
            flow.s.as_bytes(),
        ) {
            return Err(Refusal::refused(
                "state does not match the sign-in started in this browser",
                NOT_FINISHED,
            ));
        }
        if now - flow.t > FLOW_MINUTES * 60 || flow.t > now + 300 {
            return Err(Refusal::refused("the sign-in took too long", NOT_FINISHED));
        }
        if let Some(error) = &answer.error {
            // The provider's own error code (RFC 6749 4.1.2.1): a fixed vocabulary, safe
            // to log; its free-text description is not logged.
            let code: String = error
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(64)
                .collect();
            return Err(Refusal::refused(
                format!("the provider answered with error {code}"),
                "Kommunens inloggning avbröt inloggningen. Börja om från inloggningssidan.",
            ));
        }
        let Some(code) = answer.code.clone().filter(|c| !c.is_empty()) else {
            return Err(Refusal::refused("the answer has no code", NOT_ACCEPTED));
        };
        let meta = self.metadata(p, false).await?;
        let client = self.client(p, meta, redirect)?;
        let tokens = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| Refusal::unavailable(format!("no token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(flow.v.clone()))
            .request_async(&self.http)
            .await
            .map_err(token_refusal)?;
        let Some(id_token) = tokens.id_token() else {
            return Err(Refusal::refused(
                "the token answer has no id_token",
                NOT_ACCEPTED,
            ));
        };
        let nonce = Nonce::new(flow.n.clone());
        let verified = match id_token.claims(&client.id_token_verifier(), &nonce) {
            Ok(c) => Ok(c.clone()),
            Err(openidconnect::ClaimsVerificationError::SignatureVerification(_)) => {
                // Perhaps a key the provider rotated in: fetch its keys once more.
                let meta = self.metadata(p, true).await?;
                let client = self.client(p, meta, redirect)?;
                let verifier = client.id_token_verifier();
                id_token.claims(&verifier, &nonce).cloned()
            }
            Err(e) => Err(e),
        };
        let claims = verified.map_err(|e| {
            Refusal::refused(format!("the id_token was refused: {e}"), NOT_ACCEPTED)
        })?;
        // The signature is checked: the payload's other claims (groups) can be read.
        let payload = jwt_payload(&id_token.to_string()).unwrap_or_default();
        let email = claims
            .email()
            .and_then(|e| EmailAddress::parse(e.as_str()))
            .ok_or_else(|| {
                Refusal::refused(
                    "the id_token has no usable email claim",
                    "Kommunens inloggning gav ingen e-postadress för ditt konto, så avvik kan inte veta vem du är. Kontakta IT-supporten.",
                )
            })?;
        if claims.email_verified() == Some(false) {
            return Err(Refusal::refused(
                "the provider says the email address is not verified",
                "Kommunens inloggning har inte bekräftat din e-postadress. Kontakta IT-supporten.",
            ));
        }
        let name = claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str().to_string())
            .unwrap_or_default();
        let values = claim_values(&payload, &p.config.roles_claim);
        Ok(ProviderUser {
            provider: p.config.id.clone(),
            issuer: claims.issuer().as_str().to_string(),
            subject: claims.subject().as_str().to_string(),
            email,
            name,
            roles: p.config.roles_for(&values),
            link_existing: p.config.link_existing_accounts,
        })
    }

    /// Where to send the browser to sign out at provider `id` too, when it offers that and
    /// the configuration wants it; `None` otherwise (or when it cannot be reached).
    pub async fn logout_url(&self, id: &str, back_to: &str) -> Option<String> {
        let p = self.get(id).filter(|p| p.config.logout_at_provider)?;
        let meta = match self.metadata(p, false).await {
            Ok(m) => m,
            Err(r) => {
                tracing::warn!(provider = %id, reason = %r.reason, "signing out at the identity provider skipped: it cannot be reached");
                return None;
            }
        };
        let endpoint = meta.additional_metadata().end_session_endpoint.clone()?;
        let mut request =
            LogoutRequest::from(endpoint).set_client_id(ClientId::new(p.config.client_id.clone()));
        if let Ok(u) = PostLogoutRedirectUrl::new(back_to.to_string()) {
            request = request.set_post_logout_redirect_uri(u);
        }
        Some(request.http_get_url().to_string())
    }
}

/// The query the provider sends the browser back with.
#[derive(Debug, Default, Deserialize)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
}

/// The token endpoint's refusal, for the log: the error code only (the answer's body may
/// echo what was sent).
fn token_refusal<E: std::error::Error>(
    e: openidconnect::RequestTokenError<
        E,
        openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
    >,
) -> Refusal {
    use openidconnect::RequestTokenError as R;
    match e {
        R::ServerResponse(r) => Refusal::refused(
            format!(
                "the token endpoint refused the code: {}",
                r.error().as_ref()
            ),
            NOT_ACCEPTED,
        ),
        R::Request(_) => Refusal::unavailable("the token endpoint cannot be reached"),
        R::Parse(..) => {
            Refusal::refused("the token endpoint's answer does not parse", NOT_ACCEPTED)
        }
        R::Other(_) => Refusal::refused("the token endpoint's answer is not usable", NOT_ACCEPTED),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A compact JWT's payload as JSON.
fn jwt_payload(jwt: &str) -> Option<serde_json::Value> {
    let payload = jwt.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

/// The strings at `path` (dotted) in `claims`: one string, or a list's strings.
pub fn claim_values(claims: &serde_json::Value, path: &str) -> Vec<String> {
    let mut at = claims;
    for part in path.split('.') {
        match at.get(part) {
            Some(v) => at = v,
            None => return Vec::new(),
        }
    }
    match at {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_claims_are_read_from_strings_lists_and_nested_objects() {
        let c = serde_json::json!({
            "groups": ["avvik-ciso", 7, "x"],
            "role": "avvik-revisor",
            "realm_access": {"roles": ["a", "b"]},
        });
        assert_eq!(claim_values(&c, "groups"), vec!["avvik-ciso", "x"]);
        assert_eq!(claim_values(&c, "role"), vec!["avvik-revisor"]);
        assert_eq!(claim_values(&c, "realm_access.roles"), vec!["a", "b"]);
        assert!(claim_values(&c, "missing.path").is_empty());
    }

    #[test]
    fn a_jwt_payload_is_decoded() {
        let jwt = format!(
            "x.{}.y",
            URL_SAFE_NO_PAD.encode(br#"{"sub":"1","groups":["g"]}"#)
        );
        assert_eq!(
            jwt_payload(&jwt).and_then(|v| v.get("sub").cloned()),
            Some(serde_json::json!("1"))
        );
        assert_eq!(jwt_payload("no-dots"), None);
    }
}
