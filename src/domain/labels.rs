//! The Swedish words for the domain's values, in one place: the staff pages, the e-mails
//! and the annual report all take their labels from here, so a value never reads one way
//! on a page and another in a report.

use super::deviation::Status;
use super::types::{Aspects, Channel, FilingKind, Level, PersonalDataBreach, Severity};

/// What an empty list of something (aspects) reads as.
pub const NONE_GIVEN: &str = "inga angivna";

/// What a value nobody has set yet reads as in a fact list.
pub const NOT_SET: &str = "–";

/// A severity in the middle of a sentence: `mindre`, `större`.
pub fn severity(s: Severity) -> &'static str {
    s.label_sv()
}

/// A severity that may not be set yet: `ej klassad` when not classified.
pub fn severity_or_unclassified(s: Option<Severity>) -> &'static str {
    s.map(Severity::label_sv).unwrap_or("ej klassad")
}

/// A consequence level's name: `måttlig` … `synnerligen allvarlig`.
pub fn level(l: Level) -> &'static str {
    l.label_sv()
}

/// The four levels with their numbers, for choosing one.
pub const LEVELS: [(u8, &str); 4] = [
    (1, "måttlig"),
    (2, "betydande"),
    (3, "allvarlig"),
    (4, "synnerligen allvarlig"),
];

/// The four aspects: key as in the API, name capitalised as a heading, name in a sentence.
pub const ASPECTS: [(&str, &str, &str); 4] = [
    ("confidentiality", "Konfidentialitet", "konfidentialitet"),
    ("integrity", "Riktighet", "riktighet"),
    ("availability", "Tillgänglighet", "tillgänglighet"),
    ("traceability", "Spårbarhet", "spårbarhet"),
];

/// The aspects' levels in the order of [`ASPECTS`].
pub fn aspect_levels(a: &Aspects) -> [Option<Level>; 4] {
    [
        a.confidentiality,
        a.integrity,
        a.availability,
        a.traceability,
    ]
}

/// `Konfidentialitet 3 (allvarlig), Riktighet 2 (betydande)`, or [`NONE_GIVEN`].
pub fn aspects(a: &Aspects) -> String {
    let parts: Vec<String> = ASPECTS
        .iter()
        .zip(aspect_levels(a))
        .filter_map(|((_, name, _), l)| l.map(|l| format!("{name} {} ({})", l.get(), level(l))))
        .collect();
    if parts.is_empty() {
        NONE_GIVEN.into()
    } else {
        parts.join(", ")
    }
}

/// Whether it is a personal-data breach: `ja`, `nej`, `under utredning`.
pub fn personal_data_breach(p: PersonalDataBreach) -> &'static str {
    match p {
        PersonalDataBreach::Yes => "ja",
        PersonalDataBreach::No => "nej",
        PersonalDataBreach::Investigating => "under utredning",
    }
}

/// The choices of the classification form: value as in the API, label as a choice.
pub const PERSONAL_DATA_BREACH_CHOICES: [(&str, &str); 3] = [
    ("no", "Nej"),
    ("investigating", "Under utredning"),
    ("yes", "Ja"),
];

/// Where a deviation is: `mottagen`, `under utredning`, `avslutad`.
pub fn status(s: Status) -> &'static str {
    s.label_sv()
}

/// A statutory filing's name as a heading.
pub fn filing_kind(k: FilingKind) -> &'static str {
    k.label_sv()
}

/// A filing's name in the middle of a sentence (first letter in lower case).
pub fn filing_kind_in_sentence(k: FilingKind) -> String {
    let label = filing_kind(k);
    let mut chars = label.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// How a report came in, in a sentence: `webbformulär`, `e-post`, `API`.
pub fn channel(c: Channel) -> &'static str {
    match c {
        Channel::Web => "webbformulär",
        Channel::Email => "e-post",
        Channel::Api => "API",
    }
}

/// How a report came in, as a heading: `Webbformulär`, `E-post`, `API`.
pub fn channel_heading(c: Channel) -> String {
    let label = channel(c);
    let mut chars = label.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `ja` or `nej`.
pub fn yes_no(b: bool) -> &'static str {
    if b {
        "ja"
    } else {
        "nej"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_aspects_read_none_given_and_levels_read_their_names() {
        assert_eq!(aspects(&Aspects::default()), "inga angivna");
        let a = Aspects {
            confidentiality: Level::new(3),
            traceability: Level::new(1),
            ..Aspects::default()
        };
        assert_eq!(
            aspects(&a),
            "Konfidentialitet 3 (allvarlig), Spårbarhet 1 (måttlig)"
        );
        for (n, name) in LEVELS {
            assert_eq!(level(Level::new(n).unwrap()), name);
        }
    }

    #[test]
    fn breach_under_investigation_reads_the_same_everywhere() {
        assert_eq!(
            personal_data_breach(PersonalDataBreach::Investigating),
            "under utredning"
        );
        assert_eq!(channel_heading(Channel::Email), "E-post");
        assert_eq!(channel_heading(Channel::Api), "API");
        assert_eq!(
            filing_kind_in_sentence(FilingKind::Gdpr),
            "anmälan av personuppgiftsincident till IMY (72 h)"
        );
    }
}
