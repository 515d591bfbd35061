//! Parses a report from outside (JSON API, web form) into a `NewReport`, collecting every
//! bad field with an English and a Swedish message. Each entry point only reads its own
//! format into a `Draft`; the rules a report must meet live once, in `apply_rules`.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Europe::Stockholm;
use serde::Deserialize;

use super::body::{Field, Unknown};

use crate::config::ReportConfig;
use crate::domain::{Channel, EmailAddress, Reporter};
use crate::service::NewReport;
use crate::web::error::FieldError;

pub use crate::domain::limits::{DESCRIPTION_MAX, SHORT_MAX, TITLE_MAX};
/// Clock skew tolerated for times "in the future".
const SKEW: i64 = 5;

/// JSON fields, in the order their errors are listed.
const FIELDS: &[&str] = &[
    "title",
    "description",
    "occurred_at",
    "discovered_at",
    "sector",
    "asset",
    "personal_data",
    "reporter",
    "reporter.name",
    "reporter.email",
];

/// A value as an entry point read it, before the rules.
#[derive(Debug, Clone, PartialEq)]
enum Input<T> {
    Absent,
    Given(T),
    /// The entry point could not read it and has already said why.
    Unreadable,
}

impl<T> Input<T> {
    fn from_option(v: Option<T>) -> Self {
        v.map_or(Input::Absent, Input::Given)
    }
}

#[derive(Debug)]
enum ReporterDraft {
    Anonymous,
    Named {
        name: Input<String>,
        email: Input<String>,
    },
    Unreadable,
}

/// A report as read from one format; the rules have not been applied yet.
#[derive(Debug)]
struct Draft {
    title: Input<String>,
    description: Input<String>,
    occurred_at: Input<DateTime<Utc>>,
    discovered_at: Input<DateTime<Utc>>,
    sector: Input<String>,
    asset: Input<String>,
    personal_data: bool,
    reporter: ReporterDraft,
}

/// The one rule for free text: trimmed, required or not, at most `max` characters, no
/// control characters but line breaks and tabs. `Ok(None)`: optional and left empty.
pub fn check_text(
    field: &str,
    value: Option<&str>,
    required: bool,
    max: usize,
) -> Result<Option<String>, FieldError> {
    let Some(s) = value else {
        return if required {
            Err(FieldError::new(
                field,
                "is required",
                "Fältet måste fyllas i.",
            ))
        } else {
            Ok(None)
        };
    };
    let t = s.trim();
    if t.is_empty() {
        if required {
            return Err(FieldError::new(
                field,
                "must not be empty",
                "Fältet måste fyllas i.",
            ));
        }
        Ok(None)
    } else if t.chars().count() > max {
        Err(FieldError::new(
            field,
            &format!("must be at most {max} characters"),
            &format!("Texten får vara högst {max} tecken."),
        ))
    } else if t
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        Err(FieldError::new(
            field,
            "contains control characters",
            "Texten innehåller otillåtna tecken.",
        ))
    } else {
        Ok(Some(t.to_string()))
    }
}

fn text_rule(
    field: &str,
    input: Input<String>,
    required: bool,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let value = match &input {
        Input::Unreadable => return None,
        Input::Absent => None,
        Input::Given(s) => Some(s.as_str()),
    };
    check_text(field, value, required, max).unwrap_or_else(|e| {
        errors.push(e);
        None
    })
}

fn time_rule(
    field: &str,
    input: Input<DateTime<Utc>>,
    now: DateTime<Utc>,
    errors: &mut Vec<FieldError>,
) -> Option<DateTime<Utc>> {
    match input {
        Input::Given(t) if t > now + Duration::minutes(SKEW) => {
            errors.push(FieldError::new(
                field,
                "must not be in the future",
                "Tidpunkten får inte ligga i framtiden.",
            ));
            None
        }
        Input::Given(t) => Some(t),
        Input::Absent | Input::Unreadable => None,
    }
}

/// Every rule a report meets, whatever format it came in. Field names in the errors are
/// the JSON API's (`occurred_at`, `reporter.email`, …).
fn apply_rules(
    draft: Draft,
    cfg: &ReportConfig,
    now: DateTime<Utc>,
    channel: Channel,
    errors: &mut Vec<FieldError>,
) -> Option<NewReport> {
    let title = text_rule("title", draft.title, true, TITLE_MAX, errors);
    let description = text_rule(
        "description",
        draft.description,
        true,
        DESCRIPTION_MAX,
        errors,
    );
    let occurred_at = time_rule("occurred_at", draft.occurred_at, now, errors);
    let discovered_at = time_rule("discovered_at", draft.discovered_at, now, errors);
    if let (Some(o), Some(d)) = (occurred_at, discovered_at) {
        if o > d {
            errors.push(FieldError::new(
                "occurred_at",
                "must not be after discovered_at",
                "Händelsen kan inte ha inträffat efter att den upptäcktes.",
            ));
        }
    }
    let sector = text_rule("sector", draft.sector, false, SHORT_MAX, errors);
    if let Some(s) = &sector {
        if !cfg.sectors.is_empty() && !cfg.sectors.iter().any(|x| x == s) {
            errors.push(FieldError::new(
                "sector",
                &format!("must be one of: {}", cfg.sectors.join(", ")),
                "Välj en sektor i listan.",
            ));
        }
    }
    let asset = text_rule("asset", draft.asset, false, SHORT_MAX, errors);
    let reporter = match draft.reporter {
        ReporterDraft::Unreadable => None,
        ReporterDraft::Anonymous => {
            if !cfg.allow_anonymous {
                errors.push(FieldError::new(
                    "reporter",
                    "is required (anonymous reports are not accepted)",
                    "Ange ditt namn och din e-postadress.",
                ));
            }
            None
        }
        ReporterDraft::Named { name, email } => {
            let name = text_rule("reporter.name", name, true, SHORT_MAX, errors);
            let email = match email {
                Input::Given(s) => match EmailAddress::parse(&s) {
                    Some(e) => Some(e),
                    None => {
                        errors.push(FieldError::new(
                            "reporter.email",
                            "must be an e-mail address",
                            "Ange en giltig e-postadress, till exempel namn@kommunen.se.",
                        ));
                        None
                    }
                },
                Input::Absent => {
                    errors.push(FieldError::new(
                        "reporter.email",
                        "is required",
                        "Ange din e-postadress.",
                    ));
                    None
                }
                Input::Unreadable => None,
            };
            match (name, email) {
                (Some(name), Some(email)) => Some(Reporter { name, email }),
                _ => None,
            }
        }
    };
    if !errors.is_empty() {
        return None;
    }
    Some(NewReport {
        title: title?,
        description: description?,
        occurred_at,
        discovered_at,
        sector,
        asset,
        personal_data: draft.personal_data,
        reporter,
        channel,
    })
}

/// Lists errors in the order of `order`; names not in it (unknown fields) come first.
fn sort_errors(errors: &mut [FieldError], order: &[&str]) {
    errors.sort_by_key(|e| {
        order
            .iter()
            .position(|f| *f == e.field)
            .map_or(0, |i| i + 1)
    });
}

/// Who reports, in a JSON report; absent means anonymous.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct ReporterBody {
    #[serde(default)]
    #[schema(value_type = String, required = true, max_length = 200)]
    pub name: Field<String>,
    #[serde(default)]
    #[schema(value_type = String, required = true, example = "anna.svensson@kommunen.example")]
    pub email: Field<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

/// A new deviation. Times are RFC 3339; absent `reporter` means anonymous.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct ReportBody {
    #[serde(default)]
    #[schema(value_type = String, required = true, max_length = 200, example = "Förlorad mobiltelefon")]
    pub title: Field<String>,
    #[serde(default)]
    #[schema(value_type = String, required = true, max_length = 20000, example = "Tappade tjänstetelefonen på bussen.")]
    pub description: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub occurred_at: Field<String>,
    #[serde(default)]
    /// When it was discovered; absent means now.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub discovered_at: Field<String>,
    #[serde(default)]
    /// One of the configured sectors.
    #[schema(value_type = Option<String>, max_length = 200)]
    pub sector: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 200)]
    pub asset: Field<String>,
    #[serde(default)]
    /// The reporter's guess that personal data may be involved.
    #[schema(value_type = Option<bool>)]
    pub personal_data: Field<bool>,
    #[serde(default)]
    #[schema(value_type = Option<ReporterBody>)]
    pub reporter: Field<ReporterBody>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

fn json_text(value: &Field<String>, field: &str, errors: &mut Vec<FieldError>) -> Input<String> {
    match value {
        Field::Absent => Input::Absent,
        Field::Given(s) => Input::Given(s.clone()),
        Field::Wrong => {
            errors.push(FieldError::new(
                field,
                "must be a string",
                "Fältet måste vara text.",
            ));
            Input::Unreadable
        }
    }
}

fn json_time(
    value: &Field<String>,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Input<DateTime<Utc>> {
    match value {
        Field::Absent => Input::Absent,
        Field::Given(s) if s.trim().is_empty() => Input::Absent,
        Field::Given(s) => match DateTime::parse_from_rfc3339(s.trim()) {
            Ok(t) => Input::Given(t.with_timezone(&Utc)),
            Err(_) => {
                errors.push(FieldError::new(
                    field,
                    "must be an RFC 3339 date-time, e.g. 2026-03-01T14:30:00+01:00",
                    "Ange datum och tid, till exempel 2026-03-01 14:30.",
                ));
                Input::Unreadable
            }
        },
        Field::Wrong => {
            errors.push(FieldError::new(
                field,
                "must be an RFC 3339 date-time string",
                "Ange datum och tid.",
            ));
            Input::Unreadable
        }
    }
}

fn json_reporter(value: &Field<ReporterBody>, errors: &mut Vec<FieldError>) -> ReporterDraft {
    match value {
        Field::Absent => ReporterDraft::Anonymous,
        Field::Given(r) => {
            for key in r.unknown.keys() {
                errors.push(FieldError::new(
                    &format!("reporter.{key}"),
                    "unknown field",
                    "Okänt fält.",
                ));
            }
            let mut sub = Vec::new();
            let name = json_text(&r.name, "name", &mut sub);
            errors.extend(sub.into_iter().map(|mut e| {
                e.field = format!("reporter.{}", e.field);
                e
            }));
            // A non-string e-mail reads as missing: "is required" says what to send.
            let email = match &r.email {
                Field::Given(s) => Input::Given(s.clone()),
                _ => Input::Absent,
            };
            ReporterDraft::Named { name, email }
        }
        Field::Wrong => {
            errors.push(FieldError::new(
                "reporter",
                "must be an object {name, email} or absent",
                "Ange namn och e-postadress.",
            ));
            ReporterDraft::Unreadable
        }
    }
}

/// Parses a JSON report body.
pub fn parse_report_json(
    body: &ReportBody,
    cfg: &ReportConfig,
    now: DateTime<Utc>,
    channel: Channel,
) -> Result<NewReport, Vec<FieldError>> {
    let mut errors = Vec::new();
    for key in body.unknown.keys() {
        errors.push(FieldError::new(key, "unknown field", "Okänt fält."));
    }
    let personal_data = match body.personal_data {
        Field::Absent => false,
        Field::Given(b) => b,
        Field::Wrong => {
            errors.push(FieldError::new(
                "personal_data",
                "must be true or false",
                "Ange ja eller nej.",
            ));
            false
        }
    };
    let draft = Draft {
        title: json_text(&body.title, "title", &mut errors),
        description: json_text(&body.description, "description", &mut errors),
        occurred_at: json_time(&body.occurred_at, "occurred_at", &mut errors),
        discovered_at: json_time(&body.discovered_at, "discovered_at", &mut errors),
        sector: json_text(&body.sector, "sector", &mut errors),
        asset: json_text(&body.asset, "asset", &mut errors),
        personal_data,
        reporter: json_reporter(&body.reporter, &mut errors),
    };
    let report = apply_rules(draft, cfg, now, channel, &mut errors);
    match report {
        Some(r) if errors.is_empty() => Ok(r),
        _ => {
            sort_errors(&mut errors, FIELDS);
            Err(errors)
        }
    }
}

/// The report form as posted (`application/x-www-form-urlencoded`). Every field is text
/// as typed, so a bad value never stops the form from being shown again with it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ReportForm {
    pub title: String,
    pub description: String,
    /// `YYYY-MM-DD`, Stockholm local date (`<input type="date">`).
    pub occurred_date: String,
    /// `HH:MM`, Stockholm local time (`<input type="time">`).
    pub occurred_time: String,
    pub discovered_date: String,
    pub discovered_time: String,
    pub sector: String,
    pub asset: String,
    /// Checkbox: present when ticked.
    pub personal_data: Option<String>,
    /// Checkbox "report anonymously": present when ticked.
    pub anonymous: Option<String>,
    pub reporter_name: String,
    pub reporter_email: String,
}

impl ReportForm {
    pub fn personal_data(&self) -> bool {
        self.personal_data.is_some()
    }

    pub fn anonymous(&self) -> bool {
        self.anonymous.is_some()
    }
}

/// Form inputs, in the order they appear (and their errors are listed).
pub const FORM_FIELDS: &[&str] = &[
    "title",
    "description",
    "occurred_date",
    "occurred_time",
    "discovered_date",
    "discovered_time",
    "sector",
    "asset",
    "personal_data",
    "anonymous",
    "reporter_name",
    "reporter_email",
];

/// The form input that shows an error the rules named by its JSON field.
fn form_field(rule_field: &str) -> &'static str {
    match rule_field {
        "occurred_at" => "occurred_date",
        "discovered_at" => "discovered_date",
        "reporter" | "reporter.name" => "reporter_name",
        "reporter.email" => "reporter_email",
        other => FORM_FIELDS
            .iter()
            .copied()
            .find(|f| *f == other)
            .unwrap_or("title"),
    }
}

/// Reads a Stockholm local date and time into UTC, DST-correctly: in the hour that occurs
/// twice in October the earlier instant is taken (it starts the statutory clocks sooner);
/// the hour that does not exist in March is refused.
pub fn stockholm_local_to_utc(
    date: &str,
    time: &str,
    date_field: &str,
    time_field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<Option<DateTime<Utc>>> {
    let (date, time) = (date.trim(), time.trim());
    if date.is_empty() && time.is_empty() {
        return Some(None);
    }
    let d = if date.is_empty() {
        errors.push(FieldError::new(
            date_field,
            "a date is required with the time",
            "Ange datum.",
        ));
        None
    } else {
        let parsed = NaiveDate::parse_from_str(date, "%Y-%m-%d");
        if parsed.is_err() {
            errors.push(FieldError::new(
                date_field,
                "must be a date YYYY-MM-DD",
                "Ange datum som åååå-mm-dd, till exempel 2026-03-01.",
            ));
        }
        parsed.ok()
    };
    let t = if time.is_empty() {
        errors.push(FieldError::new(
            time_field,
            "a time is required with the date",
            "Ange klockslag, till exempel 14:30.",
        ));
        None
    } else {
        let parsed = NaiveTime::parse_from_str(time, "%H:%M")
            .or_else(|_| NaiveTime::parse_from_str(time, "%H:%M:%S"));
        if parsed.is_err() {
            errors.push(FieldError::new(
                time_field,
                "must be a time HH:MM",
                "Ange klockslag som tt:mm, till exempel 14:30.",
            ));
        }
        parsed.ok()
    };
    let (d, t) = (d?, t?);
    match Stockholm
        .from_local_datetime(&NaiveDateTime::new(d, t))
        .earliest()
    {
        Some(local) => Some(Some(local.with_timezone(&Utc))),
        None => {
            errors.push(FieldError::new(
                time_field,
                "does not exist in Europe/Stockholm on that date (daylight saving time starts)",
                "Klockslaget finns inte den dagen eftersom klockan ställdes fram en timme \
                 till sommartid. Ange en tid före 02:00 eller från 03:00.",
            ));
            None
        }
    }
}

fn form_text(s: &str) -> Input<String> {
    Input::from_option((!s.trim().is_empty()).then(|| s.to_string()))
}

/// Parses the posted report form. Times are Stockholm local time. Field names in the
/// errors are the form's input names (`FORM_FIELDS`), so each message can sit at its input.
pub fn parse_report_form(
    form: &ReportForm,
    cfg: &ReportConfig,
    now: DateTime<Utc>,
) -> Result<NewReport, Vec<FieldError>> {
    let mut form_errors = Vec::new();
    let time = |date: &str, time: &str, prefix: &str, errors: &mut Vec<FieldError>| {
        match stockholm_local_to_utc(
            date,
            time,
            &format!("{prefix}_date"),
            &format!("{prefix}_time"),
            errors,
        ) {
            Some(t) => Input::from_option(t),
            None => Input::Unreadable,
        }
    };
    let occurred_at = time(
        &form.occurred_date,
        &form.occurred_time,
        "occurred",
        &mut form_errors,
    );
    let discovered_at = time(
        &form.discovered_date,
        &form.discovered_time,
        "discovered",
        &mut form_errors,
    );
    // Anonymous means anonymous: whatever was typed in the name fields is not kept.
    let reporter = if form.anonymous() && cfg.allow_anonymous {
        ReporterDraft::Anonymous
    } else {
        ReporterDraft::Named {
            name: form_text(&form.reporter_name),
            email: form_text(&form.reporter_email),
        }
    };
    let draft = Draft {
        title: form_text(&form.title),
        description: form_text(&form.description),
        occurred_at,
        discovered_at,
        sector: form_text(&form.sector),
        asset: form_text(&form.asset),
        personal_data: form.personal_data(),
        reporter,
    };
    let mut rule_errors = Vec::new();
    let report = apply_rules(draft, cfg, now, Channel::Web, &mut rule_errors);
    let mut errors = form_errors;
    errors.extend(rule_errors.into_iter().map(|mut e| {
        e.field = form_field(&e.field).to_string();
        if e.field == "reporter_name" && e.message_sv == "Fältet måste fyllas i." {
            e.message_sv = if cfg.allow_anonymous {
                "Ange ditt namn, eller kryssa i att du vill rapportera anonymt.".into()
            } else {
                "Ange ditt namn.".into()
            };
        }
        e
    }));
    match report {
        Some(r) if errors.is_empty() => Ok(r),
        _ => {
            sort_errors(&mut errors, FORM_FIELDS);
            // One message per input is enough; the first is the most basic.
            let mut seen = std::collections::HashSet::new();
            errors.retain(|e| seen.insert(e.field.clone()));
            Err(errors)
        }
    }
}

/// The clock of the fuzz targets and their corpus replays: fixed, so a run repeats.
pub fn fuzz_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

/// The built-in default configuration's report rules, read once.
pub fn fuzz_config() -> &'static ReportConfig {
    static CFG: std::sync::OnceLock<ReportConfig> = std::sync::OnceLock::new();
    CFG.get_or_init(|| {
        crate::config::Config::defaults()
            .expect("the built-in defaults are valid")
            .report
    })
}

/// The entry point of the fuzz target `report_form` (`fuzz/fuzz_targets/report_form.rs`)
/// and of its corpus replay (`tests/api/fuzz_corpus.rs`): a posted body read as the
/// handler reads it (`CsrfForm`: `serde_html_form::from_bytes`), then `parse_report_form`
/// with the default configuration at `fuzz_now()`. `None`: not a form (the handler
/// answers 400). Panics when the outcome breaks a promise of the parser.
pub fn fuzz_report_form(body: &[u8]) -> Option<Result<NewReport, Vec<FieldError>>> {
    let form: ReportForm = serde_html_form::from_bytes(body).ok()?;
    let (cfg, now) = (fuzz_config(), fuzz_now());
    let result = parse_report_form(&form, cfg, now);
    match &result {
        Ok(r) => {
            assert_eq!(r.channel, Channel::Web);
            assert_eq!(r.personal_data, form.personal_data());
            if form.anonymous() && cfg.allow_anonymous {
                assert!(r.reporter.is_none(), "anonymous keeps no name");
            }
            fuzz_check_report(r, cfg, now);
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            let mut seen = std::collections::HashSet::new();
            for e in errors {
                assert!(FORM_FIELDS.contains(&e.field.as_str()), "{e:?}");
                assert!(seen.insert(e.field.as_str()), "two errors for {}", e.field);
                assert!(!e.message.is_empty() && !e.message_sv.is_empty());
            }
        }
    }
    Some(result)
}

/// What every accepted report keeps, whatever format it came in; and its `Reported`
/// event reads back from its stored JSON as the same value.
pub fn fuzz_check_report(r: &NewReport, cfg: &ReportConfig, now: DateTime<Utc>) {
    let text_ok = |s: &str, max: usize| {
        !s.is_empty()
            && s.trim() == s
            && s.chars().count() <= max
            && !s
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    };
    assert!(text_ok(&r.title, TITLE_MAX), "title {:?}", r.title);
    assert!(text_ok(&r.description, DESCRIPTION_MAX));
    for s in [&r.sector, &r.asset].into_iter().flatten() {
        assert!(text_ok(s, SHORT_MAX), "{s:?}");
    }
    if let Some(s) = &r.sector {
        assert!(cfg.sectors.is_empty() || cfg.sectors.contains(s));
    }
    for t in [r.occurred_at, r.discovered_at].into_iter().flatten() {
        assert!(t <= now + Duration::minutes(SKEW), "{t} is in the future");
    }
    if let (Some(o), Some(d)) = (r.occurred_at, r.discovered_at) {
        assert!(o <= d);
    }
    match &r.reporter {
        Some(rep) => {
            assert!(text_ok(&rep.name, SHORT_MAX));
            assert_eq!(
                EmailAddress::parse(rep.email.as_str()).as_ref(),
                Some(&rep.email)
            );
        }
        None => assert!(cfg.allow_anonymous),
    }
    let event = crate::domain::deviation::Reported {
        reference: crate::domain::Reference::parse("AVV-2026-0001").expect("a reference"),
        title: r.title.clone(),
        description: r.description.clone(),
        occurred_at: r.occurred_at,
        discovered_at: r.discovered_at.unwrap_or(now),
        sector: r.sector.clone(),
        asset: r.asset.clone(),
        personal_data: r.personal_data,
        reporter: r.reporter.clone(),
        channel: r.channel,
        status_token_hash: String::new(),
        reported_at: now,
    };
    fuzz_round_trip(&event);
}

/// A value stored as an event's JSON reads back as the same value.
pub fn fuzz_round_trip<T>(value: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let bytes = serde_json::to_vec(value).expect("serializes");
    let back: T = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "stored JSON does not read back ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    assert_eq!(&back, value, "stored JSON reads back differently");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_report_json(
        v: &serde_json::Value,
        cfg: &ReportConfig,
        now: DateTime<Utc>,
        channel: Channel,
    ) -> Result<NewReport, Vec<FieldError>> {
        let body: ReportBody =
            crate::web::body::from_json(&serde_json::to_vec(v).unwrap()).unwrap();
        super::parse_report_json(&body, cfg, now, channel)
    }

    fn cfg() -> ReportConfig {
        crate::config::Config::defaults().unwrap().report
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn names_every_bad_field() {
        let now = Utc::now();
        let body = json!({
            "title": "  ",
            "occurred_at": "igår",
            "discovered_at": "2999-01-01T00:00:00Z",
            "sector": "Månbasen",
            "personal_data": "ja",
            "reporter": {"name": "", "email": "nej"},
            "extra": 1
        });
        let errs = parse_report_json(&body, &cfg(), now, Channel::Api).unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        for f in [
            "title",
            "description",
            "occurred_at",
            "discovered_at",
            "sector",
            "personal_data",
            "reporter.name",
            "reporter.email",
            "extra",
        ] {
            assert!(fields.contains(&f), "{f} missing in {fields:?}");
        }
        assert_eq!(fields[0], "extra", "unknown fields first: {fields:?}");
        assert!(errs.iter().all(|e| !e.message_sv.is_empty()));
    }

    #[test]
    fn accepts_a_minimal_report() {
        let r = parse_report_json(
            &json!({"title": "Förlorad mobil", "description": "Tappade telefonen på bussen."}),
            &cfg(),
            Utc::now(),
            Channel::Api,
        )
        .unwrap();
        assert_eq!(r.title, "Förlorad mobil");
        assert!(r.reporter.is_none());
    }

    fn form() -> ReportForm {
        ReportForm {
            title: "Förlorad mobil".into(),
            description: "Tappade telefonen på bussen.".into(),
            anonymous: Some("on".into()),
            ..ReportForm::default()
        }
    }

    #[test]
    fn form_and_json_share_the_rules() {
        let now = utc("2026-06-01T12:00:00Z");
        let long = "x".repeat(TITLE_MAX + 1);
        let f = ReportForm {
            title: long.clone(),
            sector: "Månbasen".into(),
            ..form()
        };
        let form_errs = parse_report_form(&f, &cfg(), now).unwrap_err();
        let json_errs = parse_report_json(
            &json!({"title": long, "description": "d", "sector": "Månbasen"}),
            &cfg(),
            now,
            Channel::Api,
        )
        .unwrap_err();
        let sv = |v: &[FieldError]| v.iter().map(|e| e.message_sv.clone()).collect::<Vec<_>>();
        assert_eq!(sv(&form_errs), sv(&json_errs));
        assert_eq!(form_errs[0].field, "title");
        assert_eq!(form_errs[1].field, "sector");
    }

    #[test]
    fn form_times_are_stockholm_local_time_and_dst_correct() {
        let now = utc("2026-06-01T12:00:00Z");
        let at = |date: &str, time: &str| {
            let f = ReportForm {
                discovered_date: date.into(),
                discovered_time: time.into(),
                ..form()
            };
            parse_report_form(&f, &cfg(), now)
        };
        // Winter: UTC+1; summer: UTC+2.
        assert_eq!(
            at("2026-01-15", "08:00").unwrap().discovered_at,
            Some(utc("2026-01-15T07:00:00Z"))
        );
        assert_eq!(
            at("2025-07-01", "10:00").unwrap().discovered_at,
            Some(utc("2025-07-01T08:00:00Z"))
        );
        // 2025-10-26 02:30 happens twice: the earlier (summer time) instant.
        assert_eq!(
            at("2025-10-26", "02:30").unwrap().discovered_at,
            Some(utc("2025-10-26T00:30:00Z"))
        );
        // 2026-03-29 02:30 does not exist.
        let errs = at("2026-03-29", "02:30").unwrap_err();
        assert_eq!(errs[0].field, "discovered_time");
        assert!(errs[0].message_sv.contains("sommartid"), "{errs:?}");
        // A date without a time, a time without a date, nonsense, the future.
        assert_eq!(
            at("2026-01-15", "").unwrap_err()[0].field,
            "discovered_time"
        );
        assert_eq!(at("", "08:00").unwrap_err()[0].field, "discovered_date");
        assert_eq!(at("15/1", "08:00").unwrap_err()[0].field, "discovered_date");
        let errs = at("2026-06-02", "08:00").unwrap_err();
        assert_eq!(errs[0].field, "discovered_date");
        assert!(errs[0].message_sv.contains("framtiden"));
    }

    #[test]
    fn form_reporter_is_named_or_explicitly_anonymous() {
        let now = Utc::now();
        let mut c = cfg();
        let f = ReportForm {
            anonymous: Some("on".into()),
            reporter_name: "Anna".into(),
            reporter_email: "anna@kommunen.se".into(),
            ..form()
        };
        assert!(parse_report_form(&f, &c, now).unwrap().reporter.is_none());
        let f = ReportForm {
            anonymous: None,
            ..form()
        };
        let errs = parse_report_form(&f, &c, now).unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["reporter_name", "reporter_email"]);
        assert!(errs[0].message_sv.contains("anonymt"));
        let f = ReportForm {
            anonymous: None,
            reporter_name: "Anna".into(),
            reporter_email: "anna@kommunen.se".into(),
            ..form()
        };
        let r = parse_report_form(&f, &c, now).unwrap();
        assert_eq!(r.reporter.unwrap().email.as_str(), "anna@kommunen.se");
        assert_eq!(r.channel, Channel::Web);
        // When anonymous reports are not accepted, ticking the box does not help.
        c.allow_anonymous = false;
        let errs = parse_report_form(&form(), &c, now).unwrap_err();
        assert_eq!(errs[0].field, "reporter_name");
        assert_eq!(errs[0].message_sv, "Ange ditt namn.");
    }
}
