//! The pure domain: value types, the deviation decider, no I/O and no clock reads.

pub mod deviation;
pub mod types;

pub use deviation::{
    decide, evolve, Classification, Command, Deviation, DeviationEvent, DomainError, EventMeta,
    Reported, Status,
};
pub use types::{
    stockholm_year, Aspects, Channel, EmailAddress, FilingKind, Level, PersonalDataBreach,
    Reference, Reporter, Severity,
};

#[cfg(test)]
mod proptests;
