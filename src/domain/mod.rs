//! The pure domain: value types, the deviation decider, no I/O and no clock reads.

/// An enum of event payloads with its stored `type` names: `type_name`, `to_data` and
/// `from_parts` (decode a stored record; `None` when the type is not one of these). Used
/// for every aggregate's events so they are stored and decoded the same way.
macro_rules! event_enum {
    ($(#[$doc:meta])* $enum:ident { $($variant:ident($payload:ty) = $name:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq)]
        pub enum $enum {
            $($variant($payload)),*
        }

        impl $enum {
            /// Every stored type name of these events.
            pub const TYPES: &'static [&'static str] = &[$($name),*];

            /// The stored `type`.
            pub fn type_name(&self) -> &'static str {
                match self {
                    $($enum::$variant(_) => $name),*
                }
            }

            /// The stored `data`.
            pub fn to_data(&self) -> serde_json::Value {
                match self {
                    $($enum::$variant(p) => serde_json::to_value(p).unwrap_or(serde_json::Value::Null)),*
                }
            }

            /// Decodes a stored event; `None` when the type is not one of these.
            pub fn from_parts(
                ty: &str,
                data: &serde_json::Value,
            ) -> Option<Result<Self, serde_json::Error>> {
                match ty {
                    $($name => Some(<$payload as serde::Deserialize>::deserialize(data).map($enum::$variant)),)*
                    _ => None,
                }
            }

            /// Decodes a stored event from any deserializer of its `data` (start-up
            /// replay decodes a sealed event's clear and opened members in one pass).
            pub fn from_deserializer<'de, D: serde::Deserializer<'de>>(
                ty: &str,
                data: D,
            ) -> Option<Result<Self, D::Error>> {
                match ty {
                    $($name => Some(<$payload as serde::Deserialize>::deserialize(data).map($enum::$variant)),)*
                    _ => None,
                }
            }

            /// Decodes a stored event from its raw `data` JSON, as `from_parts` does from a
            /// `Value` (the same answer, without building the tree).
            pub fn from_raw(
                ty: &str,
                data: &str,
            ) -> Option<Result<Self, serde_json::Error>> {
                match ty {
                    $($name => Some(serde_json::from_str::<$payload>(data).map($enum::$variant)),)*
                    _ => None,
                }
            }
        }

        impl $crate::domain::DomainEvent for $enum {
            fn type_name(&self) -> &'static str {
                $enum::type_name(self)
            }
            fn to_data(&self) -> serde_json::Value {
                $enum::to_data(self)
            }
        }
    };
}
pub(crate) use event_enum;

/// An event an aggregate decides on: its stored `type` and `data`. The `event_enum!`
/// enums implement it; the command handler stores any of them the same way.
pub trait DomainEvent {
    fn type_name(&self) -> &'static str;
    fn to_data(&self) -> serde_json::Value;
}

/// An event of an aggregate whose payloads are plain structs under named types (intake
/// messages, notifications, scheduler slots, annual reports).
#[derive(Debug, Clone)]
pub struct Fact {
    pub type_name: &'static str,
    pub data: serde_json::Value,
}

impl Fact {
    pub fn new(type_name: &'static str, payload: &impl serde::Serialize) -> Self {
        Self {
            type_name,
            data: serde_json::to_value(payload).unwrap_or(serde_json::Value::Null),
        }
    }
}

impl DomainEvent for Fact {
    fn type_name(&self) -> &'static str {
        self.type_name
    }
    fn to_data(&self) -> serde_json::Value {
        self.data.clone()
    }
}

pub mod account;
pub mod actor;
pub mod deadlines;
pub mod deviation;
pub mod filing_record;
pub mod identity;
pub mod labels;
pub mod limits;
pub mod organisation;
pub mod recipients;
pub mod retention;
pub mod setup;
pub mod types;
pub mod workdays;

pub use actor::{Actor, System};

pub use deviation::{
    decide, evolve, Classification, Command, Deviation, DeviationEvent, DomainError, EventMeta,
    Reported, Status,
};
pub use types::{
    stockholm_year, Aspects, Channel, EmailAddress, FilingKind, Level, PersonalDataBreach,
    Reference, Regime, Reporter, Severity,
};

#[cfg(test)]
mod deadline_tests;
#[cfg(test)]
mod deviation_tests;
#[cfg(test)]
mod proptests;
