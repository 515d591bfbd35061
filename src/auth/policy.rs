//! The one place that decides who may do what. Every staff, audit and admin route asks
//! `authorize`; nothing else checks roles.

use uuid::Uuid;

use super::accounts::{Account, Role, RoleGrant};
use crate::domain::{Deviation, PersonalDataBreach, Severity};

/// A signed-in staff member, as their account stood when the request came in.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub account_id: Uuid,
    pub email: String,
    pub name: String,
    pub roles: Vec<RoleGrant>,
}

impl Principal {
    pub fn from_account(a: &Account) -> Self {
        Self {
            account_id: a.id,
            email: a.email.as_str().to_string(),
            name: a.name.clone(),
            roles: a.roles.clone(),
        }
    }

    pub fn has(&self, role: Role) -> bool {
        self.roles.iter().any(|g| g.role == role)
    }

    /// The actor name events record.
    pub fn actor(&self) -> String {
        format!("user:{}", self.email)
    }

    /// The role an action is recorded under: the most senior one the user holds.
    pub fn acting_role(&self) -> Role {
        self.roles
            .iter()
            .map(|g| g.role)
            .min()
            .unwrap_or(Role::Auditor)
    }
}

/// Everything a staff member can ask to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Open the register (each row is then filtered by `ViewDeviation`).
    ListDeviations,
    ViewDeviation,
    Classify,
    RecordDecision,
    AddMeasure,
    /// Complete the given measure.
    CompleteMeasure(Uuid),
    Comment,
    Close,
    Reopen,
    RecordFiling,
    /// Assign or change the owner (handläggare) and deputy (ersättare).
    AssignHandlers,
    /// Set or change when the controller became aware (the start of the statutory clocks).
    RecordAwareness,
    /// Audit views: history, as-of register, verify.
    ViewAudit,
    /// Export the log.
    ExportLog,
    ViewReports,
    IssueReport,
    ManageAccounts,
    /// See, download and resolve e-mail held in the intake quarantine.
    HandleQuarantine,
    /// See which accounts' password logins are being slowed down, and from where.
    ViewLoginThrottles,
    /// Read the titles in an annual report that is not yet issued (a draft); others see
    /// counts only until it is issued.
    ViewDraftReportTitles,
    /// See which deviations are due for gallring under the retention rules.
    ViewRetention,
    /// Gallra a deviation under a gallringsbeslut (destroys its personal data for good).
    Shred,
    /// The registerutdrag (GDPR art. 15): everything about one person, by e-mail address.
    RegisterExtract,
    /// The access log (läslogg): who saw which deviation, per deviation and per user.
    ViewAccessLog,
}

impl Action {
    /// Does this action change a deviation?
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Action::Classify
                | Action::RecordDecision
                | Action::AddMeasure
                | Action::CompleteMeasure(_)
                | Action::Comment
                | Action::Close
                | Action::Reopen
                | Action::RecordFiling
                | Action::AssignHandlers
                | Action::RecordAwareness
                | Action::IssueReport
                | Action::ManageAccounts
                | Action::HandleQuarantine
                | Action::Shred
        )
    }
}

fn in_sector(grant: &RoleGrant, d: &Deviation) -> bool {
    d.sector
        .as_ref()
        .is_some_and(|s| grant.sectors.iter().any(|g| g == s))
}

fn is_personal_data(d: &Deviation) -> bool {
    d.personal_data_suspected
        || matches!(
            d.personal_data_breach,
            Some(PersonalDataBreach::Yes | PersonalDataBreach::Investigating)
        )
}

fn owns_a_measure(email: &str, d: &Deviation) -> bool {
    d.measures
        .iter()
        .any(|m| m.owner.eq_ignore_ascii_case(email))
}

/// Is `who`'s first marking of a deviation as a (possible) personal-data breach or a
/// significant NIS2 incident the controller's awareness? The CISO's and the DPO's is.
pub fn marks_awareness(who: &Principal) -> bool {
    who.has(Role::Ciso) || who.has(Role::Dso)
}

/// May `who` do `action` (on `target`, for deviation actions)?
pub fn authorize(who: &Principal, action: Action, target: Option<&Deviation>) -> bool {
    who.roles
        .iter()
        .any(|grant| grant_allows(who, grant, action, target))
}

fn grant_allows(
    who: &Principal,
    grant: &RoleGrant,
    action: Action,
    target: Option<&Deviation>,
) -> bool {
    use Action::*;
    match grant.role {
        Role::Admin => matches!(action, ManageAccounts),
        Role::Auditor => matches!(
            action,
            ListDeviations
                | ViewDeviation
                | ViewAudit
                | ExportLog
                | ViewReports
                | ViewDraftReportTitles
                | ViewRetention
                | ViewAccessLog
        ),
        Role::Ciso => !matches!(action, ManageAccounts),
        Role::Kontakt => match action {
            ListDeviations => true,
            ViewDeviation | Classify | RecordDecision | AddMeasure | CompleteMeasure(_)
            | Comment | Close | Reopen | RecordFiling | AssignHandlers => {
                target.is_some_and(|d| in_sector(grant, d))
            }
            _ => false,
        },
        Role::Dso => match action {
            ListDeviations | ViewRetention | RegisterExtract | ViewAccessLog => true,
            ViewDeviation | Comment | RecordDecision | RecordFiling | RecordAwareness => {
                target.is_some_and(is_personal_data)
            }
            _ => false,
        },
        Role::Systemagare => match action {
            ListDeviations => true,
            ViewDeviation | Comment => target.is_some_and(|d| owns_a_measure(&who.email, d)),
            CompleteMeasure(id) => target.is_some_and(|d| {
                d.measure(id)
                    .is_some_and(|m| m.owner.eq_ignore_ascii_case(&who.email))
            }),
            _ => false,
        },
        Role::Ledning => match action {
            ListDeviations | ViewReports => true,
            ViewDeviation => target.is_some_and(|d| d.severity == Some(Severity::Major)),
            _ => false,
        },
    }
}
