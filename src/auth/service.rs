//! Account commands: validate against the current accounts, append the events.

use avvik_events::{ExpectedVersion, NewEvent, StoreError};
use uuid::Uuid;

use super::accounts::{
    account_id, AccountCreated, AccountDisabled, AccountEnabled, AccountEvent, ApiTokenCreated,
    ApiTokenRevoked, PasswordChanged, Role, RoleGranted, RoleRevoked, SignedOut,
};
use super::password;
use crate::domain::EmailAddress;
use crate::service::Services;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("an account with this e-mail address already exists")]
    Exists,
    #[error("no such account")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    #[error("the register is still being rebuilt")]
    NotReady,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AccountError {
    pub fn message_sv(&self) -> String {
        match self {
            AccountError::Exists => "Det finns redan ett konto med den e-postadressen.".into(),
            AccountError::NotFound => "Kontot finns inte.".into(),
            AccountError::Invalid(s) => s.clone(),
            AccountError::NotReady | AccountError::Store(_) => {
                "Ändringen kunde inte sparas just nu. Försök igen.".into()
            }
        }
    }
}

impl Services {
    async fn append_account(
        &self,
        id: Uuid,
        expected: ExpectedVersion,
        events: Vec<AccountEvent>,
        actor: &str,
    ) -> Result<(), AccountError> {
        let now = self.clock.now();
        let new: Vec<NewEvent> = events
            .iter()
            .map(|e| NewEvent::new(e.type_name(), e.to_data(), actor, now))
            .collect();
        let stored = match self.store.append(id, expected, new).await {
            Ok(s) => s,
            Err(StoreError::Conflict { .. }) if expected == ExpectedVersion::NoStream => {
                return Err(AccountError::Exists)
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(last) = stored.last() {
            self.register
                .wait_for(last.seq, std::time::Duration::from_secs(10))
                .await;
        }
        Ok(())
    }

    fn account_version(&self, id: Uuid) -> Result<u32, AccountError> {
        if !self.register.is_ready() {
            return Err(AccountError::NotReady);
        }
        self.register
            .read()
            .accounts
            .get(id)
            .map(|a| a.version)
            .ok_or(AccountError::NotFound)
    }

    /// Creates an account with roles and (optionally) a password, in one commit.
    pub async fn create_account(
        &self,
        email: &EmailAddress,
        name: &str,
        roles: &[(Role, Vec<String>)],
        password: Option<&str>,
        actor: &str,
    ) -> Result<Uuid, AccountError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(AccountError::Invalid(
                "Ange ett namn (högst 200 tecken).".into(),
            ));
        }
        let id = account_id(email);
        let mut events = vec![AccountEvent::Created(AccountCreated {
            account_id: id,
            email: email.clone(),
            name: name.to_string(),
        })];
        for (role, sectors) in roles {
            check_grant(*role, sectors)?;
            events.push(AccountEvent::RoleGranted(RoleGranted {
                account_id: id,
                role: *role,
                sectors: sectors.clone(),
            }));
        }
        if let Some(pw) = password {
            password::check_strength(pw).map_err(|m| AccountError::Invalid(m.into()))?;
            let hash =
                password::hash_for_storing(&self.secret, pw).map_err(AccountError::Invalid)?;
            events.push(AccountEvent::PasswordChanged(PasswordChanged {
                account_id: id,
                password_hash: hash,
                pepper: Some(password::PEPPER_V1.into()),
            }));
        }
        self.append_account(id, ExpectedVersion::NoStream, events, actor)
            .await?;
        Ok(id)
    }

    pub async fn grant_role(
        &self,
        id: Uuid,
        role: Role,
        sectors: Vec<String>,
        actor: &str,
    ) -> Result<(), AccountError> {
        check_grant(role, &sectors)?;
        let v = self.account_version(id)?;
        let ev = AccountEvent::RoleGranted(RoleGranted {
            account_id: id,
            role,
            sectors,
        });
        self.append_account(id, ExpectedVersion::Exact(v), vec![ev], actor)
            .await
    }

    pub async fn revoke_role(&self, id: Uuid, role: Role, actor: &str) -> Result<(), AccountError> {
        let v = self.account_version(id)?;
        let ev = AccountEvent::RoleRevoked(RoleRevoked {
            account_id: id,
            role,
        });
        self.append_account(id, ExpectedVersion::Exact(v), vec![ev], actor)
            .await
    }

    pub async fn set_password(&self, id: Uuid, pw: &str, actor: &str) -> Result<(), AccountError> {
        password::check_strength(pw).map_err(|m| AccountError::Invalid(m.into()))?;
        let v = self.account_version(id)?;
        let hash = password::hash_for_storing(&self.secret, pw).map_err(AccountError::Invalid)?;
        let ev = AccountEvent::PasswordChanged(PasswordChanged {
            account_id: id,
            password_hash: hash,
            pepper: Some(password::PEPPER_V1.into()),
        });
        self.append_account(id, ExpectedVersion::Exact(v), vec![ev], actor)
            .await
    }

    pub async fn set_disabled(
        &self,
        id: Uuid,
        disabled: bool,
        reason: &str,
        actor: &str,
    ) -> Result<(), AccountError> {
        let v = self.account_version(id)?;
        let ev = if disabled {
            AccountEvent::Disabled(AccountDisabled {
                account_id: id,
                reason: reason.to_string(),
            })
        } else {
            AccountEvent::Enabled(AccountEnabled { account_id: id })
        };
        self.append_account(id, ExpectedVersion::Exact(v), vec![ev], actor)
            .await
    }

    /// Creates an API token and returns it (shown once; only its hash is stored).
    pub async fn create_api_token(
        &self,
        id: Uuid,
        label: &str,
        actor: &str,
    ) -> Result<String, AccountError> {
        let v = self.account_version(id)?;
        let token = format!("avvik_{}", crate::service::new_status_token());
        let ev = AccountEvent::ApiTokenCreated(ApiTokenCreated {
            account_id: id,
            token_id: Uuid::now_v7(),
            token_hash: avvik_events::hash_hex(token.as_bytes()),
            label: label.to_string(),
        });
        self.append_account(id, ExpectedVersion::Exact(v), vec![ev], actor)
            .await?;
        Ok(token)
    }

    pub async fn revoke_api_token(
        &self,
        id: Uuid,
        token_id: Uuid,
        actor: &str,
    ) -> Result<(), AccountError> {
        let v = self.account_version(id)?;
        let ev = AccountEvent::ApiTokenRevoked(ApiTokenRevoked {
            account_id: id,
            token_id,
        });
        self.append_account(id, ExpectedVersion::Exact(v), vec![ev], actor)
            .await
    }
}

impl Services {
    /// An account change under separation of duties (`duties::decide`), asked for by the
    /// admin with account `by`; appended with the version it was decided on.
    pub async fn account_duty(
        &self,
        id: Uuid,
        cmd: super::duties::DutyCommand,
        by: Uuid,
        actor: &str,
    ) -> Result<(), AccountError> {
        if !self.register.is_ready() {
            return Err(AccountError::NotReady);
        }
        let account = self
            .register
            .read()
            .accounts
            .get(id)
            .cloned()
            .ok_or(AccountError::NotFound)?;
        if let super::duties::DutyCommand::Grant { role, sectors } = &cmd {
            check_grant(*role, sectors)?;
        }
        let ctx = super::duties::DutyContext {
            by,
            new_request_id: Uuid::now_v7(),
        };
        let events = super::duties::decide(&account, cmd, ctx)?;
        if events.is_empty() {
            return Ok(());
        }
        self.append_account(id, ExpectedVersion::Exact(account.version), events, actor)
            .await
    }

    /// A password set by an admin, and (by default) every API token of the account
    /// revoked in the same commit: whoever knew the old password may have made one.
    pub async fn reset_password(
        &self,
        id: Uuid,
        pw: &str,
        revoke_tokens: bool,
        actor: &str,
    ) -> Result<(), AccountError> {
        password::check_strength(pw).map_err(|m| AccountError::Invalid(m.into()))?;
        if !self.register.is_ready() {
            return Err(AccountError::NotReady);
        }
        let account = self
            .register
            .read()
            .accounts
            .get(id)
            .cloned()
            .ok_or(AccountError::NotFound)?;
        let hash = password::hash_for_storing(&self.secret, pw).map_err(AccountError::Invalid)?;
        let mut events = vec![AccountEvent::PasswordChanged(PasswordChanged {
            account_id: id,
            password_hash: hash,
            pepper: Some(password::PEPPER_V1.into()),
        })];
        if revoke_tokens {
            let ctx = super::duties::DutyContext {
                by: Uuid::nil(),
                new_request_id: Uuid::nil(),
            };
            events.extend(super::duties::decide(
                &account,
                super::duties::DutyCommand::RevokeAllTokens,
                ctx,
            )?);
        }
        self.append_account(id, ExpectedVersion::Exact(account.version), events, actor)
            .await
    }

    /// Records that a browser session was signed out of, so a copy of its cookie stops
    /// working at once. Order against other account changes does not matter.
    pub async fn sign_out(
        &self,
        account_id: Uuid,
        session_id: Uuid,
        issued_at: chrono::DateTime<chrono::Utc>,
        actor: &str,
    ) -> Result<(), AccountError> {
        let ev = AccountEvent::SignedOut(SignedOut {
            account_id,
            session_id,
            issued_at,
        });
        self.append_account(account_id, ExpectedVersion::Any, vec![ev], actor)
            .await
    }
}

fn check_grant(role: Role, sectors: &[String]) -> Result<(), AccountError> {
    if role == Role::Kontakt && sectors.is_empty() {
        return Err(AccountError::Invalid(
            "En informationssäkerhetskontakt måste ha minst en sektor.".into(),
        ));
    }
    if role != Role::Kontakt && !sectors.is_empty() {
        return Err(AccountError::Invalid(
            "Endast informationssäkerhetskontakter har sektorer.".into(),
        ));
    }
    Ok(())
}
