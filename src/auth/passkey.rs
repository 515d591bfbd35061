//! Passkeys (WebAuthn) as a second factor, with webauthn-rs. The relying party is the
//! host of `http.base_url`; WebAuthn needs a domain name there (`localhost` will do),
//! not an IP address.

use crate::config::Config;

/// The relying party id (`http.base_url`'s host), when it is a domain name.
pub fn rp_id(config: &Config) -> Option<String> {
    let rest = config.http.base_url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once(':').map_or(authority, |(h, p)| {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            authority
        }
    });
    let is_ip = host.starts_with('[') || host.parse::<std::net::IpAddr>().is_ok();
    (!host.is_empty() && !is_ip).then(|| host.to_ascii_lowercase())
}

/// Can passkeys be used at this installation's address?
pub fn available(_config: &Config) -> bool {
    // Registration and sign-in with passkeys come with the WebAuthn routes.
    false
}
