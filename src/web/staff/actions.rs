//! The action forms of a deviation: a posted form is turned into the command the JSON
//! API takes, authorized and run; on a problem the page is shown again at that form.

use std::collections::HashMap;

use crate::web::Routes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_csrf::CsrfToken;
use chrono::NaiveDateTime;
use chrono_tz::Europe::Stockholm;
use uuid::Uuid;

use super::deviation::{build_page, load, PageInput};
use crate::auth::{authorize, Action, Principal, Staff};
use crate::domain::{labels, Aspects, Command, Deviation, Level};
use crate::service::ServiceError;
use crate::web::body::{Field, Unknown};
use crate::web::commands::{
    AwarenessBody, ClassificationBody, CloseBody, CommentBody, CompleteMeasureBody, DecisionBody,
    FilingBody, HandlersBody, HandlingEndedBody, IncidentLinkBody, MeasureBody, ReopenBody,
    SupplierBody,
};
use crate::web::csrf::{form_token, CsrfForm, CSRF_FIELD};
use crate::web::error::ApiError;
use crate::web::pages::{render, FormErrors, PageError};
use crate::web::AppState;

pub(super) fn routes() -> Routes {
    Routes::new()
        .post("/staff/deviations/{reference}/{action}", deviation_action)
        .post(
            "/staff/deviations/{reference}/measures/{measure_id}/complete",
            complete_measure,
        )
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
    ("content_sha256", "Kontrollsumma (SHA-256)"),
    ("regime", "Gäller"),
    ("aware_at", "Kännedom"),
    ("ended_at", "Hanteringen avslutad"),
    ("owner", "Handläggare"),
    ("incident", "Incident"),
    ("relation", "Koppling"),
    ("supplier", "Leverantör"),
    ("bilaga", "Bilaga"),
    ("reported_by_supplier", "Rapporten kom från leverantören"),
    ("deputy", "Ersättare"),
];

/// A posted form, by input name (the CSRF token included).
type FormFields = HashMap<String, String>;

fn read_form(pairs: Vec<(String, String)>) -> FormFields {
    pairs.into_iter().collect()
}

/// A text input as a command field: left empty, it is absent.
fn text(form: &FormFields, k: &str) -> Field<String> {
    Field::from_option(
        form.get(k)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(str::to_string),
    )
}

/// A choice (radio buttons, a select) read as the API reads the same value.
fn choice<T: serde::de::DeserializeOwned>(form: &FormFields, k: &str) -> Field<T> {
    use serde::de::IntoDeserializer;
    match text(form, k) {
        Field::Given(s) => {
            let d: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
                s.as_str().into_deserializer();
            T::deserialize(d).map_or(Field::Wrong, Field::Given)
        }
        _ => Field::Absent,
    }
}

/// A checkbox: present when ticked.
fn checkbox(form: &FormFields, k: &str) -> Field<bool> {
    Field::Given(form.contains_key(k))
}

/// The aspect inputs (`aspect_confidentiality` …) as the API's `aspects` object: every
/// level given must be 1–4.
fn aspects(form: &FormFields) -> Field<Aspects> {
    let mut levels = [None; 4];
    for (slot, (key, _, _)) in levels.iter_mut().zip(labels::ASPECTS) {
        if let Field::Given(s) = text(form, &format!("aspect_{key}")) {
            match s.parse::<u8>().ok().and_then(Level::new) {
                Some(l) => *slot = Some(l),
                None => return Field::Wrong,
            }
        }
    }
    let [confidentiality, integrity, availability, traceability] = levels;
    Field::Given(Aspects {
        confidentiality,
        integrity,
        availability,
        traceability,
    })
}

/// `filed_at` from `<input type="datetime-local">`: Stockholm local time.
fn local_time(form: &FormFields, k: &str) -> Field<String> {
    match text(form, k) {
        Field::Given(local) => {
            let parsed = NaiveDateTime::parse_from_str(&local, "%Y-%m-%dT%H:%M")
                .ok()
                .and_then(|n| n.and_local_timezone(Stockholm).earliest())
                .map(|t| t.to_rfc3339());
            Field::Given(parsed.unwrap_or(local))
        }
        other => other,
    }
}

fn classification_form(form: &FormFields) -> ClassificationBody {
    ClassificationBody {
        severity: choice(form, "severity"),
        aspects: aspects(form),
        category: text(form, "category"),
        personal_data_breach: choice(form, "personal_data_breach"),
        nis2_significant: checkbox(form, "nis2_significant"),
        rationale: text(form, "rationale"),
        unknown: Unknown::new(),
    }
}

fn filing_form(form: &FormFields) -> FilingBody {
    FilingBody {
        kind: choice(form, "kind"),
        authority: text(form, "authority"),
        filed_at: local_time(form, "filed_at"),
        their_reference: text(form, "their_reference"),
        not_filed_rationale: text(form, "not_filed_rationale"),
        content_sha256: text(form, "content_sha256"),
        unknown: Unknown::new(),
    }
}

fn form_values(form: &FormFields) -> HashMap<String, String> {
    form.iter()
        .filter(|(k, _)| k.as_str() != CSRF_FIELD)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

async fn deviation_action(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path((reference, action)): Path<(String, String)>,
    crate::web::upload::CsrfUpload { csrf, form, files }: crate::web::upload::CsrfUpload<
        Vec<(String, String)>,
    >,
) -> Result<Response, PageError> {
    let form = read_form(form);
    let d = load(&state, &who, &reference)?;
    let now = state.services.clock.now();
    if action == "attachments" {
        use crate::web::upload;
        if !authorize(&who, Action::Comment, Some(&d)) {
            return Err(PageError::Forbidden);
        }
        let checked = upload::check(&files, "bilaga", state.config.intake.max_attachment_bytes);
        let parsed = match checked {
            Ok(f) if !f.is_empty() => {
                upload::attach(&state, &d, f, false, &who.actor()).await?;
                return Ok(
                    Redirect::to(&format!("/staff/deviations/{}?sparat=1", d.reference))
                        .into_response(),
                );
            }
            Ok(_) => vec![crate::web::error::FieldError::new(
                "bilaga",
                "choose a file",
                "Välj en fil att bifoga.",
            )],
            Err(e) => e,
        };
        return submit(
            &state,
            &who,
            d,
            csrf,
            Action::Comment,
            Err(ApiError::Validation(parsed)),
            "attachments".into(),
            form_values(&form),
        )
        .await;
    }
    let (needed, parsed): (Action, Result<Command, ApiError>) = match action.as_str() {
        "classify" => (
            Action::Classify,
            classification_form(&form).parse(&who, &state.config.report, now),
        ),
        "decide" => (
            Action::RecordDecision,
            DecisionBody {
                text: text(&form, "text"),
                unknown: Unknown::new(),
            }
            .parse(&who),
        ),
        "measures" => (
            Action::AddMeasure,
            MeasureBody {
                description: text(&form, "description"),
                owner: text(&form, "owner"),
                due: text(&form, "due"),
                unknown: Unknown::new(),
            }
            .parse()
            .map(|(_, c)| c),
        ),
        "comment" => (
            Action::Comment,
            CommentBody {
                text: text(&form, "text"),
                to_reporter: checkbox(&form, "to_reporter"),
                unknown: Unknown::new(),
            }
            .parse(),
        ),
        "close" => (
            Action::Close,
            CloseBody {
                resolution: text(&form, "resolution"),
                unknown: Unknown::new(),
            }
            .parse(),
        ),
        "reopen" => (
            Action::Reopen,
            ReopenBody {
                reason: text(&form, "reason"),
                unknown: Unknown::new(),
            }
            .parse(),
        ),
        "filing" => (
            Action::RecordFiling,
            filing_form(&form).parse(
                now,
                &crate::filing::organisation::current(
                    state.services.store.as_ref(),
                    &state.config.organisation,
                ),
            ),
        ),
        "awareness" => (
            Action::RecordAwareness,
            AwarenessBody {
                regime: choice(&form, "regime"),
                aware_at: local_time(&form, "awareness-aware_at"),
                reason: text(&form, "reason"),
                unknown: Unknown::new(),
            }
            .parse(now),
        ),
        "handlers" => {
            let body = HandlersBody {
                owner: text(&form, "owner"),
                deputy: text(&form, "deputy"),
                unknown: Unknown::new(),
            };
            let parsed = {
                let reg = state.services.register.read();
                body.parse(|e| crate::web::api::handler(&reg.accounts, &d, e))
            };
            (Action::AssignHandlers, parsed)
        }
        "incident" => {
            let body = IncidentLinkBody {
                incident: text(&form, "incident"),
                relation: choice(&form, "relation"),
                unknown: Unknown::new(),
            };
            let parsed = if !form.contains_key("unlink") && matches!(body.incident, Field::Absent) {
                // The link form sent empty: not an unlink (that form says so).
                Err(ApiError::Validation(vec![
                    crate::web::error::FieldError::new(
                        "incident",
                        "is required",
                        "Ange incidentens referens, till exempel AVV-2026-0001.",
                    ),
                ]))
            } else {
                let reg = state.services.register.read();
                body.parse(|r| crate::web::api::incident_for(&reg, &who, &d, r))
            };
            (Action::Classify, parsed)
        }
        "supplier" => (
            Action::AssignHandlers,
            SupplierBody {
                supplier: text(&form, "supplier"),
                reported_by_supplier: checkbox(&form, "reported_by_supplier"),
                unknown: Unknown::new(),
            }
            .parse(),
        ),
        "handling-ended" => (
            Action::RecordFiling,
            HandlingEndedBody {
                ended_at: local_time(&form, "ended_at"),
                unknown: Unknown::new(),
            }
            .parse(now),
        ),
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
    CsrfForm { csrf, form }: CsrfForm<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let form = read_form(form);
    let measure_id = Uuid::parse_str(&measure_id).map_err(|_| PageError::NotFound)?;
    let d = load(&state, &who, &reference)?;
    let parsed = CompleteMeasureBody {
        note: text(&form, "note"),
        unknown: Unknown::new(),
    }
    .parse(measure_id);
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
pub(super) async fn submit(
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
    let again = |d: Deviation, status: StatusCode, errors: FormErrors, refused: Option<String>| {
        let (csrf, form, values) = (csrf.clone(), form_name.clone(), values.clone());
        async move {
            // The page shows the deviation again: a reading like any other.
            crate::web::access_log::seen_page(
                &state.access_log,
                &who.actor(),
                crate::access_log::AccessKind::DeviationPage,
                Some(&d),
            )
            .await?;
            let page = build_page(
                state,
                who,
                d,
                form_token(&csrf)?,
                PageInput {
                    form,
                    errors,
                    values,
                    saved: None,
                    refused,
                },
            )?;
            Ok::<Response, PageError>((csrf, render(status, &page)).into_response())
        }
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
            .await
        }
        Err(other) => {
            return again(
                d,
                StatusCode::BAD_REQUEST,
                FormErrors::default(),
                Some(format!("{other}")),
            )
            .await
        }
    };
    match state.services.execute(d.reference, cmd, &who.actor()).await {
        Ok(_) => Ok(
            Redirect::to(&format!("/staff/deviations/{}?sparat=1", d.reference)).into_response(),
        ),
        Err(ServiceError::Domain(e)) => {
            again(
                d,
                StatusCode::CONFLICT,
                FormErrors::default(),
                Some(e.message_sv()),
            )
            .await
        }
        Err(other) => Err(other.into()),
    }
}
