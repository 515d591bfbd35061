//! Links in e-mails: the signed personal acknowledgement link, the reporter's status link,
//! pages in the staff UI.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

use crate::domain::Reference;
use crate::secret::Secret;

type HmacSha256 = Hmac<Sha256>;

/// The subkey purpose for acknowledgement links; a MAC made for another purpose (cookies,
/// status tokens) never verifies here.
const ACK_PURPOSE: &str = "ack-link-v1";

fn ack_mac(secret: &Secret, notification_id: Uuid) -> HmacSha256 {
    let key = secret.derive(ACK_PURPOSE);
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(&key).expect("HMAC takes keys of any length");
    mac.update(b"ack\0");
    mac.update(notification_id.as_bytes());
    mac
}

/// The signature in an acknowledgement link: HMAC-SHA256 of the escalation e-mail's id,
/// hex. The id names the deviation, the recipient and the group, so altering any of them
/// means a different id and a signature that no longer matches.
pub fn ack_signature(secret: &Secret, notification_id: Uuid) -> String {
    hex::encode(ack_mac(secret, notification_id).finalize().into_bytes())
}

/// Checks a signature from a link, in constant time. Anything malformed is `false`.
pub fn verify_ack(secret: &Secret, notification_id: Uuid, signature_hex: &str) -> bool {
    let Ok(sig) = hex::decode(signature_hex.trim()) else {
        return false;
    };
    ack_mac(secret, notification_id).verify_slice(&sig).is_ok()
}

fn base(base_url: &str) -> &str {
    base_url.trim_end_matches('/')
}

/// `{base_url}/ack/{notification_id}/{signature}`: GET shows a confirmation page, POST
/// records the acknowledgement (so mail scanners that follow links do not acknowledge).
pub fn ack_link(base_url: &str, secret: &Secret, notification_id: Uuid) -> String {
    format!(
        "{}/ack/{notification_id}/{}",
        base(base_url),
        ack_signature(secret, notification_id)
    )
}

/// The reporter's private status page.
pub fn status_link(base_url: &str, secret: &Secret, deviation_id: Uuid) -> String {
    format!(
        "{}/status/{}",
        base(base_url),
        crate::service::status_token_for(secret, deviation_id)
    )
}

/// The staff list of quarantined e-mail.
pub fn quarantine_link(base_url: &str) -> String {
    format!("{}/staff/intake/quarantine", base(base_url))
}

/// The printable annual report in the staff UI.
pub fn report_link(base_url: &str, year: i32) -> String {
    format!("{}/staff/reports/{year}", base(base_url))
}

/// The deviation's page in the staff UI.
pub fn staff_link(base_url: &str, reference: Reference) -> String {
    format!("{}/staff/deviations/{reference}", base(base_url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_untouched_signature_verifies() {
        let secret = Secret::from_bytes([7; 32]);
        let other = Secret::from_bytes([8; 32]);
        let id = Uuid::now_v7();
        let sig = ack_signature(&secret, id);
        assert!(verify_ack(&secret, id, &sig));
        assert!(!verify_ack(&other, id, &sig), "another installation's link");
        assert!(
            !verify_ack(&secret, Uuid::now_v7(), &sig),
            "another e-mail's id"
        );
        let mut flipped = sig.clone().into_bytes();
        flipped[10] = if flipped[10] == b'a' { b'b' } else { b'a' };
        assert!(!verify_ack(
            &secret,
            id,
            std::str::from_utf8(&flipped).unwrap()
        ));
        assert!(!verify_ack(&secret, id, &sig[..32]), "truncated");
        assert!(!verify_ack(&secret, id, "inte-hex"));
        assert!(!verify_ack(&secret, id, ""));
        assert_eq!(
            ack_link("https://avvik.example/", &secret, id),
            format!("https://avvik.example/ack/{id}/{sig}")
        );
    }
}
