//! What a notice says: the facts it carries (already in words people read) and how they
//! become a subject, a plain-text part and an HTML part (askama, auto-escaped HTML).

use askama::Template;

/// One affected aspect with its consequence level, e.g. `Konfidentialitet: 3 – allvarlig`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AspectLine {
    pub name: String,
    pub level: u8,
    pub label: String,
}

/// Facts about a deviation a notice may show. The caller decides what is included: the
/// description is `None` in messages to the board unless the installation allows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviationFacts {
    pub reference: String,
    pub title: String,
    /// `större` / `mindre`.
    pub severity: Option<String>,
    pub category: Option<String>,
    pub aspects: Vec<AspectLine>,
    pub sector: Option<String>,
    pub asset: Option<String>,
    pub personal_data_breach: Option<String>,
    pub nis2_significant: Option<String>,
    pub occurred_at: Option<String>,
    pub discovered_at: String,
    pub reported_at: String,
    pub classified_at: Option<String>,
    pub description: Option<String>,
    /// The deviation's page for staff.
    pub link: String,
}

/// Every kind of e-mail avvik sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoticeContent {
    /// A new report, to the CISO and the sector's informationssäkerhetskontakt.
    Triage {
        facts: DeviationFacts,
        reporter: Option<String>,
        personal_data_suspected: bool,
    },
    /// To the reporter: we have your report, here is your private status link.
    Receipt {
        reference: String,
        title: String,
        reported_at: String,
        status_link: String,
    },
    /// A major deviation, to one member of ledningsgrupp or kommunstyrelsen.
    Escalation {
        facts: DeviationFacts,
        group: String,
        ack_link: String,
    },
    /// Nobody in the group acknowledged the escalation in time.
    AckReminder {
        facts: DeviationFacts,
        group: String,
        ack_link: String,
        escalated_at: String,
    },
    /// A (possible) personal-data breach, to the DPO, with the GDPR art. 33 deadline.
    GdprAlert { facts: DeviationFacts, due: String },
    /// A new deviation was not classified within its working days: to its handläggare
    /// (or the CISO and the sector's contact), once a day until it is.
    TriageOverdue { facts: DeviationFacts, due: String },
    /// To a staff member made handläggare or ersättare of a deviation.
    Assigned {
        facts: DeviationFacts,
        /// `handläggare` or `ersättare`.
        role: String,
    },
    /// A statutory filing is due soon, or overdue.
    DeadlineReminder {
        facts: DeviationFacts,
        filing: String,
        due: String,
        overdue: bool,
    },
    /// To a measure's owner: the measure is past its due date.
    MeasureOverdue {
        reference: String,
        title: String,
        measure: String,
        due: String,
        link: String,
    },
    /// To the reporter: the deviation was closed. The resolution is staff's text and is
    /// not mailed; the status page shows what the reporter may see.
    Closed {
        reference: String,
        title: String,
        status_link: String,
    },
    /// To the reporter: staff wrote something meant for them on their deviation.
    ReporterComment {
        reference: String,
        title: String,
        comment: String,
        status_link: String,
    },
    /// To the CISO: classified as a significant incident under NIS2, with the 24-hour
    /// early-warning deadline (and the 72-hour notification deadline, when known).
    Nis2Alert {
        facts: DeviationFacts,
        early_warning_due: String,
        notification_due: Option<String>,
        /// The early-warning deadline had already passed when it was classified.
        overdue: bool,
        /// An early warning is already recorded as filed.
        early_warning_filed: bool,
    },
    /// To the CISO: a message to the deviation address was quarantined for manual
    /// handling. Sender and subject are the message's own (untrusted) text.
    IntakeQuarantine {
        reason: String,
        size: String,
        from: Option<String>,
        subject: Option<String>,
        message_id: Option<String>,
        received_at: String,
        link: String,
    },
    /// To the CISO: review the information-security policy before it expires. The words
    /// are the scheduler's; the text is kept in paragraphs so the HTML part has them too.
    PolicyReviewReminder {
        subject: String,
        paragraphs: Vec<String>,
    },
    /// `avvik send-test-email`.
    Test { sent_at: String },
}

/// An image the HTML part shows with `<img src="cid:…">`: a `multipart/related` part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineImage {
    /// Without angle brackets.
    pub content_id: String,
    pub filename: String,
    /// A MIME type, e.g. `image/svg+xml`.
    pub content_type: String,
    pub body: Vec<u8>,
}

/// A rendered e-mail: subject, plain-text and HTML parts, and the images the HTML refers
/// to by Content-ID (none for the template notices).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
    pub images: Vec<InlineImage>,
}

#[derive(Debug, thiserror::Error)]
#[error("rendering the e-mail template failed: {0}")]
pub struct RenderError(#[from] askama::Error);

#[derive(Template)]
#[template(path = "mail/notice.txt")]
struct TextPart<'a> {
    content: &'a NoticeContent,
}

#[derive(Template)]
#[template(path = "mail/notice.html")]
struct HtmlPart<'a> {
    subject: &'a str,
    content: &'a NoticeContent,
}

/// Longest subject text taken from a title; mail clients cut long subjects anyway.
const TITLE_IN_SUBJECT: usize = 120;

/// A header-safe piece of a subject: no line breaks or control characters, bounded length.
pub fn one_line(s: &str, max_chars: usize) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let flat = flat.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max_chars {
        flat
    } else {
        let cut: String = flat.chars().take(max_chars).collect();
        format!("{}…", cut.trim_end())
    }
}

impl NoticeContent {
    /// The subject line; every message about a deviation starts with `[AVV-YYYY-NNNN]` so
    /// replies and mail filters can be sorted by reference.
    pub fn subject(&self) -> String {
        let t = |s: &str| one_line(s, TITLE_IN_SUBJECT);
        match self {
            NoticeContent::Triage { facts, .. } => format!(
                "[{}] Ny avvikelse att bedöma: {}",
                facts.reference,
                t(&facts.title)
            ),
            NoticeContent::Receipt { reference, .. } => {
                format!("[{reference}] Vi har tagit emot din rapport")
            }
            NoticeContent::Escalation { facts, .. } => {
                format!(
                    "[{}] Större avvikelse: {}",
                    facts.reference,
                    t(&facts.title)
                )
            }
            NoticeContent::AckReminder { facts, .. } => format!(
                "[{}] Påminnelse – kvittera större avvikelse: {}",
                facts.reference,
                t(&facts.title)
            ),
            NoticeContent::TriageOverdue { facts, due } => format!(
                "[{}] Försenad bedömning: {} (skulle ha klassats senast {due})",
                facts.reference,
                t(&facts.title)
            ),
            NoticeContent::Assigned { facts, role, .. } => format!(
                "[{}] Du är {role} för {}",
                facts.reference,
                t(&facts.title)
            ),
            NoticeContent::GdprAlert { facts, due } => format!(
                "[{}] Möjlig personuppgiftsincident – anmälan till IMY senast {due}",
                facts.reference
            ),
            NoticeContent::DeadlineReminder {
                facts,
                filing,
                due,
                overdue: false,
            } => format!("[{}] Påminnelse: {filing} senast {due}", facts.reference),
            NoticeContent::DeadlineReminder {
                facts,
                filing,
                due,
                overdue: true,
            } => format!(
                "[{}] Försenad: {filing}, fristen gick ut {due}",
                facts.reference
            ),
            NoticeContent::MeasureOverdue {
                reference, measure, ..
            } => format!("[{reference}] Försenad åtgärd: {}", t(measure)),
            NoticeContent::Closed { reference, .. } => {
                format!("[{reference}] Ditt ärende är avslutat")
            }
            NoticeContent::ReporterComment { reference, .. } => {
                format!("[{reference}] Nytt meddelande om ditt ärende")
            }
            NoticeContent::Nis2Alert {
                facts,
                early_warning_due,
                overdue: false,
                ..
            } => format!(
                "[{}] NIS2 betydande incident – tidig varning senast {early_warning_due}",
                facts.reference
            ),
            NoticeContent::Nis2Alert {
                facts,
                early_warning_due,
                overdue: true,
                ..
            } => format!(
                "[{}] NIS2 betydande incident – fristen för tidig varning gick ut {early_warning_due}",
                facts.reference
            ),
            NoticeContent::IntakeQuarantine { .. } => {
                "Ett e-postmeddelande kunde inte tas emot".to_string()
            }
            NoticeContent::PolicyReviewReminder { subject, .. } => subject.clone(),
            NoticeContent::Test { .. } => "Testmeddelande från avvik".to_string(),
        }
    }
}

/// Someone else's text made inert as a link: URL schemes and `www.` broken so that no
/// mail client turns them into something to click (`https://x` → `https[:]//x`).
pub fn defang(s: &str) -> String {
    let mut out = s.replace("://", "[:]//");
    for scheme in ["mailto:", "javascript:", "data:", "tel:"] {
        // Case-insensitive, without changing the rest of the text.
        let mut i = 0;
        while let Some(pos) = out[i..].to_ascii_lowercase().find(scheme) {
            let at = i + pos + scheme.len() - 1;
            out.replace_range(at..at + 1, "[:]");
            i = at + 3;
        }
    }
    let mut i = 0;
    while let Some(pos) = out[i..].to_ascii_lowercase().find("www.") {
        let at = i + pos + 3;
        out.replace_range(at..at + 1, "[.]");
        i = at + 3;
    }
    out
}

/// Renders subject, text and HTML. Templates are compiled in, so this fails only on a
/// formatting error inside askama.
pub fn render(content: &NoticeContent) -> Result<Rendered, RenderError> {
    let subject = one_line(&content.subject(), 400);
    let text = TextPart { content }.render()?;
    let html = HtmlPart {
        subject: &subject,
        content,
    }
    .render()?;
    Ok(Rendered {
        subject,
        text: tidy_text(&text),
        html,
        images: Vec::new(),
    })
}

/// A size in bytes as people read it: `2 048 byte`, `3,4 kB (3 482 byte)`.
pub fn size_sv(bytes: u64) -> String {
    let grouped = {
        let digits = bytes.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(' ');
            }
            out.push(c);
        }
        out
    };
    let scaled = |unit: f64, name: &str| {
        let v = format!("{:.1}", bytes as f64 / unit).replace('.', ",");
        format!("{v} {name} ({grouped} byte)")
    };
    match bytes {
        0..1024 => format!("{grouped} byte"),
        1024..1_048_576 => scaled(1024.0, "kB"),
        _ => scaled(1_048_576.0, "MB"),
    }
}

/// Template control lines leave stray blank lines; a text e-mail reads better with at
/// most one blank line in a row and a single final newline.
fn tidy_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank = 0;
    for line in s.trim().lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod defang_tests {
    use super::defang;

    #[test]
    fn links_are_broken() {
        assert_eq!(
            defang("Logga in på https://evil.example/x eller WWW.evil.example"),
            "Logga in på https[:]//evil.example/x eller WWW[.]evil.example"
        );
        assert_eq!(defang("MailTo:a@b.se"), "MailTo[:]a@b.se");
        assert_eq!(defang("vanlig rubrik, å ä ö"), "vanlig rubrik, å ä ö");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> DeviationFacts {
        DeviationFacts {
            reference: "AVV-2026-0042".into(),
            title: "Obehörig <script>alert(1)</script> åtkomst".into(),
            severity: Some("större".into()),
            category: Some("obehörig åtkomst".into()),
            aspects: vec![AspectLine {
                name: "Konfidentialitet".into(),
                level: 3,
                label: "allvarlig".into(),
            }],
            sector: Some("Socialtjänsten".into()),
            discovered_at: "2026-03-27 kl. 10:00".into(),
            reported_at: "2026-03-27 kl. 10:05".into(),
            link: "https://avvik.kommunen.se/staff/deviations/AVV-2026-0042".into(),
            ..DeviationFacts::default()
        }
    }

    #[test]
    fn escalation_has_reference_in_subject_and_escapes_html() {
        let r = render(&NoticeContent::Escalation {
            facts: facts(),
            group: "kommunstyrelsen".into(),
            ack_link: "https://avvik.kommunen.se/ack/x/y".into(),
        })
        .unwrap();
        assert_eq!(
            r.subject,
            "[AVV-2026-0042] Större avvikelse: Obehörig <script>alert(1)</script> åtkomst"
        );
        assert!(r.html.contains("<html lang=\"sv\">"));
        assert!(r.html.contains("&#60;script&#62;"), "{}", r.html);
        assert!(!r.html.contains("<script>"));
        assert!(r.text.contains("<script>"), "plain text is not escaped");
        assert!(
            r.text.contains("Konfidentialitet: 3 – allvarlig"),
            "{}",
            r.text
        );
        assert!(r.text.contains("https://avvik.kommunen.se/ack/x/y"));
        assert!(
            !r.text.contains("Beskrivning"),
            "no description unless given"
        );
        assert!(!r.text.contains("\n\n\n"));
    }

    #[test]
    fn every_kind_renders_in_swedish() {
        let f = facts();
        let all = [
            NoticeContent::Triage {
                facts: f.clone(),
                reporter: Some("Anna <anna@kommunen.se>".into()),
                personal_data_suspected: true,
            },
            NoticeContent::Receipt {
                reference: "AVV-2026-0042".into(),
                title: "t".into(),
                reported_at: "2026-03-27 kl. 10:05".into(),
                status_link: "https://a/status/abc".into(),
            },
            NoticeContent::AckReminder {
                facts: f.clone(),
                group: "ledningsgrupp".into(),
                ack_link: "https://a/ack".into(),
                escalated_at: "2026-03-27 kl. 11:00".into(),
            },
            NoticeContent::TriageOverdue {
                facts: f.clone(),
                due: "2026-04-08 kl. 24.00".into(),
            },
            NoticeContent::Assigned {
                facts: f.clone(),
                role: "handläggare".into(),
            },
            NoticeContent::GdprAlert {
                facts: f.clone(),
                due: "2026-03-30 kl. 11:00".into(),
            },
            NoticeContent::DeadlineReminder {
                facts: f.clone(),
                filing: "NIS2 tidig varning (24 h)".into(),
                due: "2026-03-28 kl. 10:00".into(),
                overdue: true,
            },
            NoticeContent::MeasureOverdue {
                reference: "AVV-2026-0042".into(),
                title: "t".into(),
                measure: "Byt lösenord\npå kontot".into(),
                due: "2026-03-28".into(),
                link: "https://a/x".into(),
            },
            NoticeContent::Closed {
                reference: "AVV-2026-0042".into(),
                title: "t".into(),
                status_link: "https://a/status/abc".into(),
            },
            NoticeContent::ReporterComment {
                reference: "AVV-2026-0042".into(),
                title: "t".into(),
                comment: "Kan du berätta mer?".into(),
                status_link: "https://a/status/abc".into(),
            },
            NoticeContent::Nis2Alert {
                facts: f.clone(),
                early_warning_due: "2026-03-28 kl. 10:00".into(),
                notification_due: Some("2026-03-30 kl. 11:00".into()),
                overdue: false,
                early_warning_filed: false,
            },
            NoticeContent::IntakeQuarantine {
                reason: "Meddelandet är för stort.".into(),
                size: size_sv(3_482),
                from: Some("bo@example.org".into()),
                subject: None,
                message_id: None,
                received_at: "2026-03-27 kl. 10:00".into(),
                link: "https://a/staff/intake/quarantine".into(),
            },
            NoticeContent::PolicyReviewReminder {
                subject: "Påminnelse".into(),
                paragraphs: vec!["Ett.".into(), "Två.".into()],
            },
            NoticeContent::Test {
                sent_at: "nu".into(),
            },
        ];
        for c in all {
            let r = render(&c).unwrap();
            assert!(!r.subject.contains('\n'), "{}", r.subject);
            assert!(
                r.text.starts_with("Hej!") || r.text.starts_with("Till "),
                "{}",
                r.text
            );
            assert!(r.text.contains("Tider anges i svensk tid."));
            assert!(r.html.contains("svensk tid"));
        }
    }

    #[test]
    fn sizes_read_as_swedish() {
        assert_eq!(size_sv(0), "0 byte");
        assert_eq!(size_sv(1023), "1 023 byte");
        assert_eq!(size_sv(3_482), "3,4 kB (3 482 byte)");
        assert_eq!(size_sv(26_214_400), "25,0 MB (26 214 400 byte)");
    }

    #[test]
    fn quarantine_and_nis2_notices_say_what_happened() {
        let r = render(&NoticeContent::IntakeQuarantine {
            reason: "Meddelandet är för stort (3000 byte, gränsen är 2048).".into(),
            size: size_sv(3000),
            from: Some("<b>bo</b>@example.org".into()),
            subject: Some("Stor bilaga".into()),
            message_id: Some("<x@example.org>".into()),
            received_at: "2026-03-27 kl. 10:00".into(),
            link: "https://a/staff/intake/quarantine".into(),
        })
        .unwrap();
        assert_eq!(r.subject, "Ett e-postmeddelande kunde inte tas emot");
        assert!(
            r.text.contains("Orsak:      Meddelandet är för stort"),
            "{}",
            r.text
        );
        assert!(
            r.text.contains("Storlek:    2,9 kB (3 000 byte)"),
            "{}",
            r.text
        );
        assert!(r.text.contains("Ämne:       Stor bilaga"), "{}", r.text);
        assert!(r.html.contains("&#60;b&#62;bo"), "{}", r.html);
        let mut c = NoticeContent::Nis2Alert {
            facts: facts(),
            early_warning_due: "2026-03-28 kl. 10:00".into(),
            notification_due: None,
            overdue: true,
            early_warning_filed: false,
        };
        let r = render(&c).unwrap();
        assert_eq!(
            r.subject,
            "[AVV-2026-0042] NIS2 betydande incident – fristen för tidig varning gick ut 2026-03-28 kl. 10:00"
        );
        assert!(
            r.text.contains("Fristen för den tidiga varningen gick ut"),
            "{}",
            r.text
        );
        if let NoticeContent::Nis2Alert { overdue, .. } = &mut c {
            *overdue = false;
        }
        let r = render(&c).unwrap();
        assert!(
            r.text
                .contains("Tidig varning senast: 2026-03-28 kl. 10:00"),
            "{}",
            r.text
        );
    }

    #[test]
    fn subjects_are_one_bounded_line() {
        assert_eq!(one_line("a\r\nb\tc", 10), "a b c");
        let long = "å".repeat(300);
        let s = one_line(&long, 120);
        assert_eq!(s.chars().count(), 121);
    }
}
