//! `/api/v1/audit`: read-only views for auditors. Folds over the log run off the async
//! threads; the export streams in chunks so memory does not grow with the log.

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::access_log::seen;
use super::error::{ApiError, FieldError};
use super::openapi::Problem;
use super::AppState;
use crate::access_log::AccessKind;
use crate::auth::{authorize, Action, Principal, Staff};
use crate::domain::Reference;
use crate::register::{AsOf, Register};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(events))
        .routes(routes!(verify))
        .routes(routes!(register_as_of))
        .routes(routes!(deviation_history))
        .routes(routes!(changes))
        .routes(routes!(accounts_as_of))
        .routes(routes!(recipients_as_of))
}

fn require(who: &Principal, action: Action) -> Result<(), ApiError> {
    if authorize(who, action, None) {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

fn parse_as_of(field: &str, value: Option<&str>) -> Result<Option<AsOf>, ApiError> {
    match value.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => AsOf::parse(s).map(Some).ok_or_else(|| {
            ApiError::Validation(vec![FieldError::new(
                field,
                "must be an RFC 3339 date-time or seq:N",
                "Ange en tidpunkt (till exempel 2026-03-01T12:00:00+01:00) eller seq:N.",
            )])
        }),
    }
}

/// Runs a read over the whole log off the async threads.
async fn on_store<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&dyn avvik_events::EventStore) -> Result<T, avvik_events::StoreError>
        + Send
        + 'static,
) -> Result<T, ApiError> {
    let store = state.services.store.clone();
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(|e| ApiError::Internal(e.into()))
}

/// Resolves a point (default: now) to a seq.
async fn resolve(state: &AppState, point: Option<AsOf>) -> Result<u64, ApiError> {
    let point = point.unwrap_or(AsOf::Seq(u64::MAX));
    on_store(state, move |store| point.resolve(store)).await
}

async fn fold(state: &AppState, seq: u64) -> Result<Register, ApiError> {
    let keys = state.services.keys.clone();
    on_store(state, move |store| Register::fold(store, &keys, seq)).await
}

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    from_seq: Option<u64>,
    to_seq: Option<u64>,
    from: Option<String>,
    to: Option<String>,
}

/// The log (all, or a seq or time range) as NDJSON of the stored bytes, streamed.
#[utoipa::path(get, path = "/api/v1/audit/events", tag = "audit", security(("bearer" = [])),
    params(("from_seq" = Option<u64>, Query), ("to_seq" = Option<u64>, Query),
           ("from" = Option<String>, Query, description = "RFC 3339: first record at or after"),
           ("to" = Option<String>, Query, description = "RFC 3339: last record at or before")),
    responses((status = 200, content_type = "application/x-ndjson", description = "One stored record per line; X-Avvik-Last-Seq and X-Avvik-Last-Hash name the last record"),
              (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn events(
    State(state): State<AppState>,
    Staff(who): Staff,
    Query(q): Query<EventsQuery>,
) -> Result<Response, ApiError> {
    require(&who, Action::ExportLog)?;
    let head = state.services.store.head().seq;
    let mut from = q.from_seq.unwrap_or(1).max(1);
    let mut to = q.to_seq.unwrap_or(head).min(head);
    if let Some(t) = parse_as_of("from", q.from.as_deref())? {
        // First record at or after `from`: one past the last record strictly before it.
        let before = match t {
            AsOf::Time(t) => AsOf::Time(t - chrono::Duration::microseconds(1)),
            seq => seq,
        };
        from = from.max(resolve(&state, Some(before)).await? + 1);
    }
    if let Some(t) = parse_as_of("to", q.to.as_deref())? {
        to = to.min(resolve(&state, Some(t)).await?);
    }
    seen(
        &state.access_log,
        &who.actor(),
        AccessKind::Export {
            from_seq: from,
            to_seq: to,
        },
        None,
    )
    .await?;
    let store = state.services.store.clone();
    let mut last_hash = String::new();
    if from <= to {
        store
            .for_each_raw(to, to, &mut |_, b| {
                last_hash = avvik_events::hash_hex(b);
                Ok(())
            })
            .map_err(|e| ApiError::Internal(e.into()))?;
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut cur = from;
        while cur <= to {
            let end = cur.saturating_add(999).min(to);
            let mut buf = Vec::with_capacity(600 * 1000);
            let r = store.for_each_raw(cur, end, &mut |_, b| {
                buf.extend_from_slice(b);
                buf.push(b'\n');
                Ok(())
            });
            if let Err(e) = r {
                tracing::error!(error = %e, "audit export failed");
                let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                return;
            }
            if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                return; // the client went away
            }
            cur = end + 1;
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut resp = Body::from_stream(stream).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    let last_seq = if from <= to { to } else { 0 };
    if let Ok(v) = HeaderValue::from_str(&last_seq.to_string()) {
        h.insert("x-avvik-last-seq", v);
    }
    if let Ok(v) = HeaderValue::from_str(&last_hash) {
        h.insert("x-avvik-last-hash", v);
    }
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"avvik-export.ndjson\""),
    );
    Ok(resp)
}

/// Walks the whole chain: the head, or the first broken link.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit", security(("bearer" = [])),
    responses((status = 200, description = "{ok, records, head_seq, head_hash, first_bad_seq?, reason?}", body = serde_json::Value), (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn verify(State(state): State<AppState>, Staff(who): Staff) -> Result<Response, ApiError> {
    require(&who, Action::ViewAudit)?;
    let report = on_store(&state, |store| store.verify()).await?;
    Ok(Json(report).into_response())
}

#[derive(Debug, Deserialize)]
pub struct AsOfQuery {
    as_of: Option<String>,
}

/// Every deviation as it stood at a moment (RFC 3339) or seq (`seq:N`).
#[utoipa::path(get, path = "/api/v1/audit/register", tag = "audit", security(("bearer" = [])),
    params(("as_of" = Option<String>, Query, description = "RFC 3339 or seq:N; default now")),
    responses((status = 200, description = "{as_of_seq, items}", body = serde_json::Value), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn register_as_of(
    State(state): State<AppState>,
    Staff(who): Staff,
    Query(q): Query<AsOfQuery>,
) -> Result<Response, ApiError> {
    require(&who, Action::ViewAudit)?;
    let point = parse_as_of("as_of", q.as_of.as_deref())?;
    let seq = resolve(&state, point).await?;
    let reg = fold(&state, seq).await?;
    seen(
        &state.access_log,
        &who.actor(),
        AccessKind::AuditRegister,
        None,
    )
    .await?;
    Ok(Json(json!({ "as_of_seq": seq, "items": reg.list() })).into_response())
}

/// One deviation's every event with seq, time, actor, data, hash link and the state after it.
#[utoipa::path(get, path = "/api/v1/audit/deviations/{reference}/history", tag = "audit", security(("bearer" = [])),
    params(("reference" = String, Path)),
    responses((status = 200, description = "[{seq, at, actor, type, data, prev, hash, state}]", body = serde_json::Value), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn deviation_history(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path(reference): Path<String>,
) -> Result<Response, ApiError> {
    require(&who, Action::ViewAudit)?;
    let reference = Reference::parse(&reference).ok_or(ApiError::NotFound)?;
    let d = state
        .services
        .register
        .read()
        .by_reference(reference)
        .cloned()
        .ok_or(ApiError::NotFound)?;
    let id = d.id;
    let keys = state.services.keys.clone();
    let steps = on_store(&state, move |store| crate::audit::history(store, &keys, id)).await?;
    seen(
        &state.access_log,
        &who.actor(),
        AccessKind::History,
        Some(&d),
    )
    .await?;
    Ok(Json(steps).into_response())
}

#[derive(Debug, Deserialize)]
pub struct ChangesQuery {
    from: Option<String>,
    to: Option<String>,
}

/// What changed between two moments: deviations added, reclassified, decided, closed…,
/// each field by field.
#[utoipa::path(get, path = "/api/v1/audit/changes", tag = "audit", security(("bearer" = [])),
    params(("from" = String, Query, description = "RFC 3339 or seq:N"), ("to" = Option<String>, Query, description = "RFC 3339 or seq:N; default now")),
    responses((status = 200, description = "{from_seq, to_seq, changes: [{reference, title, kinds, fields: [{field, before, after}]}]}", body = serde_json::Value), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn changes(
    State(state): State<AppState>,
    Staff(who): Staff,
    Query(q): Query<ChangesQuery>,
) -> Result<Response, ApiError> {
    require(&who, Action::ViewAudit)?;
    let from = parse_as_of("from", q.from.as_deref())?.ok_or_else(|| {
        ApiError::Validation(vec![FieldError::new(
            "from",
            "is required",
            "Ange från vilken tidpunkt.",
        )])
    })?;
    let to = parse_as_of("to", q.to.as_deref())?;
    let from_seq = resolve(&state, Some(from)).await?;
    let to_seq = resolve(&state, to).await?;
    if to_seq < from_seq {
        return Err(ApiError::Validation(vec![FieldError::new(
            "to",
            "must not be before from",
            "Sluttidpunkten får inte ligga före starttidpunkten.",
        )]));
    }
    let before = fold(&state, from_seq).await?;
    let after = fold(&state, to_seq).await?;
    // Two registers as of moments, field by field: read like the as-of register.
    seen(
        &state.access_log,
        &who.actor(),
        AccessKind::AuditRegister,
        None,
    )
    .await?;
    Ok(Json(crate::audit::changes(&before, &after)).into_response())
}

/// Accounts and their roles as they stood: who could do what, when.
#[utoipa::path(get, path = "/api/v1/audit/accounts", tag = "audit", security(("bearer" = [])),
    params(("as_of" = Option<String>, Query, description = "RFC 3339 or seq:N; default now")),
    responses((status = 200, description = "{as_of_seq, accounts: [{email, name, disabled, roles}]}", body = serde_json::Value), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn accounts_as_of(
    State(state): State<AppState>,
    Staff(who): Staff,
    Query(q): Query<AsOfQuery>,
) -> Result<Response, ApiError> {
    require(&who, Action::ViewAudit)?;
    let point = parse_as_of("as_of", q.as_of.as_deref())?;
    let seq = resolve(&state, point).await?;
    let reg = fold(&state, seq).await?;
    Ok(Json(json!({ "as_of_seq": seq, "accounts": crate::audit::accounts(&reg) })).into_response())
}

#[utoipa::path(get, path = "/api/v1/audit/recipients", tag = "audit", security(("bearer" = [])),
    params(("as_of" = Option<String>, Query, description = "RFC 3339 or seq:N; default now")),
    responses((status = 200, description = "{as_of_seq, recorded, lists: {ciso, dataskyddsombud, ledningsgrupp, kommunstyrelsen, kontakt: {sector: [..]}}, changes: [{seq, at, actor, type, data}]}", body = serde_json::Value), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
/// The recipient lists as they stood at a moment, with every change up to it.
async fn recipients_as_of(
    State(state): State<AppState>,
    Staff(who): Staff,
    Query(q): Query<AsOfQuery>,
) -> Result<Response, ApiError> {
    require(&who, Action::ViewAudit)?;
    let point = parse_as_of("as_of", q.as_of.as_deref())?;
    let seq = resolve(&state, point).await?;
    let (r, _, records) = on_store(&state, move |store| {
        crate::notify::recipients::load(store, Some(seq))
    })
    .await?;
    let changes: Vec<serde_json::Value> = records
        .iter()
        .map(|rec| {
            json!({"seq": rec.seq, "at": rec.at, "actor": rec.actor, "type": rec.event_type, "data": rec.data})
        })
        .collect();
    Ok(Json(json!({
        "as_of_seq": seq,
        "recorded": r.recorded,
        "lists": r.lists,
        "changes": changes,
    }))
    .into_response())
}
