//! Privacy by design: the personal and free-text fields of a deviation's events are stored
//! sealed under that deviation's own data key (AES-256-GCM, the event id and key id as
//! associated data; see [`aead`]), so destroying the key (gallring) removes them from the log, every
//! export, archive segment and backup at once, while the hash chain — over the stored
//! bytes — still verifies without any key.
//!
//! A sealed event's `data` keeps its clear fields and gains
//! `"sealed": {"kid": key id, "a": "A256GCM", "n": nonce, "c": ciphertext, "f": [sealed
//! field names]}` (no `"a"`: XChaCha20-Poly1305, as sealed before AES-256-GCM) and,
//! where it names people by address, `"blind_index": [HMAC of each address]` for the
//! registerutdrag. [`Keyring::seal`] is called by the command handler on every event it
//! stores; [`Keyring::open`] by every reader that decodes events. Events written before
//! sealing existed have no `sealed` and read as they are.

pub mod aead;
pub mod gallring;
pub mod keys;
pub mod migrate;
pub mod seal;

use std::borrow::Cow;
/// Maps keyed by random ids: foldhash, seeded per process, is several times cheaper than
/// SipHash here.
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use std::sync::{Arc, RwLock};

use avvik_events::EventStore;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use aead::Alg;
use rand::RngCore;
use serde_json::{Map, Value};
use uuid::Uuid;

pub use keys::{DataKey, FileKeyStore, KeyId, KeyState, KeyStore, MemoryKeyStore, Tombstone};
use seal::{Blank, Indexed, KeyedBy, Spec};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD_NO_PAD;
const AAD_PREFIX: &[u8] = b"avvik-sealed-v1\0";

/// Where attachment files of a deviation are kept, under the data directory
/// (`attachments/<deviation>/<sha256>`, sealed with the deviation's key).
pub const ATTACHMENTS_DIR: &str = "attachments";
/// The kind of the attachment and quarantine files among a shared store's files (named
/// as under the data directory: `attachments/<deviation>/<sha256>` …).
pub const BLOBS_KIND: &str = "blobs";

/// What a field reads as when its key is gone without a gallring (a lost key store).
pub const KEY_MISSING_TEXT: &str = "[krypterad uppgift: nyckeln saknas]";

/// Seals and opens event data with the deviations' keys.
pub struct Keyring {
    keys: Arc<dyn KeyStore>,
    index_key: [u8; 32],
    /// Each deviation's key, as its first sealed event names it.
    key_of: RwLock<HashMap<Uuid, KeyId>>,
    /// The data directory (gallring intents, attachment files); `None` in unit tests.
    data_dir: Option<std::path::PathBuf>,
    /// The files every node shares, on a shared store (where the attachments are then).
    shared: Option<Arc<dyn avvik_events::SharedFiles>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyring")
    }
}

/// What opening found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// Nothing was sealed (an event without personal fields, or from before sealing).
    Clear,
    /// The sealed fields are back.
    Open,
    /// The key was destroyed by gallring: the fields read as its tombstone.
    Shredded(Tombstone),
    /// The key cannot be found or used (never expected): the fields read as missing.
    KeyMissing(String),
}

impl Keyring {
    pub fn new(keys: Arc<dyn KeyStore>, secret: &crate::secret::Secret) -> Self {
        Self {
            keys,
            index_key: secret.derive("blind-index-v1"),
            key_of: RwLock::new(HashMap::default()),
            data_dir: None,
            shared: None,
        }
    }

    /// Keys in memory, for tests.
    pub fn in_memory() -> Arc<Self> {
        Arc::new(Self::new(
            Arc::new(keys::MemoryKeyStore::new()),
            &crate::secret::Secret::from_bytes([9; 32]),
        ))
    }

    pub fn data_dir(&self) -> Option<&std::path::Path> {
        self.data_dir.as_deref()
    }

    /// The key store under `data_dir/keys`.
    pub fn open_dir(
        data_dir: &std::path::Path,
        secret: &crate::secret::Secret,
    ) -> std::io::Result<Arc<Self>> {
        let mut k = Self::new(Arc::new(FileKeyStore::open(data_dir, secret)?), secret);
        k.data_dir = Some(data_dir.to_path_buf());
        Ok(Arc::new(k))
    }

    /// The key store for `store`: the files every node shares when the store has them
    /// (PostgreSQL), else `data_dir/keys`. Gallring intents and attachment files stay in
    /// `data_dir`.
    pub fn open_for(
        store: &dyn avvik_events::EventStore,
        data_dir: &std::path::Path,
        secret: &crate::secret::Secret,
    ) -> std::io::Result<Arc<Self>> {
        let Some(files) = store.shared_files() else {
            return Self::open_dir(data_dir, secret);
        };
        std::fs::create_dir_all(data_dir)?;
        let mut k = Self::new(
            Arc::new(FileKeyStore::shared(files.clone(), secret)),
            secret,
        );
        k.data_dir = Some(data_dir.to_path_buf());
        k.shared = Some(files);
        Ok(Arc::new(k))
    }

    /// The files every node shares, on a shared store.
    pub fn shared_files(&self) -> Option<&Arc<dyn avvik_events::SharedFiles>> {
        self.shared.as_ref()
    }

    pub fn keys(&self) -> &dyn KeyStore {
        self.keys.as_ref()
    }

    /// The blind index of an e-mail address: hex HMAC-SHA256 of its normalised form. `None`
    /// when it is not an address.
    pub fn blind_index(&self, address: &str) -> Option<String> {
        use hmac::{Hmac, Mac};
        let norm = seal::normalize_address(address)?;
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.index_key)
            .expect("HMAC takes keys of any length");
        mac.update(norm.as_bytes());
        Some(hex::encode(mac.finalize().into_bytes()))
    }

    /// The deviation whose key seals this event, if the event has sealed fields.
    fn deviation_of(spec: &Spec, stream: Uuid, data: &Map<String, Value>) -> Option<Uuid> {
        match spec.keyed_by {
            KeyedBy::Stream => Some(stream),
            KeyedBy::Field(f) => data.get(f)?.as_str().and_then(|s| Uuid::try_parse(s).ok()),
        }
    }

    /// The key id of a deviation: known, or named by a sealed event of its stream, or new.
    fn key_for(&self, store: &dyn EventStore, deviation: Uuid) -> std::io::Result<KeyId> {
        if let Some(k) = self.read_key_of().get(&deviation) {
            return Ok(*k);
        }
        let named = store
            .read_stream(deviation, 1)
            .map_err(std::io::Error::other)?
            .iter()
            .find_map(|r| kid_in(&r.data));
        let mut map = self.key_of.write().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = map.get(&deviation) {
            return Ok(*k);
        }
        let kid = match named {
            Some(k) => k,
            None => self.keys.create()?.0,
        };
        map.insert(deviation, kid);
        Ok(kid)
    }

    fn read_key_of(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Uuid, KeyId>> {
        self.key_of.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives a stream that does not exist yet (the store refuses the commit otherwise) its
    /// key before the commit that will seal with it: no lookup in the store, so a report
    /// can be taken (and the store recover) while reads fail.
    pub fn prepare_new(&self, deviation: Uuid) -> std::io::Result<()> {
        if self.read_key_of().contains_key(&deviation) {
            return Ok(());
        }
        let mut map = self.key_of.write().unwrap_or_else(|p| p.into_inner());
        if let std::collections::hash_map::Entry::Vacant(e) = map.entry(deviation) {
            e.insert(self.keys.create()?.0);
        }
        Ok(())
    }

    /// Every key a deviation's data may be sealed with: the one it is known by and any its
    /// stream's events name (gallring destroys them all).
    pub fn key_ids_of(&self, store: &dyn EventStore, deviation: Uuid) -> Vec<KeyId> {
        let mut out: Vec<KeyId> = self
            .read_key_of()
            .get(&deviation)
            .copied()
            .into_iter()
            .collect();
        for k in store
            .read_stream(deviation, 1)
            .unwrap_or_default()
            .iter()
            .filter_map(|r| kid_in(&r.data))
        {
            if !out.contains(&k) {
                out.push(k);
            }
        }
        out
    }

    /// The key id a deviation's events are sealed with, if any is known or stored.
    pub fn key_id_of(&self, store: &dyn EventStore, deviation: Uuid) -> Option<KeyId> {
        if let Some(k) = self.read_key_of().get(&deviation) {
            return Some(*k);
        }
        store
            .read_stream(deviation, 1)
            .ok()?
            .iter()
            .find_map(|r| kid_in(&r.data))
    }

    /// Seals the personal fields of an event about to be stored. Events without such
    /// fields come back as they are. A deviation already shredded gets its fields dropped,
    /// never stored in the clear.
    pub fn seal(
        &self,
        store: &dyn EventStore,
        stream: Uuid,
        event_id: Uuid,
        event_type: &str,
        data: Value,
    ) -> std::io::Result<Value> {
        let Some(spec) = seal::spec(event_type) else {
            return Ok(data);
        };
        let Value::Object(mut obj) = data else {
            return Ok(data);
        };
        let Some(deviation) = Self::deviation_of(spec, stream, &obj) else {
            return Ok(Value::Object(obj));
        };
        let index = self.index_of(spec, &obj);
        let mut sealed = Map::new();
        for (f, _) in spec.fields {
            if let Some(v) = obj.remove(*f) {
                if !v.is_null() {
                    sealed.insert((*f).to_string(), v);
                }
            }
        }
        if sealed.is_empty() {
            return Ok(Value::Object(obj));
        }
        let kid = self.key_for(store, deviation)?;
        let names: Vec<Value> = sealed.keys().map(|k| Value::String(k.clone())).collect();
        let mut env = Map::new();
        env.insert("kid".into(), Value::String(kid.to_string()));
        env.insert("f".into(), Value::Array(names));
        match self.keys.get(kid) {
            KeyState::Live(key) => {
                let mut buf = serde_json::to_vec(&Value::Object(sealed))?;
                let nonce = aead::seal_in_place(&key.0, &aad(event_id, kid), &mut buf)
                    .ok_or_else(|| std::io::Error::other("sealing failed"))?;
                env.insert("a".into(), Value::String(aead::A256GCM.into()));
                env.insert("n".into(), Value::String(B64.encode(nonce)));
                env.insert("c".into(), Value::String(B64.encode(buf)));
            }
            KeyState::Destroyed(_) => {
                env.insert("shredded".into(), Value::Bool(true));
            }
            KeyState::Missing(why) => {
                return Err(std::io::Error::other(format!(
                    "the data key of deviation {deviation} cannot be used: {why}"
                )))
            }
        }
        if !index.is_empty() {
            obj.insert(
                "blind_index".into(),
                Value::Array(index.into_iter().map(Value::String).collect()),
            );
        }
        obj.insert("sealed".into(), Value::Object(env));
        Ok(Value::Object(obj))
    }

    fn index_of(&self, spec: &Spec, obj: &Map<String, Value>) -> Vec<String> {
        let mut out = Vec::new();
        for ix in spec.indexed {
            let addrs: Vec<&str> = match ix {
                Indexed::Field(f) => obj.get(*f).and_then(Value::as_str).into_iter().collect(),
                Indexed::Nested(f, sub) => obj
                    .get(*f)
                    .and_then(|v| v.get(*sub))
                    .and_then(Value::as_str)
                    .into_iter()
                    .collect(),
                Indexed::List(f) => obj
                    .get(*f)
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default(),
            };
            for a in addrs {
                if let Some(h) = self.blind_index(a) {
                    if !out.contains(&h) {
                        out.push(h);
                    }
                }
            }
        }
        out
    }

    /// Opens a stored event's data in place: the sealed fields come back, or read as the
    /// tombstone when the key was destroyed.
    pub fn open(&self, stream: Uuid, event_id: Uuid, event_type: &str, data: &mut Value) -> Opened {
        let Some(Value::Object(obj)) = Some(data) else {
            return Opened::Clear;
        };
        let Some(Value::Object(env)) = obj.remove("sealed") else {
            return Opened::Clear;
        };
        obj.remove("blind_index");
        let names: Vec<String> = env
            .get("f")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let Some(kid) = env
            .get("kid")
            .and_then(Value::as_str)
            .and_then(KeyId::parse)
        else {
            return blank(
                obj,
                event_type,
                &names,
                KEY_MISSING_TEXT,
                Opened::KeyMissing("no key id".into()),
            );
        };
        if let Some(spec) = seal::spec(event_type) {
            if let Some(dev) = Self::deviation_of(spec, stream, obj) {
                self.remember_key(dev, kid);
            }
        }
        match self.keys.get(kid) {
            KeyState::Live(key) if env.get("c").is_some() => {
                match decrypt(&key, event_id, kid, &env) {
                    Some(Value::Object(fields)) => {
                        obj.extend(fields);
                        Opened::Open
                    }
                    _ => {
                        tracing::warn!(%event_id, "a sealed event does not open with its key");
                        blank(
                            obj,
                            event_type,
                            &names,
                            KEY_MISSING_TEXT,
                            Opened::KeyMissing("does not decrypt".into()),
                        )
                    }
                }
            }
            KeyState::Live(_) => blank(
                obj,
                event_type,
                &names,
                KEY_MISSING_TEXT,
                Opened::KeyMissing("sealed after gallring".into()),
            ),
            KeyState::Destroyed(t) => {
                let text = t.text();
                blank(obj, event_type, &names, &text, Opened::Shredded(t))
            }
            KeyState::Missing(why) => {
                tracing::warn!(%event_id, %kid, reason = %why, "the data key of a sealed event is missing");
                blank(
                    obj,
                    event_type,
                    &names,
                    KEY_MISSING_TEXT,
                    Opened::KeyMissing(why),
                )
            }
        }
    }

    /// Opens stored raw `data` JSON (start-up replay): borrowed when nothing is sealed.
    pub fn open_raw<'a>(
        &self,
        stream: Uuid,
        event_id: Uuid,
        event_type: &str,
        raw: &'a str,
    ) -> Cow<'a, str> {
        if !raw.contains("\"sealed\"") {
            return Cow::Borrowed(raw);
        }
        if let Some(fast) = self.open_raw_fast(stream, event_id, event_type, raw) {
            return Cow::Owned(fast);
        }
        let Ok(mut v) = serde_json::from_str::<Value>(raw) else {
            return Cow::Borrowed(raw);
        };
        self.open(stream, event_id, event_type, &mut v);
        Cow::Owned(v.to_string())
    }

    /// Seals a file that belongs to a deviation (an attachment): nonce and ciphertext, the
    /// deviation and the file's SHA-256 as associated data.
    pub fn seal_file(
        &self,
        store: &dyn EventStore,
        deviation: Uuid,
        sha256: &str,
        bytes: &[u8],
    ) -> std::io::Result<Vec<u8>> {
        let kid = self.key_for(store, deviation)?;
        let KeyState::Live(key) = self.keys.get(kid) else {
            return Err(std::io::Error::other(
                "the deviation is gallrad: its files are not kept",
            ));
        };
        let mut nonce = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut nonce);
        let aad = file_aad(deviation, sha256, kid);
        let c = XChaCha20Poly1305::new(&key.0.into())
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: bytes,
                    aad: &aad,
                },
            )
            .map_err(|_| std::io::Error::other("sealing a file failed"))?;
        let kid_s = kid.to_string();
        let mut out = Vec::with_capacity(2 + kid_s.len() + 24 + c.len());
        out.push(kid_s.len() as u8);
        out.extend_from_slice(kid_s.as_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&c);
        Ok(out)
    }

    /// Opens a file sealed by `seal_file`. `NotFound` once the key is destroyed.
    pub fn open_file(
        &self,
        deviation: Uuid,
        sha256: &str,
        sealed: &[u8],
    ) -> std::io::Result<Vec<u8>> {
        let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not a sealed file");
        let n = usize::from(*sealed.first().ok_or_else(bad)?);
        let kid = std::str::from_utf8(sealed.get(1..1 + n).ok_or_else(bad)?)
            .ok()
            .and_then(KeyId::parse)
            .ok_or_else(bad)?;
        let nonce = sealed.get(1 + n..1 + n + 24).ok_or_else(bad)?;
        let c = sealed.get(1 + n + 24..).ok_or_else(bad)?;
        match self.keys.get(kid) {
            KeyState::Live(key) => XChaCha20Poly1305::new(&key.0.into())
                .decrypt(
                    XNonce::from_slice(nonce),
                    Payload {
                        msg: c,
                        aad: &file_aad(deviation, sha256, kid),
                    },
                )
                .map_err(|_| bad()),
            KeyState::Destroyed(_) => {
                Err(std::io::Error::new(std::io::ErrorKind::NotFound, "gallrad"))
            }
            KeyState::Missing(why) => Err(std::io::Error::other(why)),
        }
    }

    /// The common case of `open_raw` without building JSON trees: a live key; the clear
    /// members are copied as they are and the plaintext's members appended. `None` for
    /// anything else (the general path handles it).
    fn open_raw_fast(
        &self,
        stream: Uuid,
        event_id: Uuid,
        event_type: &str,
        raw: &str,
    ) -> Option<String> {
        let Members { members, sealed } = serde_json::from_str(raw).ok()?;
        let env = sealed?;
        let kid = KeyId::parse(&env.kid)?;
        let alg = Alg::of_envelope(env.a.as_deref())?;
        let (n, c) = (env.n?, env.c?);
        let KeyState::Live(key) = self.keys.get(kid) else {
            return None;
        };
        let nonce = B64.decode(n.as_bytes()).ok()?;
        let mut plain = B64.decode(c.as_bytes()).ok()?;
        if !aead::open_in_place(alg, &key.0, &nonce, &aad(event_id, kid), &mut plain) {
            return None;
        }
        let plain = std::str::from_utf8(&plain).ok()?.trim();
        let inner = plain.strip_prefix('{')?.strip_suffix('}')?.trim();
        if let Some(spec) = seal::spec(event_type) {
            let dev = match spec.keyed_by {
                KeyedBy::Stream => Some(stream),
                KeyedBy::Field(f) => members
                    .iter()
                    .find(|(k, _)| k == f)
                    .and_then(|(_, v)| serde_json::from_str::<Uuid>(v.get()).ok()),
            };
            if let Some(dev) = dev {
                self.remember_key(dev, kid);
            }
        }
        let mut out = String::with_capacity(raw.len() + plain.len());
        out.push('{');
        for (k, v) in &members {
            if k == "blind_index" {
                continue;
            }
            if out.len() > 1 {
                out.push(',');
            }
            match k {
                // A key read without escapes is written back as it was.
                Cow::Borrowed(k) => {
                    out.push('"');
                    out.push_str(k);
                    out.push('"');
                }
                Cow::Owned(k) => out.push_str(&serde_json::to_string(k).ok()?),
            }
            out.push(':');
            out.push_str(v.get());
        }
        if !inner.is_empty() {
            if out.len() > 1 {
                out.push(',');
            }
            out.push_str(inner);
        }
        out.push('}');
        Some(out)
    }

    /// Notes the key a deviation's first sealed event names.
    fn remember_key(&self, deviation: Uuid, kid: KeyId) {
        if !self.read_key_of().contains_key(&deviation) {
            self.key_of
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .entry(deviation)
                .or_insert(kid);
        }
    }

    /// Opens a whole record in place.
    pub fn open_record(&self, rec: &mut avvik_events::RecordedEvent) -> Opened {
        self.open(rec.stream, rec.id, &rec.event_type, &mut rec.data)
    }

    /// A copy of the record, opened.
    pub fn opened(&self, rec: &avvik_events::RecordedEvent) -> avvik_events::RecordedEvent {
        let mut r = rec.clone();
        self.open_record(&mut r);
        r
    }
}

/// What start-up replay finds in a stored event's `data` (`Keyring::open_for_decode`).
pub enum ForDecode {
    /// Nothing is sealed: decode `data` as it is.
    Clear,
    /// The sealed members' JSON object, opened: decode `data` and these together
    /// ([`Spliced`]).
    Opened(String),
    /// Anything else (a shredded or missing key, an event keyed by a field, an envelope
    /// that does not open): the general path (`open_raw`) handles it.
    General,
}

/// The envelope of a sealed event as it is stored (compact JSON, as the store writes it):
/// the offset of its `{`.
fn envelope_at(raw: &str) -> Option<usize> {
    // A member name, not text inside a string (where the quotes would be escaped).
    const AFTER: &str = ",\"sealed\":{";
    const FIRST: &str = "{\"sealed\":{";
    let i = raw
        .find(AFTER)
        .or_else(|| raw.starts_with(FIRST).then_some(0))?;
    Some(i + AFTER.len() - 1)
}

impl Keyring {
    /// Opens a deviation event's sealed members for start-up replay without rewriting
    /// `data`: the plaintext comes back as it was sealed, to be decoded together with the
    /// clear members by [`Spliced`].
    pub fn open_for_decode(
        &self,
        stream: Uuid,
        event_id: Uuid,
        event_type: &str,
        raw: &str,
    ) -> ForDecode {
        let Some(at) = envelope_at(raw) else {
            return if raw.contains("\"sealed\"") {
                ForDecode::General
            } else {
                ForDecode::Clear
            };
        };
        match self.open_envelope(stream, event_id, event_type, &raw[at..]) {
            Some(plain) => ForDecode::Opened(plain),
            None => ForDecode::General,
        }
    }

    fn open_envelope(
        &self,
        stream: Uuid,
        event_id: Uuid,
        event_type: &str,
        from_envelope: &str,
    ) -> Option<String> {
        let spec = seal::spec(event_type)?;
        if !matches!(spec.keyed_by, KeyedBy::Stream) {
            return None;
        }
        let mut de = serde_json::Deserializer::from_str(from_envelope);
        let env = <Envelope as serde::Deserialize>::deserialize(&mut de).ok()?;
        let kid = KeyId::parse(&env.kid)?;
        let alg = Alg::of_envelope(env.a.as_deref())?;
        let (n, c) = (env.n?, env.c?);
        let KeyState::Live(key) = self.keys.get(kid) else {
            return None;
        };
        let mut nonce = [0u8; 24];
        let nonce_len = B64.decode_slice(n.as_bytes(), &mut nonce).ok()?;
        let mut plain = B64.decode(c.as_bytes()).ok()?;
        if !aead::open_in_place(
            alg,
            &key.0,
            &nonce[..nonce_len],
            &aad(event_id, kid),
            &mut plain,
        ) {
            return None;
        }
        self.remember_key(stream, kid);
        String::from_utf8(plain).ok()
    }
}

/// A sealed event's `data` and its opened members, read as one JSON object: the clear
/// members in their stored order, with the opened ones in place of `"sealed"` and no
/// `"blind_index"` — what `open_raw` would splice together, without building that text.
pub struct Spliced<'a> {
    pub clear: &'a str,
    pub opened: &'a str,
}

/// A member name, borrowed from the input unless it had escapes.
enum Key<'a> {
    Borrowed(&'a str),
    Owned(String),
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(s) => s,
            Key::Owned(s) => s,
        }
    }
}

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key::Borrowed(s))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key::Owned(s.to_string()))
            }
        }
        d.deserialize_str(V)
    }
}

/// Hands a member name to a struct's field visitor.
fn key_seed<'de, K, E>(key: Key<'de>, seed: K) -> Result<K::Value, E>
where
    K: serde::de::DeserializeSeed<'de>,
    E: serde::de::Error,
{
    match key {
        Key::Borrowed(s) => {
            seed.deserialize(serde::de::value::BorrowedStrDeserializer::<E>::new(s))
        }
        Key::Owned(s) => seed.deserialize(serde::de::value::StringDeserializer::<E>::new(s)),
    }
}

/// The opened members of a sealed event: name and raw value, in their order.
struct OpenedMembers<'a>(Vec<(Key<'a>, &'a serde_json::value::RawValue)>);

impl<'de> serde::Deserialize<'de> for OpenedMembers<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = OpenedMembers<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(m.size_hint().unwrap_or(8));
                while let Some(k) = m.next_key::<Key<'de>>()? {
                    out.push((k, m.next_value()?));
                }
                Ok(OpenedMembers(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> serde::Deserializer<'de> for Spliced<'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let opened: OpenedMembers<'de> = serde_json::from_str(self.opened)?;
        let mut de = serde_json::Deserializer::from_str(self.clear);
        let v = serde::Deserializer::deserialize_map(
            &mut de,
            SplicedVisitor {
                inner: visitor,
                opened: opened.0,
            },
        )?;
        de.end()?;
        Ok(v)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

struct SplicedVisitor<'de, V> {
    inner: V,
    opened: Vec<(Key<'de>, &'de serde_json::value::RawValue)>,
}

impl<'de, V: serde::de::Visitor<'de>> serde::de::Visitor<'de> for SplicedVisitor<'de, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.expecting(f)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_map(SplicedMap {
            clear: map,
            opened: self.opened.into_iter(),
            in_opened: false,
            pending: None,
        })
    }
}

struct SplicedMap<'de, A> {
    clear: A,
    opened: std::vec::IntoIter<(Key<'de>, &'de serde_json::value::RawValue)>,
    /// Handing out the opened members (in place of `"sealed"`).
    in_opened: bool,
    /// The value of the opened member whose name was handed out last.
    pending: Option<&'de serde_json::value::RawValue>,
}

impl<'de, A: serde::de::MapAccess<'de>> serde::de::MapAccess<'de> for SplicedMap<'de, A> {
    type Error = A::Error;

    fn next_key_seed<K: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        loop {
            if self.in_opened {
                if let Some((k, v)) = self.opened.next() {
                    self.pending = Some(v);
                    return key_seed(k, seed).map(Some);
                }
                self.in_opened = false;
            }
            let Some(k) = self.clear.next_key::<Key<'de>>()? else {
                return Ok(None);
            };
            match k.as_str() {
                "blind_index" => {
                    self.clear.next_value::<serde::de::IgnoredAny>()?;
                }
                "sealed" => {
                    self.clear.next_value::<serde::de::IgnoredAny>()?;
                    self.in_opened = true;
                }
                _ => return key_seed(k, seed).map(Some),
            }
        }
    }

    fn next_value_seed<T: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<T::Value, A::Error> {
        match self.pending.take() {
            Some(raw) => seed
                .deserialize(&mut serde_json::Deserializer::from_str(raw.get()))
                .map_err(serde::de::Error::custom),
            None => self.clear.next_value_seed(seed),
        }
    }
}

/// A sealed event's data read in one pass: the clear members in their stored order, each
/// value as its raw text, and the envelope decoded.
struct Members<'a> {
    members: Vec<(Cow<'a, str>, &'a serde_json::value::RawValue)>,
    sealed: Option<Envelope<'a>>,
}

/// The `"sealed"` member.
#[derive(serde::Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    kid: Cow<'a, str>,
    #[serde(borrow)]
    a: Option<Cow<'a, str>>,
    #[serde(borrow)]
    n: Option<Cow<'a, str>>,
    #[serde(borrow)]
    c: Option<Cow<'a, str>>,
}

impl<'de> serde::Deserialize<'de> for Members<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = Members {
                    members: Vec::with_capacity(m.size_hint().unwrap_or(16)),
                    sealed: None,
                };
                while let Some(k) = m.next_key::<Cow<'de, str>>()? {
                    if k == "sealed" {
                        out.sealed = Some(m.next_value()?);
                    } else {
                        out.members.push((k, m.next_value()?));
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(V)
    }
}

fn aad(event_id: Uuid, kid: KeyId) -> Vec<u8> {
    use std::io::Write;
    let mut a = Vec::with_capacity(AAD_PREFIX.len() + 16 + 40);
    a.extend_from_slice(AAD_PREFIX);
    a.extend_from_slice(event_id.as_bytes());
    // Writing to a Vec cannot fail.
    let _ = write!(a, "{kid}");
    a
}

fn file_aad(deviation: Uuid, sha256: &str, kid: KeyId) -> Vec<u8> {
    let mut a = Vec::with_capacity(AAD_PREFIX.len() + 16 + 64 + 40);
    a.extend_from_slice(b"avvik-file-v1\0");
    a.extend_from_slice(deviation.as_bytes());
    a.extend_from_slice(sha256.as_bytes());
    a.extend_from_slice(kid.to_string().as_bytes());
    a
}

fn decrypt(key: &DataKey, event_id: Uuid, kid: KeyId, env: &Map<String, Value>) -> Option<Value> {
    let alg = Alg::of_envelope(match env.get("a") {
        None => None,
        Some(a) => Some(a.as_str()?),
    })?;
    let nonce = B64.decode(env.get("n")?.as_str()?).ok()?;
    let mut buf = B64.decode(env.get("c")?.as_str()?).ok()?;
    if !aead::open_in_place(alg, &key.0, &nonce, &aad(event_id, kid), &mut buf) {
        return None;
    }
    serde_json::from_slice(&buf).ok()
}

/// The deviation whose key seals a record's fields (`None` for a type without sealed
/// fields, or one about no deviation).
pub fn deviation_of_record(rec: &avvik_events::RecordedEvent) -> Option<Uuid> {
    let spec = seal::spec(&rec.event_type)?;
    Keyring::deviation_of(spec, rec.stream, rec.data.as_object()?)
}

/// The key id a stored event's data names, if it is sealed.
pub fn kid_in(data: &Value) -> Option<KeyId> {
    KeyId::parse(data.get("sealed")?.get("kid")?.as_str()?)
}

/// Puts the blank of each sealed field in place.
fn blank(
    obj: &mut Map<String, Value>,
    event_type: &str,
    names: &[String],
    text: &str,
    result: Opened,
) -> Opened {
    let spec = seal::spec(event_type);
    for name in names {
        let kind = spec
            .and_then(|s| s.fields.iter().find(|(f, _)| f == name))
            .map(|(_, b)| *b)
            .unwrap_or(Blank::Text);
        obj.insert(
            name.clone(),
            match kind {
                Blank::Text => Value::String(text.to_string()),
                Blank::Null => Value::Null,
                Blank::List => Value::Array(Vec::new()),
            },
        );
    }
    result
}

// Tests over the command path (which depends on this module) are in
// `tests/api/privacy_props.rs`.

#[cfg(test)]
mod tests {
    use super::*;
    use avvik_events::sled::SledEventStore;
    use avvik_events::StoreOptions;
    use serde_json::json;

    #[test]
    fn aes_gcm_envelopes_and_legacy_xchacha_envelopes_both_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledEventStore::open(dir.path(), StoreOptions::default()).unwrap();
        let keys = Keyring::in_memory();
        let (dev, id) = (Uuid::now_v7(), Uuid::now_v7());
        keys.prepare_new(dev).unwrap();
        let data = json!({"title": "Personnummer 19121212-1212", "severity": "minor"});
        let sealed = keys
            .seal(&store, dev, id, "DeviationReported", data.clone())
            .unwrap();
        assert_eq!(sealed["sealed"]["a"], "A256GCM");
        assert!(!sealed.to_string().contains("19121212"));
        let text = sealed.to_string();
        let opened = keys.open_raw(dev, id, "DeviationReported", &text);
        assert_eq!(serde_json::from_str::<Value>(&opened).unwrap(), data);

        // As sealed before AES-256-GCM: XChaCha20-Poly1305, 24-byte nonce, no "a".
        let kid = keys.key_id_of(&store, dev).unwrap();
        let KeyState::Live(key) = keys.keys.get(kid) else {
            panic!("live key")
        };
        let legacy_id = Uuid::now_v7();
        let nonce = [5u8; 24];
        let c = XChaCha20Poly1305::new(&key.0.into())
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: br#"{"title":"Gammal text"}"#,
                    aad: &aad(legacy_id, kid),
                },
            )
            .unwrap();
        let legacy = json!({"severity": "minor", "sealed": {
            "kid": kid.to_string(), "f": ["title"], "n": B64.encode(nonce), "c": B64.encode(c)}});
        let want = json!({"title": "Gammal text", "severity": "minor"});
        let text = legacy.to_string();
        let fast = keys.open_raw(dev, legacy_id, "DeviationReported", &text);
        assert_eq!(serde_json::from_str::<Value>(&fast).unwrap(), want);
        let mut tree = legacy.clone();
        assert!(matches!(
            keys.open(dev, legacy_id, "DeviationReported", &mut tree),
            Opened::Open
        ));
        assert_eq!(tree, want);

        // An algorithm this version does not know reads as a missing key, never panics.
        let mut odd = sealed.clone();
        odd["sealed"]["a"] = json!("ROT13");
        let mut t = odd.clone();
        assert!(matches!(
            keys.open(dev, id, "DeviationReported", &mut t),
            Opened::KeyMissing(_)
        ));
        assert_eq!(t["title"], KEY_MISSING_TEXT);
        let text = odd.to_string();
        let raw = keys.open_raw(dev, id, "DeviationReported", &text);
        assert!(!raw.contains("19121212"));
    }

    /// Start-up replay's one-pass decode of a sealed event gives what opening the text and
    /// decoding it gives, for a report with every sealed field, escapes and all; anything it
    /// cannot open goes to the general path.
    #[test]
    fn one_pass_decode_of_a_sealed_report_equals_open_then_decode() {
        use crate::domain::{Channel, DeviationEvent, EmailAddress, Reference, Reported, Reporter};
        let dir = tempfile::tempdir().unwrap();
        let store = SledEventStore::open(dir.path(), StoreOptions::default()).unwrap();
        let keys = Keyring::in_memory();
        let (dev, id) = (Uuid::now_v7(), Uuid::now_v7());
        keys.prepare_new(dev).unwrap();
        let now = chrono::Utc::now();
        let ev = DeviationEvent::Reported(Reported {
            reference: Reference::new(2026, 7),
            title: "Personnummer 19121212-1212 i \"fel\" lista".into(),
            description: "Rad ett\nrad två med \\ och \u{1F600} och \"sealed\":{".into(),
            occurred_at: None,
            discovered_at: now,
            sector: Some("Socialtjänsten".into()),
            asset: Some("Treserva".into()),
            personal_data: true,
            reporter: Some(Reporter {
                name: "Anna Åberg".into(),
                email: EmailAddress::parse("anna@kommunen.example").unwrap(),
            }),
            channel: Channel::Web,
            status_token_hash: "ab".repeat(32),
            reported_at: now,
        });
        let ty = ev.type_name();
        let sealed = keys
            .seal(&store, dev, id, ty, ev.to_data())
            .unwrap()
            .to_string();
        let ForDecode::Opened(opened) = keys.open_for_decode(dev, id, ty, &sealed) else {
            panic!("a live key opens in one pass")
        };
        let one_pass = DeviationEvent::from_deserializer(
            ty,
            Spliced {
                clear: &sealed,
                opened: &opened,
            },
        )
        .unwrap()
        .unwrap();
        let general = keys.open_raw(dev, id, ty, &sealed);
        assert_eq!(
            one_pass,
            DeviationEvent::from_raw(ty, &general).unwrap().unwrap()
        );
        assert_eq!(one_pass, ev);

        let clear = ev.to_data().to_string();
        assert!(matches!(
            keys.open_for_decode(dev, id, ty, &clear),
            ForDecode::Clear
        ));
        // Another event id (associated data) does not open: the general path reads it.
        assert!(matches!(
            keys.open_for_decode(dev, Uuid::now_v7(), ty, &sealed),
            ForDecode::General
        ));
    }
}
