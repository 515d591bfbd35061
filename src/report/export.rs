//! The annual report as data: its canonical JSON (what an issue's content hash covers) and
//! CSV.

use super::format::*;
use super::model::{AnnualReport, CountRow, MeasureStatus};

/// The canonical JSON bytes of a report: pretty-printed, fields in declaration order,
/// ending with a newline. The API serves exactly these bytes.
pub fn to_json(report: &AnnualReport) -> Vec<u8> {
    // Serializing plain structs of strings, numbers and times cannot fail.
    let mut v = serde_json::to_vec_pretty(report).unwrap_or_default();
    v.push(b'\n');
    v
}

/// Hex SHA-256 of [`to_json`]: what an `AnnualReportIssued` event records, so anyone can
/// check a copy with `sha256sum`.
pub fn content_hash(report: &AnnualReport) -> String {
    avvik_events::hash_hex(&to_json(report))
}

/// Excel and LibreOffice run a cell that starts like a formula (`export::cells`).
fn csv_cell(s: &str) -> String {
    crate::export::cells::csv_cell(s).into_owned()
}

/// The report as CSV (RFC 4180, UTF-8): one figure per row, columns
/// `section,key,label_sv,measure,value`. Text that a spreadsheet would take for a formula
/// is prefixed with `'`.
pub fn to_csv(report: &AnnualReport) -> String {
    let mut rows: Vec<[String; 5]> = Vec::new();
    let mut push = |section: &str, key: &str, label: &str, measure: &str, value: String| {
        rows.push([
            section.into(),
            key.into(),
            label.into(),
            measure.into(),
            value,
        ]);
    };
    let r = report;
    push("meta", "year", "År", "value", r.year.to_string());
    push(
        "meta",
        "schema",
        "Rapportformat",
        "value",
        r.schema.to_string(),
    );
    push(
        "meta",
        "period",
        "Period från",
        "from",
        r.period.from.to_rfc3339(),
    );
    push(
        "meta",
        "period",
        "Period till",
        "to",
        r.period.to.to_rfc3339(),
    );
    push(
        "meta",
        "source",
        "Loggen t.o.m. händelse",
        "as_of_seq",
        r.source.as_of_seq.to_string(),
    );
    push(
        "meta",
        "source",
        "Tidpunkt för händelsen",
        "as_of_at",
        r.source
            .as_of_at
            .map(|t| t.to_rfc3339())
            .unwrap_or_default(),
    );
    push(
        "meta",
        "source",
        "Kedjehash",
        "head_hash",
        r.source.head_hash.clone(),
    );
    if !r.source.unreadable_records.is_empty() {
        push(
            "meta",
            "source",
            "Oläsbara händelser (ingår inte)",
            "unreadable_records",
            r.source
                .unreadable_records
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    let t = &r.totals;
    for (key, label, v) in [
        ("deviations", "Avvikelser", t.deviations),
        ("previous_year", "Avvikelser föregående år", t.previous_year),
        ("major", "Större", t.major),
        ("minor", "Mindre", t.minor),
        ("unclassified", "Ej klassade", t.unclassified),
        ("closed", "Avslutade", t.closed),
        (
            "open_at_year_end",
            "Öppna vid årets slut",
            t.open_at_year_end,
        ),
    ] {
        push("totals", key, label, "count", v.to_string());
    }
    let mut counts = |section: &str, list: &[CountRow]| {
        for c in list {
            push(section, &c.key, &c.label_sv, "count", c.count.to_string());
            push(
                section,
                &c.key,
                &c.label_sv,
                "previous_year",
                c.previous_year.to_string(),
            );
        }
    };
    counts("severity", &r.by_severity);
    counts("category", &r.by_category);
    counts("sector", &r.by_sector);
    counts("channel", &r.by_channel);
    for a in &r.by_aspect {
        push("aspect", &a.key, &a.label_sv, "count", a.count.to_string());
        push(
            "aspect",
            &a.key,
            &a.label_sv,
            "previous_year",
            a.previous_year.to_string(),
        );
        for (i, n) in a.levels.iter().enumerate() {
            push(
                "aspect",
                &a.key,
                &a.label_sv,
                &format!("level_{}", i + 1),
                n.to_string(),
            );
        }
    }
    for m in &r.by_month {
        let key = format!("{}-{:02}", r.year, m.month);
        for (measure, v) in [
            ("major", m.major),
            ("minor", m.minor),
            ("unclassified", m.unclassified),
            ("total", m.total),
        ] {
            push("month", &key, &m.label_sv, measure, v.to_string());
        }
    }
    for d in &r.major {
        let key = d.reference.to_string();
        let c = d.classification.as_ref();
        let completed = d
            .measures
            .iter()
            .filter(|m| m.status == MeasureStatus::Completed)
            .count();
        let overdue = d
            .measures
            .iter()
            .filter(|m| m.status == MeasureStatus::Overdue)
            .count();
        for (measure, v) in [
            ("title", d.title.clone()),
            ("status", status_key(d.status).to_string()),
            ("sector", d.sector.clone().unwrap_or_default()),
            ("reported_at", d.reported_at.to_rfc3339()),
            (
                "category",
                c.map(|c| c.category.clone()).unwrap_or_default(),
            ),
            (
                "aspects",
                c.map(|c| aspects_key(&c.aspects)).unwrap_or_default(),
            ),
            (
                "personal_data_breach",
                c.map(|c| pdb_key(c.personal_data_breach).to_string())
                    .unwrap_or_default(),
            ),
            (
                "nis2_significant",
                c.map(|c| c.nis2_significant.to_string())
                    .unwrap_or_default(),
            ),
            ("decisions", d.decisions.len().to_string()),
            ("measures", d.measures.len().to_string()),
            ("measures_completed", completed.to_string()),
            ("measures_overdue", overdue.to_string()),
        ] {
            push("major", &key, "Större avvikelse", measure, v);
        }
    }
    for g in &r.minor_by_category {
        let label = if g.category.is_empty() {
            "Ej klassad"
        } else {
            &g.category
        };
        push("minor", &g.category, label, "count", g.count.to_string());
        push(
            "minor",
            &g.category,
            label,
            "references",
            join_refs(&g.references, " "),
        );
    }
    let p = &r.personal_data;
    for (key, label, v) in [
        ("breaches", "Personuppgiftsincidenter", p.breaches),
        (
            "breaches_previous_year",
            "Personuppgiftsincidenter föregående år",
            p.breaches_previous_year,
        ),
        ("investigating", "Under utredning", p.investigating),
        (
            "suspected_by_reporter",
            "Rapportören angav att personuppgifter kan beröras",
            p.suspected_by_reporter,
        ),
    ] {
        push("personal_data", key, label, "count", v.to_string());
    }
    for f in &r.filings {
        let key = serde_json::to_value(f.kind)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        for (measure, v) in [
            ("required", f.required),
            ("filed_on_time", f.filed_on_time),
            ("filed_late", f.filed_late),
            ("not_filed", f.not_filed),
            ("overdue", f.overdue),
            ("pending", f.pending),
        ] {
            push("filing", &key, &f.label_sv, measure, v.to_string());
        }
        push(
            "filing",
            &key,
            &f.label_sv,
            "late_references",
            join_refs(&f.late_references, " "),
        );
    }
    let a = &r.authorities;
    for (key, label, v) in [
        (
            "breaches_notified",
            "Anmälda personuppgiftsincidenter",
            a.breaches_notified,
        ),
        (
            "breaches_notified_late",
            "Anmälda för sent",
            a.breaches_notified_late,
        ),
        (
            "affected_informed",
            "De berörda informerades (art. 34)",
            a.affected_informed,
        ),
        (
            "affected_not_informed",
            "Beslut att inte informera de berörda",
            a.affected_not_informed,
        ),
        (
            "nis2_incidents",
            "Betydande incidenter (NIS2)",
            a.nis2_incidents,
        ),
    ] {
        push("authorities", key, label, "count", v.to_string());
    }
    for p in &a.nis2_by_phase {
        push(
            "nis2_phase",
            p.kind.as_str(),
            &p.label_sv,
            "filed",
            p.filed.to_string(),
        );
    }
    for l in &r.lead_times {
        let opt = |v: Option<i64>| v.map(|s| s.to_string()).unwrap_or_default();
        push(
            "lead_time",
            &l.key,
            &l.label_sv,
            "count",
            l.count.to_string(),
        );
        push(
            "lead_time",
            &l.key,
            &l.label_sv,
            "median_seconds",
            opt(l.median_seconds),
        );
        push(
            "lead_time",
            &l.key,
            &l.label_sv,
            "p90_seconds",
            opt(l.p90_seconds),
        );
    }
    for o in &r.open_at_year_end {
        let key = o.reference.to_string();
        push(
            "open_at_year_end",
            &key,
            "Öppen vid årets slut",
            "title",
            o.title.clone(),
        );
        push(
            "open_at_year_end",
            &key,
            "Öppen vid årets slut",
            "status_at_year_end",
            status_key(o.status_at_year_end).into(),
        );
        push(
            "open_at_year_end",
            &key,
            "Öppen vid årets slut",
            "status",
            status_key(o.status).into(),
        );
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut write = || -> Result<Vec<u8>, Box<dyn std::error::Error>> {
        w.write_record(["section", "key", "label_sv", "measure", "value"])?;
        for row in &rows {
            w.write_record(row.iter().map(|c| csv_cell(c)))?;
        }
        w.flush()?;
        Ok(w.get_ref().clone())
    };
    match write() {
        Ok(bytes) => String::from_utf8(bytes).unwrap_or_default(),
        Err(e) => {
            // Writing to a Vec cannot fail; keep the signature total anyway.
            tracing::error!(error = %e, "CSV rendering failed");
            String::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_cannot_become_formulas() {
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(csv_cell("-1+2"), "'-1+2");
        assert_eq!(csv_cell("Nätfiske"), "Nätfiske");
    }
}
