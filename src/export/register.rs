//! The register as a table: one row per deviation, in the order given (the register page's
//! filters and sort), written as XLSX or CSV. The columns are the register's structural
//! facts and the title; no description, reporter or comment is in it. A gallrad deviation's
//! texts read as its "gallrad …" words, as everywhere.

use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Europe::Stockholm;
use rust_xlsxwriter::{DocProperties, ExcelDateTime, Format, Workbook};

use super::cells::{csv_cell, looks_like_formula};
use super::ExportError;
use crate::domain::{labels, Deviation, FilingKind};

/// The name of the XLSX file's one worksheet.
pub const SHEET: &str = "Avvikelser";

/// The column headings, in order.
pub const COLUMNS: [&str; 23] = [
    "Referens",
    "Rubrik",
    "Status",
    "Allvarlighet",
    "Kategori",
    "Sektor",
    "System/informationstillgång",
    "Konfidentialitet",
    "Riktighet",
    "Tillgänglighet",
    "Spårbarhet",
    "Inträffade",
    "Upptäcktes",
    "Rapporterad",
    "Klassad",
    "Avslutad",
    "Personuppgiftsincident",
    "Betydande incident (NIS2)",
    "Anmälningar",
    "Öppna åtgärder",
    "Handläggare",
    "Ersättare",
    "Incident",
];

/// Column widths in the XLSX file (characters), in the order of [`COLUMNS`].
const WIDTHS: [f64; 23] = [
    15.0, 48.0, 16.0, 12.0, 22.0, 22.0, 26.0, 9.0, 9.0, 9.0, 9.0, 17.0, 17.0, 17.0, 17.0, 17.0,
    14.0, 14.0, 60.0, 9.0, 30.0, 30.0, 15.0,
];

/// One cell of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Number(u32),
    /// A moment, shown in Stockholm local time.
    Time(DateTime<Utc>),
    Empty,
}

impl Cell {
    fn text(s: impl Into<String>) -> Self {
        Cell::Text(s.into())
    }

    fn time(t: Option<DateTime<Utc>>) -> Self {
        t.map_or(Cell::Empty, Cell::Time)
    }

    /// What the cell shows, as the CSV has it (times as `YYYY-MM-DD HH:MM`, Stockholm).
    pub fn display(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Number(n) => n.to_string(),
            Cell::Time(t) => stockholm(*t),
            Cell::Empty => String::new(),
        }
    }
}

/// `YYYY-MM-DD HH:MM` in Stockholm time.
pub fn stockholm(t: DateTime<Utc>) -> String {
    t.with_timezone(&Stockholm)
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

/// A filing's short name, as the register's deadline markers have it.
pub fn short_kind(k: FilingKind) -> &'static str {
    match k {
        FilingKind::Gdpr => "GDPR 72 h",
        FilingKind::Nis2EarlyWarning => "NIS2 24 h",
        FilingKind::Nis2Notification => "NIS2 72 h",
        FilingKind::Nis2FinalReport => "NIS2 slutrapport",
        FilingKind::GdprSupplement => "GDPR komplettering",
        FilingKind::GdprFinal => "GDPR slutlig",
        FilingKind::Nis2Intermediate => "NIS2 delrapport",
        FilingKind::Nis2Progress => "NIS2 lägesrapport",
    }
}

/// Where each statutory filing stands, one part per phase with a deadline or a filing:
/// `GDPR 72 h: anmäld 2026-03-03 10:00; NIS2 24 h: försenad (senast 2026-03-02 09:15)`.
pub fn filings_state(d: &Deviation, now: DateTime<Utc>) -> String {
    let mut parts = Vec::new();
    for kind in FilingKind::ALL {
        let deadline = d.deadlines.iter().find(|dl| dl.kind == kind);
        let state = match (d.filing(kind), deadline) {
            (Some(f), _) if f.not_filed_rationale.is_some() => "beslut att inte anmäla".into(),
            (Some(f), dl) => {
                let late = dl.and_then(|dl| dl.late) == Some(true);
                format!(
                    "anmäld{}{}",
                    f.filed_at
                        .map(|t| format!(" {}", stockholm(t)))
                        .unwrap_or_default(),
                    if late { " (efter fristen)" } else { "" }
                )
            }
            (None, Some(dl)) if dl.due < now => format!("försenad (senast {})", stockholm(dl.due)),
            (None, Some(dl)) => format!("öppen (senast {})", stockholm(dl.due)),
            (None, None) => continue,
        };
        parts.push(format!("{}: {state}", short_kind(kind)));
    }
    parts.join("; ")
}

/// One row per deviation, in the given order.
pub fn rows(deviations: &[&Deviation], now: DateTime<Utc>) -> Vec<Vec<Cell>> {
    deviations.iter().map(|d| row(d, now)).collect()
}

fn row(d: &Deviation, now: DateTime<Utc>) -> Vec<Cell> {
    let opt = |s: &Option<String>| s.clone().map_or(Cell::Empty, Cell::Text);
    let mut cells = vec![
        Cell::text(d.reference.to_string()),
        Cell::text(d.title.clone()),
        Cell::text(labels::status(d.status)),
        Cell::text(labels::severity_or_unclassified(d.severity)),
        opt(&d.category),
        opt(&d.sector),
        opt(&d.asset),
    ];
    cells.extend(
        labels::aspect_levels(&d.aspects)
            .into_iter()
            .map(|l| l.map_or(Cell::Empty, |l| Cell::Number(u32::from(l.get())))),
    );
    cells.extend([
        Cell::time(d.occurred_at),
        Cell::Time(d.discovered_at),
        Cell::Time(d.reported_at),
        Cell::time(d.classified_at),
        Cell::time(d.closed_at),
        d.personal_data_breach
            .map_or(Cell::Empty, |p| Cell::text(labels::personal_data_breach(p))),
        d.nis2_significant
            .map_or(Cell::Empty, |b| Cell::text(labels::yes_no(b))),
        Cell::text(filings_state(d, now)),
        Cell::Number(
            d.measures
                .iter()
                .filter(|m| m.completed_at.is_none())
                .count()
                .try_into()
                .unwrap_or(u32::MAX),
        ),
        opt(&d.owner),
        opt(&d.deputy),
        d.incident
            .as_ref()
            .map_or(Cell::Empty, |l| Cell::text(l.reference.to_string())),
    ]);
    debug_assert_eq!(cells.len(), COLUMNS.len());
    cells
}

/// An Excel date-time from a moment, in Stockholm local time.
fn excel_time(t: DateTime<Utc>) -> Result<ExcelDateTime, rust_xlsxwriter::XlsxError> {
    let l = t.with_timezone(&Stockholm);
    let year = u16::try_from(l.year()).unwrap_or(9999);
    // Months, days, hours and minutes always fit their types.
    ExcelDateTime::from_ymd(year, l.month() as u8, l.day() as u8)?.and_hms(
        l.hour() as u16,
        l.minute() as u8,
        l.second(),
    )
}

/// Excel's longest text in one cell (UTF-16 units); a longer one is cut.
const CELL_MAX: usize = 32_767;

fn fit(text: &str) -> &str {
    // UTF-8 never has fewer bytes than UTF-16 has units.
    if text.len() <= CELL_MAX {
        return text;
    }
    let mut units = 0;
    for (i, c) in text.char_indices() {
        units += c.len_utf16();
        if units > CELL_MAX {
            return &text[..i];
        }
    }
    text
}

/// The rows as an XLSX workbook: one worksheet, a bold heading row that stays in view, an
/// autofilter, times as Excel date-times (Stockholm) and every text a string cell.
pub fn to_xlsx(rows: &[Vec<Cell>], now: DateTime<Utc>) -> Result<Vec<u8>, ExportError> {
    let mut workbook = Workbook::new();
    workbook.set_properties(
        &DocProperties::new()
            .set_title("Avvikelser")
            .set_author("avvik")
            .set_creation_datetime(&excel_time(now)?),
    );
    let heading = Format::new().set_bold();
    let time = Format::new().set_num_format("yyyy-mm-dd hh:mm");
    // A text that looks like a formula stays text even when the cell is edited.
    let quoted = Format::new().set_quote_prefix();
    let sheet = workbook.add_worksheet();
    sheet.set_name(SHEET)?;
    for (col, (name, width)) in COLUMNS.iter().zip(WIDTHS).enumerate() {
        let col = col as u16;
        sheet.write_string_with_format(0, col, *name, &heading)?;
        sheet.set_column_width(col, width)?;
    }
    for (i, cells) in rows.iter().enumerate() {
        let r = u32::try_from(i + 1).unwrap_or(u32::MAX);
        for (col, cell) in cells.iter().enumerate() {
            let col = col as u16;
            match cell {
                Cell::Text(s) if looks_like_formula(s) => {
                    sheet.write_string_with_format(r, col, fit(s), &quoted)?;
                }
                Cell::Text(s) => {
                    sheet.write_string(r, col, fit(s))?;
                }
                Cell::Number(n) => {
                    sheet.write_number(r, col, f64::from(*n))?;
                }
                Cell::Time(t) => {
                    sheet.write_datetime_with_format(r, col, excel_time(*t)?, &time)?;
                }
                Cell::Empty => {}
            }
        }
    }
    sheet.set_freeze_panes(1, 0)?;
    let last_row = u32::try_from(rows.len()).unwrap_or(u32::MAX);
    sheet.autofilter(0, 0, last_row, (COLUMNS.len() - 1) as u16)?;
    Ok(workbook.save_to_buffer()?)
}

/// The rows as CSV (RFC 4180, UTF-8, comma-separated, every field quoted, a heading row);
/// a text a spreadsheet would read as a formula starts with `'`.
pub fn to_csv(rows: &[Vec<Cell>]) -> Result<Vec<u8>, ExportError> {
    let mut w = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Always)
        .from_writer(Vec::new());
    w.write_record(COLUMNS)?;
    for cells in rows {
        w.write_record(cells.iter().map(|c| match c {
            Cell::Text(s) => csv_cell(s).into_owned(),
            other => other.display(),
        }))?;
    }
    w.into_inner()
        .map_err(|e| ExportError::Csv(csv::Error::from(e.into_error())))
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use calamine::{Data, Reader, Xlsx};
    use chrono::TimeZone;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 8, 15, 0).unwrap()
    }

    const RISKY: [&str; 6] = [
        "=HYPERLINK(\"https://evil.example\",\"Klicka\")",
        "+46 8 123 45",
        "-2+3",
        "@SUM(A1:A9)",
        "\t=1+1",
        "\r=1+1",
    ];

    fn risky_rows() -> Vec<Vec<Cell>> {
        RISKY
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let mut cells = vec![Cell::Empty; COLUMNS.len()];
                cells[0] = Cell::text(format!("AVV-2026-{:04}", i + 1));
                cells[1] = Cell::text(*text);
                cells[5] = Cell::text("Socialtjänsten");
                cells[7] = Cell::Number(3);
                cells[13] = Cell::Time(now());
                cells
            })
            .collect()
    }

    fn read_xlsx(bytes: &[u8]) -> (calamine::Range<Data>, calamine::Range<String>) {
        let mut book: Xlsx<_> =
            calamine::open_workbook_from_rs(Cursor::new(bytes.to_vec())).expect("the XLSX opens");
        assert_eq!(book.sheet_names(), [SHEET]);
        let values = book.worksheet_range(SHEET).expect("values");
        let formulas = book.worksheet_formula(SHEET).expect("formulas");
        (values, formulas)
    }

    #[test]
    fn formula_like_texts_are_string_cells_in_the_xlsx() {
        let bytes = to_xlsx(&risky_rows(), now()).unwrap();
        let (values, formulas) = read_xlsx(&bytes);
        assert!(
            formulas.used_cells().all(|(_, _, f)| f.is_empty()),
            "no cell holds a formula"
        );
        let header: Vec<String> = values
            .rows()
            .next()
            .unwrap()
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(header, COLUMNS);
        for (i, text) in RISKY.iter().enumerate() {
            let row = i as u32 + 1;
            assert_eq!(
                values.get_value((row, 1)),
                Some(&Data::String(text.to_string())),
                "{text:?}"
            );
            assert_eq!(values.get_value((row, 7)), Some(&Data::Float(3.0)));
            match values.get_value((row, 13)) {
                // 2026-03-02 09:15 in Stockholm.
                Some(Data::DateTime(t)) => {
                    assert!((t.as_f64() - (46083.0 + 9.25 / 24.0)).abs() < 1e-6, "{t:?}")
                }
                other => panic!("not a date-time: {other:?}"),
            }
        }
    }

    #[test]
    fn formula_like_texts_get_a_quote_in_the_csv() {
        let bytes = to_csv(&risky_rows()).unwrap();
        let mut r = csv::Reader::from_reader(bytes.as_slice());
        let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(header, COLUMNS);
        let read: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
        for (record, text) in read.iter().zip(RISKY) {
            assert_eq!(&record[1], format!("'{text}"));
            assert_eq!(&record[5], "Socialtjänsten");
            assert_eq!(&record[7], "3");
            assert_eq!(&record[13], "2026-03-02 09:15");
        }
        // Every field quoted, quotes in a text doubled.
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("\"Referens\",\"Rubrik\","), "{text}");
        assert!(text.contains("\"'=HYPERLINK(\"\"https://evil.example\"\",\"\"Klicka\"\")\""));
    }

    #[test]
    fn an_overlong_text_is_cut_to_what_excel_holds() {
        let long = "å".repeat(40_000);
        assert_eq!(fit(&long).chars().count(), CELL_MAX);
        assert_eq!(fit("kort"), "kort");
        let mut cells = vec![Cell::Empty; COLUMNS.len()];
        cells[1] = Cell::text(long);
        assert!(to_xlsx(&[cells], now()).is_ok());
    }
}
