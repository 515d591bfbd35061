//! The register: every deviation the user may see, filtered, sorted and paged.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
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

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/staff", get(register_page))
}

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

/// The filters and the sort as query pairs (empty filters left out).
fn query_pairs<'a>(l: &ListQuery, sort: &str) -> Vec<(&'a str, String)> {
    let mut pairs: Vec<(&str, String)> = Vec::new();
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
    Query(q): Query<RegisterQuery>,
) -> Result<Response, PageError> {
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
    let rows: Vec<Row> = list
        .into_iter()
        .skip((page - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .map(|d| Row {
            reference: d.reference.to_string(),
            title: d.title.clone(),
            sector: d.sector.clone().unwrap_or_default(),
            status: labels::status(d.status),
            status_class: status_class(d.status),
            severity: labels::severity_or_unclassified(d.severity),
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
    Ok(render(StatusCode::OK, &page_view))
}
