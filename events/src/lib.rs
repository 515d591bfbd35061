//! avvik-events: the append-only, hash-chained event log avvik keeps everything in.
//!
//! The stored value of a record is its exact JSON bytes; record N+1 carries the SHA-256 of
//! record N's bytes in `prev`. An export is those bytes, one record per line.
//!
//! [`store`] is the `EventStore` trait with what every backend shares (the append rules,
//! subscriptions); [`sled`] is the embedded backend, [`postgres`] the one a database server
//! holds, which several avvik processes can share.

pub mod postgres;
pub mod record;
pub mod sled;
pub mod store;
pub mod verify;

pub use postgres::{PostgresEventStore, PostgresOptions};
pub use record::{hash_hex, NewEvent, RecordView, RecordedEvent, GENESIS_HASH};
pub use store::{
    read_all, BoxFuture, CounterOf, EventStore, ExpectedVersion, Head, SharedFiles, SledEventStore,
    StoreError, StoreOptions, Subscription,
};
pub use verify::{verify_export, BadRecord, ChainChecker, VerifyReport};
