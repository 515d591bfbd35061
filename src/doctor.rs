//! `avvik doctor`: checks what the policy needs before it is needed (configuration, SMTP,
//! IMAP, recipient lists, disk space, clock) and says what to change, in Swedish and
//! English. Sends nothing, records nothing. Exit 1 when something the policy needs is
//! missing.

use std::path::Path;
use std::process::ExitCode;

use avvik_events::{EventStore, SledEventStore, StoreError};

use crate::config::{Config, MailTransport};
use crate::domain::recipients::{RecipientGroup, RecipientLists};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    Warn,
    /// Something the policy needs is missing: exit 1.
    Fail,
}

/// One finding: what was checked, what was found, and what to change (both languages).
#[derive(Debug, Clone)]
pub struct Finding {
    pub level: Level,
    pub check: &'static str,
    pub sv: String,
    pub en: String,
    pub fix_sv: Option<String>,
    pub fix_en: Option<String>,
}

impl Finding {
    fn ok(check: &'static str, sv: impl Into<String>, en: impl Into<String>) -> Self {
        Self {
            level: Level::Ok,
            check,
            sv: sv.into(),
            en: en.into(),
            fix_sv: None,
            fix_en: None,
        }
    }

    fn bad(
        level: Level,
        check: &'static str,
        (sv, en): (String, String),
        (fix_sv, fix_en): (String, String),
    ) -> Self {
        Self {
            level,
            check,
            sv,
            en,
            fix_sv: Some(fix_sv),
            fix_en: Some(fix_en),
        }
    }
}

/// Runs every check.
pub async fn diagnose(config: &Config) -> Vec<Finding> {
    let mut out = vec![check_config(config)];
    out.push(check_smtp(config).await);
    out.push(check_imap(config).await);
    out.push(check_recipients(config).await);
    out.push(check_disk(config));
    out.push(check_clock(config));
    if config.store.backend == crate::config::StoreBackend::Postgres {
        out.push(check_shared_secret(config));
    }
    out
}

/// With the log in PostgreSQL: this node's `secret.key` must be the installation's, or
/// the node is refused at start-up (read only: records nothing).
fn check_shared_secret(config: &Config) -> Finding {
    let dir = &config.store.data_dir;
    let copy_fix = || {
        (
            format!("Kopiera secret.key från store.data_dir på en nod som redan körs till {} (rättigheter 0600).", dir.display()),
            format!("Copy secret.key from store.data_dir on a node already running to {} (mode 0600).", dir.display()),
        )
    };
    let store = match crate::startup::open_store(config) {
        Ok(s) => s,
        Err(e) => {
            return Finding::bad(
                Level::Fail,
                "nodes",
                (
                    format!(
                        "PostgreSQL (store.postgres.url = {}) kan inte nås: {e:#}",
                        config.store.postgres.shown()
                    ),
                    format!(
                        "PostgreSQL (store.postgres.url = {}) cannot be reached: {e:#}",
                        config.store.postgres.shown()
                    ),
                ),
                (
                    "Rätta store.postgres.url eller starta databasen.".into(),
                    "Correct store.postgres.url or start the database.".into(),
                ),
            )
        }
    };
    let secret = match crate::secret::Secret::load(dir) {
        Ok(s) => s,
        Err(e) => {
            return Finding::bad(
                Level::Fail,
                "nodes",
                (
                    format!("secret.key i {} kan inte läsas: {e}", dir.display()),
                    format!("secret.key in {} cannot be read: {e}", dir.display()),
                ),
                copy_fix(),
            )
        }
    };
    let installed = crate::secret::Secret::installation_recorded(&*store).unwrap_or(false);
    match (secret, installed) {
        (None, false) => Finding::ok(
            "nodes",
            "Första noden: secret.key skapas vid start och blir installationens.",
            "First node: secret.key is created at start and becomes the installation's.",
        ),
        (None, true) => Finding::bad(
            Level::Fail,
            "nodes",
            (
                format!("Det finns ingen secret.key i {}, men databasen används redan av andra noder: den här noden skulle vägras vid start.", dir.display()),
                format!("There is no secret.key in {}, but other nodes already use the database: this node would be refused at start.", dir.display()),
            ),
            copy_fix(),
        ),
        (Some(s), _) => match s.matches_shared(&*store) {
            Ok(Some(false)) => Finding::bad(
                Level::Fail,
                "nodes",
                (
                    format!("secret.key i {} är inte installationens: noden skulle vägras vid start.", dir.display()),
                    format!("secret.key in {} is not the installation's: the node would be refused at start.", dir.display()),
                ),
                copy_fix(),
            ),
            Ok(_) => Finding::ok(
                "nodes",
                "secret.key är installationens; noden kan dela databasen med de andra.",
                "secret.key is the installation's; the node can share the database with the others.",
            ),
            Err(e) => Finding::bad(
                Level::Warn,
                "nodes",
                (format!("Installationens nyckelkontroll kan inte läsas: {e:#}"), format!("The installation's secret check cannot be read: {e:#}")),
                ("Kontrollera databasen.".into(), "Check the database.".into()),
            ),
        },
    }
}

fn check_config(config: &Config) -> Finding {
    match config.validate() {
        Ok(()) if config.http.base_url.contains("127.0.0.1") => Finding::bad(
            Level::Warn,
            "config",
            (
                format!("Konfigurationen är giltig, men http.base_url är {}: länkar i e-post fungerar bara på den här datorn.", config.http.base_url),
                format!("The configuration is valid, but http.base_url is {}: links in e-mails work only on this machine.", config.http.base_url),
            ),
            (
                "Sätt http.base_url till adressen medarbetarna når avvik på (till exempel https://avvik.kommunen.se).".into(),
                "Set http.base_url to the address staff reach avvik at (e.g. https://avvik.kommunen.se).".into(),
            ),
        ),
        Ok(()) => Finding::ok("config", "Konfigurationen är giltig.", "The configuration is valid."),
        Err(e) => Finding::bad(
            Level::Fail,
            "config",
            (format!("Konfigurationen är ogiltig: {e}"), format!("The configuration is invalid: {e}")),
            (
                "Rätta värdet som nämns i config/avvik.toml (eller i miljövariabeln AVVIK_…).".into(),
                "Fix the value named above in config/avvik.toml (or the AVVIK_… environment variable).".into(),
            ),
        ),
    }
}

async fn check_smtp(config: &Config) -> Finding {
    let m = &config.mail;
    if m.transport == MailTransport::File {
        return Finding::bad(
            Level::Fail,
            "smtp",
            (
                format!("E-post skickas inte: mail.transport = \"file\" skriver den till {}.", m.outbox_dir.display()),
                format!("E-mail is not sent: mail.transport = \"file\" writes it to {}.", m.outbox_dir.display()),
            ),
            (
                "Sätt mail.transport = \"smtp\" och mail.smtp.host, port, tls (och user, password).".into(),
                "Set mail.transport = \"smtp\" and mail.smtp.host, port, tls (and user, password).".into(),
            ),
        );
    }
    let target = format!("{}:{} (tls = {:?})", m.smtp.host, m.smtp.port, m.smtp.tls);
    let mailer = match avvik_notifiers::Mailer::new(&crate::notify::mailer_settings(config)) {
        Ok(m) => m,
        Err(e) => {
            return Finding::bad(
                Level::Fail,
                "smtp",
                (
                    format!("SMTP-inställningarna fungerar inte: {e}"),
                    format!("The SMTP settings do not work: {e}"),
                ),
                (
                    "Rätta [mail] i konfigurationen.".into(),
                    "Fix [mail] in the configuration.".into(),
                ),
            )
        }
    };
    match mailer.check_connection().await {
        Ok(info) => Finding::ok(
            "smtp",
            format!("SMTP-servern {target} svarar; anslutning, EHLO, TLS och inloggning fungerar ({info}). Inget skickades."),
            format!("The SMTP server {target} answers; connect, EHLO, TLS and login work ({info}). Nothing was sent."),
        ),
        Err(e) => Finding::bad(
            Level::Fail,
            "smtp",
            (
                format!("SMTP-servern {target} går inte att använda: {e}"),
                format!("The SMTP server {target} cannot be used: {e}"),
            ),
            (
                "Kontrollera mail.smtp.host, port och tls (starttls för port 587, tls för 465), användare och lösenord, och att brandväggen släpper fram avvik.".into(),
                "Check mail.smtp.host, port and tls (starttls for port 587, tls for 465), user and password, and that the firewall lets avvik through.".into(),
            ),
        ),
    }
}

async fn check_imap(config: &Config) -> Finding {
    let i = &config.intake.imap;
    if i.host.is_empty() {
        return Finding::ok(
            "imap",
            "E-postintag via IMAP är avstängt (intake.imap.host är tomt).",
            "IMAP intake is off (intake.imap.host is empty).",
        );
    }
    match crate::intake::imap::check_login(i).await {
        Ok(()) => Finding::ok(
            "imap",
            format!(
                "IMAP-inloggningen på {}:{} fungerar och mappen {} finns.",
                i.host, i.port, i.folder
            ),
            format!(
                "The IMAP login at {}:{} works and the folder {} exists.",
                i.host, i.port, i.folder
            ),
        ),
        Err(e) => Finding::bad(
            Level::Fail,
            "imap",
            (
                format!("IMAP på {}:{} fungerar inte: {e}", i.host, i.port),
                format!("IMAP at {}:{} does not work: {e}", i.host, i.port),
            ),
            (
                "Kontrollera intake.imap.host, port, tls, user, password och folder.".into(),
                "Check intake.imap.host, port, tls, user, password and folder.".into(),
            ),
        ),
    }
}

/// Where the lists come from: the log when the store can be opened, the running server
/// when it holds the store, else the configuration (which seeds the log at first start).
async fn current_lists(config: &Config) -> (RecipientLists, String) {
    let dir = &config.store.data_dir;
    if config.store.backend == crate::config::StoreBackend::Postgres {
        // Several processes share a database: reading it while the server runs is fine.
        if let Ok(store) = crate::startup::open_store(config) {
            if let Ok((r, _, _)) = crate::notify::recipients::load(&*store, None) {
                if r.recorded {
                    return (r.lists, "loggen i PostgreSQL".into());
                }
            }
        }
    } else if dir.exists() {
        match SledEventStore::open(dir, crate::store::store_options()) {
            Ok(store) => {
                let store: &dyn EventStore = &store;
                if let Ok((r, _, _)) = crate::notify::recipients::load(store, None) {
                    if r.recorded {
                        return (r.lists, format!("loggen i {}", dir.display()));
                    }
                }
            }
            Err(StoreError::Locked(_)) => {
                if let Some(missing) = running_server_missing(config).await {
                    // Only which required lists are empty is known from outside.
                    let mut lists = RecipientLists::default();
                    for g in RecipientGroup::REQUIRED {
                        if !missing.contains(&g) {
                            match g {
                                RecipientGroup::Ciso => lists.ciso.push("…".into()),
                                RecipientGroup::Ledningsgrupp => {
                                    lists.ledningsgrupp.push("…".into())
                                }
                                RecipientGroup::Kommunstyrelsen => {
                                    lists.kommunstyrelsen.push("…".into())
                                }
                                _ => {}
                            }
                        }
                    }
                    lists.dataskyddsombud.push("…".into());
                    return (lists, "den körande servern (/readyz)".into());
                }
            }
            Err(_) => {}
        }
    }
    (
        crate::notify::recipients::from_config(config),
        "konfigurationen [recipients]".into(),
    )
}

async fn running_server_missing(config: &Config) -> Option<Vec<RecipientGroup>> {
    let url = format!("{}/readyz", config.http.base_url.trim_end_matches('/'));
    let body: serde_json::Value = reqwest::Client::new()
        .get(url)
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    Some(
        body.get("missing_recipients")?
            .as_array()?
            .iter()
            .filter_map(|v| v.as_str().and_then(RecipientGroup::parse))
            .collect(),
    )
}

async fn check_recipients(config: &Config) -> Finding {
    let (lists, source) = current_lists(config).await;
    let missing = lists.missing();
    let mut also = Vec::new();
    if lists.dataskyddsombud.is_empty() {
        also.push(RecipientGroup::Dataskyddsombud);
    }
    if missing.is_empty() && also.is_empty() {
        return Finding::ok(
            "recipients",
            format!("Alla mottagarlistor har adresser (enligt {source})."),
            format!("Every recipient list has addresses (from {source})."),
        );
    }
    let names = |v: &[RecipientGroup]| v.iter().map(|g| g.key()).collect::<Vec<_>>().join(", ");
    let level = if missing.is_empty() {
        Level::Warn
    } else {
        Level::Fail
    };
    let all: Vec<RecipientGroup> = missing.iter().chain(&also).copied().collect();
    Finding::bad(
        level,
        "recipients",
        (
            format!("Mottagarlistor utan adresser (enligt {source}): {}. Större avvikelser eskaleras inte till någon förrän de har adresser.", names(&all)),
            format!("Recipient lists without addresses (from {source}): {}. Major deviations escalate to nobody until they have addresses.", names(&all)),
        ),
        (
            "Lägg till adresser under /staff/admin/recipients (som administratör), eller i [recipients] före första starten.".into(),
            "Add addresses at /staff/admin/recipients (as an admin), or in [recipients] before the first start.".into(),
        ),
    )
}

/// Free space where the log lives (or would be created).
fn check_disk(config: &Config) -> Finding {
    let mut dir: &Path = &config.store.data_dir;
    while !dir.exists() {
        match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => dir = p,
            _ => {
                dir = Path::new(".");
                break;
            }
        }
    }
    const MIB: u64 = 1024 * 1024;
    match fs2::available_space(dir) {
        Ok(free) if free < 200 * MIB => Finding::bad(
            Level::Fail,
            "disk",
            (
                format!("Bara {} MiB ledigt i {}: loggen kan snart inte skriva, och då tas inga rapporter emot.", free / MIB, dir.display()),
                format!("Only {} MiB free in {}: the log will soon fail to write, and then no reports are taken.", free / MIB, dir.display()),
            ),
            ("Frigör utrymme eller flytta store.data_dir till en större disk.".into(), "Free space or move store.data_dir to a larger disk.".into()),
        ),
        Ok(free) if free < 2048 * MIB => Finding::bad(
            Level::Warn,
            "disk",
            (format!("{} MiB ledigt i {}.", free / MIB, dir.display()), format!("{} MiB free in {}.", free / MIB, dir.display())),
            ("Håll minst 2 GiB ledigt för loggen.".into(), "Keep at least 2 GiB free for the log.".into()),
        ),
        Ok(free) => Finding::ok(
            "disk",
            format!("{} MiB ledigt i {}.", free / MIB, dir.display()),
            format!("{} MiB free in {}.", free / MIB, dir.display()),
        ),
        Err(e) => Finding::bad(
            Level::Warn,
            "disk",
            (format!("Ledigt utrymme i {} går inte att läsa: {e}", dir.display()), format!("Free space in {} cannot be read: {e}", dir.display())),
            ("Kontrollera store.data_dir.".into(), "Check store.data_dir.".into()),
        ),
    }
}

/// The clock: deadlines (72 h, 24 h) are computed from it. It must not be behind the log
/// (a clock set back) nor implausibly early.
fn check_clock(config: &Config) -> Finding {
    let now = chrono::Utc::now();
    let fix = (
        "Starta tidssynkronisering (till exempel systemctl enable --now systemd-timesyncd) och kontrollera tiden med timedatectl.".to_string(),
        "Enable time synchronisation (e.g. systemctl enable --now systemd-timesyncd) and check the time with timedatectl.".to_string(),
    );
    if now.timestamp() < 1_735_689_600 {
        return Finding::bad(
            Level::Fail,
            "clock",
            (
                format!("Klockan visar {now}, vilket inte kan stämma."),
                format!("The clock says {now}, which cannot be right."),
            ),
            fix,
        );
    }
    let dir = &config.store.data_dir;
    let store: Option<std::sync::Arc<dyn EventStore>> = match config.store.backend {
        crate::config::StoreBackend::Postgres => crate::startup::open_store(config).ok(),
        crate::config::StoreBackend::Sled => dir
            .exists()
            .then(|| SledEventStore::open(dir, crate::store::store_options()).ok())
            .flatten()
            .map(|s| std::sync::Arc::new(s) as std::sync::Arc<dyn EventStore>),
    };
    let last = store.and_then(|s| {
        let head = s.head().seq;
        s.read_batch(head, 1).ok()?.pop().map(|r| r.at)
    });
    match last {
        Some(at) if at > now + chrono::Duration::minutes(1) => Finding::bad(
            Level::Fail,
            "clock",
            (
                format!("Klockan ({now}) går efter loggens senaste händelse ({at}): tidsfrister blir fel."),
                format!("The clock ({now}) is behind the log's latest event ({at}): deadlines come out wrong."),
            ),
            fix,
        ),
        _ => Finding::ok(
            "clock",
            format!("Klockan visar {now} (UTC) och går inte efter loggen."),
            format!("The clock says {now} (UTC) and is not behind the log."),
        ),
    }
}

/// Prints the findings; exit 1 when any is a failure.
pub async fn run(config: &Config) -> ExitCode {
    let findings = diagnose(config).await;
    for f in &findings {
        let tag = match f.level {
            Level::Ok => "OK     ",
            Level::Warn => "VARNING",
            Level::Fail => "FEL    ",
        };
        println!("[{tag}] {:<10} {}", f.check, f.sv);
        println!("          {:<10} {}", "", f.en);
        if let (Some(sv), Some(en)) = (&f.fix_sv, &f.fix_en) {
            println!("          {:<10} Åtgärd: {sv}", "");
            println!("          {:<10} Fix: {en}", "");
        }
    }
    let failed = findings.iter().filter(|f| f.level == Level::Fail).count();
    if failed > 0 {
        println!("{failed} kontroll(er) misslyckades; policyn kan inte följas förrän de är åtgärdade. / {failed} check(s) failed; the policy cannot be followed until they are fixed.");
        ExitCode::from(1)
    } else {
        println!("Allt som policyn behöver finns. / Everything the policy needs is in place.");
        ExitCode::SUCCESS
    }
}
