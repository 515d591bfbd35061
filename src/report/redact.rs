//! A draft annual report as people without `ViewDraftReportTitles` (e.g. ledning) see
//! it until it is issued: every count, no free text. Titles (which may name people or
//! personal-data cases of open minor and unclassified deviations), rationales, decisions
//! and measures are replaced by a note; references, severities, statuses and dates stay.

use super::model::AnnualReport;

/// What replaces a withheld text.
pub const WITHHELD_SV: &str = "(visas när rapporten är utfärdad)";

/// Withholds the free text of a draft report.
pub fn counts_only(report: &mut AnnualReport) {
    for m in &mut report.major {
        m.title = WITHHELD_SV.into();
        if let Some(c) = &mut m.classification {
            c.rationale = WITHHELD_SV.into();
        }
        for d in &mut m.decisions {
            d.text = WITHHELD_SV.into();
        }
        for x in &mut m.measures {
            x.description = WITHHELD_SV.into();
            x.completion_note = None;
        }
    }
    for o in &mut report.open_at_year_end {
        o.title = WITHHELD_SV.into();
    }
}
