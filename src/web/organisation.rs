//! The organisation details filings carry: the admin's page (`/staff/admin/organisation`).

use super::Routes;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_csrf::CsrfToken;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::csrf::{form_token, CsrfForm};
use super::error::FieldError;
use super::pages::{render, stockholm_display, FormErrors, Layout, PageError};
use super::staff::staff_nav;
use super::AppState;
use crate::auth::{authorize, Action, Principal, Staff};
use crate::domain::organisation::{OrganisationDetails, OrganisationEvent};
use crate::filing::organisation::{change, load, OrganisationWriteError};

pub fn router() -> Routes {
    Routes::new()
        .get("/staff/admin/organisation", page)
        .post("/staff/admin/organisation", save)
}

/// The form's fields: name, label, hint.
const FIELDS: &[(&str, &str, &str)] = &[
    (
        "controller_name",
        "Personuppgiftsansvarig",
        "Till exempel Exempels kommun.",
    ),
    ("org_number", "Organisationsnummer", "NNNNNN-NNNN."),
    (
        "dpo_contact",
        "Dataskyddsombudets kontaktuppgifter",
        "Funktionsadress eller telefon.",
    ),
    (
        "nis2_entity_type",
        "Typ av verksamhetsutövare (NIS2)",
        "väsentlig eller viktig.",
    ),
    (
        "nis2_sector",
        "Sektor (NIS2)",
        "Till exempel Offentlig förvaltning.",
    ),
    (
        "gdpr_authority",
        "Tillsynsmyndighet för personuppgiftsincidenter",
        "IMY.",
    ),
    (
        "nis2_authority",
        "Mottagare av NIS2-rapporter",
        "CERT-SE vid MCF.",
    ),
];

struct FieldRow {
    name: &'static str,
    label: &'static str,
    hint: &'static str,
    value: String,
}

struct ChangeRow {
    at: String,
    actor: String,
    what: &'static str,
}

#[derive(Template)]
#[template(path = "staff/organisation.html")]
struct OrganisationPage {
    layout: Layout,
    csrf: String,
    fields: Vec<FieldRow>,
    changes: Vec<ChangeRow>,
    errors: FormErrors,
    saved: bool,
}

fn get_field(d: &OrganisationDetails, name: &str) -> String {
    match name {
        "controller_name" => &d.controller_name,
        "org_number" => &d.org_number,
        "dpo_contact" => &d.dpo_contact,
        "nis2_entity_type" => &d.nis2_entity_type,
        "nis2_sector" => &d.nis2_sector,
        "gdpr_authority" => &d.gdpr_authority,
        _ => &d.nis2_authority,
    }
    .clone()
}

async fn view(
    state: &AppState,
    who: &Principal,
    csrf: String,
    shown: Option<OrganisationDetails>,
    errors: FormErrors,
    saved: bool,
) -> Result<OrganisationPage, PageError> {
    let store = state.services.store.clone();
    let (current, _, records) = tokio::task::spawn_blocking(move || load(store.as_ref()))
        .await
        .map_err(|e| PageError::Internal(e.into()))?
        .map_err(|e| PageError::Internal(e.into()))?;
    let d = shown
        .or(current)
        .unwrap_or_else(|| state.config.organisation.clone());
    let changes = records
        .iter()
        .rev()
        .filter_map(|r| {
            let ev = OrganisationEvent::from_parts(&r.event_type, &r.data)?.ok()?;
            Some(ChangeRow {
                at: stockholm_display(r.at),
                actor: r.actor.clone(),
                what: match ev {
                    OrganisationEvent::Seeded(_) => "Hämtade från konfigurationen",
                    OrganisationEvent::Changed(_) => "Ändrade",
                },
            })
        })
        .collect();
    Ok(OrganisationPage {
        layout: Layout::staff("Organisationens uppgifter", staff_nav(who, "/staff/admin"))
            .with_errors(!errors.is_empty()),
        csrf,
        fields: FIELDS
            .iter()
            .map(|(name, label, hint)| FieldRow {
                name,
                label,
                hint,
                value: get_field(&d, name),
            })
            .collect(),
        changes,
        errors,
        saved,
    })
}

#[derive(Deserialize, Default)]
struct Flash {
    sparat: Option<String>,
}

async fn page(
    State(state): State<AppState>,
    Staff(who): Staff,
    csrf: CsrfToken,
    Query(f): Query<Flash>,
) -> Result<Response, PageError> {
    if !authorize(&who, Action::ManageAccounts, None) {
        return Err(PageError::Forbidden);
    }
    let page = view(
        &state,
        &who,
        form_token(&csrf)?,
        None,
        FormErrors::default(),
        f.sparat.is_some(),
    )
    .await?;
    Ok((csrf, render(StatusCode::OK, &page)).into_response())
}

async fn save(
    State(state): State<AppState>,
    Staff(who): Staff,
    CsrfForm { csrf, form }: CsrfForm<Map<String, Value>>,
) -> Result<Response, PageError> {
    if !authorize(&who, Action::ManageAccounts, None) {
        return Err(PageError::Forbidden);
    }
    let text = |k: &str| {
        form.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let wanted = OrganisationDetails {
        controller_name: text("controller_name"),
        org_number: text("org_number"),
        dpo_contact: text("dpo_contact"),
        nis2_entity_type: text("nis2_entity_type"),
        nis2_sector: text("nis2_sector"),
        gdpr_authority: text("gdpr_authority"),
        nis2_authority: text("nis2_authority"),
    };
    let problems: Vec<FieldError> = wanted
        .problems()
        .into_iter()
        .map(|(f, en, sv)| FieldError::new(f, en, sv))
        .collect();
    if problems.is_empty() {
        let now = state.services.clock.now();
        let (store, config) = (&state.services.store, &state.config.organisation);
        match change(store, config, wanted.clone(), &who.actor(), now).await {
            Ok(_) => return Ok(Redirect::to("/staff/admin/organisation?sparat=1").into_response()),
            Err(OrganisationWriteError::Invalid(e)) => {
                return Err(PageError::Unavailable(e.to_string()))
            }
            Err(e) => return Err(PageError::Unavailable(e.to_string())),
        }
    }
    let labels: Vec<(&str, &str)> = FIELDS.iter().map(|(f, l, _)| (*f, *l)).collect();
    let page = view(
        &state,
        &who,
        form_token(&csrf)?,
        Some(wanted),
        FormErrors::new(&problems, &labels),
        false,
    )
    .await?;
    Ok((csrf, render(StatusCode::UNPROCESSABLE_ENTITY, &page)).into_response())
}
