//! The `avvik` command line: parses arguments and runs one command.

use std::io::{BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use avvik_events::{verify_export, EventStore, SledEventStore, StoreOptions, VerifyReport};
use clap::{Parser, Subcommand};

use crate::cli_accounts::{TokenCommand, UserCommand};
use crate::config::Config;
use crate::domain::Reference;
use crate::register::{AsOf, Register};
use crate::startup::Application;
pub use crate::store::{counter_of, store_options};

#[derive(Debug, Parser)]
#[command(
    name = "avvik",
    version,
    about = "Reporting and handling of information-security deviations (avvikelser)",
    arg_required_else_help = true
)]
pub struct Cli {
    /// Configuration file (TOML); defaults are compiled in, AVVIK_SECTION__KEY overrides.
    #[arg(long, global = true, env = "AVVIK_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service (HTTP, projections, background work).
    Serve,
    /// Walk the hash chain of a data directory or an export file.
    Verify {
        /// Data directory (default: store.data_dir from the configuration).
        #[arg(long, conflicts_with = "file")]
        data: Option<PathBuf>,
        /// An NDJSON export to check instead of a data directory.
        #[arg(long)]
        file: Option<PathBuf>,
        /// The head the log must end with, as SEQ:HASH (e.g. from an annual report).
        #[arg(long)]
        expect_head: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the log as NDJSON of the stored records to standard output.
    Export {
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long, default_value_t = 1)]
        from_seq: u64,
        #[arg(long)]
        to_seq: Option<u64>,
    },
    /// Rebuild a new data directory from an NDJSON export (refuses a broken chain).
    Import {
        #[arg(long)]
        data: PathBuf,
        /// An export file, an archive directory (store.archive_dir), or "-" for stdin.
        file: PathBuf,
    },
    /// Two migrations (with the server stopped). `--from STORE --to STORE` copies the
    /// log verbatim from one store to another, empty one (`sled:DIR` or `postgres:URL`):
    /// the same records, the same head hash. `--data DIR OLD_LOG` brings a log from before
    /// encryption under it: read an export (or archive directory), seal every event's
    /// personal fields under new per-deviation keys and import it into the new, empty data
    /// directory, ending with a `LogMigrated` record that names the old head hash.
    Migrate {
        /// The store to copy from: `sled:DIR` or `postgres:URL`.
        #[arg(long = "from", requires = "to", conflicts_with_all = ["data", "old_log"])]
        from_store: Option<String>,
        /// The empty store to copy into: `sled:DIR` or `postgres:URL`.
        #[arg(long, requires = "from_store")]
        to: Option<String>,
        #[arg(long, required_unless_present = "from_store")]
        data: Option<PathBuf>,
        /// The old log's export file or archive directory.
        #[arg(value_name = "FROM", required_unless_present = "from_store")]
        old_log: Option<PathBuf>,
    },
    /// Data keys for a named transfer (with the server stopped): `export` writes every
    /// live key to a file and records that it did; `import` puts such a file's keys into
    /// another data directory.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage staff accounts (with the server stopped): bootstrap and recovery.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage API tokens (with the server stopped).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Show the register, or one deviation, as it stood at a moment.
    Replay {
        #[arg(long)]
        data: Option<PathBuf>,
        /// RFC 3339 time or seq:N.
        #[arg(long)]
        as_of: String,
        /// Only this deviation (AVV-YYYY-NNNN).
        #[arg(long)]
        reference: Option<String>,
    },
    /// Print the annual report on a year: the issued one byte for byte, else a draft.
    Report {
        #[arg(long)]
        data: Option<PathBuf>,
        /// The calendar year (Stockholm time).
        #[arg(long)]
        year: i32,
        #[arg(long, value_enum, default_value = "html")]
        format: crate::report::ReportFormat,
        /// Issue the report now; if it was issued before, a new edition (needs --reason).
        #[arg(long)]
        issue: bool,
        /// Why the report is issued again.
        #[arg(long, requires = "issue")]
        reason: Option<String>,
    },
    /// Hand one e-mail on standard input to the running server (for an MTA alias pipe,
    /// like RT's mailgate). Exit 0 when recorded, 75 (EX_TEMPFAIL) when the MTA should
    /// retry later, 65 when the server refuses the message itself.
    Intake {
        /// The server's base URL (default: http.base_url).
        #[arg(long)]
        url: Option<String>,
        /// Seconds to wait for the server.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Check what the policy needs: configuration, SMTP (connect, EHLO, TLS, login; sends
    /// nothing), IMAP login, recipient lists, disk space, clock. Says what to change, in
    /// Swedish and English; exit 1 when something the policy needs is missing.
    Doctor,
    /// Send a test e-mail with the configured [mail] settings (records nothing; works while
    /// the server runs).
    SendTestEmail {
        /// Recipient address.
        #[arg(long)]
        to: String,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        // An MTA pipe must defer, not bounce, while the configuration is being fixed.
        Err(e) if matches!(cli.command, Command::Intake { .. }) => {
            eprintln!("avvik intake: {e}");
            return Ok(ExitCode::from(crate::intake::client::EX_TEMPFAIL));
        }
        Err(e) if matches!(cli.command, Command::Doctor) => {
            println!("[FEL    ] config     Konfigurationen kan inte läsas: {e}");
            println!("                     The configuration cannot be read: {e}");
            println!("                     Åtgärd: rätta värdet som nämns. / Fix: correct the value named.");
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    let data_dir = |d: Option<PathBuf>| d.unwrap_or_else(|| config.store.data_dir.clone());
    // The log: with `--data`, the sled store in that directory; else where the service
    // keeps it (sled in store.data_dir, or PostgreSQL). The secret and keys stay in the
    // directory either way.
    let open_log = |d: &Option<PathBuf>| -> anyhow::Result<std::sync::Arc<dyn EventStore>> {
        match (d, config.store.backend) {
            (None, crate::config::StoreBackend::Postgres) => crate::startup::open_store(&config),
            _ => Ok(std::sync::Arc::new(crate::store::open_existing(
                &data_dir(d.clone()),
            )?)),
        }
    };
    match cli.command {
        Command::Serve => {
            let app = Application::build(config.clone()).await?;
            let _setup_link = app.offer_setup_link();
            app.run_until_stopped().await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify {
            data,
            file,
            expect_head,
            json,
        } => {
            let expected = match expect_head {
                Some(s) => Some(parse_head(&s)?),
                None => None,
            };
            let report = match file {
                Some(path) => {
                    let f = std::fs::File::open(&path)
                        .with_context(|| format!("opening {}", path.display()))?;
                    verify_export(&mut BufReader::new(f), expected)?
                }
                None => {
                    let store = open_log(&data)?;
                    let mut report = store.verify()?;
                    if let (true, Some((seq, hash))) = (report.ok, expected) {
                        if report.head_seq != seq || report.head_hash != hash {
                            report.ok = false;
                            report.reason = Some(format!(
                                "the log's head is {}:{}, not the expected {seq}:{hash}",
                                report.head_seq, report.head_hash
                            ));
                        }
                    }
                    report
                }
            };
            print_verify(&report, json)?;
            Ok(if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Export {
            data,
            from_seq,
            to_seq,
        } => {
            let store = open_log(&data)?;
            let with_data = data.is_some();
            let dir = data_dir(data);
            // An export is a reading of every deviation: in the access log first, or not at all.
            let to = to_seq.unwrap_or(u64::MAX).min(store.head().seq);
            let clock = std::sync::Arc::new(crate::clock::SystemClock);
            // With `--data`, the sled data directory's own access log.
            let access_log = if with_data {
                crate::access_log::AccessLog::open(&dir, clock)
            } else {
                crate::access_log::AccessLog::open_for(&config, &dir, clock)
            };
            access_log
                .context("opening the access log")?
                .record(
                    "system:cli",
                    crate::access_log::AccessKind::Export {
                        from_seq,
                        to_seq: to,
                    },
                    None,
                )
                .await
                .context("recording the export in the access log")?;
            let stdout = std::io::stdout();
            let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
            let n = store.export(from_seq, to, &mut out)?;
            out.flush()?;
            let head = store.head();
            eprintln!(
                "exported {n} records; head seq {} hash {}",
                head.seq, head.hash
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Import { data, file } => {
            let head = if file.as_os_str() == "-" {
                let stdin = std::io::stdin();
                SledEventStore::import(
                    &data,
                    StoreOptions::default(),
                    &mut stdin.lock(),
                    &counter_of,
                )?
            } else {
                // A file, or an archive directory of day segments.
                let mut source = crate::archive::open_source(&file)
                    .with_context(|| format!("opening {}", file.display()))?;
                SledEventStore::import(&data, StoreOptions::default(), &mut source, &counter_of)?
            };
            println!("imported {} records; head hash {}", head.seq, head.hash);
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate {
            from_store: Some(from),
            to: Some(to),
            ..
        } => {
            let copied = crate::store::copy(&from, &to, &config.store.data_dir)?;
            println!(
                "copied {} records, {} data-key batches and {} files from {} to {}; head hash {}",
                copied.head.seq,
                copied.key_batches,
                copied.files,
                crate::store::shown(&from),
                crate::store::shown(&to),
                copied.head.hash
            );
            if let Some(note) = copied.note {
                eprintln!("note: {note}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate { data, old_log, .. } => {
            let (Some(data), Some(from)) = (data, old_log) else {
                bail!("give --from STORE --to STORE, or --data DIR and the old log");
            };
            if data.join("events").exists() {
                bail!(
                    "{} already holds a log; migrate into a new directory",
                    data.display()
                );
            }
            let secret = crate::secret::Secret::load_or_create(&data)?;
            let keys = crate::privacy::Keyring::open_dir(&data, &secret)?;
            let open = || -> std::io::Result<Box<dyn std::io::BufRead>> {
                Ok(Box::new(crate::archive::open_source(&from)?))
            };
            let m = crate::privacy::migrate::migrate(
                &open,
                &data,
                &keys,
                StoreOptions::default(),
                &counter_of,
            )?;
            println!(
                "migrated {} records ({} sealed); old head hash {}; new head hash {}",
                m.records, m.sealed, m.old_head_hash, m.new_head_hash
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys { command } => match command {
            KeysCommand::Export {
                data,
                transfer,
                out,
            } => {
                let store = open_log(&data)?;
                let dir = data_dir(data);
                let keys = open_keys(&*store, &dir)?;
                let commands = crate::command::CommandHandler::new(
                    store.clone(),
                    std::sync::Arc::new(crate::clock::SystemClock),
                );
                let done = crate::cli_keys::export_keys(
                    store,
                    &keys,
                    &commands,
                    crate::domain::System::Cli.as_str(),
                    &transfer,
                    &out,
                )
                .await?;
                println!(
                    "exported {} keys for transfer {:?} to {} ({} gallrade deviations left out); recorded in the log",
                    done.keys,
                    done.transfer,
                    out.display(),
                    done.gallrade
                );
                Ok(ExitCode::SUCCESS)
            }
            KeysCommand::Import { data, file } => {
                // With `--data`, that directory's key store; else the configured one (the
                // database's shared files when the log is in PostgreSQL).
                let shared = match (&data, config.store.backend) {
                    (None, crate::config::StoreBackend::Postgres) => Some(open_log(&None)?),
                    _ => None,
                };
                let dir = data_dir(data);
                let secret = crate::secret::Secret::load_or_create(&dir)?;
                let (keys, place) = match shared.as_ref().and_then(|s| s.shared_files()) {
                    Some(files) => {
                        secret
                            .check_shared(shared.as_deref().expect("the shared store is open"))?;
                        (
                            crate::privacy::FileKeyStore::shared(files, &secret),
                            "the PostgreSQL store".to_string(),
                        )
                    }
                    None => (
                        crate::privacy::FileKeyStore::open(&dir, &secret)?,
                        dir.display().to_string(),
                    ),
                };
                let n = crate::cli_keys::import_keys(&keys, &file)?;
                println!("imported {n} keys into {place}");
                drop(shared);
                Ok(ExitCode::SUCCESS)
            }
        },
        Command::User { command } => {
            crate::cli_accounts::user(command, &config).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Token { command } => {
            crate::cli_accounts::token(command, &config).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay {
            data,
            as_of,
            reference,
        } => {
            let point = AsOf::parse(&as_of)
                .context("--as-of must be an RFC 3339 time (2026-03-01T12:00:00+01:00) or seq:N")?;
            let reference = match reference {
                Some(r) => {
                    Some(Reference::parse(&r).context("--reference must look like AVV-2026-0042")?)
                }
                None => None,
            };
            let store = open_log(&data)?;
            let dir = data_dir(data);
            let keys = open_keys(&*store, &dir)?;
            let seq = point.resolve(&*store)?;
            let reg = Register::fold(&*store, &keys, seq)?;
            let out = match reference {
                Some(r) => match reg.by_reference(r) {
                    Some(d) => serde_json::json!({ "as_of_seq": seq, "deviation": d }),
                    None => bail!("{r} did not exist as of seq {seq}"),
                },
                None => serde_json::json!({ "as_of_seq": seq, "items": reg.list() }),
            };
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Report {
            data,
            year,
            format,
            issue,
            reason,
        } => {
            let store = open_log(&data)?;
            let dir = data_dir(data);
            let keys = open_keys(&*store, &dir)?;
            let stdout = std::io::stdout();
            let mut out = BufWriter::new(stdout.lock());
            let now = chrono::Utc::now();
            crate::report::command::run((store, keys), year, format, issue, reason, now, &mut out)
                .await
        }
        Command::Intake { url, timeout } => {
            Ok(crate::intake::client::run(&config, url, timeout).await)
        }
        Command::Doctor => Ok(crate::doctor::run(&config).await),
        Command::SendTestEmail { to } => {
            let went = crate::notify::send_test_email(&config, &to).await?;
            println!("test e-mail to {to} {went}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Write every live data key to a new file (mode 0600) for the named transfer.
    Export {
        #[arg(long)]
        data: Option<PathBuf>,
        /// What the keys are for and where they go, e.g. "Återläsningstest 2026-12, Sydarkivera".
        #[arg(long)]
        transfer: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Put the keys of an export file into the key store: the configured one (in
    /// PostgreSQL, the database's), or with `--data` a sled data directory's.
    Import {
        #[arg(long)]
        data: Option<PathBuf>,
        file: PathBuf,
    },
}

/// The data keys of an existing data directory (for commands that show deviations).
fn open_keys(
    store: &dyn EventStore,
    dir: &std::path::Path,
) -> anyhow::Result<std::sync::Arc<crate::privacy::Keyring>> {
    let secret = crate::secret::Secret::load_or_create(dir)?;
    secret.check_shared(store)?;
    crate::store::adopt_local_files(store, dir)?;
    Ok(crate::privacy::Keyring::open_for(store, dir, &secret)?)
}

/// The entry point of the fuzz target `import` (`fuzz/fuzz_targets/import.rs`) and of its
/// corpus replay (`tests/api/fuzz_corpus.rs`): any bytes as an NDJSON export, through the
/// chain checks an import and `avvik verify` make (`avvik_events::verify::fuzz_export`);
/// every record they accept goes through the import's counter recovery (`counter_of`) and
/// is folded into the register, as a server started on the imported store would.
pub fn fuzz_import(bytes: &[u8]) -> VerifyReport {
    let mut register = Register::new();
    let report = avvik_events::verify::fuzz_export(bytes, &mut |rec| {
        if let Some((name, _)) = counter_of(rec) {
            assert!(name.starts_with("AVV-"), "counter {name}");
        }
        register.apply(rec);
    });
    // A record the next one says was altered was still accepted when it was read.
    assert!(register.seq() >= report.records);
    report
}

fn parse_head(s: &str) -> anyhow::Result<(u64, String)> {
    let (seq, hash) = s
        .split_once(':')
        .context("--expect-head must be SEQ:HASH")?;
    let seq: u64 = seq.parse().context("--expect-head: SEQ must be a number")?;
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("--expect-head: HASH must be 64 hex digits");
    }
    Ok((seq, hash.to_ascii_lowercase()))
}

fn print_verify(r: &VerifyReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(r)?);
    } else if r.ok {
        println!(
            "ok: {} records, head seq {} hash {}",
            r.records, r.head_seq, r.head_hash
        );
    } else {
        println!(
            "BROKEN: first bad seq {}: {}",
            r.first_bad_seq
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
            r.reason.as_deref().unwrap_or("")
        );
    }
    Ok(())
}
