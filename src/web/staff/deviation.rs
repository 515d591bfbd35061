//! One deviation's page: its facts, clocks, measures, timeline and the forms the user may
//! use; `case_pdf` prints the same page as a case file.

mod case_pdf;

use std::collections::HashMap;

use crate::web::Routes;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_csrf::CsrfToken;
use chrono::{DateTime, Utc};
use chrono_tz::Europe::Stockholm;
use serde::Deserialize;
use uuid::Uuid;

use super::timeline::{self, TimelineEntry};
use super::{staff_nav, status_class};
use crate::access_log::AccessKind;
use crate::auth::{authorize, Action, Principal, Staff};
use crate::domain::deviation::ClockStart;
use crate::domain::{labels, Deviation, FilingKind, Reference, Regime, Severity, Status};
use crate::web::csrf::form_token;
use crate::web::pages::{render, stockholm_display, FormErrors, Layout, PageError};
use crate::web::AppState;

pub(crate) use case_pdf::render as case_pdf;

pub(super) fn routes() -> Routes {
    Routes::new().get("/staff/deviations/{reference}", deviation_page)
}

struct DeadlineRow {
    label: &'static str,
    due: String,
    state: String,
    overdue: bool,
}

/// From when a regime's clocks run, and why.
struct ClockRow {
    regime: &'static str,
    from: String,
    why: String,
}

/// A report linked to this deviation (the incident).
struct LinkedReport {
    reference: String,
    title: String,
    reporter: String,
    reported: String,
    relation: &'static str,
    /// The viewer may open it (otherwise only the reference is shown).
    visible: bool,
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

#[derive(Default)]
struct Can {
    classify: bool,
    decide: bool,
    add_measure: bool,
    file: bool,
    /// Set or change the awareness time.
    awareness: bool,
    comment: bool,
    close: bool,
    reopen: bool,
    /// Assign the owner and deputy.
    assign: bool,
    /// Link to an incident, or unlink.
    link: bool,
    /// Record the supplier.
    supplier: bool,
    /// Attach a file.
    upload: bool,
    /// Link to the deviation's access log (läslogg).
    access_log: bool,
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
pub(super) struct DeviationPage {
    layout: Layout,
    csrf: String,
    d: Deviation,
    status: &'static str,
    status_class: &'static str,
    severity: Option<&'static str>,
    major: bool,
    facts: Vec<(&'static str, String)>,
    deadlines: Vec<DeadlineRow>,
    clocks: Vec<ClockRow>,
    /// The regimes whose awareness may be set: (value, label).
    regimes: Vec<(&'static str, &'static str)>,
    /// The NIS2 incident: when its handling ended, if it has.
    nis2: bool,
    handling_ended: Option<String>,
    /// Which authority an empty authority field means (the organisation details').
    authority_hint: String,
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
    /// Who may be owner or deputy: (address, "Name <address>").
    handler_options: Vec<(String, String)>,
    /// The triage deadline has passed unmet.
    triage_overdue: bool,
    /// The reports linked to this deviation, when it is an incident.
    reports: Vec<LinkedReport>,
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

pub(super) struct PageInput {
    pub form: String,
    pub errors: FormErrors,
    pub values: HashMap<String, String>,
    pub saved: Option<String>,
    pub refused: Option<String>,
}

/// Loads a deviation for `who`: 404 when they may not see it.
pub(super) fn load(
    state: &AppState,
    who: &Principal,
    reference: &str,
) -> Result<Deviation, PageError> {
    let r = Reference::parse(reference).ok_or(PageError::NotFound)?;
    let reg = state.services.register.read();
    let d = reg.by_reference(r).ok_or(PageError::NotFound)?;
    if !authorize(who, Action::ViewDeviation, Some(d)) {
        return Err(PageError::NotFound);
    }
    Ok(d.clone())
}

pub(super) fn build_page(
    state: &AppState,
    who: &Principal,
    d: Deviation,
    csrf: String,
    input: PageInput,
) -> Result<DeviationPage, PageError> {
    let now = state.services.clock.now();
    let today = now.with_timezone(&Stockholm).date_naive();
    let t = |x: Option<DateTime<Utc>>| {
        x.map(stockholm_display)
            .unwrap_or_else(|| labels::NOT_SET.into())
    };
    let mut facts: Vec<(&'static str, String)> = vec![
        (
            "Sektor",
            d.sector.clone().unwrap_or_else(|| labels::NOT_SET.into()),
        ),
        (
            "System/informationstillgång",
            d.asset.clone().unwrap_or_else(|| labels::NOT_SET.into()),
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
        ("Kanal", labels::channel(d.channel).into()),
        (
            "Personuppgifter kan beröras (rapportörens bedömning)",
            labels::yes_no(d.personal_data_suspected).into(),
        ),
    ];
    if !d.classifications.is_empty() {
        facts.push(("Kategori", d.category.clone().unwrap_or_default()));
        facts.push(("Påverkade aspekter", labels::aspects(&d.aspects)));
        facts.push((
            "Personuppgiftsincident",
            d.personal_data_breach
                .map(labels::personal_data_breach)
                .unwrap_or(labels::NOT_SET)
                .into(),
        ));
        facts.push((
            "Betydande incident (NIS2)",
            labels::yes_no(d.nis2_significant == Some(true)).into(),
        ));
    }
    if let Some(r) = &d.resolution {
        facts.push(("Resultat", r.clone()));
    }
    if let Some(sup) = &d.supplier {
        facts.push((
            "Leverantör",
            if d.reported_by_supplier {
                format!("{sup} (rapporten kom från leverantören)")
            } else {
                sup.clone()
            },
        ));
    }
    facts.push((
        "Handläggare",
        d.owner.clone().unwrap_or_else(|| labels::NOT_SET.into()),
    ));
    facts.push((
        "Ersättare",
        d.deputy.clone().unwrap_or_else(|| labels::NOT_SET.into()),
    ));
    let triage =
        crate::domain::workdays::triage(&d, state.config.notifications.triage_working_days, now);
    if let Some(t) = triage.filter(|t| !t.done) {
        facts.push((
            "Ska bedömas senast",
            format!(
                "{}{}",
                stockholm_display(t.due),
                if t.overdue { " – försenad" } else { "" }
            ),
        ));
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
                label: labels::filing_kind(dl.kind),
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
    let timeline = timeline::entries(state, d.id)?;
    let open = d.status != Status::Closed;
    let linked = d.incident.is_some();
    let reports: Vec<LinkedReport> = {
        let reg = state.services.register.read();
        reg.list()
            .into_iter()
            .filter(|x| x.incident.as_ref().is_some_and(|l| l.id == d.id))
            .map(|x| LinkedReport {
                reference: x.reference.to_string(),
                title: x.title.clone(),
                reporter: x
                    .reporter
                    .as_ref()
                    .map(|r| format!("{} <{}>", r.name, r.email))
                    .unwrap_or_else(|| "anonym".into()),
                reported: stockholm_display(x.reported_at),
                relation: x.incident.as_ref().map_or("", |l| l.relation.label_sv()),
                visible: authorize(who, Action::ViewDeviation, Some(x)),
            })
            .collect()
    };
    let can = Can {
        link: open && reports.is_empty() && authorize(who, Action::Classify, Some(&d)),
        upload: d.shredded.is_none() && authorize(who, Action::Comment, Some(&d)),
        supplier: open && authorize(who, Action::AssignHandlers, Some(&d)),
        classify: open && !linked && authorize(who, Action::Classify, Some(&d)),
        decide: open && authorize(who, Action::RecordDecision, Some(&d)),
        add_measure: open && authorize(who, Action::AddMeasure, Some(&d)),
        file: !linked && authorize(who, Action::RecordFiling, Some(&d)),
        awareness: !linked && authorize(who, Action::RecordAwareness, Some(&d)),
        comment: authorize(who, Action::Comment, Some(&d)),
        close: open && authorize(who, Action::Close, Some(&d)),
        reopen: !open && authorize(who, Action::Reopen, Some(&d)),
        assign: open && authorize(who, Action::AssignHandlers, Some(&d)),
        access_log: authorize(who, Action::ViewAccessLog, None),
    };
    let can_assign = can.assign;
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
        aspects: labels::ASPECTS
            .iter()
            .zip(labels::aspect_levels(&d.aspects))
            .map(|((key, name, _), cur)| (*key, *name, level(key, cur)))
            .collect(),
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
        .map(|c| labels::severity(c.classification.severity));
    Ok(DeviationPage {
        layout: Layout::staff(format!("{} {}", d.reference, d.title), staff_nav(who, ""))
            .with_errors(!input.errors.is_empty()),
        csrf,
        status: labels::status(d.status),
        status_class: status_class(d.status),
        severity,
        major: d.severity == Some(Severity::Major),
        facts,
        deadlines,
        clocks: clock_rows(&d),
        regimes: [Regime::Gdpr, Regime::Nis2]
            .into_iter()
            .filter(|r| d.ever_marked(*r) || d.has_filing_in(*r))
            .map(|r| (regime_value(r), r.label_sv()))
            .collect(),
        nis2: d.ever_marked(Regime::Nis2) || d.has_filing_in(Regime::Nis2),
        handling_ended: d.incident_handling_ended_at.map(stockholm_display),
        authority_hint: {
            let org = crate::filing::organisation::current(
                state.services.store.as_ref(),
                &state.config.organisation,
            );
            format!(
                "Lämna tomt för organisationens myndighet: personuppgiftsincidenter till {}, NIS2-rapporter till {}.",
                org.gdpr_authority, org.nis2_authority
            )
        },
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
            .filter(|_| d.shredded.is_none())
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
            .chain(
                d.attachments
                    .iter()
                    .filter(|_| d.shredded.is_none())
                    .map(|a| {
                        (
                            format!(
                                "/api/v1/deviations/{}/attachments/{}",
                                d.reference, a.sha256
                            ),
                            format!(
                                "{} ({}, {} byte{})",
                                a.filename,
                                a.content_type,
                                a.size,
                                if a.from_reporter {
                                    ", från rapportören"
                                } else {
                                    ""
                                }
                            ),
                        )
                    }),
            )
            .collect(),
        timeline,
        can,
        cls,
        categories: state.config.report.categories.clone(),
        levels: labels::LEVELS
            .iter()
            .map(|(n, l)| (n.to_string(), *l))
            .collect(),
        pdb_options: labels::PERSONAL_DATA_BREACH_CHOICES
            .iter()
            .map(|(v, l)| (v.to_string(), *l))
            .collect(),
        filing_kinds: FilingKind::ALL
            .iter()
            .map(|k| {
                (
                    serde_json::to_value(k)
                        .ok()
                        .and_then(|x| x.as_str().map(String::from))
                        .unwrap_or_default(),
                    labels::filing_kind(*k),
                )
            })
            .collect(),
        handler_options: if can_assign {
            let reg = state.services.register.read();
            reg.accounts
                .list()
                .into_iter()
                .filter(|a| crate::web::api::handler(&reg.accounts, &d, &a.email).is_some())
                .map(|a| {
                    (
                        a.email.as_str().to_string(),
                        format!("{} <{}>", a.name, a.email.as_str()),
                    )
                })
                .collect()
        } else {
            Vec::new()
        },
        triage_overdue: triage.is_some_and(|t| t.overdue),
        reports,
        form: input.form,
        errors: input.errors,
        values: input.values,
        saved: input.saved,
        refused: input.refused,
        d,
    })
}

fn regime_value(r: Regime) -> &'static str {
    match r {
        Regime::Gdpr => "gdpr",
        Regime::Nis2 => "nis2",
    }
}

/// Where each statutory clock starts: the awareness time and why, or the discovery time
/// for deviations from before awareness was recorded.
fn clock_rows(d: &Deviation) -> Vec<ClockRow> {
    [Regime::Gdpr, Regime::Nis2]
        .into_iter()
        .filter(|r| d.deadlines.iter().any(|dl| dl.kind.regime() == *r))
        .map(|r| {
            let start = d.clock_start(r);
            let why = match &start {
                ClockStart::Discovery(_) => {
                    "Upptäcktstiden: ingen tidpunkt för kännedom är registrerad.".to_string()
                }
                ClockStart::Aware(a) => match &a.reason {
                    None => format!(
                        "Kännedom: första klassningen som {} ({}).",
                        r.label_sv(),
                        a.by.trim_start_matches("user:")
                    ),
                    Some(reason) => format!(
                        "Kännedom ändrad {} av {}: {reason}",
                        stockholm_display(a.recorded_at),
                        a.by.trim_start_matches("user:")
                    ),
                },
            };
            ClockRow {
                regime: r.label_sv(),
                from: stockholm_display(start.at()),
                why,
            }
        })
        .collect()
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
    crate::web::access_log::seen_page(
        &state.access_log,
        &who.actor(),
        AccessKind::DeviationPage,
        Some(&d),
    )
    .await?;
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
