//! The installation's secret key: signs links (acknowledgements) and cookies. Created on
//! first start in the data directory (mode 0600), so links stay valid across restarts.

use std::io::Write;
use std::path::Path;

use rand::RngCore;

const FILE: &str = "secret.key";

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
                let tmp = data_dir.join(format!("{FILE}.tmp"));
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create(true).truncate(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                let mut f = opts.open(&tmp)?;
                f.write_all(&k)?;
                f.sync_all()?;
                std::fs::rename(&tmp, &path)?;
                Ok(Secret(k))
            }
            Err(e) => Err(e),
        }
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
