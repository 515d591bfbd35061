//! Renderings of an annual report for people: the printable HTML page and the e-mail to
//! kommunstyrelsen and the CISO (the JSON and CSV are in `export`). Every rendering is a
//! pure function of the report, so re-rendering gives the same bytes.

use askama::Template;

use super::charts::{charts, Chart};
use super::export::content_hash;
use super::format::*;
use super::issue::IssuedReport;
use super::model::{AnnualReport, CountRow, MeasureStatus};
use crate::domain::labels;

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
    authorities: crate::report::model::AuthorityCounts,
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
                "{} föregående år ({}){}",
                t.previous_year,
                change_sv(t.deviations, t.previous_year),
                if t.linked_reports > 0 {
                    format!(
                        "; därtill {} rapporter om samma incidenter, räknade en gång",
                        t.linked_reports
                    )
                } else {
                    String::new()
                }
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
        authorities: r.authorities.clone(),
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
}
