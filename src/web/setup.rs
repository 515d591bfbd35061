//! `/setup/{token}`: the first-run page where the first admin and CISO are created with
//! the one-time link `avvik serve` printed.

use std::collections::HashMap;

use super::Routes;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_csrf::CsrfToken;
use serde_json::{Map, Value};

use super::csrf::{form_token, CsrfForm};
use super::error::FieldError;
use super::pages::{render, FormErrors, Layout, PageError};
use super::AppState;
use crate::auth::service::AccountError;
use crate::auth::setup::{check, complete, FirstAccounts, SetupFailure};
use crate::domain::EmailAddress;

pub fn router() -> Routes {
    Routes::new()
        .get("/setup/{token}", page)
        .post("/setup/{token}", submit)
}

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    layout: Layout,
    csrf: String,
    token: String,
    errors: FormErrors,
    values: HashMap<String, String>,
    /// The link cannot be used: why, in Swedish.
    refused: Option<String>,
    done: bool,
}

impl SetupPage {
    fn value(&self, k: &str) -> String {
        self.values.get(k).cloned().unwrap_or_default()
    }
}

const LABELS: &[(&str, &str)] = &[
    ("admin_name", "Ditt namn"),
    ("admin_email", "Din e-postadress"),
    ("admin_password", "Ditt lösenord"),
    ("ciso_name", "CISO:s namn"),
    ("ciso_email", "CISO:s e-postadress"),
    ("ciso_password", "CISO:s startlösenord"),
];

fn blank(csrf: String, token: &str) -> SetupPage {
    SetupPage {
        layout: Layout::public("Kom igång"),
        csrf,
        token: token.to_string(),
        errors: FormErrors::default(),
        values: HashMap::new(),
        refused: None,
        done: false,
    }
}

/// A token as a link carries it: 64 hex digits. Anything else is refused the same way as
/// an unknown link, without touching the store.
fn well_formed(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

fn refused(csrf: String, token: &str, e: &SetupFailure) -> Response {
    let status = match e {
        SetupFailure::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::GONE,
    };
    let mut p = blank(csrf, token);
    p.refused = Some(e.message_sv());
    render(status, &p)
}

async fn page(
    State(state): State<AppState>,
    csrf: CsrfToken,
    Path(token): Path<String>,
) -> Result<Response, PageError> {
    let form = form_token(&csrf)?;
    let result = if well_formed(&token) {
        check(&state.services, &token, state.services.clock.now())
    } else {
        Err(crate::domain::setup::SetupError::Unknown.into())
    };
    Ok(match result {
        Ok(()) => (csrf, render(StatusCode::OK, &blank(form, &token))).into_response(),
        Err(e) => (csrf, refused(form, &token, &e)).into_response(),
    })
}

fn field(form: &Map<String, Value>, k: &str) -> String {
    form.get(k)
        .and_then(Value::as_str)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

async fn submit(
    State(state): State<AppState>,
    Path(token): Path<String>,
    CsrfForm { csrf, form }: CsrfForm<Map<String, Value>>,
) -> Result<Response, PageError> {
    if !well_formed(&token) {
        let e = SetupFailure::Link(crate::domain::setup::SetupError::Unknown);
        return Ok((csrf.clone(), refused(form_token(&csrf)?, &token, &e)).into_response());
    }
    let mut errors = Vec::new();
    let admin_email = EmailAddress::parse(&field(&form, "admin_email"));
    if admin_email.is_none() {
        errors.push(FieldError::new(
            "admin_email",
            "invalid",
            "Ange en giltig e-postadress.",
        ));
    }
    let admin_name = field(&form, "admin_name");
    if admin_name.is_empty() {
        errors.push(FieldError::new("admin_name", "required", "Ange ditt namn."));
    }
    let ciso_email_text = field(&form, "ciso_email");
    let ciso_name = field(&form, "ciso_name");
    let ciso_email = if ciso_email_text.is_empty() {
        None
    } else {
        let e = EmailAddress::parse(&ciso_email_text);
        if e.is_none() {
            errors.push(FieldError::new(
                "ciso_email",
                "invalid",
                "Ange en giltig e-postadress, eller lämna fältet tomt om du själv är CISO.",
            ));
        }
        if ciso_name.is_empty() {
            errors.push(FieldError::new(
                "ciso_name",
                "required",
                "Ange CISO:s namn.",
            ));
        }
        e
    };
    let raw = |k: &str| {
        form.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (admin_pw, ciso_pw) = (raw("admin_password"), raw("ciso_password"));
    let same = ciso_email.is_some() && ciso_email == admin_email;
    let mut values: HashMap<String, String> =
        ["admin_name", "admin_email", "ciso_name", "ciso_email"]
            .iter()
            .map(|k| (k.to_string(), field(&form, k)))
            .collect();
    if errors.is_empty() {
        if let Some(admin) = &admin_email {
            let ciso = match (&ciso_email, same) {
                (Some(c), false) => Some((c, ciso_name.as_str(), ciso_pw.as_str())),
                _ => None,
            };
            let result = complete(
                &state.services,
                &token,
                FirstAccounts {
                    admin_email: admin,
                    admin_name: &admin_name,
                    admin_password: &admin_pw,
                    ciso,
                },
            )
            .await;
            match result {
                Ok(()) => {
                    tracing::info!("first accounts created with the setup link");
                    let mut p = blank(form_token(&csrf)?, &token);
                    p.done = true;
                    return Ok((csrf, render(StatusCode::OK, &p)).into_response());
                }
                Err(SetupFailure::Account(e @ AccountError::Invalid(_))) => {
                    let f = if e.message_sv().contains("ösenord") {
                        "admin_password"
                    } else {
                        "admin_name"
                    };
                    errors.push(FieldError::new(f, &e.to_string(), &e.message_sv()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "setup link refused");
                    return Ok(
                        (csrf.clone(), refused(form_token(&csrf)?, &token, &e)).into_response()
                    );
                }
            }
        }
    }
    values.remove("admin_password");
    let mut p = blank(form_token(&csrf)?, &token);
    p.layout = p.layout.with_errors(true);
    p.errors = FormErrors::new(&errors, LABELS);
    p.values = values;
    Ok((csrf, render(StatusCode::UNPROCESSABLE_ENTITY, &p)).into_response())
}
