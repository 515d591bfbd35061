//! Second factors for local accounts: an authenticator app (TOTP, RFC 6238: SHA-1, six
//! digits, 30 s steps, one step either side, each step accepted once) and one-time
//! recovery codes. The app's secret is stored sealed (XChaCha20-Poly1305 under a key
//! derived from the installation secret, the account id as associated data); recovery
//! codes only as keyed hashes. Passkeys are in `passkey`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use chrono::{DateTime, Utc};
use rand::{Rng, RngCore};
use uuid::Uuid;

use super::accounts::{Account, AccountCommand};
use super::service::AccountError;
use crate::secret::Secret;
use crate::service::Services;

/// The issuer an authenticator app shows beside the account.
pub const TOTP_ISSUER: &str = "avvik";
/// Recovery codes in a set.
pub const RECOVERY_CODES: usize = 10;
/// How long a shown app secret may be confirmed.
pub const PENDING_MINUTES: i64 = 15;
/// The stored form of a sealed secret: version, then base64url of nonce and ciphertext.
const SEALED_PREFIX: &str = "x1.";
/// Letters of recovery codes: no 0/o, 1/l/i to misread.
const CODE_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

fn seal(secret: &Secret, purpose: &str, aad: &[u8], plain: &[u8]) -> String {
    let key = secret.derive(purpose);
    let mut nonce = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut nonce);
    let ct = XChaCha20Poly1305::new(&key.into())
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad })
        .expect("XChaCha20-Poly1305 seals any length we use");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(out))
}

fn open(secret: &Secret, purpose: &str, aad: &[u8], sealed: &str) -> Option<Vec<u8>> {
    let raw = URL_SAFE_NO_PAD
        .decode(sealed.strip_prefix(SEALED_PREFIX)?)
        .ok()?;
    if raw.len() < 24 {
        return None;
    }
    let (nonce, ct) = raw.split_at(24);
    let key = secret.derive(purpose);
    XChaCha20Poly1305::new(&key.into())
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
        .ok()
}

fn stored_aad(account: Uuid) -> Vec<u8> {
    [b"avvik-totp-secret\0".as_slice(), account.as_bytes()].concat()
}

fn pending_aad(account: Uuid) -> Vec<u8> {
    [b"avvik-totp-pending\0".as_slice(), account.as_bytes()].concat()
}

/// The app secret as stored in `TotpEnrolled`.
pub fn seal_totp_secret(secret: &Secret, account: Uuid, raw: &[u8]) -> String {
    seal(secret, "totp-secret-1", &stored_aad(account), raw)
}

/// The app secret of a stored `TotpEnrolled`.
pub fn open_totp_secret(secret: &Secret, account: Uuid, sealed: &str) -> Option<Vec<u8>> {
    open(secret, "totp-secret-1", &stored_aad(account), sealed)
}

fn totp(raw: &[u8], account_name: &str) -> Option<totp_rs::Totp> {
    totp_rs::Builder::new()
        .with_secret(raw.to_vec())
        .with_account_name(account_name.replace(':', ""))
        .with_issuer(Some(TOTP_ISSUER))
        .build()
        .ok()
}

/// The digits of a code as typed ("123 456" and "123-456" too).
pub fn normalize_code(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect::<String>()
        .to_lowercase()
}

/// The time step a six-digit `code` is right for at `now` (one step either side), if any.
pub fn check_totp(raw: &[u8], code: &str, now: DateTime<Utc>) -> Option<u64> {
    let code = normalize_code(code);
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = totp(raw, "")?;
    t.check(&code, u64::try_from(now.timestamp()).ok()?)
}

/// The code an app shows at `now` (tests and the CLI's checks use it).
pub fn totp_code(raw: &[u8], now: DateTime<Utc>) -> String {
    totp(raw, "")
        .map(|t| {
            t.generate(u64::try_from(now.timestamp()).unwrap_or(0))
                .to_string()
        })
        .unwrap_or_default()
}

/// The code an app shows at `now` for a secret as shown to people (base32, spaces
/// allowed), as an app computes it.
pub fn totp_code_base32(secret_base32: &str, now: DateTime<Utc>) -> Option<String> {
    let cleaned: String = secret_base32
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let raw = totp_rs::Secret::try_from_base32(cleaned.to_uppercase()).ok()?;
    Some(totp_code(raw.as_ref(), now))
}

/// An app secret shown for enrolment: as text, as an `otpauth://` URI (and its QR code),
/// and sealed for the confirmation form.
pub struct NewTotp {
    pub secret_base32: String,
    pub uri: String,
    /// The QR code of `uri` as an SVG document.
    pub qr_svg: String,
    /// The secret and the time it was shown, sealed to the account.
    pub pending: String,
}

/// A fresh 160-bit app secret for `account`.
pub fn new_totp(secret: &Secret, account: &Account, now: DateTime<Utc>) -> NewTotp {
    let mut raw = [0u8; 20];
    rand::thread_rng().fill_bytes(&mut raw);
    let t = totp(&raw, account.email.as_str()).expect("a 160-bit secret is valid");
    let uri = t.to_url().unwrap_or_default();
    let qr_svg = qr_svg(&uri);
    let mut plain = now.timestamp().to_be_bytes().to_vec();
    plain.extend_from_slice(&raw);
    NewTotp {
        secret_base32: t.secret().to_base32(),
        uri,
        qr_svg,
        pending: seal(secret, "totp-pending-1", &pending_aad(account.id), &plain),
    }
}

/// A pending enrolment shown again (after a wrong code), while it is still within
/// `PENDING_MINUTES`.
pub fn reshow_totp(
    secret: &Secret,
    account: Uuid,
    email: &str,
    pending: &str,
    now: DateTime<Utc>,
) -> Option<NewTotp> {
    let raw = open_pending(secret, account, pending, now)?;
    let t = totp(&raw, email)?;
    let uri = t.to_url().ok()?;
    Some(NewTotp {
        secret_base32: t.secret().to_base32(),
        qr_svg: qr_svg(&uri),
        uri,
        pending: pending.to_string(),
    })
}

/// The QR code of `uri` as an inline SVG element (no XML declaration).
fn qr_svg(uri: &str) -> String {
    let svg = qrcode::QrCode::new(uri.as_bytes())
        .map(|q| {
            q.render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(200, 200)
                .quiet_zone(true)
                .build()
        })
        .unwrap_or_default();
    match svg.find("<svg") {
        Some(i) => svg[i..].to_string(),
        None => String::new(),
    }
}

/// The secret of a pending enrolment still within `PENDING_MINUTES`.
fn open_pending(
    secret: &Secret,
    account: Uuid,
    pending: &str,
    now: DateTime<Utc>,
) -> Option<Vec<u8>> {
    let plain = open(secret, "totp-pending-1", &pending_aad(account), pending)?;
    let (at, raw) = plain.split_at_checked(8)?;
    let shown = i64::from_be_bytes(at.try_into().ok()?);
    let age = now.timestamp() - shown;
    (0..=PENDING_MINUTES * 60)
        .contains(&age)
        .then(|| raw.to_vec())
}

/// A set of new recovery codes, as shown once (`xxxx-xxxx-xxxx`, 60 bits each).
pub fn new_recovery_codes() -> Vec<String> {
    let mut rng = rand::thread_rng();
    (0..RECOVERY_CODES)
        .map(|_| {
            let s: String = (0..12)
                .map(|_| CODE_ALPHABET[rng.gen_range(0..CODE_ALPHABET.len())] as char)
                .collect();
            format!("{}-{}-{}", &s[..4], &s[4..8], &s[8..])
        })
        .collect()
}

/// The keyed hash a recovery code is stored as (HMAC-SHA256 under a subkey of the
/// installation secret: a hash from an export cannot be tried offline without it).
pub fn hash_recovery_code(secret: &Secret, code: &str) -> String {
    use hmac::{Hmac, Mac};
    let key = secret.derive("recovery-code-1");
    let mut mac =
        <Hmac<sha2::Sha256> as Mac>::new_from_slice(&key).expect("HMAC takes keys of any length");
    mac.update(normalize_code(code).as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Codes and their hashes, for a command.
fn recovery_set(secret: &Secret) -> (Vec<String>, (Uuid, Vec<String>)) {
    let codes = new_recovery_codes();
    let hashes = codes
        .iter()
        .map(|c| hash_recovery_code(secret, c))
        .collect();
    (codes, (Uuid::now_v7(), hashes))
}

/// What the second sign-in step was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Used {
    Totp,
    /// A recovery code; how many are left.
    RecoveryCode {
        left: usize,
    },
}

fn wrong_code() -> AccountError {
    AccountError::Invalid(
        "Koden stämmer inte. Skriv den kod som appen visar nu, eller en av dina återställningskoder."
            .into(),
    )
}

impl Services {
    /// The account as the register has it now.
    pub(super) fn account_now(&self, id: Uuid) -> Result<Account, AccountError> {
        self.register
            .read()
            .accounts
            .get(id)
            .cloned()
            .ok_or(AccountError::NotFound)
    }

    /// Confirms an enrolment shown with `new_totp` with a current code; returns the
    /// recovery codes when this is the account's first second factor (shown once).
    pub async fn enrol_totp(
        &self,
        id: Uuid,
        pending: &str,
        code: &str,
        actor: &str,
    ) -> Result<Option<Vec<String>>, AccountError> {
        let now = self.clock.now();
        let raw = open_pending(&self.secret, id, pending, now).ok_or_else(|| {
            AccountError::Invalid(
                "Det tog för lång tid. Börja om och lägg till appen på nytt.".into(),
            )
        })?;
        let step = check_totp(&raw, code, now).ok_or_else(|| {
            AccountError::Invalid(
                "Koden stämmer inte. Kontrollera att du lagt in rätt nyckel och att klockan i telefonen går rätt, och skriv den kod som visas nu."
                    .into(),
            )
        })?;
        let (codes, recovery) = recovery_set(&self.secret);
        let batch = recovery.0;
        let cmd = AccountCommand::EnrolTotp {
            totp_id: Uuid::now_v7(),
            secret_sealed: seal_totp_secret(&self.secret, id, &raw),
            step,
            recovery: Some(recovery),
        };
        self.account_command(id, cmd, actor).await?;
        let issued = self
            .account_now(id)?
            .recovery_codes
            .is_some_and(|r| r.batch_id == batch);
        Ok(issued.then_some(codes))
    }

    pub async fn remove_totp(&self, id: Uuid, actor: &str) -> Result<(), AccountError> {
        self.account_command(id, AccountCommand::RemoveTotp, actor)
            .await
    }

    /// A new set of recovery codes (the old set stops working); shown once.
    pub async fn issue_recovery_codes(
        &self,
        id: Uuid,
        actor: &str,
    ) -> Result<Vec<String>, AccountError> {
        let (codes, (batch_id, code_hashes)) = recovery_set(&self.secret);
        let cmd = AccountCommand::IssueRecoveryCodes {
            batch_id,
            code_hashes,
        };
        self.account_command(id, cmd, actor).await?;
        Ok(codes)
    }

    /// The second sign-in step with a code: the app's current code, or a recovery code.
    /// A code of a step already used is refused (the decider checks, so two requests at
    /// once cannot both use it).
    pub async fn second_factor_code(
        &self,
        id: Uuid,
        code: &str,
        actor: &str,
    ) -> Result<Used, AccountError> {
        let account = self.account_now(id)?;
        let normalized = normalize_code(code);
        if normalized.len() == 6 && normalized.bytes().all(|b| b.is_ascii_digit()) {
            let raw = account
                .totp
                .as_ref()
                .and_then(|t| open_totp_secret(&self.secret, id, &t.secret_sealed))
                .ok_or_else(wrong_code)?;
            let step = check_totp(&raw, &normalized, self.clock.now()).ok_or_else(wrong_code)?;
            self.account_command(id, AccountCommand::UseTotp { step }, actor)
                .await?;
            return Ok(Used::Totp);
        }
        if normalized.len() != 12 || account.recovery_codes_left() == 0 {
            return Err(wrong_code());
        }
        let code_hash = hash_recovery_code(&self.secret, &normalized);
        self.account_command(id, AccountCommand::UseRecoveryCode { code_hash }, actor)
            .await?;
        Ok(Used::RecoveryCode {
            left: self.account_now(id)?.recovery_codes_left(),
        })
    }

    /// An admin removes every second factor of an account (a lost phone), with a reason.
    pub async fn reset_second_factors(
        &self,
        id: Uuid,
        reason: &str,
        actor: &str,
    ) -> Result<(), AccountError> {
        let cmd = AccountCommand::ResetSecondFactors {
            reason: reason.to_string(),
        };
        self.account_command(id, cmd, actor).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        Secret::from_bytes([3u8; 32])
    }

    #[test]
    fn a_sealed_secret_opens_only_for_its_account() {
        let a = Uuid::from_u128(1);
        let sealed = seal_totp_secret(&secret(), a, b"12345678901234567890");
        assert!(!sealed.contains("12345678901234567890"));
        assert_eq!(
            open_totp_secret(&secret(), a, &sealed).as_deref(),
            Some(&b"12345678901234567890"[..])
        );
        assert!(open_totp_secret(&secret(), Uuid::from_u128(2), &sealed).is_none());
        assert!(open_totp_secret(&Secret::from_bytes([4u8; 32]), a, &sealed).is_none());
    }

    #[test]
    fn rfc6238_test_vector_and_one_step_of_skew() {
        // RFC 6238 appendix B, SHA-1, 59 s: 94287082 (eight digits); six digits: 287082.
        let raw = b"12345678901234567890";
        let at = |s: i64| DateTime::from_timestamp(s, 0).unwrap();
        assert_eq!(totp_code(raw, at(59)), "287082");
        assert_eq!(check_totp(raw, "287 082", at(59)), Some(1));
        assert_eq!(check_totp(raw, "287082", at(89)), Some(1), "one step late");
        assert_eq!(check_totp(raw, "287082", at(120)), None, "two steps late");
        assert_eq!(check_totp(raw, "28708", at(59)), None);
    }

    #[test]
    fn recovery_codes_are_distinct_and_hash_with_the_secret() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let set: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(set.len(), RECOVERY_CODES);
        let h = hash_recovery_code(&secret(), &codes[0]);
        assert_eq!(h, hash_recovery_code(&secret(), &codes[0].to_uppercase()));
        assert_ne!(
            h,
            hash_recovery_code(&Secret::from_bytes([9u8; 32]), &codes[0])
        );
    }
}
