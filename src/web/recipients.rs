//! The recipient lists: the admin's page (`/staff/admin/recipients`), the JSON API
//! (`/api/v1/recipients`), and the banner every staff page shows while a list escalation
//! needs is empty.

use std::collections::HashMap;

use super::Routes;
use askama::Template;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use axum_csrf::CsrfToken;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::csrf::{form_token, CsrfForm};
use super::error::{ApiError, FieldError};
use super::openapi::Problem;
use super::pages::{render, stockholm_display, FormErrors, Layout, PageError};
use super::staff::staff_nav;
use super::AppState;
use crate::auth::{authorize, Action, Principal, Staff};
use crate::domain::recipients::{
    normalise, split_addresses, RecipientGroup, RecipientLists, RecipientsError, RecipientsEvent,
};
use crate::notify::recipients::{load, set_list, RecipientsWriteError};

pub fn router() -> Routes {
    Routes::new()
        .get("/staff/admin/recipients", page)
        .post("/staff/admin/recipients", save)
}

pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_lists, put_lists))
}

/// Sets the empty required lists for the request, for `Layout::staff`.
pub async fn banner(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if !(path.starts_with("/staff") || path.starts_with("/audit")) {
        return next.run(req).await;
    }
    let missing: Vec<&'static str> = state
        .notify
        .recipient_lists()
        .missing()
        .into_iter()
        .map(RecipientGroup::label_sv)
        .collect();
    super::pages::MISSING_RECIPIENTS
        .scope(missing, next.run(req))
        .await
}

fn require_admin(who: &Principal) -> bool {
    authorize(who, Action::ManageAccounts, None)
}

/// One list on the page: its form field, label and the addresses one a line.
struct ListRow {
    field: String,
    label: String,
    required: bool,
    value: String,
}

struct ChangeRow {
    at: String,
    actor: String,
    what: String,
}

#[derive(Template)]
#[template(path = "staff/recipients.html")]
struct RecipientsPage {
    layout: Layout,
    csrf: String,
    lists: Vec<ListRow>,
    changes: Vec<ChangeRow>,
    errors: FormErrors,
    saved: bool,
}

/// Every list the page edits: the four role lists and one kontakt list per sector.
fn fields(state: &AppState) -> Vec<(String, String, RecipientGroup, Option<String>)> {
    let mut out: Vec<_> = [
        RecipientGroup::Ciso,
        RecipientGroup::Dataskyddsombud,
        RecipientGroup::Ledningsgrupp,
        RecipientGroup::Kommunstyrelsen,
    ]
    .into_iter()
    .map(|g| (g.key().to_string(), g.label_sv().to_string(), g, None))
    .collect();
    for (i, s) in state.config.report.sectors.iter().enumerate() {
        out.push((
            format!("kontakt_{i}"),
            format!("Informationssäkerhetskontakt, {s}"),
            RecipientGroup::Kontakt,
            Some(s.clone()),
        ));
    }
    out
}

fn describe_change(ev: &RecipientsEvent) -> String {
    match ev {
        RecipientsEvent::Seeded(_) => "Listorna hämtades från konfigurationen".into(),
        RecipientsEvent::Changed(c) => {
            let mut what = c.group.label_sv().to_string();
            if let Some(s) = &c.sector {
                what.push_str(&format!(" ({s})"));
            }
            if !c.added.is_empty() {
                what.push_str(&format!(": tillagd {}", c.added.join(", ")));
            }
            if !c.removed.is_empty() {
                what.push_str(&format!(": borttagen {}", c.removed.join(", ")));
            }
            what
        }
    }
}

async fn view(
    state: &AppState,
    who: &Principal,
    csrf: String,
    values: Option<HashMap<String, String>>,
    errors: FormErrors,
    saved: bool,
) -> Result<RecipientsPage, PageError> {
    let store = state.services.store.clone();
    let (current, _, records) = tokio::task::spawn_blocking(move || load(store.as_ref(), None))
        .await
        .map_err(|e| PageError::Internal(e.into()))?
        .map_err(|e| PageError::Internal(e.into()))?;
    let lists = if current.recorded {
        current.lists
    } else {
        state.notify.recipient_lists()
    };
    let rows = fields(state)
        .into_iter()
        .map(|(field, label, g, sector)| ListRow {
            value: values
                .as_ref()
                .and_then(|v| v.get(&field).cloned())
                .unwrap_or_else(|| lists.get(g, sector.as_deref()).join("\n")),
            required: RecipientGroup::REQUIRED.contains(&g),
            field,
            label,
        })
        .collect();
    let changes = records
        .iter()
        .rev()
        .filter_map(|r| {
            let ev = RecipientsEvent::from_parts(&r.event_type, &r.data)?.ok()?;
            Some(ChangeRow {
                at: stockholm_display(r.at),
                actor: r.actor.clone(),
                what: describe_change(&ev),
            })
        })
        .collect();
    Ok(RecipientsPage {
        layout: Layout::staff("Mottagare av utskick", staff_nav(who, "/staff/admin"))
            .with_errors(!errors.is_empty()),
        csrf,
        lists: rows,
        changes,
        errors,
        saved,
    })
}

#[derive(Deserialize, Default)]
struct Flash {
    sparat: Option<String>,
}

async fn page(
    State(state): State<AppState>,
    Staff(who): Staff,
    csrf: CsrfToken,
    Query(f): Query<Flash>,
) -> Result<Response, PageError> {
    if !require_admin(&who) {
        return Err(PageError::Forbidden);
    }
    let page = view(
        &state,
        &who,
        form_token(&csrf)?,
        None,
        FormErrors::default(),
        f.sparat.is_some(),
    )
    .await?;
    Ok((csrf, render(StatusCode::OK, &page)).into_response())
}

/// Writes every list that differs from what is stored; nothing when any list is invalid.
async fn apply(
    state: &AppState,
    wanted: Vec<(String, RecipientGroup, Option<String>, Vec<String>)>,
    actor: &str,
) -> Result<u64, Result<Vec<FieldError>, RecipientsWriteError>> {
    let mut errors = Vec::new();
    for (field, _, _, addresses) in &wanted {
        if let Err(e) = normalise(addresses) {
            errors.push(FieldError::new(field, &e.to_string(), &e.message_sv()));
        }
    }
    if !errors.is_empty() {
        return Err(Ok(errors));
    }
    let now = state.services.clock.now();
    let mut last = 0;
    for (field, group, sector, addresses) in wanted {
        match set_list(
            &state.services.store,
            &state.config,
            group,
            sector,
            addresses,
            actor,
            now,
        )
        .await
        {
            Ok(seq) => last = last.max(seq.unwrap_or(0)),
            Err(RecipientsWriteError::Invalid(e)) => {
                return Err(Ok(vec![FieldError::new(
                    &field,
                    &e.to_string(),
                    &e.message_sv(),
                )]))
            }
            Err(e) => return Err(Err(e)),
        }
    }
    if last > 0 {
        // The banner and the next page show the new lists.
        state.notify.wait_for(last).await;
    }
    Ok(last)
}

async fn save(
    State(state): State<AppState>,
    Staff(who): Staff,
    CsrfForm { csrf, form }: CsrfForm<Map<String, Value>>,
) -> Result<Response, PageError> {
    if !require_admin(&who) {
        return Err(PageError::Forbidden);
    }
    let text = |k: &str| {
        form.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let fields = fields(&state);
    let wanted = fields
        .iter()
        .map(|(field, _, g, sector)| {
            (
                field.clone(),
                *g,
                sector.clone(),
                split_addresses(&text(field)),
            )
        })
        .collect();
    match apply(&state, wanted, &who.actor()).await {
        Ok(_) => Ok(Redirect::to("/staff/admin/recipients?sparat=1").into_response()),
        Err(Ok(errors)) => {
            let labels: Vec<(&str, &str)> = fields
                .iter()
                .map(|(f, l, _, _)| (f.as_str(), l.as_str()))
                .collect();
            let values = fields.iter().map(|(f, ..)| (f.clone(), text(f))).collect();
            let page = view(
                &state,
                &who,
                form_token(&csrf)?,
                Some(values),
                FormErrors::new(&errors, &labels),
                false,
            )
            .await?;
            Ok((csrf, render(StatusCode::UNPROCESSABLE_ENTITY, &page)).into_response())
        }
        Err(Err(e)) => Err(PageError::Unavailable(e.to_string())),
    }
}

/// The lists and whether escalation can reach anyone.
#[derive(Serialize, ToSchema)]
pub struct RecipientsView {
    pub lists: RecipientLists,
    /// False while ciso, ledningsgrupp or kommunstyrelsen is empty.
    pub escalation_ready: bool,
    /// The required lists that are empty.
    pub missing: Vec<RecipientGroup>,
    /// E-mails that had nobody to go to and wait for an address.
    pub owed_notifications: usize,
}

fn current_view(state: &AppState) -> RecipientsView {
    let lists = state.notify.recipient_lists();
    let missing = lists.missing();
    RecipientsView {
        escalation_ready: missing.is_empty(),
        missing,
        owed_notifications: state.notify.owed_count(),
        lists,
    }
}

#[utoipa::path(get, path = "/api/v1/recipients", tag = "staff", security(("bearer" = [])),
    responses((status = 200, body = RecipientsView), (status = 401, body = Problem), (status = 403, body = Problem)))]
/// The recipient lists (admin).
async fn get_lists(
    State(state): State<AppState>,
    Staff(who): Staff,
) -> Result<Json<RecipientsView>, ApiError> {
    if !require_admin(&who) {
        return Err(ApiError::Forbidden);
    }
    Ok(Json(current_view(&state)))
}

#[utoipa::path(put, path = "/api/v1/recipients", tag = "staff", security(("bearer" = [])),
    request_body = RecipientLists,
    responses((status = 200, body = RecipientsView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
/// Replaces the recipient lists (admin). Each list that differs is one event; a kontakt
/// sector left out keeps its list only if it is in the body, so send every list you want.
async fn put_lists(
    State(state): State<AppState>,
    Staff(who): Staff,
    body: axum::body::Bytes,
) -> Result<Json<RecipientsView>, ApiError> {
    if !require_admin(&who) {
        return Err(ApiError::Forbidden);
    }
    let lists: RecipientLists = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("body is not a recipient list object: {e}")))?;
    let current = state.notify.recipient_lists();
    let mut wanted: Vec<(String, RecipientGroup, Option<String>, Vec<String>)> = [
        RecipientGroup::Ciso,
        RecipientGroup::Dataskyddsombud,
        RecipientGroup::Ledningsgrupp,
        RecipientGroup::Kommunstyrelsen,
    ]
    .into_iter()
    .map(|g| (g.key().to_string(), g, None, lists.get(g, None).to_vec()))
    .collect();
    let mut sectors: Vec<&String> = lists.kontakt.keys().collect();
    for s in current.kontakt.keys() {
        if !sectors.contains(&s) {
            sectors.push(s);
        }
    }
    for s in sectors {
        if !state.config.report.sectors.contains(s) {
            let e = RecipientsError::UnknownSector;
            return Err(ApiError::Validation(vec![FieldError::new(
                &format!("kontakt.{s}"),
                &e.to_string(),
                &e.message_sv(),
            )]));
        }
        wanted.push((
            format!("kontakt.{s}"),
            RecipientGroup::Kontakt,
            Some(s.clone()),
            lists.kontakt.get(s).cloned().unwrap_or_default(),
        ));
    }
    match apply(&state, wanted, &who.actor()).await {
        Ok(_) => Ok(Json(current_view(&state))),
        Err(Ok(errors)) => Err(ApiError::Validation(errors)),
        Err(Err(RecipientsWriteError::Store(e))) => Err(ApiError::Internal(e.into())),
        Err(Err(e)) => Err(ApiError::Internal(e.into())),
    }
}
