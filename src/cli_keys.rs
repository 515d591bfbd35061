//! Data keys for a named transfer: the only way keys leave the key store in the clear.
//! The export is recorded in the log (`DataKeysExported`: which transfer, how many keys)
//! before the file is written, so every copy of the keys is accounted for; keys of gallrad
//! deviations are never exported. The import puts the keys into another installation's
//! key store (wrapped there under its own `secret.key`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use avvik_events::{EventStore, StoreError};
use base64::Engine;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::command::{stateless, CommandError, CommandHandler, Envelope};
use crate::domain::Fact;
use crate::privacy::{
    deviation_of_record, kid_in, DataKey, FileKeyStore, KeyId, KeyState, Keyring,
};

pub const DATA_KEYS_EXPORTED: &str = "DataKeysExported";
/// The stream of key transfers.
pub const TRANSFERS_STREAM: Uuid = Uuid::from_u128(0x6176_7669_6b2d_6b65_7973_0000_0000_0001);
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The recorded fact of a key export (never the keys).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataKeysExported {
    pub transfer: String,
    pub keys: u64,
    /// Deviations whose keys were not exported because they are gallrade.
    pub gallrade: u64,
    pub head_seq: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct KeyFileEntry {
    pub deviation: Uuid,
    pub kid: String,
    pub key: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct KeyFile {
    pub transfer: String,
    pub head_seq: u64,
    pub head_hash: String,
    pub keys: Vec<KeyFileEntry>,
}

/// Records the export, then writes every live key to `out` (created, mode 0600).
pub async fn export_keys(
    store: Arc<dyn EventStore>,
    keys: &Keyring,
    commands: &CommandHandler,
    actor: &str,
    transfer: &str,
    out: &Path,
) -> anyhow::Result<DataKeysExported> {
    let transfer = transfer.trim();
    if transfer.is_empty() || transfer.chars().count() > 200 {
        anyhow::bail!("--transfer must name the transfer (1 to 200 characters)");
    }
    let head = store.head();
    let mut found: BTreeMap<String, (Uuid, KeyId)> = BTreeMap::new();
    for rec in avvik_events::read_all(store.as_ref(), 1) {
        let rec = match rec {
            Ok(r) => r,
            Err(StoreError::Corrupt { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        if let (Some(kid), Some(dev)) = (kid_in(&rec.data), deviation_of_record(&rec)) {
            found.entry(kid.to_string()).or_insert((dev, kid));
        }
    }
    let mut entries = Vec::new();
    let mut gallrade = 0;
    for (kid_s, (deviation, kid)) in &found {
        match keys.keys().get(*kid) {
            KeyState::Live(k) => entries.push(KeyFileEntry {
                deviation: *deviation,
                kid: kid_s.clone(),
                key: B64.encode(k.0),
            }),
            KeyState::Destroyed(_) => gallrade += 1,
            KeyState::Missing(why) => anyhow::bail!("key {kid_s} cannot be read: {why}"),
        }
    }
    let fact = DataKeysExported {
        transfer: transfer.to_string(),
        keys: entries.len() as u64,
        gallrade,
        head_seq: head.seq,
    };
    let f2 = Fact::new(DATA_KEYS_EXPORTED, &fact);
    commands
        .execute::<(), _, CommandError>(
            &Envelope::new(TRANSFERS_STREAM, actor).expect_any(),
            stateless(),
            move |_, _| Ok(vec![f2.clone()]),
        )
        .await?;
    let file = KeyFile {
        transfer: transfer.to_string(),
        head_seq: head.seq,
        head_hash: head.hash,
        keys: entries,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(out)?;
    f.write_all(&serde_json::to_vec_pretty(&file)?)?;
    f.sync_all()?;
    Ok(fact)
}

/// Puts the keys of a transfer file into `store` (another installation's key store).
pub fn import_keys(store: &FileKeyStore, file: &Path) -> anyhow::Result<usize> {
    let f: KeyFile = serde_json::from_slice(&std::fs::read(file)?)?;
    for e in &f.keys {
        let kid = KeyId::parse(&e.kid).ok_or_else(|| anyhow::anyhow!("bad key id {}", e.kid))?;
        let bytes = B64.decode(&e.key)?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("key {} is not 32 bytes", e.kid))?;
        store.import_key(kid, &DataKey(key))?;
    }
    Ok(f.keys.len())
}
