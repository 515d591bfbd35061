//! Text that a spreadsheet would run as a formula ("CSV injection", OWASP): a cell whose
//! text starts with `=`, `+`, `-` or `@`, or with a tab or carriage return, is taken for a
//! formula by Excel and LibreOffice (`=HYPERLINK(…)`, `@SUM(…)`, `-2+3`), also after
//! leading spaces and in the full-width forms some of them accept.
//!
//! Every exported value that people typed (titles, sectors, categories, systems) may start
//! so. What each format does about it:
//! - XLSX: every text is written as a string cell (`write_string`, never `write_formula`;
//!   the writer never turns a string into a formula), and a text that looks like a formula
//!   also gets the cell's quote prefix, so it stays text when someone edits the cell.
//! - CSV: a plain text file has no cell types, so such a text gets a leading `'` (OWASP's
//!   advice); spreadsheets show it as text, and a reader of the CSV sees exactly what was
//!   prefixed. Every field is quoted as well.

use std::borrow::Cow;

/// Would a spreadsheet read this text as a formula?
pub fn looks_like_formula(text: &str) -> bool {
    text.trim_start_matches([' ', '\u{A0}', '\u{3000}'])
        .chars()
        .next()
        .is_some_and(|c| {
            matches!(
                c,
                '=' | '+' | '-' | '@' | '\t' | '\r' | '＝' | '＋' | '－' | '＠'
            )
        })
}

/// The text as a CSV field: with a leading `'` when a spreadsheet would read it as a
/// formula, unchanged otherwise.
pub fn csv_cell(text: &str) -> Cow<'_, str> {
    if looks_like_formula(text) {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_starts_are_found() {
        for text in [
            "=1+1",
            "+46 8 123",
            "-2+3",
            "@SUM(A1:A2)",
            "\t=1",
            "\r=1",
            "  =HYPERLINK(\"https://example.org\")",
            "\u{A0}@x",
            "＝1+1",
            "－1",
        ] {
            assert!(looks_like_formula(text), "{text:?}");
            assert_eq!(csv_cell(text), format!("'{text}"));
        }
        for text in [
            "",
            "Nätfiske",
            "AVV-2026-0001",
            "2026-03-02 09:15",
            "a=b",
            "e-post",
            "'redan citerad",
            "1 200 elever",
        ] {
            assert!(!looks_like_formula(text), "{text:?}");
            assert_eq!(csv_cell(text), text);
        }
    }
}
