//! Reading JSON command bodies field by field, collecting every problem with an English
//! and a Swedish message (so a 422 lists all bad fields at once).

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};

use super::error::{ApiError, FieldError};

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

    /// A trimmed, non-empty string of at most `max` characters.
    pub fn text(&mut self, field: &str, required: bool, max: usize) -> Option<String> {
        match self.present(field) {
            None => {
                if required {
                    self.error(field, "is required", "Fältet måste fyllas i.");
                }
                None
            }
            Some(Value::String(s)) => {
                let t = s.trim();
                if t.is_empty() {
                    if required {
                        self.error(field, "must not be empty", "Fältet måste fyllas i.");
                    }
                    None
                } else if t.chars().count() > max {
                    self.error(
                        field,
                        &format!("must be at most {max} characters"),
                        &format!("Texten får vara högst {max} tecken."),
                    );
                    None
                } else {
                    Some(t.to_string())
                }
            }
            Some(_) => {
                self.error(field, "must be a string", "Fältet måste vara text.");
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
