//! The staff web UI under `/staff`: login, the register, a deviation with its timeline
//! and a form for each action the user may take. Every action goes through the same
//! parsing as the JSON API (`commands`) and the same authorization function.

use std::collections::HashMap;

use crate::intake::Released;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_csrf::CsrfToken;
use axum_extra::extract::cookie::PrivateCookieJar;
use chrono::{DateTime, NaiveDateTime, Utc};
use chrono_tz::Europe::Stockholm;
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::api::{filtered, ListQuery};
use super::commands;
use super::csrf::{form_token, CsrfForm};
use super::error::ApiError;
use super::pages::{render, stockholm_display, FormErrors, Layout, NavLink, PageError};
use super::AppState;
use crate::auth::password::{dummy_hash, verify_login, PEPPER_V1};
use crate::auth::session::{removal_cookie, session_cookie, session_in};
use crate::auth::{authorize, Action, Principal, Staff};
use crate::domain::{Command, Deviation, FilingKind, Reference, Severity, Status};
use crate::service::ServiceError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/staff/login", get(login_page).post(login))
        .route("/staff/logout", get(logout_page).post(logout))
        .route("/staff", get(register_page))
        .route("/staff/deviations/{reference}", get(deviation_page))
        .route("/staff/intake/quarantine", get(quarantine_page))
        .route(
            "/staff/intake/quarantine/{id}/release",
            post(release_quarantined),
        )
        .route(
            "/staff/deviations/{reference}/{action}",
            post(deviation_action),
        )
        .route(
            "/staff/deviations/{reference}/measures/{measure_id}/complete",
            post(complete_measure),
        )
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
    }
    if authorize(who, Action::ViewReports, None) {
        add("/staff/reports", "Årsrapport");
    }
    if authorize(who, Action::ViewAudit, None) {
        add("/audit", "Granskning");
    }
    if authorize(who, Action::HandleQuarantine, None) {
        add("/staff/intake/quarantine", "E-postkarantän");
    }
    if authorize(who, Action::ViewLoginThrottles, None) {
        add(super::login_throttles::PATH, "Spärrade inloggningar");
    }
    if authorize(who, Action::ManageAccounts, None) {
        add("/staff/admin", "Konton");
    }
    add(super::own_account::PATH, "Mitt konto");
    add("/staff/logout", "Logga ut");
    links
}

// ---------------------------------------------------------------------------------------
// Login

/// A wait as people read it.
fn wait_sv(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(1);
    if s < 90 {
        format!("{s} sekunder")
    } else {
        format!("{} minuter", (s + 59) / 60)
    }
}

#[derive(Template)]
#[template(path = "staff/login.html")]
struct LoginPage {
    layout: Layout,
    csrf: String,
    next: String,
    email: String,
    message: Option<String>,
    /// Nobody can log in yet: the page says how to make the first account.
    no_accounts: bool,
}

#[derive(Deserialize, Default)]
struct NextQuery {
    next: Option<String>,
}

/// Only local staff/audit paths are followed after login (no open redirect), and only
/// ones that can be a `Location` header (no control characters: CR/LF would make the
/// redirect fail, or split the header).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if (n.starts_with("/staff") || n.starts_with("/audit"))
                && !n.starts_with("//")
                && !n.contains("://")
                && !n.contains('\\')
                && !n.chars().any(|c| c.is_control() || c == ' ')
                && axum::http::HeaderValue::from_str(n).is_ok() =>
        {
            n.to_string()
        }
        _ => String::new(),
    }
}

async fn login_page(
    State(state): State<AppState>,
    csrf: CsrfToken,
    Query(q): Query<NextQuery>,
) -> Result<Response, PageError> {
    let page = LoginPage {
        layout: Layout::staff("Logga in", Vec::new()),
        csrf: form_token(&csrf)?,
        next: safe_next(q.next.as_deref()),
        email: String::new(),
        message: None,
        no_accounts: state.services.register.read().accounts.is_empty(),
    };
    Ok((csrf, render(StatusCode::OK, &page)).into_response())
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

async fn login(
    State(state): State<AppState>,
    super::security::ClientAddr(address): super::security::ClientAddr,
    CsrfForm { csrf, form }: CsrfForm<LoginForm>,
) -> Result<Response, PageError> {
    let jar = PrivateCookieJar::new(state.session_key.clone());
    let now = state.services.clock.now();
    let key = form.email.trim().to_lowercase();
    let again = |message: &str| -> Result<Response, PageError> {
        let page = LoginPage {
            layout: Layout::staff("Logga in", Vec::new()).with_errors(true),
            csrf: form_token(&csrf)?,
            next: safe_next(Some(&form.next)),
            email: form.email.trim().to_string(),
            message: Some(message.to_string()),
            no_accounts: state.services.register.read().accounts.is_empty(),
        };
        Ok((csrf.clone(), render(StatusCode::UNAUTHORIZED, &page)).into_response())
    };
    if let Some(wait) = state.login_guard.wait(&key, address, now) {
        tracing::warn!(account = %key, %address, wait_s = wait.num_seconds(), "login refused: too many failed attempts for this account from this address");
        return again(&format!(
            "För många misslyckade inloggningar från din adress. Vänta {} och försök igen.",
            wait_sv(wait)
        ));
    }
    let account = crate::domain::EmailAddress::parse(&key).and_then(|e| {
        state
            .services
            .register
            .read()
            .accounts
            .by_email(&e)
            .cloned()
    });
    let password = form.password.clone();
    let (stored, pepper) = match account.as_ref().and_then(|a| {
        a.password_hash
            .clone()
            .map(|h| (h, a.password_pepper.clone()))
    }) {
        Some(found) => found,
        None => (dummy_hash().to_string(), Some(PEPPER_V1.to_string())),
    };
    let secret = state.services.secret.clone();
    // Hashing is slow on purpose; keep it off the async threads.
    let ok = tokio::task::spawn_blocking(move || {
        verify_login(&secret, &password, &stored, pepper.as_deref())
    })
    .await
    .unwrap_or(false);
    match account {
        Some(a) if ok && !a.disabled && a.password_hash.is_some() => {
            state.login_guard.succeeded(&key, address);
            tracing::info!(account = %a.id, "staff login");
            let secure = state.config.http.base_url.starts_with("https://");
            let jar = jar.add(session_cookie(a.id, now, secure));
            let who = Principal::from_account(&a);
            let mut next = safe_next(Some(&form.next));
            if next.is_empty() {
                next = home_for(&who).to_string();
            }
            Ok((jar, Redirect::to(&next)).into_response())
        }
        _ => {
            match state.login_guard.failed(&key, address, now) {
                Some(wait) => {
                    tracing::warn!(account = %key, %address, wait_s = wait.num_seconds(), "staff login failed; further attempts for this account from this address are slowed down")
                }
                None => tracing::info!(account = %key, %address, "staff login failed"),
            }
            again("Fel e-postadress eller lösenord, eller så är kontot avstängt.")
        }
    }
}

/// Where a user lands: the register, or the part their roles open.
fn home_for(who: &Principal) -> &'static str {
    if authorize(who, Action::ListDeviations, None) {
        "/staff"
    } else if authorize(who, Action::ManageAccounts, None) {
        "/staff/admin"
    } else {
        "/audit"
    }
}

#[derive(Template)]
#[template(path = "staff/logout.html")]
struct LogoutPage {
    layout: Layout,
    csrf: String,
    name: String,
    email: String,
}

async fn logout_page(csrf: CsrfToken, Staff(who): Staff) -> Result<Response, PageError> {
    let page = LogoutPage {
        layout: Layout::staff("Logga ut", staff_nav(&who, "/staff/logout")),
        csrf: form_token(&csrf)?,
        name: who.name.clone(),
        email: who.email.clone(),
    };
    Ok((csrf, render(StatusCode::OK, &page)).into_response())
}

async fn logout(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    CsrfForm { .. }: CsrfForm<Map<String, Value>>,
) -> Response {
    // The jar must hold the incoming cookie for `remove` to send a removal cookie.
    let jar = PrivateCookieJar::from_headers(&headers, state.session_key.clone());
    // End the session on the server too, so a copied cookie stops working.
    if let Some((account, session, issued)) = session_in(&jar) {
        let actor = state
            .services
            .register
            .read()
            .accounts
            .get(account)
            .map(|a| a.email.as_str().to_string())
            .unwrap_or_else(|| account.to_string());
        if let Err(e) = state
            .services
            .sign_out(account, session, issued, &actor)
            .await
        {
            tracing::error!(%account, error = %e, "sign-out not recorded; the session stays valid until it expires");
            let jar = jar.remove(removal_cookie());
            return (
                jar,
                PageError::Unavailable("sign-out could not be recorded".into()),
            )
                .into_response();
        }
    }
    (jar.remove(removal_cookie()), Redirect::to("/staff/login")).into_response()
}

// ---------------------------------------------------------------------------------------
// Register

struct Marker {
    text: String,
    overdue: bool,
}

struct Row {
    reference: String,
    title: String,
    sector: String,
    status: &'static str,
    status_class: &'static str,
    severity: &'static str,
    major: bool,
    reported: String,
    markers: Vec<Marker>,
}

struct Column {
    label: &'static str,
    href: Option<String>,
    aria_sort: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "staff/register.html")]
struct RegisterPage {
    layout: Layout,
    filter: ListQuery,
    year_value: String,
    statuses: Vec<(String, &'static str)>,
    severities: Vec<(String, &'static str)>,
    sectors: Vec<String>,
    categories: Vec<String>,
    sort: String,
    sort_label: &'static str,
    columns: Vec<Column>,
    rows: Vec<Row>,
    total: usize,
    page: usize,
    pages: usize,
    prev_href: Option<String>,
    next_href: Option<String>,
}

#[derive(Deserialize, Default)]
struct RegisterQuery {
    #[serde(flatten)]
    list: ListQuery,
    sort: Option<String>,
    page: Option<usize>,
}

const PAGE_SIZE: usize = 50;

fn status_class(s: Status) -> &'static str {
    match s {
        Status::Received => "received",
        Status::Investigating => "investigating",
        Status::Closed => "closed",
    }
}

fn severity_sv(s: Option<Severity>) -> &'static str {
    match s {
        None => "ej klassad",
        Some(Severity::Minor) => "mindre",
        Some(Severity::Major) => "större",
    }
}

fn short_kind(k: FilingKind) -> &'static str {
    match k {
        FilingKind::Gdpr => "GDPR 72 h",
        FilingKind::Nis2EarlyWarning => "NIS2 24 h",
        FilingKind::Nis2Notification => "NIS2 72 h",
        FilingKind::Nis2FinalReport => "NIS2 slutrapport",
    }
}

fn markers(d: &Deviation, now: DateTime<Utc>) -> Vec<Marker> {
    let mut out: Vec<Marker> = d
        .deadlines
        .iter()
        .filter(|dl| dl.settled_at.is_none())
        .map(|dl| {
            let overdue = dl.due < now;
            Marker {
                text: if overdue {
                    format!("Försenad: {}", short_kind(dl.kind))
                } else {
                    format!(
                        "{} senast {}",
                        short_kind(dl.kind),
                        stockholm_display(dl.due)
                    )
                },
                overdue,
            }
        })
        .collect();
    let today = now.with_timezone(&Stockholm).date_naive();
    let late = d
        .measures
        .iter()
        .filter(|m| m.completed_at.is_none() && m.due < today)
        .count();
    if late > 0 {
        out.push(Marker {
            text: format!("{late} försenad åtgärd"),
            overdue: true,
        });
    }
    out
}

fn query_string(q: &RegisterQuery, sort: &str, page: usize) -> String {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    let l = &q.list;
    for (k, v) in [
        ("status", &l.status),
        ("severity", &l.severity),
        ("sector", &l.sector),
        ("category", &l.category),
        ("q", &l.q),
    ] {
        if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
            pairs.push((k, v.clone()));
        }
    }
    if let Some(y) = l.year {
        pairs.push(("year", y.to_string()));
    }
    pairs.push(("sort", sort.to_string()));
    if page > 1 {
        pairs.push(("page", page.to_string()));
    }
    let encoded: Vec<String> = pairs
        .into_iter()
        .map(|(k, v)| format!("{k}={}", urlencode(&v)))
        .collect();
    format!("/staff?{}", encoded.join("&"))
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

async fn register_page(
    State(state): State<AppState>,
    Staff(who): Staff,
    Query(q): Query<RegisterQuery>,
) -> Result<Response, PageError> {
    if !authorize(&who, Action::ListDeviations, None) {
        return Err(PageError::Forbidden);
    }
    let now = state.services.clock.now();
    let sort = q.sort.clone().unwrap_or_else(|| "-reference".into());
    let (key, desc) = match sort.strip_prefix('-') {
        Some(k) => (k.to_string(), true),
        None => (sort.clone(), false),
    };
    let reg = state.services.register.read();
    let mut list = filtered(&reg, &who, &q.list);
    let sev_rank = |d: &Deviation| match d.severity {
        Some(Severity::Major) => 2,
        Some(Severity::Minor) => 1,
        None => 0,
    };
    let status_rank = |d: &Deviation| match d.status {
        Status::Received => 0,
        Status::Investigating => 1,
        Status::Closed => 2,
    };
    let next_due = |d: &Deviation| {
        d.deadlines
            .iter()
            .filter(|dl| dl.settled_at.is_none())
            .map(|dl| dl.due)
            .min()
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    };
    match key.as_str() {
        "title" => list.sort_by_key(|d| d.title.to_lowercase()),
        "sector" => list.sort_by_key(|d| d.sector.clone().unwrap_or_default()),
        "status" => list.sort_by_key(|d| status_rank(d)),
        "severity" => list.sort_by_key(|d| sev_rank(d)),
        "reported" => list.sort_by_key(|d| d.reported_at),
        "due" => list.sort_by_key(|d| next_due(d)),
        _ => list.sort_by_key(|d| d.reference),
    }
    if desc {
        list.reverse();
    }
    let total = list.len();
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    let page = q.page.unwrap_or(1).clamp(1, pages);
    let owed = state.notify.deviations_owed();
    let rows: Vec<Row> = list
        .into_iter()
        .skip((page - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .map(|d| Row {
            reference: d.reference.to_string(),
            title: d.title.clone(),
            sector: d.sector.clone().unwrap_or_default(),
            status: d.status.label_sv(),
            status_class: status_class(d.status),
            severity: severity_sv(d.severity),
            major: d.severity == Some(Severity::Major),
            reported: stockholm_display(d.reported_at),
            markers: {
                let mut m = markers(d, now);
                if owed.contains(&d.id) {
                    m.insert(
                        0,
                        Marker {
                            text: "Utskick saknar mottagare".into(),
                            overdue: true,
                        },
                    );
                }
                m
            },
        })
        .collect();
    drop(reg);
    let columns = [
        ("reference", "Referens"),
        ("title", "Rubrik"),
        ("sector", "Sektor"),
        ("status", "Status"),
        ("severity", "Allvarlighet"),
        ("reported", "Rapporterad"),
        ("due", "Frister"),
    ]
    .into_iter()
    .map(|(k, label)| {
        let active = k == key;
        let next_sort = if active && !desc {
            format!("-{k}")
        } else {
            k.to_string()
        };
        Column {
            label,
            href: Some(query_string(&q, &next_sort, 1)),
            aria_sort: active.then_some(if desc { "descending" } else { "ascending" }),
        }
    })
    .collect();
    let sort_label = match key.as_str() {
        "title" => "rubrik",
        "sector" => "sektor",
        "status" => "status",
        "severity" => "allvarlighet",
        "reported" => "rapporteringstid",
        "due" => "närmaste frist",
        _ => "referens",
    };
    let page_view = RegisterPage {
        layout: Layout::staff("Avvikelser", staff_nav(&who, "/staff")),
        year_value: q.list.year.map(|y| y.to_string()).unwrap_or_default(),
        statuses: [Status::Received, Status::Investigating, Status::Closed]
            .iter()
            .map(|s| (status_class(*s).to_string(), s.label_sv()))
            .collect(),
        severities: vec![
            ("major".into(), "större"),
            ("minor".into(), "mindre"),
            ("none".into(), "ej klassad"),
        ],
        sectors: state.config.report.sectors.clone(),
        categories: state.config.report.categories.clone(),
        sort: sort.clone(),
        sort_label,
        columns,
        rows,
        total,
        page,
        pages,
        prev_href: (page > 1).then(|| query_string(&q, &sort, page - 1)),
        next_href: (page < pages).then(|| query_string(&q, &sort, page + 1)),
        filter: q.list,
    };
    Ok(render(StatusCode::OK, &page_view))
}

// ---------------------------------------------------------------------------------------
// One deviation

struct DeadlineRow {
    label: &'static str,
    due: String,
    state: String,
    overdue: bool,
}

struct MeasureRow {
    id: Uuid,
    description: String,
    owner: String,
    due: String,
    overdue: bool,
    completed: Option<String>,
    note: String,
    can_complete: bool,
}

struct TimelineEntry {
    seq: u64,
    at: String,
    at_iso: String,
    actor: String,
    what: String,
    details: Vec<String>,
}

#[derive(Default)]
struct Can {
    classify: bool,
    decide: bool,
    add_measure: bool,
    file: bool,
    comment: bool,
    close: bool,
    reopen: bool,
}

/// Current values of the classification form.
struct ClassificationForm {
    severity: String,
    aspects: Vec<(&'static str, &'static str, String)>,
    category: String,
    pdb: String,
    nis2: bool,
    rationale: String,
}

#[derive(Template)]
#[template(path = "staff/deviation.html")]
struct DeviationPage {
    layout: Layout,
    csrf: String,
    d: Deviation,
    status: &'static str,
    status_class: &'static str,
    severity: Option<&'static str>,
    major: bool,
    facts: Vec<(&'static str, String)>,
    deadlines: Vec<DeadlineRow>,
    measures: Vec<MeasureRow>,
    notices: Vec<String>,
    /// E-mails a rule called for while the group had no address (shown in red while open).
    undeliverable: Vec<String>,
    /// Earlier ones that went out once addresses were added.
    owed_resolved: Vec<String>,
    attachments: Vec<(String, String)>,
    timeline: Vec<TimelineEntry>,
    can: Can,
    cls: ClassificationForm,
    categories: Vec<String>,
    levels: Vec<(String, &'static str)>,
    pdb_options: Vec<(String, &'static str)>,
    filing_kinds: Vec<(String, &'static str)>,
    /// Which form the errors belong to ("" for none).
    form: String,
    errors: FormErrors,
    values: HashMap<String, String>,
    saved: Option<String>,
    refused: Option<String>,
}

impl DeviationPage {
    fn value(&self, field: &str) -> String {
        self.values.get(field).cloned().unwrap_or_default()
    }

    /// A posted value, only in the form it was posted from (the decision and comment
    /// forms both post `text`).
    fn value_in(&self, form: &str, field: &str) -> String {
        if self.form == form {
            self.value(field)
        } else {
            String::new()
        }
    }

    /// An input's error, only in the form that was posted.
    fn error_in(&self, form: &str, field: &str) -> Option<&str> {
        if self.form == form {
            self.errors.get(field)
        } else {
            None
        }
    }
}

fn pdb_sv(p: crate::domain::PersonalDataBreach) -> &'static str {
    match p {
        crate::domain::PersonalDataBreach::Yes => "ja",
        crate::domain::PersonalDataBreach::No => "nej",
        crate::domain::PersonalDataBreach::Investigating => "under utredning",
    }
}

fn aspects_sv(a: &crate::domain::Aspects) -> String {
    let mut parts = Vec::new();
    for (name, l) in [
        ("konfidentialitet", a.confidentiality),
        ("riktighet", a.integrity),
        ("tillgänglighet", a.availability),
        ("spårbarhet", a.traceability),
    ] {
        if let Some(l) = l {
            parts.push(format!("{name} {} ({})", l.get(), l.label_sv()));
        }
    }
    if parts.is_empty() {
        "–".into()
    } else {
        parts.join(", ")
    }
}

fn actor_sv(actor: &str) -> String {
    crate::domain::Actor::parse(actor).label_sv()
}

/// A line per event for the timeline: what happened, in Swedish, with its details.
fn describe(ty: &str, data: &Value) -> (String, Vec<String>) {
    let s = |k: &str| {
        data.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    match ty {
        "DeviationReported" => ("Rapporterad".into(), vec![s("title")]),
        "DeviationClassified" => {
            let sev = match data.get("severity").and_then(|v| v.as_str()) {
                Some("major") => "större",
                _ => "mindre",
            };
            let mut d = vec![format!("Kategori: {}", s("category"))];
            if !s("rationale").is_empty() {
                d.push(format!("Motivering: {}", s("rationale")));
            }
            (format!("Klassad som {sev} avvikelse"), d)
        }
        "DecisionRecorded" => (format!("Beslut ({})", s("role")), vec![s("text")]),
        "MeasureAdded" => (
            "Åtgärd tillagd".into(),
            vec![format!(
                "{} – ansvarig {}, klar senast {}",
                s("description"),
                s("owner"),
                s("due")
            )],
        ),
        "MeasureCompleted" => (
            "Åtgärd slutförd".into(),
            vec![s("note")]
                .into_iter()
                .filter(|x| !x.is_empty())
                .collect(),
        ),
        "CommentAdded" => {
            let from_reporter = data
                .get("from_reporter")
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            let to_reporter = data
                .get("to_reporter")
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            let unverified = data
                .get("unverified_email")
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            let what = if unverified && from_reporter {
                "Overifierad e-post (avsändaren anger rapportörens adress)"
            } else if unverified {
                "Overifierad e-post (avsändaren kunde inte kontrolleras)"
            } else if from_reporter {
                "Meddelande från rapportören"
            } else if to_reporter {
                "Meddelande till rapportören"
            } else {
                "Intern kommentar"
            };
            (what.into(), vec![s("text")])
        }
        "DeviationClosed" => ("Avslutad".into(), vec![s("resolution")]),
        "DeviationReopened" => ("Återöppnad".into(), vec![s("reason")]),
        "FilingRecorded" => (
            "Anmälan registrerad".into(),
            vec![format!(
                "{} till {}{}",
                filing_label(&s("kind")),
                s("authority"),
                if s("their_reference").is_empty() {
                    String::new()
                } else {
                    format!(", diarienummer {}", s("their_reference"))
                }
            )],
        ),
        "FilingDeclined" => (
            "Beslut att inte anmäla".into(),
            vec![
                format!("{}: {}", filing_label(&s("kind")), s("not_filed_rationale")),
                s("rationale"),
            ]
            .into_iter()
            .filter(|x| !x.trim_end_matches(": ").is_empty())
            .collect(),
        ),
        "NotificationSent" => (
            format!("E-post skickad: {}", s("subject")),
            vec![format!(
                "Till {} (försök {})",
                join(data.get("recipients")),
                data.get("attempt").and_then(|v| v.as_u64()).unwrap_or(1)
            )],
        ),
        "NotificationFailed" => (
            "E-post kunde inte skickas".into(),
            vec![format!(
                "Till {}: {} (försök {}, nytt försök {})",
                join(data.get("recipients")),
                s("error"),
                data.get("attempt").and_then(|v| v.as_u64()).unwrap_or(1),
                time_sv(&s("next_retry_at"))
            )],
        ),
        "NotificationAbandoned" => (
            "E-post uppgiven efter upprepade fel".into(),
            vec![format!(
                "Till {}: {}",
                join(data.get("recipients")),
                s("last_error")
            )],
        ),
        "NotificationUndeliverable" => (
            "E-post kunde inte skickas: ingen mottagare".into(),
            vec![format!(
                "Ingen e-postadress för {}; skickas när en adress läggs till",
                crate::notify::Group::from_role(&s("group"))
                    .map_or_else(|| s("group"), |g| g.label_sv().to_string())
            )],
        ),
        "EscalationAcknowledged" => (
            "Kvitterad".into(),
            vec![format!("{} ({})", s("recipient"), s("group"))],
        ),
        other => (other.to_string(), Vec::new()),
    }
}

fn join(v: Option<&Value>) -> String {
    v.and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn time_sv(rfc3339: &str) -> String {
    DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| stockholm_display(t.with_timezone(&Utc)))
        .unwrap_or_else(|_| rfc3339.to_string())
}

fn filing_label(kind: &str) -> &'static str {
    serde_json::from_value::<FilingKind>(Value::String(kind.to_string()))
        .map(|k| k.label_sv())
        .unwrap_or("Anmälan")
}

struct PageInput {
    form: String,
    errors: FormErrors,
    values: HashMap<String, String>,
    saved: Option<String>,
    refused: Option<String>,
}

/// Loads a deviation for `who`: 404 when they may not see it.
fn load(state: &AppState, who: &Principal, reference: &str) -> Result<Deviation, PageError> {
    let r = Reference::parse(reference).ok_or(PageError::NotFound)?;
    let reg = state.services.register.read();
    let d = reg.by_reference(r).ok_or(PageError::NotFound)?;
    if !authorize(who, Action::ViewDeviation, Some(d)) {
        return Err(PageError::NotFound);
    }
    Ok(d.clone())
}

fn build_page(
    state: &AppState,
    who: &Principal,
    d: Deviation,
    csrf: String,
    input: PageInput,
) -> Result<DeviationPage, PageError> {
    let now = state.services.clock.now();
    let today = now.with_timezone(&Stockholm).date_naive();
    let t = |x: Option<DateTime<Utc>>| x.map(stockholm_display).unwrap_or_else(|| "–".into());
    let mut facts: Vec<(&'static str, String)> = vec![
        ("Sektor", d.sector.clone().unwrap_or_else(|| "–".into())),
        (
            "System/informationstillgång",
            d.asset.clone().unwrap_or_else(|| "–".into()),
        ),
        ("Rapporterad", stockholm_display(d.reported_at)),
        ("Inträffade", t(d.occurred_at)),
        ("Upptäcktes", stockholm_display(d.discovered_at)),
        (
            "Rapportör",
            d.reporter
                .as_ref()
                .map(|r| format!("{} <{}>", r.name, r.email))
                .unwrap_or_else(|| "anonym".into()),
        ),
        (
            "Kanal",
            match d.channel {
                crate::domain::Channel::Web => "webbformulär",
                crate::domain::Channel::Email => "e-post",
                crate::domain::Channel::Api => "API",
            }
            .into(),
        ),
        (
            "Personuppgifter kan beröras (rapportörens bedömning)",
            if d.personal_data_suspected {
                "ja"
            } else {
                "nej"
            }
            .into(),
        ),
    ];
    if !d.classifications.is_empty() {
        facts.push(("Kategori", d.category.clone().unwrap_or_default()));
        facts.push(("Påverkade aspekter", aspects_sv(&d.aspects)));
        facts.push((
            "Personuppgiftsincident",
            d.personal_data_breach.map(pdb_sv).unwrap_or("–").into(),
        ));
        facts.push((
            "Betydande incident (NIS2)",
            if d.nis2_significant == Some(true) {
                "ja"
            } else {
                "nej"
            }
            .into(),
        ));
    }
    if let Some(r) = &d.resolution {
        facts.push(("Resultat", r.clone()));
    }
    let deadlines = d
        .deadlines
        .iter()
        .map(|dl| {
            let overdue = dl.settled_at.is_none() && dl.due < now;
            let filing = d.filing(dl.kind);
            let state_text = match (filing, dl.late) {
                (Some(f), Some(late)) => format!(
                    "anmäld {}{}",
                    t(f.filed_at),
                    if late { " (efter fristen)" } else { "" }
                ),
                (Some(_), None) => "beslut att inte anmäla".into(),
                (None, _) if overdue => "försenad".into(),
                (None, _) => "öppen".into(),
            };
            DeadlineRow {
                label: dl.kind.label_sv(),
                due: stockholm_display(dl.due),
                state: state_text,
                overdue,
            }
        })
        .collect();
    let measures = d
        .measures
        .iter()
        .map(|m| MeasureRow {
            id: m.id,
            description: m.description.clone(),
            owner: m.owner.clone(),
            due: m.due.format("%Y-%m-%d").to_string(),
            overdue: m.completed_at.is_none() && m.due < today,
            completed: m.completed_at.map(stockholm_display),
            note: m.completion_note.clone().unwrap_or_default(),
            can_complete: d.status != Status::Closed
                && authorize(who, Action::CompleteMeasure(m.id), Some(&d)),
        })
        .collect();
    let mut records = state
        .services
        .store
        .read_stream(d.id, 1)
        .map_err(|e| PageError::Internal(e.into()))?;
    // E-mail deliveries and acknowledgements live in their own streams; merge by seq.
    records.extend(state.notify.timeline_for(d.id));
    records.sort_by_key(|r| r.seq);
    records.dedup_by_key(|r| r.seq);
    let notices = state
        .notify
        .notices_for(d.id)
        .into_iter()
        .map(|n| {
            let mut line = format!(
                "{} till {} ({}): {}",
                n.rule_label,
                n.recipient,
                n.group_label,
                n.state.label_sv()
            );
            if let Some(a) = &n.acknowledged {
                line.push_str(&format!(" · kvitterad {}", stockholm_display(a.at)));
            }
            line
        })
        .collect();
    let (mut undeliverable, mut owed_resolved) = (Vec::new(), Vec::new());
    for o in state.notify.owed_for(d.id) {
        match o.resolved_at {
            None => undeliverable.push(format!(
                "{}: ingen e-postadress för {}, inget har skickats (sedan {}). Det skickas när en adress läggs till.",
                o.rule_label,
                o.group_label,
                stockholm_display(o.due_at)
            )),
            Some(at) => owed_resolved.push(format!(
                "{}: saknade mottagare i {}, skickades när adresser lades till {} ({}).",
                o.rule_label,
                o.group_label,
                stockholm_display(at),
                o.resolved_to.join(", ")
            )),
        }
    }
    let timeline = records
        .iter()
        .rev()
        .map(|r| {
            let (what, details) = describe(&r.event_type, &r.data);
            TimelineEntry {
                seq: r.seq,
                at: stockholm_display(r.at),
                at_iso: r.at.to_rfc3339(),
                actor: actor_sv(&r.actor),
                what,
                details: details.into_iter().filter(|x| !x.is_empty()).collect(),
            }
        })
        .collect();
    let open = d.status != Status::Closed;
    let can = Can {
        classify: open && authorize(who, Action::Classify, Some(&d)),
        decide: open && authorize(who, Action::RecordDecision, Some(&d)),
        add_measure: open && authorize(who, Action::AddMeasure, Some(&d)),
        file: authorize(who, Action::RecordFiling, Some(&d)),
        comment: authorize(who, Action::Comment, Some(&d)),
        close: open && authorize(who, Action::Close, Some(&d)),
        reopen: !open && authorize(who, Action::Reopen, Some(&d)),
    };
    let last = d.classifications.last().map(|c| &c.classification);
    let v = |k: &str| input.values.get(k).cloned();
    let level = |k: &str, cur: Option<crate::domain::Level>| {
        v(&format!("aspect_{k}"))
            .unwrap_or_else(|| cur.map(|l| l.get().to_string()).unwrap_or_default())
    };
    let cls = ClassificationForm {
        severity: v("severity").unwrap_or_else(|| {
            last.map(|c| {
                if c.severity == Severity::Major {
                    "major"
                } else {
                    "minor"
                }
                .to_string()
            })
            .unwrap_or_default()
        }),
        aspects: vec![
            (
                "confidentiality",
                "Konfidentialitet",
                level("confidentiality", d.aspects.confidentiality),
            ),
            (
                "integrity",
                "Riktighet",
                level("integrity", d.aspects.integrity),
            ),
            (
                "availability",
                "Tillgänglighet",
                level("availability", d.aspects.availability),
            ),
            (
                "traceability",
                "Spårbarhet",
                level("traceability", d.aspects.traceability),
            ),
        ],
        category: v("category").unwrap_or_else(|| d.category.clone().unwrap_or_default()),
        pdb: v("personal_data_breach").unwrap_or_else(|| {
            d.personal_data_breach
                .and_then(|p| serde_json::to_value(p).ok())
                .and_then(|x| x.as_str().map(String::from))
                .unwrap_or_default()
        }),
        nis2: v("nis2_significant")
            .map(|x| x == "ja")
            .unwrap_or(d.nis2_significant == Some(true)),
        rationale: v("rationale").unwrap_or_default(),
    };
    let severity = d
        .classifications
        .last()
        .map(|c| c.classification.severity.label_sv());
    Ok(DeviationPage {
        layout: Layout::staff(format!("{} {}", d.reference, d.title), staff_nav(who, ""))
            .with_errors(!input.errors.is_empty()),
        csrf,
        status: d.status.label_sv(),
        status_class: status_class(d.status),
        severity,
        major: d.severity == Some(Severity::Major),
        facts,
        deadlines,
        measures,
        notices,
        undeliverable,
        owed_resolved,
        attachments: state
            .intake
            .view()
            .read()
            .attachments(d.id)
            .iter()
            .map(|a| {
                let a = &a.attachment;
                (
                    format!(
                        "/api/v1/deviations/{}/attachments/{}",
                        d.reference, a.sha256
                    ),
                    format!("{} ({}, {} byte)", a.filename, a.content_type, a.size),
                )
            })
            .collect(),
        timeline,
        can,
        cls,
        categories: state.config.report.categories.clone(),
        levels: vec![
            ("1".into(), "måttlig"),
            ("2".into(), "betydande"),
            ("3".into(), "allvarlig"),
            ("4".into(), "synnerligen allvarlig"),
        ],
        pdb_options: vec![
            ("no".into(), "Nej"),
            ("investigating".into(), "Under utredning"),
            ("yes".into(), "Ja"),
        ],
        filing_kinds: FilingKind::ALL
            .iter()
            .map(|k| {
                (
                    serde_json::to_value(k)
                        .ok()
                        .and_then(|x| x.as_str().map(String::from))
                        .unwrap_or_default(),
                    k.label_sv(),
                )
            })
            .collect(),
        form: input.form,
        errors: input.errors,
        values: input.values,
        saved: input.saved,
        refused: input.refused,
        d,
    })
}

#[derive(Deserialize, Default)]
struct SavedQuery {
    sparat: Option<String>,
}

async fn deviation_page(
    State(state): State<AppState>,
    Staff(who): Staff,
    csrf: CsrfToken,
    Path(reference): Path<String>,
    Query(q): Query<SavedQuery>,
) -> Result<Response, PageError> {
    let d = load(&state, &who, &reference)?;
    let saved = q.sparat.map(|_| "Ändringen är sparad.".to_string());
    let page = build_page(
        &state,
        &who,
        d,
        form_token(&csrf)?,
        PageInput {
            form: String::new(),
            errors: FormErrors::default(),
            values: HashMap::new(),
            saved,
            refused: None,
        },
    )?;
    Ok((csrf, render(StatusCode::OK, &page)).into_response())
}

/// Labels for the error summary of each action form.
const LABELS: &[(&str, &str)] = &[
    ("severity", "Allvarlighet"),
    ("aspects", "Aspekter"),
    ("category", "Kategori"),
    ("personal_data_breach", "Personuppgiftsincident"),
    ("nis2_significant", "NIS2"),
    ("rationale", "Motivering"),
    ("text", "Text"),
    ("description", "Åtgärd"),
    ("owner", "Ansvarig"),
    ("due", "Klar senast"),
    ("resolution", "Resultat"),
    ("reason", "Skäl"),
    ("kind", "Vilken anmälan"),
    ("authority", "Myndighet"),
    ("filed_at", "Anmäld"),
    ("their_reference", "Diarienummer"),
    ("not_filed_rationale", "Motivering"),
    ("note", "Kommentar"),
];

/// A posted form as the JSON shape the API takes: empty strings are absent, checkboxes
/// are booleans, aspect levels are numbers, a local date-time gets its Stockholm offset.
fn form_to_json(action: &str, form: &Map<String, Value>) -> Value {
    let text = |k: &str| {
        form.get(k)
            .and_then(|v| v.as_str())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| Value::String(s.to_string()))
    };
    let mut out = Map::new();
    let put = |out: &mut Map<String, Value>, k: &str, v: Option<Value>| {
        if let Some(v) = v {
            out.insert(k.to_string(), v);
        }
    };
    match action {
        "classify" => {
            for k in ["severity", "category", "personal_data_breach", "rationale"] {
                put(&mut out, k, text(k));
            }
            out.insert(
                "nis2_significant".into(),
                Value::Bool(form.contains_key("nis2_significant")),
            );
            let mut aspects = Map::new();
            for a in [
                "confidentiality",
                "integrity",
                "availability",
                "traceability",
            ] {
                if let Some(Value::String(s)) = text(&format!("aspect_{a}")) {
                    let n = s
                        .parse::<u64>()
                        .map(Value::from)
                        .unwrap_or(Value::String(s));
                    aspects.insert(a.into(), n);
                }
            }
            out.insert("aspects".into(), Value::Object(aspects));
        }
        "decide" => put(&mut out, "text", text("text")),
        "measures" => {
            for k in ["description", "owner", "due"] {
                put(&mut out, k, text(k));
            }
        }
        "comment" => {
            put(&mut out, "text", text("text"));
            out.insert(
                "to_reporter".into(),
                Value::Bool(form.contains_key("to_reporter")),
            );
        }
        "close" => put(&mut out, "resolution", text("resolution")),
        "reopen" => put(&mut out, "reason", text("reason")),
        "filing" => {
            for k in [
                "kind",
                "authority",
                "their_reference",
                "not_filed_rationale",
            ] {
                put(&mut out, k, text(k));
            }
            if let Some(Value::String(local)) = text("filed_at") {
                let parsed = NaiveDateTime::parse_from_str(&local, "%Y-%m-%dT%H:%M")
                    .ok()
                    .and_then(|n| n.and_local_timezone(Stockholm).earliest())
                    .map(|t| t.to_rfc3339());
                out.insert("filed_at".into(), Value::String(parsed.unwrap_or(local)));
            }
        }
        "complete" => put(&mut out, "note", text("note")),
        _ => {}
    }
    Value::Object(out)
}

fn form_values(form: &Map<String, Value>) -> HashMap<String, String> {
    form.iter()
        .filter(|(k, _)| k.as_str() != "authenticity_token")
        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
        .collect()
}

async fn deviation_action(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path((reference, action)): Path<(String, String)>,
    CsrfForm { csrf, form }: CsrfForm<Map<String, Value>>,
) -> Result<Response, PageError> {
    let d = load(&state, &who, &reference)?;
    let body = form_to_json(&action, &form);
    let now = state.services.clock.now();
    let (needed, parsed): (Action, Result<Command, ApiError>) = match action.as_str() {
        "classify" => (
            Action::Classify,
            commands::classification(&body, &who, &state.config.report),
        ),
        "decide" => (Action::RecordDecision, commands::decision(&body, &who)),
        "measures" => (Action::AddMeasure, commands::measure(&body).map(|(_, c)| c)),
        "comment" => (Action::Comment, commands::comment(&body)),
        "close" => (Action::Close, commands::close(&body)),
        "reopen" => (Action::Reopen, commands::reopen(&body)),
        "filing" => (Action::RecordFiling, commands::filing(&body, now)),
        _ => return Err(PageError::NotFound),
    };
    let form_name = if action == "filing" && form.contains_key("not_filed_rationale") {
        "decline".to_string()
    } else if action == "measures" {
        "measure".to_string()
    } else {
        action.clone()
    };
    submit(
        &state,
        &who,
        d,
        csrf,
        needed,
        parsed,
        form_name,
        form_values(&form),
    )
    .await
}

async fn complete_measure(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path((reference, measure_id)): Path<(String, String)>,
    CsrfForm { csrf, form }: CsrfForm<Map<String, Value>>,
) -> Result<Response, PageError> {
    let measure_id = Uuid::parse_str(&measure_id).map_err(|_| PageError::NotFound)?;
    let d = load(&state, &who, &reference)?;
    let body = form_to_json("complete", &form);
    let parsed = commands::complete_measure(&body, measure_id);
    submit(
        &state,
        &who,
        d,
        csrf,
        Action::CompleteMeasure(measure_id),
        parsed,
        "complete".into(),
        form_values(&form),
    )
    .await
}

/// Authorizes, runs the command and redirects back; or shows the page again with the
/// problem at the form that caused it.
#[allow(clippy::too_many_arguments)]
async fn submit(
    state: &AppState,
    who: &Principal,
    d: Deviation,
    csrf: CsrfToken,
    needed: Action,
    parsed: Result<Command, ApiError>,
    form_name: String,
    values: HashMap<String, String>,
) -> Result<Response, PageError> {
    if !authorize(who, needed, Some(&d)) {
        return Err(PageError::Forbidden);
    }
    let again = |d: Deviation,
                 status: StatusCode,
                 errors: FormErrors,
                 refused: Option<String>|
     -> Result<Response, PageError> {
        let page = build_page(
            state,
            who,
            d,
            form_token(&csrf)?,
            PageInput {
                form: form_name.clone(),
                errors,
                values: values.clone(),
                saved: None,
                refused,
            },
        )?;
        Ok((csrf.clone(), render(status, &page)).into_response())
    };
    let cmd = match parsed {
        Ok(c) => c,
        Err(ApiError::Validation(errs)) => {
            return again(
                d,
                StatusCode::UNPROCESSABLE_ENTITY,
                FormErrors::new(&errs, LABELS),
                None,
            )
        }
        Err(other) => {
            return again(
                d,
                StatusCode::BAD_REQUEST,
                FormErrors::default(),
                Some(format!("{other}")),
            )
        }
    };
    match state.services.execute(d.reference, cmd, &who.actor()).await {
        Ok(_) => Ok(
            Redirect::to(&format!("/staff/deviations/{}?sparat=1", d.reference)).into_response(),
        ),
        Err(ServiceError::Domain(e)) => again(
            d,
            StatusCode::CONFLICT,
            FormErrors::default(),
            Some(e.message_sv()),
        ),
        Err(other) => Err(other.into()),
    }
}

// ---------------------------------------------------------------------------------------
// E-mail quarantine

struct QuarantineRow {
    id: Uuid,
    received: String,
    from: String,
    subject: String,
    reason: String,
    size: String,
    state: String,
    open: bool,
}

#[derive(Template)]
#[template(path = "staff/quarantine.html")]
struct QuarantinePage {
    layout: Layout,
    items: Vec<QuarantineRow>,
    csrf: String,
    /// Set when a release found the message handled already.
    already_handled: bool,
}

#[derive(Deserialize)]
struct QuarantineQuery {
    #[serde(default)]
    redan: Option<String>,
}

/// Mail the intake could not take in, for manual handling (raw bytes downloadable; an
/// open one can be released as a deviation).
async fn quarantine_page(
    State(state): State<AppState>,
    Staff(who): Staff,
    csrf: CsrfToken,
    Query(q): Query<QuarantineQuery>,
) -> Result<Response, PageError> {
    if !authorize(&who, Action::HandleQuarantine, None) {
        return Err(PageError::Forbidden);
    }
    let items = state
        .intake
        .view()
        .read()
        .quarantine()
        .into_iter()
        .map(|q| QuarantineRow {
            id: q.id,
            received: stockholm_display(q.received_at),
            from: q.record.message.from.clone().unwrap_or_else(|| "–".into()),
            subject: q
                .record
                .message
                .subject
                .clone()
                .unwrap_or_else(|| "–".into()),
            reason: q.record.reason_sv.clone(),
            size: format!("{} byte", q.record.message.raw_size),
            state: match &q.resolved {
                Some(r) => format!(
                    "hanterat av {} {}: {}",
                    actor_sv(&r.by),
                    stockholm_display(r.at),
                    r.note
                ),
                None => "ej hanterat".into(),
            },
            open: q.resolved.is_none(),
        })
        .collect();
    let page = QuarantinePage {
        layout: Layout::staff(
            "Karantän för e-post",
            staff_nav(&who, "/staff/intake/quarantine"),
        ),
        items,
        csrf: form_token(&csrf)?,
        already_handled: q.redan.is_some(),
    };
    Ok((csrf, render(StatusCode::OK, &page)).into_response())
}

/// Releases a quarantined message as a deviation (or a comment on the one it answers)
/// and shows that deviation.
async fn release_quarantined(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path(id): Path<String>,
    CsrfForm { .. }: CsrfForm<Map<String, Value>>,
) -> Result<Response, PageError> {
    if !authorize(&who, Action::HandleQuarantine, None) {
        return Err(PageError::Forbidden);
    }
    let id = Uuid::parse_str(&id).map_err(|_| PageError::NotFound)?;
    match state
        .intake
        .release_quarantined(id, String::new(), &who.actor())
        .await
    {
        Ok(Released::Filed(r)) => match r.reference {
            Some(reference) => Ok(
                Redirect::to(&format!("/staff/deviations/{reference}?sparat=1")).into_response(),
            ),
            None => Ok(Redirect::to("/staff/intake/quarantine").into_response()),
        },
        Ok(Released::AlreadyHandled) => {
            Ok(Redirect::to("/staff/intake/quarantine?redan=1").into_response())
        }
        Ok(Released::NotFound) => Err(PageError::NotFound),
        Err(e) => {
            tracing::error!(error = %e, "releasing a quarantined e-mail failed");
            Err(PageError::Unavailable(
                "the message could not be released now; retry".into(),
            ))
        }
    }
}
