//! Bringing a log from before sealing under encryption: its export is read (and its chain
//! checked), every event's personal fields are sealed under new per-deviation keys in a
//! new data directory, the records are chained anew and imported there, and a last record
//! `LogMigrated` names the old log's head hash and length, so an auditor can tie the new
//! chain to the old one. Reporters' addresses in the old actors (`reporter:<address>`)
//! become `reporter`: who reported is in the sealed report.

use std::io::{BufRead, Write};
use std::path::Path;

use avvik_events::{hash_hex, EventStore, RecordedEvent, SledEventStore, GENESIS_HASH};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Keyring;

/// The stored type of the migration record.
pub const LOG_MIGRATED: &str = "LogMigrated";
/// Its stream.
pub const MIGRATIONS_STREAM: Uuid = Uuid::from_u128(0x6176_7669_6b2d_6d69_6772_6174_6500_0001);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogMigrated {
    /// Hash of the old log's last record.
    pub from_head_hash: String,
    pub from_records: u64,
    /// Records whose personal fields were sealed here.
    pub sealed: u64,
}

/// What a migration did.
#[derive(Debug)]
pub struct Migrated {
    pub records: u64,
    pub sealed: u64,
    pub old_head_hash: String,
    pub new_head_hash: String,
}

/// Migrates the export in `old` (read twice: checked, then copied) into the new, empty
/// data directory `new_dir`.
pub fn migrate(
    old: &dyn Fn() -> std::io::Result<Box<dyn BufRead>>,
    new_dir: &Path,
    keys: &Keyring,
    options: avvik_events::StoreOptions,
    counter_of: &avvik_events::CounterOf,
) -> anyhow::Result<Migrated> {
    let report = avvik_events::verify_export(&mut *old()?, None)?;
    if !report.ok {
        anyhow::bail!(
            "the old log does not verify at seq {:?}: {}",
            report.first_bad_seq,
            report.reason.unwrap_or_default()
        );
    }
    // An empty store for the keyring's lookups: the old log's deviations are new to it.
    let scratch = new_dir.with_extension("migrating-lookups");
    let lookups = SledEventStore::open(&scratch, Default::default())?;
    let out_path = new_dir.with_extension("migrating.ndjson");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&out_path)?);
    let mut prev = GENESIS_HASH.to_string();
    let (mut n, mut sealed, mut last_at) = (0u64, 0u64, None);
    for line in old()?.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let mut rec: RecordedEvent = serde_json::from_str(&line)?;
        if rec.data.get("sealed").is_none() {
            let data = std::mem::take(&mut rec.data);
            rec.data = keys.seal(&lookups, rec.stream, rec.id, &rec.event_type, data)?;
            if rec.data.get("sealed").is_some() {
                sealed += 1;
            }
        }
        if rec.actor.starts_with("reporter:") && rec.actor != "reporter:anonymous" {
            rec.actor = crate::domain::Actor::REPORTER.to_string();
        }
        rec.prev = std::mem::take(&mut prev);
        let bytes = rec.to_bytes();
        prev = hash_hex(&bytes);
        out.write_all(&bytes)?;
        out.write_all(b"\n")?;
        n = rec.seq;
        last_at = Some(rec.at);
    }
    let fact = LogMigrated {
        from_head_hash: report.head_hash.clone(),
        from_records: report.records,
        sealed,
    };
    let at = last_at.map_or_else(Utc::now, |t| t.max(Utc::now()));
    let rec = RecordedEvent {
        seq: n + 1,
        id: Uuid::now_v7(),
        stream: MIGRATIONS_STREAM,
        version: 1,
        at,
        actor: crate::domain::System::Cli.as_str().to_string(),
        event_type: LOG_MIGRATED.to_string(),
        schema: 1,
        data: serde_json::to_value(&fact)?,
        prev,
    };
    out.write_all(&rec.to_bytes())?;
    out.write_all(b"\n")?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    let mut input = std::io::BufReader::new(std::fs::File::open(&out_path)?);
    let head = SledEventStore::import(new_dir, options, &mut input, counter_of)?;
    std::fs::remove_file(&out_path)?;
    drop(lookups);
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(Migrated {
        records: head.seq,
        sealed,
        old_head_hash: report.head_hash,
        new_head_hash: head.hash,
    })
}

/// The `LogMigrated` record of a store, if it was made by a migration.
pub fn migration_of(store: &dyn EventStore) -> Option<LogMigrated> {
    let rec = store
        .read_stream(MIGRATIONS_STREAM, 1)
        .ok()?
        .into_iter()
        .next()?;
    serde_json::from_value(rec.data).ok()
}
