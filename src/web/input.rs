//! Reading JSON command bodies field by field, collecting every problem with an English
//! and a Swedish message (so a 422 lists all bad fields at once).

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};

use super::error::{ApiError, FieldError};
use super::report_input::check_text;

pub struct Fields<'a> {
    map: &'a Map<String, Value>,
    pub errors: Vec<FieldError>,
}

impl<'a> Fields<'a> {
    pub fn new(body: &'a Value) -> Result<Self, ApiError> {
        match body.as_object() {
            Some(map) => Ok(Self {
                map,
                errors: Vec::new(),
            }),
            None => Err(ApiError::Validation(vec![FieldError::new(
                "",
                "the body must be a JSON object",
                "Begäran måste vara ett JSON-objekt.",
            )])),
        }
    }

    pub fn error(&mut self, field: &str, en: &str, sv: &str) {
        self.errors.push(FieldError::new(field, en, sv));
    }

    fn present(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    /// Free text under the one rule of [`check_text`]: trimmed, at most `max` characters,
    /// no control characters but line breaks and tabs.
    pub fn text(&mut self, field: &str, required: bool, max: usize) -> Option<String> {
        let value = match self.present(field) {
            None => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => {
                self.error(field, "must be a string", "Fältet måste vara text.");
                return None;
            }
        };
        match check_text(field, value, required, max) {
            Ok(t) => t,
            Err(e) => {
                self.errors.push(e);
                None
            }
        }
    }

    pub fn boolean(&mut self, field: &str, required: bool) -> Option<bool> {
        match self.present(field) {
            None => {
                if required {
                    self.error(field, "is required", "Ange ja eller nej.");
                }
                None
            }
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                self.error(field, "must be true or false", "Ange ja eller nej.");
                None
            }
        }
    }

    pub fn date(&mut self, field: &str, required: bool) -> Option<NaiveDate> {
        let s = self.text(field, required, 10)?;
        match NaiveDate::parse_from_str(&s, "%Y-%m-%d") {
            Ok(d) => Some(d),
            Err(_) => {
                self.error(
                    field,
                    "must be a date YYYY-MM-DD",
                    "Ange ett datum, till exempel 2026-04-30.",
                );
                None
            }
        }
    }

    pub fn datetime(&mut self, field: &str, required: bool) -> Option<DateTime<Utc>> {
        let s = self.text(field, required, 64)?;
        match DateTime::parse_from_rfc3339(&s) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(_) => {
                self.error(
                    field,
                    "must be an RFC 3339 date-time",
                    "Ange datum och tid, till exempel 2026-03-01T14:30:00+01:00.",
                );
                None
            }
        }
    }

    /// A value deserialized with serde (enums, nested objects); `expected` says what is
    /// wanted in English and Swedish.
    pub fn parsed<T: serde::de::DeserializeOwned>(
        &mut self,
        field: &str,
        required: bool,
        expected: (&str, &str),
    ) -> Option<T> {
        match self.present(field) {
            None => {
                if required {
                    // The specific Swedish wording says what to choose, not just "required".
                    self.error(field, "is required", expected.1);
                }
                None
            }
            Some(v) => match T::deserialize(v) {
                Ok(t) => Some(t),
                Err(_) => {
                    self.error(field, &format!("must be {}", expected.0), expected.1);
                    None
                }
            },
        }
    }

    /// Fails with every collected problem, also naming fields that are not allowed.
    pub fn finish(mut self, allowed: &[&str]) -> Result<(), ApiError> {
        let unknown: Vec<String> = self
            .map
            .keys()
            .filter(|k| !allowed.contains(&k.as_str()))
            .cloned()
            .collect();
        for k in unknown {
            self.error(&k, "unknown field", "Okänt fält.");
        }
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn staff_text_follows_the_public_rule() {
        let body = json!({
            "note": "rad ett\nrad två\tmed tabb",
            "text": "klocka\u{7}",
            "reason": "  ",
            "owner": 5,
        });
        let mut f = Fields::new(&body).unwrap();
        assert_eq!(
            f.text("note", true, 100).as_deref(),
            Some("rad ett\nrad två\tmed tabb")
        );
        assert_eq!(f.text("text", true, 100), None);
        assert_eq!(f.text("reason", true, 100), None);
        assert_eq!(f.text("owner", false, 100), None);
        assert_eq!(f.text("missing", false, 100), None);
        let fields: Vec<(&str, &str)> = f
            .errors
            .iter()
            .map(|e| (e.field.as_str(), e.message.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                ("text", "contains control characters"),
                ("reason", "must not be empty"),
                ("owner", "must be a string"),
            ]
        );
    }
}
