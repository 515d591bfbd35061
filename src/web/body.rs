//! Reading a command body: each command is one type (`Deserialize + ToSchema`) whose
//! fields are [`Field`]s, so the JSON is read once and every field keeps what was sent,
//! right or wrong; the command's own `parse` then turns it into domain values and lists
//! every bad field at once. The same types give the OpenAPI document its request bodies.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use super::error::{ApiError, FieldError};
use super::report_input::check_text;

/// One field of a command body as sent: absent (or `null`), a value of the wanted type, or
/// a value of another type (which the command's `parse` reports by field name).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Field<T> {
    #[default]
    Absent,
    Given(T),
    Wrong,
}

impl<T> Field<T> {
    /// A value, for a field set by a form rather than read from JSON.
    pub fn from_option(v: Option<T>) -> Self {
        v.map_or(Field::Absent, Field::Given)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        if v.is_null() {
            return Ok(Field::Absent);
        }
        Ok(T::deserialize(v).map_or(Field::Wrong, Field::Given))
    }
}

/// The fields of a body that its command does not have (each a 422 "unknown field"). Their
/// values are read like every other (a number out of range is a 400 wherever it is).
pub type Unknown = BTreeMap<String, serde_json::Value>;

/// Reads a command body from JSON bytes: 400 when it is not JSON, 422 when it is JSON but
/// not an object.
pub fn from_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        if e.classify() != serde_json::error::Category::Data {
            return ApiError::BadRequest(format!("body is not valid JSON: {e}"));
        }
        // A data error stops reading at once: whether the rest is JSON decides 400 or 422.
        if let Err(syntax) = serde_json::from_slice::<serde_json::Value>(body) {
            return ApiError::BadRequest(format!("body is not valid JSON: {syntax}"));
        }
        let object = body
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b'{');
        if object {
            ApiError::Validation(vec![FieldError::new(
                "",
                &e.to_string(),
                "Begäran kunde inte läsas.",
            )])
        } else {
            ApiError::Validation(vec![FieldError::new(
                "",
                "the body must be a JSON object",
                "Begäran måste vara ett JSON-objekt.",
            )])
        }
    })
}

/// Collects the problems of one body, each with an English and a Swedish message.
#[derive(Debug, Default)]
pub struct Problems {
    pub errors: Vec<FieldError>,
}

impl Problems {
    pub fn error(&mut self, field: &str, en: &str, sv: &str) {
        self.errors.push(FieldError::new(field, en, sv));
    }

    /// Free text under the one rule of [`check_text`]: trimmed, at most `max` characters,
    /// no control characters but line breaks and tabs.
    pub fn text(
        &mut self,
        field: &str,
        value: &Field<String>,
        required: bool,
        max: usize,
    ) -> Option<String> {
        let value = match value {
            Field::Absent => None,
            Field::Given(s) => Some(s.as_str()),
            Field::Wrong => {
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

    pub fn boolean(&mut self, field: &str, value: &Field<bool>, required: bool) -> Option<bool> {
        match value {
            Field::Absent => {
                if required {
                    self.error(field, "is required", "Ange ja eller nej.");
                }
                None
            }
            Field::Given(b) => Some(*b),
            Field::Wrong => {
                self.error(field, "must be true or false", "Ange ja eller nej.");
                None
            }
        }
    }

    pub fn date(
        &mut self,
        field: &str,
        value: &Field<String>,
        required: bool,
    ) -> Option<chrono::NaiveDate> {
        let s = self.text(field, value, required, 10)?;
        match chrono::NaiveDate::parse_from_str(&s, "%Y-%m-%d") {
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

    pub fn datetime(
        &mut self,
        field: &str,
        value: &Field<String>,
        required: bool,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        let s = self.text(field, value, required, 64)?;
        match chrono::DateTime::parse_from_rfc3339(&s) {
            Ok(t) => Some(t.with_timezone(&chrono::Utc)),
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

    /// A value read by serde (enums, nested objects); `expected` says what is wanted in
    /// English and Swedish.
    pub fn parsed<T: Clone>(
        &mut self,
        field: &str,
        value: &Field<T>,
        required: bool,
        expected: (&str, &str),
    ) -> Option<T> {
        match value {
            Field::Absent => {
                if required {
                    // The specific Swedish wording says what to choose, not just "required".
                    self.error(field, "is required", expected.1);
                }
                None
            }
            Field::Given(t) => Some(t.clone()),
            Field::Wrong => {
                self.error(field, &format!("must be {}", expected.0), expected.1);
                None
            }
        }
    }

    /// Fails with every collected problem, also naming the fields that are not allowed.
    pub fn finish(mut self, unknown: &Unknown) -> Result<(), ApiError> {
        for k in unknown.keys() {
            self.error(k, "unknown field", "Okänt fält.");
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
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(default)]
    struct Body {
        note: Field<String>,
        text: Field<String>,
        reason: Field<String>,
        owner: Field<String>,
        missing: Field<String>,
        #[serde(flatten)]
        unknown: Unknown,
    }

    impl Default for Body {
        fn default() -> Self {
            Body {
                note: Field::Absent,
                text: Field::Absent,
                reason: Field::Absent,
                owner: Field::Absent,
                missing: Field::Absent,
                unknown: Unknown::new(),
            }
        }
    }

    #[test]
    fn staff_text_follows_the_public_rule() {
        let body: Body = from_json(
            br#"{"note": "rad ett\nrad tv\u00e5\tmed tabb", "text": "klocka\u0007", "reason": "  ", "owner": 5, "extra": [1]}"#,
        )
        .unwrap();
        let mut f = Problems::default();
        assert_eq!(
            f.text("note", &body.note, true, 100).as_deref(),
            Some("rad ett\nrad två\tmed tabb")
        );
        assert_eq!(f.text("text", &body.text, true, 100), None);
        assert_eq!(f.text("reason", &body.reason, true, 100), None);
        assert_eq!(f.text("owner", &body.owner, false, 100), None);
        assert_eq!(f.text("missing", &body.missing, false, 100), None);
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
        let Err(ApiError::Validation(all)) = f.finish(&body.unknown) else {
            panic!("refused")
        };
        assert_eq!(all.last().unwrap().field, "extra");
    }

    #[test]
    fn not_json_is_400_and_not_an_object_is_422() {
        assert!(matches!(
            from_json::<Body>(b"{\"note\": "),
            Err(ApiError::BadRequest(_))
        ));
        for body in [&b"[1, 2]"[..], b"\"x\"", b"7", b"null"] {
            let Err(ApiError::Validation(e)) = from_json::<Body>(body) else {
                panic!("{body:?}")
            };
            assert_eq!(e[0].message, "the body must be a JSON object");
        }
    }
}
