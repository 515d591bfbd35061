//! Turning a request body (JSON from the API, or a posted form converted to the same JSON
//! shape) into a domain `Command`: one set of rules for both, every bad field reported.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::error::ApiError;
use super::input::Fields;
use crate::auth::Principal;
use crate::config::ReportConfig;
use crate::domain::deviation::{CommentAdded, FilingDeclined, FilingRecorded, MeasureAdded};
use crate::domain::{Aspects, Classification, Command, FilingKind, PersonalDataBreach, Severity};

pub const TEXT_MAX: usize = 20_000;
pub const SHORT_MAX: usize = 200;

pub fn classification(v: &Value, who: &Principal, cfg: &ReportConfig) -> Result<Command, ApiError> {
    let mut f = Fields::new(v)?;
    let severity: Option<Severity> = f.parsed(
        "severity",
        true,
        (
            "\"minor\" or \"major\"",
            "Välj mindre eller större avvikelse.",
        ),
    );
    let aspects: Option<Aspects> = f.parsed(
        "aspects",
        false,
        (
            "an object {confidentiality, integrity, availability, traceability} with levels 1..4",
            "Ange en konsekvensnivå 1–4.",
        ),
    );
    let category = f.text("category", true, SHORT_MAX);
    if let Some(c) = &category {
        if !cfg.categories.is_empty() && !cfg.categories.iter().any(|x| x == c) {
            f.error(
                "category",
                &format!("must be one of: {}", cfg.categories.join(", ")),
                "Välj en kategori i listan.",
            );
        }
    }
    let pdb: Option<PersonalDataBreach> = f.parsed(
        "personal_data_breach",
        true,
        (
            "\"yes\", \"no\" or \"investigating\"",
            "Ange om det är en personuppgiftsincident: ja, nej eller under utredning.",
        ),
    );
    let nis2 = f.boolean("nis2_significant", true);
    let rationale = f.text("rationale", false, TEXT_MAX).unwrap_or_default();
    f.finish(&[
        "severity",
        "aspects",
        "category",
        "personal_data_breach",
        "nis2_significant",
        "rationale",
    ])?;
    let (Some(severity), Some(category), Some(pdb), Some(nis2)) = (severity, category, pdb, nis2)
    else {
        return Err(ApiError::BadRequest("incomplete classification".into()));
    };
    Ok(Command::Classify(Classification {
        severity,
        aspects: aspects.unwrap_or_default(),
        category,
        personal_data_breach: pdb,
        nis2_significant: nis2,
        rationale,
        role: who.acting_role().as_str().to_string(),
    }))
}

pub fn decision(v: &Value, who: &Principal) -> Result<Command, ApiError> {
    let mut f = Fields::new(v)?;
    let text = f.text("text", true, TEXT_MAX);
    f.finish(&["text"])?;
    Ok(Command::RecordDecision {
        text: text.unwrap_or_default(),
        role: who.acting_role().as_str().to_string(),
    })
}

/// A new measure; its id is chosen here so the caller can answer with it.
pub fn measure(v: &Value) -> Result<(Uuid, Command), ApiError> {
    let mut f = Fields::new(v)?;
    let description = f.text("description", true, TEXT_MAX);
    let owner = f.text("owner", true, SHORT_MAX);
    let due = f.date("due", true);
    f.finish(&["description", "owner", "due"])?;
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

pub fn complete_measure(v: &Value, measure_id: Uuid) -> Result<Command, ApiError> {
    let mut f = Fields::new(v)?;
    let note = f.text("note", false, TEXT_MAX).unwrap_or_default();
    f.finish(&["note"])?;
    Ok(Command::CompleteMeasure { measure_id, note })
}

pub fn comment(v: &Value) -> Result<Command, ApiError> {
    let mut f = Fields::new(v)?;
    let text = f.text("text", true, TEXT_MAX);
    let to_reporter = f.boolean("to_reporter", false).unwrap_or(false);
    f.finish(&["text", "to_reporter"])?;
    Ok(Command::Comment(CommentAdded {
        text: text.unwrap_or_default(),
        to_reporter,
        from_reporter: false,
        unverified_email: false,
    }))
}

pub fn close(v: &Value) -> Result<Command, ApiError> {
    let mut f = Fields::new(v)?;
    let resolution = f.text("resolution", true, TEXT_MAX);
    f.finish(&["resolution"])?;
    Ok(Command::Close {
        resolution: resolution.unwrap_or_default(),
    })
}

pub fn reopen(v: &Value) -> Result<Command, ApiError> {
    let mut f = Fields::new(v)?;
    let reason = f.text("reason", true, TEXT_MAX);
    f.finish(&["reason"])?;
    Ok(Command::Reopen {
        reason: reason.unwrap_or_default(),
    })
}

/// A filing, or (with `not_filed_rationale`) a reasoned decision not to file.
pub fn filing(v: &Value, now: DateTime<Utc>) -> Result<Command, ApiError> {
    let mut f = Fields::new(v)?;
    let kind: Option<FilingKind> = f.parsed(
        "kind",
        true,
        (
            "one of \"gdpr\", \"nis2_early_warning\", \"nis2_notification\", \"nis2_final_report\"",
            "Välj vilken anmälan det gäller.",
        ),
    );
    let rationale = f.text("not_filed_rationale", false, TEXT_MAX);
    let cmd = if let Some(rationale) = rationale {
        f.finish(&["kind", "not_filed_rationale"])?;
        kind.map(|kind| Command::DeclineFiling(FilingDeclined { kind, rationale }))
    } else {
        let authority = f.text("authority", true, SHORT_MAX);
        let filed_at = f.datetime("filed_at", true);
        let their_reference = f.text("their_reference", false, SHORT_MAX);
        if let Some(t) = filed_at {
            if t > now + chrono::Duration::minutes(5) {
                f.error(
                    "filed_at",
                    "must not be in the future",
                    "Tidpunkten får inte ligga i framtiden.",
                );
            }
        }
        f.finish(&["kind", "authority", "filed_at", "their_reference"])?;
        match (kind, authority, filed_at) {
            (Some(kind), Some(authority), Some(filed_at)) => {
                Some(Command::RecordFiling(FilingRecorded {
                    kind,
                    authority,
                    filed_at,
                    their_reference,
                }))
            }
            _ => None,
        }
    };
    cmd.ok_or_else(|| ApiError::BadRequest("incomplete filing".into()))
}

/// Which parsers accepted a body given to `fuzz_api_body`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FuzzOutcome {
    /// The body is JSON (otherwise every endpoint answers 400 before any parser runs).
    pub json: bool,
    /// The parsers that accepted it: `report`, `classification`, `decision`, `measure`,
    /// `complete_measure`, `comment`, `close`, `reopen`, `filing`.
    pub accepted: Vec<&'static str>,
}

/// The entry point of the fuzz target `api_bodies` (`fuzz/fuzz_targets/api_bodies.rs`) and
/// of its corpus replay (`tests/api/fuzz_corpus.rs`): a request body read as the API reads
/// it (`serde_json::from_slice` into a `Value`), then the public report parser and every
/// command parser, with the default configuration at a fixed time, as a CISO. Panics when
/// an outcome breaks a promise: a refusal is a 422 naming its fields, an accepted command
/// keeps the text rules and its event reads back from its stored JSON unchanged.
pub fn fuzz_api_body(body: &[u8]) -> FuzzOutcome {
    use crate::auth::{Role, RoleGrant};
    use crate::domain::Channel;
    use crate::web::report_input::{fuzz_check_report, fuzz_config, fuzz_now, parse_report_json};

    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return FuzzOutcome::default();
    };
    let (cfg, now) = (fuzz_config(), fuzz_now());
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
    match parse_report_json(&v, cfg, now, Channel::Api) {
        Ok(r) => {
            assert_eq!(r.channel, Channel::Api);
            fuzz_check_report(&r, cfg, now);
            out.accepted.push("report");
        }
        Err(errors) => fuzz_check_errors(&errors),
    }
    let measure_id = Uuid::from_u128(2);
    let results: [(&'static str, Result<Command, ApiError>); 8] = [
        ("classification", classification(&v, &who, cfg)),
        ("decision", decision(&v, &who)),
        ("measure", measure(&v).map(|(_, c)| c)),
        ("complete_measure", complete_measure(&v, measure_id)),
        ("comment", comment(&v)),
        ("close", close(&v)),
        ("reopen", reopen(&v)),
        ("filing", filing(&v, now)),
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
        Command::Classify(c) => {
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
        Command::Report(_) => panic!("no command parser makes a report"),
    }
}
