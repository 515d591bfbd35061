//! The register: every deviation the user may see, filtered, sorted and paged.

use crate::web::Routes;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use chrono_tz::Europe::Stockholm;
use serde::Deserialize;

use super::{staff_nav, status_class};
use crate::auth::{authorize, Action, Staff};
use crate::domain::{labels, Deviation, Severity, Status};
use crate::export::register::short_kind;
use crate::web::api::{filtered, ListQuery};
use crate::web::pages::{render, stockholm_display, Layout, PageError};
use crate::web::AppState;

pub(super) fn routes() -> Routes {
    Routes::new()
        .get("/staff", register_page)
        .post("/staff/merge", merge)
}

struct Marker {
    text: String,
    overdue: bool,
}

struct Row {
    /// May be chosen for the merge form (the user may classify it).
    can_merge: bool,
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
    csrf: String,
    /// Show the merge form (some rows may be linked by this user).
    merge: bool,
    /// Only the user's own cases (owner or deputy).
    mine: bool,
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
    /// The export of every row the filters give, in this sort.
    xlsx_href: String,
    csv_href: String,
}

#[derive(Deserialize, Default)]
struct RegisterQuery {
    #[serde(flatten)]
    list: ListQuery,
    sort: Option<String>,
    page: Option<usize>,
}

const PAGE_SIZE: usize = 50;

/// The register's sort when none is asked for: newest reference first.
pub(crate) const DEFAULT_SORT: &str = "-reference";

fn markers(d: &Deviation, now: DateTime<Utc>, triage_days: u32) -> Vec<Marker> {
    let mut out: Vec<Marker> = Vec::new();
    if let Some(t) = crate::domain::workdays::triage(d, triage_days, now) {
        if t.overdue {
            out.push(Marker {
                text: "Försenad: bedömning".into(),
                overdue: true,
            });
        } else if !t.done {
            out.push(Marker {
                text: format!("Bedöms senast {}", stockholm_display(t.due)),
                overdue: false,
            });
        }
    }
    if let Some(o) = &d.owner {
        out.push(Marker {
            text: format!("Handläggare {o}"),
            overdue: false,
        });
    }
    out.extend(
        d.deadlines
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
            }),
    );
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

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// The register's merge form: the chosen deviations become reports of one incident.
#[derive(Debug, Default)]
struct MergeResult {
    refused: Vec<String>,
}

#[derive(Template)]
#[template(path = "staff/merge.html")]
struct MergePage {
    layout: Layout,
    incident: String,
    merged: usize,
    refused: Vec<String>,
}

async fn merge(
    State(state): State<AppState>,
    Staff(who): Staff,
    crate::web::csrf::CsrfForm { csrf, form }: crate::web::csrf::CsrfForm<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    use crate::web::body::{Field, Unknown};
    use crate::web::commands::IncidentLinkBody;
    use axum::response::IntoResponse;
    // Merging starts from the register: who cannot open it cannot post its form.
    if !authorize(&who, Action::ListDeviations, None) {
        return Err(PageError::Forbidden);
    }
    let get = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let incident = get("incident").to_ascii_uppercase();
    let relation = match get("relation").as_str() {
        "duplicate" => crate::domain::deviation::LinkKind::Duplicate,
        _ => crate::domain::deviation::LinkKind::Report,
    };
    let mut refs: Vec<String> = form
        .iter()
        .filter(|(n, _)| n == "refs")
        .map(|(_, v)| v.trim().to_ascii_uppercase())
        .filter(|r| *r != incident)
        .collect();
    refs.dedup();
    let mut out = MergeResult::default();
    if crate::domain::Reference::parse(&incident).is_none() {
        out.refused
            .push("Ange incidentens referens, till exempel AVV-2026-0001.".into());
    }
    if refs.is_empty() {
        out.refused
            .push("Markera de avvikelser som ska kopplas till incidenten.".into());
    }
    let mut merged = 0;
    if out.refused.is_empty() {
        for r in &refs {
            let d = match crate::domain::Reference::parse(r).and_then(|x| {
                let reg = state.services.register.read();
                reg.by_reference(x)
                    .filter(|d| authorize(&who, Action::ViewDeviation, Some(d)))
                    .cloned()
            }) {
                Some(d) => d,
                None => {
                    out.refused.push(format!("{r}: avvikelsen finns inte."));
                    continue;
                }
            };
            if !authorize(&who, Action::Classify, Some(&d)) {
                out.refused
                    .push(format!("{r}: du får inte hantera avvikelsen."));
                continue;
            }
            let body = IncidentLinkBody {
                incident: Field::Given(incident.clone()),
                relation: Field::Given(relation),
                unknown: Unknown::new(),
            };
            let parsed = {
                let reg = state.services.register.read();
                body.parse(|x| crate::web::api::incident_for(&reg, &who, &d, x))
            };
            let cmd = match parsed {
                Ok(c) => c,
                Err(crate::web::error::ApiError::Validation(e)) => {
                    let why: Vec<String> = e.into_iter().map(|e| e.message_sv).collect();
                    out.refused.push(format!("{r}: {}", why.join(" ")));
                    continue;
                }
                Err(e) => {
                    out.refused.push(format!("{r}: {e}"));
                    continue;
                }
            };
            match state.services.execute(d.reference, cmd, &who.actor()).await {
                Ok(_) => merged += 1,
                Err(crate::service::ServiceError::Domain(e)) => {
                    out.refused.push(format!("{r}: {}", e.message_sv()))
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    if out.refused.is_empty() {
        return Ok(
            axum::response::Redirect::to(&format!("/staff/deviations/{incident}?sparat=1"))
                .into_response(),
        );
    }
    let page = MergePage {
        layout: Layout::staff("Koppla till incident", staff_nav(&who, "/staff")),
        incident,
        merged,
        refused: out.refused,
    };
    Ok((csrf, render(StatusCode::CONFLICT, &page)).into_response())
}

/// The filters and the sort as query pairs (empty filters left out).
fn query_pairs<'a>(l: &ListQuery, sort: &str) -> Vec<(&'a str, String)> {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    for (k, v) in [
        ("status", &l.status),
        ("severity", &l.severity),
        ("sector", &l.sector),
        ("category", &l.category),
        ("q", &l.q),
        ("mine", &l.mine),
        ("incident", &l.incident),
    ] {
        if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
            pairs.push((k, v.clone()));
        }
    }
    if let Some(y) = l.year {
        pairs.push(("year", y.to_string()));
    }
    pairs.push(("sort", sort.to_string()));
    pairs
}

fn encode_pairs(pairs: Vec<(&str, String)>) -> String {
    let encoded: Vec<String> = pairs
        .into_iter()
        .map(|(k, v)| format!("{k}={}", urlencode(&v)))
        .collect();
    encoded.join("&")
}

fn query_string(q: &RegisterQuery, sort: &str, page: usize) -> String {
    let mut pairs = query_pairs(&q.list, sort);
    if page > 1 {
        pairs.push(("page", page.to_string()));
    }
    format!("/staff?{}", encode_pairs(pairs))
}

/// The register export (`xlsx` or `csv`) with these filters and this sort.
pub(crate) fn export_href(l: &ListQuery, sort: &str, format: &str) -> String {
    let mut pairs = vec![("format", format.to_string())];
    pairs.extend(query_pairs(l, sort));
    format!("/staff/export?{}", encode_pairs(pairs))
}

/// Sorts the register as the page does: `sort` is a column key (`reference`, `title`,
/// `sector`, `status`, `severity`, `reported`, `due`), `-` in front for descending.
pub(crate) fn sort_register(list: &mut [&Deviation], sort: &str) {
    let (key, desc) = match sort.strip_prefix('-') {
        Some(k) => (k, true),
        None => (sort, false),
    };
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
    match key {
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
    csrf: axum_csrf::CsrfToken,
    Query(q): Query<RegisterQuery>,
) -> Result<Response, PageError> {
    use axum::response::IntoResponse;
    if !authorize(&who, Action::ListDeviations, None) {
        return Err(PageError::Forbidden);
    }
    let now = state.services.clock.now();
    let sort = q.sort.clone().unwrap_or_else(|| DEFAULT_SORT.into());
    let (key, desc) = match sort.strip_prefix('-') {
        Some(k) => (k.to_string(), true),
        None => (sort.clone(), false),
    };
    let reg = state.services.register.read();
    let mut list = filtered(&reg, &who, &q.list);
    sort_register(&mut list, &sort);
    let total = list.len();
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    let page = q.page.unwrap_or(1).clamp(1, pages);
    let owed = state.notify.deviations_owed();
    let mut reports_of: std::collections::HashMap<uuid::Uuid, usize> =
        std::collections::HashMap::new();
    for x in reg.list() {
        if let Some(l) = &x.incident {
            *reports_of.entry(l.id).or_default() += 1;
        }
    }
    let rows: Vec<Row> = list
        .into_iter()
        .skip((page - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .map(|d| Row {
            can_merge: d.status != Status::Closed
                && d.shredded.is_none()
                && authorize(&who, Action::Classify, Some(d)),
            reference: d.reference.to_string(),
            title: d.title.clone(),
            sector: d.sector.clone().unwrap_or_default(),
            status: labels::status(d.status),
            status_class: status_class(d.status),
            severity: labels::severity_or_unclassified(d.severity),
            major: d.severity == Some(Severity::Major),
            reported: stockholm_display(d.reported_at),
            markers: {
                let mut m = markers(d, now, state.config.notifications.triage_working_days);
                if let Some(l) = &d.incident {
                    m.insert(
                        0,
                        Marker {
                            text: format!("{} {}", capitalized(l.relation.label_sv()), l.reference),
                            overdue: false,
                        },
                    );
                }
                if let Some(n) = reports_of.get(&d.id) {
                    m.insert(
                        0,
                        Marker {
                            text: format!("Incident med {n} kopplade rapporter"),
                            overdue: false,
                        },
                    );
                }
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
    let mine = matches!(q.list.mine.as_deref(), Some("1" | "true" | "ja"));
    let merge = rows.iter().any(|r| r.can_merge);
    let page_view = RegisterPage {
        csrf: crate::web::csrf::form_token(&csrf)?,
        merge,
        layout: if mine {
            Layout::staff("Mina ärenden", staff_nav(&who, "/staff?mine=1"))
        } else {
            Layout::staff("Avvikelser", staff_nav(&who, "/staff"))
        },
        mine,
        year_value: q.list.year.map(|y| y.to_string()).unwrap_or_default(),
        statuses: [Status::Received, Status::Investigating, Status::Closed]
            .iter()
            .map(|s| (status_class(*s).to_string(), labels::status(*s)))
            .collect(),
        severities: vec![
            ("major".into(), labels::severity(Severity::Major)),
            ("minor".into(), labels::severity(Severity::Minor)),
            ("none".into(), labels::severity_or_unclassified(None)),
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
        xlsx_href: export_href(&q.list, &sort, "xlsx"),
        csv_href: export_href(&q.list, &sort, "csv"),
        prev_href: (page > 1).then(|| query_string(&q, &sort, page - 1)),
        next_href: (page < pages).then(|| query_string(&q, &sort, page + 1)),
        filter: q.list,
    };
    Ok((csrf, render(StatusCode::OK, &page_view)).into_response())
}
