//! Cross-cutting HTTP protection: security headers on every response, request logging
//! that never writes a raw URI (status tokens live in paths), and the per-IP rate limit on
//! public state-changing routes (tower_governor).

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
use tower_governor::key_extractor::PeerIpKeyExtractor;
use tower_governor::{GovernorError, GovernorLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{MakeSpan, TraceLayer};

use super::pages::PageError;

pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// Routes whose POST counts against the per-IP limit (matched route templates). Add a
/// route here to limit it too (e.g. a login form).
pub const RATE_LIMITED_ROUTES: &[&str] =
    &["/", "/status/{token}", "/api/v1/deviations", "/staff/login"];

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
    router.layer(TraceLayer::new_for_http().make_span_with(RouteSpan))
}

type Limiter = GovernorLayer<PeerIpKeyExtractor, NoOpMiddleware, Body>;

/// The per-IP limit: one budget shared by every limited route, answered with a Swedish
/// page for forms and problem+json for the API.
#[derive(Clone)]
struct RateLimit {
    html: Limiter,
    api: Limiter,
}

/// Limits POSTs to `RATE_LIMITED_ROUTES` to `per_minute` per peer IP: that many at once,
/// then one more every 60/`per_minute` seconds. 0 leaves the router unlimited. The key is
/// the TCP peer address, so serve with `into_make_service_with_connect_info::<SocketAddr>`.
pub fn with_rate_limit<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    per_minute: u32,
) -> Router<S> {
    let Some(config) = governor_config(per_minute) else {
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

fn governor_config(per_minute: u32) -> Option<GovernorConfig<PeerIpKeyExtractor, NoOpMiddleware>> {
    if per_minute == 0 {
        return None;
    }
    GovernorConfigBuilder::default()
        .period(Duration::from_secs(60) / per_minute)
        .burst_size(per_minute)
        .key_extractor(PeerIpKeyExtractor)
        .finish()
}

/// The limiter keeps a cell per address it has seen; drop the ones that are full again
/// once a minute, from a thread that ends with the limiter.
fn forget_idle_clients(config: &Arc<GovernorConfig<PeerIpKeyExtractor, NoOpMiddleware>>) {
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
    let limited = req.method() == Method::POST
        && req
            .extensions()
            .get::<MatchedPath>()
            .is_some_and(|p| RATE_LIMITED_ROUTES.contains(&p.as_str()));
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    #[test]
    fn zero_turns_the_limit_off_and_n_allows_n_at_once() {
        assert!(governor_config(0).is_none());
        let c = governor_config(3).unwrap();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            assert!(c.limiter().check_key(&ip).is_ok());
        }
        assert!(c.limiter().check_key(&ip).is_err());
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(c.limiter().check_key(&other).is_ok(), "per address");
    }
}
