//! The annual report's content and its computation from deviations. Pure: no clock, no
//! store, no configuration, so the same inputs always give the same report (and the same
//! bytes when rendered), which is what lets an issued report be re-rendered exactly.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use chrono_tz::Europe::Stockholm;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::deviation::{ClassificationEntry, Decision, Deviation, Measure};
use crate::domain::{
    stockholm_year, Aspects, Channel, FilingKind, PersonalDataBreach, Reference, Severity, Status,
};

/// Version of the report's layout. Bump it (and keep the old computation) if the content
/// ever changes, so reports issued under an older version still re-render identically.
pub const REPORT_SCHEMA: u16 = 1;

/// The report on one Stockholm calendar year, as the log stood at `source.as_of_seq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnnualReport {
    pub schema: u16,
    pub year: i32,
    pub period: Period,
    /// The history the report was built from.
    pub source: Source,
    pub totals: Totals,
    /// major, minor, unclassified; always all three.
    pub by_severity: Vec<CountRow>,
    /// confidentiality, integrity, availability, traceability; always all four.
    pub by_aspect: Vec<AspectRow>,
    /// Categories seen this year or the year before, most frequent first; `key` "" is
    /// "not classified".
    pub by_category: Vec<CountRow>,
    /// Sectors seen this year or the year before, most frequent first; `key` "" is "no
    /// sector given".
    pub by_sector: Vec<CountRow>,
    /// web, email, api (not from a supplier) and supplier; always all four.
    pub by_channel: Vec<CountRow>,
    /// January to December (month of `reported_at`, Stockholm time).
    pub by_month: Vec<MonthRow>,
    /// Every major deviation of the year, by reference.
    pub major: Vec<MajorDeviation>,
    /// Minor deviations grouped by category, largest group first.
    pub minor_by_category: Vec<MinorGroup>,
    pub personal_data: PersonalData,
    /// One row per statutory filing kind, in a fixed order.
    pub filings: Vec<FilingRow>,
    /// Breaches notified, late, the people affected informed; NIS2 incidents by phase.
    /// Absent (zero) in reports issued before these were counted.
    #[serde(default)]
    pub authorities: AuthorityCounts,
    pub lead_times: Vec<LeadTimeRow>,
    /// Deviations of the year that were not closed when the year ended (or at `as_of`, if
    /// the report was made before the year ended).
    pub open_at_year_end: Vec<OpenDeviation>,
}

/// `[from, to)`: Stockholm midnight on 1 January to Stockholm midnight on 1 January after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Period {
    /// The Stockholm calendar year; `None` for a year chrono cannot represent.
    pub fn of_year(year: i32) -> Option<Self> {
        let start = |y: i32| {
            let d = NaiveDate::from_ymd_opt(y, 1, 1)?.and_hms_opt(0, 0, 0)?;
            // Midnight on 1 January is never in a DST gap or fold in Stockholm.
            Stockholm
                .from_local_datetime(&d)
                .earliest()
                .map(|t| t.with_timezone(&Utc))
        };
        Some(Period {
            from: start(year)?,
            to: start(year.checked_add(1)?)?,
        })
    }
}

/// Which history a report was computed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// Records 1..=as_of_seq were folded.
    pub as_of_seq: u64,
    /// Hex SHA-256 of record `as_of_seq`'s stored bytes (64 zeros for an empty log): the
    /// head of the log the report pins. `avvik verify --expect-head SEQ:HASH` checks it
    /// against an export cut at that seq.
    pub head_hash: String,
    /// Commit time of record `as_of_seq` (absent for an empty log).
    pub as_of_at: Option<DateTime<Utc>>,
    /// Records up to `as_of_seq` that could not be read and are not in the figures
    /// (never expected; the report says so rather than failing or hiding it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable_records: Vec<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub deviations: u64,
    pub previous_year: u64,
    pub major: u64,
    pub minor: u64,
    pub unclassified: u64,
    /// Closed as of `as_of`.
    pub closed: u64,
    pub open_at_year_end: u64,
    /// Reports of the year linked to an incident or marked duplicates: counted once, as
    /// their incident, nowhere else. Absent (zero) in reports issued before.
    #[serde(default)]
    pub linked_reports: u64,
}

/// A count this year with the same count for the year before (the trend).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountRow {
    pub key: String,
    pub label_sv: String,
    pub count: u64,
    pub previous_year: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AspectRow {
    /// confidentiality | integrity | availability | traceability
    pub key: String,
    pub label_sv: String,
    /// Deviations that affected this aspect at any level.
    pub count: u64,
    pub previous_year: u64,
    /// Counts at consequence level 1, 2, 3 and 4.
    pub levels: [u64; 4],
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonthRow {
    /// 1..=12
    pub month: u32,
    pub label_sv: String,
    pub major: u64,
    pub minor: u64,
    pub unclassified: u64,
    pub total: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MajorDeviation {
    pub reference: Reference,
    pub title: String,
    pub status: Status,
    pub sector: Option<String>,
    pub reported_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    /// The classification in force at `as_of`.
    pub classification: Option<ClassificationSummary>,
    /// How many times it was (re)classified.
    pub classification_count: u32,
    pub decisions: Vec<DecisionSummary>,
    pub measures: Vec<MeasureSummary>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationSummary {
    pub severity: Severity,
    pub aspects: Aspects,
    pub category: String,
    pub personal_data_breach: PersonalDataBreach,
    pub nis2_significant: bool,
    pub rationale: String,
    pub by: String,
    pub role: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionSummary {
    pub text: String,
    pub by: String,
    pub role: String,
    pub at: DateTime<Utc>,
}

/// Where a measure stood at `as_of`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MeasureStatus {
    Completed,
    /// Not completed, due date not passed.
    Open,
    /// Not completed and its due date (Stockholm) is before the `as_of` date.
    Overdue,
}

impl MeasureStatus {
    pub fn label_sv(self) -> &'static str {
        match self {
            MeasureStatus::Completed => "genomförd",
            MeasureStatus::Open => "pågår",
            MeasureStatus::Overdue => "försenad",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasureSummary {
    pub description: String,
    pub owner: String,
    pub due: NaiveDate,
    pub status: MeasureStatus,
    pub completed_at: Option<DateTime<Utc>>,
    pub completion_note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinorGroup {
    /// The category; "" when a minor deviation has none (cannot happen today: a severity
    /// always comes with a category).
    pub category: String,
    pub count: u64,
    pub references: Vec<Reference>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonalData {
    /// Classified as a personal-data breach.
    pub breaches: u64,
    pub breaches_previous_year: u64,
    /// Still under investigation.
    pub investigating: u64,
    /// The reporter thought personal data might be involved.
    pub suspected_by_reporter: u64,
}

/// A statutory filing kind: how many were required and how they were settled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilingRow {
    pub kind: FilingKind,
    pub label_sv: String,
    /// Deviations of the year with this statutory clock.
    pub required: u64,
    pub filed_on_time: u64,
    pub filed_late: u64,
    /// A reasoned decision not to file was recorded.
    pub not_filed: u64,
    /// Not settled and past due at `as_of`.
    pub overdue: u64,
    /// Not settled and not yet due at `as_of`.
    pub pending: u64,
    /// Filed late or overdue.
    pub late_references: Vec<Reference>,
}

/// What went to the authorities and to the people affected, over the deviations of the
/// year.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorityCounts {
    /// Breaches whose initial notification to IMY was filed.
    pub breaches_notified: u64,
    /// Of those, filed after the 72 hours.
    pub breaches_notified_late: u64,
    /// Breaches whose people affected were told (art. 34: a notice recorded as sent).
    pub affected_informed: u64,
    /// Breaches with a decision not to tell them (no high risk, or an art. 34(3) ground).
    pub affected_not_informed: u64,
    /// Deviations marked as a significant NIS2 incident, or with a NIS2 filing.
    pub nis2_incidents: u64,
    /// Per NIS2 phase, in order: how many incidents had it filed.
    pub nis2_by_phase: Vec<PhaseCount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseCount {
    pub kind: FilingKind,
    pub label_sv: String,
    pub filed: u64,
}

/// Median and 90th percentile of one lead time, in whole seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadTimeRow {
    /// discovery_to_report | report_to_classification | report_to_closing
    pub key: String,
    pub label_sv: String,
    /// How many deviations the figures are over.
    pub count: u64,
    pub median_seconds: Option<i64>,
    pub p90_seconds: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenDeviation {
    pub reference: Reference,
    pub title: String,
    pub severity: Option<Severity>,
    pub status_at_year_end: Status,
    /// Status at `as_of`.
    pub status: Status,
}

/// Median: the middle value, or the mean of the two middle values rounded down to a whole
/// second. 90th percentile: nearest rank, the value at rank ⌈0.9·n⌉ of the sorted values.
pub fn median_and_p90(values: &[i64]) -> (Option<i64>, Option<i64>) {
    if values.is_empty() {
        return (None, None);
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]).div_euclid(2)
    };
    let rank = (9 * n).div_ceil(10).max(1);
    (Some(median), Some(v[rank - 1]))
}

pub fn month_label_sv(month: u32) -> &'static str {
    const M: [&str; 12] = [
        "jan", "feb", "mar", "apr", "maj", "jun", "jul", "aug", "sep", "okt", "nov", "dec",
    ];
    M.get(month.wrapping_sub(1) as usize).copied().unwrap_or("")
}

fn severity_key(s: Option<Severity>) -> &'static str {
    match s {
        Some(Severity::Major) => "major",
        Some(Severity::Minor) => "minor",
        None => "unclassified",
    }
}

fn severity_label(s: Option<Severity>) -> &'static str {
    match s {
        Some(Severity::Major) => "Större avvikelser",
        Some(Severity::Minor) => "Mindre avvikelser",
        None => "Ej klassade",
    }
}

pub fn channel_label_sv(c: Channel) -> String {
    crate::domain::labels::channel_heading(c)
}

fn channel_key(c: Channel) -> &'static str {
    match c {
        Channel::Web => "web",
        Channel::Email => "email",
        Channel::Api => "api",
    }
}

use crate::domain::labels::{aspect_levels, ASPECTS};

/// Counts keyed by a free-text value, ordered most frequent (this year) first, then by
/// the previous year's count, then by key. Only keys seen in either year appear.
fn free_text_rows(
    this: &BTreeMap<String, u64>,
    prev: &BTreeMap<String, u64>,
    none_label: &str,
) -> Vec<CountRow> {
    let mut keys: Vec<&String> = this.keys().chain(prev.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut rows: Vec<CountRow> = keys
        .into_iter()
        .map(|k| CountRow {
            key: k.clone(),
            label_sv: if k.is_empty() {
                none_label.to_string()
            } else {
                k.clone()
            },
            count: this.get(k).copied().unwrap_or(0),
            previous_year: prev.get(k).copied().unwrap_or(0),
        })
        .collect();
    rows.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(b.previous_year.cmp(&a.previous_year))
            .then(a.key.cmp(&b.key))
    });
    rows
}

fn summary_of(entry: &ClassificationEntry) -> ClassificationSummary {
    let c = &entry.classification;
    ClassificationSummary {
        severity: c.severity,
        aspects: c.aspects,
        category: c.category.clone(),
        personal_data_breach: c.personal_data_breach,
        nis2_significant: c.nis2_significant,
        rationale: c.rationale.clone(),
        by: entry.by.clone(),
        role: c.role.clone(),
        at: entry.at,
    }
}

fn decision_of(d: &Decision) -> DecisionSummary {
    DecisionSummary {
        text: d.text.clone(),
        by: d.by.clone(),
        role: d.role.clone(),
        at: d.at,
    }
}

fn measure_of(m: &Measure, as_of_date: NaiveDate) -> MeasureSummary {
    let status = match m.completed_at {
        Some(_) => MeasureStatus::Completed,
        None if m.due < as_of_date => MeasureStatus::Overdue,
        None => MeasureStatus::Open,
    };
    MeasureSummary {
        description: m.description.clone(),
        owner: m.owner.clone(),
        due: m.due,
        status,
        completed_at: m.completed_at,
        completion_note: m.completion_note.clone(),
    }
}

/// Computes the report for `year` from the deviations as they stood at `source`.
/// `year_end_status` holds each of the year's deviations' status when the year ended (or
/// at `as_of`, if earlier); a deviation missing from it counts with its current status.
pub fn compute<'a>(
    year: i32,
    period: Period,
    source: Source,
    deviations: impl IntoIterator<Item = &'a Deviation>,
    year_end_status: &HashMap<Uuid, Status>,
) -> AnnualReport {
    let mut this_year: Vec<&Deviation> = Vec::new();
    let mut prev_year: Vec<&Deviation> = Vec::new();
    let mut linked_reports = 0u64;
    for d in deviations {
        let y = stockholm_year(d.reported_at);
        // Reports of an incident and duplicates are counted once, as their incident.
        if d.incident.is_some() {
            if y == year {
                linked_reports += 1;
            }
            continue;
        }
        if y == year {
            this_year.push(d);
        } else if Some(y) == year.checked_sub(1) {
            prev_year.push(d);
        }
    }
    this_year.sort_by_key(|d| d.reference);
    prev_year.sort_by_key(|d| d.reference);
    let as_of_at = source.as_of_at.unwrap_or(period.from);
    let as_of_date = as_of_at.with_timezone(&Stockholm).date_naive();

    let count_if = |list: &[&Deviation], f: &dyn Fn(&Deviation) -> bool| {
        list.iter().filter(|d| f(d)).count() as u64
    };

    let by_severity = [Some(Severity::Major), Some(Severity::Minor), None]
        .into_iter()
        .map(|s| CountRow {
            key: severity_key(s).into(),
            label_sv: severity_label(s).into(),
            count: count_if(&this_year, &|d| d.severity == s),
            previous_year: count_if(&prev_year, &|d| d.severity == s),
        })
        .collect::<Vec<_>>();

    let by_aspect = ASPECTS
        .iter()
        .enumerate()
        .map(|(i, (key, label, _))| {
            let mut levels = [0u64; 4];
            for d in &this_year {
                if let Some(l) = aspect_levels(&d.aspects)[i] {
                    if let Some(slot) = levels.get_mut(usize::from(l.get()).wrapping_sub(1)) {
                        *slot += 1;
                    }
                }
            }
            AspectRow {
                key: (*key).into(),
                label_sv: (*label).into(),
                count: levels.iter().sum(),
                previous_year: count_if(&prev_year, &|d| aspect_levels(&d.aspects)[i].is_some()),
                levels,
            }
        })
        .collect::<Vec<_>>();

    let tally = |list: &[&Deviation], f: &dyn Fn(&Deviation) -> String| {
        let mut m: BTreeMap<String, u64> = BTreeMap::new();
        for d in list {
            *m.entry(f(d)).or_default() += 1;
        }
        m
    };
    let category = |d: &Deviation| d.category.clone().unwrap_or_default();
    let sector = |d: &Deviation| d.sector.clone().unwrap_or_default();
    let by_category = free_text_rows(
        &tally(&this_year, &category),
        &tally(&prev_year, &category),
        "Ej klassad",
    );
    let by_sector = free_text_rows(
        &tally(&this_year, &sector),
        &tally(&prev_year, &sector),
        "Ingen sektor angiven",
    );
    let mut by_channel = [Channel::Web, Channel::Email, Channel::Api]
        .into_iter()
        .map(|c| {
            let from = |d: &Deviation| d.channel == c && !d.reported_by_supplier;
            CountRow {
                key: channel_key(c).into(),
                label_sv: channel_label_sv(c),
                count: count_if(&this_year, &from),
                previous_year: count_if(&prev_year, &from),
            }
        })
        .collect::<Vec<_>>();
    by_channel.push(CountRow {
        key: "supplier".into(),
        label_sv: "Från leverantör".into(),
        count: count_if(&this_year, &|d| d.reported_by_supplier),
        previous_year: count_if(&prev_year, &|d| d.reported_by_supplier),
    });

    let by_month = (1..=12u32)
        .map(|m| {
            let in_month: Vec<&Deviation> = this_year
                .iter()
                .copied()
                .filter(|d| d.reported_at.with_timezone(&Stockholm).month() == m)
                .collect();
            MonthRow {
                month: m,
                label_sv: month_label_sv(m).into(),
                major: count_if(&in_month, &|d| d.severity == Some(Severity::Major)),
                minor: count_if(&in_month, &|d| d.severity == Some(Severity::Minor)),
                unclassified: count_if(&in_month, &|d| d.severity.is_none()),
                total: in_month.len() as u64,
            }
        })
        .collect::<Vec<_>>();

    let major = this_year
        .iter()
        .filter(|d| d.severity == Some(Severity::Major))
        .map(|d| MajorDeviation {
            reference: d.reference,
            title: d.title.clone(),
            status: d.status,
            sector: d.sector.clone(),
            reported_at: d.reported_at,
            closed_at: d.closed_at,
            classification: d.classifications.last().map(summary_of),
            classification_count: d.classifications.len() as u32,
            decisions: d.decisions.iter().map(decision_of).collect(),
            measures: d
                .measures
                .iter()
                .map(|m| measure_of(m, as_of_date))
                .collect(),
        })
        .collect::<Vec<_>>();

    let mut minor_groups: BTreeMap<String, Vec<Reference>> = BTreeMap::new();
    for d in this_year
        .iter()
        .filter(|d| d.severity == Some(Severity::Minor))
    {
        minor_groups
            .entry(category(d))
            .or_default()
            .push(d.reference);
    }
    let mut minor_by_category: Vec<MinorGroup> = minor_groups
        .into_iter()
        .map(|(category, references)| MinorGroup {
            category,
            count: references.len() as u64,
            references,
        })
        .collect();
    minor_by_category.sort_by(|a, b| b.count.cmp(&a.count).then(a.category.cmp(&b.category)));

    let is_breach = |d: &Deviation| d.personal_data_breach == Some(PersonalDataBreach::Yes);
    let personal_data = PersonalData {
        breaches: count_if(&this_year, &is_breach),
        breaches_previous_year: count_if(&prev_year, &is_breach),
        investigating: count_if(&this_year, &|d| {
            d.personal_data_breach == Some(PersonalDataBreach::Investigating)
        }),
        suspected_by_reporter: count_if(&this_year, &|d| d.personal_data_suspected),
    };

    let filings = FilingKind::REPORTED
        .iter()
        .map(|&kind| {
            let mut row = FilingRow {
                kind,
                label_sv: kind.label_sv().into(),
                required: 0,
                filed_on_time: 0,
                filed_late: 0,
                not_filed: 0,
                overdue: 0,
                pending: 0,
                late_references: Vec::new(),
            };
            for d in &this_year {
                let Some(deadline) = d.deadlines.iter().find(|x| x.kind == kind) else {
                    continue;
                };
                row.required += 1;
                let filing = d.filing(kind);
                match (deadline.late, filing) {
                    (Some(true), _) => {
                        row.filed_late += 1;
                        row.late_references.push(d.reference);
                    }
                    (Some(false), _) => row.filed_on_time += 1,
                    (None, Some(f)) if f.not_filed_rationale.is_some() => row.not_filed += 1,
                    _ if deadline.due < as_of_at => {
                        row.overdue += 1;
                        row.late_references.push(d.reference);
                    }
                    _ => row.pending += 1,
                }
            }
            row
        })
        .collect::<Vec<_>>();

    let filed = |d: &Deviation, kind: FilingKind| {
        d.filings
            .iter()
            .any(|f| f.kind == kind && f.filed_at.is_some())
    };
    let gdpr_late = |d: &Deviation| {
        d.deadlines
            .iter()
            .any(|x| x.kind == FilingKind::Gdpr && x.late == Some(true))
    };
    let authorities = AuthorityCounts {
        breaches_notified: count_if(&this_year, &|d| filed(d, FilingKind::Gdpr)),
        breaches_notified_late: count_if(&this_year, &|d| {
            filed(d, FilingKind::Gdpr) && gdpr_late(d)
        }),
        affected_informed: count_if(&this_year, &|d| {
            d.affected_notice
                .as_ref()
                .is_some_and(|a| a.decision.tells() && !a.sent.is_empty())
        }),
        affected_not_informed: count_if(&this_year, &|d| {
            d.affected_notice
                .as_ref()
                .is_some_and(|a| !a.decision.tells())
        }),
        nis2_incidents: count_if(&this_year, &|d| {
            d.ever_marked(crate::domain::Regime::Nis2)
                || d.has_filing_in(crate::domain::Regime::Nis2)
        }),
        nis2_by_phase: [
            FilingKind::Nis2EarlyWarning,
            FilingKind::Nis2Notification,
            FilingKind::Nis2Intermediate,
            FilingKind::Nis2Progress,
            FilingKind::Nis2FinalReport,
        ]
        .into_iter()
        .map(|kind| PhaseCount {
            kind,
            label_sv: kind.label_sv().into(),
            filed: count_if(&this_year, &|d| filed(d, kind)),
        })
        .collect(),
    };

    let seconds = |from: DateTime<Utc>, to: DateTime<Utc>| (to - from).num_seconds().max(0);
    let lead = |key: &str, label: &str, values: Vec<i64>| {
        let (median_seconds, p90_seconds) = median_and_p90(&values);
        LeadTimeRow {
            key: key.into(),
            label_sv: label.into(),
            count: values.len() as u64,
            median_seconds,
            p90_seconds,
        }
    };
    let lead_times = vec![
        lead(
            "discovery_to_report",
            "Från upptäckt till rapport",
            this_year
                .iter()
                .map(|d| seconds(d.discovered_at, d.reported_at))
                .collect(),
        ),
        lead(
            "report_to_classification",
            "Från rapport till klassning",
            this_year
                .iter()
                .filter_map(|d| d.classified_at.map(|c| seconds(d.reported_at, c)))
                .collect(),
        ),
        lead(
            "report_to_closing",
            "Från rapport till avslut",
            this_year
                .iter()
                .filter_map(|d| d.closed_at.map(|c| seconds(d.reported_at, c)))
                .collect(),
        ),
    ];

    let open_at_year_end = this_year
        .iter()
        .filter_map(|d| {
            let at_end = year_end_status.get(&d.id).copied().unwrap_or(d.status);
            (at_end != Status::Closed).then(|| OpenDeviation {
                reference: d.reference,
                title: d.title.clone(),
                severity: d.severity,
                status_at_year_end: at_end,
                status: d.status,
            })
        })
        .collect::<Vec<_>>();

    let totals = Totals {
        deviations: this_year.len() as u64,
        previous_year: prev_year.len() as u64,
        major: by_severity[0].count,
        minor: by_severity[1].count,
        unclassified: by_severity[2].count,
        closed: count_if(&this_year, &|d| d.status == Status::Closed),
        open_at_year_end: open_at_year_end.len() as u64,
        linked_reports,
    };

    AnnualReport {
        schema: REPORT_SCHEMA,
        year,
        period,
        source,
        totals,
        by_severity,
        by_aspect,
        by_category,
        by_sector,
        by_channel,
        by_month,
        major,
        minor_by_category,
        personal_data,
        filings,
        authorities,
        lead_times,
        open_at_year_end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_follow_the_documented_rules() {
        assert_eq!(median_and_p90(&[]), (None, None));
        assert_eq!(median_and_p90(&[7]), (Some(7), Some(7)));
        assert_eq!(median_and_p90(&[1, 4]), (Some(2), Some(4)));
        // n = 10: rank ⌈9⌉ = 9.
        let v: Vec<i64> = (1..=10).rev().collect();
        assert_eq!(median_and_p90(&v), (Some(5), Some(9)));
        // n = 11: rank ⌈9.9⌉ = 10.
        let v: Vec<i64> = (1..=11).collect();
        assert_eq!(median_and_p90(&v), (Some(6), Some(10)));
    }

    #[test]
    fn the_year_is_the_stockholm_year() {
        let p = Period::of_year(2026).unwrap();
        assert_eq!(p.from.to_rfc3339(), "2025-12-31T23:00:00+00:00");
        assert_eq!(p.to.to_rfc3339(), "2026-12-31T23:00:00+00:00");
        assert!(Period::of_year(i32::MAX).is_none());
    }
}
