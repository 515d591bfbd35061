//! The AEADs that seal event fields and wrap data keys.
//!
//! New data is sealed with AES-256-GCM (96-bit random nonces; one key per deviation seals
//! at most a few thousand messages, far below the 2^32 a random nonce allows). What was
//! sealed before AES-256-GCM — XChaCha20-Poly1305 with 192-bit nonces — still opens: its
//! envelopes carry no algorithm name, its key batches the `v1` header. AES-256-GCM is used
//! because a sealed field is short and replaying the log opens every one of them: with
//! AES-NI and carry-less multiply it opens a 350-byte payload in a third of the time
//! XChaCha20-Poly1305 (with its per-message Poly1305 set-up) takes on the same machine
//! (BENCHMARKS.md).

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

/// An AEAD by the name the stored data gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// AES-256-GCM, 12-byte nonce: everything sealed now.
    Aes256Gcm,
    /// XChaCha20-Poly1305, 24-byte nonce: sealed before AES-256-GCM, and attachment files.
    XChaCha20Poly1305,
}

/// The envelope's `"a"` value for AES-256-GCM (no `"a"`: XChaCha20-Poly1305).
pub const A256GCM: &str = "A256GCM";

impl Alg {
    /// The algorithm an envelope names (`None`: one this version does not know).
    pub fn of_envelope(a: Option<&str>) -> Option<Self> {
        match a {
            None => Some(Self::XChaCha20Poly1305),
            Some(A256GCM) => Some(Self::Aes256Gcm),
            Some(_) => None,
        }
    }

    pub fn nonce_len(self) -> usize {
        match self {
            Self::Aes256Gcm => 12,
            Self::XChaCha20Poly1305 => 24,
        }
    }
}

/// Seals `buf` in place under `key` with AES-256-GCM (the tag appended); returns the nonce.
pub fn seal_in_place(key: &[u8; 32], aad: &[u8], buf: &mut Vec<u8>) -> Option<[u8; 12]> {
    let mut nonce = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut nonce);
    Aes256Gcm::new(key.into())
        .encrypt_in_place(Nonce::from_slice(&nonce), aad, buf)
        .ok()?;
    Some(nonce)
}

/// Opens `buf` (ciphertext and tag) in place; `false` when it does not open — a wrong key,
/// nonce or associated data, or altered bytes.
pub fn open_in_place(
    alg: Alg,
    key: &[u8; 32],
    nonce: &[u8],
    aad: &[u8],
    buf: &mut Vec<u8>,
) -> bool {
    if nonce.len() != alg.nonce_len() {
        return false;
    }
    match alg {
        Alg::Aes256Gcm => Aes256Gcm::new(key.into())
            .decrypt_in_place(Nonce::from_slice(nonce), aad, buf)
            .is_ok(),
        Alg::XChaCha20Poly1305 => XChaCha20Poly1305::new(key.into())
            .decrypt_in_place(XNonce::from_slice(nonce), aad, buf)
            .is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_gcm_round_trip_and_tamper() {
        let key = [7u8; 32];
        let mut buf = b"personnummer 19121212-1212".to_vec();
        let nonce = seal_in_place(&key, b"aad", &mut buf).expect("seals");
        assert!(!buf.windows(12).any(|w| w == b"personnummer"));
        let mut ok = buf.clone();
        assert!(open_in_place(Alg::Aes256Gcm, &key, &nonce, b"aad", &mut ok));
        assert_eq!(ok, b"personnummer 19121212-1212");
        let mut wrong_aad = buf.clone();
        assert!(!open_in_place(
            Alg::Aes256Gcm,
            &key,
            &nonce,
            b"other",
            &mut wrong_aad
        ));
        let mut flipped = buf.clone();
        flipped[3] ^= 1;
        assert!(!open_in_place(
            Alg::Aes256Gcm,
            &key,
            &nonce,
            b"aad",
            &mut flipped
        ));
        // A nonce of the other algorithm's length never opens (and never panics).
        assert!(!open_in_place(
            Alg::XChaCha20Poly1305,
            &key,
            &nonce,
            b"aad",
            &mut buf
        ));
    }

    #[test]
    fn legacy_xchacha_still_opens() {
        use chacha20poly1305::aead::Aead;
        let key = [9u8; 32];
        let nonce = [1u8; 24];
        let c = XChaCha20Poly1305::new(&key.into())
            .encrypt(XNonce::from_slice(&nonce), &b"gammal"[..])
            .expect("encrypts");
        let mut buf = c;
        assert!(open_in_place(
            Alg::XChaCha20Poly1305,
            &key,
            &nonce,
            b"",
            &mut buf
        ));
        assert_eq!(buf, b"gammal");
        assert_eq!(Alg::of_envelope(None), Some(Alg::XChaCha20Poly1305));
        assert_eq!(Alg::of_envelope(Some("A256GCM")), Some(Alg::Aes256Gcm));
        assert_eq!(Alg::of_envelope(Some("ROT13")), None);
    }
}
