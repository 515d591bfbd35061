//! Opening the event store with avvik's options: the gap-free reference counters are
//! recovered from the reports in the log.

use avvik_events::{RecordedEvent, StoreOptions};

use crate::domain::Reference;

/// Store options for commands that open a data directory: tail recovery can rebuild the
/// reference counters.
pub fn store_options() -> StoreOptions {
    StoreOptions {
        counter_of: Some(std::sync::Arc::new(counter_of)),
        ..StoreOptions::default()
    }
}

/// The gap-free counter a stored record advanced: reports number their year's references.
pub fn counter_of(rec: &RecordedEvent) -> Option<(String, u64)> {
    if rec.event_type != "DeviationReported" {
        return None;
    }
    let r = Reference::parse(rec.data.get("reference")?.as_str()?)?;
    Some((Reference::counter_name(r.year), r.number))
}

/// The sled store in `dir`, which must hold one (a command never creates a log by
/// mistake).
pub fn open_existing(dir: &std::path::Path) -> anyhow::Result<avvik_events::SledEventStore> {
    if !dir.join("events").exists() {
        anyhow::bail!("{} holds no avvik event store", dir.display());
    }
    Ok(avvik_events::SledEventStore::open(dir, store_options())?)
}

/// A store named on the command line: `sled:DIR` or `postgres:URL`.
enum Place {
    Sled(std::path::PathBuf),
    Postgres(String),
}

fn place(spec: &str) -> anyhow::Result<Place> {
    if let Some(dir) = spec.strip_prefix("sled:") {
        Ok(Place::Sled(dir.into()))
    } else if let Some(url) = spec.strip_prefix("postgres:") {
        Ok(Place::Postgres(url.to_string()))
    } else {
        anyhow::bail!("expected sled:DIR or postgres:URL, got `{}`", shown(spec))
    }
}

/// A store spec for messages: a PostgreSQL URL without its password.
pub fn shown(spec: &str) -> String {
    match spec.strip_prefix("postgres:") {
        Some(url) => format!(
            "postgres:{}",
            crate::config::PostgresConfig { url: url.into() }.shown()
        ),
        None if spec.starts_with("sled:") => spec.to_string(),
        None => "<redacted>".into(),
    }
}

/// What `avvik migrate --from … --to …` did.
pub struct Copied {
    pub head: avvik_events::Head,
    /// Data-key batches copied with the log.
    pub key_batches: usize,
    /// Attachment and quarantine files copied with the log.
    pub files: usize,
    /// What the operator still has to do, if anything (in English, for the terminal).
    pub note: Option<String>,
}

/// Copies the whole log from store `from` into the empty store `to` (`avvik migrate
/// --from … --to …`), streaming the source's export into the destination's import: the
/// same records byte for byte, so the same head hash, which is checked. The counters are
/// rebuilt from the log as any import does. The data keys go along as they are (wrapped
/// under the installation's secret), with the secret's check or file: `node_dir` is this
/// node's data directory, whose `secret.key` is the one a PostgreSQL installation uses.
pub fn copy(from: &str, to: &str, node_dir: &std::path::Path) -> anyhow::Result<Copied> {
    let head = copy_log(from, to)?;
    let (key_batches, note) = copy_keys(&place(from)?, &place(to)?, node_dir)?;
    let files = copy_blobs(&place(from)?, &place(to)?)?;
    Ok(Copied {
        head,
        key_batches,
        files,
        note,
    })
}

/// The directories of a sled data directory whose files the log names (attachments,
/// quarantined messages), which a shared store keeps as its shared files.
const BLOB_DIRS: [&str; 2] = [crate::privacy::ATTACHMENTS_DIR, "quarantine"];

/// The attachment and quarantine files follow the log, under the same names; returns
/// how many were copied.
fn copy_blobs(from: &Place, to: &Place) -> anyhow::Result<usize> {
    use anyhow::Context;
    use avvik_events::{EventStore, PostgresEventStore, PostgresOptions};
    let kind = crate::privacy::BLOBS_KIND;
    // The stores stay open while their files are used.
    let open = |url: &str| -> anyhow::Result<(
        PostgresEventStore,
        std::sync::Arc<dyn avvik_events::SharedFiles>,
    )> {
        let store = PostgresEventStore::connect(url, PostgresOptions::default())
            .with_context(|| format!("opening postgres:{}", shown_url(url)))?;
        let files = store
            .shared_files()
            .context("the PostgreSQL store has no shared files")?;
        Ok((store, files))
    };
    let source = match from {
        Place::Postgres(url) => Some(open(url)?),
        Place::Sled(_) => None,
    };
    // Every file's name; the bytes are read one file at a time.
    let names: Vec<String> = match (from, &source) {
        (Place::Sled(dir), _) => local_blob_names(dir)?,
        (_, Some((_, files))) => files.list(kind)?,
        _ => unreachable!("a PostgreSQL source is open"),
    };
    let read = |name: &str| -> anyhow::Result<Vec<u8>> {
        match (from, &source) {
            (Place::Sled(dir), _) => Ok(std::fs::read(dir.join(name))?),
            (_, Some((_, files))) => files
                .read(kind, name)?
                .with_context(|| format!("the shared file {name} went missing")),
            _ => unreachable!("a PostgreSQL source has its files"),
        }
    };
    let mut n = 0;
    match to {
        Place::Sled(dir) => {
            for name in &names {
                // Names come from the store: plain relative paths only.
                if name
                    .split('/')
                    .any(|p| p.is_empty() || p == "." || p == "..")
                {
                    anyhow::bail!("refusing the shared file name {name:?}");
                }
                let path = dir.join(name);
                if path.exists() {
                    continue;
                }
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                let mut f = std::fs::File::create(&path)?;
                std::io::Write::write_all(&mut f, &read(name)?)?;
                f.sync_all()?;
                n += 1;
            }
        }
        Place::Postgres(url) => {
            let (_store, files) = open(url)?;
            for name in &names {
                if files.create(kind, name, &read(name)?)? {
                    n += 1;
                }
            }
        }
    }
    Ok(n)
}

/// The attachment and quarantine files of a data directory, by their names relative to it.
fn local_blob_names(dir: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for d in BLOB_DIRS {
        walk(dir, &dir.join(d), &mut names)?;
    }
    Ok(names)
}

/// The files under `dir` (recursively), as `/`-separated names relative to `root`.
fn walk(
    root: &std::path::Path,
    dir: &std::path::Path,
    out: &mut Vec<String>,
) -> anyhow::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            walk(root, &path, out)?;
        } else if !path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(".tmp-"))
        {
            let rel = path.strip_prefix(root)?;
            let parts: Option<Vec<&str>> = rel.iter().map(|p| p.to_str()).collect();
            match parts {
                Some(parts) => out.push(parts.join("/")),
                None => anyhow::bail!("{} is not a UTF-8 name", path.display()),
            }
        }
    }
    Ok(())
}

/// The data keys (and the secret they are wrapped under) follow the log: a sled data
/// directory keeps them under `keys/` beside `secret.key`; a PostgreSQL store keeps them
/// in its shared files, with a check value of the secret every node must hold.
fn copy_keys(
    from: &Place,
    to: &Place,
    node_dir: &std::path::Path,
) -> anyhow::Result<(usize, Option<String>)> {
    use crate::privacy::keys::KeyBatches;
    use crate::secret::Secret;
    use anyhow::Context;
    use avvik_events::{EventStore, PostgresEventStore, PostgresOptions};
    let connect = |url: &str| {
        PostgresEventStore::connect(url, PostgresOptions::default())
            .with_context(|| format!("opening postgres:{}", shown_url(url)))
    };
    // The secret the source's keys are wrapped under.
    let (batches, secret, _source) = match from {
        Place::Sled(dir) => (KeyBatches::in_dir(dir)?, Secret::load(dir)?, None),
        Place::Postgres(url) => {
            let store = connect(url)?;
            let files = store
                .shared_files()
                .context("the PostgreSQL store has no shared files")?;
            // This node's secret, if it is the installation's.
            let secret = Secret::load(node_dir)?.filter(|s| s.check_shared(&store).is_ok());
            (KeyBatches::shared(files), secret, Some(store))
        }
    };
    match to {
        Place::Sled(dir) => {
            let n = batches.copy_into(&KeyBatches::in_dir(dir)?)?;
            let note = match secret {
                Some(s) => {
                    s.store_in(dir)?;
                    None
                }
                None if n == 0 => None,
                None => Some(format!(
                    "copy secret.key from a node's store.data_dir into {}: the data keys are wrapped under it",
                    dir.display()
                )),
            };
            Ok((n, note))
        }
        Place::Postgres(url) => {
            let store = connect(url)?;
            let secret = match secret {
                Some(s) => s,
                None if batches.is_empty()? => return Ok((0, None)),
                None => anyhow::bail!(
                    "the data keys cannot go along without the secret they are wrapped under: run the migration with store.data_dir set to a node's data directory (it holds secret.key)"
                ),
            };
            secret.check_shared(&store)?;
            let files = store
                .shared_files()
                .context("the PostgreSQL store has no shared files")?;
            Ok((batches.copy_into(&KeyBatches::shared(files))?, None))
        }
    }
}

/// With the log in PostgreSQL, at start-up: data keys and attachment or quarantine files
/// an earlier version kept in this node's data directory are copied into the database's
/// shared files (those already there are left as they are), so every node opens them and
/// nothing an earlier version sealed reads as missing. The local files are left in place.
/// Returns how many key batches and files were taken over.
pub fn adopt_local_files(
    store: &dyn avvik_events::EventStore,
    data_dir: &std::path::Path,
) -> anyhow::Result<(usize, usize)> {
    use crate::privacy::keys::{KeyBatches, KEYS_DIR};
    let Some(files) = store.shared_files() else {
        return Ok((0, 0));
    };
    let batches = if data_dir.join(KEYS_DIR).exists() {
        KeyBatches::in_dir(data_dir)?.copy_into(&KeyBatches::shared(files.clone()))?
    } else {
        0
    };
    let names = local_blob_names(data_dir)?;
    let there: std::collections::HashSet<String> = if names.is_empty() {
        Default::default()
    } else {
        files
            .list(crate::privacy::BLOBS_KIND)?
            .into_iter()
            .collect()
    };
    let mut taken = 0;
    for name in names.iter().filter(|n| !there.contains(*n)) {
        if files.create(
            crate::privacy::BLOBS_KIND,
            name,
            &std::fs::read(data_dir.join(name))?,
        )? {
            taken += 1;
        }
    }
    if batches + taken > 0 {
        tracing::warn!(
            key_batches = batches,
            files = taken,
            dir = %data_dir.display(),
            "took over data keys and files an earlier version kept in the data directory into the database; the local copies can be removed once backed up"
        );
    }
    Ok((batches, taken))
}

fn shown_url(url: &str) -> String {
    crate::config::PostgresConfig { url: url.into() }.shown()
}

/// Streams `source`'s records `1..=to_seq` as an NDJSON export into `import` over a pipe,
/// the export on a thread of its own, without holding the log in memory. Returns what the
/// export and the import each came to (an import that stopped early leaves the rest of the
/// export drained, so the exporting thread can finish).
pub fn piped<T: Send>(
    source: &dyn avvik_events::EventStore,
    to_seq: u64,
    import: impl FnOnce(&mut dyn std::io::BufRead) -> T + Send,
) -> std::io::Result<(Result<u64, avvik_events::StoreError>, T)> {
    let (reader, mut writer) = std::io::pipe()?;
    std::thread::scope(|scope| {
        let export = scope.spawn(move || {
            let n = source.export(1, to_seq, &mut writer);
            drop(writer);
            n
        });
        let mut input = std::io::BufReader::with_capacity(1 << 16, reader);
        let imported = import(&mut input);
        let _ = std::io::copy(&mut input, &mut std::io::sink());
        let exported = export
            .join()
            .map_err(|_| std::io::Error::other("the export thread panicked"))?;
        Ok((exported, imported))
    })
}

fn copy_log(from: &str, to: &str) -> anyhow::Result<avvik_events::Head> {
    use anyhow::Context;
    use avvik_events::{EventStore, PostgresEventStore, PostgresOptions, SledEventStore};
    let source: Box<dyn EventStore> = match place(from)? {
        Place::Sled(dir) => Box::new(open_existing(&dir)?),
        Place::Postgres(url) => Box::new(
            PostgresEventStore::connect(&url, PostgresOptions::default())
                .with_context(|| format!("opening {}", shown(from)))?,
        ),
    };
    let head = source.head();
    let to_place = place(to)?;
    if let Place::Sled(dir) = &to_place {
        if dir.join("events").exists() {
            anyhow::bail!(
                "{} already holds a log; copy into a new directory",
                dir.display()
            );
        }
    }
    let (exported, imported) = piped(source.as_ref(), head.seq, |input| match &to_place {
        Place::Sled(dir) => SledEventStore::import(dir, store_options(), input, &counter_of),
        Place::Postgres(url) => {
            PostgresEventStore::import(url, PostgresOptions::default(), input, &counter_of)
        }
    })?;
    exported.with_context(|| format!("reading {}", shown(from)))?;
    let copied = imported.with_context(|| format!("writing {}", shown(to)))?;
    if copied.seq != head.seq || copied.hash != head.hash {
        anyhow::bail!(
            "the copy ends at seq {} hash {}, the source at seq {} hash {}",
            copied.seq,
            copied.hash,
            head.seq,
            head.hash
        );
    }
    Ok(copied)
}
