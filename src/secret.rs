//! The installation's secret key: signs links (acknowledgements) and cookies, and wraps the
//! data keys. Created on first start in the data directory (mode 0600), so links stay
//! valid across restarts. Nodes sharing one PostgreSQL store must have the same file: the
//! database keeps a check value of the first node's secret and refuses any other
//! ([`Secret::check_shared`]).

use std::io::Write;
use std::path::Path;

use rand::RngCore;

const FILE: &str = "secret.key";
/// Where a shared store keeps the installation's secret check.
const SHARED_KIND: &str = "installation";
const SHARED_CHECK: &str = "secret-check";

#[derive(Clone)]
pub struct Secret([u8; 32]);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Secret {
    /// Reads `data_dir/secret.key`, creating it with 256 random bits if missing.
    pub fn load_or_create(data_dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join(FILE);
        match std::fs::read(&path) {
            Ok(bytes) if bytes.len() == 32 => {
                let mut k = [0u8; 32];
                k.copy_from_slice(&bytes);
                Ok(Secret(k))
            }
            Ok(_) => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} must hold exactly 32 bytes", path.display()),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut k = [0u8; 32];
                rand::thread_rng().fill_bytes(&mut k);
                let secret = Secret(k);
                secret.store_in(data_dir)?;
                Ok(secret)
            }
            Err(e) => Err(e),
        }
    }

    /// Reads `data_dir/secret.key` if there is one.
    pub fn load(data_dir: &Path) -> std::io::Result<Option<Self>> {
        if data_dir.join(FILE).exists() {
            Self::load_or_create(data_dir).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Writes this secret as `data_dir/secret.key` (mode 0600; temp file, fsync, rename).
    pub fn store_in(&self, data_dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join(FILE);
        let tmp = data_dir.join(format!("{FILE}.tmp"));
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(&self.0)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        if let Ok(d) = std::fs::File::open(data_dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// The check value this secret leaves in a shared store.
    fn check_value(&self) -> [u8; 32] {
        self.derive("installation-check-v1")
    }

    /// The check value recorded in a shared store (`None`: none yet), or `Ok(None)` for
    /// a store that is not shared.
    fn recorded_check(store: &dyn avvik_events::EventStore) -> anyhow::Result<Option<Vec<u8>>> {
        let Some(files) = store.shared_files() else {
            return Ok(None);
        };
        files
            .read(SHARED_KIND, SHARED_CHECK)
            .map_err(|e| anyhow::anyhow!("reading the installation's secret check: {e}"))
    }

    /// Whether the shared store has an installation's secret check recorded (some node
    /// started on it); `false` for a store that is not shared.
    pub fn installation_recorded(store: &dyn avvik_events::EventStore) -> anyhow::Result<bool> {
        Ok(Self::recorded_check(store)?.is_some())
    }

    /// Whether this secret is the one the shared store's installation uses: `None` when
    /// the store is not shared or no check is recorded yet (read only).
    pub fn matches_shared(
        &self,
        store: &dyn avvik_events::EventStore,
    ) -> anyhow::Result<Option<bool>> {
        Ok(Self::recorded_check(store)?.map(|s| s[..] == self.check_value()[..]))
    }

    /// On a store several nodes share: records which secret the installation uses the
    /// first time, and refuses a node whose secret is another (its links, cookies and
    /// data-key wrapping would not work with the others'). What is stored is a derived
    /// check value, never the secret.
    pub fn check_shared(&self, store: &dyn avvik_events::EventStore) -> anyhow::Result<()> {
        let Some(files) = store.shared_files() else {
            return Ok(());
        };
        files
            .create(SHARED_KIND, SHARED_CHECK, &self.check_value())
            .map_err(|e| anyhow::anyhow!("recording the installation's secret check: {e}"))?;
        if self.matches_shared(store)? != Some(true) {
            anyhow::bail!(
                "this node's secret key ({FILE} in store.data_dir) is not the one the other nodes on this database use: copy {FILE} from a node already running into store.data_dir, then start again"
            );
        }
        Ok(())
    }

    /// A fixed key for tests.
    pub fn from_bytes(k: [u8; 32]) -> Self {
        Secret(k)
    }

    /// Derives a purpose-specific subkey (so one purpose's MACs never verify for another).
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"avvik-subkey\0");
        h.update(purpose.as_bytes());
        h.update([0]);
        h.update(self.0);
        h.finalize().into()
    }
}
