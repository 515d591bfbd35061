//! Gallring: the dokumenthanteringsplan's retention rules for deviations, and which
//! deviations are due. Pure: the caller gives the time.

use chrono::{DateTime, Months, Utc};
use serde::{Deserialize, Serialize};

use super::{Deviation, Severity};

/// How long a class of deviations is kept after it is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Gallras så här många år efter avslut.
    Years(u32),
    /// Bevaras (never gallras).
    Forever,
}

impl Keep {
    /// `"bevaras"`, or a number of years: `"2 år"`, `"2y"`, `"2"`.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().to_lowercase();
        if s == "bevaras" {
            return Some(Keep::Forever);
        }
        let n = s
            .strip_suffix("år")
            .or_else(|| s.strip_suffix('y'))
            .unwrap_or(&s)
            .trim();
        n.parse().ok().filter(|y| *y > 0).map(Keep::Years)
    }

    pub fn label_sv(self) -> String {
        match self {
            Keep::Forever => "bevaras".into(),
            Keep::Years(1) => "gallras 1 år efter avslut".into(),
            Keep::Years(n) => format!("gallras {n} år efter avslut"),
        }
    }
}

impl Serialize for Keep {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Keep::Forever => s.serialize_str("bevaras"),
            Keep::Years(n) => s.serialize_str(&format!("{n} år")),
        }
    }
}

impl<'de> Deserialize<'de> for Keep {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Keep::parse(&s).ok_or_else(|| {
            serde::de::Error::custom("expected \"bevaras\" or a number of years such as \"2 år\"")
        })
    }
}

/// The classes of the plan, most protective first: what was filed with an authority, a
/// major deviation, a minor (or never classified) one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RetentionClass {
    Filed,
    Major,
    Minor,
}

impl RetentionClass {
    pub fn label_sv(self) -> &'static str {
        match self {
            RetentionClass::Filed => "anmäld till myndighet",
            RetentionClass::Major => "större avvikelse",
            RetentionClass::Minor => "mindre avvikelse",
        }
    }
}

/// The rules, as `[retention]` in the configuration gives them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionRules {
    /// The dokumenthanteringsplan the rules come from (shown with every due deviation).
    pub plan: String,
    pub minor: Keep,
    pub major: Keep,
    pub filed: Keep,
}

impl RetentionRules {
    pub fn class_of(d: &Deviation) -> RetentionClass {
        if d.filings.iter().any(|f| f.filed_at.is_some()) {
            RetentionClass::Filed
        } else if d.severity == Some(Severity::Major) {
            RetentionClass::Major
        } else {
            RetentionClass::Minor
        }
    }

    pub fn keep(&self, class: RetentionClass) -> Keep {
        match class {
            RetentionClass::Filed => self.filed,
            RetentionClass::Major => self.major,
            RetentionClass::Minor => self.minor,
        }
    }

    /// When `d` may be gallrad: `None` while it is open, already gallrad, or kept for ever.
    pub fn due_at(&self, d: &Deviation) -> Option<DateTime<Utc>> {
        if d.shredded.is_some() {
            return None;
        }
        let closed = d.closed_at?;
        match self.keep(Self::class_of(d)) {
            Keep::Forever => None,
            Keep::Years(n) => closed.checked_add_months(Months::new(n.saturating_mul(12))),
        }
    }

    pub fn is_due(&self, d: &Deviation, now: DateTime<Utc>) -> bool {
        self.due_at(d).is_some_and(|t| t <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_reads_the_plans_words() {
        assert_eq!(Keep::parse("bevaras"), Some(Keep::Forever));
        assert_eq!(Keep::parse("2 år"), Some(Keep::Years(2)));
        assert_eq!(Keep::parse("10y"), Some(Keep::Years(10)));
        assert_eq!(Keep::parse("0"), None);
        assert_eq!(Keep::parse("snart"), None);
        assert_eq!(Keep::Years(2).label_sv(), "gallras 2 år efter avslut");
    }
}
