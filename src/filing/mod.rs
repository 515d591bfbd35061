//! Filings to the authorities: the organisation details every filing carries, and the
//! document each phase sends (preview, PDF, JSON).

pub mod document;
pub mod organisation;
pub mod pdf;
