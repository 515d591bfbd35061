//! Password hashing with argon2id (PHC strings with their own salt and parameters), of the
//! password peppered with a key derived from the installation secret: a hash taken from an
//! export, the archive or a backup cannot be attacked offline without `data/secret.key`.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

pub const MIN_LEN: usize = 12;

/// How the hashed input is derived from the password; stored with the hash
/// (`PasswordChanged.pepper`). Hashes without it (older events) hash the bare password.
pub const PEPPER_V1: &str = "hmac-sha256-v1";

/// The password as argon2 sees it: hex HMAC-SHA256 of it under a subkey of the secret.
pub fn peppered(secret: &crate::secret::Secret, password: &str) -> String {
    use hmac::{Hmac, Mac};
    let key = secret.derive("password-pepper-1");
    let mut mac =
        <Hmac<sha2::Sha256> as Mac>::new_from_slice(&key).expect("HMAC takes keys of any length");
    mac.update(password.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Hashes a password for storing: argon2id of the peppered password ([`PEPPER_V1`]).
pub fn hash_for_storing(secret: &crate::secret::Secret, password: &str) -> Result<String, String> {
    hash_password(&peppered(secret, password))
}

/// Checks a login: `pepper` is what the stored hash says about its input.
pub fn verify_login(
    secret: &crate::secret::Secret,
    password: &str,
    phc: &str,
    pepper: Option<&str>,
) -> bool {
    match pepper {
        Some(PEPPER_V1) => verify_password(&peppered(secret, password), phc),
        Some(_) => false,
        None => verify_password(password, phc),
    }
}

/// Hashes a password. Fails only on a broken parameter set, never on user input.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Checks a password against a stored PHC string.
pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A password is acceptable if it is long enough; length beats composition rules.
pub fn check_strength(password: &str) -> Result<(), &'static str> {
    if password.chars().count() < MIN_LEN {
        return Err("Lösenordet måste vara minst 12 tecken.");
    }
    if password.len() > 1024 {
        return Err("Lösenordet är för långt.");
    }
    Ok(())
}

/// A hash to verify against when the account does not exist, so a login for an unknown
/// address costs as much time as one for a known address (verify it as peppered).
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("not-a-real-password-at-all").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_hashes_need_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let secret = crate::secret::Secret::load_or_create(dir.path()).unwrap();
        let pw = "ett långt lösenord 123";
        let stored = hash_for_storing(&secret, pw).unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify_login(&secret, pw, &stored, Some(PEPPER_V1)));
        assert!(!verify_login(
            &secret,
            "fel lösenord 12345",
            &stored,
            Some(PEPPER_V1)
        ));
        // Without the secret the hash is of something nobody knows: the bare password
        // does not match it, nor does it under another installation's secret.
        assert!(!verify_password(pw, &stored));
        let other_dir = tempfile::tempdir().unwrap();
        let other = crate::secret::Secret::load_or_create(other_dir.path()).unwrap();
        assert!(!verify_login(&other, pw, &stored, Some(PEPPER_V1)));
        // Hashes stored before peppering still work; an unknown scheme never does.
        let legacy = hash_password(pw).unwrap();
        assert!(verify_login(&secret, pw, &legacy, None));
        assert!(!verify_login(&secret, pw, &stored, Some("rot13")));
    }
}
