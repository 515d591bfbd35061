//! The continuous archive: every committed record is also appended, in order, to NDJSON
//! segment files in `store.archive_dir`, one file per UTC day of the records' commit time
//! (`2026-11-28.ndjson`). It follows the log within a second and is a second, portable copy
//! for backups: `avvik import --data NEW_DIR ARCHIVE_DIR` rebuilds a store from it.
//!
//! Only the stored bytes are written, so segments concatenated in name order are an export
//! and verify with the same tools. After a crash the last line of the newest segment may
//! be cut short; it is dropped on start and written again from the log.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use avvik_events::EventStore;
use serde::Deserialize;
use tokio::sync::watch;

const SUFFIX: &str = ".ndjson";

/// Segment files in order.
pub fn segments(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(SUFFIX) && n.len() == 10 + SUFFIX.len())
        })
        .collect();
    out.sort();
    Ok(out)
}

#[derive(Deserialize)]
struct SeqAt {
    seq: u64,
    at: String,
}

/// Drops a cut-short last line of the newest segment and returns the last archived seq.
pub fn repair_and_head(dir: &Path) -> std::io::Result<u64> {
    std::fs::create_dir_all(dir)?;
    let segs = segments(dir)?;
    for path in segs.iter().rev() {
        let mut f = OpenOptions::new().read(true).write(true).open(path)?;
        let len = f.metadata()?.len();
        if len == 0 {
            continue;
        }
        // Read the tail to find the last complete line.
        let tail_len = len.min(1 << 20);
        f.seek(SeekFrom::Start(len - tail_len))?;
        let mut tail = Vec::with_capacity(tail_len as usize);
        f.read_to_end(&mut tail)?;
        let complete = match tail.iter().rposition(|b| *b == b'\n') {
            Some(i) => i + 1,
            None => 0,
        };
        if complete < tail.len() {
            let keep = len - tail_len + complete as u64;
            tracing::warn!(segment = %path.display(), "dropping a cut-short last line of the archive");
            f.set_len(keep)?;
            f.sync_all()?;
        }
        let body = &tail[..complete];
        let last_line = body
            .strip_suffix(b"\n")
            .and_then(|b| b.rsplit(|c| *c == b'\n').next())
            .filter(|l| !l.is_empty());
        match last_line {
            Some(line) => {
                let r: SeqAt = serde_json::from_slice(line).map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("archive {}: {e}", path.display()),
                    )
                })?;
                return Ok(r.seq);
            }
            None if complete == 0 && tail_len < len => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("archive {}: last line longer than 1 MiB", path.display()),
                ))
            }
            None => continue,
        }
    }
    Ok(0)
}

/// Copies every record past the archive's head into the segments; returns the new head.
pub fn catch_up(
    store: &dyn EventStore,
    dir: &Path,
    mut archived: u64,
) -> Result<u64, ArchiveError> {
    let head = store.head().seq;
    while archived < head {
        let to = (archived + 10_000).min(head);
        let mut current: Option<(String, File)> = None;
        let mut touched: Vec<File> = Vec::new();
        let mut err: Option<std::io::Error> = None;
        store
            .for_each_raw(archived + 1, to, &mut |seq, bytes| {
                let day = match serde_json::from_slice::<SeqAt>(bytes) {
                    Ok(r) if r.seq == seq && r.at.len() >= 10 => r.at[..10].to_string(),
                    _ => {
                        return Err(avvik_events::StoreError::Corrupt {
                            seq,
                            reason: "record without seq/at for the archive".into(),
                        })
                    }
                };
                if current.as_ref().map(|(d, _)| d != &day).unwrap_or(true) {
                    let opened = OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(dir.join(format!("{day}{SUFFIX}")));
                    match opened {
                        Ok(f) => {
                            if let Some((_, old)) = current.take() {
                                touched.push(old);
                            }
                            current = Some((day, f));
                        }
                        Err(e) => {
                            err = Some(e);
                            return Err(avvik_events::StoreError::Storage(
                                "archive segment".into(),
                            ));
                        }
                    }
                }
                if let Some((_, f)) = current.as_mut() {
                    if let Err(e) = f.write_all(bytes).and_then(|_| f.write_all(b"\n")) {
                        err = Some(e);
                        return Err(avvik_events::StoreError::Storage("archive write".into()));
                    }
                }
                Ok(())
            })
            .map_err(|e| match err.take() {
                Some(io) => ArchiveError::Io(io),
                None => ArchiveError::Store(e),
            })?;
        if let Some((_, f)) = current.take() {
            touched.push(f);
        }
        for f in &touched {
            f.sync_data()?;
        }
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        archived = to;
    }
    Ok(archived)
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("archive I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] avvik_events::StoreError),
}

/// Follows the log into the archive until shutdown: wakes on every commit, at most once a
/// second per batch, so the archive trails the log by about a second.
pub fn spawn(store: Arc<dyn EventStore>, dir: PathBuf, mut shutdown: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let d = dir.clone();
        let mut archived = match tokio::task::spawn_blocking(move || repair_and_head(&d)).await {
            Ok(Ok(seq)) => seq,
            Ok(Err(e)) => {
                tracing::error!(error = %e, dir = %dir.display(), "the archive cannot be opened; archiving is off");
                return;
            }
            Err(_) => return,
        };
        if archived > store.head().seq {
            tracing::error!(
                archived,
                head = store.head().seq,
                "the archive is ahead of the log (a different store?); archiving is off"
            );
            return;
        }
        let mut head_rx = store.watch_head();
        loop {
            let s = store.clone();
            let d = dir.clone();
            match tokio::task::spawn_blocking(move || catch_up(s.as_ref(), &d, archived)).await {
                Ok(Ok(seq)) => {
                    archived = seq;
                    metrics::gauge!("avvik_archive_seq").set(seq as f64);
                }
                Ok(Err(e)) => {
                    metrics::counter!("avvik_archive_errors_total").increment(1);
                    tracing::error!(error = %e, "archiving failed; retrying");
                }
                Err(_) => return,
            }
            tokio::select! {
                _ = shutdown.changed() => {
                    // One last pass so a clean stop leaves the archive complete.
                    let s = store.clone();
                    let d = dir.clone();
                    let _ = tokio::task::spawn_blocking(move || catch_up(s.as_ref(), &d, archived)).await;
                    return;
                }
                changed = head_rx.changed() => {
                    if changed.is_err() { return; }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    });
}

/// Reads a file, or every segment of an archive directory in order, as one stream.
pub fn open_source(path: &Path) -> std::io::Result<Box<dyn BufRead>> {
    if path.is_dir() {
        let files = segments(path)?;
        if files.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} holds no archive segments (*.ndjson)", path.display()),
            ));
        }
        let mut reader: Box<dyn Read> = Box::new(std::io::empty());
        for f in files {
            reader = Box::new(reader.chain(File::open(f)?));
        }
        Ok(Box::new(BufReader::with_capacity(1 << 16, reader)))
    } else {
        Ok(Box::new(BufReader::with_capacity(
            1 << 16,
            File::open(path)?,
        )))
    }
}
