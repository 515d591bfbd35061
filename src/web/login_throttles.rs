//! `/staff/security/logins`: for the CISO, the accounts whose password login is being
//! slowed down after failed attempts, and from which addresses (`auth::throttle`).

use super::Routes;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::pages::{render, stockholm_display, Layout, PageError};
use super::staff::staff_nav;
use super::AppState;
use crate::auth::{authorize, Action, Staff};

pub const PATH: &str = "/staff/security/logins";

pub fn router() -> Routes {
    Routes::new().get(PATH, page)
}

struct Row {
    account: String,
    address: String,
    failures: u32,
    last_failure: String,
    until: String,
    waiting: bool,
}

#[derive(Template)]
#[template(path = "staff/login_throttles.html")]
struct ThrottlesPage {
    layout: Layout,
    rows: Vec<Row>,
}

async fn page(State(state): State<AppState>, Staff(who): Staff) -> Result<Response, PageError> {
    if !authorize(&who, Action::ViewLoginThrottles, None) {
        return Err(PageError::Forbidden);
    }
    let now = state.services.clock.now();
    let rows = state
        .login_guard
        .throttled(now)
        .into_iter()
        .map(|t| Row {
            account: t.account,
            address: t.address.to_string(),
            failures: t.failures,
            last_failure: stockholm_display(t.last_failure),
            until: stockholm_display(t.until),
            waiting: t.until > now,
        })
        .collect();
    let page = ThrottlesPage {
        layout: Layout::staff("Spärrade inloggningar", staff_nav(&who, PATH)),
        rows,
    };
    Ok(render(StatusCode::OK, &page))
}
