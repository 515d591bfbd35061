//! Parses a report from outside (JSON API, later the form) into a `NewReport`, collecting
//! every bad field with an English and a Swedish message.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};

use crate::config::ReportConfig;
use crate::domain::{Channel, EmailAddress, Reporter};
use crate::service::NewReport;
use crate::web::error::FieldError;

pub const TITLE_MAX: usize = 200;
pub const DESCRIPTION_MAX: usize = 20_000;
pub const SHORT_MAX: usize = 200;
/// Clock skew tolerated for times "in the future".
const SKEW: i64 = 5;

const FIELDS: &[&str] = &[
    "title",
    "description",
    "occurred_at",
    "discovered_at",
    "sector",
    "asset",
    "personal_data",
    "reporter",
];

fn text(
    obj: &Map<String, Value>,
    field: &str,
    required: bool,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match obj.get(field) {
        None | Some(Value::Null) => {
            if required {
                errors.push(FieldError::new(
                    field,
                    "is required",
                    "Fältet måste fyllas i.",
                ));
            }
            None
        }
        Some(Value::String(s)) => {
            let t = s.trim();
            if t.is_empty() {
                if required {
                    errors.push(FieldError::new(
                        field,
                        "must not be empty",
                        "Fältet måste fyllas i.",
                    ));
                }
                None
            } else if t.chars().count() > max {
                errors.push(FieldError::new(
                    field,
                    &format!("must be at most {max} characters"),
                    &format!("Texten får vara högst {max} tecken."),
                ));
                None
            } else if t
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
            {
                errors.push(FieldError::new(
                    field,
                    "contains control characters",
                    "Texten innehåller otillåtna tecken.",
                ));
                None
            } else {
                Some(t.to_string())
            }
        }
        Some(_) => {
            errors.push(FieldError::new(
                field,
                "must be a string",
                "Fältet måste vara text.",
            ));
            None
        }
    }
}

fn time(
    obj: &Map<String, Value>,
    field: &str,
    now: DateTime<Utc>,
    errors: &mut Vec<FieldError>,
) -> Option<DateTime<Utc>> {
    match obj.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => match DateTime::parse_from_rfc3339(s.trim()) {
            Ok(t) => {
                let t = t.with_timezone(&Utc);
                if t > now + Duration::minutes(SKEW) {
                    errors.push(FieldError::new(
                        field,
                        "must not be in the future",
                        "Tidpunkten får inte ligga i framtiden.",
                    ));
                    None
                } else {
                    Some(t)
                }
            }
            Err(_) => {
                errors.push(FieldError::new(
                    field,
                    "must be an RFC 3339 date-time, e.g. 2026-03-01T14:30:00+01:00",
                    "Ange datum och tid, till exempel 2026-03-01 14:30.",
                ));
                None
            }
        },
        Some(_) => {
            errors.push(FieldError::new(
                field,
                "must be an RFC 3339 date-time string",
                "Ange datum och tid.",
            ));
            None
        }
    }
}

/// Parses a JSON report body.
pub fn parse_report_json(
    body: &Value,
    cfg: &ReportConfig,
    now: DateTime<Utc>,
    channel: Channel,
) -> Result<NewReport, Vec<FieldError>> {
    let Some(obj) = body.as_object() else {
        return Err(vec![FieldError::new(
            "",
            "the body must be a JSON object",
            "Begäran måste vara ett JSON-objekt.",
        )]);
    };
    let mut errors = Vec::new();
    for key in obj.keys() {
        if !FIELDS.contains(&key.as_str()) {
            errors.push(FieldError::new(key, "unknown field", "Okänt fält."));
        }
    }
    let title = text(obj, "title", true, TITLE_MAX, &mut errors);
    let description = text(obj, "description", true, DESCRIPTION_MAX, &mut errors);
    let occurred_at = time(obj, "occurred_at", now, &mut errors);
    let discovered_at = time(obj, "discovered_at", now, &mut errors);
    if let (Some(o), Some(d)) = (occurred_at, discovered_at) {
        if o > d {
            errors.push(FieldError::new(
                "occurred_at",
                "must not be after discovered_at",
                "Händelsen kan inte ha inträffat efter att den upptäcktes.",
            ));
        }
    }
    let sector = text(obj, "sector", false, SHORT_MAX, &mut errors);
    if let Some(s) = &sector {
        if !cfg.sectors.is_empty() && !cfg.sectors.iter().any(|x| x == s) {
            errors.push(FieldError::new(
                "sector",
                &format!("must be one of: {}", cfg.sectors.join(", ")),
                "Välj en sektor i listan.",
            ));
        }
    }
    let asset = text(obj, "asset", false, SHORT_MAX, &mut errors);
    let personal_data = match obj.get("personal_data") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.push(FieldError::new(
                "personal_data",
                "must be true or false",
                "Ange ja eller nej.",
            ));
            false
        }
    };
    let reporter = match obj.get("reporter") {
        None | Some(Value::Null) => {
            if !cfg.allow_anonymous {
                errors.push(FieldError::new(
                    "reporter",
                    "is required (anonymous reports are not accepted)",
                    "Ange ditt namn och din e-postadress.",
                ));
            }
            None
        }
        Some(Value::Object(r)) => {
            let mut sub = Vec::new();
            let name = text(r, "name", true, SHORT_MAX, &mut sub);
            let email = match r.get("email") {
                Some(Value::String(s)) => match EmailAddress::parse(s) {
                    Some(e) => Some(e),
                    None => {
                        sub.push(FieldError::new(
                            "email",
                            "must be an e-mail address",
                            "Ange en giltig e-postadress, till exempel namn@kommunen.se.",
                        ));
                        None
                    }
                },
                _ => {
                    sub.push(FieldError::new(
                        "email",
                        "is required",
                        "Ange din e-postadress.",
                    ));
                    None
                }
            };
            for key in r.keys() {
                if key != "name" && key != "email" {
                    sub.push(FieldError::new(key, "unknown field", "Okänt fält."));
                }
            }
            errors.extend(sub.into_iter().map(|mut e| {
                e.field = format!("reporter.{}", e.field);
                e
            }));
            match (name, email) {
                (Some(name), Some(email)) => Some(Reporter { name, email }),
                _ => None,
            }
        }
        Some(_) => {
            errors.push(FieldError::new(
                "reporter",
                "must be an object {name, email} or absent",
                "Ange namn och e-postadress.",
            ));
            None
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    match (title, description) {
        (Some(title), Some(description)) => Ok(NewReport {
            title,
            description,
            occurred_at,
            discovered_at,
            sector,
            asset,
            personal_data,
            reporter,
            channel,
        }),
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg() -> ReportConfig {
        crate::config::Config::defaults().unwrap().report
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
}
