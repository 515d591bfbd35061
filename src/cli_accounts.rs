//! `avvik user …` and `avvik token …`: account bootstrap and recovery on a stopped server.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use avvik_events::{EventStore, SledEventStore};

use crate::auth::Role;
use crate::clock::SystemClock;
use crate::config::{Config, StoreBackend};
use crate::domain::EmailAddress;
use crate::register::RegisterProjection;
use crate::service::Services;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account. The password is read from a prompt, or from stdin with
    /// --password-stdin.
    Add {
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// ciso, kontakt, dso, systemagare, ledning, auditor or admin (repeatable).
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// Sector for the kontakt role (repeatable).
        #[arg(long = "sector")]
        sectors: Vec<String>,
        #[arg(long)]
        password_stdin: bool,
    },
    /// List accounts and their roles.
    List {
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Set a new password (prompt or --password-stdin); ends the account's sessions.
    Passwd {
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long)]
        email: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove every second factor of an account (authenticator app, passkeys, recovery
    /// codes), with a reason: for the last admin who lost their phone. The account then
    /// signs in with its password and adds a new one.
    ResetSecondFactor {
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long)]
        email: String,
        /// Recorded in the account's history.
        #[arg(long)]
        reason: String,
    },
    /// Grant a role.
    Grant {
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long)]
        email: String,
        #[arg(long)]
        role: String,
        #[arg(long = "sector")]
        sectors: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token for a user; the token is printed as the last line.
    Create {
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long)]
        user: String,
        #[arg(long, default_value = "")]
        label: String,
    },
}

const ACTOR: &str = "system:cli";

async fn services(
    config: &Config,
    data: Option<PathBuf>,
) -> anyhow::Result<(Services, tokio::sync::watch::Sender<bool>)> {
    let dir = data.unwrap_or_else(|| config.store.data_dir.clone());
    // The log where the service keeps it; the secret and the data keys stay in `dir`.
    let store: Arc<dyn EventStore> = match config.store.backend {
        StoreBackend::Sled => Arc::new(SledEventStore::open(&dir, crate::store::store_options())?),
        StoreBackend::Postgres => crate::startup::open_store(config)?,
    };
    let (tx, rx) = tokio::sync::watch::channel(false);
    let secret = crate::secret::Secret::load_or_create(&dir)?;
    secret.check_shared(store.as_ref())?;
    crate::store::adopt_local_files(store.as_ref(), &dir)?;
    let keys = crate::privacy::Keyring::open_for(store.as_ref(), &dir, &secret)?;
    let register = RegisterProjection::start_register(store.clone(), keys.clone(), rx);
    let head = store.head().seq;
    if !register.wait_for(head, Duration::from_secs(600)).await {
        bail!("the register could not be rebuilt from {}", dir.display());
    }
    Ok((
        Services {
            store,
            register,
            clock: Arc::new(SystemClock),
            secret,
            keys,
        },
        tx,
    ))
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    let first = rpassword::prompt_password("Lösenord: ")?;
    let second = rpassword::prompt_password("Upprepa lösenordet: ")?;
    if first != second {
        bail!("the passwords do not match");
    }
    Ok(first)
}

fn parse_email(s: &str) -> anyhow::Result<EmailAddress> {
    EmailAddress::parse(s).with_context(|| format!("`{s}` is not an e-mail address"))
}

fn parse_role(s: &str) -> anyhow::Result<Role> {
    Role::parse(s).with_context(|| {
        format!(
            "unknown role `{s}`; expected one of: {}",
            Role::ALL.map(|r| r.as_str()).join(", ")
        )
    })
}

pub async fn user(cmd: UserCommand, config: &Config) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add {
            data,
            email,
            name,
            roles,
            sectors,
            password_stdin,
        } => {
            let email = parse_email(&email)?;
            let mut grants = Vec::new();
            for r in &roles {
                let role = parse_role(r)?;
                let s = if role == Role::Kontakt {
                    sectors.clone()
                } else {
                    Vec::new()
                };
                grants.push((role, s));
            }
            let password = read_password(password_stdin)?;
            let (svc, _stop) = services(config, data).await?;
            let id = svc
                .create_account(&email, &name, &grants, Some(&password), ACTOR)
                .await
                .map_err(|e| anyhow::anyhow!("{e}: {}", e.message_sv()))?;
            println!("created account {email} ({id})");
        }
        UserCommand::List { data } => {
            let (svc, _stop) = services(config, data).await?;
            let reg = svc.register.read();
            for a in reg.accounts.list() {
                let roles: Vec<String> = a
                    .roles
                    .iter()
                    .map(|g| {
                        if g.sectors.is_empty() {
                            g.role.as_str().to_string()
                        } else {
                            format!("{}[{}]", g.role.as_str(), g.sectors.join(","))
                        }
                    })
                    .collect();
                println!(
                    "{}\t{}\t{}\t{}",
                    a.email,
                    a.name,
                    roles.join(" "),
                    if a.disabled { "disabled" } else { "active" }
                );
            }
        }
        UserCommand::Passwd {
            data,
            email,
            password_stdin,
        } => {
            let email = parse_email(&email)?;
            let password = read_password(password_stdin)?;
            let (svc, _stop) = services(config, data).await?;
            let id = crate::auth::accounts::account_id(&email);
            svc.set_password(id, &password, ACTOR)
                .await
                .map_err(|e| anyhow::anyhow!("{e}: {}", e.message_sv()))?;
            println!("password changed for {email}");
        }
        UserCommand::ResetSecondFactor {
            data,
            email,
            reason,
        } => {
            let email = parse_email(&email)?;
            let (svc, _stop) = services(config, data).await?;
            let id = crate::auth::accounts::account_id(&email);
            svc.reset_second_factors(id, &reason, ACTOR)
                .await
                .map_err(|e| anyhow::anyhow!("{e}: {}", e.message_sv()))?;
            println!("second factors removed for {email}");
        }
        UserCommand::Grant {
            data,
            email,
            role,
            sectors,
        } => {
            let email = parse_email(&email)?;
            let role = parse_role(&role)?;
            let (svc, _stop) = services(config, data).await?;
            let id = crate::auth::accounts::account_id(&email);
            svc.grant_role(id, role, sectors, ACTOR)
                .await
                .map_err(|e| anyhow::anyhow!("{e}: {}", e.message_sv()))?;
            println!("granted {} to {email}", role.as_str());
        }
    }
    Ok(())
}

pub async fn token(cmd: TokenCommand, config: &Config) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create { data, user, label } => {
            let email = parse_email(&user)?;
            let (svc, _stop) = services(config, data).await?;
            let id = crate::auth::accounts::account_id(&email);
            let token = svc
                .create_api_token(id, &label, ACTOR)
                .await
                .map_err(|e| anyhow::anyhow!("{e}: {}", e.message_sv()))?;
            eprintln!("API token for {email} (shown once; store it safely):");
            println!("{token}");
        }
    }
    Ok(())
}
