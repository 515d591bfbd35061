//! The filing records of a deviation in the staff UI: `/staff/deviations/{ref}/anmalan`
//! holds the breach record, the NIS2 record and the art. 34 decision as forms, and lists
//! the phases; `/anmalan/{kind}` previews one phase's document in the authority's order,
//! with its PDF and JSON downloads and the form that records it as sent.

use std::collections::HashMap;

use crate::web::Routes;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_csrf::CsrfToken;
use chrono::{DateTime, NaiveDateTime, Utc};
use chrono_tz::Europe::Stockholm;
use serde::Deserialize;

use super::deviation::load;
use super::staff_nav;
use crate::access_log::AccessKind;
use crate::auth::{authorize, Action, Principal, Staff};
use crate::domain::filing_record::{
    notice_template, BreachRecord, Nis2Record, NoticeDecision, CONSEQUENCES, DATA_CATEGORIES,
    NIS2_SEVERITIES, NOTICE_CHANNELS, SUBJECT_CATEGORIES,
};
use crate::domain::{labels, Command, Deviation, FilingKind, Regime};
use crate::filing::document::Section;
use crate::service::ServiceError;
use crate::web::body::{Field, Unknown};
use crate::web::csrf::{form_token, CsrfForm, CSRF_FIELD};
use crate::web::error::ApiError;
use crate::web::filing_commands::{
    AffectedNoticeBody, AffectedNotifiedBody, BreachRecordBody, Nis2RecordBody,
};
use crate::web::pages::{render, stockholm_display, FormErrors, Layout, PageError};
use crate::web::AppState;

pub(super) fn routes() -> Routes {
    Routes::new()
        .get("/staff/deviations/{reference}/anmalan", records_page)
        .get("/staff/deviations/{reference}/anmalan/{part}", preview)
        .post("/staff/deviations/{reference}/anmalan/{part}", save)
        .get(
            "/staff/deviations/{reference}/anmalan/{kind}/{format}",
            download,
        )
}

/// Posted values by input name; a name may repeat (checkboxes).
type Values = HashMap<String, Vec<String>>;

fn values_of(pairs: Vec<(String, String)>) -> Values {
    let mut v: Values = HashMap::new();
    for (k, x) in pairs {
        if k != CSRF_FIELD {
            v.entry(k).or_default().push(x);
        }
    }
    v
}

fn one(v: &Values, k: &str) -> String {
    v.get(k)
        .and_then(|x| x.first())
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// How an input is shown.
enum Kind {
    Line,
    Text(u8),
    Time,
    Number,
    /// Ja / Nej (and Okänt when `unknown`).
    YesNo {
        unknown: bool,
    },
    Checks(&'static [(&'static str, &'static str)]),
    Select(&'static [(&'static str, &'static str)]),
}

struct Input {
    name: &'static str,
    label: &'static str,
    hint: &'static str,
    kind: Kind,
}

const fn input(name: &'static str, label: &'static str, hint: &'static str, kind: Kind) -> Input {
    Input {
        name,
        label,
        hint,
        kind,
    }
}

const BREACH_INPUTS: &[Input] = &[
    input(
        "contact",
        "Kontaktperson för incidenten",
        "Namn och telefon eller e-post. Lämnas tomt: dataskyddsombudets kontaktuppgifter.",
        Kind::Line,
    ),
    input(
        "summary",
        "Vad har hänt",
        "Beskriv incidenten så som den ska stå i anmälan.",
        Kind::Text(5),
    ),
    input(
        "occurred_from",
        "Incidenten började (svensk tid)",
        "",
        Kind::Time,
    ),
    input(
        "occurred_to",
        "Incidenten upphörde (svensk tid)",
        "Lämnas tomt om den pågår eller är okänd.",
        Kind::Time,
    ),
    input(
        "subject_categories",
        "Kategorier av registrerade",
        "",
        Kind::Checks(SUBJECT_CATEGORIES),
    ),
    input(
        "subjects_approx",
        "Ungefärligt antal berörda personer",
        "",
        Kind::Number,
    ),
    input(
        "data_categories",
        "Kategorier av personuppgifter",
        "",
        Kind::Checks(DATA_CATEGORIES),
    ),
    input(
        "records_approx",
        "Ungefärligt antal berörda poster",
        "",
        Kind::Number,
    ),
    input(
        "consequences",
        "Sannolika konsekvenser",
        "",
        Kind::Checks(CONSEQUENCES),
    ),
    input(
        "consequences_text",
        "Beskrivning av konsekvenserna",
        "",
        Kind::Text(3),
    ),
    input(
        "measures_taken",
        "Vidtagna åtgärder",
        "För att hantera incidenten och begränsa skadan.",
        Kind::Text(3),
    ),
    input(
        "measures_proposed",
        "Föreslagna åtgärder",
        "",
        Kind::Text(3),
    ),
    input(
        "cross_border",
        "Berörs personer i andra EU/EES-länder",
        "",
        Kind::YesNo { unknown: false },
    ),
    input(
        "cross_border_details",
        "Vilka länder och hur",
        "",
        Kind::Text(2),
    ),
    input(
        "processor_involved",
        "Är ett personuppgiftsbiträde inblandat",
        "",
        Kind::YesNo { unknown: false },
    ),
    input(
        "processor",
        "Personuppgiftsbiträde och dess roll",
        "",
        Kind::Text(2),
    ),
    input(
        "delay_reason",
        "Skäl till att anmälan görs senare än 72 timmar",
        "Fylls i bara om anmälan är sen.",
        Kind::Text(2),
    ),
];

const NIS2_INPUTS: &[Input] = &[
    input(
        "contact",
        "Kontaktperson för incidenten",
        "Lämnas tomt: organisationens kontaktuppgifter.",
        Kind::Line,
    ),
    input(
        "summary",
        "Vad har hänt",
        "Tidig varning: en första beskrivning.",
        Kind::Text(4),
    ),
    input(
        "suspected_malicious",
        "Misstänks en olaglig eller avsiktlig handling",
        "",
        Kind::YesNo { unknown: true },
    ),
    input(
        "cross_border",
        "Kan incidenten få gränsöverskridande konsekvenser",
        "",
        Kind::YesNo { unknown: true },
    ),
    input(
        "severity",
        "Allvarlighetsgrad",
        "Incidentanmälan: den första bedömningen.",
        Kind::Select(NIS2_SEVERITIES),
    ),
    input(
        "initial_assessment",
        "Första bedömning av incidenten",
        "",
        Kind::Text(3),
    ),
    input("impact", "Påverkan på tjänsterna", "", Kind::Text(3)),
    input(
        "indicators",
        "Komprometteringsindikatorer",
        "Till exempel IP-adresser, domäner, filhashar.",
        Kind::Text(3),
    ),
    input(
        "users_affected_approx",
        "Ungefärligt antal berörda användare",
        "",
        Kind::Number,
    ),
    input(
        "threat_and_cause",
        "Typ av hot eller grundorsak",
        "Slutrapport.",
        Kind::Text(3),
    ),
    input(
        "mitigation",
        "Vidtagna och pågående åtgärder",
        "",
        Kind::Text(3),
    ),
    input(
        "cross_border_details",
        "Gränsöverskridande konsekvenser",
        "",
        Kind::Text(2),
    ),
    input(
        "recipients_informed",
        "Har mottagarna av tjänsterna informerats",
        "",
        Kind::YesNo { unknown: false },
    ),
    input(
        "recipients_information",
        "Vad de fick veta, och när",
        "",
        Kind::Text(2),
    ),
];

/// One input as the template shows it.
struct Shown {
    id: String,
    name: &'static str,
    label: &'static str,
    hint: &'static str,
    /// line, text, time, number, yesno, checks, select
    kind: &'static str,
    rows: u8,
    value: String,
    /// (value, label, checked) for yes/no, checks and select.
    options: Vec<(String, String, bool)>,
    error: Option<String>,
}

fn shown(prefix: &str, inputs: &[Input], v: &Values, errors: &FormErrors) -> Vec<Shown> {
    inputs
        .iter()
        .map(|i| {
            let value = one(v, i.name);
            let chosen = v.get(i.name).cloned().unwrap_or_default();
            let opts = |list: &[(&str, &str)]| {
                list.iter()
                    .map(|(c, l)| (c.to_string(), l.to_string(), chosen.iter().any(|x| x == c)))
                    .collect()
            };
            let (kind, rows, options) = match i.kind {
                Kind::Line => ("line", 0, Vec::new()),
                Kind::Text(r) => ("text", r, Vec::new()),
                Kind::Time => ("time", 0, Vec::new()),
                Kind::Number => ("number", 0, Vec::new()),
                Kind::YesNo { unknown } => {
                    let mut o = vec![("ja", "Ja"), ("nej", "Nej")];
                    if unknown {
                        o.push(("", "Okänt"));
                    }
                    let o = o
                        .into_iter()
                        .map(|(c, l)| (c.to_string(), l.to_string(), value == c))
                        .collect();
                    ("yesno", 0, o)
                }
                Kind::Checks(list) => ("checks", 0, opts(list)),
                Kind::Select(list) => ("select", 0, opts(list)),
            };
            Shown {
                id: format!("{prefix}{}", i.name),
                name: i.name,
                label: i.label,
                hint: i.hint,
                kind,
                rows,
                value,
                options,
                error: errors.get(i.name).map(str::to_string),
            }
        })
        .collect()
}

fn labels_of(inputs: &[Input]) -> Vec<(&'static str, &'static str)> {
    inputs.iter().map(|i| (i.name, i.label)).collect()
}

/// `<input type="datetime-local">` (Stockholm) as RFC 3339; other text as sent.
fn local_time(v: &Values, k: &str) -> Field<String> {
    let s = one(v, k);
    if s.is_empty() {
        return Field::Absent;
    }
    let parsed = NaiveDateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M")
        .ok()
        .and_then(|n| n.and_local_timezone(Stockholm).earliest())
        .map(|t| t.to_rfc3339());
    Field::Given(parsed.unwrap_or(s))
}

fn text(v: &Values, k: &str) -> Field<String> {
    let s = one(v, k);
    if s.is_empty() {
        Field::Absent
    } else {
        Field::Given(s)
    }
}

fn number(v: &Values, k: &str) -> Field<u64> {
    let s = one(v, k).replace([' ', '\u{a0}'], "");
    if s.is_empty() {
        Field::Absent
    } else {
        s.parse().map_or(Field::Wrong, Field::Given)
    }
}

fn yes_no(v: &Values, k: &str) -> Field<bool> {
    match one(v, k).as_str() {
        "" => Field::Absent,
        "ja" => Field::Given(true),
        "nej" => Field::Given(false),
        _ => Field::Wrong,
    }
}

fn list(v: &Values, k: &str) -> Field<Vec<String>> {
    Field::Given(v.get(k).cloned().unwrap_or_default())
}

fn breach_body(v: &Values) -> BreachRecordBody {
    BreachRecordBody {
        contact: text(v, "contact"),
        summary: text(v, "summary"),
        occurred_from: local_time(v, "occurred_from"),
        occurred_to: local_time(v, "occurred_to"),
        subject_categories: list(v, "subject_categories"),
        subjects_approx: number(v, "subjects_approx"),
        records_approx: number(v, "records_approx"),
        data_categories: list(v, "data_categories"),
        consequences: list(v, "consequences"),
        consequences_text: text(v, "consequences_text"),
        measures_taken: text(v, "measures_taken"),
        measures_proposed: text(v, "measures_proposed"),
        cross_border: yes_no(v, "cross_border"),
        cross_border_details: text(v, "cross_border_details"),
        processor_involved: yes_no(v, "processor_involved"),
        processor: text(v, "processor"),
        delay_reason: text(v, "delay_reason"),
        unknown: Unknown::new(),
    }
}

fn nis2_body(v: &Values) -> Nis2RecordBody {
    Nis2RecordBody {
        contact: text(v, "contact"),
        summary: text(v, "summary"),
        suspected_malicious: yes_no(v, "suspected_malicious"),
        cross_border: yes_no(v, "cross_border"),
        severity: text(v, "severity"),
        initial_assessment: text(v, "initial_assessment"),
        impact: text(v, "impact"),
        indicators: text(v, "indicators"),
        users_affected_approx: number(v, "users_affected_approx"),
        threat_and_cause: text(v, "threat_and_cause"),
        mitigation: text(v, "mitigation"),
        cross_border_details: text(v, "cross_border_details"),
        recipients_informed: yes_no(v, "recipients_informed"),
        recipients_information: text(v, "recipients_information"),
        unknown: Unknown::new(),
    }
}

fn local(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| {
        t.with_timezone(&Stockholm)
            .format("%Y-%m-%dT%H:%M")
            .to_string()
    })
    .unwrap_or_default()
}

fn yn(b: Option<bool>) -> String {
    match b {
        Some(true) => "ja".into(),
        Some(false) => "nej".into(),
        None => String::new(),
    }
}

fn num(n: Option<u64>) -> String {
    n.map(|n| n.to_string()).unwrap_or_default()
}

fn breach_values(r: &BreachRecord) -> Values {
    let mut v: Values = HashMap::new();
    let mut put = |k: &str, x: String| {
        v.insert(k.to_string(), vec![x]);
    };
    put("contact", r.contact.clone());
    put("summary", r.summary.clone());
    put("occurred_from", local(r.occurred_from));
    put("occurred_to", local(r.occurred_to));
    put("subjects_approx", num(r.subjects_approx));
    put("records_approx", num(r.records_approx));
    put("consequences_text", r.consequences_text.clone());
    put("measures_taken", r.measures_taken.clone());
    put("measures_proposed", r.measures_proposed.clone());
    put("cross_border", yn(Some(r.cross_border)));
    put("cross_border_details", r.cross_border_details.clone());
    put("processor_involved", yn(Some(r.processor_involved)));
    put("processor", r.processor.clone());
    put("delay_reason", r.delay_reason.clone());
    v.insert("subject_categories".into(), r.subject_categories.clone());
    v.insert("data_categories".into(), r.data_categories.clone());
    v.insert("consequences".into(), r.consequences.clone());
    v
}

fn nis2_values(r: &Nis2Record) -> Values {
    let mut v: Values = HashMap::new();
    let mut put = |k: &str, x: String| {
        v.insert(k.to_string(), vec![x]);
    };
    put("contact", r.contact.clone());
    put("summary", r.summary.clone());
    put("suspected_malicious", yn(r.suspected_malicious));
    put("cross_border", yn(r.cross_border));
    put("severity", r.severity.clone().unwrap_or_default());
    put("initial_assessment", r.initial_assessment.clone());
    put("impact", r.impact.clone());
    put("indicators", r.indicators.clone());
    put("users_affected_approx", num(r.users_affected_approx));
    put("threat_and_cause", r.threat_and_cause.clone());
    put("mitigation", r.mitigation.clone());
    put("cross_border_details", r.cross_border_details.clone());
    put("recipients_informed", yn(Some(r.recipients_informed)));
    put("recipients_information", r.recipients_information.clone());
    v
}

/// A phase in the list: its label, its state and where to preview it.
struct PhaseRow {
    kind: &'static str,
    label: &'static str,
    state: String,
}

/// Which form was posted, its values and problems (shown again at it).
#[derive(Default)]
struct Posted {
    form: String,
    values: Values,
    errors: FormErrors,
    refused: Option<String>,
}

#[derive(Template)]
#[template(path = "staff/filings.html")]
struct RecordsPage {
    layout: Layout,
    csrf: String,
    d: Deviation,
    gdpr: bool,
    nis2: bool,
    phases: Vec<PhaseRow>,
    breach_version: String,
    breach: Vec<Shown>,
    breach_errors: FormErrors,
    nis2_version: String,
    nis2_form: Vec<Shown>,
    nis2_errors: FormErrors,
    /// The art. 34 decision now, if any, and the forms.
    notice_now: Option<(String, String, Vec<String>)>,
    notice_decision: String,
    notice_text: String,
    notice_options: Vec<(String, &'static str)>,
    notice_errors: FormErrors,
    can_send_notice: bool,
    sent_values: HashMap<String, String>,
    sent_errors: FormErrors,
    channels: Vec<(String, &'static str)>,
    saved: bool,
    refused: Option<String>,
}

impl RecordsPage {
    fn sent_value(&self, k: &str) -> String {
        self.sent_values.get(k).cloned().unwrap_or_default()
    }
}

/// May `who` work with `d`'s filings? 404 when they may not see it, 403 when they see
/// it but may not file.
fn load_for_filing(
    state: &AppState,
    who: &Principal,
    reference: &str,
) -> Result<Deviation, PageError> {
    let d = load(state, who, reference)?;
    if !authorize(who, Action::RecordFiling, Some(&d)) {
        return Err(PageError::Forbidden);
    }
    Ok(d)
}

fn applies(d: &Deviation, r: Regime) -> bool {
    d.ever_marked(r) || d.has_filing_in(r)
}

fn phases(d: &Deviation) -> Vec<PhaseRow> {
    FilingKind::ALL
        .into_iter()
        .filter(|k| applies(d, k.regime()))
        .map(|k| {
            let filed: Vec<String> = d
                .filings
                .iter()
                .filter(|f| f.kind == k)
                .map(|f| match f.filed_at {
                    Some(t) => format!("anmäld {}", stockholm_display(t)),
                    None => "beslut att inte anmäla".into(),
                })
                .collect();
            let due = d.deadlines.iter().find(|x| x.kind == k).map(|x| x.due);
            let state = if !filed.is_empty() {
                filed.join(", ")
            } else if let Some(due) = due {
                format!("senast {}", stockholm_display(due))
            } else {
                "ingen frist".into()
            };
            PhaseRow {
                kind: k.as_str(),
                label: labels::filing_kind(k),
                state,
            }
        })
        .collect()
}

fn records_view(
    state: &AppState,
    who: &Principal,
    d: Deviation,
    csrf: String,
    posted: Posted,
    saved: bool,
) -> RecordsPage {
    let org = crate::filing::organisation::current(
        state.services.store.as_ref(),
        &state.config.organisation,
    );
    let errors_for = |form: &str| {
        if posted.form == form {
            posted.errors.clone()
        } else {
            FormErrors::default()
        }
    };
    let values_for = |form: &str, stored: Values| {
        if posted.form == form {
            posted.values.clone()
        } else {
            stored
        }
    };
    let breach_values = values_for(
        "breach",
        d.breach_record
            .as_ref()
            .map(|s| breach_values(&s.record))
            .unwrap_or_default(),
    );
    let nis2_values = values_for(
        "nis2",
        d.nis2_record
            .as_ref()
            .map(|s| nis2_values(&s.record))
            .unwrap_or_default(),
    );
    let version = |v: Option<(u32, &str, DateTime<Utc>)>| {
        v.map(|(n, by, at)| format!("Version {n}, sparad {} av {by}.", stockholm_display(at)))
            .unwrap_or_else(|| "Inte ifyllt ännu.".into())
    };
    let (notice_decision, notice_text) = if posted.form == "art34" {
        (one(&posted.values, "decision"), one(&posted.values, "text"))
    } else {
        match &d.affected_notice {
            Some(a) => (a.decision.as_str().to_string(), a.text.clone()),
            None => (
                String::new(),
                notice_template(&org.controller_name, &org.dpo_contact),
            ),
        }
    };
    let notice_now = d.affected_notice.as_ref().map(|a| {
        (
            a.decision.label_sv().to_string(),
            format!(
                "Beslutat {} av {}.",
                stockholm_display(a.decided_at),
                a.decided_by
            ),
            a.sent
                .iter()
                .map(|s| {
                    format!(
                        "{} via {}{}",
                        stockholm_display(s.sent_at),
                        crate::domain::filing_record::label(NOTICE_CHANNELS, &s.channel)
                            .to_lowercase(),
                        s.recipients_approx
                            .map(|c| format!(", till omkring {c} personer"))
                            .unwrap_or_default()
                    )
                })
                .collect(),
        )
    });
    let sent_values = if posted.form == "art34-sent" {
        posted
            .values
            .iter()
            .map(|(k, v)| (k.clone(), v.first().cloned().unwrap_or_default()))
            .collect()
    } else {
        HashMap::new()
    };
    RecordsPage {
        layout: Layout::staff(
            format!("Anmälan till myndighet – {}", d.reference),
            staff_nav(who, "/staff"),
        )
        .with_errors(!posted.errors.is_empty()),
        csrf,
        gdpr: applies(&d, Regime::Gdpr),
        nis2: applies(&d, Regime::Nis2),
        phases: phases(&d),
        breach_version: version(
            d.breach_record
                .as_ref()
                .map(|s| (s.version, s.by.as_str(), s.at)),
        ),
        breach: shown(
            "breach-",
            BREACH_INPUTS,
            &breach_values,
            &errors_for("breach"),
        ),
        breach_errors: errors_for("breach"),
        nis2_version: version(
            d.nis2_record
                .as_ref()
                .map(|s| (s.version, s.by.as_str(), s.at)),
        ),
        nis2_form: shown("nis2-", NIS2_INPUTS, &nis2_values, &errors_for("nis2")),
        nis2_errors: errors_for("nis2"),
        notice_now,
        notice_decision,
        notice_text,
        notice_options: NoticeDecision::ALL
            .into_iter()
            .map(|n| (n.as_str().to_string(), n.label_sv()))
            .collect(),
        notice_errors: errors_for("art34"),
        can_send_notice: d
            .affected_notice
            .as_ref()
            .is_some_and(|a| a.decision.tells()),
        sent_values,
        sent_errors: errors_for("art34-sent"),
        channels: NOTICE_CHANNELS
            .iter()
            .map(|(c, l)| (c.to_string(), *l))
            .collect(),
        saved,
        refused: posted.refused,
        d,
    }
}

#[derive(Deserialize, Default)]
struct Flash {
    sparat: Option<String>,
}

async fn records_page(
    State(state): State<AppState>,
    Staff(who): Staff,
    csrf: CsrfToken,
    Path(reference): Path<String>,
    Query(f): Query<Flash>,
) -> Result<Response, PageError> {
    let d = load_for_filing(&state, &who, &reference)?;
    crate::web::access_log::seen_page(
        &state.access_log,
        &who.actor(),
        AccessKind::DeviationPage,
        Some(&d),
    )
    .await?;
    let page = records_view(
        &state,
        &who,
        d,
        form_token(&csrf)?,
        Posted::default(),
        f.sparat.is_some(),
    );
    Ok((csrf, render(StatusCode::OK, &page)).into_response())
}

async fn save(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path((reference, part)): Path<(String, String)>,
    CsrfForm { csrf, form }: CsrfForm<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let d = load_for_filing(&state, &who, &reference)?;
    let v = values_of(form);
    let now = state.services.clock.now();
    let (parsed, labels): (Result<Command, ApiError>, Vec<(&str, &str)>) = match part.as_str() {
        "breach" => (breach_body(&v).parse(now), labels_of(BREACH_INPUTS)),
        "nis2" => (nis2_body(&v).parse(), labels_of(NIS2_INPUTS)),
        "art34" => {
            let decision = match text(&v, "decision") {
                Field::Given(s) => NoticeDecision::ALL
                    .into_iter()
                    .find(|n| n.as_str() == s)
                    .map_or(Field::Wrong, Field::Given),
                _ => Field::Absent,
            };
            (
                AffectedNoticeBody {
                    decision,
                    text: text(&v, "text"),
                    unknown: Unknown::new(),
                }
                .parse(),
                vec![("decision", "Beslut"), ("text", "Text")],
            )
        }
        "art34-sent" => (
            AffectedNotifiedBody {
                sent_at: local_time(&v, "sent_at"),
                channel: text(&v, "channel"),
                recipients_approx: number(&v, "recipients_approx"),
                note: text(&v, "note"),
                unknown: Unknown::new(),
            }
            .parse(now),
            vec![
                ("sent_at", "Skickades"),
                ("channel", "Hur"),
                ("recipients_approx", "Antal"),
                ("note", "Anteckning"),
            ],
        ),
        _ => return Err(PageError::NotFound),
    };
    let again = |d: Deviation, status: StatusCode, posted: Posted| {
        let csrf = csrf.clone();
        let (state, who) = (&state, &who);
        async move {
            crate::web::access_log::seen_page(
                &state.access_log,
                &who.actor(),
                AccessKind::DeviationPage,
                Some(&d),
            )
            .await?;
            let page = records_view(state, who, d, form_token(&csrf)?, posted, false);
            Ok::<Response, PageError>((csrf, render(status, &page)).into_response())
        }
    };
    let cmd = match parsed {
        Ok(c) => c,
        Err(ApiError::Validation(errs)) => {
            let posted = Posted {
                form: part,
                values: v,
                errors: FormErrors::new(&errs, &labels),
                refused: None,
            };
            return again(d, StatusCode::UNPROCESSABLE_ENTITY, posted).await;
        }
        Err(other) => {
            let posted = Posted {
                form: part,
                values: v,
                errors: FormErrors::default(),
                refused: Some(other.to_string()),
            };
            return again(d, StatusCode::BAD_REQUEST, posted).await;
        }
    };
    match state.services.execute(d.reference, cmd, &who.actor()).await {
        Ok(_) => Ok(Redirect::to(&format!(
            "/staff/deviations/{}/anmalan?sparat=1#{part}",
            d.reference
        ))
        .into_response()),
        Err(ServiceError::Domain(e)) => {
            let posted = Posted {
                form: part,
                values: v,
                errors: FormErrors::default(),
                refused: Some(e.message_sv()),
            };
            again(d, StatusCode::CONFLICT, posted).await
        }
        Err(other) => Err(other.into()),
    }
}

#[derive(Template)]
#[template(path = "staff/filing_preview.html")]
struct PreviewPage {
    layout: Layout,
    csrf: String,
    d: Deviation,
    kind: &'static str,
    title: String,
    authority: String,
    sections: Vec<Section>,
    sha256: String,
    /// Already filed (for kinds that are filed once).
    filed: Option<String>,
    /// The record the document reads from is not filled in yet.
    missing_record: bool,
}

async fn preview(
    State(state): State<AppState>,
    Staff(who): Staff,
    csrf: CsrfToken,
    Path((reference, part)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let d = load_for_filing(&state, &who, &reference)?;
    let kind = FilingKind::parse(&part).ok_or(PageError::NotFound)?;
    let doc = crate::web::filings_api::document_of(&state, &d, kind);
    let sha256 = doc.sha256();
    crate::web::access_log::seen_page(
        &state.access_log,
        &who.actor(),
        AccessKind::FilingDocument {
            filing: kind.as_str().to_string(),
            format: "preview".into(),
            sha256: sha256.clone(),
        },
        Some(&d),
    )
    .await?;
    let filed = (!kind.repeatable())
        .then(|| d.filing(kind))
        .flatten()
        .map(|f| match f.filed_at {
            Some(t) => format!("Anmäld {}.", stockholm_display(t)),
            None => "Beslut att inte anmäla är registrerat.".into(),
        });
    let missing_record = match kind.regime() {
        Regime::Gdpr => d.breach_record.is_none(),
        Regime::Nis2 => d.nis2_record.is_none(),
    };
    let page = PreviewPage {
        layout: Layout::staff(
            format!("Förhandsgranska anmälan – {}", d.reference),
            staff_nav(&who, "/staff"),
        ),
        csrf: form_token(&csrf)?,
        kind: kind.as_str(),
        title: doc.title.clone(),
        authority: doc.authority.clone(),
        sections: doc.sections,
        sha256,
        filed,
        missing_record,
        d,
    };
    Ok((csrf, render(StatusCode::OK, &page)).into_response())
}

async fn download(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path((reference, kind, format)): Path<(String, String, String)>,
) -> Result<Response, PageError> {
    let d = load_for_filing(&state, &who, &reference)?;
    let kind = FilingKind::parse(&kind).ok_or(PageError::NotFound)?;
    let pdf = match format.as_str() {
        "pdf" => true,
        "json" => false,
        _ => return Err(PageError::NotFound),
    };
    crate::web::filings_api::download(&state, &who, &d, kind, pdf)
        .await
        .map_err(|e| match e {
            ApiError::AccessLogUnavailable => PageError::AccessLogUnavailable,
            other => PageError::Unavailable(other.to_string()),
        })
}
