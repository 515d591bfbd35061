//! Passkeys (WebAuthn) as a second factor, with webauthn-rs. The relying party is the
//! host of `http.base_url` and its origin the base URL: WebAuthn needs a domain name
//! there (`localhost` will do), not an IP address. A passkey is registered on the own
//! account page and used in the second sign-in step; the challenge of a ceremony in
//! progress is kept on the server (`Ceremonies`), never in the browser.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;
use webauthn_rs::prelude::{
    CreationChallengeResponse, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, RequestChallengeResponse, Url, Webauthn,
    WebauthnBuilder,
};

use super::accounts::{Account, AccountCommand};
use super::service::AccountError;
use crate::config::Config;
use crate::service::Services;

/// How long a started ceremony may be finished.
pub const CEREMONY_MINUTES: i64 = 5;
/// Ceremonies kept at most at once (each is a few hundred bytes).
const MAX_CEREMONIES: usize = 10_000;

/// The relying party id (`http.base_url`'s host), when it is a domain name.
pub fn rp_id(config: &Config) -> Option<String> {
    let url = Url::parse(&config.http.base_url).ok()?;
    // `domain()` is `None` for an IP address.
    url.domain().map(str::to_ascii_lowercase)
}

/// Can passkeys be used at this installation's address?
pub fn available(config: &Config) -> bool {
    webauthn(config).is_some()
}

/// The relying party, when `http.base_url` allows one.
pub fn webauthn(config: &Config) -> Option<Webauthn> {
    let rp = rp_id(config)?;
    let origin = Url::parse(&config.http.base_url).ok()?;
    WebauthnBuilder::new(&rp, &origin)
        .ok()?
        .rp_name("avvik")
        .build()
        .ok()
}

enum State {
    Registration(PasskeyRegistration),
    Authentication(PasskeyAuthentication),
}

/// A ceremony in progress: for which account, since when, and its state.
struct Open {
    account: Uuid,
    at: DateTime<Utc>,
    state: State,
}

/// Ceremonies in progress, by id: for which account, since when, and the state
/// webauthn-rs checks the answer against. In memory: a restart only means starting again.
#[derive(Default)]
pub struct Ceremonies {
    open: Mutex<HashMap<Uuid, Open>>,
}

impl Ceremonies {
    fn put(&self, account: Uuid, now: DateTime<Utc>, state: State) -> Option<Uuid> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|_, o| now - o.at <= Duration::minutes(CEREMONY_MINUTES));
        if open.len() >= MAX_CEREMONIES {
            return None;
        }
        let id = Uuid::new_v4();
        open.insert(
            id,
            Open {
                account,
                at: now,
                state,
            },
        );
        Some(id)
    }

    /// Takes the ceremony (each is finished at most once).
    fn take(&self, id: Uuid, account: Uuid, now: DateTime<Utc>) -> Option<State> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let o = open.get(&id)?;
        if o.account != account || now - o.at > Duration::minutes(CEREMONY_MINUTES) {
            return None;
        }
        open.remove(&id).map(|o| o.state)
    }
}

fn refuse(msg: &str) -> AccountError {
    AccountError::Invalid(msg.into())
}

fn unavailable() -> AccountError {
    refuse("Nycklar (passkeys) kan inte användas på den här adressen.")
}

fn try_again() -> AccountError {
    refuse("Det gick inte att använda nyckeln. Försök igen, eller använd en kod.")
}

/// The stored passkeys of an account, as webauthn-rs reads them.
fn passkeys_of(a: &Account) -> Vec<(Uuid, Passkey)> {
    a.passkeys
        .iter()
        .filter_map(|p| Some((p.id, serde_json::from_value(p.credential.clone()).ok()?)))
        .collect()
}

impl Services {
    /// Starts registering a passkey for the account: the options for
    /// `navigator.credentials.create`, and the ceremony's id.
    pub fn start_passkey_registration(
        &self,
        config: &Config,
        ceremonies: &Ceremonies,
        a: &Account,
    ) -> Result<(Uuid, CreationChallengeResponse), AccountError> {
        let rp = webauthn(config).ok_or_else(unavailable)?;
        let exclude = passkeys_of(a)
            .into_iter()
            .map(|(_, p)| p.cred_id().clone())
            .collect::<Vec<_>>();
        let (options, state) = rp
            .start_passkey_registration(a.id, a.email.as_str(), &a.name, Some(exclude))
            .map_err(|e| {
                tracing::warn!(error = %e, "passkey registration could not start");
                try_again()
            })?;
        let id = ceremonies
            .put(a.id, self.clock.now(), State::Registration(state))
            .ok_or_else(try_again)?;
        Ok((id, options))
    }

    /// Finishes a registration with the browser's answer (`credential`, JSON); returns
    /// the recovery codes when this is the account's first second factor (shown once).
    #[allow(clippy::too_many_arguments)]
    pub async fn finish_passkey_registration(
        &self,
        config: &Config,
        ceremonies: &Ceremonies,
        account: Uuid,
        ceremony: &str,
        credential: &str,
        name: &str,
        actor: &str,
    ) -> Result<Option<Vec<String>>, AccountError> {
        let rp = webauthn(config).ok_or_else(unavailable)?;
        let answer: RegisterPublicKeyCredential = serde_json::from_str(credential).map_err(|_| {
            refuse("Webbläsaren skapade ingen nyckel. Försök igen; nycklar kräver att JavaScript är påslaget.")
        })?;
        let Some(State::Registration(state)) = Uuid::parse_str(ceremony)
            .ok()
            .and_then(|id| ceremonies.take(id, account, self.clock.now()))
        else {
            return Err(refuse("Det tog för lång tid. Försök igen."));
        };
        let passkey = rp
            .finish_passkey_registration(&answer, &state)
            .map_err(|e| {
                tracing::info!(%account, error = %e, "passkey registration refused");
                try_again()
            })?;
        let raw_id: &[u8] = passkey.cred_id().as_ref();
        let credential_id = URL_SAFE_NO_PAD.encode(raw_id);
        if self
            .register
            .read()
            .accounts
            .by_passkey_credential(&credential_id)
            .is_some_and(|owner| owner != account)
        {
            return Err(refuse("Nyckeln är redan registrerad på ett annat konto."));
        }
        let codes = super::second_factor::new_recovery_codes();
        let batch_id = Uuid::now_v7();
        let hashes = codes
            .iter()
            .map(|c| super::second_factor::hash_recovery_code(&self.secret, c))
            .collect();
        let cmd = AccountCommand::RegisterPasskey {
            passkey_id: Uuid::now_v7(),
            name: name.to_string(),
            credential_id,
            credential: serde_json::to_value(&passkey)
                .map_err(|e| AccountError::Invalid(e.to_string()))?,
            recovery: Some((batch_id, hashes)),
        };
        self.account_command(account, cmd, actor).await?;
        let issued = self
            .register
            .read()
            .accounts
            .get(account)
            .and_then(|a| a.recovery_codes.as_ref().map(|r| r.batch_id))
            == Some(batch_id);
        Ok(issued.then_some(codes))
    }

    pub async fn remove_passkey(
        &self,
        account: Uuid,
        passkey_id: Uuid,
        actor: &str,
    ) -> Result<(), AccountError> {
        self.account_command(account, AccountCommand::RemovePasskey { passkey_id }, actor)
            .await
    }

    /// Starts the second sign-in step with a passkey: the options for
    /// `navigator.credentials.get` (the account's passkeys only), and the ceremony's id.
    pub fn start_passkey_sign_in(
        &self,
        config: &Config,
        ceremonies: &Ceremonies,
        a: &Account,
    ) -> Result<(Uuid, RequestChallengeResponse), AccountError> {
        let rp = webauthn(config).ok_or_else(unavailable)?;
        let keys: Vec<Passkey> = passkeys_of(a).into_iter().map(|(_, p)| p).collect();
        if keys.is_empty() {
            return Err(refuse("Kontot har ingen nyckel (passkey)."));
        }
        let (options, state) = rp.start_passkey_authentication(&keys).map_err(|e| {
            tracing::warn!(error = %e, "passkey sign-in could not start");
            try_again()
        })?;
        let id = ceremonies
            .put(a.id, self.clock.now(), State::Authentication(state))
            .ok_or_else(try_again)?;
        Ok((id, options))
    }

    /// Finishes the second sign-in step with the browser's answer; records the use (and
    /// the passkey's new counter, when it has one).
    pub async fn finish_passkey_sign_in(
        &self,
        config: &Config,
        ceremonies: &Ceremonies,
        account: Uuid,
        ceremony: &str,
        credential: &str,
        actor: &str,
    ) -> Result<(), AccountError> {
        let rp = webauthn(config).ok_or_else(unavailable)?;
        let answer: PublicKeyCredential =
            serde_json::from_str(credential).map_err(|_| try_again())?;
        let Some(State::Authentication(state)) = Uuid::parse_str(ceremony)
            .ok()
            .and_then(|id| ceremonies.take(id, account, self.clock.now()))
        else {
            return Err(refuse("Det tog för lång tid. Försök igen."));
        };
        let result = rp
            .finish_passkey_authentication(&answer, &state)
            .map_err(|e| {
                tracing::info!(%account, error = %e, "passkey sign-in refused");
                try_again()
            })?;
        let a = self
            .register
            .read()
            .accounts
            .get(account)
            .cloned()
            .ok_or(AccountError::NotFound)?;
        let (passkey_id, mut key) = passkeys_of(&a)
            .into_iter()
            .find(|(_, p)| p.cred_id() == result.cred_id())
            .ok_or_else(try_again)?;
        let credential = match key.update_credential(&result) {
            Some(true) => serde_json::to_value(&key).ok(),
            _ => None,
        };
        let cmd = AccountCommand::UsePasskey {
            passkey_id,
            credential,
        };
        self.account_command(account, cmd, actor).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_domain_name_is_a_relying_party_and_an_ip_address_is_not() {
        let mut c = Config::defaults().unwrap();
        c.http.base_url = "http://127.0.0.1:8080".into();
        assert_eq!(rp_id(&c), None);
        assert!(!available(&c));
        c.http.base_url = "http://localhost:8080".into();
        assert_eq!(rp_id(&c).as_deref(), Some("localhost"));
        assert!(available(&c));
        c.http.base_url = "https://Avvik.Kommunen.se/".into();
        assert_eq!(rp_id(&c).as_deref(), Some("avvik.kommunen.se"));
        c.http.base_url = "http://[::1]:8080".into();
        assert_eq!(rp_id(&c), None);
    }
}
