//! Filings to the authorities: the organisation details every filing carries.

pub mod organisation;
