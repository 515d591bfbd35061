//! The commands staff send about a deviation, one type each (`Deserialize + ToSchema`):
//! the JSON API reads them from the body, the staff forms build them from their inputs,
//! and both turn them into a domain `Command` with the same `parse`, every bad field
//! reported. The OpenAPI document's request bodies are these very types.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::body::{Field, Problems, Unknown};
use super::error::ApiError;
use crate::auth::Principal;
use crate::config::ReportConfig;
use crate::domain::deviation::{
    AwarenessRecorded, CommentAdded, FilingDeclined, FilingRecorded, HandlersAssigned,
    IncidentHandlingEnded, LinkKind, LinkedToIncident, MeasureAdded, SupplierRecorded,
};
use crate::domain::organisation::OrganisationDetails;
use crate::domain::{
    Aspects, Classification, Command, EmailAddress, FilingKind, PersonalDataBreach, Reference,
    Regime, Severity,
};

pub const TEXT_MAX: usize = 20_000;
pub const SHORT_MAX: usize = 200;

/// A (re)classification.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ClassificationBody {
    #[serde(default)]
    #[schema(value_type = Severity, required = true)]
    pub severity: Field<Severity>,
    #[serde(default)]
    /// Consequence levels 1 (måttlig) … 4 (synnerligen allvarlig) per affected aspect.
    #[schema(value_type = Option<Aspects>)]
    pub aspects: Field<Aspects>,
    #[serde(default)]
    /// One of the configured categories.
    #[schema(value_type = String, required = true, max_length = 200, example = "Behörighet")]
    pub category: Field<String>,
    #[serde(default)]
    #[schema(value_type = PersonalDataBreach, required = true)]
    pub personal_data_breach: Field<PersonalDataBreach>,
    #[serde(default)]
    #[schema(value_type = bool, required = true)]
    pub nis2_significant: Field<bool>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 20000)]
    pub rationale: Field<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

impl ClassificationBody {
    /// The classification; by a CISO or DPO it also sets the awareness time (`now`) the
    /// first time it marks a breach or a significant incident.
    pub fn parse(
        &self,
        who: &Principal,
        cfg: &ReportConfig,
        now: DateTime<Utc>,
    ) -> Result<Command, ApiError> {
        let mut f = Problems::default();
        let severity = f.parsed(
            "severity",
            &self.severity,
            true,
            (
                "\"minor\" or \"major\"",
                "Välj mindre eller större avvikelse.",
            ),
        );
        let aspects = f.parsed(
            "aspects",
            &self.aspects,
            false,
            (
                "an object {confidentiality, integrity, availability, traceability} with levels 1..4",
                "Ange en konsekvensnivå 1–4.",
            ),
        );
        let category = f.text("category", &self.category, true, SHORT_MAX);
        if let Some(c) = &category {
            if !cfg.categories.is_empty() && !cfg.categories.iter().any(|x| x == c) {
                f.error(
                    "category",
                    &format!("must be one of: {}", cfg.categories.join(", ")),
                    "Välj en kategori i listan.",
                );
            }
        }
        let pdb = f.parsed(
            "personal_data_breach",
            &self.personal_data_breach,
            true,
            (
                "\"yes\", \"no\" or \"investigating\"",
                "Ange om det är en personuppgiftsincident: ja, nej eller under utredning.",
            ),
        );
        let nis2 = f.boolean("nis2_significant", &self.nis2_significant, true);
        let rationale = f
            .text("rationale", &self.rationale, false, TEXT_MAX)
            .unwrap_or_default();
        f.finish(&self.unknown)?;
        let (Some(severity), Some(category), Some(pdb), Some(nis2)) =
            (severity, category, pdb, nis2)
        else {
            return Err(ApiError::BadRequest("incomplete classification".into()));
        };
        let classification = Classification {
            severity,
            aspects: aspects.unwrap_or_default(),
            category,
            personal_data_breach: pdb,
            nis2_significant: nis2,
            rationale,
            role: who.acting_role().as_str().to_string(),
        };
        Ok(if crate::auth::marks_awareness(who) {
            Command::ClassifyAsController {
                classification,
                now,
            }
        } else {
            Command::Classify(classification)
        })
    }
}

/// A decision, recorded with the role it was taken in.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct DecisionBody {
    #[serde(default)]
    #[schema(value_type = String, required = true, max_length = 20000, example = "Ingen anmälan till IMY.")]
    pub text: Field<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

impl DecisionBody {
    pub fn parse(&self, who: &Principal) -> Result<Command, ApiError> {
        let mut f = Problems::default();
        let text = f.text("text", &self.text, true, TEXT_MAX);
        f.finish(&self.unknown)?;
        Ok(Command::RecordDecision {
            text: text.unwrap_or_default(),
            role: who.acting_role().as_str().to_string(),
        })
    }
}

/// A new measure.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct MeasureBody {
    #[serde(default)]
    #[schema(value_type = String, required = true, max_length = 20000, example = "Byt lösenord på kontot.")]
    pub description: Field<String>,
    #[serde(default)]
    #[schema(value_type = String, required = true, max_length = 200, example = "IT-enheten")]
    pub owner: Field<String>,
    #[serde(default)]
    /// YYYY-MM-DD
    #[schema(value_type = String, required = true, format = Date, example = "2026-04-30")]
    pub due: Field<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

impl MeasureBody {
    /// The command and the new measure's id (chosen here so the caller can answer with it).
    pub fn parse(&self) -> Result<(Uuid, Command), ApiError> {
        let mut f = Problems::default();
        let description = f.text("description", &self.description, true, TEXT_MAX);
        let owner = f.text("owner", &self.owner, true, SHORT_MAX);
        let due = f.date("due", &self.due, true);
        f.finish(&self.unknown)?;
        let (Some(description), Some(owner), Some(due)) = (description, owner, due) else {
            return Err(ApiError::BadRequest("incomplete measure".into()));
        };
        let measure_id = Uuid::now_v7();
        Ok((
            measure_id,
            Command::AddMeasure(MeasureAdded {
                measure_id,
                description,
                owner,
                due,
            }),
        ))
    }
}

/// A measure is done, with an optional note.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CompleteMeasureBody {
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 20000)]
    pub note: Field<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

impl CompleteMeasureBody {
    pub fn parse(&self, measure_id: Uuid) -> Result<Command, ApiError> {
        let mut f = Problems::default();
        let note = f
            .text("note", &self.note, false, TEXT_MAX)
            .unwrap_or_default();
        f.finish(&self.unknown)?;
        Ok(Command::CompleteMeasure { measure_id, note })
    }
}

/// A comment: internal, or (with `to_reporter`) sent to the reporter.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CommentBody {
    #[serde(default)]
    #[schema(value_type = String, required = true, max_length = 20000, example = "Kontot är spärrat.")]
    pub text: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    pub to_reporter: Field<bool>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

impl CommentBody {
    pub fn parse(&self) -> Result<Command, ApiError> {
        let mut f = Problems::default();
        let text = f.text("text", &self.text, true, TEXT_MAX);
        let to_reporter = f
            .boolean("to_reporter", &self.to_reporter, false)
            .unwrap_or(false);
        f.finish(&self.unknown)?;
        Ok(Command::Comment(CommentAdded {
            text: text.unwrap_or_default(),
            to_reporter,
            from_reporter: false,
            unverified_email: false,
        }))
    }
}

/// Closing, with what came of it.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CloseBody {
    #[serde(default)]
    #[schema(value_type = String, required = true, max_length = 20000, example = "Åtgärdat.")]
    pub resolution: Field<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

impl CloseBody {
    pub fn parse(&self) -> Result<Command, ApiError> {
        let mut f = Problems::default();
        let resolution = f.text("resolution", &self.resolution, true, TEXT_MAX);
        f.finish(&self.unknown)?;
        Ok(Command::Close {
            resolution: resolution.unwrap_or_default(),
        })
    }
}

/// Reopening, with why.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ReopenBody {
    #[serde(default)]
    #[schema(value_type = String, required = true, max_length = 20000, example = "Nya uppgifter.")]
    pub reason: Field<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

impl ReopenBody {
    pub fn parse(&self) -> Result<Command, ApiError> {
        let mut f = Problems::default();
        let reason = f.text("reason", &self.reason, true, TEXT_MAX);
        f.finish(&self.unknown)?;
        Ok(Command::Reopen {
            reason: reason.unwrap_or_default(),
        })
    }
}

/// Either a filing (`authority`, `filed_at`, optional `their_reference`) or a reasoned
/// decision not to file (`not_filed_rationale`).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct FilingBody {
    #[serde(default)]
    #[schema(value_type = FilingKind, required = true)]
    pub kind: Field<FilingKind>,
    #[serde(default)]
    /// Absent: the organisation's authority for the kind (IMY, CERT-SE at MCF).
    #[schema(value_type = Option<String>, max_length = 200, example = "IMY")]
    pub authority: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub filed_at: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 200)]
    pub their_reference: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 20000)]
    pub not_filed_rationale: Field<String>,
    /// SHA-256 (64 hex digits) of the content sent.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^[0-9a-fA-F]{64}$")]
    pub content_sha256: Field<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

impl FilingBody {
    /// A filing, or (with `not_filed_rationale`) a reasoned decision not to file. Without
    /// an `authority` the filing goes to the organisation's authority for its kind.
    pub fn parse(
        &self,
        now: DateTime<Utc>,
        org: &OrganisationDetails,
    ) -> Result<Command, ApiError> {
        let mut f = Problems::default();
        let kind = f.parsed(
            "kind",
            &self.kind,
            true,
            (FILING_KINDS_EN, "Välj vilken anmälan det gäller."),
        );
        let rationale = f.text(
            "not_filed_rationale",
            &self.not_filed_rationale,
            false,
            TEXT_MAX,
        );
        let cmd = if let Some(rationale) = rationale {
            // A decision not to file takes no filing fields.
            let mut unknown = self.unknown.clone();
            for (name, present) in [
                ("authority", !matches!(self.authority, Field::Absent)),
                ("filed_at", !matches!(self.filed_at, Field::Absent)),
                (
                    "their_reference",
                    !matches!(self.their_reference, Field::Absent),
                ),
                (
                    "content_sha256",
                    !matches!(self.content_sha256, Field::Absent),
                ),
            ] {
                if present {
                    unknown.insert(name.to_string(), serde_json::Value::Null);
                }
            }
            f.finish(&unknown)?;
            kind.map(|kind| Command::DeclineFiling(FilingDeclined { kind, rationale }))
        } else {
            let authority = f
                .text("authority", &self.authority, false, SHORT_MAX)
                .or_else(|| {
                    kind.map(|k| org.authority_for(k.regime()).to_string())
                        .filter(|a| !a.is_empty())
                });
            if authority.is_none() && kind.is_some() && !matches!(self.authority, Field::Wrong) {
                f.error(
                    "authority",
                    "required: no authority is set for this kind",
                    "Ange myndighet.",
                );
            }
            let filed_at = f.datetime("filed_at", &self.filed_at, true);
            let their_reference =
                f.text("their_reference", &self.their_reference, false, SHORT_MAX);
            let content_sha256 = f
                .text("content_sha256", &self.content_sha256, false, 64)
                .and_then(|h| {
                    if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) {
                        Some(h.to_ascii_lowercase())
                    } else {
                        f.error(
                            "content_sha256",
                            "must be 64 hexadecimal digits (SHA-256)",
                            "Ange kontrollsumman som 64 hexadecimala tecken (SHA-256).",
                        );
                        None
                    }
                });
            if let Some(t) = filed_at {
                if t > now + chrono::Duration::minutes(5) {
                    f.error(
                        "filed_at",
                        "must not be in the future",
                        "Tidpunkten får inte ligga i framtiden.",
                    );
                }
            }
            let mut unknown = self.unknown.clone();
            if !matches!(self.not_filed_rationale, Field::Absent) {
                // Sent, but empty: not a decision not to file, and not a filing field.
                unknown.insert("not_filed_rationale".into(), serde_json::Value::Null);
            }
            f.finish(&unknown)?;
            match (kind, authority, filed_at) {
                (Some(kind), Some(authority), Some(filed_at)) => {
                    Some(Command::RecordFiling(FilingRecorded {
                        kind,
                        authority,
                        filed_at,
                        their_reference,
                        content_sha256,
                    }))
                }
                _ => None,
            }
        };
        cmd.ok_or_else(|| ApiError::BadRequest("incomplete filing".into()))
    }
}

const FILING_KINDS_EN: &str = "one of \"gdpr\", \"gdpr_supplement\", \"gdpr_final\", \"nis2_early_warning\", \"nis2_notification\", \"nis2_intermediate\", \"nis2_progress\", \"nis2_final_report\"";

/// Sets or changes when the controller became aware (GDPR) or aware of the incident's
/// significance (NIS2), with why.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct AwarenessBody {
    #[serde(default)]
    #[schema(value_type = Regime, required = true)]
    pub regime: Field<Regime>,
    #[serde(default)]
    #[schema(value_type = String, format = DateTime, required = true)]
    pub aware_at: Field<String>,
    #[serde(default)]
    #[schema(value_type = String, required = true, max_length = 20000, example = "Systemägaren bekräftade först i dag att personuppgifter berördes.")]
    pub reason: Field<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

impl AwarenessBody {
    pub fn parse(&self, now: DateTime<Utc>) -> Result<Command, ApiError> {
        let mut f = Problems::default();
        let regime = f.parsed(
            "regime",
            &self.regime,
            true,
            ("\"gdpr\" or \"nis2\"", "Välj GDPR eller NIS2."),
        );
        let aware_at = not_in_future(&mut f, "aware_at", &self.aware_at, now, true);
        let reason = f.text("reason", &self.reason, true, TEXT_MAX);
        f.finish(&self.unknown)?;
        match (regime, aware_at, reason) {
            (Some(regime), Some(aware_at), Some(reason)) => {
                Ok(Command::RecordAwareness(AwarenessRecorded {
                    regime,
                    aware_at,
                    reason: Some(reason),
                }))
            }
            _ => Err(ApiError::BadRequest("incomplete awareness".into())),
        }
    }
}

/// The owner (handläggare) and deputy (ersättare): staff e-mail addresses, each of
/// someone who may see the deviation. Both are given each time; a missing one is cleared.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct HandlersBody {
    #[serde(default)]
    #[schema(value_type = Option<String>, format = "email", example = "kontakt.soc@kommunen.example")]
    pub owner: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, format = "email")]
    pub deputy: Field<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

impl HandlersBody {
    /// `handler(address)`: the account's own address, when it is an active account that
    /// may see this deviation.
    pub fn parse(
        &self,
        handler: impl Fn(&EmailAddress) -> Option<String>,
    ) -> Result<Command, ApiError> {
        let mut f = Problems::default();
        let one = |f: &mut Problems, field: &str, v: &Field<String>| {
            let s = f.text(field, v, false, SHORT_MAX)?;
            match EmailAddress::parse(&s) {
                None => {
                    f.error(field, "must be an e-mail address", "Ange en e-postadress.");
                    None
                }
                Some(e) => {
                    let found = handler(&e);
                    if found.is_none() {
                        f.error(
                            field,
                            "no active account with this address may see the deviation",
                            "Ingen aktiv användare med den adressen har tillgång till avvikelsen.",
                        );
                    }
                    found
                }
            }
        };
        let owner = one(&mut f, "owner", &self.owner);
        let deputy = one(&mut f, "deputy", &self.deputy);
        if owner.is_some() && owner == deputy {
            f.error(
                "deputy",
                "must not be the owner",
                "Ersättaren kan inte vara samma person som handläggaren.",
            );
        }
        f.finish(&self.unknown)?;
        Ok(Command::AssignHandlers(HandlersAssigned { owner, deputy }))
    }
}

/// Links the deviation to an incident (another deviation, which then holds the
/// classification, escalation and filings), or with `incident` null, unlinks it.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct IncidentLinkBody {
    /// The incident's reference, AVV-YYYY-NNNN; null unlinks.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "AVV-2026-0001")]
    pub incident: Field<String>,
    /// `report` (another report of the same incident, the default) or `duplicate`.
    #[serde(default)]
    #[schema(value_type = Option<LinkKind>)]
    pub relation: Field<LinkKind>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

impl IncidentLinkBody {
    /// `resolve(reference)`: the incident's id, or why it cannot be one (English,
    /// Swedish).
    pub fn parse(
        &self,
        resolve: impl Fn(Reference) -> Result<Uuid, (&'static str, &'static str)>,
    ) -> Result<Command, ApiError> {
        let mut f = Problems::default();
        let relation = f
            .parsed(
                "relation",
                &self.relation,
                false,
                (
                    "\"report\" or \"duplicate\"",
                    "Välj rapport om samma incident eller dubblett.",
                ),
            )
            .unwrap_or(LinkKind::Report);
        let incident = f.text("incident", &self.incident, false, SHORT_MAX);
        let target = incident.and_then(|s| match Reference::parse(&s.to_ascii_uppercase()) {
            None => {
                f.error(
                    "incident",
                    "must be a reference AVV-YYYY-NNNN",
                    "Ange incidentens referens, till exempel AVV-2026-0001.",
                );
                None
            }
            Some(r) => match resolve(r) {
                Ok(id) => Some((id, r)),
                Err((en, sv)) => {
                    f.error("incident", en, sv);
                    None
                }
            },
        });
        let unlink = matches!(self.incident, Field::Absent);
        f.finish(&self.unknown)?;
        match target {
            Some((incident, incident_reference)) => Ok(Command::LinkToIncident(LinkedToIncident {
                incident,
                incident_reference,
                relation,
            })),
            None if unlink => Ok(Command::Unlink),
            None => Err(ApiError::BadRequest("incomplete link".into())),
        }
    }
}

/// The supplier involved, and whether the report came from it.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct SupplierBody {
    /// The supplier's name (an organisation); absent clears it.
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 200, example = "Skolplattformen AB")]
    pub supplier: Field<String>,
    /// The report came from the supplier (counted under the "leverantör" channel).
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    pub reported_by_supplier: Field<bool>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

impl SupplierBody {
    pub fn parse(&self) -> Result<Command, ApiError> {
        let mut f = Problems::default();
        let supplier = f.text("supplier", &self.supplier, false, SHORT_MAX);
        let by = f
            .boolean("reported_by_supplier", &self.reported_by_supplier, false)
            .unwrap_or(false);
        if by && supplier.is_none() {
            f.error(
                "supplier",
                "required when the report came from the supplier",
                "Ange vilken leverantör rapporten kom från.",
            );
        }
        f.finish(&self.unknown)?;
        Ok(Command::RecordSupplier(SupplierRecorded {
            supplier,
            reported_by_supplier: by,
        }))
    }
}

/// The NIS2 incident's handling ended (it is no longer ongoing).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct HandlingEndedBody {
    #[serde(default)]
    #[schema(value_type = String, format = DateTime, required = true)]
    pub ended_at: Field<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Unknown,
}

impl HandlingEndedBody {
    pub fn parse(&self, now: DateTime<Utc>) -> Result<Command, ApiError> {
        let mut f = Problems::default();
        let ended_at = not_in_future(&mut f, "ended_at", &self.ended_at, now, true);
        f.finish(&self.unknown)?;
        ended_at
            .map(|ended_at| Command::EndIncidentHandling(IncidentHandlingEnded { ended_at }))
            .ok_or_else(|| ApiError::BadRequest("incomplete handling end".into()))
    }
}

/// A time that is not more than five minutes ahead of `now` (`required`: absent is a
/// problem too).
pub(super) fn not_in_future(
    f: &mut Problems,
    field: &str,
    value: &Field<String>,
    now: DateTime<Utc>,
    required: bool,
) -> Option<DateTime<Utc>> {
    let t = f.datetime(field, value, required)?;
    if t > now + chrono::Duration::minutes(5) {
        f.error(
            field,
            "must not be in the future",
            "Tidpunkten får inte ligga i framtiden.",
        );
        return None;
    }
    Some(t)
}

/// Which parsers accepted a body given to `fuzz_api_body`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FuzzOutcome {
    /// The body is JSON (otherwise every endpoint answers 400 before any parser runs).
    pub json: bool,
    /// The parsers that accepted it: `report`, `classification`, `decision`, `measure`,
    /// `complete_measure`, `comment`, `close`, `reopen`, `filing`, `awareness`,
    /// `handling_ended`, `breach_record`, `nis2_record`, `affected_notice`,
    /// `affected_notified`.
    pub accepted: Vec<&'static str>,
}

/// The entry point of the fuzz target `api_bodies` (`fuzz/fuzz_targets/api_bodies.rs`) and
/// of its corpus replay (`tests/api/fuzz_corpus.rs`): a request body read as the API reads
/// it (`body::from_json` into each command's type), then the public report parser and
/// every command parser, with the default configuration at a fixed time, as a CISO. Panics when
/// an outcome breaks a promise: a refusal is a 422 naming its fields, an accepted command
/// keeps the text rules and its event reads back from its stored JSON unchanged.
pub fn fuzz_api_body(body: &[u8]) -> FuzzOutcome {
    use crate::auth::{Role, RoleGrant};
    use crate::domain::Channel;
    use crate::web::body::from_json;
    use crate::web::report_input::{
        fuzz_check_report, fuzz_config, fuzz_now, parse_report_json, ReportBody,
    };

    let report_body = match from_json::<ReportBody>(body) {
        Err(ApiError::BadRequest(_)) => return FuzzOutcome::default(),
        other => other,
    };
    let (cfg, now) = (fuzz_config(), fuzz_now());
    let fuzz_org = OrganisationDetails {
        gdpr_authority: "IMY".into(),
        nis2_authority: "CERT-SE".into(),
        ..Default::default()
    };
    let who = Principal {
        account_id: Uuid::from_u128(1),
        email: "ciso@kommunen.example".into(),
        name: "Fuzz CISO".into(),
        roles: vec![RoleGrant {
            role: Role::Ciso,
            sectors: vec![],
        }],
    };
    let mut out = FuzzOutcome {
        json: true,
        accepted: Vec::new(),
    };
    let report = match report_body {
        Ok(b) => parse_report_json(&b, cfg, now, Channel::Api),
        Err(ApiError::Validation(errors)) => Err(errors),
        Err(e) => panic!("report: refused without naming a field: {e:?}"),
    };
    match report {
        Ok(r) => {
            assert_eq!(r.channel, Channel::Api);
            fuzz_check_report(&r, cfg, now);
            out.accepted.push("report");
        }
        Err(errors) => fuzz_check_errors(&errors),
    }
    let measure_id = Uuid::from_u128(2);
    use super::filing_commands::{
        AffectedNoticeBody, AffectedNotifiedBody, BreachRecordBody, Nis2RecordBody,
    };
    let results: [(&'static str, Result<Command, ApiError>); 17] = [
        (
            "classification",
            from_json::<ClassificationBody>(body).and_then(|b| b.parse(&who, cfg, now)),
        ),
        (
            "decision",
            from_json::<DecisionBody>(body).and_then(|b| b.parse(&who)),
        ),
        (
            "measure",
            from_json::<MeasureBody>(body).and_then(|b| b.parse().map(|(_, c)| c)),
        ),
        (
            "complete_measure",
            from_json::<CompleteMeasureBody>(body).and_then(|b| b.parse(measure_id)),
        ),
        (
            "comment",
            from_json::<CommentBody>(body).and_then(|b| b.parse()),
        ),
        (
            "close",
            from_json::<CloseBody>(body).and_then(|b| b.parse()),
        ),
        (
            "reopen",
            from_json::<ReopenBody>(body).and_then(|b| b.parse()),
        ),
        (
            "filing",
            from_json::<FilingBody>(body).and_then(|b| b.parse(now, &fuzz_org)),
        ),
        (
            "awareness",
            from_json::<AwarenessBody>(body).and_then(|b| b.parse(now)),
        ),
        (
            "handling_ended",
            from_json::<HandlingEndedBody>(body).and_then(|b| b.parse(now)),
        ),
        (
            "handlers",
            from_json::<HandlersBody>(body).and_then(|b| {
                b.parse(|e| {
                    let a = e.as_str().to_ascii_lowercase();
                    a.ends_with("@kommunen.example").then_some(a)
                })
            }),
        ),
        (
            "incident",
            from_json::<IncidentLinkBody>(body).and_then(|b| {
                b.parse(|r| {
                    (r.to_string() == "AVV-2026-0001")
                        .then_some(Uuid::from_u128(3))
                        .ok_or(("no such deviation", "Avvikelsen finns inte."))
                })
            }),
        ),
        (
            "supplier",
            from_json::<SupplierBody>(body).and_then(|b| b.parse()),
        ),
        (
            "breach_record",
            from_json::<BreachRecordBody>(body).and_then(|b| b.parse(now)),
        ),
        (
            "nis2_record",
            from_json::<Nis2RecordBody>(body).and_then(|b| b.parse()),
        ),
        (
            "affected_notice",
            from_json::<AffectedNoticeBody>(body).and_then(|b| b.parse()),
        ),
        (
            "affected_notified",
            from_json::<AffectedNotifiedBody>(body).and_then(|b| b.parse(now)),
        ),
    ];
    for (name, result) in results {
        match result {
            Ok(cmd) => {
                fuzz_check_command(&cmd, cfg, now);
                out.accepted.push(name);
            }
            Err(ApiError::Validation(errors)) => fuzz_check_errors(&errors),
            Err(e) => panic!("{name}: refused without naming a field: {e:?}"),
        }
    }
    out
}

fn fuzz_check_errors(errors: &[super::error::FieldError]) {
    assert!(!errors.is_empty());
    for e in errors {
        assert!(!e.message.is_empty() && !e.message_sv.is_empty(), "{e:?}");
    }
}

fn fuzz_check_command(cmd: &Command, cfg: &ReportConfig, now: DateTime<Utc>) {
    use crate::web::report_input::fuzz_round_trip;
    let text = |s: &str, max: usize| {
        assert!(
            !s.is_empty() && s.trim() == s && s.chars().count() <= max,
            "{s:?}"
        )
    };
    let optional = |s: &str, max: usize| {
        if !s.is_empty() {
            text(s, max)
        }
    };
    match cmd {
        Command::Classify(c)
        | Command::ClassifyAsController {
            classification: c, ..
        } => {
            text(&c.category, SHORT_MAX);
            assert!(cfg.categories.is_empty() || cfg.categories.contains(&c.category));
            optional(&c.rationale, TEXT_MAX);
            assert_eq!(c.role, "ciso");
            fuzz_round_trip(c);
        }
        Command::RecordDecision { text: t, role } => {
            text(t, TEXT_MAX);
            assert_eq!(role, "ciso");
        }
        Command::AddMeasure(m) => {
            text(&m.description, TEXT_MAX);
            text(&m.owner, SHORT_MAX);
            fuzz_round_trip(m);
        }
        Command::CompleteMeasure { note, .. } => optional(note, TEXT_MAX),
        Command::Comment(c) => {
            text(&c.text, TEXT_MAX);
            assert!(!c.from_reporter);
            fuzz_round_trip(c);
        }
        Command::Close { resolution } => text(resolution, TEXT_MAX),
        Command::Reopen { reason } => text(reason, TEXT_MAX),
        Command::RecordFiling(f) => {
            text(&f.authority, SHORT_MAX);
            if let Some(r) = &f.their_reference {
                text(r, SHORT_MAX);
            }
            assert!(f.filed_at <= now + chrono::Duration::minutes(5));
            fuzz_round_trip(f);
        }
        Command::DeclineFiling(f) => {
            text(&f.rationale, TEXT_MAX);
            fuzz_round_trip(f);
        }
        Command::Shred(s) => text(&s.decision, SHORT_MAX),
        Command::RecordAwareness(a) => {
            if let Some(r) = &a.reason {
                text(r, TEXT_MAX);
            }
            assert!(a.aware_at <= now + chrono::Duration::minutes(5));
            fuzz_round_trip(a);
        }
        Command::EndIncidentHandling(e) => {
            assert!(e.ended_at <= now + chrono::Duration::minutes(5));
            fuzz_round_trip(e);
        }
        Command::SaveBreachRecord(r) => {
            text(&r.summary, TEXT_MAX);
            optional(&r.contact, SHORT_MAX);
            for t in [
                &r.consequences_text,
                &r.measures_taken,
                &r.measures_proposed,
                &r.cross_border_details,
                &r.processor,
                &r.delay_reason,
            ] {
                optional(t, TEXT_MAX);
            }
            if let (Some(a), Some(b)) = (r.occurred_from, r.occurred_to) {
                assert!(a <= b);
            }
            fuzz_round_trip(r);
        }
        Command::SaveNis2Record(r) => {
            text(&r.summary, TEXT_MAX);
            optional(&r.contact, SHORT_MAX);
            fuzz_round_trip(r);
        }
        Command::DecideAffectedNotice(n) => {
            text(&n.text, TEXT_MAX);
            fuzz_round_trip(n);
        }
        Command::RecordAffectedNotified(n) => {
            optional(&n.note, TEXT_MAX);
            assert!(n.sent_at <= now + chrono::Duration::minutes(5));
            fuzz_round_trip(n);
        }
        Command::LinkToIncident(l) => {
            assert_eq!(l.incident, Uuid::from_u128(3));
            fuzz_round_trip(l);
        }
        Command::Unlink => {}
        Command::AddAttachment(_) => panic!("no command parser attaches files"),
        Command::RecordSupplier(s) => {
            if let Some(x) = &s.supplier {
                text(x, SHORT_MAX);
            }
            assert!(!s.reported_by_supplier || s.supplier.is_some());
            fuzz_round_trip(s);
        }
        Command::AssignHandlers(h) => {
            for a in [&h.owner, &h.deputy].into_iter().flatten() {
                assert!(crate::domain::EmailAddress::parse(a).is_some(), "{a:?}");
            }
            assert!(h.owner.is_none() || h.owner != h.deputy);
            fuzz_round_trip(h);
        }
        Command::Report(_) => panic!("no command parser makes a report"),
    }
}
