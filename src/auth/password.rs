//! Password hashing with argon2id (PHC strings with their own salt and parameters).

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

pub const MIN_LEN: usize = 12;

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
/// address costs as much time as one for a known address.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("not-a-real-password-at-all").unwrap_or_default())
}
