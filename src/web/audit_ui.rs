//! `/audit`: the auditor's pages over the same folds as `/api/v1/audit`.

use super::Routes;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::NaiveDateTime;
use chrono_tz::Europe::Stockholm;
use serde::Deserialize;

use super::access_log::seen_page;
use super::pages::{render, stockholm_display, Layout, PageError};
use super::staff::staff_nav;
use super::AppState;
use crate::access_log::AccessKind;
use crate::auth::{authorize, Action, Principal, Staff};
use crate::domain::Reference;
use crate::register::{AsOf, Register};

pub fn router() -> Routes {
    Routes::new()
        .get("/audit", index)
        .get("/audit/register", register)
        .get("/audit/deviations/{reference}", history)
        .get("/audit/changes", changes)
        .get("/audit/accounts", accounts)
        .get("/audit/recipients", recipients)
}

fn require(who: &Principal) -> Result<(), PageError> {
    if authorize(who, Action::ViewAudit, None) {
        Ok(())
    } else {
        Err(PageError::Forbidden)
    }
}

fn layout(who: &Principal, title: &str) -> Layout {
    let mut l = Layout::staff(title.to_string(), staff_nav(who, "/audit"));
    l.area = super::pages::Area::Audit;
    l
}

/// A moment as people type it: `seq:N`, a Stockholm local time `YYYY-MM-DDTHH:MM`
/// (or with a space), or RFC 3339.
fn parse_point(s: &str) -> Option<AsOf> {
    let s = s.trim();
    if let Some(a) = AsOf::parse(s) {
        return Some(a);
    }
    for fmt in [
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, fmt) {
            return n
                .and_local_timezone(Stockholm)
                .earliest()
                .map(|t| AsOf::Time(t.with_timezone(&chrono::Utc)));
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        // A date alone means the end of that day.
        let end = d.and_hms_opt(23, 59, 59)?;
        return end
            .and_local_timezone(Stockholm)
            .latest()
            .map(|t| AsOf::Time(t.with_timezone(&chrono::Utc)));
    }
    None
}

const BAD_POINT: &str =
    "Tidpunkten kunde inte tolkas. Ange till exempel 2026-03-01T12:00 eller seq:120.";

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, avvik_events::StoreError> + Send + 'static,
) -> Result<T, PageError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PageError::Internal(e.into()))?
        .map_err(|e| PageError::Internal(e.into()))
}

/// Resolves an optional typed point (empty: now) and folds the register there.
async fn fold_at(
    state: &AppState,
    text: Option<&str>,
) -> Result<(u64, Register, String, Option<String>), PageError> {
    let text = text.map(str::trim).filter(|s| !s.is_empty());
    let (point, error) = match text {
        None => (AsOf::Seq(u64::MAX), None),
        Some(t) => match parse_point(t) {
            Some(p) => (p, None),
            None => (AsOf::Seq(u64::MAX), Some(BAD_POINT.to_string())),
        },
    };
    let when = match (text, &error) {
        (Some(t), None) => format!("per {t}"),
        _ => "nu".to_string(),
    };
    let store = state.services.store.clone();
    let keys = state.services.keys.clone();
    let (seq, reg) = blocking(move || {
        let seq = point.resolve(store.as_ref())?;
        Ok((seq, Register::fold(store.as_ref(), &keys, seq)?))
    })
    .await?;
    Ok((seq, reg, when, error))
}

#[derive(Template)]
#[template(path = "audit/index.html")]
struct IndexPage {
    layout: Layout,
    verify: avvik_events::VerifyReport,
}

async fn index(State(state): State<AppState>, Staff(who): Staff) -> Result<Response, PageError> {
    require(&who)?;
    let store = state.services.store.clone();
    let verify = blocking(move || store.verify()).await?;
    let page = IndexPage {
        layout: layout(&who, "Granskning"),
        verify,
    };
    Ok(render(StatusCode::OK, &page))
}

#[derive(Deserialize, Default)]
struct AsOfQuery {
    as_of: Option<String>,
}

#[derive(Template)]
#[template(path = "audit/register.html")]
struct RegisterPage {
    layout: Layout,
    when: String,
    seq: u64,
    error: Option<String>,
    items: Vec<(
        String,
        String,
        &'static str,
        &'static str,
        String,
        usize,
        usize,
    )>,
}

async fn register(
    State(state): State<AppState>,
    Staff(who): Staff,
    Query(q): Query<AsOfQuery>,
) -> Result<Response, PageError> {
    require(&who)?;
    let (seq, reg, when, error) = fold_at(&state, q.as_of.as_deref()).await?;
    seen_page(
        &state.access_log,
        &who.actor(),
        AccessKind::AuditRegister,
        None,
    )
    .await?;
    let items = reg
        .list()
        .into_iter()
        .map(|d| {
            (
                d.reference.to_string(),
                d.title.clone(),
                d.status.label_sv(),
                d.severity.map(|s| s.label_sv()).unwrap_or("ej klassad"),
                d.category.clone().unwrap_or_default(),
                d.decisions.len(),
                d.measures.len(),
            )
        })
        .collect();
    let page = RegisterPage {
        layout: layout(&who, "Registret vid en tidpunkt").with_errors(error.is_some()),
        when,
        seq,
        error,
        items,
    };
    Ok(render(StatusCode::OK, &page))
}

struct Step {
    seq: u64,
    at: String,
    actor: String,
    event_type: String,
    data: String,
    prev: String,
    hash: String,
    state: String,
}

#[derive(Template)]
#[template(path = "audit/history.html")]
struct HistoryPage {
    layout: Layout,
    reference: String,
    steps: Vec<Step>,
}

async fn history(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path(reference): Path<String>,
) -> Result<Response, PageError> {
    require(&who)?;
    let r = Reference::parse(&reference).ok_or(PageError::NotFound)?;
    let d = state
        .services
        .register
        .read()
        .by_reference(r)
        .cloned()
        .ok_or(PageError::NotFound)?;
    let id = d.id;
    let store = state.services.store.clone();
    let keys = state.services.keys.clone();
    let steps = blocking(move || crate::audit::history(store.as_ref(), &keys, id)).await?;
    seen_page(
        &state.access_log,
        &who.actor(),
        AccessKind::History,
        Some(&d),
    )
    .await?;
    let steps = steps
        .into_iter()
        .map(|s| Step {
            seq: s.seq,
            at: chrono::DateTime::parse_from_rfc3339(&s.at)
                .map(|t| stockholm_display(t.with_timezone(&chrono::Utc)))
                .unwrap_or(s.at),
            actor: s.actor,
            event_type: s.event_type,
            data: serde_json::to_string_pretty(&s.data).unwrap_or_default(),
            prev: s.prev,
            hash: s.hash,
            state: s
                .state
                .map(|d| {
                    format!(
                        "{}, {}{}",
                        d.status.label_sv(),
                        d.severity
                            .map(|s| format!("{} avvikelse", s.label_sv()))
                            .unwrap_or_else(|| "ej klassad".into()),
                        if d.decisions.is_empty() {
                            String::new()
                        } else {
                            format!(", {} beslut", d.decisions.len())
                        }
                    )
                })
                .unwrap_or_default(),
        })
        .collect();
    let page = HistoryPage {
        layout: layout(&who, &format!("Historik {r}")),
        reference: r.to_string(),
        steps,
    };
    Ok(render(StatusCode::OK, &page))
}

#[derive(Deserialize, Default)]
struct ChangesQuery {
    from: Option<String>,
    to: Option<String>,
}

struct ChangeView {
    reference: String,
    title: String,
    kinds: String,
    fields: Vec<(String, String, String)>,
}

#[derive(Template)]
#[template(path = "audit/changes.html")]
struct ChangesPage {
    layout: Layout,
    error: Option<String>,
    from_seq: u64,
    to_seq: u64,
    changes: Vec<ChangeView>,
}

fn kind_sv(k: &str) -> &'static str {
    match k {
        "added" => "ny",
        "classified" => "klassad",
        "reclassified" => "omklassad",
        "decided" => "beslut",
        "measures" => "åtgärder",
        "commented" => "kommentar",
        "filed" => "anmälan",
        "closed" => "avslutad",
        "reopened" => "återöppnad",
        _ => "status",
    }
}

fn short(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "–".into(),
        serde_json::Value::String(s) => s.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

async fn changes(
    State(state): State<AppState>,
    Staff(who): Staff,
    Query(q): Query<ChangesQuery>,
) -> Result<Response, PageError> {
    require(&who)?;
    let from = q
        .from
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .and_then(parse_point);
    let to_text = q.to.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let to = match to_text {
        None => Some(AsOf::Seq(u64::MAX)),
        Some(t) => parse_point(t),
    };
    let (Some(from), Some(to)) = (from, to) else {
        let page = ChangesPage {
            layout: layout(&who, "Ändringar").with_errors(true),
            error: Some(BAD_POINT.into()),
            from_seq: 0,
            to_seq: 0,
            changes: Vec::new(),
        };
        return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page));
    };
    let store = state.services.store.clone();
    let keys = state.services.keys.clone();
    let result = blocking(move || {
        let a = from.resolve(store.as_ref())?;
        let b = to.resolve(store.as_ref())?;
        let (a, b) = (a.min(b), a.max(b));
        Ok(crate::audit::changes(
            &Register::fold(store.as_ref(), &keys, a)?,
            &Register::fold(store.as_ref(), &keys, b)?,
        ))
    })
    .await?;
    // Two registers as of moments, field by field: read like the as-of register.
    seen_page(
        &state.access_log,
        &who.actor(),
        AccessKind::AuditRegister,
        None,
    )
    .await?;
    let page = ChangesPage {
        layout: layout(&who, "Ändringar"),
        error: None,
        from_seq: result.from_seq,
        to_seq: result.to_seq,
        changes: result
            .changes
            .into_iter()
            .map(|c| ChangeView {
                reference: c.reference,
                title: c.title,
                kinds: c
                    .kinds
                    .iter()
                    .map(|k| kind_sv(k))
                    .collect::<Vec<_>>()
                    .join(", "),
                fields: c
                    .fields
                    .iter()
                    .map(|f| (f.field.clone(), short(&f.before), short(&f.after)))
                    .collect(),
            })
            .collect(),
    };
    Ok(render(StatusCode::OK, &page))
}

#[derive(Template)]
#[template(path = "audit/accounts.html")]
struct AccountsPage {
    layout: Layout,
    when: String,
    seq: u64,
    error: Option<String>,
    accounts: Vec<(String, String, String, &'static str)>,
}

async fn accounts(
    State(state): State<AppState>,
    Staff(who): Staff,
    Query(q): Query<AsOfQuery>,
) -> Result<Response, PageError> {
    require(&who)?;
    let (seq, reg, when, error) = fold_at(&state, q.as_of.as_deref()).await?;
    let accounts = crate::audit::accounts(&reg)
        .into_iter()
        .map(|a| {
            let roles: Vec<String> = a
                .roles
                .iter()
                .map(|g| {
                    if g.sectors.is_empty() {
                        g.role.label_sv().to_string()
                    } else {
                        format!("{} ({})", g.role.label_sv(), g.sectors.join(", "))
                    }
                })
                .collect();
            (
                a.email,
                a.name,
                roles.join(", "),
                if a.disabled { "avstängt" } else { "aktivt" },
            )
        })
        .collect();
    let page = AccountsPage {
        layout: layout(&who, "Konton och roller").with_errors(error.is_some()),
        when,
        seq,
        error,
        accounts,
    };
    Ok(render(StatusCode::OK, &page))
}

#[derive(Template)]
#[template(path = "audit/recipients.html")]
struct RecipientsPage {
    layout: Layout,
    when: String,
    seq: u64,
    error: Option<String>,
    /// Whether the lists were events then (before that, the configuration applied).
    recorded: bool,
    /// (list, addresses)
    lists: Vec<(String, String)>,
    /// (seq, time, actor, event type)
    changes: Vec<(u64, String, String, String)>,
}

/// The recipient lists as they stood at a moment, and the changes up to it.
async fn recipients(
    State(state): State<AppState>,
    Staff(who): Staff,
    Query(q): Query<AsOfQuery>,
) -> Result<Response, PageError> {
    use crate::domain::recipients::RecipientGroup;
    require(&who)?;
    let text = q.as_of.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let (point, error) = match text {
        None => (AsOf::Seq(u64::MAX), None),
        Some(t) => match parse_point(t) {
            Some(p) => (p, None),
            None => (AsOf::Seq(u64::MAX), Some(BAD_POINT.to_string())),
        },
    };
    let when = match (text, &error) {
        (Some(t), None) => format!("per {t}"),
        _ => "nu".to_string(),
    };
    let store = state.services.store.clone();
    let (seq, (r, _, records)) = blocking(move || {
        let seq = point.resolve(store.as_ref())?;
        Ok((
            seq,
            crate::notify::recipients::load(store.as_ref(), Some(seq))?,
        ))
    })
    .await?;
    let mut lists: Vec<(String, String)> = [
        RecipientGroup::Ciso,
        RecipientGroup::Dataskyddsombud,
        RecipientGroup::Ledningsgrupp,
        RecipientGroup::Kommunstyrelsen,
    ]
    .into_iter()
    .map(|g| (g.label_sv().to_string(), r.lists.get(g, None).join(", ")))
    .collect();
    for (sector, a) in &r.lists.kontakt {
        lists.push((
            format!("{} ({sector})", RecipientGroup::Kontakt.label_sv()),
            a.join(", "),
        ));
    }
    let changes = records
        .iter()
        .map(|rec| {
            (
                rec.seq,
                stockholm_display(rec.at),
                rec.actor.clone(),
                rec.event_type.clone(),
            )
        })
        .collect();
    let page = RecipientsPage {
        layout: layout(&who, "Mottagare av utskick").with_errors(error.is_some()),
        when,
        seq,
        error,
        recorded: r.recorded,
        lists,
        changes,
    };
    Ok(render(StatusCode::OK, &page))
}
