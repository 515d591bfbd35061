//! The staff web UI under `/staff`: login, the register, a deviation with its timeline
//! and a form for each action the user may take. Every action goes through the same
//! parsing as the JSON API (`commands`) and the same authorization function.

mod actions;
mod deviation;
mod filings;
mod login;
mod sso;

pub(crate) use login::completed_session;
pub use login::safe_next;
mod quarantine;
mod register;
mod timeline;

pub(crate) use deviation::case_pdf;
pub(crate) use register::{sort_register, DEFAULT_SORT};

use crate::web::Routes;

use super::pages::NavLink;
use crate::auth::{authorize, Action, Principal};
use crate::domain::Status;

pub fn router() -> Routes {
    Routes::new()
        .merge(login::routes())
        .merge(sso::routes())
        .merge(register::routes())
        .merge(deviation::routes())
        .merge(quarantine::routes())
        .merge(actions::routes())
        .merge(filings::routes())
}

/// The header navigation for a signed-in user: only what their roles open.
pub fn staff_nav(who: &Principal, current: &str) -> Vec<NavLink> {
    let mut links = Vec::new();
    let mut add = |href: &str, label: &str| {
        links.push(NavLink {
            href: href.to_string(),
            label: label.to_string(),
            current: current == href,
        })
    };
    if authorize(who, Action::ListDeviations, None) {
        add("/staff", "Avvikelser");
        add("/staff?mine=1", "Mina ärenden");
    }
    if authorize(who, Action::ViewReports, None) {
        add("/staff/reports", "Årsrapport");
    }
    if authorize(who, Action::ViewAudit, None) {
        add("/audit", "Granskning");
    }
    if authorize(who, Action::ViewRetention, None) {
        add(crate::web::privacy::RETENTION_PATH, "Gallring");
    }
    if authorize(who, Action::RegisterExtract, None) {
        add(crate::web::privacy::EXTRACT_PATH, "Registerutdrag");
    }
    if authorize(who, Action::HandleQuarantine, None) {
        add("/staff/intake/quarantine", "E-postkarantän");
    }
    if authorize(who, Action::ViewLoginThrottles, None) {
        add(crate::web::login_throttles::PATH, "Spärrade inloggningar");
    }
    if authorize(who, Action::ManageAccounts, None) {
        add("/staff/admin", "Konton");
    }
    add(crate::web::own_account::PATH, "Mitt konto");
    add("/staff/logout", "Logga ut");
    links
}

/// The header navigation while an account must add a second factor: only that page and
/// signing out are open.
pub fn enrolment_nav(current: &str) -> Vec<NavLink> {
    [
        (crate::web::own_account::PATH, "Mitt konto"),
        ("/staff/logout", "Logga ut"),
    ]
    .into_iter()
    .map(|(href, label)| NavLink {
        href: href.to_string(),
        label: label.to_string(),
        current: current == href,
    })
    .collect()
}

/// The CSS class of a status badge.
fn status_class(s: Status) -> &'static str {
    match s {
        Status::Received => "received",
        Status::Investigating => "investigating",
        Status::Closed => "closed",
    }
}
