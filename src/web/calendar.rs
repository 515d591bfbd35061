//! `/calendar/{token}.ics`: a staff member's personal calendar feed, behind a secret URL
//! (created and revoked on their own account page, `web::own_account`). The token is the
//! only credential, so every fetch looks the account up anew: a revoked link, a disabled
//! account or a revoked role changes the answer at once. An unknown, revoked or malformed
//! token gets the same 404 page, and fetches count against the per-IP rate limit.
//!
//! Each fetch is recorded in the läslogg (one entry, about no single deviation) before the
//! feed is sent: it holds no content beyond references, deadline kinds and dates, but a
//! link that leaked must show up there.

use super::Routes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::access_log::seen_page;
use super::pages::PageError;
use super::AppState;
use crate::access_log::AccessKind;
use crate::auth::Principal;

/// The feed's route template.
pub const ROUTE: &str = "/calendar/{file}";

pub fn router() -> Routes {
    Routes::new().get(ROUTE, feed)
}

/// The path of a feed, for the account page.
pub fn feed_path(token: &str) -> String {
    format!("/calendar/{token}.ics")
}

/// A token as `create_calendar_feed` makes them: 64 hex digits.
fn token_of(file: &str) -> Option<&str> {
    let token = file.strip_suffix(".ics")?;
    (token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())).then_some(token)
}

async fn feed(
    State(state): State<AppState>,
    Path(file): Path<String>,
) -> Result<Response, PageError> {
    let Some(token) = token_of(&file) else {
        return Err(PageError::NotFound);
    };
    let svc = &state.services;
    if !svc.register.is_ready() {
        return Err(PageError::Unavailable(
            "the register is being rebuilt".into(),
        ));
    }
    let head = svc.store.head().seq;
    svc.register
        .wait_for(head, std::time::Duration::from_secs(5))
        .await;
    let hash = avvik_events::hash_hex(token.to_ascii_lowercase().as_bytes());
    let (who, entries) = {
        let reg = svc.register.read();
        let Some((account, _feed)) = reg.accounts.by_calendar_hash(&hash) else {
            return Err(PageError::NotFound);
        };
        let who = Principal::from_account(account);
        let entries = crate::calendar::entries(&who, reg.list());
        (who, entries)
    };
    seen_page(
        &state.access_log,
        &who.actor(),
        AccessKind::CalendarFeed {
            entries: entries.len(),
        },
        None,
    )
    .await?;
    metrics::counter!("avvik_calendar_fetches_total").increment(1);
    let body = crate::calendar::render(&entries, &state.config.http.base_url);
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "inline; filename=\"avvik.ics\"",
            ),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_tokens_are_looked_up() {
        let t = "ab".repeat(32);
        assert_eq!(token_of(&format!("{t}.ics")), Some(t.as_str()));
        assert_eq!(token_of(&t), None);
        assert_eq!(token_of(&format!("{}.ics", "zz".repeat(32))), None);
        assert_eq!(token_of("ab.ics"), None);
        assert_eq!(feed_path(&t), format!("/calendar/{t}.ics"));
    }
}
