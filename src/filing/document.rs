//! A filing as it is sent: one phase of a deviation's breach notification or NIS2 report,
//! laid out in the order of the authority's form. The same document is the preview page,
//! the PDF and the JSON download (`docs/filing.schema.json`); its SHA-256 is what the
//! filing event records as the content sent.
//!
//! The document depends only on the deviation's state, the organisation details and the
//! phase, never on the time it is made, so the same state gives the same bytes and hash.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain::filing_record::{
    label, BreachRecord, Nis2Record, NoticeDecision, CONSEQUENCES, DATA_CATEGORIES,
    NIS2_SEVERITIES, NOTICE_CHANNELS, SUBJECT_CATEGORIES,
};
use crate::domain::organisation::OrganisationDetails;
use crate::domain::{labels, Deviation, FilingKind, Reference, Regime};

/// The format tag every JSON document carries.
pub const FORMAT: &str = "avvik-filing/1";

#[derive(Debug, Clone, Serialize)]
pub struct FilingDocument {
    pub format: &'static str,
    pub kind: FilingKind,
    /// The phase, in Swedish, e.g. "Anmälan av personuppgiftsincident till IMY (72 h)".
    pub title: String,
    pub authority: String,
    pub deviation: DeviationRef,
    /// The deviation's state the document was made from: its version and last change.
    pub state_version: u32,
    pub as_of: DateTime<Utc>,
    pub controller: Controller,
    /// Who the authority contacts about this case.
    pub contact: String,
    pub times: Times,
    /// The phases already filed (or decided not to file), oldest first.
    pub earlier_filings: Vec<EarlierFiling>,
    /// GDPR phases: the breach record, as last saved (`null` before it is filled in).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breach: Option<BreachRecord>,
    /// GDPR phases: the decision on telling the people affected (art. 34).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub affected_notice: Option<Notice>,
    /// NIS2 phases: the NIS2 record, as last saved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nis2: Option<Nis2Record>,
    /// The whole document for people, in the form's order.
    pub sections: Vec<Section>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeviationRef {
    pub id: Uuid,
    pub reference: Reference,
}

#[derive(Debug, Clone, Serialize)]
pub struct Controller {
    pub name: String,
    pub org_number: String,
    pub dpo_contact: String,
    pub nis2_entity_type: String,
    pub nis2_sector: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Times {
    pub occurred_at: Option<DateTime<Utc>>,
    pub discovered_at: DateTime<Utc>,
    /// When the controller became aware (GDPR) or aware of the significance (NIS2); the
    /// discovery time when none is recorded.
    pub aware_at: DateTime<Utc>,
    /// When this phase is due, if it has a clock.
    pub due: Option<DateTime<Utc>>,
    pub incident_handling_ended_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EarlierFiling {
    pub kind: FilingKind,
    pub filed_at: Option<DateTime<Utc>>,
    pub authority: Option<String>,
    pub their_reference: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Notice {
    pub decision: NoticeDecision,
    pub text: String,
    pub sent: Vec<NoticeWent>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NoticeWent {
    pub sent_at: DateTime<Utc>,
    pub channel: String,
    pub recipients_approx: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Section {
    pub title: String,
    pub fields: Vec<DocField>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DocField {
    /// A stable name, e.g. `breach.summary`.
    pub key: String,
    pub label: String,
    /// The value as text for people ("" when nothing is given).
    pub value: String,
}

impl FilingDocument {
    /// The JSON download: pretty-printed, with a final newline.
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    /// SHA-256 (hex) of the JSON download: the content sent.
    pub fn sha256(&self) -> String {
        hex::encode(Sha256::digest(self.to_json()))
    }

    /// The PDF download, with the JSON's SHA-256 in every page's footer.
    pub fn to_pdf(&self) -> Vec<u8> {
        use super::pdf::Block;
        let mut blocks = vec![Block::Title(self.title.clone())];
        blocks.push(Block::Paragraph(format!(
            "Avvikelse {} till {}. Uppgifterna är sammanställda i den ordning myndighetens formulär frågar efter dem.",
            self.deviation.reference, self.authority
        )));
        for s in &self.sections {
            blocks.push(Block::Heading(s.title.clone()));
            for f in &s.fields {
                blocks.push(Block::Field {
                    label: f.label.clone(),
                    value: f.value.clone(),
                });
            }
        }
        let footer = format!(
            "{} · SHA-256 (JSON): {}",
            self.deviation.reference,
            self.sha256()
        );
        super::pdf::render(&self.title, &footer, &blocks)
    }
}

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| {
        t.with_timezone(&chrono_tz::Europe::Stockholm)
            .format("%Y-%m-%d %H:%M (svensk tid)")
            .to_string()
    })
    .unwrap_or_default()
}

fn yes_no(b: Option<bool>) -> String {
    match b {
        Some(true) => "Ja".into(),
        Some(false) => "Nej".into(),
        None => "Okänt".into(),
    }
}

fn count(n: Option<u64>) -> String {
    n.map(|n| format!("omkring {n}")).unwrap_or_default()
}

fn codes(list: &'static [(&'static str, &'static str)], codes: &[String]) -> String {
    codes
        .iter()
        .map(|c| label(list, c))
        .collect::<Vec<_>>()
        .join("; ")
}

struct Fields(Vec<DocField>);

impl Fields {
    fn add(&mut self, key: &str, label: &str, value: impl Into<String>) {
        self.0.push(DocField {
            key: key.into(),
            label: label.into(),
            value: value.into(),
        });
    }
}

fn section(title: &str, build: impl FnOnce(&mut Fields)) -> Section {
    let mut f = Fields(Vec::new());
    build(&mut f);
    Section {
        title: title.into(),
        fields: f.0,
    }
}

/// Builds the document of one phase.
pub fn build(d: &Deviation, org: &OrganisationDetails, kind: FilingKind) -> FilingDocument {
    let regime = kind.regime();
    let breach = d.breach_record.as_ref().map(|s| s.record.clone());
    let nis2 = d.nis2_record.as_ref().map(|s| s.record.clone());
    let given_contact = match regime {
        Regime::Gdpr => breach.as_ref().map(|b| b.contact.clone()),
        Regime::Nis2 => nis2.as_ref().map(|n| n.contact.clone()),
    };
    let contact = given_contact
        .filter(|c| !c.trim().is_empty())
        .unwrap_or_else(|| org.dpo_contact.clone());
    let start = d.clock_start(regime);
    let times = Times {
        occurred_at: d.occurred_at,
        discovered_at: d.discovered_at,
        aware_at: start.at(),
        due: d.deadlines.iter().find(|x| x.kind == kind).map(|x| x.due),
        incident_handling_ended_at: d.incident_handling_ended_at,
    };
    let earlier: Vec<EarlierFiling> = d
        .filings
        .iter()
        .filter(|f| f.kind.regime() == regime)
        .map(|f| EarlierFiling {
            kind: f.kind,
            filed_at: f.filed_at,
            authority: f.authority.clone(),
            their_reference: f.their_reference.clone(),
        })
        .collect();
    let notice = match regime {
        Regime::Gdpr => d.affected_notice.as_ref().map(|a| Notice {
            decision: a.decision,
            text: a.text.clone(),
            sent: a
                .sent
                .iter()
                .map(|s| NoticeWent {
                    sent_at: s.sent_at,
                    channel: s.channel.clone(),
                    recipients_approx: s.recipients_approx,
                })
                .collect(),
        }),
        Regime::Nis2 => None,
    };
    let earlier_text = earlier
        .iter()
        .map(|e| {
            let mut s = labels::filing_kind(e.kind).to_string();
            match e.filed_at {
                Some(t) => s.push_str(&format!(", anmäld {}", time(Some(t)))),
                None => s.push_str(", beslut att inte anmäla"),
            }
            if let Some(r) = e.their_reference.as_deref().filter(|r| !r.is_empty()) {
                s.push_str(&format!(", diarienummer {r}"));
            }
            s
        })
        .collect::<Vec<_>>()
        .join("\n");
    let title = labels::filing_kind(kind).to_string();
    let head = section(
        match regime {
            Regime::Gdpr => "Anmälan",
            Regime::Nis2 => "Rapport",
        },
        |f| {
            f.add("kind", "Typ av anmälan", title.clone());
            f.add(
                "deviation.reference",
                "Vårt ärende",
                d.reference.to_string(),
            );
            f.add(
                "earlier_filings",
                "Tidigare anmälningar i ärendet",
                earlier_text,
            );
        },
    );
    let mut sections = vec![head];
    match regime {
        Regime::Gdpr => gdpr_sections(&mut sections, d, org, &contact, &times, &breach, &notice),
        Regime::Nis2 => nis2_sections(&mut sections, d, org, &contact, &times, &nis2, kind),
    }
    FilingDocument {
        format: FORMAT,
        kind,
        title,
        authority: org.authority_for(regime).to_string(),
        deviation: DeviationRef {
            id: d.id,
            reference: d.reference,
        },
        state_version: d.version,
        as_of: d.updated_at,
        controller: Controller {
            name: org.controller_name.clone(),
            org_number: org.org_number.clone(),
            dpo_contact: org.dpo_contact.clone(),
            nis2_entity_type: org.nis2_entity_type.clone(),
            nis2_sector: org.nis2_sector.clone(),
        },
        contact,
        times,
        earlier_filings: earlier,
        breach: if regime == Regime::Gdpr { breach } else { None },
        affected_notice: notice,
        nis2: if regime == Regime::Nis2 { nis2 } else { None },
        sections,
    }
}

fn gdpr_sections(
    out: &mut Vec<Section>,
    d: &Deviation,
    org: &OrganisationDetails,
    contact: &str,
    times: &Times,
    breach: &Option<BreachRecord>,
    notice: &Option<Notice>,
) {
    let b = breach.clone().unwrap_or_default();
    // Yes/no answers read "" until the record is filled in.
    let answer = |v: Option<bool>| {
        if breach.is_some() {
            yes_no(v)
        } else {
            String::new()
        }
    };
    out.push(section("Personuppgiftsansvarig", |f| {
        f.add("controller.name", "Namn", org.controller_name.clone());
        f.add(
            "controller.org_number",
            "Organisationsnummer",
            org.org_number.clone(),
        );
        f.add(
            "controller.dpo_contact",
            "Dataskyddsombud",
            org.dpo_contact.clone(),
        );
        f.add("contact", "Kontaktperson för incidenten", contact);
    }));
    out.push(section("Vad har hänt", |f| {
        f.add(
            "breach.summary",
            "Beskrivning av incidenten",
            b.summary.clone(),
        );
    }));
    out.push(section("Tidpunkter", |f| {
        let occurred = match (b.occurred_from.or(d.occurred_at), b.occurred_to) {
            (Some(a), Some(z)) => format!("{} – {}", time(Some(a)), time(Some(z))),
            (Some(a), None) => time(Some(a)),
            _ => String::new(),
        };
        f.add("breach.occurred", "När inträffade incidenten", occurred);
        f.add(
            "times.discovered_at",
            "När upptäcktes incidenten",
            time(Some(times.discovered_at)),
        );
        f.add(
            "times.aware_at",
            "När fick den personuppgiftsansvarige kännedom",
            time(Some(times.aware_at)),
        );
        f.add(
            "times.due",
            "Anmälan ska göras senast (72 timmar)",
            time(times.due),
        );
        f.add(
            "breach.delay_reason",
            "Skäl till att anmälan görs senare än 72 timmar",
            b.delay_reason.clone(),
        );
    }));
    out.push(section("Berörda personer och personuppgifter", |f| {
        f.add(
            "breach.subject_categories",
            "Kategorier av registrerade",
            codes(SUBJECT_CATEGORIES, &b.subject_categories),
        );
        f.add(
            "breach.subjects_approx",
            "Ungefärligt antal berörda personer",
            count(b.subjects_approx),
        );
        f.add(
            "breach.data_categories",
            "Kategorier av personuppgifter",
            codes(DATA_CATEGORIES, &b.data_categories),
        );
        f.add(
            "breach.special_categories",
            "Känsliga personuppgifter (art. 9) eller lagöverträdelser (art. 10)",
            answer(Some(b.special_categories())),
        );
        f.add(
            "breach.personnummer",
            "Personnummer",
            answer(Some(b.personnummer())),
        );
        f.add(
            "breach.records_approx",
            "Ungefärligt antal berörda poster",
            count(b.records_approx),
        );
    }));
    out.push(section("Sannolika konsekvenser", |f| {
        f.add(
            "breach.consequences",
            "Konsekvenser för de registrerade",
            codes(CONSEQUENCES, &b.consequences),
        );
        f.add(
            "breach.consequences_text",
            "Beskrivning av konsekvenserna",
            b.consequences_text.clone(),
        );
    }));
    out.push(section("Åtgärder", |f| {
        f.add(
            "breach.measures_taken",
            "Vidtagna åtgärder",
            b.measures_taken.clone(),
        );
        f.add(
            "breach.measures_proposed",
            "Föreslagna åtgärder",
            b.measures_proposed.clone(),
        );
    }));
    out.push(section(
        "Information till de registrerade (art. 34)",
        |f| match notice {
            Some(n) => {
                f.add("affected_notice.decision", "Beslut", n.decision.label_sv());
                f.add(
                    "affected_notice.text",
                    if n.decision.tells() {
                        "Informationen till de berörda"
                    } else {
                        "Skäl"
                    },
                    n.text.clone(),
                );
                let sent = n
                    .sent
                    .iter()
                    .map(|s| {
                        format!(
                            "{} via {}{}",
                            time(Some(s.sent_at)),
                            label(NOTICE_CHANNELS, &s.channel).to_lowercase(),
                            s.recipients_approx
                                .map(|c| format!(", till omkring {c} personer"))
                                .unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                f.add("affected_notice.sent", "Informerade", sent);
            }
            None => f.add("affected_notice.decision", "Beslut", "Inte fattat ännu"),
        },
    ));
    out.push(section(
        "Gränsöverskridande och personuppgiftsbiträde",
        |f| {
            f.add(
                "breach.cross_border",
                "Berörs personer i andra EU/EES-länder",
                answer(Some(b.cross_border)),
            );
            f.add(
                "breach.cross_border_details",
                "Vilka länder och hur",
                b.cross_border_details.clone(),
            );
            f.add(
                "breach.processor_involved",
                "Är ett personuppgiftsbiträde inblandat",
                answer(Some(b.processor_involved)),
            );
            f.add(
                "breach.processor",
                "Personuppgiftsbiträde och dess roll",
                b.processor.clone(),
            );
        },
    ));
}

fn nis2_sections(
    out: &mut Vec<Section>,
    d: &Deviation,
    org: &OrganisationDetails,
    contact: &str,
    times: &Times,
    nis2: &Option<Nis2Record>,
    kind: FilingKind,
) {
    let n = nis2.clone().unwrap_or_default();
    let answer = |v: Option<bool>| {
        if nis2.is_some() {
            yes_no(v)
        } else {
            String::new()
        }
    };
    out.push(section("Verksamhetsutövare", |f| {
        f.add("controller.name", "Namn", org.controller_name.clone());
        f.add(
            "controller.org_number",
            "Organisationsnummer",
            org.org_number.clone(),
        );
        f.add(
            "controller.nis2_entity_type",
            "Typ av verksamhetsutövare",
            org.nis2_entity_type.clone(),
        );
        f.add("controller.nis2_sector", "Sektor", org.nis2_sector.clone());
        f.add("contact", "Kontaktperson för incidenten", contact);
    }));
    out.push(section("Tidpunkter", |f| {
        f.add(
            "times.occurred_at",
            "När inträffade incidenten",
            time(d.occurred_at),
        );
        f.add(
            "times.discovered_at",
            "När upptäcktes incidenten",
            time(Some(times.discovered_at)),
        );
        f.add(
            "times.aware_at",
            "När fick verksamhetsutövaren kännedom om den betydande incidenten",
            time(Some(times.aware_at)),
        );
        f.add("times.due", "Rapporten ska lämnas senast", time(times.due));
        f.add(
            "times.incident_handling_ended_at",
            "Incidenthanteringen avslutades",
            time(times.incident_handling_ended_at),
        );
    }));
    out.push(section("Tidig varning", |f| {
        f.add(
            "nis2.summary",
            "Beskrivning av incidenten",
            n.summary.clone(),
        );
        f.add(
            "nis2.suspected_malicious",
            "Misstänks incidenten vara orsakad av en olaglig eller avsiktlig handling",
            answer(n.suspected_malicious),
        );
        f.add(
            "nis2.cross_border",
            "Kan incidenten få gränsöverskridande konsekvenser",
            answer(n.cross_border),
        );
    }));
    if kind == FilingKind::Nis2EarlyWarning {
        return;
    }
    out.push(section("Incidentanmälan", |f| {
        f.add(
            "nis2.initial_assessment",
            "Första bedömning av incidenten",
            n.initial_assessment.clone(),
        );
        f.add(
            "nis2.severity",
            "Allvarlighetsgrad",
            n.severity
                .as_deref()
                .map(|s| label(NIS2_SEVERITIES, s))
                .unwrap_or_default(),
        );
        f.add("nis2.impact", "Påverkan", n.impact.clone());
        f.add(
            "nis2.indicators",
            "Komprometteringsindikatorer",
            n.indicators.clone(),
        );
        f.add(
            "nis2.users_affected_approx",
            "Ungefärligt antal berörda användare",
            count(n.users_affected_approx),
        );
    }));
    if kind != FilingKind::Nis2Notification {
        out.push(section(
            match kind {
                FilingKind::Nis2Progress => "Lägesrapport",
                FilingKind::Nis2Intermediate => "Delrapport",
                _ => "Slutrapport",
            },
            |f| {
                f.add(
                    "nis2.threat_and_cause",
                    "Typ av hot eller grundorsak",
                    n.threat_and_cause.clone(),
                );
                f.add(
                    "nis2.mitigation",
                    "Vidtagna och pågående åtgärder",
                    n.mitigation.clone(),
                );
                f.add(
                    "nis2.cross_border_details",
                    "Gränsöverskridande konsekvenser",
                    n.cross_border_details.clone(),
                );
            },
        ));
    }
    out.push(section("Information till tjänstemottagarna", |f| {
        f.add(
            "nis2.recipients_informed",
            "Har mottagarna av tjänsterna informerats",
            answer(Some(n.recipients_informed)),
        );
        f.add(
            "nis2.recipients_information",
            "Vad de fick veta, och när",
            n.recipients_information.clone(),
        );
    }));
}
