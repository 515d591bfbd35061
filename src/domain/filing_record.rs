//! What a filing to an authority says: the breach record (GDPR art. 33(3) and IMY's form),
//! the NIS2 record (cybersäkerhetslagen 2025:1506 and its ordinance), and the decision to
//! tell the people affected (art. 34). Each is saved whole as an event, so every version
//! stays in the log; the latest counts.
//!
//! Numbers, times, yes/no answers and the chosen categories stay in the clear (the annual
//! report counts them); every free text is sealed (`privacy::seal`) and gallras with the
//! deviation.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Categories of personal data affected (IMY's form): (code, Swedish label).
pub const DATA_CATEGORIES: &[(&str, &str)] = &[
    ("identity", "Identitetsuppgifter (namn, födelsedatum)"),
    ("personnummer", "Personnummer eller samordningsnummer"),
    ("contact", "Kontaktuppgifter (adress, e-post, telefon)"),
    ("financial", "Ekonomiska uppgifter (konto, kort, lön)"),
    ("credentials", "Inloggningsuppgifter eller lösenord"),
    ("location", "Platsuppgifter"),
    ("health", "Uppgifter om hälsa (känsliga)"),
    (
        "special_category",
        "Andra känsliga personuppgifter (art. 9: etniskt ursprung, politiska åsikter, religion, fackmedlemskap, genetik, biometri, sexualliv)",
    ),
    ("criminal", "Uppgifter om lagöverträdelser (art. 10)"),
    ("social", "Uppgifter om sociala förhållanden"),
    ("other", "Andra personuppgifter"),
];

/// Categories of people affected: (code, Swedish label).
pub const SUBJECT_CATEGORIES: &[(&str, &str)] = &[
    ("employees", "Anställda"),
    ("pupils", "Elever"),
    ("children", "Barn"),
    ("care_recipients", "Brukare, patienter eller klienter"),
    ("residents", "Kommuninvånare"),
    ("guardians", "Vårdnadshavare"),
    ("other", "Andra"),
];

/// Likely consequences for the people affected: (code, Swedish label).
pub const CONSEQUENCES: &[(&str, &str)] = &[
    (
        "loss_of_control",
        "Förlorad kontroll över de egna uppgifterna",
    ),
    ("identity_theft", "Identitetsstöld eller bedrägeri"),
    ("financial_loss", "Ekonomisk förlust"),
    ("discrimination", "Diskriminering"),
    ("reputation", "Skadat anseende"),
    ("secrecy", "Röjande av uppgifter som omfattas av sekretess"),
    ("physical", "Fysisk skada eller hot"),
    ("other", "Andra konsekvenser"),
];

/// The NIS2 incident's severity in the initial assessment: (code, Swedish label).
pub const NIS2_SEVERITIES: &[(&str, &str)] = &[
    ("low", "Låg"),
    ("moderate", "Måttlig"),
    ("high", "Hög"),
    ("critical", "Kritisk"),
];

/// How the people affected were told (art. 34): (code, Swedish label).
pub const NOTICE_CHANNELS: &[(&str, &str)] = &[
    ("letter", "Brev"),
    ("email", "E-post"),
    ("digital_mailbox", "Digital brevlåda"),
    ("sms", "Sms"),
    ("phone", "Telefon"),
    ("in_person", "Personligen"),
    ("public", "Offentligt meddelande"),
];

/// The Swedish label of a code in one of the lists above (the code itself if unknown).
pub fn label(list: &'static [(&'static str, &'static str)], code: &str) -> String {
    list.iter()
        .find(|(c, _)| *c == code)
        .map_or_else(|| code.to_string(), |(_, l)| (*l).to_string())
}

/// The breach record (personuppgiftsincident), in the order of IMY's form.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BreachRecord {
    /// Who the authority contacts about this breach (sealed).
    pub contact: String,
    /// What happened (sealed).
    pub summary: String,
    /// When the breach began, and ended if it has.
    pub occurred_from: Option<DateTime<Utc>>,
    pub occurred_to: Option<DateTime<Utc>>,
    /// Codes from `SUBJECT_CATEGORIES`.
    pub subject_categories: Vec<String>,
    /// About how many people are affected.
    pub subjects_approx: Option<u64>,
    /// About how many records (posts) are affected.
    pub records_approx: Option<u64>,
    /// Codes from `DATA_CATEGORIES`.
    pub data_categories: Vec<String>,
    /// Codes from `CONSEQUENCES`.
    pub consequences: Vec<String>,
    /// The likely consequences, described (sealed).
    pub consequences_text: String,
    /// Measures taken to deal with the breach and limit its effects (sealed).
    pub measures_taken: String,
    /// Measures proposed (sealed).
    pub measures_proposed: String,
    /// Does the breach affect people in other EU/EEA countries?
    pub cross_border: bool,
    /// Which countries, and how (sealed).
    pub cross_border_details: String,
    /// Was a processor (personuppgiftsbiträde) involved?
    pub processor_involved: bool,
    /// Which processor, and its part (sealed).
    pub processor: String,
    /// Why the notification comes after 72 hours, when it does (art. 33(1); sealed).
    pub delay_reason: String,
}

impl BreachRecord {
    /// Special categories (art. 9, 10) among the data affected?
    pub fn special_categories(&self) -> bool {
        self.data_categories
            .iter()
            .any(|c| matches!(c.as_str(), "health" | "special_category" | "criminal"))
    }

    pub fn personnummer(&self) -> bool {
        self.data_categories.iter().any(|c| c == "personnummer")
    }
}

/// The NIS2 record (betydande incident), in the order of the phases that ask for it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Nis2Record {
    /// Who the CSIRT contacts about this incident (sealed).
    pub contact: String,
    /// What happened (early warning; sealed).
    pub summary: String,
    /// Early warning: suspected to be caused by an unlawful or malicious act?
    pub suspected_malicious: Option<bool>,
    /// Early warning: may it have cross-border effects?
    pub cross_border: Option<bool>,
    /// Notification: severity in the initial assessment, a code from `NIS2_SEVERITIES`.
    pub severity: Option<String>,
    /// Notification: the initial assessment (sealed).
    pub initial_assessment: String,
    /// Notification: the impact on the services (sealed).
    pub impact: String,
    /// Notification: indicators of compromise, where available (sealed).
    pub indicators: String,
    /// About how many users of the services are affected.
    pub users_affected_approx: Option<u64>,
    /// Final report: the type of threat or root cause (sealed).
    pub threat_and_cause: String,
    /// Final report: mitigation measures applied and ongoing (sealed).
    pub mitigation: String,
    /// Final report: the cross-border effects, where there are any (sealed).
    pub cross_border_details: String,
    /// Were the recipients of the services informed?
    pub recipients_informed: bool,
    /// What they were told, and when (sealed).
    pub recipients_information: String,
}

/// The decision on telling the people affected (art. 34).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoticeDecision {
    /// Tell them: the breach is likely to result in a high risk to their rights (34(1)).
    Notify,
    /// Not required: no high risk is likely.
    NoHighRisk,
    /// 34(3)(a): the data were unintelligible to anyone not authorised (e.g. encrypted).
    Unintelligible,
    /// 34(3)(b): measures taken since ensure the high risk is no longer likely.
    RiskMitigated,
    /// 34(3)(c): telling each would take disproportionate effort; a public communication
    /// instead.
    PublicCommunication,
}

impl NoticeDecision {
    pub const ALL: [NoticeDecision; 5] = [
        NoticeDecision::Notify,
        NoticeDecision::NoHighRisk,
        NoticeDecision::Unintelligible,
        NoticeDecision::RiskMitigated,
        NoticeDecision::PublicCommunication,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NoticeDecision::Notify => "notify",
            NoticeDecision::NoHighRisk => "no_high_risk",
            NoticeDecision::Unintelligible => "unintelligible",
            NoticeDecision::RiskMitigated => "risk_mitigated",
            NoticeDecision::PublicCommunication => "public_communication",
        }
    }

    pub fn label_sv(self) -> &'static str {
        match self {
            NoticeDecision::Notify => "De berörda informeras (art. 34.1: sannolikt hög risk)",
            NoticeDecision::NoHighRisk => {
                "De berörda informeras inte: incidenten medför sannolikt inte hög risk"
            }
            NoticeDecision::Unintelligible => {
                "De berörda informeras inte: uppgifterna var oläsbara för obehöriga, t.ex. krypterade (art. 34.3 a)"
            }
            NoticeDecision::RiskMitigated => {
                "De berörda informeras inte: vidtagna åtgärder gör att den höga risken inte längre är sannolik (art. 34.3 b)"
            }
            NoticeDecision::PublicCommunication => {
                "Offentligt meddelande i stället: att informera var och en skulle kräva oproportionerlig ansträngning (art. 34.3 c)"
            }
        }
    }

    /// Does the decision mean that people are told (each, or by a public communication)?
    pub fn tells(self) -> bool {
        matches!(
            self,
            NoticeDecision::Notify | NoticeDecision::PublicCommunication
        )
    }
}

/// The plain-Swedish notice the decision to tell starts from (art. 34(2) asks for the
/// nature of the breach, a contact point, the likely consequences and the measures).
pub fn notice_template(controller: &str, contact: &str) -> String {
    let controller = if controller.trim().is_empty() {
        "Kommunen"
    } else {
        controller.trim()
    };
    let contact = if contact.trim().is_empty() {
        "kommunens dataskyddsombud"
    } else {
        contact.trim()
    };
    format!(
        "Information om en personuppgiftsincident\n\n\
         {controller} vill informera dig om att uppgifter om dig har berörts av en \
         personuppgiftsincident.\n\n\
         Vad har hänt: [beskriv kort vad som hänt och när].\n\n\
         Vilka uppgifter: [vilka slags uppgifter om dig som berördes].\n\n\
         Vad det kan innebära för dig: [de troliga följderna].\n\n\
         Vad vi har gjort: [de åtgärder som vidtagits för att hantera incidenten och \
         begränsa skadan].\n\n\
         Vad du kan göra: [råd, till exempel att byta lösenord eller vara uppmärksam på \
         bedrägeriförsök].\n\n\
         Har du frågor kan du kontakta {contact}. Du har också rätt att lämna klagomål till \
         Integritetsskyddsmyndigheten (IMY)."
    )
}

/// The decision on telling the people affected, with the notice's text (to tell) or the
/// reasoning (not to; both sealed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AffectedNoticeDecided {
    pub decision: NoticeDecision,
    pub text: String,
}

/// The notice went out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AffectedNotified {
    pub sent_at: DateTime<Utc>,
    /// A code from `NOTICE_CHANNELS`.
    pub channel: String,
    /// About how many people it went to.
    pub recipients_approx: Option<u64>,
    /// Anything else worth keeping (sealed).
    pub note: String,
}

/// A saved record as the deviation holds it: the latest version, by whom and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Saved<T> {
    pub record: T,
    /// How many times it has been saved (1 for the first version).
    pub version: u32,
    pub by: String,
    pub at: DateTime<Utc>,
}

/// Art. 34 as the deviation holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AffectedNotice {
    pub decision: NoticeDecision,
    /// The notice text, or why they are not told.
    pub text: String,
    pub decided_by: String,
    pub decided_at: DateTime<Utc>,
    /// Each time it went out, oldest first.
    pub sent: Vec<NoticeSent>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NoticeSent {
    pub sent_at: DateTime<Utc>,
    pub channel: String,
    pub recipients_approx: Option<u64>,
    pub note: String,
    pub recorded_by: String,
}

impl BreachRecord {
    /// Replaces every free text with `text` (gallring).
    pub fn scrub(&mut self, text: &str) {
        for f in [
            &mut self.contact,
            &mut self.summary,
            &mut self.consequences_text,
            &mut self.measures_taken,
            &mut self.measures_proposed,
            &mut self.cross_border_details,
            &mut self.processor,
            &mut self.delay_reason,
        ] {
            *f = text.to_string();
        }
    }
}

impl Nis2Record {
    /// Replaces every free text with `text` (gallring).
    pub fn scrub(&mut self, text: &str) {
        for f in [
            &mut self.contact,
            &mut self.summary,
            &mut self.initial_assessment,
            &mut self.impact,
            &mut self.indicators,
            &mut self.threat_and_cause,
            &mut self.mitigation,
            &mut self.cross_border_details,
            &mut self.recipients_information,
        ] {
            *f = text.to_string();
        }
    }
}

impl AffectedNotice {
    pub fn scrub(&mut self, text: &str) {
        self.text = text.to_string();
        for s in &mut self.sent {
            s.note = text.to_string();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_labelled() {
        for list in [
            DATA_CATEGORIES,
            SUBJECT_CATEGORIES,
            CONSEQUENCES,
            NIS2_SEVERITIES,
            NOTICE_CHANNELS,
        ] {
            let mut codes: Vec<_> = list.iter().map(|(c, _)| *c).collect();
            codes.sort_unstable();
            codes.dedup();
            assert_eq!(codes.len(), list.len());
            assert!(list.iter().all(|(_, l)| !l.is_empty()));
        }
        assert_eq!(
            label(DATA_CATEGORIES, "health"),
            "Uppgifter om hälsa (känsliga)"
        );
        assert_eq!(label(DATA_CATEGORIES, "nope"), "nope");
    }

    #[test]
    fn the_notice_template_names_the_controller_and_contact() {
        let t = notice_template("Exempels kommun", "dataskydd@exempel.se");
        assert!(t.contains("Exempels kommun vill informera dig"));
        assert!(t.contains("kontakta dataskydd@exempel.se"));
        assert!(notice_template(" ", "").contains("kommunens dataskyddsombud"));
    }

    #[test]
    fn special_categories_are_art_9_and_10() {
        let mut r = BreachRecord {
            data_categories: vec!["contact".into()],
            ..Default::default()
        };
        assert!(!r.special_categories());
        r.data_categories.push("health".into());
        assert!(r.special_categories());
        assert!(!r.personnummer());
    }
}
