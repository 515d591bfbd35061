//! `avvik report`: the annual report from a data directory, with the server stopped.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use avvik_events::EventStore;

use super::format::datetime_sv;
use super::http::{render, ReportFormat};
use super::issue::{issue_annual_report, load_document};

/// Prints the report on `year` to `out`: the issued one exactly as issued, or a draft as
/// of the head. With `issue`, issues it first (`reason` is required if it was issued
/// before). Exit code 1 if the rebuilt report no longer matches its recorded hash.
/// `log`: the store and its data keys.
pub async fn run(
    log: (Arc<dyn EventStore>, Arc<crate::privacy::Keyring>),
    year: i32,
    format: ReportFormat,
    issue: bool,
    reason: Option<String>,
    now: chrono::DateTime<chrono::Utc>,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let (store, keys) = log;
    if issue {
        let (issued, _) = issue_annual_report(
            store.clone(),
            keys.clone(),
            year,
            reason,
            crate::domain::System::Cli.as_str(),
            now,
        )
        .await?;
        eprintln!(
            "issued the annual report on {year}: edition {}, seq {}, content hash {}",
            issued.event.edition, issued.seq, issued.event.content_hash
        );
    }
    let s = store.clone();
    let doc = tokio::task::spawn_blocking(move || load_document(s.as_ref(), &keys, year)).await??;
    out.write_all(&render(&doc, format))?;
    out.flush()?;
    let src = &doc.report.source;
    match (&doc.issue, doc.hash_matches) {
        (Some(i), Some(true)) => {
            eprintln!(
                "annual report on {year}, edition {} issued {} as of seq {} (head hash {}); content hash {}",
                i.event.edition,
                datetime_sv(i.at),
                src.as_of_seq,
                src.head_hash,
                i.event.content_hash
            );
            Ok(ExitCode::SUCCESS)
        }
        (Some(i), _) => {
            eprintln!(
                "WARNING: the rebuilt annual report on {year} does not match the content hash \
                 recorded when it was issued ({}); the report code has changed since",
                i.event.content_hash
            );
            Ok(ExitCode::from(1))
        }
        (None, _) => {
            eprintln!(
                "draft: the annual report on {year} is not issued; as of seq {} (head hash {})",
                src.as_of_seq, src.head_hash
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
