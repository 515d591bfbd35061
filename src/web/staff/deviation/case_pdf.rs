//! A deviation as a PDF case file: what its staff page shows (facts, description, clocks
//! and deadlines, measures, the timeline) and the classifications, decisions, filings and
//! comments one by one, with the configured secrecy marking on every page. Built from the
//! page itself, so the file never says more or less than the page would to the same user;
//! the forms and the e-mail notices are left out.

use chrono::{DateTime, Utc};

use super::super::timeline::actor_sv;
use super::{build_page, DeviationPage, PageInput};
use crate::auth::Principal;
use crate::domain::{labels, Deviation};
use crate::filing::pdf::{self, Block};
use crate::web::pages::{stockholm_display, FormErrors, PageError};
use crate::web::AppState;

/// The case file of `d` as `who` may see it, made at `now`.
pub fn render(
    state: &AppState,
    who: &Principal,
    d: Deviation,
    now: DateTime<Utc>,
) -> Result<Vec<u8>, PageError> {
    let page = build_page(
        state,
        who,
        d,
        String::new(),
        PageInput {
            form: String::new(),
            errors: FormErrors::default(),
            values: Default::default(),
            saved: None,
            refused: None,
        },
    )?;
    let blocks = blocks(&page);
    let footer = format!(
        "{} · exporterad {} av {}",
        page.d.reference,
        stockholm_display(now),
        who.email
    );
    Ok(pdf::render_marked(
        &format!("{} {}", page.d.reference, page.d.title),
        &state.config.export.secrecy_header,
        &footer,
        &blocks,
    ))
}

fn field(label: impl Into<String>, value: impl Into<String>) -> Block {
    Block::Field {
        label: label.into(),
        value: value.into(),
    }
}

fn heading(text: &str) -> Block {
    Block::Heading(text.to_string())
}

fn blocks(p: &DeviationPage) -> Vec<Block> {
    let d = &p.d;
    let mut b = vec![Block::Title(format!("{} {}", d.reference, d.title))];
    if let Some(s) = &d.shredded {
        b.push(Block::Paragraph(format!(
            "Avvikelsen är {}. Personuppgifter och fritexter är förstörda; tider, klassning \
             och anmälningar finns kvar.",
            s.text
        )));
    }
    b.push(field("Status", p.status));
    b.push(field(
        "Allvarlighet",
        p.severity
            .map(|s| format!("{s} avvikelse"))
            .unwrap_or_else(|| labels::severity_or_unclassified(None).to_string()),
    ));
    b.extend(p.facts.iter().map(|(k, v)| field(*k, v.clone())));
    b.push(heading("Beskrivning"));
    b.push(Block::Paragraph(d.description.clone()));

    b.push(heading("Klassning"));
    if d.classifications.is_empty() {
        b.push(Block::Paragraph("Inte klassad ännu.".into()));
    }
    for c in &d.classifications {
        let x = &c.classification;
        let mut value = vec![
            format!("{} avvikelse", labels::severity(x.severity)),
            format!("Kategori: {}", x.category),
            format!("Påverkade aspekter: {}", labels::aspects(&x.aspects)),
            format!(
                "Personuppgiftsincident: {}",
                labels::personal_data_breach(x.personal_data_breach)
            ),
            format!(
                "Betydande incident (NIS2): {}",
                labels::yes_no(x.nis2_significant)
            ),
        ];
        if !x.rationale.is_empty() {
            value.push(format!("Motivering: {}", x.rationale));
        }
        b.push(field(
            format!(
                "{} av {} ({})",
                stockholm_display(c.at),
                actor_sv(&c.by),
                x.role
            ),
            value.join("\n"),
        ));
    }

    if !p.deadlines.is_empty() {
        b.push(heading("Lagstadgade frister"));
        for dl in &p.deadlines {
            b.push(field(dl.label, format!("Senast {}: {}", dl.due, dl.state)));
        }
        for c in &p.clocks {
            b.push(field(
                format!("Fristerna för {} räknas från", c.regime),
                format!("{}. {}", c.from, c.why),
            ));
        }
        if let Some(ended) = &p.handling_ended {
            b.push(Block::Paragraph(format!(
                "Incidenthanteringen (NIS2) avslutades {ended}."
            )));
        }
    }

    b.push(heading("Åtgärder"));
    if p.measures.is_empty() {
        b.push(Block::Paragraph("Inga åtgärder.".into()));
    }
    for m in &p.measures {
        let mut value = format!(
            "Ansvarig: {} · klar senast {}{}",
            m.owner,
            m.due,
            if m.overdue { " (försenad)" } else { "" }
        );
        if let Some(done) = &m.completed {
            value.push_str(&format!("\nSlutförd {done}"));
            if !m.note.is_empty() {
                value.push_str(&format!(": {}", m.note));
            }
        }
        b.push(field(m.description.clone(), value));
    }

    b.push(heading("Beslut"));
    if d.decisions.is_empty() {
        b.push(Block::Paragraph("Inga beslut.".into()));
    }
    for x in &d.decisions {
        b.push(field(
            format!(
                "{} av {} ({})",
                stockholm_display(x.at),
                actor_sv(&x.by),
                x.role
            ),
            x.text.clone(),
        ));
    }

    b.push(heading("Anmälningar till myndighet"));
    if d.filings.is_empty() {
        b.push(Block::Paragraph(
            "Inga anmälningar eller beslut att inte anmäla.".into(),
        ));
    }
    for f in &d.filings {
        let mut lines = Vec::new();
        match &f.not_filed_rationale {
            Some(why) => lines.push(format!("Beslut att inte anmäla: {why}")),
            None => {
                let mut line = "Anmäld".to_string();
                if let Some(at) = f.filed_at {
                    line.push_str(&format!(" {}", stockholm_display(at)));
                }
                if let Some(a) = f.authority.as_deref().filter(|a| !a.is_empty()) {
                    line.push_str(&format!(" till {a}"));
                }
                lines.push(line);
                if let Some(r) = f.their_reference.as_deref().filter(|r| !r.is_empty()) {
                    lines.push(format!("Myndighetens diarienummer: {r}"));
                }
                if let Some(sha) = &f.content_sha256 {
                    lines.push(format!("SHA-256 för det som skickades: {sha}"));
                }
            }
        }
        lines.push(format!(
            "Registrerad {} av {}",
            stockholm_display(f.recorded_at),
            actor_sv(&f.recorded_by)
        ));
        b.push(field(labels::filing_kind(f.kind), lines.join("\n")));
    }

    b.push(heading("Kommentarer"));
    if d.comments.is_empty() {
        b.push(Block::Paragraph("Inga kommentarer.".into()));
    }
    for c in &d.comments {
        let kind = if c.unverified_email {
            "overifierad e-post"
        } else if c.from_reporter {
            "från rapportören"
        } else if c.to_reporter {
            "till rapportören"
        } else {
            "intern"
        };
        b.push(field(
            format!(
                "{} av {} ({kind})",
                stockholm_display(c.at),
                actor_sv(&c.by)
            ),
            c.text.clone(),
        ));
    }

    // Oldest first: a case file reads from the report on.
    b.push(heading("Händelser"));
    for e in p.timeline.iter().rev() {
        let mut value = vec![format!("{} · händelse #{}", e.actor, e.seq)];
        value.extend(e.details.iter().cloned());
        b.push(field(format!("{} {}", e.at, e.what), value.join("\n")));
    }
    b
}
