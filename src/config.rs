//! Configuration: the compiled-in defaults (`config/avvik.toml`), an optional file, and
//! `AVVIK_SECTION__KEY` environment overrides, checked once at start-up.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// The documented defaults, compiled in.
pub const DEFAULT_TOML: &str = include_str!("../config/avvik.toml");

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub http: HttpConfig,
    pub store: StoreConfig,
    pub mail: MailConfig,
    pub recipients: Recipients,
    pub report: ReportConfig,
    pub intake: IntakeConfig,
    pub schedule: ScheduleConfig,
    pub policy: PolicyConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub addr: SocketAddr,
    pub base_url: String,
    pub body_limit: usize,
    pub request_timeout_s: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    pub data_dir: PathBuf,
    pub cache_mb: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransport {
    File,
    Smtp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    None,
    Starttls,
    Tls,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailConfig {
    pub transport: MailTransport,
    pub outbox_dir: PathBuf,
    pub from: String,
    pub reply_to: String,
    pub smtp: SmtpConfig,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub user: String,
    pub password: String,
    pub timeout_s: u64,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipients {
    pub ciso: Vec<String>,
    pub dataskyddsombud: Vec<String>,
    pub ledningsgrupp: Vec<String>,
    pub kommunstyrelsen: Vec<String>,
    #[serde(default)]
    pub kontakt: std::collections::BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportConfig {
    pub sectors: Vec<String>,
    pub categories: Vec<String>,
    pub allow_anonymous: bool,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntakeConfig {
    pub token: String,
    pub imap: ImapConfig,
}

impl std::fmt::Debug for IntakeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntakeConfig")
            .field(
                "token",
                &if self.token.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .field("imap", &self.imap)
            .finish()
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImapConfig {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub user: String,
    pub password: String,
    pub folder: String,
    pub processed_folder: String,
    pub interval_s: u64,
}

impl std::fmt::Debug for ImapConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImapConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("folder", &self.folder)
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    pub annual_report: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    pub valid_until: chrono::NaiveDate,
}

/// A configuration that cannot be used; the message names the key and the expected form.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Defaults, then `file` (if given), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError(format!(
                    "configuration file {} does not exist",
                    path.display()
                )));
            }
            fig = fig.merge(Toml::file(path));
        }
        // AVVIK_CONFIG names the file itself and is not a key.
        fig = fig.merge(Env::prefixed("AVVIK_").ignore(&["config"]).split("__"));
        Self::from_figment(fig)
    }

    /// The compiled-in defaults only (tests start from these).
    pub fn defaults() -> Result<Self, ConfigError> {
        Self::from_figment(Figment::from(Toml::string(DEFAULT_TOML)))
    }

    fn from_figment(fig: Figment) -> Result<Self, ConfigError> {
        let cfg: Config = fig.extract().map_err(|e| {
            let msgs: Vec<String> = e.into_iter().map(describe).collect();
            ConfigError(msgs.join("; "))
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks that serde's types cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, expected: &str, got: &dyn std::fmt::Display| {
            Err(ConfigError(format!(
                "key `{key}`: expected {expected}, got `{got}`"
            )))
        };
        let base = &self.http.base_url;
        if !(base.starts_with("http://") || base.starts_with("https://")) || base.contains(' ') {
            return bad("http.base_url", "an http:// or https:// URL", base);
        }
        if self.http.body_limit < 1024 {
            return bad(
                "http.body_limit",
                "at least 1024 bytes",
                &self.http.body_limit,
            );
        }
        if self.store.cache_mb == 0 {
            return bad(
                "store.cache_mb",
                "a positive number of MiB",
                &self.store.cache_mb,
            );
        }
        if crate::domain::EmailAddress::parse(&self.mail.from).is_none() {
            return bad("mail.from", "an e-mail address", &self.mail.from);
        }
        if !self.mail.reply_to.is_empty()
            && crate::domain::EmailAddress::parse(&self.mail.reply_to).is_none()
        {
            return bad(
                "mail.reply_to",
                "an e-mail address or empty",
                &self.mail.reply_to,
            );
        }
        if self.mail.transport == MailTransport::Smtp
            && self.mail.smtp.tls == TlsMode::None
            && !is_loopback_host(&self.mail.smtp.host)
        {
            return bad(
                "mail.smtp.tls",
                "\"starttls\" or \"tls\" (\"none\" only for a loopback host)",
                &"none",
            );
        }
        let r = &self.recipients;
        for (key, list) in [
            ("recipients.ciso", &r.ciso),
            ("recipients.dataskyddsombud", &r.dataskyddsombud),
            ("recipients.ledningsgrupp", &r.ledningsgrupp),
            ("recipients.kommunstyrelsen", &r.kommunstyrelsen),
        ]
        .into_iter()
        .chain(r.kontakt.values().map(|v| ("recipients.kontakt", v)))
        {
            for addr in list {
                if crate::domain::EmailAddress::parse(addr).is_none() {
                    return bad(key, "a list of e-mail addresses", addr);
                }
            }
        }
        if !self.intake.imap.host.is_empty()
            && self.intake.imap.tls == TlsMode::None
            && !is_loopback_host(&self.intake.imap.host)
        {
            return bad(
                "intake.imap.tls",
                "\"tls\" or \"starttls\" (\"none\" only for a loopback host)",
                &"none",
            );
        }
        if self.schedule.annual_report.split_whitespace().count() != 6 {
            return bad(
                "schedule.annual_report",
                "a cron expression with six fields (sec min hour day month weekday)",
                &self.schedule.annual_report,
            );
        }
        Ok(())
    }
}

/// Is `host` a loopback name or address?
pub fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

fn describe(e: figment::Error) -> String {
    let key = e.path.join(".");
    let kind = match &e.kind {
        figment::error::Kind::UnknownField(field, _) => {
            // figment's path already ends with the unknown field.
            let full = if key.is_empty() || key.ends_with(field.as_str()) {
                if key.is_empty() {
                    field.clone()
                } else {
                    key
                }
            } else {
                format!("{key}.{field}")
            };
            return format!("unknown key `{full}`");
        }
        other => other.to_string(),
    };
    let source = e
        .metadata
        .as_ref()
        .map(|m| format!(" (from {})", m.name))
        .unwrap_or_default();
    if key.is_empty() {
        format!("{kind}{source}")
    } else {
        format!("key `{key}`: {kind}{source}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_and_match_the_contract() {
        let c = Config::defaults().unwrap();
        assert_eq!(c.http.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.store.data_dir, PathBuf::from("data"));
        assert_eq!(c.mail.transport, MailTransport::File);
        assert!(c.intake.token.is_empty());
        assert_eq!(c.schedule.annual_report, "0 0 7 10 1 *");
    }

    fn with(extra: &str) -> Result<Config, ConfigError> {
        Config::from_figment(Figment::from(Toml::string(DEFAULT_TOML)).merge(Toml::string(extra)))
    }

    #[test]
    fn bad_values_name_their_key() {
        let e = with("[http]\naddr = \"not an address\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("http.addr"), "{e}");
        let e = with("[mail]\ntransport = \"pigeon\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("mail.transport"), "{e}");
        let e = with("[http]\nadr = \"x\"").unwrap_err().to_string();
        assert!(e.contains("unknown key `http.adr`"), "{e}");
        let e = with("[recipients]\nciso = [\"inte en adress\"]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("recipients.ciso"), "{e}");
        let e = with("[mail]\ntransport = \"smtp\"\n[mail.smtp]\nhost = \"smtp.example.org\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("mail.smtp.tls"), "{e}");
        let e = with("[policy]\nvalid_until = \"snart\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("policy.valid_until"), "{e}");
    }

    #[test]
    fn secrets_are_not_in_debug_output() {
        let mut c = Config::defaults().unwrap();
        c.mail.smtp.password = "hemligt-lösen".into();
        c.intake.token = "hemlig-token".into();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hemligt-lösen") && !dbg.contains("hemlig-token"));
    }
}
