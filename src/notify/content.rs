//! From a notice and the deviation (or event) it is about to the words of the e-mail:
//! labels, Stockholm times, links, and what each audience may see. The annual report's
//! e-mail is the report module's (`report::render_email`); the worker builds it.

use avvik_notifiers::time::{date, stockholm};
use avvik_notifiers::{one_line, size_sv, AspectLine, DeviationFacts, NoticeContent};

use super::links;
use super::rules::{Group, Notice, QuarantinedEmail, Rule, Subject};
use crate::domain::{labels, Deviation, FilingKind};
use crate::scheduler::{render_policy_reminder_email, PolicyReviewReminderDue};
use crate::secret::Secret;

/// What building content needs besides the notice.
pub struct ContentContext<'a> {
    pub base_url: &'a str,
    pub secret: &'a Secret,
    pub board_includes_description: bool,
}

/// A filing's name in the middle of a sentence.
fn filing_label(kind: FilingKind) -> String {
    labels::filing_kind_in_sentence(kind)
}

/// The facts block. `description` is the caller's decision: the board sees it only when
/// the installation allows it.
pub fn facts(d: &Deviation, base_url: &str, description: bool) -> DeviationFacts {
    let aspects = labels::ASPECTS
        .iter()
        .zip(labels::aspect_levels(&d.aspects))
        .filter_map(|((_, name, _), level)| {
            level.map(|l| AspectLine {
                name: name.to_string(),
                level: l.get(),
                label: labels::level(l).to_string(),
            })
        })
        .collect();
    DeviationFacts {
        reference: d.reference.to_string(),
        title: d.title.clone(),
        severity: d.severity.map(|s| labels::severity(s).to_string()),
        category: d.category.clone(),
        aspects,
        sector: d.sector.clone(),
        asset: d.asset.clone(),
        personal_data_breach: d
            .personal_data_breach
            .map(|b| labels::personal_data_breach(b).to_string()),
        nis2_significant: d.nis2_significant.map(|n| labels::yes_no(n).to_string()),
        occurred_at: d.occurred_at.map(stockholm),
        discovered_at: stockholm(d.discovered_at),
        reported_at: stockholm(d.reported_at),
        classified_at: d.classified_at.map(stockholm),
        description: description.then(|| d.description.clone()),
        link: links::staff_link(base_url, d.reference),
    }
}

/// The e-mail for one notice; `d` is the deviation it reports, if it is about one.
pub fn content(
    n: &Notice,
    d: Option<&Deviation>,
    cx: &ContentContext<'_>,
) -> Result<NoticeContent, String> {
    match (&n.subject, d) {
        (Subject::PolicyReview(r), _) => Ok(policy_review(r)),
        (Subject::Quarantine(q), _) => Ok(quarantine(q, cx.base_url)),
        (Subject::AnnualReport(_), _) => {
            Err("the annual report e-mail is rendered from the report itself".into())
        }
        (_, Some(d)) => deviation_content(n, d, cx),
        (_, None) => Err(format!(
            "a `{}` e-mail needs the deviation it is about",
            n.rule.key()
        )),
    }
}

/// The scheduler words the reminder; the paragraphs become the text and HTML parts.
fn policy_review(r: &PolicyReviewReminderDue) -> NoticeContent {
    let (subject, text) = render_policy_reminder_email(r);
    NoticeContent::PolicyReviewReminder {
        subject,
        paragraphs: text
            .split("\n\n")
            .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|p| !p.is_empty())
            .collect(),
    }
}

/// Sender and subject are whatever the message said: one line each, bounded.
fn quarantine(q: &QuarantinedEmail, base_url: &str) -> NoticeContent {
    let untrusted = |s: &Option<String>| {
        s.as_deref()
            .map(|s| one_line(s, 200))
            .filter(|s| !s.is_empty())
    };
    NoticeContent::IntakeQuarantine {
        reason: q.reason_sv.clone(),
        size: size_sv(q.size),
        from: untrusted(&q.from),
        subject: untrusted(&q.subject),
        message_id: untrusted(&q.message_id),
        received_at: stockholm(q.received_at),
        link: links::quarantine_link(base_url),
    }
}

fn deviation_content(
    n: &Notice,
    d: &Deviation,
    cx: &ContentContext<'_>,
) -> Result<NoticeContent, String> {
    let board = matches!(n.group, Group::Ledningsgrupp | Group::Kommunstyrelsen);
    let internal_facts = || facts(d, cx.base_url, true);
    let board_facts = || facts(d, cx.base_url, cx.board_includes_description || !board);
    let status_link = || links::status_link(cx.base_url, cx.secret, d.id);
    Ok(match (&n.rule, &n.subject) {
        (Rule::Triage, _) => NoticeContent::Triage {
            facts: internal_facts(),
            reporter: d
                .reporter
                .as_ref()
                .map(|r| format!("{} <{}>", r.name, r.email)),
            personal_data_suspected: d.personal_data_suspected,
        },
        (Rule::TriageOverdue, Subject::TriageOverdue { due }) => NoticeContent::TriageOverdue {
            facts: internal_facts(),
            due: stockholm(*due),
        },
        (Rule::Assigned, Subject::Assigned { deputy }) => NoticeContent::Assigned {
            facts: internal_facts(),
            role: if *deputy {
                "ersättare"
            } else {
                "handläggare"
            }
            .into(),
        },
        (Rule::Receipt, _) => NoticeContent::Receipt {
            reference: d.reference.to_string(),
            // The reporter's words, possibly anyone's: never a clickable link.
            title: avvik_notifiers::content::defang(&d.title),
            reported_at: stockholm(d.reported_at),
            status_link: status_link(),
        },
        (Rule::Escalation, _) => NoticeContent::Escalation {
            facts: board_facts(),
            group: n.group.label_sv().to_string(),
            // The link acknowledges this very e-mail: its id names deviation, round,
            // recipient and group.
            ack_link: links::ack_link(cx.base_url, cx.secret, n.id),
        },
        (
            Rule::AckReminder,
            Subject::AckReminder {
                escalation_event_id,
                escalated_at,
            },
        ) => NoticeContent::AckReminder {
            facts: board_facts(),
            group: n.group.label_sv().to_string(),
            // The reminder carries the link of the original escalation e-mail to the same
            // person, so either e-mail acknowledges the same thing, once.
            ack_link: links::ack_link(
                cx.base_url,
                cx.secret,
                super::rules::notice_id(*escalation_event_id, Rule::Escalation.key(), &n.recipient),
            ),
            escalated_at: stockholm(*escalated_at),
        },
        (Rule::GdprAlert, _) => NoticeContent::GdprAlert {
            facts: internal_facts(),
            due: stockholm(d.discovered_at + chrono::Duration::hours(72)),
        },
        (Rule::DeadlineReminder, Subject::Deadline { kind, due, overdue }) => {
            NoticeContent::DeadlineReminder {
                facts: internal_facts(),
                filing: filing_label(*kind),
                due: stockholm(*due),
                overdue: *overdue,
            }
        }
        (Rule::MeasureOverdue, Subject::Measure { measure_id }) => {
            let m = d.measure(*measure_id);
            NoticeContent::MeasureOverdue {
                reference: d.reference.to_string(),
                title: d.title.clone(),
                measure: m.map(|m| m.description.clone()).unwrap_or_default(),
                due: m.map(|m| date(m.due)).unwrap_or_default(),
                link: links::staff_link(cx.base_url, d.reference),
            }
        }
        (Rule::Closed, _) => NoticeContent::Closed {
            reference: d.reference.to_string(),
            title: d.title.clone(),
            status_link: status_link(),
        },
        (Rule::ReporterComment, Subject::ReporterComment { index }) => {
            let comment = d
                .comments
                .get(*index)
                .ok_or_else(|| format!("comment {index} of {} is missing", d.reference))?;
            NoticeContent::ReporterComment {
                reference: d.reference.to_string(),
                title: d.title.clone(),
                comment: comment.text.clone(),
                status_link: status_link(),
            }
        }
        (
            Rule::Nis2Alert,
            Subject::Nis2 {
                early_warning_due,
                notification_due,
                early_warning_filed,
            },
        ) => NoticeContent::Nis2Alert {
            facts: internal_facts(),
            early_warning_due: stockholm(*early_warning_due),
            notification_due: notification_due.map(stockholm),
            // Classified after the 24 hours had run out (discovered long before).
            overdue: *early_warning_due <= n.due_at,
            early_warning_filed: *early_warning_filed,
        },
        // A rule paired with another rule's subject is never built by `rules`; fall back
        // to the facts an internal reader may see rather than fail the delivery. Only
        // internal readers get these rules, except the reporter's, which must not.
        (Rule::ReporterComment, _) => {
            return Err("a comment e-mail without its comment".into());
        }
        (
            Rule::AckReminder
            | Rule::DeadlineReminder
            | Rule::MeasureOverdue
            | Rule::Nis2Alert
            | Rule::AnnualReport
            | Rule::PolicyReviewReminder
            | Rule::IntakeQuarantine
            | Rule::TriageOverdue
            | Rule::Assigned,
            _,
        ) => NoticeContent::Triage {
            facts: board_facts(),
            reporter: None,
            personal_data_suspected: false,
        },
    })
}
