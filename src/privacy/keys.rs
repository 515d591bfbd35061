//! The data-key store: one random 256-bit key per deviation, kept outside the log under
//! `<data>/keys/`, each wrapped (AES-256-GCM; XChaCha20-Poly1305 in batches written before
//! it, which still read) by a key derived from `secret.key`.
//!
//! Keys are made ahead in batches: a batch file holds [`SLOTS`] wrapped keys, written and
//! fsynced once, so giving a new deviation its key costs no disk write of its own — the
//! key's id (batch and slot) is recorded in the events it seals, and the batch was on disk
//! before any of them. A slot is handed out once: a process never reuses a batch it did not
//! create, so after a restart the unclaimed slots of older batches are simply never used.
//!
//! Destroying a key overwrites its slot in place with a tombstone (when and under which
//! gallringsbeslut) and fdatasyncs the file. The tombstone is what every later read shows in
//! place of the shredded fields; the key itself is gone from the file.
//!
//! On a store several nodes share (PostgreSQL), the batches are the same bytes in the
//! store's shared files (kind [`SHARED_KIND`]) instead of the directory, so every node
//! opens what any node sealed, and a key destroyed on one is gone for all.

use super::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use avvik_events::SharedFiles;
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use chrono::{DateTime, Utc};
use rand::RngCore;
use uuid::Uuid;

use crate::secret::Secret;

/// The directory under the data directory.
pub const KEYS_DIR: &str = "keys";
/// The kind of the batches among a shared store's files.
pub const SHARED_KIND: &str = "data-keys";
/// Wrapped keys per batch file.
pub const SLOTS: u32 = 1024;
const SLOT_BYTES: usize = 128;
/// The header of a batch whose slots are wrapped with XChaCha20-Poly1305 (read, never
/// written any more).
const HEADER_V1: &[u8; 16] = b"AVVIK-KEYS-v1\0\0\0";
/// The header of a batch whose slots are wrapped with AES-256-GCM.
const HEADER: &[u8; 16] = b"AVVIK-KEYS-v2\0\0\0";
const LIVE: u8 = 1;
const DESTROYED: u8 = 2;
/// Bytes of a gallringsbeslut reference a tombstone keeps.
pub const MAX_DECISION_BYTES: usize = SLOT_BYTES - 11;

/// A data key in the clear (in memory only).
#[derive(Clone)]
pub struct DataKey(pub(crate) [u8; 32]);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// Where a key is: its batch file and slot. Stored in the events as `<batch hex>-<slot>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId {
    pub batch: Uuid,
    pub slot: u32,
}

impl KeyId {
    pub fn parse(s: &str) -> Option<Self> {
        let (b, n) = s.split_once('-')?;
        if b.len() != 32 {
            return None;
        }
        let slot: u32 = n.parse().ok()?;
        (slot < SLOTS).then_some(())?;
        Some(Self {
            batch: Uuid::try_parse(b).ok()?,
            slot,
        })
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.batch.simple(), self.slot)
    }
}

/// What gallring left in place of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tombstone {
    pub at: DateTime<Utc>,
    /// The gallringsbeslut's reference.
    pub decision: String,
}

impl Tombstone {
    /// The words every view shows in place of a shredded field.
    pub fn text(&self) -> String {
        crate::domain::deviation::shredded_text(self.at, &self.decision)
    }
}

/// A key as the store has it.
#[derive(Debug, Clone)]
pub enum KeyState {
    Live(DataKey),
    Destroyed(Tombstone),
    /// No such key (a batch file missing, or a slot that does not unwrap).
    Missing(String),
}

/// Where data keys live. The file store below is the built-in one; an external KMS can
/// implement the same trait.
pub trait KeyStore: Send + Sync {
    /// A fresh key no other deviation has, durable before this returns.
    fn create(&self) -> std::io::Result<(KeyId, DataKey)>;
    fn get(&self, id: KeyId) -> KeyState;
    /// Overwrites the key with its tombstone, durably. Destroying a destroyed key keeps
    /// the first tombstone.
    fn destroy(&self, id: KeyId, tombstone: &Tombstone) -> std::io::Result<()>;
}

/// The key-wrapping keys, both derived from `secret.key`.
#[derive(Clone)]
struct Wrap {
    v1: XChaCha20Poly1305,
    v2: Aes256Gcm,
}

/// A batch file's format, from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    /// Slot: LIVE, 24-byte nonce, wrapped key and tag (XChaCha20-Poly1305).
    V1,
    /// Slot: LIVE, 12-byte nonce, wrapped key and tag (AES-256-GCM).
    V2,
}

impl Version {
    fn of(header: &[u8]) -> Option<Self> {
        if header == HEADER {
            Some(Self::V2)
        } else if header == HEADER_V1 {
            Some(Self::V1)
        } else {
            None
        }
    }
}

impl Wrap {
    fn from_secret(secret: &Secret) -> Self {
        Wrap {
            v1: XChaCha20Poly1305::new(&secret.derive("data-key-wrap-v1").into()),
            v2: Aes256Gcm::new(&secret.derive("data-key-wrap-v2").into()),
        }
    }

    /// A live slot holding `key` wrapped for a batch of `version`.
    fn slot(
        &self,
        version: Version,
        id: KeyId,
        key: &[u8; 32],
    ) -> std::io::Result<[u8; SLOT_BYTES]> {
        let aad = FileKeyStore::aad(id);
        let payload = Payload {
            msg: key,
            aad: &aad,
        };
        let mut rng = rand::thread_rng();
        let mut rec = [0u8; SLOT_BYTES];
        rec[0] = LIVE;
        let (n, wrapped) = match version {
            Version::V1 => {
                let mut nonce = [0u8; 24];
                rng.fill_bytes(&mut nonce);
                rec[1..25].copy_from_slice(&nonce);
                (24, self.v1.encrypt(XNonce::from_slice(&nonce), payload))
            }
            Version::V2 => {
                let mut nonce = [0u8; 12];
                rng.fill_bytes(&mut nonce);
                rec[1..13].copy_from_slice(&nonce);
                (12, self.v2.encrypt(Nonce::from_slice(&nonce), payload))
            }
        };
        let wrapped = wrapped.map_err(|_| std::io::Error::other("wrapping a data key failed"))?;
        rec[1 + n..1 + n + wrapped.len()].copy_from_slice(&wrapped);
        Ok(rec)
    }
}

/// Where the batches are kept.
#[derive(Clone)]
enum Place {
    /// Files under `<data>/keys/`.
    Dir(PathBuf),
    /// The files every node of the installation shares.
    Shared(Arc<dyn SharedFiles>),
}

fn shared_error(e: avvik_events::StoreError) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl Place {
    fn name(batch: Uuid) -> String {
        format!("{}.keys", batch.simple())
    }

    /// A whole batch; `NotFound` if there is none.
    fn read(&self, batch: Uuid) -> std::io::Result<Vec<u8>> {
        match self {
            Place::Dir(dir) => std::fs::read(dir.join(Self::name(batch))),
            Place::Shared(files) => files
                .read(SHARED_KIND, &Self::name(batch))
                .map_err(shared_error)?
                .ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::NotFound, "no such key batch")
                }),
        }
    }

    /// Stores a new batch, durably: temp file, fsync, rename, fsync the directory; or one
    /// committed row. `AlreadyExists` if the batch is there.
    fn write_new(&self, batch: Uuid, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Place::Dir(dir) => {
                let path = dir.join(Self::name(batch));
                if path.exists() {
                    return Err(std::io::ErrorKind::AlreadyExists.into());
                }
                let tmp = dir.join(format!(".tmp-{}", batch.simple()));
                let mut opts = OpenOptions::new();
                opts.write(true).create(true).truncate(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                let mut f = opts.open(&tmp)?;
                f.write_all(buf)?;
                f.sync_all()?;
                std::fs::rename(&tmp, &path)?;
                File::open(dir)?.sync_all()
            }
            Place::Shared(files) => {
                if files
                    .create(SHARED_KIND, &Self::name(batch), buf)
                    .map_err(shared_error)?
                {
                    Ok(())
                } else {
                    Err(std::io::ErrorKind::AlreadyExists.into())
                }
            }
        }
    }

    /// Overwrites bytes of a batch in place, durably.
    fn write_at(&self, batch: Uuid, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Place::Dir(dir) => {
                let f = OpenOptions::new()
                    .write(true)
                    .open(dir.join(Self::name(batch)))?;
                f.write_all_at(bytes, offset)?;
                f.sync_data()
            }
            Place::Shared(files) => {
                if files
                    .write_at(SHARED_KIND, &Self::name(batch), offset, bytes)
                    .map_err(shared_error)?
                {
                    Ok(())
                } else {
                    Err(std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "no such key batch",
                    ))
                }
            }
        }
    }

    /// Every batch there is.
    fn batches(&self) -> std::io::Result<Vec<Uuid>> {
        let names = match self {
            Place::Dir(dir) => std::fs::read_dir(dir)?
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect(),
            Place::Shared(files) => files.list(SHARED_KIND).map_err(shared_error)?,
        };
        Ok(names
            .iter()
            .filter_map(|n| n.strip_suffix(".keys"))
            .filter_map(|b| Uuid::try_parse(b).ok())
            .collect())
    }
}

/// A key store's batches as they are, for copying them between stores (`avvik migrate`):
/// the wrapping is not redone, so both sides must use the same secret.
pub struct KeyBatches(Place);

impl KeyBatches {
    /// The batches under `data_dir/keys`.
    pub fn in_dir(data_dir: &Path) -> std::io::Result<Self> {
        let dir = data_dir.join(KEYS_DIR);
        std::fs::create_dir_all(&dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(Self(Place::Dir(dir)))
    }

    /// The batches in a shared store's files.
    pub fn shared(files: Arc<dyn SharedFiles>) -> Self {
        Self(Place::Shared(files))
    }

    /// Whether there is no batch at all.
    pub fn is_empty(&self) -> std::io::Result<bool> {
        Ok(self.0.batches()?.is_empty())
    }

    /// Copies every batch `to` lacks, byte for byte; returns how many.
    pub fn copy_into(&self, to: &KeyBatches) -> std::io::Result<usize> {
        let have: std::collections::HashSet<Uuid> = to.0.batches()?.into_iter().collect();
        let mut n = 0;
        for batch in self.0.batches()? {
            if !have.contains(&batch) {
                to.0.write_new(batch, &self.0.read(batch)?)?;
                n += 1;
            }
        }
        Ok(n)
    }
}

/// The built-in key store: batch files under `<data>/keys/`, or in the files a shared
/// store gives every node.
pub struct FileKeyStore {
    dir: PathBuf,
    place: Place,
    wrap: Wrap,
    /// The batch this process hands out slots from, and the next free slot.
    current: Mutex<Option<(Uuid, u32)>>,
    /// The next batch, made (and fsynced) ahead on a thread of its own once half of the
    /// current one is handed out, so no report waits for a batch to be written.
    spare: std::sync::Arc<Mutex<Option<Uuid>>>,
    cache: RwLock<HashMap<KeyId, KeyState>>,
}

impl FileKeyStore {
    pub fn open(data_dir: &Path, secret: &Secret) -> std::io::Result<Self> {
        let dir = data_dir.join(KEYS_DIR);
        std::fs::create_dir_all(&dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        }
        let wrap = Wrap::from_secret(secret);
        Ok(Self {
            place: Place::Dir(dir.clone()),
            dir,
            wrap,
            current: Mutex::new(None),
            spare: Default::default(),
            cache: RwLock::new(HashMap::default()),
        })
    }

    /// The key store whose batches are `files` (the shared store's), wrapped under
    /// `secret`.
    pub fn shared(files: Arc<dyn SharedFiles>, secret: &Secret) -> Self {
        Self {
            dir: PathBuf::new(),
            place: Place::Shared(files),
            wrap: Wrap::from_secret(secret),
            current: Mutex::new(None),
            spare: Default::default(),
            cache: RwLock::new(HashMap::default()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn batch_path(&self, batch: Uuid) -> PathBuf {
        self.dir.join(format!("{}.keys", batch.simple()))
    }

    fn aad(id: KeyId) -> [u8; 20] {
        let mut a = [0u8; 20];
        a[..16].copy_from_slice(id.batch.as_bytes());
        a[16..].copy_from_slice(&id.slot.to_be_bytes());
        a
    }

    fn new_batch(&self) -> std::io::Result<Uuid> {
        Self::write_batch(&self.place, &self.wrap)
    }

    /// Makes the next batch ahead, unless one is ready or being made.
    fn make_spare(&self) {
        let spare = self.spare.clone();
        if spare.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
            return;
        }
        let (place, wrap) = (self.place.clone(), self.wrap.clone());
        let made = std::thread::Builder::new()
            .name("avvik-key-batch".into())
            .spawn(move || match Self::write_batch(&place, &wrap) {
                Ok(b) => {
                    let mut s = spare.lock().unwrap_or_else(|p| p.into_inner());
                    if s.is_none() {
                        *s = Some(b);
                    }
                }
                // The next report makes its batch itself (and reports the error).
                Err(e) => tracing::warn!(error = %e, "making a data key batch ahead failed"),
            });
        if let Err(e) = made {
            tracing::warn!(error = %e, "could not start the key batch thread");
        }
    }

    /// Writes a new batch of wrapped keys (durable before it returns).
    fn write_batch(place: &Place, wrap: &Wrap) -> std::io::Result<Uuid> {
        let batch = Uuid::new_v4();
        let mut buf = Vec::with_capacity(HEADER.len() + SLOTS as usize * SLOT_BYTES);
        buf.extend_from_slice(HEADER);
        let mut rng = rand::thread_rng();
        for slot in 0..SLOTS {
            let mut key = [0u8; 32];
            rng.fill_bytes(&mut key);
            buf.extend_from_slice(&wrap.slot(Version::V2, KeyId { batch, slot }, &key)?);
            key.fill(0);
        }
        place.write_new(batch, &buf)?;
        Ok(batch)
    }

    fn read_slot(&self, id: KeyId) -> std::io::Result<(Version, [u8; SLOT_BYTES])> {
        if let Place::Dir(_) = self.place {
            let mut f = File::open(self.batch_path(id.batch))?;
            let mut header = [0u8; 16];
            f.read_exact(&mut header)?;
            let version = Version::of(&header).ok_or_else(not_a_batch)?;
            f.seek(SeekFrom::Start(Self::offset(id)))?;
            let mut rec = [0u8; SLOT_BYTES];
            f.read_exact(&mut rec)?;
            return Ok((version, rec));
        }
        let bytes = self.place.read(id.batch)?;
        let version = bytes
            .get(..HEADER.len())
            .and_then(Version::of)
            .ok_or_else(not_a_batch)?;
        let off = Self::offset(id) as usize;
        let mut rec = [0u8; SLOT_BYTES];
        rec.copy_from_slice(bytes.get(off..off + SLOT_BYTES).ok_or_else(not_a_batch)?);
        Ok((version, rec))
    }

    fn offset(id: KeyId) -> u64 {
        HEADER.len() as u64 + u64::from(id.slot) * SLOT_BYTES as u64
    }

    fn decode_slot(&self, version: Version, id: KeyId, rec: &[u8; SLOT_BYTES]) -> KeyState {
        match rec[0] {
            LIVE => {
                let aad = Self::aad(id);
                let payload = |n: usize| Payload {
                    msg: &rec[1 + n..1 + n + 48],
                    aad: &aad,
                };
                let unwrapped = match version {
                    Version::V1 => self
                        .wrap
                        .v1
                        .decrypt(XNonce::from_slice(&rec[1..25]), payload(24)),
                    Version::V2 => self
                        .wrap
                        .v2
                        .decrypt(Nonce::from_slice(&rec[1..13]), payload(12)),
                };
                match unwrapped {
                    Ok(k) if k.len() == 32 => {
                        let mut key = [0u8; 32];
                        key.copy_from_slice(&k);
                        KeyState::Live(DataKey(key))
                    }
                    _ => KeyState::Missing(
                        "the key does not unwrap (was secret.key replaced?)".into(),
                    ),
                }
            }
            DESTROYED => {
                let secs = i64::from_be_bytes(rec[1..9].try_into().unwrap_or([0; 8]));
                let len =
                    usize::from(u16::from_be_bytes([rec[9], rec[10]])).min(MAX_DECISION_BYTES);
                KeyState::Destroyed(Tombstone {
                    at: DateTime::from_timestamp(secs, 0).unwrap_or_default(),
                    decision: String::from_utf8_lossy(&rec[11..11 + len]).into_owned(),
                })
            }
            _ => KeyState::Missing("an unused key slot".into()),
        }
    }
}

impl FileKeyStore {
    /// Puts a key from a transfer into its slot (creating the batch file with the other
    /// slots unused), wrapped under this installation's secret. A live or destroyed slot is
    /// left as it is.
    pub fn import_key(&self, id: KeyId, key: &DataKey) -> std::io::Result<()> {
        if let Err(e) = self.place.read(id.batch) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(e);
            }
            let mut buf = Vec::with_capacity(HEADER.len() + SLOTS as usize * SLOT_BYTES);
            buf.extend_from_slice(HEADER);
            buf.resize(HEADER.len() + SLOTS as usize * SLOT_BYTES, 0);
            match self.place.write_new(id.batch, &buf) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
        }
        let (version, rec) = self.read_slot(id)?;
        if rec[0] == LIVE || rec[0] == DESTROYED {
            return Ok(());
        }
        let out = self.wrap.slot(version, id, &key.0)?;
        self.place.write_at(id.batch, Self::offset(id), &out)?;
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        Ok(())
    }
}

fn not_a_batch() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, "not an avvik key batch")
}

/// `s` cut to at most `max` bytes at a character boundary.
pub fn truncate_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl KeyStore for FileKeyStore {
    fn create(&self) -> std::io::Result<(KeyId, DataKey)> {
        let id = {
            let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
            let (batch, slot) = match *cur {
                Some((b, s)) if s < SLOTS => (b, s),
                _ => {
                    let ready = self.spare.lock().unwrap_or_else(|p| p.into_inner()).take();
                    match ready {
                        Some(b) => (b, 0),
                        None => (self.new_batch()?, 0),
                    }
                }
            };
            *cur = Some((batch, slot + 1));
            if slot == SLOTS / 2 {
                self.make_spare();
            }
            KeyId { batch, slot }
        };
        match self.get(id) {
            KeyState::Live(k) => Ok((id, k)),
            KeyState::Destroyed(_) => Err(std::io::Error::other("a fresh key slot is destroyed")),
            KeyState::Missing(why) => Err(std::io::Error::other(why)),
        }
    }

    fn get(&self, id: KeyId) -> KeyState {
        if let Some(s) = self
            .cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            return s.clone();
        }
        // A miss reads and unwraps the whole batch at once: replaying a log meets the keys of
        // one batch one after the other, and one read beats 128.
        let (version, bytes) = match self.place.read(id.batch) {
            Ok(b) => match b.get(..HEADER.len()).and_then(Version::of) {
                Some(v) => (v, b),
                None => return KeyState::Missing("not an avvik key batch".into()),
            },
            Err(e) => return KeyState::Missing(format!("key batch unreadable: {e}")),
        };
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        for slot in 0..SLOTS {
            let k = KeyId {
                batch: id.batch,
                slot,
            };
            let off = Self::offset(k) as usize;
            let Some(rec) = bytes.get(off..off + SLOT_BYTES) else {
                break;
            };
            let mut r = [0u8; SLOT_BYTES];
            r.copy_from_slice(rec);
            let state = self.decode_slot(version, k, &r);
            cache.entry(k).or_insert(state);
        }
        cache
            .get(&id)
            .cloned()
            .unwrap_or_else(|| KeyState::Missing("no such key slot".into()))
    }

    fn destroy(&self, id: KeyId, tombstone: &Tombstone) -> std::io::Result<()> {
        let (_, rec) = self.read_slot(id)?;
        if rec[0] == DESTROYED {
            return Ok(());
        }
        let decision = truncate_bytes(&tombstone.decision, MAX_DECISION_BYTES);
        let mut out = [0u8; SLOT_BYTES];
        out[0] = DESTROYED;
        out[1..9].copy_from_slice(&tombstone.at.timestamp().to_be_bytes());
        out[9..11].copy_from_slice(&(decision.len() as u16).to_be_bytes());
        out[11..11 + decision.len()].copy_from_slice(decision.as_bytes());
        self.place.write_at(id.batch, Self::offset(id), &out)?;
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                id,
                KeyState::Destroyed(Tombstone {
                    at: tombstone.at,
                    decision: decision.to_string(),
                }),
            );
        Ok(())
    }
}

/// Keys in memory only (unit tests, property tests): nothing survives the process.
#[derive(Default)]
pub struct MemoryKeyStore {
    keys: Mutex<HashMap<KeyId, KeyState>>,
}

impl MemoryKeyStore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl KeyStore for MemoryKeyStore {
    fn create(&self) -> std::io::Result<(KeyId, DataKey)> {
        let mut k = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut k);
        let id = KeyId {
            batch: Uuid::new_v4(),
            slot: 0,
        };
        self.keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, KeyState::Live(DataKey(k)));
        Ok((id, DataKey(k)))
    }

    fn get(&self, id: KeyId) -> KeyState {
        self.keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
            .unwrap_or_else(|| KeyState::Missing("no such key".into()))
    }

    fn destroy(&self, id: KeyId, tombstone: &Tombstone) -> std::io::Result<()> {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = keys.get_mut(&id) {
            if !matches!(k, KeyState::Destroyed(_)) {
                *k = KeyState::Destroyed(tombstone.clone());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path) -> FileKeyStore {
        FileKeyStore::open(dir, &Secret::from_bytes([7; 32])).unwrap()
    }

    #[test]
    fn keys_are_distinct_durable_and_destroyed_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let mut ids = Vec::new();
        for _ in 0..(SLOTS + 3) {
            ids.push(s.create().unwrap());
        }
        let distinct: std::collections::HashSet<[u8; 32]> = ids.iter().map(|(_, k)| k.0).collect();
        assert_eq!(
            distinct.len(),
            ids.len(),
            "every deviation gets its own key"
        );
        let (id, key) = ids[5].clone();
        let again = store(dir.path());
        let KeyState::Live(k) = again.get(id) else {
            panic!("a created key survives a reopen")
        };
        assert_eq!(k.0, key.0);
        let t = Tombstone {
            at: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            decision: "KS 2026/123".into(),
        };
        again.destroy(id, &t).unwrap();
        let third = store(dir.path());
        assert!(matches!(third.get(id), KeyState::Destroyed(ref x) if x == &t));
        // The wrapped key is gone from the file, not only marked.
        let bytes = std::fs::read(third.batch_path(id.batch)).unwrap();
        let off = FileKeyStore::offset(id) as usize;
        assert!(bytes[off + 11 + t.decision.len()..off + SLOT_BYTES]
            .iter()
            .all(|b| *b == 0));
        // A new process never hands out a slot of an older batch.
        let (fresh, _) = third.create().unwrap();
        assert!(ids.iter().all(|(i, _)| i.batch != fresh.batch));
        // Another secret cannot unwrap.
        let other = FileKeyStore::open(dir.path(), &Secret::from_bytes([8; 32])).unwrap();
        assert!(matches!(other.get(ids[0].0), KeyState::Missing(_)));
        assert_eq!(KeyId::parse(&id.to_string()), Some(id));
    }

    #[test]
    fn a_batch_written_before_aes_gcm_still_reads_imports_and_destroys() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        // A v1 batch as earlier versions wrote it: XChaCha20-Poly1305 slots.
        let batch = Uuid::new_v4();
        let mut buf = HEADER_V1.to_vec();
        let mut keys = Vec::new();
        for slot in 0..SLOTS {
            let key = [slot as u8; 32];
            let id = KeyId { batch, slot };
            if slot < 4 {
                buf.extend_from_slice(&s.wrap.slot(Version::V1, id, &key).unwrap());
                keys.push((id, key));
            } else {
                buf.extend_from_slice(&[0u8; SLOT_BYTES]);
            }
        }
        std::fs::write(s.batch_path(batch), &buf).unwrap();
        for (id, key) in &keys {
            assert!(matches!(s.get(*id), KeyState::Live(ref k) if &k.0 == key));
        }
        // A transferred key into an unused slot of that batch is wrapped the v1 way.
        let id = KeyId { batch, slot: 9 };
        s.import_key(id, &DataKey([99; 32])).unwrap();
        let again = store(dir.path());
        assert!(matches!(again.get(id), KeyState::Live(ref k) if k.0 == [99; 32]));
        let t = Tombstone {
            at: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            decision: "KS 2026/9".into(),
        };
        again.destroy(keys[1].0, &t).unwrap();
        assert!(matches!(store(dir.path()).get(keys[1].0), KeyState::Destroyed(ref x) if x == &t));
        // New batches are v2.
        let (fresh, _) = again.create().unwrap();
        let head = std::fs::read(again.batch_path(fresh.batch)).unwrap();
        assert_eq!(&head[..16], HEADER);
    }
}
