//! Exports for people to keep or work on outside avvik: the register as XLSX or CSV with the
//! register's filters applied, and the cell rules that keep a spreadsheet from running what
//! a reporter typed as a formula. (A case as PDF is laid out by the staff pages, which know
//! what a deviation's page shows; it is printed with `filing::pdf`.)

pub mod cells;
pub mod register;

/// The register's export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterFormat {
    Xlsx,
    Csv,
}

impl RegisterFormat {
    /// `xlsx` or `csv`, as in the query string.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "xlsx" => Some(Self::Xlsx),
            "csv" => Some(Self::Csv),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Xlsx => "xlsx",
            Self::Csv => "csv",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Self::Csv => "text/csv; charset=utf-8",
        }
    }
}

/// An export that could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("the XLSX file could not be written: {0}")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
    #[error("the CSV file could not be written: {0}")]
    Csv(#[from] csv::Error),
}
