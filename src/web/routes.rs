//! The route table: every area registers its routes through `Routes`, which records each
//! (method, path template) as it hands the route to axum. The served router and the list
//! come out of the same value, so the list cannot miss a route (axum's `Router` cannot
//! list its own routes). `architecture_tests` keeps routes from being added any other way.

use std::convert::Infallible;

use axum::extract::Request;
use axum::handler::Handler;
use axum::http::Method;
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, Route};
use axum::Router;
use tower::{Layer, Service};

use super::AppState;

/// The path the fallback is listed under: any path no route matches, any method.
pub const FALLBACK: &str = "*";

/// One route the service serves.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServedRoute {
    pub method: Method,
    /// The path template as axum matches it (`/staff/deviations/{reference}`), or
    /// `FALLBACK`.
    pub path: String,
}

impl std::fmt::Display for ServedRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// A router together with the list of what it serves.
#[derive(Default)]
#[must_use]
pub struct Routes {
    router: Router<AppState>,
    served: Vec<ServedRoute>,
}

impl Routes {
    pub fn new() -> Self {
        Self::default()
    }

    fn add(mut self, method: Method, path: &'static str, route: MethodRouter<AppState>) -> Self {
        self.served.push(ServedRoute {
            method,
            path: path.to_string(),
        });
        // axum merges a second registration of the same path into the first.
        self.router = self.router.route(path, route);
        self
    }

    /// `GET` (axum answers `HEAD` from it too).
    pub fn get<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(Method::GET, path, axum::routing::get(handler))
    }

    pub fn post<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(Method::POST, path, axum::routing::post(handler))
    }

    /// The routes of a router whose routes are all in `doc` (utoipa-axum's
    /// `OpenApiRouter::split_for_parts`: the same `routes!` calls made both).
    pub fn documented(router: Router<AppState>, doc: &utoipa::openapi::OpenApi) -> Self {
        let mut served = Vec::new();
        for (path, item) in &doc.paths.paths {
            let operations = [
                (Method::GET, &item.get),
                (Method::PUT, &item.put),
                (Method::POST, &item.post),
                (Method::DELETE, &item.delete),
                (Method::OPTIONS, &item.options),
                (Method::HEAD, &item.head),
                (Method::PATCH, &item.patch),
                (Method::TRACE, &item.trace),
            ];
            for (method, op) in operations {
                if op.is_some() {
                    served.push(ServedRoute {
                        method,
                        path: path.clone(),
                    });
                }
            }
        }
        Self { router, served }
    }

    pub fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        self.served.extend(other.served);
        self
    }

    /// What answers when no route matches (axum's fallback), listed as `FALLBACK`.
    pub fn unmatched<H, T>(mut self, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.router = self.router.fallback(handler);
        self.served.push(ServedRoute {
            method: Method::GET,
            path: FALLBACK.to_string(),
        });
        self
    }

    /// A layer over the routes so far (as `Router::layer`).
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<Route> + Clone + Send + Sync + 'static,
        L::Service: Service<Request> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request>>::Response: IntoResponse + 'static,
        <L::Service as Service<Request>>::Error: Into<Infallible> + 'static,
        <L::Service as Service<Request>>::Future: Send + 'static,
    {
        self.router = self.router.layer(layer);
        self
    }

    /// Every route, sorted by path, then method.
    pub fn served(&self) -> Vec<ServedRoute> {
        let mut all = self.served.clone();
        all.sort_by(|a, b| (&a.path, a.method.as_str()).cmp(&(&b.path, b.method.as_str())));
        all
    }

    pub fn into_router(self) -> Router<AppState> {
        self.router
    }
}
