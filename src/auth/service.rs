//! Account commands: validate against the current accounts, append the events.

use avvik_events::StoreError;
use uuid::Uuid;

use super::accounts::{
    account_id, check_grant, decide, Account, AccountCommand, AccountRefusal, Role,
};
use super::password;
use crate::command::{CommandError, Current, Envelope, Load};
use crate::domain::identity::{decide_provider_sign_in, ProviderUser};
use crate::domain::EmailAddress;
use crate::service::Services;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("too many concurrent changes to the account")]
    Contention,
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
            AccountError::NotReady | AccountError::Contention | AccountError::Store(_) => {
                "Ändringen kunde inte sparas just nu. Försök igen.".into()
            }
        }
    }
}

impl From<CommandError> for AccountError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Contention => AccountError::Contention,
            CommandError::Store(e) => AccountError::Store(e),
        }
    }
}

impl From<AccountRefusal> for AccountError {
    fn from(r: AccountRefusal) -> Self {
        match r {
            AccountRefusal::Exists => AccountError::Exists,
            AccountRefusal::NotFound => AccountError::NotFound,
            AccountRefusal::Invalid(m) => AccountError::Invalid(m),
        }
    }
}

impl Services {
    /// Loads an account from the register once the register has caught up with the log.
    fn load_account(&self, id: Uuid) -> Load<'_, Option<Account>, AccountError> {
        Box::new(move || {
            Box::pin(async move {
                if !self.register.is_ready() {
                    return Err(AccountError::NotReady);
                }
                let head = self.store.head().seq;
                self.register
                    .wait_for(head, std::time::Duration::from_secs(10))
                    .await;
                let account = self.register.read().accounts.get(id).cloned();
                let version = account.as_ref().map(|a| a.version);
                Ok(Current::new(account, version))
            })
        })
    }

    /// Runs an account command through the command path and waits for the register.
    pub(crate) async fn account_command(
        &self,
        id: Uuid,
        cmd: AccountCommand,
        actor: &str,
    ) -> Result<(), AccountError> {
        let mut env = Envelope::new(id, actor);
        if matches!(cmd, AccountCommand::SignOut { .. }) {
            // Order against other account changes does not matter.
            env = env.expect_any();
        }
        let outcome = self
            .commands()
            .execute(&env, self.load_account(id), |state, _ctx| {
                decide(state.as_ref(), id, &cmd).map_err(AccountError::from)
            })
            .await?;
        if let Some(seq) = outcome.last_seq() {
            self.register
                .wait_for(seq, std::time::Duration::from_secs(10))
                .await;
        }
        Ok(())
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
        let id = account_id(email);
        let password_hash = match password {
            Some(pw) => {
                password::check_strength(pw).map_err(|m| AccountError::Invalid(m.into()))?;
                let hash =
                    password::hash_for_storing(&self.secret, pw).map_err(AccountError::Invalid)?;
                Some((hash, password::PEPPER_V1.to_string()))
            }
            None => None,
        };
        let cmd = AccountCommand::Create {
            email: email.clone(),
            name: name.to_string(),
            roles: roles.to_vec(),
            password_hash,
        };
        self.account_command(id, cmd, actor).await?;
        Ok(id)
    }

    pub async fn grant_role(
        &self,
        id: Uuid,
        role: Role,
        sectors: Vec<String>,
        actor: &str,
    ) -> Result<(), AccountError> {
        self.account_command(id, AccountCommand::GrantRole { role, sectors }, actor)
            .await
    }

    pub async fn revoke_role(&self, id: Uuid, role: Role, actor: &str) -> Result<(), AccountError> {
        self.account_command(id, AccountCommand::RevokeRole { role }, actor)
            .await
    }

    pub async fn set_password(&self, id: Uuid, pw: &str, actor: &str) -> Result<(), AccountError> {
        password::check_strength(pw).map_err(|m| AccountError::Invalid(m.into()))?;
        if !self.register.is_ready() {
            return Err(AccountError::NotReady);
        }
        if self.register.read().accounts.get(id).is_none() {
            return Err(AccountError::NotFound);
        }
        let hash = password::hash_for_storing(&self.secret, pw).map_err(AccountError::Invalid)?;
        let cmd = AccountCommand::SetPassword {
            password_hash: hash,
            pepper: password::PEPPER_V1.into(),
        };
        self.account_command(id, cmd, actor).await
    }

    pub async fn set_disabled(
        &self,
        id: Uuid,
        disabled: bool,
        reason: &str,
        actor: &str,
    ) -> Result<(), AccountError> {
        let cmd = AccountCommand::SetDisabled {
            disabled,
            reason: reason.to_string(),
        };
        self.account_command(id, cmd, actor).await
    }

    /// Creates an API token and returns it (shown once; only its hash is stored).
    pub async fn create_api_token(
        &self,
        id: Uuid,
        label: &str,
        actor: &str,
    ) -> Result<String, AccountError> {
        let token = format!("avvik_{}", crate::service::new_status_token());
        let cmd = AccountCommand::CreateToken {
            token_id: Uuid::now_v7(),
            token_hash: avvik_events::hash_hex(token.as_bytes()),
            label: label.to_string(),
        };
        self.account_command(id, cmd, actor).await?;
        Ok(token)
    }

    pub async fn revoke_api_token(
        &self,
        id: Uuid,
        token_id: Uuid,
        actor: &str,
    ) -> Result<(), AccountError> {
        self.account_command(id, AccountCommand::RevokeToken { token_id }, actor)
            .await
    }

    /// Creates the account's calendar feed (replacing the one in use, if any) and returns
    /// its secret token, shown once; only its hash is stored. Only the owner asks for it.
    pub async fn create_calendar_feed(
        &self,
        id: Uuid,
        actor: &str,
    ) -> Result<String, AccountError> {
        let token = crate::service::new_status_token();
        let cmd = AccountCommand::CreateCalendarFeed {
            feed_id: Uuid::now_v7(),
            token_hash: avvik_events::hash_hex(token.as_bytes()),
        };
        self.account_command(id, cmd, actor).await?;
        Ok(token)
    }

    /// Revokes a calendar feed: its URL answers 404 from then on.
    pub async fn revoke_calendar_feed(
        &self,
        id: Uuid,
        feed_id: Uuid,
        actor: &str,
    ) -> Result<(), AccountError> {
        self.account_command(id, AccountCommand::RevokeCalendarFeed { feed_id }, actor)
            .await
    }

    /// An account change under separation of duties (`duties::decide`), asked for by the
    /// admin with account `by`.
    pub async fn account_duty(
        &self,
        id: Uuid,
        cmd: super::duties::DutyCommand,
        by: Uuid,
        actor: &str,
    ) -> Result<(), AccountError> {
        if let super::duties::DutyCommand::Grant { role, sectors } = &cmd {
            check_grant(*role, sectors)?;
        }
        let ctx = super::duties::DutyContext {
            by,
            new_request_id: Uuid::now_v7(),
        };
        let env = Envelope::new(id, actor);
        let outcome = self
            .commands()
            .execute(&env, self.load_account(id), |state, _ctx| {
                let account = state.as_ref().ok_or(AccountError::NotFound)?;
                super::duties::decide(account, cmd.clone(), ctx)
            })
            .await?;
        self.wait_for_accounts(outcome.last_seq()).await;
        Ok(())
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
        let hash = password::hash_for_storing(&self.secret, pw).map_err(AccountError::Invalid)?;
        let set = AccountCommand::SetPassword {
            password_hash: hash,
            pepper: password::PEPPER_V1.into(),
        };
        let env = Envelope::new(id, actor);
        let outcome = self
            .commands()
            .execute(&env, self.load_account(id), |state, _ctx| {
                let mut events = decide(state.as_ref(), id, &set)?;
                if revoke_tokens {
                    let account = state.as_ref().ok_or(AccountError::NotFound)?;
                    let ctx = super::duties::DutyContext {
                        by: Uuid::nil(),
                        new_request_id: Uuid::nil(),
                    };
                    events.extend(super::duties::decide(
                        account,
                        super::duties::DutyCommand::RevokeAllTokens,
                        ctx,
                    )?);
                }
                Ok(events)
            })
            .await?;
        self.wait_for_accounts(outcome.last_seq()).await;
        Ok(())
    }

    async fn wait_for_accounts(&self, seq: Option<u64>) {
        if let Some(seq) = seq {
            self.register
                .wait_for(seq, std::time::Duration::from_secs(10))
                .await;
        }
    }

    /// A sign-in through an identity provider: the account linked to the provider's user
    /// (else the account of their e-mail address) made or linked as needed, and given the
    /// roles the provider's claim gives (`identity::decide_provider_sign_in`). Returns the
    /// account as it stands afterwards.
    pub async fn provider_sign_in(&self, user: &ProviderUser) -> Result<Account, AccountError> {
        let linked = self
            .register
            .read()
            .accounts
            .by_identity(&user.issuer, &user.subject)
            .map(|a| a.id);
        let id = linked.unwrap_or_else(|| account_id(&user.email));
        let env = Envelope::new(id, format!("oidc:{}", user.provider));
        let outcome = self
            .commands()
            .execute(&env, self.load_account(id), |state, _ctx| {
                decide_provider_sign_in(state.as_ref(), id, user).map_err(AccountError::from)
            })
            .await?;
        self.wait_for_accounts(outcome.last_seq()).await;
        self.account_now(id)
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
        let cmd = AccountCommand::SignOut {
            session_id,
            issued_at,
        };
        self.account_command(account_id, cmd, actor).await
    }
}
