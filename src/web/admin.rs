//! `/staff/admin`: account management for admins. Every change is an account event.

use std::collections::HashMap;

use super::Routes;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_csrf::CsrfToken;
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::csrf::{form_token, CsrfForm};
use super::error::FieldError;
use super::pages::{render, stockholm_display, FormErrors, Layout, PageError};
use super::staff::staff_nav;
use super::AppState;
use crate::auth::duties::{may_create_token, needs_second_admin, DutyCommand};
use crate::auth::service::AccountError;
use crate::auth::{authorize, Account, Action, Principal, Role, Staff};
use crate::domain::EmailAddress;

pub fn router() -> Routes {
    Routes::new()
        .get("/staff/admin", accounts_page)
        .post("/staff/admin/accounts", create_account)
        .get("/staff/admin/accounts/{id}", account_page)
        .post("/staff/admin/accounts/{id}/{action}", account_action)
        .post(
            "/staff/admin/accounts/{id}/tokens/{token_id}/revoke",
            revoke_token,
        )
}

fn require_admin(who: &Principal) -> Result<(), PageError> {
    if authorize(who, Action::ManageAccounts, None) {
        Ok(())
    } else {
        Err(PageError::Forbidden)
    }
}

fn roles_list() -> Vec<(String, &'static str)> {
    Role::ALL
        .iter()
        .map(|r| (r.as_str().to_string(), r.label_sv()))
        .collect()
}

fn roles_text(a: &Account) -> String {
    let v: Vec<String> = a
        .roles
        .iter()
        .map(|g| {
            if g.sectors.is_empty() {
                g.role.label_sv().to_string()
            } else {
                format!("{} ({})", g.role.label_sv(), g.sectors.join(", "))
            }
        })
        .collect();
    if v.is_empty() {
        "–".into()
    } else {
        v.join(", ")
    }
}

struct AccountRow {
    id: Uuid,
    email: String,
    name: String,
    roles: String,
    state: &'static str,
}

#[derive(Template)]
#[template(path = "staff/admin.html")]
struct AccountsPage {
    layout: Layout,
    csrf: String,
    accounts: Vec<AccountRow>,
    roles: Vec<(String, &'static str)>,
    sectors: Vec<String>,
    errors: FormErrors,
    values: HashMap<String, String>,
    saved: Option<String>,
    new_token: Option<String>,
}

impl AccountsPage {
    fn value(&self, k: &str) -> String {
        self.values.get(k).cloned().unwrap_or_default()
    }
}

#[derive(Deserialize, Default)]
struct Flash {
    sparat: Option<String>,
}

fn accounts_view(
    state: &AppState,
    who: &Principal,
    csrf: String,
    errors: FormErrors,
    values: HashMap<String, String>,
    saved: Option<String>,
) -> AccountsPage {
    let reg = state.services.register.read();
    let accounts = reg
        .accounts
        .list()
        .into_iter()
        .map(|a| AccountRow {
            id: a.id,
            email: a.email.to_string(),
            name: a.name.clone(),
            roles: roles_text(a),
            state: if a.disabled { "avstängt" } else { "aktivt" },
        })
        .collect();
    AccountsPage {
        layout: Layout::staff("Konton", staff_nav(who, "/staff/admin"))
            .with_errors(!errors.is_empty()),
        csrf,
        accounts,
        roles: roles_list(),
        sectors: state.config.report.sectors.clone(),
        errors,
        values,
        saved,
        new_token: None,
    }
}

async fn accounts_page(
    State(state): State<AppState>,
    Staff(who): Staff,
    csrf: CsrfToken,
    Query(f): Query<Flash>,
) -> Result<Response, PageError> {
    require_admin(&who)?;
    let page = accounts_view(
        &state,
        &who,
        form_token(&csrf)?,
        FormErrors::default(),
        HashMap::new(),
        f.sparat.map(|_| "Kontot är skapat.".to_string()),
    );
    Ok((csrf, render(StatusCode::OK, &page)).into_response())
}

const LABELS: &[(&str, &str)] = &[
    ("email", "E-postadress"),
    ("name", "Namn"),
    ("role", "Roll"),
    ("password", "Startlösenord"),
];

fn field(form: &Map<String, Value>, k: &str) -> String {
    form.get(k)
        .and_then(|v| v.as_str())
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

async fn create_account(
    State(state): State<AppState>,
    Staff(who): Staff,
    CsrfForm { csrf, form }: CsrfForm<Map<String, Value>>,
) -> Result<Response, PageError> {
    require_admin(&who)?;
    let mut errors = Vec::new();
    let email = EmailAddress::parse(&field(&form, "email"));
    if email.is_none() {
        errors.push(FieldError::new(
            "email",
            "invalid",
            "Ange en giltig e-postadress.",
        ));
    }
    let name = field(&form, "name");
    if name.is_empty() {
        errors.push(FieldError::new("name", "required", "Ange ett namn."));
    }
    let role = Role::parse(&field(&form, "role"));
    if role.is_none() {
        errors.push(FieldError::new("role", "invalid", "Välj en roll."));
    }
    let sector = field(&form, "sector");
    let password = form
        .get("password")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    let mut values: HashMap<String, String> = ["email", "name", "role", "sector"]
        .iter()
        .map(|k| (k.to_string(), field(&form, k)))
        .collect();
    values.remove("password");
    if let (true, Some(email), Some(role)) = (errors.is_empty(), email, role) {
        let sectors = if role == Role::Kontakt && !sector.is_empty() {
            vec![sector]
        } else {
            Vec::new()
        };
        // A role that needs four eyes is asked for, not granted, on a new account too.
        let four_eyes = needs_second_admin(role);
        let direct = if four_eyes {
            Vec::new()
        } else {
            vec![(role, sectors.clone())]
        };
        match state
            .services
            .create_account(&email, &name, &direct, Some(&password), &who.actor())
            .await
        {
            Ok(id) if four_eyes => {
                let cmd = DutyCommand::Grant { role, sectors };
                return match state
                    .services
                    .account_duty(id, cmd, who.account_id, &who.actor())
                    .await
                {
                    Ok(()) => Ok(Redirect::to(&format!(
                        "/staff/admin/accounts/{id}?sparat=vantar"
                    ))
                    .into_response()),
                    Err(e) => Err(PageError::Unavailable(e.to_string())),
                };
            }
            Ok(_) => return Ok(Redirect::to("/staff/admin?sparat=1").into_response()),
            Err(e @ (AccountError::Exists | AccountError::Invalid(_))) => {
                let f = if matches!(e, AccountError::Exists) {
                    "email"
                } else if e.message_sv().contains("ösenord") {
                    "password"
                } else {
                    "role"
                };
                errors.push(FieldError::new(f, &e.to_string(), &e.message_sv()));
            }
            Err(e) => return Err(PageError::Unavailable(e.to_string())),
        }
    }
    let page = accounts_view(
        &state,
        &who,
        form_token(&csrf)?,
        FormErrors::new(&errors, LABELS),
        values,
        None,
    );
    Ok((csrf, render(StatusCode::UNPROCESSABLE_ENTITY, &page)).into_response())
}

#[derive(Template)]
#[template(path = "staff/account.html")]
struct AccountPage {
    layout: Layout,
    csrf: String,
    id: Uuid,
    name: String,
    email: String,
    state: &'static str,
    disabled: bool,
    created: String,
    grants: Vec<(String, String)>,
    roles: Vec<(String, &'static str)>,
    sectors: Vec<String>,
    /// (label, created, revoked, id)
    tokens: Vec<(String, String, Option<String>, Uuid)>,
    /// Grants waiting for a second admin: (request id, role, asked by, when, asked by me).
    pending: Vec<(Uuid, String, String, String, bool)>,
    /// The signed-in admin's own account: only they create its API tokens, and nobody
    /// grants themselves roles.
    own: bool,
    saved: Option<String>,
    refused: Option<String>,
    new_token: Option<String>,
    /// The account's second factors in words ("autentiseringsapp, 2 nycklar"), empty
    /// when it has none.
    second_factors: String,
    /// A role of the account requires a second factor.
    second_factor_required: bool,
    /// The identity providers' users the account is: (provider's button text or id,
    /// linked when). Its roles follow the provider's claim at each sign-in.
    identities: Vec<(String, String)>,
}

/// An account's second factors in words.
fn second_factors_text(a: &Account) -> String {
    let mut v = Vec::new();
    if a.totp.is_some() {
        v.push("autentiseringsapp".to_string());
    }
    match a.passkeys.len() {
        0 => {}
        1 => v.push("1 nyckel (passkey)".into()),
        n => v.push(format!("{n} nycklar (passkeys)")),
    }
    if a.recovery_codes.is_some() {
        v.push(format!(
            "{} oanvända återställningskoder",
            a.recovery_codes_left()
        ));
    }
    v.join(", ")
}

fn account_view(
    state: &AppState,
    who: &Principal,
    id: Uuid,
    csrf: String,
) -> Result<AccountPage, PageError> {
    let reg = state.services.register.read();
    let a = reg.accounts.get(id).ok_or(PageError::NotFound)?;
    Ok(AccountPage {
        layout: Layout::staff(a.name.clone(), staff_nav(who, "/staff/admin")),
        csrf,
        id: a.id,
        name: a.name.clone(),
        email: a.email.to_string(),
        state: if a.disabled { "avstängt" } else { "aktivt" },
        disabled: a.disabled,
        created: stockholm_display(a.created_at),
        grants: a
            .roles
            .iter()
            .map(|g| {
                let label = if g.sectors.is_empty() {
                    g.role.label_sv().to_string()
                } else {
                    format!("{} ({})", g.role.label_sv(), g.sectors.join(", "))
                };
                (g.role.as_str().to_string(), label)
            })
            .collect(),
        roles: roles_list(),
        sectors: state.config.report.sectors.clone(),
        tokens: a
            .tokens
            .iter()
            .map(|t| {
                (
                    if t.label.is_empty() {
                        "API-nyckel".into()
                    } else {
                        t.label.clone()
                    },
                    stockholm_display(t.created_at),
                    t.revoked_at.map(stockholm_display),
                    t.id,
                )
            })
            .collect(),
        pending: a
            .pending_grants
            .iter()
            .map(|p| {
                let label = if p.sectors.is_empty() {
                    p.role.label_sv().to_string()
                } else {
                    format!("{} ({})", p.role.label_sv(), p.sectors.join(", "))
                };
                let by = reg
                    .accounts
                    .get(p.requested_by)
                    .map(|x| x.email.to_string())
                    .unwrap_or_else(|| p.requested_by.to_string());
                (
                    p.request_id,
                    label,
                    by,
                    stockholm_display(p.requested_at),
                    p.requested_by == who.account_id,
                )
            })
            .collect(),
        own: a.id == who.account_id,
        saved: None,
        refused: None,
        new_token: None,
        second_factors: second_factors_text(a),
        second_factor_required: state.config.auth.requires_second_factor(&a.roles),
        identities: a
            .identities
            .iter()
            .map(|l| {
                let name = state
                    .config
                    .auth
                    .provider(&l.provider)
                    .map_or(l.provider.clone(), |p| format!("{} ({})", p.label, p.id));
                (name, stockholm_display(l.linked_at))
            })
            .collect(),
    })
}

fn parse_id(id: &str) -> Result<Uuid, PageError> {
    Uuid::parse_str(id).map_err(|_| PageError::NotFound)
}

async fn account_page(
    State(state): State<AppState>,
    Staff(who): Staff,
    csrf: CsrfToken,
    Path(id): Path<String>,
    Query(f): Query<Flash>,
) -> Result<Response, PageError> {
    require_admin(&who)?;
    let mut page = account_view(&state, &who, parse_id(&id)?, form_token(&csrf)?)?;
    page.saved = f.sparat.map(|v| {
        if v == "vantar" {
            "Rollen väntar på godkännande av en annan administratör.".to_string()
        } else {
            "Ändringen är sparad.".to_string()
        }
    });
    Ok((csrf, render(StatusCode::OK, &page)).into_response())
}

async fn account_action(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path((id, action)): Path<(String, String)>,
    CsrfForm { csrf, form }: CsrfForm<Map<String, Value>>,
) -> Result<Response, PageError> {
    require_admin(&who)?;
    let id = parse_id(&id)?;
    let svc = &state.services;
    let actor = who.actor();
    let request = || {
        Uuid::parse_str(&field(&form, "request_id"))
            .map_err(|_| AccountError::Invalid("Begäran finns inte.".into()))
    };
    let mut flash = "1";
    let result: Result<Option<String>, AccountError> = match action.as_str() {
        "grant" => match Role::parse(&field(&form, "role")) {
            Some(role) => {
                let sector = field(&form, "sector");
                let sectors = if role == Role::Kontakt && !sector.is_empty() {
                    vec![sector]
                } else {
                    Vec::new()
                };
                if needs_second_admin(role) {
                    flash = "vantar";
                }
                let cmd = DutyCommand::Grant { role, sectors };
                svc.account_duty(id, cmd, who.account_id, &actor)
                    .await
                    .map(|_| None)
            }
            None => Err(AccountError::Invalid("Välj en roll.".into())),
        },
        "approve" => match request() {
            Ok(request_id) => svc
                .account_duty(
                    id,
                    DutyCommand::Approve { request_id },
                    who.account_id,
                    &actor,
                )
                .await
                .map(|_| None),
            Err(e) => Err(e),
        },
        "reject" => match request() {
            Ok(request_id) => svc
                .account_duty(
                    id,
                    DutyCommand::Reject { request_id },
                    who.account_id,
                    &actor,
                )
                .await
                .map(|_| None),
            Err(e) => Err(e),
        },
        "revoke" => match Role::parse(&field(&form, "role")) {
            Some(role) => {
                if id == who.account_id && role == Role::Admin {
                    Err(AccountError::Invalid(
                        "Du kan inte ta bort din egen administratörsroll.".into(),
                    ))
                } else {
                    svc.revoke_role(id, role, &actor).await.map(|_| None)
                }
            }
            None => Err(AccountError::Invalid("Välj en roll.".into())),
        },
        "password" => {
            let pw = form
                .get("password")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string();
            // Revoking the account's API tokens is the default (the box starts ticked; a
            // form without the box revokes too); keeping them is a choice.
            let revoke_tokens = field(&form, "revoke_tokens_offered").is_empty()
                || !field(&form, "revoke_tokens").is_empty();
            svc.reset_password(id, &pw, revoke_tokens, &actor)
                .await
                .map(|_| None)
        }
        "disable" => {
            if id == who.account_id {
                Err(AccountError::Invalid(
                    "Du kan inte stänga av ditt eget konto.".into(),
                ))
            } else {
                svc.set_disabled(id, true, &field(&form, "reason"), &actor)
                    .await
                    .map(|_| None)
            }
        }
        "enable" => svc.set_disabled(id, false, "", &actor).await.map(|_| None),
        "second-factor" => {
            if id == who.account_id {
                Err(AccountError::Invalid(
                    "Du kan inte ta bort din egen andra faktor här. Be en annan administratör, eller gör det under Mitt konto.".into(),
                ))
            } else {
                let reason = field(&form, "reason");
                let done = svc.reset_second_factors(id, &reason, &actor).await;
                if done.is_ok() {
                    tracing::warn!(account = %id, by = %who.account_id, "an admin removed the account's second factors");
                }
                done.map(|_| None)
            }
        }
        "tokens" => match may_create_token(who.account_id, id) {
            Ok(()) => svc
                .create_api_token(id, &field(&form, "label"), &actor)
                .await
                .map(Some),
            Err(e) => Err(e),
        },
        _ => return Err(PageError::NotFound),
    };
    match result {
        Ok(None) => {
            Ok(Redirect::to(&format!("/staff/admin/accounts/{id}?sparat={flash}")).into_response())
        }
        Ok(Some(token)) => {
            // A new token is shown once, in this answer, never in a URL.
            let mut page = account_view(&state, &who, id, form_token(&csrf)?)?;
            page.new_token = Some(token);
            Ok((csrf, render(StatusCode::OK, &page)).into_response())
        }
        Err(AccountError::NotFound) => Err(PageError::NotFound),
        Err(e @ AccountError::Invalid(_)) => {
            let mut page = account_view(&state, &who, id, form_token(&csrf)?)?;
            page.refused = Some(e.message_sv());
            page.layout = page.layout.with_errors(true);
            Ok((csrf, render(StatusCode::UNPROCESSABLE_ENTITY, &page)).into_response())
        }
        Err(e) => Err(PageError::Unavailable(e.to_string())),
    }
}

async fn revoke_token(
    State(state): State<AppState>,
    Staff(who): Staff,
    Path((id, token_id)): Path<(String, String)>,
    CsrfForm { .. }: CsrfForm<Map<String, Value>>,
) -> Result<Response, PageError> {
    require_admin(&who)?;
    let id = parse_id(&id)?;
    let token_id = parse_id(&token_id)?;
    match state
        .services
        .revoke_api_token(id, token_id, &who.actor())
        .await
    {
        Ok(()) => Ok(Redirect::to(&format!("/staff/admin/accounts/{id}?sparat=1")).into_response()),
        Err(AccountError::NotFound) => Err(PageError::NotFound),
        Err(e) => Err(PageError::Unavailable(e.to_string())),
    }
}
