//! Renderings of an annual report: the canonical JSON (whose SHA-256 is the content hash),
//! CSV, the printable HTML page, and the e-mail to kommunstyrelsen and the CISO. Every
//! rendering is a pure function of the report, so re-rendering gives the same bytes.

use askama::Template;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Europe::Stockholm;

use super::charts::{charts, Chart};
use super::issue::IssuedReport;
use super::model::{AnnualReport, CountRow, MeasureStatus};
use crate::domain::{labels, Aspects, Level, PersonalDataBreach, Reference, Severity, Status};

/// The canonical JSON bytes of a report: pretty-printed, fields in declaration order,
/// ending with a newline. The API serves exactly these bytes.
pub fn to_json(report: &AnnualReport) -> Vec<u8> {
    // Serializing plain structs of strings, numbers and times cannot fail.
    let mut v = serde_json::to_vec_pretty(report).unwrap_or_default();
    v.push(b'\n');
    v
}

/// Hex SHA-256 of [`to_json`]: what an `AnnualReportIssued` event records, so anyone can
/// check a copy with `sha256sum`.
pub fn content_hash(report: &AnnualReport) -> String {
    avvik_events::hash_hex(&to_json(report))
}

/// Excel and LibreOffice run a cell that starts with one of these as a formula.
fn csv_cell(s: &str) -> String {
    match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{s}"),
        _ => s.to_string(),
    }
}

/// The report as CSV (RFC 4180, UTF-8): one figure per row, columns
/// `section,key,label_sv,measure,value`. Text that a spreadsheet would take for a formula
/// is prefixed with `'`.
pub fn to_csv(report: &AnnualReport) -> String {
    let mut rows: Vec<[String; 5]> = Vec::new();
    let mut push = |section: &str, key: &str, label: &str, measure: &str, value: String| {
        rows.push([
            section.into(),
            key.into(),
            label.into(),
            measure.into(),
            value,
        ]);
    };
    let r = report;
    push("meta", "year", "År", "value", r.year.to_string());
    push(
        "meta",
        "schema",
        "Rapportformat",
        "value",
        r.schema.to_string(),
    );
    push(
        "meta",
        "period",
        "Period från",
        "from",
        r.period.from.to_rfc3339(),
    );
    push(
        "meta",
        "period",
        "Period till",
        "to",
        r.period.to.to_rfc3339(),
    );
    push(
        "meta",
        "source",
        "Loggen t.o.m. händelse",
        "as_of_seq",
        r.source.as_of_seq.to_string(),
    );
    push(
        "meta",
        "source",
        "Tidpunkt för händelsen",
        "as_of_at",
        r.source
            .as_of_at
            .map(|t| t.to_rfc3339())
            .unwrap_or_default(),
    );
    push(
        "meta",
        "source",
        "Kedjehash",
        "head_hash",
        r.source.head_hash.clone(),
    );
    if !r.source.unreadable_records.is_empty() {
        push(
            "meta",
            "source",
            "Oläsbara händelser (ingår inte)",
            "unreadable_records",
            r.source
                .unreadable_records
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    let t = &r.totals;
    for (key, label, v) in [
        ("deviations", "Avvikelser", t.deviations),
        ("previous_year", "Avvikelser föregående år", t.previous_year),
        ("major", "Större", t.major),
        ("minor", "Mindre", t.minor),
        ("unclassified", "Ej klassade", t.unclassified),
        ("closed", "Avslutade", t.closed),
        (
            "open_at_year_end",
            "Öppna vid årets slut",
            t.open_at_year_end,
        ),
    ] {
        push("totals", key, label, "count", v.to_string());
    }
    let mut counts = |section: &str, list: &[CountRow]| {
        for c in list {
            push(section, &c.key, &c.label_sv, "count", c.count.to_string());
            push(
                section,
                &c.key,
                &c.label_sv,
                "previous_year",
                c.previous_year.to_string(),
            );
        }
    };
    counts("severity", &r.by_severity);
    counts("category", &r.by_category);
    counts("sector", &r.by_sector);
    counts("channel", &r.by_channel);
    for a in &r.by_aspect {
        push("aspect", &a.key, &a.label_sv, "count", a.count.to_string());
        push(
            "aspect",
            &a.key,
            &a.label_sv,
            "previous_year",
            a.previous_year.to_string(),
        );
        for (i, n) in a.levels.iter().enumerate() {
            push(
                "aspect",
                &a.key,
                &a.label_sv,
                &format!("level_{}", i + 1),
                n.to_string(),
            );
        }
    }
    for m in &r.by_month {
        let key = format!("{}-{:02}", r.year, m.month);
        for (measure, v) in [
            ("major", m.major),
            ("minor", m.minor),
            ("unclassified", m.unclassified),
            ("total", m.total),
        ] {
            push("month", &key, &m.label_sv, measure, v.to_string());
        }
    }
    for d in &r.major {
        let key = d.reference.to_string();
        let c = d.classification.as_ref();
        let completed = d
            .measures
            .iter()
            .filter(|m| m.status == MeasureStatus::Completed)
            .count();
        let overdue = d
            .measures
            .iter()
            .filter(|m| m.status == MeasureStatus::Overdue)
            .count();
        for (measure, v) in [
            ("title", d.title.clone()),
            ("status", status_key(d.status).to_string()),
            ("sector", d.sector.clone().unwrap_or_default()),
            ("reported_at", d.reported_at.to_rfc3339()),
            (
                "category",
                c.map(|c| c.category.clone()).unwrap_or_default(),
            ),
            (
                "aspects",
                c.map(|c| aspects_key(&c.aspects)).unwrap_or_default(),
            ),
            (
                "personal_data_breach",
                c.map(|c| pdb_key(c.personal_data_breach).to_string())
                    .unwrap_or_default(),
            ),
            (
                "nis2_significant",
                c.map(|c| c.nis2_significant.to_string())
                    .unwrap_or_default(),
            ),
            ("decisions", d.decisions.len().to_string()),
            ("measures", d.measures.len().to_string()),
            ("measures_completed", completed.to_string()),
            ("measures_overdue", overdue.to_string()),
        ] {
            push("major", &key, "Större avvikelse", measure, v);
        }
    }
    for g in &r.minor_by_category {
        let label = if g.category.is_empty() {
            "Ej klassad"
        } else {
            &g.category
        };
        push("minor", &g.category, label, "count", g.count.to_string());
        push(
            "minor",
            &g.category,
            label,
            "references",
            join_refs(&g.references, " "),
        );
    }
    let p = &r.personal_data;
    for (key, label, v) in [
        ("breaches", "Personuppgiftsincidenter", p.breaches),
        (
            "breaches_previous_year",
            "Personuppgiftsincidenter föregående år",
            p.breaches_previous_year,
        ),
        ("investigating", "Under utredning", p.investigating),
        (
            "suspected_by_reporter",
            "Rapportören angav att personuppgifter kan beröras",
            p.suspected_by_reporter,
        ),
    ] {
        push("personal_data", key, label, "count", v.to_string());
    }
    for f in &r.filings {
        let key = serde_json::to_value(f.kind)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        for (measure, v) in [
            ("required", f.required),
            ("filed_on_time", f.filed_on_time),
            ("filed_late", f.filed_late),
            ("not_filed", f.not_filed),
            ("overdue", f.overdue),
            ("pending", f.pending),
        ] {
            push("filing", &key, &f.label_sv, measure, v.to_string());
        }
        push(
            "filing",
            &key,
            &f.label_sv,
            "late_references",
            join_refs(&f.late_references, " "),
        );
    }
    for l in &r.lead_times {
        let opt = |v: Option<i64>| v.map(|s| s.to_string()).unwrap_or_default();
        push(
            "lead_time",
            &l.key,
            &l.label_sv,
            "count",
            l.count.to_string(),
        );
        push(
            "lead_time",
            &l.key,
            &l.label_sv,
            "median_seconds",
            opt(l.median_seconds),
        );
        push(
            "lead_time",
            &l.key,
            &l.label_sv,
            "p90_seconds",
            opt(l.p90_seconds),
        );
    }
    for o in &r.open_at_year_end {
        let key = o.reference.to_string();
        push(
            "open_at_year_end",
            &key,
            "Öppen vid årets slut",
            "title",
            o.title.clone(),
        );
        push(
            "open_at_year_end",
            &key,
            "Öppen vid årets slut",
            "status_at_year_end",
            status_key(o.status_at_year_end).into(),
        );
        push(
            "open_at_year_end",
            &key,
            "Öppen vid årets slut",
            "status",
            status_key(o.status).into(),
        );
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut write = || -> Result<Vec<u8>, Box<dyn std::error::Error>> {
        w.write_record(["section", "key", "label_sv", "measure", "value"])?;
        for row in &rows {
            w.write_record(row.iter().map(|c| csv_cell(c)))?;
        }
        w.flush()?;
        Ok(w.get_ref().clone())
    };
    match write() {
        Ok(bytes) => String::from_utf8(bytes).unwrap_or_default(),
        Err(e) => {
            // Writing to a Vec cannot fail; keep the signature total anyway.
            tracing::error!(error = %e, "CSV rendering failed");
            String::new()
        }
    }
}

fn join_refs(refs: &[Reference], sep: &str) -> String {
    refs.iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join(sep)
}

fn status_key(s: Status) -> &'static str {
    match s {
        Status::Received => "received",
        Status::Investigating => "investigating",
        Status::Closed => "closed",
    }
}

fn pdb_key(p: PersonalDataBreach) -> &'static str {
    match p {
        PersonalDataBreach::Yes => "yes",
        PersonalDataBreach::No => "no",
        PersonalDataBreach::Investigating => "investigating",
    }
}

fn aspect_list(a: &Aspects) -> [(&'static str, &'static str, Option<Level>); 4] {
    let l = labels::aspect_levels(a);
    let k = labels::ASPECTS;
    [
        (k[0].0, k[0].1, l[0]),
        (k[1].0, k[1].1, l[1]),
        (k[2].0, k[2].1, l[2]),
        (k[3].0, k[3].1, l[3]),
    ]
}

fn aspects_key(a: &Aspects) -> String {
    aspect_list(a)
        .iter()
        .filter_map(|(k, _, l)| l.map(|l| format!("{k}={}", l.get())))
        .collect::<Vec<_>>()
        .join(";")
}

fn aspects_sv(a: &Aspects) -> String {
    labels::aspects(a)
}

fn pdb_sv(p: PersonalDataBreach) -> &'static str {
    labels::personal_data_breach(p)
}

/// `2027-01-10 07:00` in Stockholm time.
pub fn datetime_sv(t: DateTime<Utc>) -> String {
    t.with_timezone(&Stockholm)
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

fn date_sv(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// A lead time for people: `3 dygn 4 tim`, `5 tim 12 min`, `45 min`.
pub fn duration_sv(seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m) = (s / 86_400, (s % 86_400) / 3_600, (s % 3_600) / 60);
    match (d, h, m) {
        (0, 0, 0) => "under 1 min".into(),
        (0, 0, m) => format!("{m} min"),
        (0, h, 0) => format!("{h} tim"),
        (0, h, m) => format!("{h} tim {m} min"),
        (d, 0, _) => format!("{d} dygn"),
        (d, h, _) => format!("{d} dygn {h} tim"),
    }
}

/// Who did something, for people: the account's address, or what the system part is.
fn who_sv(actor: &str) -> String {
    crate::domain::Actor::parse(actor).label_sv()
}

/// Change against the year before: `+3`, `−2` or `±0`.
fn change_sv(now: u64, before: u64) -> String {
    match now.cmp(&before) {
        std::cmp::Ordering::Greater => format!("+{}", now - before),
        std::cmp::Ordering::Less => format!("−{}", before - now),
        std::cmp::Ordering::Equal => "±0".into(),
    }
}

fn severity_sv(s: Option<Severity>) -> &'static str {
    labels::severity_or_unclassified(s)
}

// ---- the view the templates read: everything preformatted, no logic in templates ----

struct CountView {
    label: String,
    count: u64,
    previous: u64,
    change: String,
}

struct AspectView {
    label: String,
    count: u64,
    previous: u64,
    change: String,
    levels: [u64; 4],
}

struct MonthView {
    label: String,
    major: u64,
    minor: u64,
    unclassified: u64,
    total: u64,
}

struct DecisionView {
    text: String,
    who: String,
    at: String,
}

struct MeasureView {
    description: String,
    owner: String,
    due: String,
    status: String,
    overdue: bool,
    completed: String,
    note: String,
}

struct MajorView {
    reference: String,
    title: String,
    status: String,
    sector: String,
    reported: String,
    closed: String,
    category: String,
    aspects: String,
    personal_data_breach: String,
    nis2: String,
    rationale: String,
    classified_by: String,
    decisions: Vec<DecisionView>,
    measures: Vec<MeasureView>,
}

struct MinorView {
    category: String,
    count: u64,
    references: String,
}

struct FilingView {
    label: String,
    required: u64,
    on_time: u64,
    late: u64,
    not_filed: u64,
    overdue: u64,
    pending: u64,
    late_list: Vec<String>,
}

struct LeadView {
    label: String,
    count: u64,
    median: String,
    p90: String,
}

struct OpenView {
    reference: String,
    title: String,
    severity: String,
    status_at_end: String,
    status_now: String,
}

struct KeyFigure {
    label: String,
    value: String,
    note: String,
}

/// A chart as the templates use it.
struct ChartView {
    title: String,
    description: String,
    svg: String,
    content_id: String,
}

struct View {
    year: i32,
    previous_year: i32,
    draft: bool,
    key_figures: Vec<KeyFigure>,
    charts: Vec<ChartView>,
    by_severity: Vec<CountView>,
    by_aspect: Vec<AspectView>,
    by_category: Vec<CountView>,
    by_sector: Vec<CountView>,
    by_channel: Vec<CountView>,
    by_month: Vec<MonthView>,
    major: Vec<MajorView>,
    minor: Vec<MinorView>,
    breaches: u64,
    breaches_previous: u64,
    investigating: u64,
    suspected: u64,
    filings: Vec<FilingView>,
    lead_times: Vec<LeadView>,
    open_at_year_end: Vec<OpenView>,
    year_over: bool,
    as_of_seq: u64,
    as_of_at: String,
    head_hash: String,
    content_hash: String,
    /// "nr 12, 40" for records that could not be read; empty when all were.
    unreadable: String,
}

fn counts(list: &[CountRow]) -> Vec<CountView> {
    list.iter()
        .map(|c| CountView {
            label: c.label_sv.clone(),
            count: c.count,
            previous: c.previous_year,
            change: change_sv(c.count, c.previous_year),
        })
        .collect()
}

fn content_id(name: &str, report: &AnnualReport, hash: &str) -> String {
    format!(
        "{name}.{}.{}@avvik",
        report.year,
        hash.get(..16).unwrap_or(hash)
    )
}

fn view(report: &AnnualReport, draft: bool, chart_list: &[Chart]) -> View {
    let r = report;
    let hash = content_hash(r);
    let t = &r.totals;
    let key_figures = vec![
        KeyFigure {
            label: "Rapporterade avvikelser".into(),
            value: t.deviations.to_string(),
            note: format!(
                "{} föregående år ({})",
                t.previous_year,
                change_sv(t.deviations, t.previous_year)
            ),
        },
        KeyFigure {
            label: "Större avvikelser".into(),
            value: t.major.to_string(),
            note: format!("{} mindre, {} ej klassade", t.minor, t.unclassified),
        },
        KeyFigure {
            label: "Personuppgiftsincidenter".into(),
            value: r.personal_data.breaches.to_string(),
            note: format!("{} föregående år", r.personal_data.breaches_previous_year),
        },
        KeyFigure {
            label: "Öppna vid årets slut".into(),
            value: t.open_at_year_end.to_string(),
            note: format!("{} avslutade", t.closed),
        },
    ];
    let major = r
        .major
        .iter()
        .map(|d| {
            let c = d.classification.as_ref();
            MajorView {
                reference: d.reference.to_string(),
                title: d.title.clone(),
                status: labels::status(d.status).into(),
                sector: d.sector.clone().unwrap_or_else(|| "ej angiven".into()),
                reported: datetime_sv(d.reported_at),
                closed: d.closed_at.map(datetime_sv).unwrap_or_default(),
                category: c.map(|c| c.category.clone()).unwrap_or_default(),
                aspects: c.map(|c| aspects_sv(&c.aspects)).unwrap_or_default(),
                personal_data_breach: c
                    .map(|c| pdb_sv(c.personal_data_breach).to_string())
                    .unwrap_or_default(),
                nis2: c
                    .map(|c| labels::yes_no(c.nis2_significant).to_string())
                    .unwrap_or_default(),
                rationale: c.map(|c| c.rationale.clone()).unwrap_or_default(),
                classified_by: c
                    .map(|c| {
                        let again = if d.classification_count > 1 {
                            format!(", klassad {} gånger", d.classification_count)
                        } else {
                            String::new()
                        };
                        format!(
                            "{} ({}), {}{again}",
                            who_sv(&c.by),
                            c.role,
                            datetime_sv(c.at)
                        )
                    })
                    .unwrap_or_default(),
                decisions: d
                    .decisions
                    .iter()
                    .map(|x| DecisionView {
                        text: x.text.clone(),
                        who: format!("{} ({})", who_sv(&x.by), x.role),
                        at: datetime_sv(x.at),
                    })
                    .collect(),
                measures: d
                    .measures
                    .iter()
                    .map(|m| MeasureView {
                        description: m.description.clone(),
                        owner: m.owner.clone(),
                        due: date_sv(m.due),
                        status: m.status.label_sv().into(),
                        overdue: m.status == MeasureStatus::Overdue,
                        completed: m.completed_at.map(datetime_sv).unwrap_or_default(),
                        note: m.completion_note.clone().unwrap_or_default(),
                    })
                    .collect(),
            }
        })
        .collect();
    View {
        year: r.year,
        previous_year: r.year - 1,
        draft,
        key_figures,
        charts: chart_list
            .iter()
            .map(|c| ChartView {
                title: c.title_sv.clone(),
                description: c.description_sv.clone(),
                svg: c.svg.clone(),
                content_id: content_id(c.name, r, &hash),
            })
            .collect(),
        by_severity: counts(&r.by_severity),
        by_aspect: r
            .by_aspect
            .iter()
            .map(|a| AspectView {
                label: a.label_sv.clone(),
                count: a.count,
                previous: a.previous_year,
                change: change_sv(a.count, a.previous_year),
                levels: a.levels,
            })
            .collect(),
        by_category: counts(&r.by_category),
        by_sector: counts(&r.by_sector),
        by_channel: counts(&r.by_channel),
        by_month: r
            .by_month
            .iter()
            .map(|m| MonthView {
                label: m.label_sv.clone(),
                major: m.major,
                minor: m.minor,
                unclassified: m.unclassified,
                total: m.total,
            })
            .collect(),
        major,
        minor: r
            .minor_by_category
            .iter()
            .map(|g| MinorView {
                category: if g.category.is_empty() {
                    "Ej klassad".into()
                } else {
                    g.category.clone()
                },
                count: g.count,
                references: join_refs(&g.references, ", "),
            })
            .collect(),
        breaches: r.personal_data.breaches,
        breaches_previous: r.personal_data.breaches_previous_year,
        investigating: r.personal_data.investigating,
        suspected: r.personal_data.suspected_by_reporter,
        filings: r
            .filings
            .iter()
            .map(|f| FilingView {
                label: f.label_sv.clone(),
                required: f.required,
                on_time: f.filed_on_time,
                late: f.filed_late,
                not_filed: f.not_filed,
                overdue: f.overdue,
                pending: f.pending,
                late_list: f.late_references.iter().map(|r| r.to_string()).collect(),
            })
            .collect(),
        lead_times: r
            .lead_times
            .iter()
            .map(|l| LeadView {
                label: l.label_sv.clone(),
                count: l.count,
                median: l.median_seconds.map(duration_sv).unwrap_or("–".into()),
                p90: l.p90_seconds.map(duration_sv).unwrap_or("–".into()),
            })
            .collect(),
        open_at_year_end: r
            .open_at_year_end
            .iter()
            .map(|o| OpenView {
                reference: o.reference.to_string(),
                title: o.title.clone(),
                severity: severity_sv(o.severity).into(),
                status_at_end: labels::status(o.status_at_year_end).into(),
                status_now: labels::status(o.status).into(),
            })
            .collect(),
        year_over: r.source.as_of_at.is_some_and(|t| t >= r.period.to),
        as_of_seq: r.source.as_of_seq,
        as_of_at: r.source.as_of_at.map(datetime_sv).unwrap_or("–".into()),
        head_hash: r.source.head_hash.clone(),
        content_hash: hash,
        unreadable: r
            .source
            .unreadable_records
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

#[derive(Template)]
#[template(path = "report/annual.html")]
struct AnnualPage<'a> {
    v: &'a View,
}

#[derive(Template)]
#[template(path = "report/annual_email.html")]
struct AnnualEmailHtml<'a> {
    v: &'a View,
    link: &'a str,
    reissue: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "report/annual_email.txt")]
struct AnnualEmailText<'a> {
    v: &'a View,
    link: &'a str,
    reissue: Option<&'a str>,
}

fn render_or_notice(t: &dyn askama::DynTemplate) -> String {
    t.dyn_render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "report template failed");
        "Rapporten kunde inte visas.".into()
    })
}

/// The printable page (`/staff/reports/{year}`): a complete HTML document in Swedish with
/// the charts as inline SVG, a print stylesheet and no script.
pub fn render_html(report: &AnnualReport) -> String {
    let v = view(report, false, &charts(report));
    render_or_notice(&AnnualPage { v: &v })
}

/// Like [`render_html`], marked as a draft: for a year whose report is not issued yet.
pub fn render_draft_html(report: &AnnualReport) -> String {
    let v = view(report, true, &charts(report));
    render_or_notice(&AnnualPage { v: &v })
}

/// An image carried in the e-mail as a `multipart/related` part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineImage {
    /// Without angle brackets; the HTML refers to it as `cid:<content_id>`.
    pub content_id: String,
    pub filename: String,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub description_sv: String,
}

/// The annual report e-mail, ready to be put into MIME by the outbox.
///
/// Structure to build: `multipart/alternative` of `text` (text/plain; charset=utf-8) and a
/// `multipart/related` holding `html` (text/html; charset=utf-8) followed by each image as
/// an inline part with `Content-ID: <content_id>` and `Content-Disposition: inline;
/// filename=…`. The charts are attached images (image/svg+xml) referenced with `cid:`
/// rather than `<svg>` in the HTML, because webmail sanitizers drop inline `<svg>` while
/// keeping `<img>` with its alt text; the numbers behind every chart are also in tables
/// in the HTML and in the text part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportEmail {
    pub subject: String,
    pub text: String,
    pub html: String,
    pub images: Vec<InlineImage>,
}

/// Renders the e-mail for an issued report. `report_url` is the absolute address of the
/// printable page, e.g. `{base_url}/staff/reports/2026`.
pub fn render_email(report: &AnnualReport, issue: &IssuedReport, report_url: &str) -> ReportEmail {
    let chart_list = charts(report);
    let v = view(report, false, &chart_list);
    let reissue = issue
        .event
        .reissue_of
        .is_some()
        .then(|| issue.event.reason.as_deref().unwrap_or(""));
    let mut subject = format!("Årsrapport informationssäkerhetsavvikelser {}", report.year);
    if issue.event.edition > 1 {
        subject.push_str(&format!(" (utgåva {})", issue.event.edition));
    }
    let html = render_or_notice(&AnnualEmailHtml {
        v: &v,
        link: report_url,
        reissue,
    });
    let text = render_or_notice(&AnnualEmailText {
        v: &v,
        link: report_url,
        reissue,
    });
    let images = chart_list
        .iter()
        .zip(&v.charts)
        .map(|(c, cv)| InlineImage {
            content_id: cv.content_id.clone(),
            filename: format!("{}-{}.svg", c.name, report.year),
            content_type: "image/svg+xml",
            body: c.svg.as_bytes().to_vec(),
            description_sv: c.description_sv.clone(),
        })
        .collect();
    ReportEmail {
        subject,
        text,
        html,
        images,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_swedish() {
        assert_eq!(duration_sv(0), "under 1 min");
        assert_eq!(duration_sv(45 * 60 + 30), "45 min");
        assert_eq!(duration_sv(5 * 3600 + 12 * 60), "5 tim 12 min");
        assert_eq!(duration_sv(3 * 86_400 + 4 * 3600 + 59), "3 dygn 4 tim");
        assert_eq!(duration_sv(2 * 3600), "2 tim");
        assert_eq!(duration_sv(2 * 86_400 + 30 * 60), "2 dygn");
    }

    #[test]
    fn csv_cells_cannot_become_formulas() {
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(csv_cell("-1+2"), "'-1+2");
        assert_eq!(csv_cell("Nätfiske"), "Nätfiske");
    }
}
