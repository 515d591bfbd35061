//! The employee-facing pages: the report form at `/`, the receipt, and the private status
//! page at `/status/{token}` where the reporter follows the case and adds information.

use super::Routes;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum_csrf::CsrfToken;
use axum_extra::extract::cookie::{Cookie, Key, PrivateCookieJar, SameSite};
use serde::{Deserialize, Serialize};

use super::csrf::form_token;
use super::error::FieldError;
use super::pages::{render, stockholm_display, FormErrors, Layout, PageError};
use super::report_input::{check_text, parse_report_form, ReportForm, DESCRIPTION_MAX};
use super::upload::{self, CsrfUpload};
use super::AppState;
use crate::domain::deviation::CommentAdded;
use crate::domain::{Command, Deviation, Reference, Status};
use crate::secret::Secret;
use crate::service::token_hash;

pub const RECEIPT_PATH: &str = "/receipt";
const RECEIPT_COOKIE: &str = "avvik_receipt";
/// How long the receipt can be shown again (reloads) after the report was sent.
const RECEIPT_MINUTES: i64 = 10;
/// What a reporter's own message is recorded as.
pub const REPORTER_ACTOR: &str = crate::domain::Actor::REPORTER;

pub fn router() -> Routes {
    Routes::new()
        .get("/", report_form)
        .post("/", submit_report)
        .get(RECEIPT_PATH, receipt)
        .get("/status/{token}", status_page)
        .post("/status/{token}", add_information)
}

/// Short names of the form's inputs, for the error summary.
const REPORT_LABELS: &[(&str, &str)] = &[
    ("title", "Vad har hänt"),
    ("description", "Beskrivning"),
    ("occurred_date", "Datum när det hände"),
    ("occurred_time", "Klockslag när det hände"),
    ("discovered_date", "Datum när det upptäcktes"),
    ("discovered_time", "Klockslag när det upptäcktes"),
    ("sector", "Sektor"),
    ("asset", "System eller informationstillgång"),
    ("personal_data", "Personuppgifter"),
    ("anonymous", "Anonym rapport"),
    ("reporter_name", "Namn"),
    ("reporter_email", "E-postadress"),
    ("bilaga", "Bifogade filer"),
];

#[derive(Template)]
#[template(path = "report_form.html")]
struct ReportPage<'a> {
    layout: Layout,
    csrf: String,
    form: ReportForm,
    errors: FormErrors,
    sectors: &'a [String],
    allow_anonymous: bool,
}

fn report_page(
    state: &AppState,
    csrf: String,
    form: ReportForm,
    errors: FormErrors,
) -> ReportPage<'_> {
    ReportPage {
        layout: Layout::public("Rapportera en avvikelse").with_errors(!errors.is_empty()),
        csrf,
        form,
        errors,
        sectors: &state.config.report.sectors,
        allow_anonymous: state.config.report.allow_anonymous,
    }
}

async fn report_form(
    State(state): State<AppState>,
    csrf: CsrfToken,
) -> Result<Response, PageError> {
    let page = report_page(
        &state,
        form_token(&csrf)?,
        ReportForm::default(),
        FormErrors::default(),
    );
    Ok((csrf, render(StatusCode::OK, &page)).into_response())
}

/// What the receipt cookie carries from the POST to the receipt page.
#[derive(Serialize, Deserialize)]
struct ReceiptClaims {
    reference: String,
    token: String,
    /// The reporter gave an address outside `mail.receipt_domains`: no receipt e-mail.
    #[serde(default)]
    not_mailed: bool,
}

/// The key of the receipt cookie (encrypted and signed: the status token is inside).
fn receipt_key(secret: &Secret) -> Key {
    let mut k = Vec::with_capacity(64);
    k.extend_from_slice(&secret.derive("receipt-cookie-1"));
    k.extend_from_slice(&secret.derive("receipt-cookie-2"));
    Key::from(&k)
}

fn is_https(state: &AppState) -> bool {
    state.config.http.base_url.starts_with("https://")
}

/// Valid: file the report and redirect (303) to the receipt, carrying the status token in
/// a short-lived private cookie, so the token never appears in a URL that could be logged.
/// Invalid: show the form again (422) with every value kept and a message at each input.
async fn submit_report(
    State(state): State<AppState>,
    CsrfUpload { csrf, form, files }: CsrfUpload<ReportForm>,
) -> Result<Response, PageError> {
    let now = state.services.clock.now();
    let checked = upload::check(&files, "bilaga", state.config.intake.max_attachment_bytes);
    let report = match (parse_report_form(&form, &state.config.report, now), checked) {
        (Ok(r), Ok(files)) => (r, files),
        (parsed, checked) => {
            let mut errors = parsed.err().unwrap_or_default();
            errors.extend(checked.err().unwrap_or_default());
            let errors = FormErrors::new(&errors, REPORT_LABELS);
            let page = report_page(&state, form_token(&csrf)?, form, errors);
            return Ok((csrf, render(StatusCode::UNPROCESSABLE_ENTITY, &page)).into_response());
        }
    };
    let (report, files) = report;
    let actor = match &report.reporter {
        // Who reported is in the sealed report, not in the clear envelope.
        Some(_) => crate::domain::Actor::REPORTER.to_string(),
        None => "reporter:anonymous".to_string(),
    };
    let not_mailed = report
        .reporter
        .as_ref()
        .is_some_and(|r| !receipt_mailed_to(&state, r.email.as_str()));
    let receipt = state.services.report(report, &actor).await?;
    if !files.is_empty() {
        let d = state
            .services
            .register
            .read()
            .by_reference(receipt.reference)
            .cloned();
        if let Some(d) = d {
            upload::attach(&state, &d, files, true, &actor).await?;
        }
    }
    let claims = ReceiptClaims {
        reference: receipt.reference.to_string(),
        token: receipt.status_token,
        not_mailed,
    };
    let value = serde_json::to_string(&claims)
        .map_err(|e| PageError::Internal(anyhow::anyhow!("receipt cookie: {e}")))?;
    let cookie = Cookie::build((RECEIPT_COOKIE, value))
        .path(RECEIPT_PATH)
        .http_only(true)
        .secure(is_https(&state))
        .same_site(SameSite::Strict)
        .max_age(time::Duration::minutes(RECEIPT_MINUTES))
        .build();
    let jar = PrivateCookieJar::new(receipt_key(&state.secret)).add(cookie);
    Ok((jar, Redirect::to(RECEIPT_PATH)).into_response())
}

/// Is a receipt e-mail sent to this address (`mail.receipt_domains`)?
pub fn receipt_mailed_to(state: &AppState, email: &str) -> bool {
    let domains = crate::notify::rules::receipt_domains(&state.config);
    crate::notify::rules::may_receive_receipt(&domains, email)
}

#[derive(Template)]
#[template(path = "receipt.html")]
struct ReceiptPage {
    layout: Layout,
    not_mailed: bool,
    reference: String,
    status_path: String,
    status_url: String,
}

#[derive(Template)]
#[template(path = "receipt_gone.html")]
struct ReceiptGonePage {
    layout: Layout,
}

async fn receipt(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let jar = PrivateCookieJar::from_headers(&headers, receipt_key(&state.secret));
    let claims = jar
        .get(RECEIPT_COOKIE)
        .and_then(|c| serde_json::from_str::<ReceiptClaims>(c.value()).ok());
    let Some(claims) = claims else {
        let page = ReceiptGonePage {
            layout: Layout::public("Kvittot visas inte längre"),
        };
        return render(StatusCode::NOT_FOUND, &page);
    };
    let status_path = format!("/status/{}", claims.token);
    let page = ReceiptPage {
        layout: Layout::public(format!("Rapporten är mottagen, {}", claims.reference)),
        status_url: format!(
            "{}{}",
            state.config.http.base_url.trim_end_matches('/'),
            status_path
        ),
        status_path,
        not_mailed: claims.not_mailed,
        reference: claims.reference,
    };
    render(StatusCode::OK, &page)
}

/// A message on the status page.
struct MessageView {
    from_reporter: bool,
    sender: &'static str,
    at: String,
    text: String,
}

/// What the reporter may see of their deviation: no classification, no staff names.
struct StatusView {
    reference: Reference,
    title: String,
    status_key: &'static str,
    status_label: &'static str,
    reported_at: String,
    messages: Vec<MessageView>,
}

impl StatusView {
    fn of(d: &Deviation) -> Self {
        let messages = d
            .comments
            .iter()
            .filter(|c| c.to_reporter || c.from_reporter)
            .map(|c| MessageView {
                from_reporter: c.from_reporter,
                sender: if c.from_reporter {
                    "Du skrev"
                } else {
                    "Från informationssäkerhetsfunktionen"
                },
                at: stockholm_display(c.at),
                text: c.text.clone(),
            })
            .collect();
        Self {
            reference: d.reference,
            title: d.title.clone(),
            status_key: match d.status {
                Status::Received => "received",
                Status::Investigating => "investigating",
                Status::Closed => "closed",
            },
            status_label: d.status.label_sv(),
            reported_at: stockholm_display(d.reported_at),
            messages,
        }
    }
}

#[derive(Template)]
#[template(path = "status.html")]
struct StatusPage {
    layout: Layout,
    deviation: StatusView,
    csrf: String,
    form_action: String,
    text: String,
    errors: FormErrors,
    saved: bool,
}

fn status_page_for(
    d: &Deviation,
    token: &str,
    csrf: String,
    text: String,
    errors: FormErrors,
    saved: bool,
) -> StatusPage {
    StatusPage {
        layout: Layout::public(format!("Status för {}", d.reference))
            .with_errors(!errors.is_empty()),
        deviation: StatusView::of(d),
        csrf,
        form_action: format!("/status/{token}"),
        text,
        errors,
        saved,
    }
}

/// The deviation a status token opens. Only well-formed tokens are looked up, by their
/// SHA-256, so neither a timing difference nor the register reveals anything about tokens.
fn by_token(state: &AppState, token: &str) -> Result<Deviation, PageError> {
    let well_formed = token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit());
    if !well_formed {
        return Err(PageError::NotFound);
    }
    state
        .services
        .register
        .read()
        .by_token_hash(&token_hash(&token.to_ascii_lowercase()))
        .cloned()
        .ok_or(PageError::NotFound)
}

#[derive(Deserialize)]
struct StatusQuery {
    sparat: Option<String>,
}

async fn status_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Query(q): Query<StatusQuery>,
    csrf: CsrfToken,
) -> Result<Response, PageError> {
    let d = by_token(&state, &token)?;
    let page = status_page_for(
        &d,
        &token,
        form_token(&csrf)?,
        String::new(),
        FormErrors::default(),
        q.sparat.is_some(),
    );
    Ok((csrf, render(StatusCode::OK, &page)).into_response())
}

#[derive(Deserialize)]
struct AddInformationForm {
    #[serde(default)]
    text: String,
}

/// The reporter adds information: a comment from the reporter, recorded as `reporter`.
async fn add_information(
    State(state): State<AppState>,
    Path(token): Path<String>,
    CsrfUpload { csrf, form, files }: CsrfUpload<AddInformationForm>,
) -> Result<Response, PageError> {
    let d = by_token(&state, &token)?;
    // A file alone is information too; without one, the text is required.
    let checked = upload::check(&files, "bilaga", state.config.intake.max_attachment_bytes);
    let text = check_text("text", Some(&form.text), files.is_empty(), DESCRIPTION_MAX);
    let (text, files) = match (text, checked) {
        (Ok(t), Ok(f)) if t.is_some() || !f.is_empty() => (t, f),
        (text, checked) => {
            let mut errs: Vec<FieldError> = text.err().into_iter().collect();
            errs.extend(checked.err().unwrap_or_default());
            if errs.is_empty() {
                errs.push(FieldError::new(
                    "text",
                    "is required",
                    "Fältet måste fyllas i.",
                ));
            }
            let errors = FormErrors::new(
                &errs,
                &[("text", "Information"), ("bilaga", "Bifogade filer")],
            );
            let page = status_page_for(&d, &token, form_token(&csrf)?, form.text, errors, false);
            return Ok((csrf, render(StatusCode::UNPROCESSABLE_ENTITY, &page)).into_response());
        }
    };
    if !files.is_empty() {
        upload::attach(&state, &d, files, true, REPORTER_ACTOR).await?;
    }
    if let Some(text) = text {
        let cmd = Command::Comment(CommentAdded {
            text,
            to_reporter: false,
            from_reporter: true,
            unverified_email: false,
        });
        state
            .services
            .execute(d.reference, cmd, REPORTER_ACTOR)
            .await?;
    }
    Ok(Redirect::to(&format!("/status/{token}?sparat=1")).into_response())
}
