//! The notification rules: which e-mails an event or a clock calls for, to whom, and from
//! when. Pure functions of the deviation's state (or the triggering event), the
//! configuration and `now`.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use chrono_tz::Europe::Stockholm;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::Config;
use crate::domain::recipients::{RecipientGroup, RecipientLists};
use crate::domain::{
    Deviation, DeviationEvent, EmailAddress, FilingKind, PersonalDataBreach, Severity, Status,
};
use crate::intake::record::EmailQuarantined;
use crate::report::IssuedReport;
use crate::scheduler::PolicyReviewReminderDue;

/// Why an e-mail is sent. Part of the notice id, so names never change once stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// New report → CISO and the sector's kontakt.
    Triage,
    /// New report → the reporter (reference and status link).
    Receipt,
    /// Classified major (first time or up from minor) → ledningsgrupp, kommunstyrelsen.
    Escalation,
    /// Nobody in a group acknowledged the escalation in time → that group, once.
    AckReminder,
    /// Personal-data breach (yes / under investigation) → dataskyddsombud.
    GdprAlert,
    /// A statutory deadline is near or overdue → DPO/CISO.
    DeadlineReminder,
    /// A measure is past due → its owner.
    MeasureOverdue,
    /// Closed → the reporter.
    Closed,
    /// Staff commented to the reporter → the reporter.
    ReporterComment,
    /// Classified as a significant NIS2 incident (first time) → CISO, with the 24 h
    /// early-warning deadline.
    Nis2Alert,
    /// An annual report was issued → kommunstyrelsen and CISO, with the report.
    AnnualReport,
    /// The policy must be reviewed before it expires → CISO.
    PolicyReviewReminder,
    /// An e-mail to the deviation address was quarantined → CISO.
    IntakeQuarantine,
    /// Not classified within its working days → its handläggare and ersättare, or the
    /// CISO and the sector's kontakt; daily until it is.
    TriageOverdue,
    /// Made handläggare or ersättare → that person.
    Assigned,
}

impl Rule {
    pub fn key(self) -> &'static str {
        match self {
            Rule::Triage => "triage",
            Rule::Receipt => "receipt",
            Rule::Escalation => "escalation",
            Rule::AckReminder => "ack_reminder",
            Rule::GdprAlert => "gdpr_alert",
            Rule::DeadlineReminder => "deadline_reminder",
            Rule::MeasureOverdue => "measure_overdue",
            Rule::Closed => "closed",
            Rule::ReporterComment => "reporter_comment",
            Rule::Nis2Alert => "nis2_alert",
            Rule::AnnualReport => "annual_report",
            Rule::PolicyReviewReminder => "policy_review_reminder",
            Rule::IntakeQuarantine => "intake_quarantine",
            Rule::TriageOverdue => "triage_overdue",
            Rule::Assigned => "assigned",
        }
    }

    pub fn label_sv(self) -> &'static str {
        match self {
            Rule::Triage => "Ny avvikelse att bedöma",
            Rule::Receipt => "Mottagningskvitto till rapportören",
            Rule::Escalation => "Större avvikelse rapporterad",
            Rule::AckReminder => "Påminnelse om kvittering",
            Rule::GdprAlert => "Möjlig personuppgiftsincident",
            Rule::DeadlineReminder => "Påminnelse om lagstadgad tidsfrist",
            Rule::MeasureOverdue => "Försenad åtgärd",
            Rule::Closed => "Avslutat, meddelande till rapportören",
            Rule::ReporterComment => "Meddelande till rapportören",
            Rule::Nis2Alert => "Betydande incident enligt NIS2",
            Rule::AnnualReport => "Årsrapport",
            Rule::PolicyReviewReminder => "Påminnelse om utvärdering av policyn",
            Rule::IntakeQuarantine => "E-post i karantän",
            Rule::TriageOverdue => "Försenad bedömning",
            Rule::Assigned => "Tilldelad som handläggare",
        }
    }
}

/// Who an e-mail went to, as a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    Ciso,
    Kontakt,
    Dataskyddsombud,
    Ledningsgrupp,
    Kommunstyrelsen,
    Reporter,
    MeasureOwner,
    /// The deviation's handläggare or ersättare.
    Handler,
}

impl Group {
    pub fn label_sv(self) -> &'static str {
        match self {
            Group::Ciso => "CISO",
            Group::Kontakt => "informationssäkerhetskontakt",
            Group::Dataskyddsombud => "dataskyddsombud",
            Group::Ledningsgrupp => "ledningsgruppen",
            Group::Kommunstyrelsen => "kommunstyrelsen",
            Group::Reporter => "rapportören",
            Group::MeasureOwner => "åtgärdsansvarig",
            Group::Handler => "handläggare",
        }
    }

    /// The recipient list a group's addresses come from; none for the reporter and a
    /// measure's owner, whose address is in the deviation.
    pub fn list(self) -> Option<RecipientGroup> {
        match self {
            Group::Ciso => Some(RecipientGroup::Ciso),
            Group::Kontakt => Some(RecipientGroup::Kontakt),
            Group::Dataskyddsombud => Some(RecipientGroup::Dataskyddsombud),
            Group::Ledningsgrupp => Some(RecipientGroup::Ledningsgrupp),
            Group::Kommunstyrelsen => Some(RecipientGroup::Kommunstyrelsen),
            Group::Reporter | Group::MeasureOwner | Group::Handler => None,
        }
    }

    /// Whether a rule firing for this group with nobody in it is owed to it: the e-mail
    /// goes out once an address is added. Not the kontakt lists, which are optional (the
    /// CISO gets every triage e-mail too).
    pub fn owed_when_empty(self) -> bool {
        matches!(
            self,
            Group::Ciso | Group::Dataskyddsombud | Group::Ledningsgrupp | Group::Kommunstyrelsen
        )
    }

    pub fn from_list(g: RecipientGroup) -> Group {
        match g {
            RecipientGroup::Ciso => Group::Ciso,
            RecipientGroup::Kontakt => Group::Kontakt,
            RecipientGroup::Dataskyddsombud => Group::Dataskyddsombud,
            RecipientGroup::Ledningsgrupp => Group::Ledningsgrupp,
            RecipientGroup::Kommunstyrelsen => Group::Kommunstyrelsen,
        }
    }

    /// The groups an escalation goes to and that acknowledge it.
    pub const BOARD: [Group; 2] = [Group::Ledningsgrupp, Group::Kommunstyrelsen];

    /// The group a role named in an event means (`notify_role`, `recipient_role`).
    pub fn from_role(role: &str) -> Option<Group> {
        match role.trim().to_ascii_lowercase().as_str() {
            "ciso" => Some(Group::Ciso),
            "dataskyddsombud" | "dpo" => Some(Group::Dataskyddsombud),
            "ledningsgrupp" => Some(Group::Ledningsgrupp),
            "kommunstyrelsen" => Some(Group::Kommunstyrelsen),
            _ => None,
        }
    }
}

/// What a notice is about, beyond its rule: what the e-mail needs to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Plain,
    Escalation {
        escalation_event_id: Uuid,
    },
    AckReminder {
        escalation_event_id: Uuid,
        escalated_at: DateTime<Utc>,
    },
    Deadline {
        kind: FilingKind,
        due: DateTime<Utc>,
        overdue: bool,
    },
    Measure {
        measure_id: Uuid,
    },
    TriageOverdue {
        due: DateTime<Utc>,
    },
    /// Made handläggare (`deputy` false) or ersättare.
    Assigned {
        deputy: bool,
    },
    /// The comment at `index` in the deviation's comments.
    ReporterComment {
        index: usize,
    },
    Nis2 {
        early_warning_due: DateTime<Utc>,
        notification_due: Option<DateTime<Utc>>,
        early_warning_filed: bool,
    },
    /// The e-mail is built from the issued report when it is sent (not while folding).
    AnnualReport(Box<IssuedReport>),
    PolicyReview(Box<PolicyReviewReminderDue>),
    Quarantine(Box<QuarantinedEmail>),
}

/// What the CISO is told about a quarantined e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedEmail {
    pub reason_sv: String,
    pub size: u64,
    pub from: Option<String>,
    pub subject: Option<String>,
    pub message_id: Option<String>,
    pub received_at: DateTime<Utc>,
}

/// One e-mail a rule calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// UUIDv5 of (trigger, rule and slot, recipient): the same notice always gets the same
    /// id, across restarts, and so the same Message-ID.
    pub id: Uuid,
    /// The deviation it is about; none for the annual report, the policy reminder and
    /// quarantined e-mail.
    pub deviation_id: Option<Uuid>,
    pub rule: Rule,
    pub group: Group,
    pub recipient: String,
    /// The event that called for it (none for clock-driven reminders).
    pub trigger_event_id: Option<Uuid>,
    /// From when it should go out; give-up is measured from here.
    pub due_at: DateTime<Utc>,
    pub subject: Subject,
}

impl Notice {
    /// A rule fired for a group with no address: nothing can be sent until one is added.
    pub fn is_owed(&self) -> bool {
        self.recipient.is_empty()
    }
}

/// The id of a notice. Addresses compare case-insensitively, so the id does too.
pub fn notice_id(trigger: Uuid, rule_and_slot: &str, recipient: &str) -> Uuid {
    let name = format!("{rule_and_slot}\0{}", recipient.trim().to_lowercase());
    Uuid::new_v5(&trigger, name.as_bytes())
}

/// An upgrade to major: the escalation e-mails, their acknowledgements and reminder hang
/// off this event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EscalationRound {
    pub event_id: Uuid,
    pub at: DateTime<Utc>,
}

/// The configuration the rules need, in the form they need it.
#[derive(Debug, Clone)]
pub struct Rules {
    pub ciso: Vec<String>,
    pub dataskyddsombud: Vec<String>,
    pub ledningsgrupp: Vec<String>,
    pub kommunstyrelsen: Vec<String>,
    pub kontakt: std::collections::BTreeMap<String, Vec<String>>,
    pub board_includes_description: bool,
    pub ack_reminder_after: Option<Duration>,
    pub deadline_before: Option<Duration>,
    pub overdue_repeat: Option<Duration>,
    pub measure_hour: u32,
    pub measure_repeat: Option<Duration>,
    pub give_up_after: Duration,
    /// Lower-cased domains whose reporters are mailed a receipt (`receipt_domains`).
    pub receipt_domains: Vec<String>,
    /// Working days to the triage deadline; 0: none.
    pub triage_days: u32,
}

/// The domains receipts may be mailed to: `mail.receipt_domains`, or the domain of
/// `mail.from` when that is empty. `*` stands for any.
pub fn receipt_domains(c: &Config) -> Vec<String> {
    let listed: Vec<String> = c
        .mail
        .receipt_domains
        .iter()
        .map(|d| d.trim().trim_start_matches('@').to_ascii_lowercase())
        .filter(|d| !d.is_empty())
        .collect();
    if !listed.is_empty() {
        return listed;
    }
    c.mail
        .from
        .rsplit_once('@')
        .map(|(_, d)| d.trim().trim_end_matches('>').to_ascii_lowercase())
        .filter(|d| !d.is_empty())
        .into_iter()
        .collect()
}

/// May a receipt go to `email`? Its domain is one of `domains` or below one.
pub fn may_receive_receipt(domains: &[String], email: &str) -> bool {
    let Some((_, domain)) = email.rsplit_once('@') else {
        return false;
    };
    let domain = domain.to_ascii_lowercase();
    domains
        .iter()
        .any(|d| d == "*" || *d == domain || domain.ends_with(&format!(".{d}")))
}

fn positive(d: Duration) -> Option<Duration> {
    (d > Duration::zero()).then_some(d)
}

/// Addresses in configuration order, without repeats (case-insensitive).
fn unique(list: &[String]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    list.iter()
        .map(|a| a.trim().to_string())
        .filter(|a| seen.insert(a.to_lowercase()))
        .collect()
}

impl Rules {
    pub fn from_config(c: &Config) -> Self {
        let n = &c.notifications;
        let r = &c.recipients;
        // Validated to at most a year; saturate rather than panic if called unvalidated.
        let hours = |h: u64| {
            i64::try_from(h)
                .ok()
                .and_then(Duration::try_hours)
                .unwrap_or(Duration::days(366))
        };
        Self {
            ciso: unique(&r.ciso),
            dataskyddsombud: unique(&r.dataskyddsombud),
            ledningsgrupp: unique(&r.ledningsgrupp),
            kommunstyrelsen: unique(&r.kommunstyrelsen),
            kontakt: r
                .kontakt
                .iter()
                .map(|(k, v)| (k.clone(), unique(v)))
                .collect(),
            board_includes_description: n.board_includes_description,
            ack_reminder_after: positive(hours(n.ack_reminder_after_h)),
            deadline_before: positive(hours(n.deadline_reminder_before_h)),
            overdue_repeat: positive(hours(n.overdue_repeat_h)),
            measure_hour: n.measure_reminder_hour.min(23),
            measure_repeat: positive(hours(n.measure_repeat_days.saturating_mul(24))),
            give_up_after: hours(n.give_up_after_h),
            receipt_domains: receipt_domains(c),
            triage_days: n.triage_working_days,
        }
    }

    /// Takes the recipient lists from their stream instead of the configuration.
    pub fn set_lists(&mut self, r: &RecipientLists) {
        self.ciso = unique(&r.ciso);
        self.dataskyddsombud = unique(&r.dataskyddsombud);
        self.ledningsgrupp = unique(&r.ledningsgrupp);
        self.kommunstyrelsen = unique(&r.kommunstyrelsen);
        self.kontakt = r
            .kontakt
            .iter()
            .map(|(k, v)| (k.clone(), unique(v)))
            .collect();
    }

    /// The lists as the rules hold them.
    pub fn lists(&self) -> RecipientLists {
        RecipientLists {
            ciso: self.ciso.clone(),
            dataskyddsombud: self.dataskyddsombud.clone(),
            ledningsgrupp: self.ledningsgrupp.clone(),
            kommunstyrelsen: self.kommunstyrelsen.clone(),
            kontakt: self.kontakt.clone(),
        }
    }

    /// The addresses of a group (`sector` picks the kontakt list).
    pub fn members(&self, group: Group, sector: Option<&str>) -> Vec<String> {
        match group {
            Group::Ciso => self.ciso.clone(),
            Group::Dataskyddsombud => self.dataskyddsombud.clone(),
            Group::Ledningsgrupp => self.ledningsgrupp.clone(),
            Group::Kommunstyrelsen => self.kommunstyrelsen.clone(),
            Group::Kontakt => sector
                .and_then(|s| self.kontakt.get(s))
                .cloned()
                .unwrap_or_default(),
            Group::Reporter | Group::MeasureOwner | Group::Handler => Vec::new(),
        }
    }

    /// Who is reminded of a statutory deadline: the DPO tracks the GDPR clock, the CISO
    /// owns every filing.
    fn deadline_groups(kind: FilingKind) -> &'static [Group] {
        match kind {
            FilingKind::Gdpr => &[Group::Dataskyddsombud, Group::Ciso],
            _ => &[Group::Ciso],
        }
    }
}

/// Adds one notice per address, skipping addresses already addressed for this trigger and
/// rule (a person in two groups gets one e-mail).
fn push_for(
    out: &mut Vec<Notice>,
    base: &Notice,
    rule_and_slot: &str,
    trigger: Uuid,
    group: Group,
    recipients: &[String],
) {
    // New reports and quarantined e-mail wait in a queue of their own (the register, the
    // quarantine page) that the missing-recipients banner points at; what the policy
    // sends and nobody would otherwise see (escalation, GDPR/NIS2 alerts, the annual
    // report, the policy reminder) is owed.
    let queued = matches!(base.rule, Rule::Triage | Rule::IntakeQuarantine);
    if recipients.is_empty() && group.owed_when_empty() && !queued {
        // Nobody to send to: a placeholder the outbox keeps as owed (see `Notice::is_owed`).
        let id = notice_id(trigger, rule_and_slot, &format!("group:{group:?}"));
        if !out.iter().any(|n| n.id == id) {
            out.push(Notice {
                id,
                group,
                recipient: String::new(),
                ..base.clone()
            });
        }
        return;
    }
    for r in recipients {
        let id = notice_id(trigger, rule_and_slot, r);
        if out.iter().any(|n| n.id == id) {
            continue;
        }
        out.push(Notice {
            id,
            group,
            recipient: r.clone(),
            ..base.clone()
        });
    }
}

fn is_breach(b: Option<PersonalDataBreach>) -> bool {
    matches!(
        b,
        Some(PersonalDataBreach::Yes | PersonalDataBreach::Investigating)
    )
}

/// The e-mails one deviation event calls for. `prev` is the state before the event, `next`
/// after it; `event_id`/`at` are the stored record's.
pub fn on_event(
    rules: &Rules,
    prev: Option<&Deviation>,
    next: &Deviation,
    event: &DeviationEvent,
    event_id: Uuid,
    at: DateTime<Utc>,
) -> Vec<Notice> {
    let mut out = Vec::new();
    let base = |rule: Rule, subject: Subject| Notice {
        id: Uuid::nil(),
        deviation_id: Some(next.id),
        rule,
        group: Group::Ciso,
        recipient: String::new(),
        trigger_event_id: Some(event_id),
        due_at: at,
        subject,
    };
    match event {
        DeviationEvent::Reported(r) if prev.is_none() => {
            let b = base(Rule::Triage, Subject::Plain);
            for g in [Group::Ciso, Group::Kontakt] {
                let members = rules.members(g, r.sector.as_deref());
                push_for(&mut out, &b, Rule::Triage.key(), event_id, g, &members);
            }
            // Only to the municipality's own domains: otherwise the public form would be
            // a relay for any text to any address from the municipality's sender.
            if let Some(rep) = r
                .reporter
                .as_ref()
                .filter(|rep| may_receive_receipt(&rules.receipt_domains, rep.email.as_str()))
            {
                let b = base(Rule::Receipt, Subject::Plain);
                let to = [rep.email.as_str().to_string()];
                push_for(
                    &mut out,
                    &b,
                    Rule::Receipt.key(),
                    event_id,
                    Group::Reporter,
                    &to,
                );
            }
        }
        DeviationEvent::Classified(c) => {
            let was = prev.and_then(|p| p.severity);
            // Once per upgrade: the first major classification, or up from minor. Editing a
            // major classification (aspects, rationale …) is not news to the board.
            if c.severity == Severity::Major && was != Some(Severity::Major) {
                let b = base(
                    Rule::Escalation,
                    Subject::Escalation {
                        escalation_event_id: event_id,
                    },
                );
                for g in Group::BOARD {
                    let members = rules.members(g, None);
                    push_for(&mut out, &b, Rule::Escalation.key(), event_id, g, &members);
                }
            }
            // Once per deviation: the first classification as significant starts the
            // 24-hour clock the CISO must act on; later edits are not news.
            let was_significant = prev.is_some_and(|p| {
                p.classifications
                    .iter()
                    .any(|e| e.classification.nis2_significant)
            });
            if c.nis2_significant && !was_significant {
                let deadline = |kind| next.deadlines.iter().find(|d| d.kind == kind);
                let early = deadline(FilingKind::Nis2EarlyWarning);
                let b = base(
                    Rule::Nis2Alert,
                    Subject::Nis2 {
                        early_warning_due: early
                            .map_or(next.discovered_at + Duration::hours(24), |d| d.due),
                        notification_due: deadline(FilingKind::Nis2Notification).map(|d| d.due),
                        early_warning_filed: early.is_some_and(|d| d.settled_at.is_some()),
                    },
                );
                let members = rules.members(Group::Ciso, None);
                push_for(
                    &mut out,
                    &b,
                    Rule::Nis2Alert.key(),
                    event_id,
                    Group::Ciso,
                    &members,
                );
            }
            if is_breach(Some(c.personal_data_breach))
                && !is_breach(prev.and_then(|p| p.personal_data_breach))
            {
                let b = base(Rule::GdprAlert, Subject::Plain);
                let members = rules.members(Group::Dataskyddsombud, None);
                push_for(
                    &mut out,
                    &b,
                    Rule::GdprAlert.key(),
                    event_id,
                    Group::Dataskyddsombud,
                    &members,
                );
            }
        }
        DeviationEvent::CommentAdded(c) if c.to_reporter && !c.from_reporter => {
            if let (Some(rep), Some(index)) = (&next.reporter, next.comments.len().checked_sub(1)) {
                let b = base(Rule::ReporterComment, Subject::ReporterComment { index });
                let to = [rep.email.as_str().to_string()];
                push_for(
                    &mut out,
                    &b,
                    Rule::ReporterComment.key(),
                    event_id,
                    Group::Reporter,
                    &to,
                );
            }
        }
        DeviationEvent::HandlersAssigned(h) => {
            for (who, was, deputy) in [
                (&h.owner, prev.and_then(|p| p.owner.as_ref()), false),
                (&h.deputy, prev.and_then(|p| p.deputy.as_ref()), true),
            ] {
                if let Some(a) = who.as_ref().filter(|a| Some(*a) != was) {
                    let b = base(Rule::Assigned, Subject::Assigned { deputy });
                    let to = [a.clone()];
                    let key = format!(
                        "{}:{}",
                        Rule::Assigned.key(),
                        if deputy { "deputy" } else { "owner" }
                    );
                    push_for(&mut out, &b, &key, event_id, Group::Handler, &to);
                }
            }
        }
        DeviationEvent::Closed(_) => {
            if let Some(rep) = &next.reporter {
                let b = base(Rule::Closed, Subject::Plain);
                let to = [rep.email.as_str().to_string()];
                push_for(
                    &mut out,
                    &b,
                    Rule::Closed.key(),
                    event_id,
                    Group::Reporter,
                    &to,
                );
            }
        }
        _ => {}
    }
    out
}

/// A notice about no deviation, triggered by event `event_id` stored at `at`.
fn general(rule: Rule, subject: Subject, event_id: Uuid, at: DateTime<Utc>) -> Notice {
    Notice {
        id: Uuid::nil(),
        deviation_id: None,
        rule,
        group: Group::Ciso,
        recipient: String::new(),
        trigger_event_id: Some(event_id),
        due_at: at,
        subject,
    }
}

/// An issued annual report (first edition or a re-issue) goes to kommunstyrelsen and the
/// CISO; someone in both gets one e-mail.
pub fn on_annual_report(rules: &Rules, issue: &IssuedReport) -> Vec<Notice> {
    let mut out = Vec::new();
    let b = general(
        Rule::AnnualReport,
        Subject::AnnualReport(Box::new(issue.clone())),
        issue.id,
        issue.at,
    );
    for g in [Group::Kommunstyrelsen, Group::Ciso] {
        let members = rules.members(g, None);
        push_for(
            &mut out,
            &b,
            Rule::AnnualReport.key(),
            issue.id,
            g,
            &members,
        );
    }
    out
}

/// A policy review reminder the scheduler recorded goes to the role it names (the CISO;
/// an unknown role falls back to the CISO rather than to nobody).
pub fn on_policy_review(
    rules: &Rules,
    reminder: &PolicyReviewReminderDue,
    event_id: Uuid,
    at: DateTime<Utc>,
) -> Vec<Notice> {
    let mut out = Vec::new();
    let group = Group::from_role(&reminder.recipient_role).unwrap_or(Group::Ciso);
    let b = general(
        Rule::PolicyReviewReminder,
        Subject::PolicyReview(Box::new(reminder.clone())),
        event_id,
        at,
    );
    let members = rules.members(group, None);
    push_for(
        &mut out,
        &b,
        Rule::PolicyReviewReminder.key(),
        event_id,
        group,
        &members,
    );
    out
}

/// A quarantined e-mail is reported to the role intake names (the CISO).
pub fn on_quarantine(
    rules: &Rules,
    q: &EmailQuarantined,
    event_id: Uuid,
    at: DateTime<Utc>,
) -> Vec<Notice> {
    let mut out = Vec::new();
    let group = Group::from_role(&q.notify_role).unwrap_or(Group::Ciso);
    let b = general(
        Rule::IntakeQuarantine,
        Subject::Quarantine(Box::new(QuarantinedEmail {
            reason_sv: q.reason_sv.clone(),
            size: q.message.raw_size,
            from: q.message.from.clone(),
            subject: q.message.subject.clone(),
            message_id: q.message.message_id.clone(),
            received_at: at,
        })),
        event_id,
        at,
    );
    let members = rules.members(group, None);
    push_for(
        &mut out,
        &b,
        Rule::IntakeQuarantine.key(),
        event_id,
        group,
        &members,
    );
    out
}

/// Which reminder of a series is current at `now`: the early one from `before`, the first
/// overdue one at `start`, then one every `repeat`. Only the latest slot is ever pending,
/// so a reminder missed (avvik down, SMTP down) is replaced by the next, not sent in a burst.
fn current_slot(
    now: DateTime<Utc>,
    before: Option<DateTime<Utc>>,
    start: DateTime<Utc>,
    repeat: Option<Duration>,
) -> Option<(String, DateTime<Utc>, bool)> {
    if now >= start {
        let k = match repeat {
            Some(r) if r > Duration::zero() => {
                let elapsed = (now - start).num_seconds();
                elapsed / r.num_seconds().max(1)
            }
            _ => 0,
        };
        let at = start + Duration::seconds(k.saturating_mul(repeat.map_or(0, |r| r.num_seconds())));
        return Some((format!("overdue-{k}"), at, true));
    }
    match before {
        Some(b) if now >= b => Some(("before".to_string(), b, false)),
        _ => None,
    }
}

/// When an open measure's owner is first reminded: `hour` o'clock Stockholm time on the
/// day after its due date (chrono-tz resolves the DST gap and overlap).
pub fn measure_overdue_at(due: chrono::NaiveDate, hour: u32) -> Option<DateTime<Utc>> {
    let day = due.succ_opt()?;
    let local = day.and_time(NaiveTime::from_hms_opt(hour.min(23), 0, 0)?);
    Stockholm
        .from_local_datetime(&local)
        .earliest()
        .or_else(|| {
            Stockholm
                .from_local_datetime(&(local + Duration::hours(1)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
}

/// The clock-driven e-mails a deviation calls for at `now`: acknowledgement reminders,
/// statutory-deadline reminders, overdue measures. `acked(group)` tells whether anyone in
/// `group` acknowledged `escalation`.
pub fn reminders(
    rules: &Rules,
    d: &Deviation,
    escalation: Option<&EscalationRound>,
    acked: impl Fn(Group) -> bool,
    now: DateTime<Utc>,
) -> Vec<Notice> {
    let mut out = Vec::new();
    let base = |rule: Rule, due_at, trigger, subject| Notice {
        id: Uuid::nil(),
        deviation_id: Some(d.id),
        rule,
        group: Group::Ciso,
        recipient: String::new(),
        trigger_event_id: trigger,
        due_at,
        subject,
    };
    if let (Some(after), Some(round), Some(Severity::Major)) =
        (rules.ack_reminder_after, escalation, d.severity)
    {
        let due = round.at + after;
        if now >= due {
            let b = base(
                Rule::AckReminder,
                due,
                Some(round.event_id),
                Subject::AckReminder {
                    escalation_event_id: round.event_id,
                    escalated_at: round.at,
                },
            );
            for g in Group::BOARD {
                if !acked(g) {
                    let members = rules.members(g, None);
                    push_for(
                        &mut out,
                        &b,
                        Rule::AckReminder.key(),
                        round.event_id,
                        g,
                        &members,
                    );
                }
            }
        }
    }
    for dl in d.deadlines.iter().filter(|dl| dl.settled_at.is_none()) {
        let before = rules.deadline_before.map(|b| dl.due - b);
        let Some((slot, at, overdue)) = current_slot(now, before, dl.due, rules.overdue_repeat)
        else {
            continue;
        };
        let kind = serde_json::to_value(dl.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        // The due time is part of the key: if it moves (NIS2 final report follows the
        // notification filing), the reminders for the new time are new notices.
        let key = format!(
            "{}:{kind}:{}:{slot}",
            Rule::DeadlineReminder.key(),
            dl.due.timestamp()
        );
        let b = base(
            Rule::DeadlineReminder,
            at,
            None,
            Subject::Deadline {
                kind: dl.kind,
                due: dl.due,
                overdue,
            },
        );
        for g in Rules::deadline_groups(dl.kind) {
            let members = rules.members(*g, None);
            push_for(&mut out, &b, &key, d.id, *g, &members);
        }
    }
    if let Some(t) = crate::domain::workdays::triage(d, rules.triage_days, now) {
        let daily = Some(Duration::days(1));
        if let (false, Some((slot, at, _))) = (t.done, current_slot(now, None, t.due, daily)) {
            let key = format!("{}:{}:{slot}", Rule::TriageOverdue.key(), t.due.timestamp());
            let b = base(
                Rule::TriageOverdue,
                at,
                None,
                Subject::TriageOverdue { due: t.due },
            );
            let handlers: Vec<String> = [&d.owner, &d.deputy]
                .into_iter()
                .flatten()
                .cloned()
                .collect();
            if handlers.is_empty() {
                for g in [Group::Ciso, Group::Kontakt] {
                    let members = rules.members(g, d.sector.as_deref());
                    push_for(&mut out, &b, &key, d.id, g, &members);
                }
            } else {
                push_for(&mut out, &b, &key, d.id, Group::Handler, &handlers);
            }
        }
    }
    if d.status != Status::Closed {
        for m in d.measures.iter().filter(|m| m.completed_at.is_none()) {
            // The owner is free text; only an address can be reminded.
            let Some(owner) = EmailAddress::parse(&m.owner) else {
                continue;
            };
            let Some(start) = measure_overdue_at(m.due, rules.measure_hour) else {
                continue;
            };
            let Some((slot, at, _)) = current_slot(now, None, start, rules.measure_repeat) else {
                continue;
            };
            let key = format!("{}:{}:{}:{slot}", Rule::MeasureOverdue.key(), m.id, m.due);
            let b = base(
                Rule::MeasureOverdue,
                at,
                None,
                Subject::Measure { measure_id: m.id },
            );
            let to = [owner.as_str().to_string()];
            push_for(&mut out, &b, &key, d.id, Group::MeasureOwner, &to);
        }
    }
    // A reminder is worked out again every round, so one for an empty list is not owed:
    // it goes out once the list has an address.
    out.retain(|n| !n.is_owed());
    out
}

/// Can this deviation still call for a reminder? Deviations that cannot are not looked at
/// by the delivery rounds.
pub fn may_remind(rules: &Rules, d: &Deviation, unacked_escalation: bool) -> bool {
    d.deadlines.iter().any(|dl| dl.settled_at.is_none())
        || crate::domain::workdays::triage(d, rules.triage_days, d.updated_at)
            .is_some_and(|t| !t.done)
        || (d.status != Status::Closed
            && d.measures
                .iter()
                .any(|m| m.completed_at.is_none() && EmailAddress::parse(&m.owner).is_some()))
        || (rules.ack_reminder_after.is_some()
            && d.severity == Some(Severity::Major)
            && unacked_escalation)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn measure_reminders_follow_stockholm_wall_clock_across_dst() {
        // 08:00 CET on 2026-03-28 is 07:00 UTC; 08:00 CEST on 2026-03-30 is 06:00 UTC.
        let d = chrono::NaiveDate::from_ymd_opt(2026, 3, 27).unwrap();
        assert_eq!(measure_overdue_at(d, 8), Some(t("2026-03-28T07:00:00Z")));
        let d = chrono::NaiveDate::from_ymd_opt(2026, 3, 29).unwrap();
        assert_eq!(measure_overdue_at(d, 8), Some(t("2026-03-30T06:00:00Z")));
        // 02:00 does not exist on 2026-03-29 in Stockholm: the next valid hour is taken.
        let d = chrono::NaiveDate::from_ymd_opt(2026, 3, 28).unwrap();
        assert_eq!(measure_overdue_at(d, 2), Some(t("2026-03-29T01:00:00Z")));
    }

    #[test]
    fn only_the_latest_slot_is_current() {
        let start = t("2026-03-30T09:00:00Z");
        let before = Some(t("2026-03-29T21:00:00Z"));
        let day = Some(Duration::hours(24));
        assert_eq!(
            current_slot(t("2026-03-29T20:59:59Z"), before, start, day),
            None
        );
        assert_eq!(
            current_slot(t("2026-03-29T21:00:00Z"), before, start, day),
            Some(("before".into(), t("2026-03-29T21:00:00Z"), false))
        );
        assert_eq!(
            current_slot(t("2026-03-30T09:00:00Z"), before, start, day),
            Some(("overdue-0".into(), start, true))
        );
        assert_eq!(
            current_slot(t("2026-04-01T10:00:00Z"), before, start, day),
            Some(("overdue-2".into(), t("2026-04-01T09:00:00Z"), true))
        );
        assert_eq!(
            current_slot(t("2026-04-01T10:00:00Z"), before, start, None),
            Some(("overdue-0".into(), start, true))
        );
    }

    #[test]
    fn the_annual_report_goes_once_to_each_person_in_kommunstyrelsen_and_the_ciso() {
        let mut c = Config::defaults().unwrap();
        c.recipients.kommunstyrelsen =
            vec!["ks@kommunen.example".into(), "Ciso@Kommunen.example".into()];
        c.recipients.ciso = vec!["ciso@kommunen.example".into()];
        let rules = Rules::from_config(&c);
        let issue = IssuedReport {
            seq: 42,
            id: Uuid::now_v7(),
            at: t("2027-01-10T06:00:00Z"),
            actor: "system:scheduler".into(),
            event: crate::report::AnnualReportIssued {
                year: 2026,
                as_of_seq: 41,
                head_hash: "00".repeat(32),
                content_hash: "11".repeat(32),
                report_schema: 1,
                edition: 1,
                reason: None,
                reissue_of: None,
                trigger: crate::report::IssueTrigger::Scheduled,
                report: None,
            },
        };
        let notices = on_annual_report(&rules, &issue);
        let to: Vec<(&str, Group)> = notices
            .iter()
            .map(|n| (n.recipient.as_str(), n.group))
            .collect();
        assert_eq!(
            to,
            [
                ("ks@kommunen.example", Group::Kommunstyrelsen),
                ("Ciso@Kommunen.example", Group::Kommunstyrelsen)
            ]
        );
        assert!(notices.iter().all(|n| n.deviation_id.is_none()
            && n.trigger_event_id == Some(issue.id)
            && n.due_at == issue.at));
        assert_eq!(
            notices,
            on_annual_report(&rules, &issue),
            "replays give the same ids"
        );
    }

    #[test]
    fn roles_in_events_name_groups() {
        assert_eq!(Group::from_role("ciso"), Some(Group::Ciso));
        assert_eq!(Group::from_role(" CISO "), Some(Group::Ciso));
        assert_eq!(
            Group::from_role("kommunstyrelsen"),
            Some(Group::Kommunstyrelsen)
        );
        assert_eq!(Group::from_role("vaktmästare"), None);
    }

    #[test]
    fn ids_are_stable_and_case_insensitive_in_the_address() {
        let e = Uuid::now_v7();
        assert_eq!(
            notice_id(e, "escalation", "Anna@Kommunen.example"),
            notice_id(e, "escalation", "anna@kommunen.example ")
        );
        assert_ne!(
            notice_id(e, "escalation", "anna@kommunen.example"),
            notice_id(e, "triage", "anna@kommunen.example")
        );
    }
}
