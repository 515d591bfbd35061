//! The recipient lists (who the policy's e-mails go to) as an aggregate in its own stream:
//! seeded once from the configuration, then changed by the admin, each change an event.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::types::EmailAddress;

/// The one stream the lists live in.
pub const RECIPIENTS_STREAM: Uuid = Uuid::from_u128(0x0191_0000_7265_6369_7069_656e_7473_0001);

/// A list of addresses the rules send to.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RecipientGroup {
    Ciso,
    Dataskyddsombud,
    Ledningsgrupp,
    Kommunstyrelsen,
    /// Informationssäkerhetskontakt, one list per sector.
    Kontakt,
}

impl RecipientGroup {
    pub const ALL: [RecipientGroup; 5] = [
        RecipientGroup::Ciso,
        RecipientGroup::Dataskyddsombud,
        RecipientGroup::Ledningsgrupp,
        RecipientGroup::Kommunstyrelsen,
        RecipientGroup::Kontakt,
    ];

    /// The lists escalation and triage cannot do without: while one is empty, avvik is
    /// not ready to escalate.
    pub const REQUIRED: [RecipientGroup; 3] = [
        RecipientGroup::Ciso,
        RecipientGroup::Ledningsgrupp,
        RecipientGroup::Kommunstyrelsen,
    ];

    pub fn key(self) -> &'static str {
        match self {
            RecipientGroup::Ciso => "ciso",
            RecipientGroup::Dataskyddsombud => "dataskyddsombud",
            RecipientGroup::Ledningsgrupp => "ledningsgrupp",
            RecipientGroup::Kommunstyrelsen => "kommunstyrelsen",
            RecipientGroup::Kontakt => "kontakt",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.key() == s.trim())
    }

    pub fn label_sv(self) -> &'static str {
        match self {
            RecipientGroup::Ciso => "CISO",
            RecipientGroup::Dataskyddsombud => "Dataskyddsombud",
            RecipientGroup::Ledningsgrupp => "Ledningsgruppen",
            RecipientGroup::Kommunstyrelsen => "Kommunstyrelsen",
            RecipientGroup::Kontakt => "Informationssäkerhetskontakt",
        }
    }
}

/// Every list, as it stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecipientLists {
    #[serde(default)]
    pub ciso: Vec<String>,
    #[serde(default)]
    pub dataskyddsombud: Vec<String>,
    #[serde(default)]
    pub ledningsgrupp: Vec<String>,
    #[serde(default)]
    pub kommunstyrelsen: Vec<String>,
    /// Per sector.
    #[serde(default)]
    pub kontakt: BTreeMap<String, Vec<String>>,
}

impl RecipientLists {
    /// The addresses of one list (`sector` names the kontakt list).
    pub fn get(&self, group: RecipientGroup, sector: Option<&str>) -> &[String] {
        match group {
            RecipientGroup::Ciso => &self.ciso,
            RecipientGroup::Dataskyddsombud => &self.dataskyddsombud,
            RecipientGroup::Ledningsgrupp => &self.ledningsgrupp,
            RecipientGroup::Kommunstyrelsen => &self.kommunstyrelsen,
            RecipientGroup::Kontakt => sector
                .and_then(|s| self.kontakt.get(s))
                .map_or(&[], Vec::as_slice),
        }
    }

    fn set(&mut self, group: RecipientGroup, sector: Option<&str>, addresses: Vec<String>) {
        let slot = match group {
            RecipientGroup::Ciso => &mut self.ciso,
            RecipientGroup::Dataskyddsombud => &mut self.dataskyddsombud,
            RecipientGroup::Ledningsgrupp => &mut self.ledningsgrupp,
            RecipientGroup::Kommunstyrelsen => &mut self.kommunstyrelsen,
            RecipientGroup::Kontakt => {
                let sector = sector.unwrap_or_default().to_string();
                if addresses.is_empty() {
                    self.kontakt.remove(&sector);
                } else {
                    self.kontakt.insert(sector, addresses);
                }
                return;
            }
        };
        *slot = addresses;
    }

    /// The required lists that are empty, in a fixed order.
    pub fn missing(&self) -> Vec<RecipientGroup> {
        RecipientGroup::REQUIRED
            .into_iter()
            .filter(|g| self.get(*g, None).is_empty())
            .collect()
    }
}

/// The lists taken from the configuration at the first start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecipientsSeeded {
    pub lists: RecipientLists,
    /// Where they came from (`config`).
    pub source: String,
}

/// One list replaced by the admin; who and when are the event's actor and time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecipientListChanged {
    pub group: RecipientGroup,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sector: Option<String>,
    pub addresses: Vec<String>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

super::event_enum! {
    /// The events of the recipients stream.
    RecipientsEvent {
        Seeded(RecipientsSeeded) = "RecipientsSeeded",
        Changed(RecipientListChanged) = "RecipientListChanged",
    }
}

/// The fold of the stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recipients {
    /// True once any event is stored: the configuration is no longer consulted.
    pub recorded: bool,
    pub lists: RecipientLists,
}

pub enum RecipientsCommand {
    /// At start: the configuration's lists, recorded once (ignored once anything is
    /// stored, and while the configuration names nobody).
    Seed(RecipientLists),
    /// The admin replaces one list.
    Set {
        group: RecipientGroup,
        sector: Option<String>,
        addresses: Vec<String>,
    },
}

/// What `decide` needs from outside: the sectors the configuration names.
pub struct RecipientsContext<'a> {
    pub sectors: &'a [String],
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecipientsError {
    #[error("not an e-mail address: {0}")]
    InvalidAddress(String),
    #[error("a kontakt list needs one of the configured sectors")]
    UnknownSector,
}

impl RecipientsError {
    pub fn message_sv(&self) -> String {
        match self {
            RecipientsError::InvalidAddress(a) => {
                format!("”{a}” är inte en giltig e-postadress.")
            }
            RecipientsError::UnknownSector => {
                "Välj en av de sektorer som finns i konfigurationen.".into()
            }
        }
    }
}

/// Addresses parsed, in the given order, without repeats (case-insensitive).
pub fn normalise(addresses: &[String]) -> Result<Vec<String>, RecipientsError> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for a in addresses.iter().map(|a| a.trim()).filter(|a| !a.is_empty()) {
        let parsed =
            EmailAddress::parse(a).ok_or_else(|| RecipientsError::InvalidAddress(a.to_string()))?;
        if seen.insert(parsed.as_str().to_lowercase()) {
            out.push(parsed.as_str().to_string());
        }
    }
    Ok(out)
}

/// Splits free text (one address a line, or separated by commas or semicolons).
pub fn split_addresses(text: &str) -> Vec<String> {
    text.split(['\n', ',', ';', '\r'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

pub fn decide(
    state: &Recipients,
    cmd: RecipientsCommand,
    ctx: &RecipientsContext<'_>,
) -> Result<Vec<RecipientsEvent>, RecipientsError> {
    match cmd {
        // Nothing to record: until the stream has an event the configuration's lists are
        // the lists, so an empty configuration is the same as an empty seed.
        RecipientsCommand::Seed(lists) if state.recorded || lists == RecipientLists::default() => {
            Ok(Vec::new())
        }
        RecipientsCommand::Seed(lists) => Ok(vec![RecipientsEvent::Seeded(RecipientsSeeded {
            lists,
            source: "config".into(),
        })]),
        RecipientsCommand::Set {
            group,
            sector,
            addresses,
        } => {
            let sector = match group {
                RecipientGroup::Kontakt => {
                    let s = sector.map(|s| s.trim().to_string()).unwrap_or_default();
                    if !ctx.sectors.contains(&s) {
                        return Err(RecipientsError::UnknownSector);
                    }
                    Some(s)
                }
                _ => None,
            };
            let addresses = normalise(&addresses)?;
            let before = state.lists.get(group, sector.as_deref());
            if before == addresses.as_slice() {
                return Ok(Vec::new());
            }
            let lower =
                |v: &[String]| -> BTreeSet<String> { v.iter().map(|a| a.to_lowercase()).collect() };
            let (was, now) = (lower(before), lower(&addresses));
            let added = addresses
                .iter()
                .filter(|a| !was.contains(&a.to_lowercase()))
                .cloned()
                .collect();
            let removed = before
                .iter()
                .filter(|a| !now.contains(&a.to_lowercase()))
                .cloned()
                .collect();
            Ok(vec![RecipientsEvent::Changed(RecipientListChanged {
                group,
                sector,
                addresses,
                added,
                removed,
            })])
        }
    }
}

pub fn evolve(mut state: Recipients, event: &RecipientsEvent) -> Recipients {
    match event {
        RecipientsEvent::Seeded(s) => {
            if !state.recorded {
                state.lists = s.lists.clone();
            }
        }
        RecipientsEvent::Changed(c) => {
            state
                .lists
                .set(c.group, c.sector.as_deref(), c.addresses.clone());
        }
    }
    state.recorded = true;
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> RecipientsContext<'static> {
        static SECTORS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        RecipientsContext {
            sectors: SECTORS.get_or_init(|| vec!["Socialtjänsten".to_string()]),
        }
    }

    fn run(state: Recipients, cmd: RecipientsCommand) -> (Recipients, Vec<RecipientsEvent>) {
        let events = decide(&state, cmd, &ctx()).unwrap();
        (events.iter().fold(state, evolve), events)
    }

    #[test]
    fn seeding_happens_once_and_changes_say_what_was_added_and_removed() {
        let seed = RecipientLists {
            ledningsgrupp: vec!["lg@kommunen.example".into()],
            ..Default::default()
        };
        let (_, ev) = run(
            Recipients::default(),
            RecipientsCommand::Seed(RecipientLists::default()),
        );
        assert!(ev.is_empty(), "an empty configuration records nothing");
        let (s, ev) = run(Recipients::default(), RecipientsCommand::Seed(seed.clone()));
        assert_eq!(ev.len(), 1);
        assert_eq!(s.lists, seed);
        assert_eq!(
            s.lists.missing(),
            [RecipientGroup::Ciso, RecipientGroup::Kommunstyrelsen]
        );
        let (s, ev) = run(s, RecipientsCommand::Seed(RecipientLists::default()));
        assert!(ev.is_empty(), "a second seed is ignored");
        let (s, ev) = run(
            s,
            RecipientsCommand::Set {
                group: RecipientGroup::Ledningsgrupp,
                sector: None,
                addresses: vec![
                    " ny@kommunen.example".into(),
                    "NY@kommunen.example".into(),
                    "".into(),
                ],
            },
        );
        let RecipientsEvent::Changed(c) = &ev[0] else {
            panic!("{ev:?}")
        };
        assert_eq!(c.added, ["ny@kommunen.example"]);
        assert_eq!(c.removed, ["lg@kommunen.example"]);
        assert_eq!(s.lists.ledningsgrupp, ["ny@kommunen.example"]);
        let (_, ev) = run(
            s.clone(),
            RecipientsCommand::Set {
                group: RecipientGroup::Ledningsgrupp,
                sector: None,
                addresses: vec!["ny@kommunen.example".into()],
            },
        );
        assert!(ev.is_empty(), "no change, no event");
    }

    #[test]
    fn bad_addresses_and_unknown_sectors_are_refused() {
        let set = |group, sector: Option<&str>, a: &str| RecipientsCommand::Set {
            group,
            sector: sector.map(str::to_string),
            addresses: vec![a.to_string()],
        };
        let s = Recipients::default();
        assert_eq!(
            decide(
                &s,
                set(RecipientGroup::Ciso, None, "inte en adress"),
                &ctx()
            ),
            Err(RecipientsError::InvalidAddress("inte en adress".into()))
        );
        assert_eq!(
            decide(
                &s,
                set(RecipientGroup::Kontakt, Some("Månen"), "k@kommunen.example"),
                &ctx()
            ),
            Err(RecipientsError::UnknownSector)
        );
        let (s, _) = run(
            s,
            set(
                RecipientGroup::Kontakt,
                Some("Socialtjänsten"),
                "k@kommunen.example",
            ),
        );
        assert_eq!(
            s.lists.get(RecipientGroup::Kontakt, Some("Socialtjänsten")),
            ["k@kommunen.example"]
        );
        let (s, _) = run(
            s,
            RecipientsCommand::Set {
                group: RecipientGroup::Kontakt,
                sector: Some("Socialtjänsten".into()),
                addresses: vec![],
            },
        );
        assert!(s.lists.kontakt.is_empty());
    }
}
