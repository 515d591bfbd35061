//! Domain value types, parsed once at the edge: a value of these types is always valid.

use std::fmt;

use chrono::{DateTime, Datelike, Utc};
use chrono_tz::Europe::Stockholm;
use serde::{Deserialize, Serialize};

/// `AVV-YYYY-NNNN`: gap-free per Stockholm calendar year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    pub year: i32,
    pub number: u64,
}

impl Reference {
    pub fn new(year: i32, number: u64) -> Self {
        Self { year, number }
    }

    /// Parses `AVV-2026-0042` (case-insensitive prefix, at least four digits).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        s.get(..4).filter(|p| p.eq_ignore_ascii_case("AVV-"))?;
        let (year, number) = s[4..].split_once('-')?;
        if year.len() != 4 || number.len() < 4 || !year.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if !number.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let number: u64 = number.parse().ok()?;
        if number == 0 {
            return None;
        }
        Some(Self {
            year: year.parse().ok()?,
            number,
        })
    }

    /// Name of the store counter that numbers this year's references.
    pub fn counter_name(year: i32) -> String {
        format!("AVV-{year}")
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AVV-{:04}-{:04}", self.year, self.number)
    }
}

impl Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Reference {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Reference::parse(&s)
            .ok_or_else(|| serde::de::Error::custom("not a reference AVV-YYYY-NNNN"))
    }
}

/// The calendar year (Stockholm time) an instant belongs to.
pub fn stockholm_year(at: DateTime<Utc>) -> i32 {
    at.with_timezone(&Stockholm).year()
}

/// The policy's two severities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// mindre avvikelse
    Minor,
    /// större avvikelse
    Major,
}

impl Severity {
    pub fn label_sv(self) -> &'static str {
        match self {
            Severity::Minor => "mindre",
            Severity::Major => "större",
        }
    }
}

/// Consequence level 1–4 (1 måttlig, 2 betydande, 3 allvarlig, 4 synnerligen allvarlig).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Level(u8);

impl Level {
    pub fn new(v: u8) -> Option<Self> {
        (1..=4).contains(&v).then_some(Level(v))
    }

    pub fn get(self) -> u8 {
        self.0
    }

    pub fn label_sv(self) -> &'static str {
        match self.0 {
            1 => "måttlig",
            2 => "betydande",
            3 => "allvarlig",
            _ => "synnerligen allvarlig",
        }
    }
}

impl<'de> Deserialize<'de> for Level {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u8::deserialize(d)?;
        Level::new(v).ok_or_else(|| serde::de::Error::custom("level must be 1..4"))
    }
}

/// Which aspects a deviation hurt, each with its consequence level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Aspects {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<u8>, minimum = 1, maximum = 4)]
    pub confidentiality: Option<Level>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<u8>, minimum = 1, maximum = 4)]
    pub integrity: Option<Level>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<u8>, minimum = 1, maximum = 4)]
    pub availability: Option<Level>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<u8>, minimum = 1, maximum = 4)]
    pub traceability: Option<Level>,
}

impl Aspects {
    pub fn is_empty(&self) -> bool {
        self.confidentiality.is_none()
            && self.integrity.is_none()
            && self.availability.is_none()
            && self.traceability.is_none()
    }
}

/// Is this a personal-data breach (GDPR art. 33)?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PersonalDataBreach {
    Yes,
    No,
    Investigating,
}

/// How a report came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Web,
    Email,
    Api,
}

/// A syntactically plausible e-mail address (local@domain, no spaces, one @).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let (local, domain) = s.split_once('@')?;
        let ok = !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && s.len() <= 254
            && !s
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "<>,;\"()[]\\".contains(c))
            && !domain.contains('@');
        ok.then(|| EmailAddress(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for EmailAddress {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        EmailAddress::parse(&s).ok_or_else(|| serde::de::Error::custom("not an e-mail address"))
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who reported (absent: anonymous).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Reporter {
    pub name: String,
    #[schema(value_type = String)]
    pub email: EmailAddress,
}

/// Which statutory filing (a phase of a GDPR or a NIS2 report).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FilingKind {
    /// GDPR art. 33 initial notification to IMY, 72 h from the controller's awareness.
    Gdpr,
    /// GDPR art. 33(4): further information given in phases, after the initial notification.
    GdprSupplement,
    /// GDPR: the final, complete notification.
    GdprFinal,
    /// NIS2 / cybersäkerhetslagen early warning, 24 h from awareness of significance.
    Nis2EarlyWarning,
    /// NIS2 incident notification, 72 h from awareness of significance.
    Nis2Notification,
    /// NIS2 intermediate report, when the CSIRT asks for one.
    Nis2Intermediate,
    /// NIS2 progress report: due instead of the final report while the incident is ongoing.
    Nis2Progress,
    /// NIS2 final report: one month after the notification, or after handling ended.
    Nis2FinalReport,
}

/// Which law's clock: GDPR art. 33 or NIS2 (cybersäkerhetslagen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Regime {
    Gdpr,
    Nis2,
}

impl Regime {
    pub fn label_sv(self) -> &'static str {
        match self {
            Regime::Gdpr => "personuppgiftsincident (GDPR)",
            Regime::Nis2 => "betydande incident (NIS2)",
        }
    }
}

impl FilingKind {
    pub const ALL: [FilingKind; 8] = [
        FilingKind::Gdpr,
        FilingKind::GdprSupplement,
        FilingKind::GdprFinal,
        FilingKind::Nis2EarlyWarning,
        FilingKind::Nis2Notification,
        FilingKind::Nis2Intermediate,
        FilingKind::Nis2Progress,
        FilingKind::Nis2FinalReport,
    ];

    /// The kinds the annual report counts settled on time or late, as before phases.
    pub const REPORTED: [FilingKind; 4] = [
        FilingKind::Gdpr,
        FilingKind::Nis2EarlyWarning,
        FilingKind::Nis2Notification,
        FilingKind::Nis2FinalReport,
    ];

    pub fn regime(self) -> Regime {
        match self {
            FilingKind::Gdpr | FilingKind::GdprSupplement | FilingKind::GdprFinal => Regime::Gdpr,
            _ => Regime::Nis2,
        }
    }

    /// May more than one of this kind be filed (further information in phases, reports the
    /// CSIRT asks for)?
    pub fn repeatable(self) -> bool {
        matches!(
            self,
            FilingKind::GdprSupplement | FilingKind::Nis2Intermediate
        )
    }

    /// The kind of a stored name (`as_str`).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The stored name, e.g. `nis2_progress`.
    pub fn as_str(self) -> &'static str {
        match self {
            FilingKind::Gdpr => "gdpr",
            FilingKind::GdprSupplement => "gdpr_supplement",
            FilingKind::GdprFinal => "gdpr_final",
            FilingKind::Nis2EarlyWarning => "nis2_early_warning",
            FilingKind::Nis2Notification => "nis2_notification",
            FilingKind::Nis2Intermediate => "nis2_intermediate",
            FilingKind::Nis2Progress => "nis2_progress",
            FilingKind::Nis2FinalReport => "nis2_final_report",
        }
    }

    pub fn label_sv(self) -> &'static str {
        match self {
            FilingKind::Gdpr => "Anmälan av personuppgiftsincident till IMY (72 h)",
            FilingKind::GdprSupplement => "Komplettering av anmälan till IMY",
            FilingKind::GdprFinal => "Slutlig anmälan till IMY",
            FilingKind::Nis2EarlyWarning => "NIS2 tidig varning (24 h)",
            FilingKind::Nis2Notification => "NIS2 incidentanmälan (72 h)",
            FilingKind::Nis2Intermediate => "NIS2 delrapport (på begäran)",
            FilingKind::Nis2Progress => "NIS2 lägesrapport (incidenten pågår)",
            FilingKind::Nis2FinalReport => "NIS2 slutrapport (en månad)",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_parses_and_prints() {
        let r = Reference::parse("AVV-2026-0042").unwrap();
        assert_eq!(r, Reference::new(2026, 42));
        assert_eq!(r.to_string(), "AVV-2026-0042");
        assert_eq!(Reference::new(2026, 12345).to_string(), "AVV-2026-12345");
        assert_eq!(Reference::parse("avv-2026-0042"), Some(r));
        for bad in [
            "",
            "AVV-26-0042",
            "AVV-2026-42",
            "AVV-2026-0000",
            "XYZ-2026-0042",
            "AVV-2026-00a2",
            "AVV-2026",
        ] {
            assert_eq!(Reference::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn year_is_stockholm_year() {
        let t = DateTime::parse_from_rfc3339("2026-12-31T23:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(stockholm_year(t), 2027);
    }

    #[test]
    fn filing_kind_names_match_serde() {
        for k in FilingKind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
    }

    #[test]
    fn email_and_level_validate() {
        assert!(EmailAddress::parse("anna.svensson@kommunen.se").is_some());
        for bad in ["", "a", "a@b", "a b@c.se", "<a@b.se>", "a@@b.se", "@b.se"] {
            assert!(EmailAddress::parse(bad).is_none(), "{bad}");
        }
        assert!(Level::new(0).is_none() && Level::new(5).is_none() && Level::new(4).is_some());
    }
}
