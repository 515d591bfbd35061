//! Finishing a gallring: after `DeviationShredded` is stored, the deviation's data key is
//! destroyed and its attachment files removed. An intent file written before the event
//! makes the destruction survive a crash in between: at the next start, [`recover`]
//! destroys the key of every intent whose event is in the log (the key store follows the
//! log) and drops the intents whose event never got there.

use std::path::{Path, PathBuf};

use avvik_events::EventStore;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{KeyId, Keyring, Tombstone};

const PENDING_DIR: &str = "pending";
/// The stored type of the gallring event.
pub const SHREDDED: &str = "DeviationShredded";

#[derive(Debug, Serialize, Deserialize)]
struct Intent {
    deviation: Uuid,
    /// Every key the deviation's data was sealed with (normally one).
    #[serde(default)]
    kids: Vec<String>,
    at: DateTime<Utc>,
    decision: String,
}

fn pending_dir(keys_dir: &Path) -> PathBuf {
    keys_dir.join(PENDING_DIR)
}

/// For crash tests: `AVVIK_FAILPOINT=<name>` aborts the process at that point, as a
/// SIGKILL would.
pub fn failpoint(name: &str) {
    if std::env::var("AVVIK_FAILPOINT").is_ok_and(|v| v == name) {
        tracing::warn!(name, "failpoint reached: aborting");
        std::process::abort();
    }
}

/// Written durably before the gallring event is appended.
pub fn begin(
    keys_dir: &Path,
    deviation: Uuid,
    kids: &[KeyId],
    at: DateTime<Utc>,
    decision: &str,
) -> std::io::Result<()> {
    let dir = pending_dir(keys_dir);
    std::fs::create_dir_all(&dir)?;
    let intent = Intent {
        deviation,
        kids: kids.iter().map(|k| k.to_string()).collect(),
        at,
        decision: decision.to_string(),
    };
    let path = dir.join(deviation.simple().to_string());
    let tmp = dir.join(format!(".tmp-{}", deviation.simple()));
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(&intent)?)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(&dir)?.sync_all()
}

/// After the event is stored: destroys the key and the deviation's attachment files, then
/// drops the intent.
pub fn finish(
    keys: &Keyring,
    keys_dir: &Path,
    data_dir: &Path,
    deviation: Uuid,
    kids: &[KeyId],
    tombstone: &Tombstone,
) -> std::io::Result<()> {
    for kid in kids {
        keys.keys().destroy(*kid, tombstone)?;
    }
    let attachments = data_dir
        .join(super::ATTACHMENTS_DIR)
        .join(deviation.simple().to_string());
    match std::fs::remove_dir_all(&attachments) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(files) = keys.shared_files() {
        let prefix = format!("{}/{}/", super::ATTACHMENTS_DIR, deviation.simple());
        files
            .remove_prefix(super::BLOBS_KIND, &prefix)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
    }
    let path = pending_dir(keys_dir).join(deviation.simple().to_string());
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Ok(d) = std::fs::File::open(pending_dir(keys_dir)) {
        let _ = d.sync_all();
    }
    tracing::info!(%deviation, "gallring finished: data key destroyed");
    Ok(())
}

/// At start-up: finishes every gallring whose event is stored, forgets the others.
pub fn recover(store: &dyn EventStore, keys: &Keyring, data_dir: &Path) -> std::io::Result<()> {
    let keys_dir = data_dir.join(super::keys::KEYS_DIR);
    let dir = pending_dir(&keys_dir);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'))
        {
            let _ = std::fs::remove_file(&path);
            continue;
        }
        let intent: Intent = match std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
        {
            Some(i) => i,
            None => {
                tracing::warn!(path = %path.display(), "an unreadable gallring intent; left for the operator");
                continue;
            }
        };
        let records = store
            .read_stream(intent.deviation, 1)
            .map_err(std::io::Error::other)?;
        let stored = records.iter().find(|r| r.event_type == SHREDDED);
        match stored {
            Some(rec) => {
                let decision = rec
                    .data
                    .get("decision")
                    .and_then(|v| v.as_str())
                    .unwrap_or(&intent.decision)
                    .to_string();
                let mut kids: Vec<KeyId> =
                    intent.kids.iter().filter_map(|k| KeyId::parse(k)).collect();
                for k in records.iter().filter_map(|r| super::kid_in(&r.data)) {
                    if !kids.contains(&k) {
                        kids.push(k);
                    }
                }
                tracing::warn!(deviation = %intent.deviation, "a gallring was cut short; destroying its key now");
                finish(
                    keys,
                    &keys_dir,
                    data_dir,
                    intent.deviation,
                    &kids,
                    &Tombstone {
                        at: rec.at,
                        decision,
                    },
                )?;
            }
            None => {
                tracing::warn!(deviation = %intent.deviation, "a gallring was not recorded before a stop; nothing destroyed");
                std::fs::remove_file(&path)?;
            }
        }
    }
    Ok(())
}
