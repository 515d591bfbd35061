//! Finishing a gallring: after `DeviationShredded` is stored, the deviation's data key is
//! destroyed and its attachment files removed. An intent file written before the event
//! makes the destruction survive a crash in between: at the next start, [`recover`]
//! destroys the key of every intent whose event is in the log (the key store follows the
//! log) and drops the intents whose event never got there. On a store several nodes share
//! (PostgreSQL) the intent is kept in the database too, so that whichever node starts next
//! finishes a gallring that a node which died midway never comes back to.

use std::path::{Path, PathBuf};

use avvik_events::EventStore;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{KeyId, Keyring, Tombstone};

const PENDING_DIR: &str = "pending";
/// The shared store's files holding the intents, named by the deviation.
const SHARED_KIND: &str = "gallring-intents";
/// A shared intent whose event is not in the log is dropped only once it is older than
/// this: until then the node that wrote it may still be storing the event.
const SHARED_GRACE_MINUTES: i64 = 10;
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

fn io(e: avvik_events::StoreError) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// Written durably before the gallring event is appended: in the data directory, and on a
/// shared store in the database as well.
pub fn begin(
    keys: &Keyring,
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
    let bytes = serde_json::to_vec(&intent)?;
    let name = deviation.simple().to_string();
    let path = dir.join(&name);
    let tmp = dir.join(format!(".tmp-{name}"));
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(&dir)?.sync_all()?;
    if let Some(files) = keys.shared_files() {
        // A leftover of an earlier attempt is replaced.
        files.remove_prefix(SHARED_KIND, &name).map_err(io)?;
        files.create(SHARED_KIND, &name, &bytes).map_err(io)?;
    }
    Ok(())
}

/// The gallring event was not stored: the intent goes.
pub fn abandon(keys: &Keyring, keys_dir: &Path, deviation: Uuid) {
    let name = deviation.simple().to_string();
    let _ = std::fs::remove_file(pending_dir(keys_dir).join(&name));
    if let Some(files) = keys.shared_files() {
        if let Err(e) = files.remove_prefix(SHARED_KIND, &name) {
            tracing::warn!(%deviation, error = %e, "a gallring intent could not be removed from the shared store; the next start drops it");
        }
    }
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
    let name = deviation.simple().to_string();
    match std::fs::remove_file(pending_dir(keys_dir).join(&name)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Ok(d) = std::fs::File::open(pending_dir(keys_dir)) {
        let _ = d.sync_all();
    }
    if let Some(files) = keys.shared_files() {
        files.remove_prefix(SHARED_KIND, &name).map_err(io)?;
    }
    tracing::info!(%deviation, "gallring finished: data key destroyed");
    Ok(())
}

/// At start-up: finishes every gallring whose event is stored, forgets the others — the
/// intents in the data directory and, on a shared store, every node's in the database.
pub fn recover(store: &dyn EventStore, keys: &Keyring, data_dir: &Path) -> std::io::Result<()> {
    let keys_dir = data_dir.join(super::keys::KEYS_DIR);
    let dir = pending_dir(&keys_dir);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => Some(e),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    for entry in entries.into_iter().flatten() {
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
        if !settle(store, keys, &keys_dir, data_dir, &intent)? {
            tracing::warn!(deviation = %intent.deviation, "a gallring was not recorded before a stop; nothing destroyed");
            std::fs::remove_file(&path)?;
            abandon(keys, &keys_dir, intent.deviation);
        }
    }
    recover_shared(store, keys, data_dir)
}

/// On a shared store: finishes every gallring any node began whose event is stored, and
/// drops those whose event never got there once they are ten minutes old. Run at
/// start-up and, by the node holding the `gallring` duty, every few minutes, so a running
/// node finishes what a node that died left (`startup`).
pub fn recover_shared(
    store: &dyn EventStore,
    keys: &Keyring,
    data_dir: &Path,
) -> std::io::Result<()> {
    let keys_dir = data_dir.join(super::keys::KEYS_DIR);
    let Some(files) = keys.shared_files() else {
        return Ok(());
    };
    for name in files.list(SHARED_KIND).map_err(io)? {
        let Some(bytes) = files.read(SHARED_KIND, &name).map_err(io)? else {
            continue;
        };
        let Ok(intent) = serde_json::from_slice::<Intent>(&bytes) else {
            tracing::warn!(
                name,
                "an unreadable gallring intent in the shared store; left for the operator"
            );
            continue;
        };
        if !settle(store, keys, &keys_dir, data_dir, &intent)?
            && Utc::now() - intent.at > chrono::Duration::minutes(SHARED_GRACE_MINUTES)
        {
            tracing::warn!(deviation = %intent.deviation, "a gallring another node began was never recorded; nothing destroyed");
            files.remove_prefix(SHARED_KIND, &name).map_err(io)?;
        }
    }
    Ok(())
}

/// Finishes the gallring `intent` names if its event is in the log; `false` if it is not.
fn settle(
    store: &dyn EventStore,
    keys: &Keyring,
    keys_dir: &Path,
    data_dir: &Path,
    intent: &Intent,
) -> std::io::Result<bool> {
    let records = store
        .read_stream(intent.deviation, 1)
        .map_err(std::io::Error::other)?;
    let Some(rec) = records.iter().find(|r| r.event_type == SHREDDED) else {
        return Ok(false);
    };
    let decision = rec
        .data
        .get("decision")
        .and_then(|v| v.as_str())
        .unwrap_or(&intent.decision)
        .to_string();
    let mut kids: Vec<KeyId> = intent.kids.iter().filter_map(|k| KeyId::parse(k)).collect();
    for k in records.iter().filter_map(|r| super::kid_in(&r.data)) {
        if !kids.contains(&k) {
            kids.push(k);
        }
    }
    tracing::warn!(deviation = %intent.deviation, "a gallring was cut short; destroying its key now");
    finish(
        keys,
        keys_dir,
        data_dir,
        intent.deviation,
        &kids,
        &Tombstone {
            at: rec.at,
            decision,
        },
    )?;
    Ok(true)
}
