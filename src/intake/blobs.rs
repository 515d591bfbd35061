//! Files the log refers to: attachments (`attachments/<sha256>`) and quarantined raw
//! messages (`quarantine/<sha256>.eml`) under the data directory. Content-addressed, so a
//! repeat writes nothing new; written to a temporary file, fsynced, renamed and the
//! directory fsynced, so a file an event names is on disk before the event is.
//!
//! On a store several nodes share (PostgreSQL), the same names are files in the store's
//! shared files (kind [`crate::privacy::BLOBS_KIND`]), committed before the event that
//! names them, so every node serves what any node received.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use avvik_events::{EventStore, SharedFiles};

pub use crate::privacy::ATTACHMENTS_DIR;
pub const QUARANTINE_DIR: &str = "quarantine";

#[derive(Clone)]
pub struct BlobStore {
    root: PathBuf,
    /// The shared store's files, when the store has them; else `root`.
    shared: Option<Arc<dyn SharedFiles>>,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStore")
            .field("root", &self.root)
            .field("shared", &self.shared.is_some())
            .finish()
    }
}

/// Is `s` a lower-case hex SHA-256 (and so safe as a file name)?
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl BlobStore {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            root: data_dir.to_path_buf(),
            shared: None,
        }
    }

    /// The blobs of `store`: its shared files if it has them, else under `data_dir`.
    pub fn for_store(store: &dyn EventStore, data_dir: &Path) -> Self {
        Self {
            root: data_dir.to_path_buf(),
            shared: store.shared_files(),
        }
    }

    /// Writes `bytes` as the file at `path` (under the root) durably, unless it is there.
    fn put(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        match (&self.shared, self.name(path)) {
            (Some(files), Some(name)) => files
                .create(crate::privacy::BLOBS_KIND, &name, bytes)
                .map(|_| ())
                .map_err(|e| std::io::Error::other(e.to_string())),
            _ => put(path, bytes),
        }
    }

    /// Reads the file at `path` (under the root); `NotFound` if there is none.
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        match (&self.shared, self.name(path)) {
            (Some(files), Some(name)) => files
                .read(crate::privacy::BLOBS_KIND, &name)
                .map_err(|e| std::io::Error::other(e.to_string()))?
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such file")),
            _ => std::fs::read(path),
        }
    }

    /// A path's name among the shared files: relative to the root, `/`-separated.
    fn name(&self, path: &Path) -> Option<String> {
        let rel = path.strip_prefix(&self.root).ok()?;
        let parts: Vec<&str> = rel.iter().map(|p| p.to_str()).collect::<Option<_>>()?;
        Some(parts.join("/"))
    }

    /// The relative path a quarantined message is kept at (as events record it).
    pub fn quarantine_name(sha256: &str) -> String {
        format!("{QUARANTINE_DIR}/{sha256}.eml")
    }

    fn attachment_path(&self, sha256: &str) -> Option<PathBuf> {
        is_sha256_hex(sha256).then(|| self.root.join(ATTACHMENTS_DIR).join(sha256))
    }

    fn quarantine_path(&self, sha256: &str) -> Option<PathBuf> {
        is_sha256_hex(sha256).then(|| self.root.join(Self::quarantine_name(sha256)))
    }

    /// Stores an attachment durably (a no-op when it is already there).
    pub fn put_attachment(&self, sha256: &str, bytes: &[u8]) -> std::io::Result<()> {
        let path = self.attachment_path(sha256).ok_or_else(bad_name)?;
        self.put(&path, bytes)
    }

    /// Stores a quarantined message durably (a no-op when it is already there).
    pub fn put_quarantined(&self, sha256: &str, bytes: &[u8]) -> std::io::Result<()> {
        let path = self.quarantine_path(sha256).ok_or_else(bad_name)?;
        self.put(&path, bytes)
    }

    /// Where a deviation's (sealed) attachment is: `attachments/<deviation>/<sha256>`.
    fn deviation_attachment_path(&self, deviation: uuid::Uuid, sha256: &str) -> Option<PathBuf> {
        is_sha256_hex(sha256).then(|| {
            self.root
                .join(ATTACHMENTS_DIR)
                .join(deviation.simple().to_string())
                .join(sha256)
        })
    }

    /// Stores a deviation's sealed attachment durably (a no-op when it is already there).
    pub fn put_deviation_attachment(
        &self,
        deviation: uuid::Uuid,
        sha256: &str,
        sealed: &[u8],
    ) -> std::io::Result<()> {
        let path = self
            .deviation_attachment_path(deviation, sha256)
            .ok_or_else(bad_name)?;
        self.put(&path, sealed)
    }

    /// A deviation's attachment as stored: `Ok(Some(sealed))` under the deviation,
    /// `Ok(None)` when only an unsealed file from before sealing exists (then read with
    /// `read_attachment`).
    pub fn read_deviation_attachment(
        &self,
        deviation: uuid::Uuid,
        sha256: &str,
    ) -> std::io::Result<Option<Vec<u8>>> {
        let path = self
            .deviation_attachment_path(deviation, sha256)
            .ok_or_else(bad_name)?;
        match self.read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn read_attachment(&self, sha256: &str) -> std::io::Result<Vec<u8>> {
        self.read(&self.attachment_path(sha256).ok_or_else(bad_name)?)
    }

    pub fn read_quarantined(&self, sha256: &str) -> std::io::Result<Vec<u8>> {
        self.read(&self.quarantine_path(sha256).ok_or_else(bad_name)?)
    }
}

fn bad_name() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a SHA-256 file name")
}

fn put(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() == bytes.len() as u64) {
        return Ok(());
    }
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("blob path without a directory"))?;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".tmp-{:016x}", rand::random::<u64>()));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_round_trip_and_refuse_odd_names() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::new(dir.path());
        let sha = crate::intake::parse::sha256_hex(b"hej");
        blobs.put_attachment(&sha, b"hej").unwrap();
        blobs.put_attachment(&sha, b"hej").unwrap();
        assert_eq!(blobs.read_attachment(&sha).unwrap(), b"hej");
        blobs.put_quarantined(&sha, b"hej").unwrap();
        assert!(dir.path().join(BlobStore::quarantine_name(&sha)).exists());
        assert!(blobs.put_attachment("../secret.key", b"x").is_err());
        assert!(blobs.read_attachment(&sha.to_uppercase()).is_err());
    }
}
