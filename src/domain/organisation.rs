//! The organisation's details every filing to an authority carries (the controller, its
//! organisation number, the DPO's contact, the NIS2 entity type and sector, the
//! authorities' names) as an aggregate in its own stream: seeded once from the
//! configuration, then changed by the admin, each change an event.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The one stream the details live in.
pub const ORGANISATION_STREAM: Uuid = Uuid::from_u128(0x0191_0000_6f72_6761_6e69_7361_7469_0001);

/// What a filing says about who files it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrganisationDetails {
    /// The controller (personuppgiftsansvarig), e.g. "Exempels kommun".
    pub controller_name: String,
    /// Organisationsnummer, NNNNNN-NNNN.
    pub org_number: String,
    /// How the data protection officer is reached (a functional address or phone).
    pub dpo_contact: String,
    /// NIS2 entity type: "väsentlig" or "viktig" (cybersäkerhetslagen).
    pub nis2_entity_type: String,
    /// The NIS2 sector the entity is in, e.g. "Offentlig förvaltning".
    pub nis2_sector: String,
    /// The GDPR supervisory authority (IMY).
    pub gdpr_authority: String,
    /// Where NIS2 incidents are reported (CERT-SE at MCF).
    pub nis2_authority: String,
}

impl OrganisationDetails {
    /// The authority a filing of this regime goes to.
    pub fn authority_for(&self, regime: super::types::Regime) -> &str {
        match regime {
            super::types::Regime::Gdpr => &self.gdpr_authority,
            super::types::Regime::Nis2 => &self.nis2_authority,
        }
    }

    /// Every field checked; `(field, English, Swedish)` per problem.
    pub fn problems(&self) -> Vec<(&'static str, &'static str, &'static str)> {
        let mut out = Vec::new();
        for (name, value) in [
            ("controller_name", &self.controller_name),
            ("dpo_contact", &self.dpo_contact),
            ("nis2_sector", &self.nis2_sector),
            ("gdpr_authority", &self.gdpr_authority),
            ("nis2_authority", &self.nis2_authority),
        ] {
            if value.trim().is_empty() || value.chars().count() > 200 {
                out.push((
                    name,
                    "required, at most 200 characters",
                    "Fyll i (högst 200 tecken).",
                ));
            }
        }
        if !valid_org_number(&self.org_number) {
            out.push((
                "org_number",
                "must be an organisation number NNNNNN-NNNN",
                "Ange organisationsnumret som NNNNNN-NNNN.",
            ));
        }
        if !matches!(self.nis2_entity_type.as_str(), "väsentlig" | "viktig") {
            out.push((
                "nis2_entity_type",
                "must be \"väsentlig\" or \"viktig\"",
                "Välj väsentlig eller viktig verksamhetsutövare.",
            ));
        }
        out
    }
}

/// NNNNNN-NNNN with a valid Luhn check digit (as Bolagsverket's numbers have).
fn valid_org_number(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 11 || b[6] != b'-' {
        return false;
    }
    let digits: Vec<u32> = s
        .chars()
        .filter(|c| *c != '-')
        .map(|c| c.to_digit(10))
        .collect::<Option<_>>()
        .unwrap_or_default();
    if digits.len() != 10 {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let v = if i.is_multiple_of(2) { d * 2 } else { *d };
            v / 10 + v % 10
        })
        .sum();
    sum.is_multiple_of(10)
}

super::event_enum! {
    /// The organisation details' events.
    OrganisationEvent {
    Seeded(OrganisationDetails) = "OrganisationDetailsSeeded",
    Changed(OrganisationDetails) = "OrganisationDetailsChanged",
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum OrganisationCommand {
    /// From the configuration, at the first start only.
    Seed(OrganisationDetails),
    Change(OrganisationDetails),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrganisationError {
    #[error("invalid organisation details: {0:?}")]
    Invalid(Vec<&'static str>),
}

/// `None` until seeded.
pub type Organisation = Option<OrganisationDetails>;

/// Pure: a seed once, a change only when valid and different.
pub fn decide(
    state: &Organisation,
    cmd: OrganisationCommand,
) -> Result<Vec<OrganisationEvent>, OrganisationError> {
    Ok(match (state, cmd) {
        (None, OrganisationCommand::Seed(d)) => vec![OrganisationEvent::Seeded(d)],
        (Some(_), OrganisationCommand::Seed(_)) => vec![],
        (cur, OrganisationCommand::Change(d)) => {
            let problems = d.problems();
            if !problems.is_empty() {
                return Err(OrganisationError::Invalid(
                    problems.into_iter().map(|p| p.0).collect(),
                ));
            }
            if cur.as_ref() == Some(&d) {
                vec![]
            } else {
                vec![OrganisationEvent::Changed(d)]
            }
        }
    })
}

pub fn evolve(_state: Organisation, event: &OrganisationEvent) -> Organisation {
    match event {
        OrganisationEvent::Seeded(d) | OrganisationEvent::Changed(d) => Some(d.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn details() -> OrganisationDetails {
        OrganisationDetails {
            controller_name: "Exempels kommun".into(),
            org_number: "212000-0142".into(),
            dpo_contact: "dataskyddsombud@kommunen.example".into(),
            nis2_entity_type: "väsentlig".into(),
            nis2_sector: "Offentlig förvaltning".into(),
            gdpr_authority: "Integritetsskyddsmyndigheten (IMY)".into(),
            nis2_authority: "CERT-SE vid Myndigheten för civilt försvar (MCF)".into(),
        }
    }

    #[test]
    fn seeded_once_changed_when_valid_and_different() {
        let s = decide(&None, OrganisationCommand::Seed(details()))
            .unwrap()
            .iter()
            .fold(None, evolve);
        assert_eq!(s, Some(details()));
        assert!(decide(&s, OrganisationCommand::Seed(details()))
            .unwrap()
            .is_empty());
        assert!(decide(&s, OrganisationCommand::Change(details()))
            .unwrap()
            .is_empty());
        let mut bad = details();
        bad.org_number = "212000-0143".into();
        bad.nis2_entity_type = "stor".into();
        assert_eq!(
            decide(&s, OrganisationCommand::Change(bad)),
            Err(OrganisationError::Invalid(vec![
                "org_number",
                "nis2_entity_type"
            ]))
        );
        let mut new = details();
        new.dpo_contact = "dso@kommunen.example".into();
        assert_eq!(
            decide(&s, OrganisationCommand::Change(new.clone())).unwrap(),
            [OrganisationEvent::Changed(new)]
        );
    }
}
