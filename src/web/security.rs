//! Cross-cutting HTTP protection: security headers on every response, request logging
//! that never writes a raw URI (status tokens live in paths), and the per-IP rate limit on
//! public state-changing routes (tower_governor).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use governor::middleware::NoOpMiddleware;
use tower::{Layer, ServiceExt};
use tower_governor::governor::{GovernorConfig, GovernorConfigBuilder};
use tower_governor::key_extractor::KeyExtractor;
use tower_governor::{GovernorError, GovernorLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{MakeSpan, TraceLayer};

pub use crate::net::IpNets;

use super::pages::PageError;

pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// `CONTENT_SECURITY_POLICY` for a page whose forms lead on to other origins as well
/// (the login and logout pages, through an identity provider): browsers apply
/// `form-action` to the redirects after a form too.
pub fn policy_with_form_targets(origins: &[String]) -> String {
    let extra: String = origins
        .iter()
        .filter(|o| !o.is_empty() && !o.contains([';', ',', ' ', '\'', '"']))
        .map(|o| format!(" {o}"))
        .collect();
    CONTENT_SECURITY_POLICY.replace("form-action 'self'", &format!("form-action 'self'{extra}"))
}

/// Routes whose POST counts against the per-IP limit (matched route templates). Add a
/// route here to limit it too (e.g. a login form).
pub const RATE_LIMITED_ROUTES: &[&str] = &[
    "/",
    "/status/{token}",
    "/api/v1/deviations",
    "/staff/login",
    crate::auth::session::SECOND_FACTOR_PATH,
    "/staff/login/second-factor/passkey",
    "/staff/login/second-factor/passkey/options",
    "/staff/login/oidc/{provider}",
];

/// Routes whose GET counts against the same limit: those opened by a secret in the path
/// alone (a calendar feed), so guessing costs time.
/// And an identity provider's answer, each of which avvik takes to the provider's token
/// endpoint.
pub const RATE_LIMITED_GETS: &[&str] = &[super::calendar::ROUTE, crate::auth::oidc::CALLBACK_PATH];

/// Adds the security headers to every response that does not set them itself.
/// `Cache-Control: no-store` keeps pages with status tokens and CSRF tokens out of shared
/// and back-button caches; the stylesheet sets its own.
pub fn with_security_headers<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    https: bool,
) -> Router<S> {
    let fixed: [(HeaderName, &'static str); 5] = [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        // Status links carry the token in the path: never send it on as a Referer.
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    let mut router = router;
    for (name, value) in fixed {
        router = router.layer(SetResponseHeaderLayer::if_not_present(
            name,
            HeaderValue::from_static(value),
        ));
    }
    if https {
        router = router.layer(SetResponseHeaderLayer::if_not_present(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        ));
    }
    router
}

/// Request spans name the matched route template (`/status/{token}`), never the URI:
/// the raw path of a status page is the reporter's secret.
#[derive(Debug, Clone, Copy, Default)]
pub struct RouteSpan;

impl<B> MakeSpan<B> for RouteSpan {
    fn make_span(&mut self, req: &axum::http::Request<B>) -> tracing::Span {
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str)
            .unwrap_or("<unmatched>");
        tracing::info_span!("request", method = %req.method(), route)
    }
}

/// Logs requests by route template. Apply with `Router::layer` before `with_state`, so it
/// runs per route and sees the `MatchedPath`.
pub fn with_request_tracing<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router.layer(
        TraceLayer::new_for_http()
            .make_span_with(RouteSpan)
            .on_failure(log_failure),
    )
}

/// 5xx answers are errors in the log, except 503: that is an expected answer (not ready
/// yet on `/readyz`, load shed, store unavailable), each with its own log line or metric
/// where it is decided, and a load balancer polling `/readyz` during start-up must not
/// fill the log with errors.
fn log_failure(
    class: tower_http::classify::ServerErrorsFailureClass,
    latency: Duration,
    _span: &tracing::Span,
) {
    use tower_http::classify::ServerErrorsFailureClass as Class;
    let ms = latency.as_millis() as u64;
    match class {
        Class::StatusCode(StatusCode::SERVICE_UNAVAILABLE) => {
            tracing::debug!(latency_ms = ms, "answered 503")
        }
        other => tracing::error!(failure = %other, latency_ms = ms, "response failed"),
    }
}

type Limiter = GovernorLayer<ClientIp, NoOpMiddleware, Body>;

/// The per-IP limit: one budget shared by every limited route, answered with a Swedish
/// page for forms and problem+json for the API.
#[derive(Clone)]
struct RateLimit {
    html: Limiter,
    api: Limiter,
}

/// The rate limiter's key: the client address as [`IpNets::client_ip`] sees it.
#[derive(Debug, Clone)]
struct ClientIp(Arc<IpNets>);

impl KeyExtractor for ClientIp {
    type Key = IpAddr;

    fn extract<T>(&self, req: &axum::http::Request<T>) -> Result<IpAddr, GovernorError> {
        let peer = req
            .extensions()
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map(|c| c.ip())
            .ok_or(GovernorError::UnableToExtractKey)?;
        Ok(self.0.client_ip(peer, req.headers()))
    }
}

/// Limits POSTs to `RATE_LIMITED_ROUTES` (and GETs of `RATE_LIMITED_GETS`) to `per_minute` per client IP: that many at once,
/// then one more every 60/`per_minute` seconds. 0 leaves the router unlimited. The key is
/// the TCP peer address (or, from a trusted proxy, the forwarded client address), so serve
/// with `into_make_service_with_connect_info::<SocketAddr>`.
pub fn with_rate_limit<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    per_minute: u32,
    proxies: IpNets,
) -> Router<S> {
    let Some(config) = governor_config(per_minute, proxies) else {
        return router;
    };
    let config = Arc::new(config);
    forget_idle_clients(&config);
    let limits = RateLimit {
        html: GovernorLayer::new(config.clone()).error_handler(html_too_many),
        api: GovernorLayer::new(config).error_handler(api_too_many),
    };
    router.layer(middleware::from_fn_with_state(limits, limit_request))
}

fn governor_config(
    per_minute: u32,
    proxies: IpNets,
) -> Option<GovernorConfig<ClientIp, NoOpMiddleware>> {
    if per_minute == 0 {
        return None;
    }
    GovernorConfigBuilder::default()
        .period(Duration::from_secs(60) / per_minute)
        .burst_size(per_minute)
        .key_extractor(ClientIp(Arc::new(proxies)))
        .finish()
}

/// The limiter keeps a cell per address it has seen; drop the ones that are full again
/// once a minute, from a thread that ends with the limiter.
fn forget_idle_clients(config: &Arc<GovernorConfig<ClientIp, NoOpMiddleware>>) {
    let weak = Arc::downgrade(config.limiter());
    let spawned = std::thread::Builder::new()
        .name("rate-limit-gc".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_secs(60));
            match weak.upgrade() {
                Some(limiter) => limiter.retain_recent(),
                None => return,
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "rate limiter clean-up thread did not start");
    }
}

async fn limit_request(State(limits): State<RateLimit>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let limited = match *req.method() {
        Method::POST => route.is_some_and(|p| RATE_LIMITED_ROUTES.contains(&p)),
        Method::GET => route.is_some_and(|p| RATE_LIMITED_GETS.contains(&p)),
        _ => false,
    };
    if !limited {
        return next.run(req).await;
    }
    let layer = if req.uri().path().starts_with("/api/") {
        &limits.api
    } else {
        &limits.html
    };
    match layer.layer(next).oneshot(req).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    }
}

fn html_too_many(e: GovernorError) -> Response<Body> {
    match e {
        GovernorError::TooManyRequests { wait_time, .. } => PageError::TooManyRequests {
            retry_after_s: wait_time,
        }
        .into_response(),
        other => PageError::Internal(anyhow::anyhow!("rate limiter: {other}")).into_response(),
    }
}

fn api_too_many(e: GovernorError) -> Response<Body> {
    let GovernorError::TooManyRequests { wait_time, .. } = e else {
        tracing::error!(error = %e, "rate limiter");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let body = serde_json::json!({
        "type": "urn:avvik:problem:too-many-requests",
        "title": "Too many requests",
        "status": 429,
        "detail": format!("too many requests from this address; retry in {} s", wait_time.max(1)),
        "detail_sv": "För många förfrågningar från din adress. Vänta en stund och försök igen.",
    });
    let mut resp = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    headers.insert(header::RETRY_AFTER, HeaderValue::from(wait_time.max(1)));
    resp
}

/// The client's address as the rate limiter sees it ([`IpNets::client_ip`] over the TCP
/// peer and `http.trusted_proxies`), for handlers: the login's back-off is per account
/// and this address. Without connection info (a router driven directly) it is the
/// unspecified address.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

impl axum::extract::FromRequestParts<super::AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &super::AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map(|c| c.ip())
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        let proxies = IpNets::parse(&state.config.http.trusted_proxies).unwrap_or_default();
        Ok(ClientAddr(proxies.client_ip(peer, &parts.headers)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    #[test]
    fn zero_turns_the_limit_off_and_n_allows_n_at_once() {
        assert!(governor_config(0, IpNets::default()).is_none());
        let c = governor_config(3, IpNets::default()).unwrap();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            assert!(c.limiter().check_key(&ip).is_ok());
        }
        assert!(c.limiter().check_key(&ip).is_err());
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(c.limiter().check_key(&other).is_ok(), "per address");
    }

    fn headers(xff: &[&str]) -> axum::http::HeaderMap {
        let mut h = axum::http::HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let p = IpNets::parse(&["10.0.0.0/8".into(), "2001:db8::1".into()]).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // An untrusted peer cannot pick its own key.
        assert_eq!(
            p.client_ip(ip("192.0.2.7"), &headers(&["198.51.100.1"])),
            ip("192.0.2.7")
        );
        // A trusted proxy: the right-most address it did not add itself.
        assert_eq!(
            p.client_ip(ip("10.1.2.3"), &headers(&["198.51.100.1"])),
            ip("198.51.100.1")
        );
        // The client's own (forgeable) entries on the left are ignored; chained proxies skipped.
        assert_eq!(
            p.client_ip(
                ip("10.1.2.3"),
                &headers(&["1.1.1.1, 203.0.113.9", "10.9.9.9"])
            ),
            ip("203.0.113.9")
        );
        assert_eq!(
            p.client_ip(ip("::ffff:10.0.0.1"), &headers(&["203.0.113.9"])),
            ip("203.0.113.9")
        );
        assert_eq!(
            p.client_ip(ip("2001:db8::1"), &headers(&["2001:db8::77"])),
            ip("2001:db8::77")
        );
        // Garbage or no header: the proxy itself.
        assert_eq!(
            p.client_ip(ip("10.1.2.3"), &headers(&["unknown"])),
            ip("10.1.2.3")
        );
        assert_eq!(p.client_ip(ip("10.1.2.3"), &headers(&[])), ip("10.1.2.3"));
        assert!(!p.contains(ip("11.0.0.1")));
        assert!(IpNets::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(IpNets::parse(&["proxy.example".into()]).is_err());
        assert!(IpNets::parse(&["10.0.0.0/12".into()])
            .unwrap()
            .contains(ip("10.15.255.255")));
        assert!(!IpNets::parse(&["10.0.0.0/12".into()])
            .unwrap()
            .contains(ip("10.16.0.0")));
    }
}
