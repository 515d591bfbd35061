//! Configuration: the compiled-in defaults (`config/avvik.toml`), an optional file, and
//! `AVVIK_SECTION__KEY` environment overrides, checked once at start-up.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

pub mod auth;
pub use auth::AuthConfig;

/// The documented defaults, compiled in.
pub const DEFAULT_TOML: &str = include_str!("../config/avvik.toml");

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub http: HttpConfig,
    pub store: StoreConfig,
    pub mail: MailConfig,
    pub recipients: Recipients,
    pub notifications: NotificationsConfig,
    pub report: ReportConfig,
    pub intake: IntakeConfig,
    pub schedule: ScheduleConfig,
    pub policy: PolicyConfig,
    /// The organisation's details for filings; seeds its stream at the first start.
    pub organisation: crate::domain::organisation::OrganisationDetails,
    /// Gallring rules (dokumenthanteringsplan).
    pub retention: crate::domain::retention::RetentionRules,
    /// Signed HTTP POSTs of chosen events to other systems (`[[webhooks]]`); none by default.
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    /// Case PDFs and register exports.
    pub export: ExportConfig,
    /// Staff sign-in (`[auth]`).
    #[serde(default)]
    pub auth: AuthConfig,
}

/// Exports (`[export]`): the case PDF and the register as XLSX or CSV.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// Printed at the top of every page of a case PDF, e.g. "Kan omfattas av sekretess
    /// enligt 18 kap. 8 § OSL"; empty: no header.
    pub secrecy_header: String,
}

/// The longest secrecy header, in characters (it wraps onto a few lines at most).
pub const SECRECY_HEADER_MAX_CHARS: usize = 200;

/// Windows-1252's letters and signs above Latin-1's range (0x80–0x9F): with Latin-1 they
/// are what the PDF's standard fonts can print (WinAnsiEncoding).
const CP1252_EXTRA: &str = "€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ";

/// Can the case PDF print this character of a header as it is (not as "?", and not
/// dropped like the invisible soft hyphen)?
pub fn printable_in_pdf(c: char) -> bool {
    !c.is_control() && c != '\u{AD}' && (u32::from(c) <= 0xFF || CP1252_EXTRA.contains(c))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub addr: SocketAddr,
    pub base_url: String,
    pub body_limit: usize,
    pub request_timeout_s: u64,
    /// Public state-changing requests (report form, status page, JSON report) allowed per
    /// peer IP address per minute; 0 turns the limit off.
    pub rate_limit_per_minute: u32,
    /// Requests handled at once; more are answered 503 at once instead of queueing.
    pub max_in_flight: usize,
    /// Reverse proxies (addresses or networks) whose `X-Forwarded-For` names the client
    /// for the rate limit. Empty: the TCP peer is the client.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Addresses or networks allowed to read `/metrics`; others get 403.
    pub metrics_allow: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    pub data_dir: PathBuf,
    pub cache_mb: u64,
    /// Continuous NDJSON archive of the log; empty: off.
    #[serde(default)]
    pub archive_dir: PathBuf,
    /// Where the event log lives: sled in `data_dir` (the default) or PostgreSQL.
    #[serde(default)]
    pub backend: StoreBackend,
    #[serde(default)]
    pub postgres: PostgresConfig,
}

/// `store.backend`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    #[default]
    Sled,
    Postgres,
}

/// `[store.postgres]`.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:port/database?sslmode=verify-full`; holds the
    /// password, so it is never logged (`Debug` and messages show it without).
    #[serde(default)]
    pub url: String,
}

impl PostgresConfig {
    /// The URL without its password, for messages.
    pub fn shown(&self) -> String {
        match reqwest::Url::parse(&self.url) {
            Ok(mut u) => {
                if u.password().is_some() {
                    let _ = u.set_password(Some("<redacted>"));
                }
                u.to_string()
            }
            Err(_) => "<redacted>".into(),
        }
    }
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &self.shown())
            .finish()
    }
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
    /// Receipts are mailed only to reporters in these domains (and their subdomains);
    /// empty: the domain of `from`; `["*"]`: to any address.
    pub receipt_domains: Vec<String>,
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
    /// SMTP connections kept open for reuse at most.
    pub pool_max: u32,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("timeout_s", &self.timeout_s)
            .field("pool_max", &self.pool_max)
            .finish()
    }
}

/// When e-mail notices go out and how delivery is retried (`[notifications]`; each key is
/// documented in config/avvik.toml).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsConfig {
    /// Include the description in escalations to ledningsgrupp and kommunstyrelsen.
    pub board_includes_description: bool,
    /// Hours after an escalation before one reminder goes to a group nobody in which has
    /// acknowledged; 0 = no reminder.
    pub ack_reminder_after_h: u64,
    /// Hours before a statutory deadline that CISO/DPO are reminded; 0 = no early reminder.
    pub deadline_reminder_before_h: u64,
    /// While a deadline is overdue and unfiled, remind again every this many hours; 0 = once.
    pub overdue_repeat_h: u64,
    /// Stockholm hour (0–23) on the day after a measure's due date its owner is reminded.
    pub measure_reminder_hour: u32,
    /// Remind the owner again every this many days while the measure is open; 0 = once.
    pub measure_repeat_days: u64,
    /// Seconds before the first retry of a failed delivery; doubles per attempt.
    pub retry_first_s: u64,
    /// Longest wait between two attempts, seconds.
    pub retry_max_s: u64,
    /// Hours after a notice became due that delivery is abandoned.
    pub give_up_after_h: u64,
    /// Seconds between looks for due reminders and retries.
    pub poll_interval_s: u64,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// A new deviation should be classified within this many working days (Stockholm;
    /// not weekends, public holidays or the eves municipalities close on); then it is
    /// overdue and its owner (or the CISO and the sector's contact) is reminded. 0: none.
    #[serde(default = "default_triage_days")]
    pub triage_working_days: u32,
}

fn default_triage_days() -> u32 {
    2
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
    /// Larger messages are quarantined (raw bytes kept), not turned into deviations.
    pub max_message_bytes: usize,
    /// A message with a larger attachment is quarantined.
    pub max_attachment_bytes: usize,
    /// `authserv-id`s of the receiving MTAs whose `Authentication-Results` header is
    /// believed for e-mail comments; empty: no sender counts as verified.
    pub trusted_authserv_ids: Vec<String>,
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
            .field("max_message_bytes", &self.max_message_bytes)
            .field("max_attachment_bytes", &self.max_attachment_bytes)
            .field("trusted_authserv_ids", &self.trusted_authserv_ids)
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
    /// What marks a message as handled: moved to `processed_folder`, or flagged in place.
    pub mark: ImapMark,
    /// Wait with IMAP IDLE between polls when the server offers it.
    pub idle: bool,
}

/// How the IMAP collector marks a message it has durably recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImapMark {
    /// Move it to `processed_folder` (MOVE, or COPY + delete + expunge).
    Move,
    /// Leave it in the folder with the keyword `$AvvikProcessed`.
    Flag,
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
            .field("processed_folder", &self.processed_folder)
            .field("interval_s", &self.interval_s)
            .field("mark", &self.mark)
            .field("idle", &self.idle)
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    pub annual_report: String,
    /// When on a review reminder's date it is sent (first match on or after its start).
    pub policy_review_reminder: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    pub valid_until: chrono::NaiveDate,
    /// Months before `valid_until` at which the CISO is reminded to review the policy.
    pub review_reminders_months: Vec<u32>,
}

/// One `[[webhooks]]` entry: where chosen events are POSTed, signed with its secret.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Names the webhook in events, logs and metrics (the URL may hold a token of its own,
    /// so it is never logged).
    pub name: String,
    /// `https://…` (or `http://` to a loopback host).
    pub url: String,
    /// The signing secret itself; or
    #[serde(default)]
    pub secret: String,
    /// a file holding it (a trailing newline is dropped); or
    #[serde(default)]
    pub secret_file: PathBuf,
    /// the name of an environment variable holding it.
    #[serde(default)]
    pub secret_env: String,
    /// The deviation event types sent, e.g. `["DeviationReported", "DeviationClassified"]`.
    pub events: Vec<String>,
    /// Attempts before a delivery is abandoned.
    #[serde(default = "default_webhook_attempts")]
    pub max_attempts: u32,
    /// Seconds an attempt may take (connect, send, answer) before it counts as failed.
    #[serde(default = "default_webhook_timeout")]
    pub timeout_s: u64,
}

fn default_webhook_attempts() -> u32 {
    10
}

fn default_webhook_timeout() -> u64 {
    10
}

/// The shortest signing secret accepted.
pub const WEBHOOK_SECRET_MIN: usize = 16;

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("name", &self.name)
            .field("url", &"<redacted>")
            .field("secret", &"<redacted>")
            .field("secret_file", &self.secret_file)
            .field("secret_env", &self.secret_env)
            .field("events", &self.events)
            .field("max_attempts", &self.max_attempts)
            .field("timeout_s", &self.timeout_s)
            .finish()
    }
}

impl WebhookConfig {
    /// The signing secret, from wherever the configuration says it is (read at start-up,
    /// so a missing file or variable stops `avvik serve` naming the key). `index` is the
    /// entry's place in `[[webhooks]]`, for the message.
    pub fn resolve_secret(&self, index: usize) -> Result<String, ConfigError> {
        let key = |k: &str| format!("webhooks[{index}].{k} (webhook \"{}\")", self.name);
        let (secret, which) = read_secret(&self.secret, &self.secret_file, &self.secret_env, &key)?;
        if secret.chars().count() < WEBHOOK_SECRET_MIN {
            return Err(ConfigError(format!(
                "key `{}`: expected a secret of at least {WEBHOOK_SECRET_MIN} characters, got `<redacted>`",
                key(which)
            )));
        }
        Ok(secret)
    }
}

/// A secret given in one of three ways: the value itself, a file holding it (a trailing
/// newline is dropped) or the name of an environment variable holding it. Returns it and
/// the key it came from; `key` names a key for the message (a missing file or variable
/// stops `avvik serve` naming it).
pub(crate) fn read_secret(
    value: &str,
    file: &Path,
    env: &str,
    key: &dyn Fn(&str) -> String,
) -> Result<(String, &'static str), ConfigError> {
    if !value.is_empty() {
        Ok((value.to_string(), "secret"))
    } else if !file.as_os_str().is_empty() {
        let text = std::fs::read_to_string(file).map_err(|e| {
            ConfigError(format!(
                "key `{}`: cannot read {}: {e}",
                key("secret_file"),
                file.display()
            ))
        })?;
        Ok((
            text.trim_end_matches(['\r', '\n']).to_string(),
            "secret_file",
        ))
    } else {
        let v = std::env::var(env).map_err(|_| {
            ConfigError(format!(
                "key `{}`: the environment variable {env} is not set",
                key("secret_env")
            ))
        })?;
        Ok((v, "secret_env"))
    }
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
        // Every key lives in a section, so only AVVIK_SECTION__KEY variables are settings;
        // others with the prefix (AVVIK_CONFIG, names used by tools and tests) are not.
        fig = fig.merge(
            Env::prefixed("AVVIK_")
                .filter(|k| k.as_str().contains("__"))
                .split("__"),
        );
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
        if self.http.max_in_flight == 0 {
            return bad("http.max_in_flight", "at least 1", &self.http.max_in_flight);
        }
        if let Err(e) = crate::net::IpNets::parse(&self.http.trusted_proxies) {
            return bad(
                "http.trusted_proxies",
                "IP addresses or networks such as \"10.0.0.0/8\"",
                &e,
            );
        }
        if let Err(e) = crate::net::IpNets::parse(&self.http.metrics_allow) {
            return bad(
                "http.metrics_allow",
                "IP addresses or networks such as \"127.0.0.1\"",
                &e,
            );
        }
        if self.store.backend == StoreBackend::Postgres {
            let url = reqwest::Url::parse(&self.store.postgres.url).ok();
            let ok = url.as_ref().is_some_and(|u| {
                matches!(u.scheme(), "postgres" | "postgresql")
                    && u.host_str().is_some_and(|h| !h.is_empty())
                    && u.path().len() > 1
            });
            if !ok {
                return bad(
                    "store.postgres.url",
                    "postgres://user:password@host:port/database (store.backend = \"postgres\")",
                    &self.store.postgres.shown(),
                );
            }
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
        for sector in r.kontakt.keys() {
            if !self.report.sectors.is_empty() && !self.report.sectors.contains(sector) {
                return bad(
                    "recipients.kontakt",
                    "sector names from report.sectors",
                    sector,
                );
            }
        }
        self.validate_mail_delivery()?;
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
        self.validate_intake()?;
        let header = &self.export.secrecy_header;
        if header.chars().count() > SECRECY_HEADER_MAX_CHARS
            || header.trim() != header
            || !header.chars().all(printable_in_pdf)
        {
            return bad(
                "export.secrecy_header",
                &format!(
                    "one line of at most {SECRECY_HEADER_MAX_CHARS} characters without \
                     leading or trailing spaces, in letters the PDF fonts can print \
                     (Latin-1 and Windows-1252: å ä ö é § – … are fine), or empty for no header"
                ),
                header,
            );
        }
        self.validate_webhooks()?;
        self.auth.validate(&self.http.base_url)?;
        for (key, expr) in [
            ("schedule.annual_report", &self.schedule.annual_report),
            (
                "schedule.policy_review_reminder",
                &self.schedule.policy_review_reminder,
            ),
        ] {
            let parsed = crate::clock::cron::StockholmSchedule::parse(expr);
            if expr.split_whitespace().count() != 6 || parsed.is_err() {
                let why = parsed.err().map(|e| format!(" ({e})")).unwrap_or_default();
                return bad(
                    key,
                    &format!(
                        "a cron expression with six fields (sec min hour day month weekday){why}"
                    ),
                    expr,
                );
            }
        }
        let months = &self.policy.review_reminders_months;
        for (i, m) in months.iter().enumerate() {
            if *m > 120 || months[..i].contains(m) {
                return bad(
                    "policy.review_reminders_months",
                    "distinct numbers of months from 0 to 120",
                    m,
                );
            }
        }
        Ok(())
    }
}

impl Config {
    /// The `[mail.smtp]` and `[notifications]` bounds (separate so `validate` stays short).
    fn validate_mail_delivery(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, expected: &str, got: &dyn std::fmt::Display| {
            Err(ConfigError(format!(
                "key `{key}`: expected {expected}, got `{got}`"
            )))
        };
        let smtp = &self.mail.smtp;
        if self.mail.transport == MailTransport::Smtp {
            if smtp.host.trim().is_empty() {
                return bad("mail.smtp.host", "a host name or address", &smtp.host);
            }
            if smtp.port == 0 {
                return bad("mail.smtp.port", "a port from 1 to 65535", &smtp.port);
            }
        }
        let n = &self.notifications;
        let ranges: [(&str, u64, u64, u64); 10] = [
            ("mail.smtp.timeout_s", smtp.timeout_s, 1, 600),
            ("mail.smtp.pool_max", smtp.pool_max.into(), 1, 64),
            (
                "notifications.ack_reminder_after_h",
                n.ack_reminder_after_h,
                0,
                720,
            ),
            (
                "notifications.deadline_reminder_before_h",
                n.deadline_reminder_before_h,
                0,
                720,
            ),
            ("notifications.overdue_repeat_h", n.overdue_repeat_h, 0, 720),
            (
                "notifications.measure_reminder_hour",
                n.measure_reminder_hour.into(),
                0,
                23,
            ),
            (
                "notifications.measure_repeat_days",
                n.measure_repeat_days,
                0,
                365,
            ),
            ("notifications.give_up_after_h", n.give_up_after_h, 1, 720),
            ("notifications.poll_interval_s", n.poll_interval_s, 1, 3600),
            ("notifications.concurrency", n.concurrency as u64, 1, 64),
        ];
        for (key, value, lo, hi) in ranges {
            if !(lo..=hi).contains(&value) {
                return bad(key, &format!("a number from {lo} to {hi}"), &value);
            }
        }
        if !(1..=86_400).contains(&n.retry_first_s) {
            return bad(
                "notifications.retry_first_s",
                "a number of seconds from 1 to 86400",
                &n.retry_first_s,
            );
        }
        if n.retry_max_s < n.retry_first_s || n.retry_max_s > 86_400 {
            return bad(
                "notifications.retry_max_s",
                "at least notifications.retry_first_s and at most 86400",
                &n.retry_max_s,
            );
        }
        Ok(())
    }
}

impl Config {
    fn validate_intake(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, expected: &str, got: &dyn std::fmt::Display| {
            Err(ConfigError(format!(
                "key `{key}`: expected {expected}, got `{got}`"
            )))
        };
        let i = &self.intake;
        if i.max_message_bytes < 1024 {
            return bad(
                "intake.max_message_bytes",
                "at least 1024 bytes",
                &i.max_message_bytes,
            );
        }
        if i.max_attachment_bytes == 0 || i.max_attachment_bytes > i.max_message_bytes {
            return bad(
                "intake.max_attachment_bytes",
                "a positive number of bytes, at most intake.max_message_bytes",
                &i.max_attachment_bytes,
            );
        }
        if !i.token.is_empty() && i.token.len() < 16 {
            return bad(
                "intake.token",
                "empty (upload off) or at least 16 characters",
                &"<redacted>",
            );
        }
        let imap = &i.imap;
        if imap.host.is_empty() {
            return Ok(());
        }
        if imap.user.is_empty() {
            return bad(
                "intake.imap.user",
                "a user name when intake.imap.host is set",
                &"",
            );
        }
        if imap.folder.trim().is_empty() {
            return bad("intake.imap.folder", "a folder name", &imap.folder);
        }
        if imap.mark == ImapMark::Move
            && (imap.processed_folder.trim().is_empty() || imap.processed_folder == imap.folder)
        {
            return bad(
                "intake.imap.processed_folder",
                "a folder other than intake.imap.folder (mark = \"move\")",
                &imap.processed_folder,
            );
        }
        if imap.interval_s == 0 {
            return bad(
                "intake.imap.interval_s",
                "a positive number of seconds",
                &imap.interval_s,
            );
        }
        Ok(())
    }
}

impl Config {
    /// `[[webhooks]]`: names, URLs, event types, one source of the secret. The secret
    /// itself is read when the service starts (`WebhookConfig::resolve_secret`).
    fn validate_webhooks(&self) -> Result<(), ConfigError> {
        let mut names = std::collections::HashSet::new();
        for (i, w) in self.webhooks.iter().enumerate() {
            let bad = |key: &str, expected: &str, got: &dyn std::fmt::Display| {
                Err(ConfigError(format!(
                    "key `webhooks[{i}].{key}`: expected {expected}, got `{got}`"
                )))
            };
            let name_ok = !w.name.is_empty()
                && w.name.len() <= 64
                && w.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
            if !name_ok {
                return bad(
                    "name",
                    "a name of 1 to 64 characters a-z, 0-9, - and _",
                    &w.name,
                );
            }
            if !names.insert(w.name.as_str()) {
                return bad("name", "a name no other webhook has", &w.name);
            }
            let url = reqwest::Url::parse(&w.url).ok();
            let scheme = url.as_ref().map(|u| u.scheme().to_string());
            let host = url
                .as_ref()
                .and_then(|u| u.host_str())
                .unwrap_or("")
                .to_string();
            let form_ok = matches!(scheme.as_deref(), Some("http" | "https"))
                && !host.is_empty()
                && url
                    .as_ref()
                    .is_some_and(|u| u.username().is_empty() && u.password().is_none());
            // The URL may carry a token of its own: never repeat it in a message.
            let shown = match &url {
                Some(u) if form_ok => format!("{}://{}/…", u.scheme(), host),
                _ => "<redacted>".to_string(),
            };
            if !form_ok {
                return bad(
                    "url",
                    "an https:// URL with a host and no user or password",
                    &shown,
                );
            }
            if scheme.as_deref() == Some("http") && !is_loopback_host(&host) {
                return bad(
                    "url",
                    "an https:// URL (http:// only for a loopback host)",
                    &shown,
                );
            }
            let sources = [
                !w.secret.is_empty(),
                !w.secret_file.as_os_str().is_empty(),
                !w.secret_env.is_empty(),
            ];
            match sources.iter().filter(|s| **s).count() {
                0 => {
                    return bad(
                        "secret",
                        "a signing secret (secret, secret_file or secret_env)",
                        &"",
                    )
                }
                1 => {}
                _ => {
                    return bad(
                        "secret",
                        "only one of secret, secret_file and secret_env",
                        &"<redacted>",
                    )
                }
            }
            if !w.secret.is_empty() && w.secret.chars().count() < WEBHOOK_SECRET_MIN {
                return bad(
                    "secret",
                    &format!("a secret of at least {WEBHOOK_SECRET_MIN} characters"),
                    &"<redacted>",
                );
            }
            if w.events.is_empty() {
                return bad("events", "a list of at least one event type", &"[]");
            }
            let known = crate::domain::DeviationEvent::TYPES;
            for (j, ev) in w.events.iter().enumerate() {
                if !known.contains(&ev.as_str()) || w.events[..j].contains(ev) {
                    return Err(ConfigError(format!(
                        "key `webhooks[{i}].events`: expected distinct event types from {}, got `{ev}`",
                        known.join(", ")
                    )));
                }
            }
            if !(1..=100).contains(&w.max_attempts) {
                return bad("max_attempts", "a number from 1 to 100", &w.max_attempts);
            }
            if !(1..=300).contains(&w.timeout_s) {
                return bad(
                    "timeout_s",
                    "a number of seconds from 1 to 300",
                    &w.timeout_s,
                );
            }
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
        let e = with("[http]\ntrusted_proxies = [\"proxy.example\"]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("http.trusted_proxies"), "{e}");
        assert!(with("[http]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]").is_ok());
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
        let e = with("[notifications]\nretry_first_s = 0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("notifications.retry_first_s"), "{e}");
        let e = with("[notifications]\nretry_first_s = 600\nretry_max_s = 60")
            .unwrap_err()
            .to_string();
        assert!(e.contains("notifications.retry_max_s"), "{e}");
        let e = with("[notifications]\nmeasure_reminder_hour = 24")
            .unwrap_err()
            .to_string();
        assert!(e.contains("notifications.measure_reminder_hour"), "{e}");
        let e = with("[recipients.kontakt]\n\"Socialtjänst\" = [\"k@kommunen.example\"]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("recipients.kontakt"), "{e}");
        let e = with("[mail]\ntransport = \"smtp\"\n[mail.smtp]\nhost = \"\"\ntls = \"starttls\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("mail.smtp.host"), "{e}");
        let e = with("[schedule]\nannual_report = \"0 0 25 10 1 *\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("schedule.annual_report"), "{e}");
        let e = with("[schedule]\npolicy_review_reminder = \"varje dag\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("schedule.policy_review_reminder"), "{e}");
        let e = with("[intake]\nmax_attachment_bytes = 0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("intake.max_attachment_bytes"), "{e}");
        let e = with("[intake.imap]\nhost = \"127.0.0.1\"\ntls = \"none\"\nuser = \"u\"\nprocessed_folder = \"INBOX\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("intake.imap.processed_folder"), "{e}");
        let e = with("[intake.imap]\nmark = \"delete\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("intake.imap.mark"), "{e}");
        let e = with("[intake]\ntoken = \"kort\"").unwrap_err().to_string();
        assert!(e.contains("intake.token") && !e.contains("kort"), "{e}");
        let e = with("[policy]\nreview_reminders_months = [12, 6, 6]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("policy.review_reminders_months"), "{e}");
    }

    #[test]
    fn the_secrecy_header_is_one_printable_line() {
        let c = Config::defaults().unwrap();
        assert_eq!(
            c.export.secrecy_header,
            "Kan omfattas av sekretess enligt 18 kap. 8 § OSL"
        );
        assert!(with("[export]\nsecrecy_header = \"\"").is_ok());
        assert!(with("[export]\nsecrecy_header = \"Sekretess – se § 4 … “OSL”\"").is_ok());
        for bad in [
            "\"Rad ett\\nRad två\"",
            "\" Sekretess\"",
            "\"Sekretess \"",
            "\"Sekretess ✓\"",
            "\"Секретно\"",
            &format!("\"{}\"", "x".repeat(SECRECY_HEADER_MAX_CHARS + 1)),
        ] {
            let e = with(&format!("[export]\nsecrecy_header = {bad}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("export.secrecy_header"), "{bad}: {e}");
        }
        let e = with("[export]\nsecrecy = \"x\"").unwrap_err().to_string();
        assert!(e.contains("unknown key `export.secrecy`"), "{e}");
    }

    #[test]
    fn webhooks_are_checked_naming_the_key_and_never_showing_secrets() {
        let hook = |body: &str| with(&format!("[[webhooks]]\n{body}"));
        let ok = "name = \"siem\"\nurl = \"https://siem.kommunen.example/h?token=t0p\"\nsecret = \"ett-hemligt-delat-lösen\"\nevents = [\"DeviationReported\"]";
        let c = hook(ok).unwrap();
        assert_eq!(c.webhooks.len(), 1);
        assert_eq!(c.webhooks[0].max_attempts, 10);
        assert_eq!(
            c.webhooks[0].resolve_secret(0).unwrap(),
            "ett-hemligt-delat-lösen"
        );
        let dbg = format!("{:?}", c.webhooks);
        assert!(!dbg.contains("hemligt") && !dbg.contains("t0p"), "{dbg}");
        let cases = [
            (
                ok.replace(
                    "https://siem.kommunen.example/h?token=t0p",
                    "ftp://siem.kommunen.example/",
                ),
                "webhooks[0].url",
            ),
            (
                ok.replace(
                    "https://siem.kommunen.example/h?token=t0p",
                    "inte en adress",
                ),
                "webhooks[0].url",
            ),
            (
                ok.replace(
                    "https://siem.kommunen.example/h?token=t0p",
                    "http://siem.kommunen.example/h?token=t0p",
                ),
                "webhooks[0].url",
            ),
            (
                ok.replace("ett-hemligt-delat-lösen", ""),
                "webhooks[0].secret",
            ),
            (
                ok.replace("ett-hemligt-delat-lösen", "kort"),
                "webhooks[0].secret",
            ),
            (format!("{ok}\nsecret_env = \"X\""), "webhooks[0].secret"),
            (
                ok.replace("DeviationReported", "DeviationRepotred"),
                "webhooks[0].events",
            ),
            (
                ok.replace("[\"DeviationReported\"]", "[]"),
                "webhooks[0].events",
            ),
            (ok.replace("siem\"", "SIEM sak\""), "webhooks[0].name"),
            (
                format!("{ok}\nmax_attempts = 0"),
                "webhooks[0].max_attempts",
            ),
            (format!("{ok}\nurl2 = \"x\""), "webhooks"),
        ];
        for (body, key) in cases {
            let e = hook(&body).unwrap_err().to_string();
            assert!(e.contains(key), "{body}: {e}");
            assert!(
                !e.contains("hemligt") && !e.contains("t0p") && !e.contains("kort"),
                "{e}"
            );
        }
        let e = with(&format!("[[webhooks]]\n{ok}\n[[webhooks]]\n{ok}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("webhooks[1].name"), "{e}");
        // A loopback receiver may be plain http.
        assert!(hook(&ok.replace(
            "https://siem.kommunen.example/h?token=t0p",
            "http://127.0.0.1:9/h"
        ))
        .is_ok());
        // A secret file or variable is read at start-up, and a missing one names its key.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "ett-hemligt-delat-lösen\n").unwrap();
        let c = hook(&ok.replace(
            "secret = \"ett-hemligt-delat-lösen\"",
            &format!("secret_file = {:?}", file.display().to_string()),
        ))
        .unwrap();
        assert_eq!(
            c.webhooks[0].resolve_secret(0).unwrap(),
            "ett-hemligt-delat-lösen"
        );
        let c = hook(&ok.replace(
            "secret = \"ett-hemligt-delat-lösen\"",
            "secret_env = \"AVVIK_TEST_NO_SUCH_SECRET\"",
        ))
        .unwrap();
        let e = c.webhooks[0].resolve_secret(0).unwrap_err().to_string();
        assert!(e.contains("webhooks[0].secret_env"), "{e}");
    }

    #[test]
    fn secrets_are_not_in_debug_output() {
        let mut c = Config::defaults().unwrap();
        c.mail.smtp.password = "hemligt-lösen".into();
        c.intake.token = "hemlig-token".into();
        c.intake.imap.password = "imap-lösen".into();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hemligt-lösen") && !dbg.contains("hemlig-token"));
        assert!(!dbg.contains("imap-lösen"));
    }

    #[test]
    fn a_postgres_store_needs_a_url_and_never_shows_its_password() {
        let mut c = Config::defaults().unwrap();
        assert_eq!(c.store.backend, StoreBackend::Sled);
        c.store.backend = StoreBackend::Postgres;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("store.postgres.url"), "{e}");
        c.store.postgres.url = "mysql://avvik:pg-lösen@db/avvik".into();
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("store.postgres.url") && !e.contains("pg-lösen"),
            "{e}"
        );
        c.store.postgres.url = "postgres://avvik:pg-losen@db.kommunen.se:5432/avvik".into();
        c.validate().unwrap();
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("pg-losen") && dbg.contains("db.kommunen.se"),
            "{dbg}"
        );
    }
}

#[cfg(test)]
mod env_tests {
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail closure returns figment::Error
    fn only_section_keys_come_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("AVVIK_HTTP__ADDR", "127.0.0.1:9999");
            jail.set_env("AVVIK_AXE_JS", "/somewhere/axe.min.js");
            jail.set_env("AVVIK_CONFIG", "/etc/avvik.toml");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.http.addr.to_string(), "127.0.0.1:9999");
            jail.set_env("AVVIK_HTTP__NOPE", "1");
            let e = Config::load(None).unwrap_err().to_string();
            assert!(e.contains("http.nope"), "{e}");
            Ok(())
        });
    }
}
