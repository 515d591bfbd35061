//! The läslogg (access log): who saw which deviation's content, or the log, and when. Every
//! staff view of a deviation, API read, attachment download, export (of the log, a case or
//! the register) and as-of register is recorded here before the content is shown; it never
//! holds the content itself (no titles, no file names, no searched-for addresses or texts).
//!
//! It is **its own hash-chained log, not the main chain**: a second `SledEventStore` in
//! `<data_dir>/access` (with the log in PostgreSQL: a second PostgreSQL log in the schema
//! [`PG_SCHEMA`] of the same database, which every node writes and follows, so each node
//! shows every node's entries), with its own chain and its own `verify`, written through a
//! [`CommandHandler`] over that store like every other write. Why a log of its own:
//! - reads far outnumber writes; in the main chain they would dominate the register's
//!   history and the start-up replay;
//! - it has its own retention: it can be cut by whole segments without touching the
//!   register's chain;
//! - reading the access log is itself recorded, which in the main chain would move the
//!   register's head on every look.
//!
//! Streams are the deviation's id, or [`NO_DEVIATION`] for entries about no deviation (an
//! export, the as-of register, the access log by user). The in-memory index (per deviation
//! and per actor, newest first) is built at open and kept current by [`AccessLog::record`].

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, RwLock};

use avvik_events::{EventStore, SledEventStore, StoreError, StoreOptions, VerifyReport};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clock::Clock;
use crate::command::{stateless, CommandError, CommandHandler, Envelope};
use crate::domain::{Fact, Reference};

/// The directory under the data directory that holds the access log's store.
pub const ACCESS_DIR: &str = "access";

/// The PostgreSQL schema that holds the access log when the main log is in PostgreSQL.
pub const PG_SCHEMA: &str = "avvik_access";

/// An access log an earlier version kept in the data directory (`dir`) while the main log
/// was in PostgreSQL goes into the database's access log, verbatim, when that one is still
/// empty; if both hold entries the local one is kept where it is and said at warn.
fn adopt_local(store: &dyn EventStore, dir: &Path) -> Result<(), AccessLogError> {
    if !dir.join("events").exists() {
        return Ok(());
    }
    let local = SledEventStore::open(dir, StoreOptions::default())?;
    let head = local.head();
    if head.seq == 0 {
        return Ok(());
    }
    if store.head().seq > 0 {
        tracing::warn!(dir = %dir.display(), entries = head.seq, "a local access log from an earlier version is kept in the data directory (the database's access log already has entries); `avvik export --data` on it shows it");
        return Ok(());
    }
    let (exported, imported) =
        crate::store::piped(&local, head.seq, |input| store.import(input, &|_| None))
            .map_err(StoreError::from)?;
    exported?;
    let imported = imported?;
    tracing::warn!(entries = imported.seq, dir = %dir.display(), "took over the access log an earlier version kept in the data directory into the database");
    Ok(())
}

/// The stream of entries that concern no single deviation.
pub const NO_DEVIATION: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_00ac_ce55_0000);

/// The stored event type.
pub const ACCESS_RECORDED: &str = "AccessRecorded";

/// How the access log itself was looked up: by deviation or by user. The user's address is
/// never stored, only that the search was by user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessLogFilter {
    Deviation,
    User,
}

/// What was seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AccessKind {
    /// The staff page of a deviation.
    DeviationPage,
    /// `GET /api/v1/deviations/{reference}`.
    DeviationApi,
    /// A deviation's stored history (staff API, audit page or audit API).
    History,
    /// An attachment downloaded; the hash only (file names can be personal).
    Attachment { sha256: String },
    /// The log exported, records `from_seq..=to_seq`.
    Export { from_seq: u64, to_seq: u64 },
    /// The register as of a moment.
    AuditRegister,
    /// The access log looked at.
    AccessLog { filter: AccessLogFilter },
    /// A register extract for a data subject (the DPO's registerutdrag): a hex HMAC of the
    /// subject's address, never the address.
    RegisterExtract { subject_index: String },
    /// A filing's document viewed or downloaded: the phase, the format (`preview`, `pdf`,
    /// `json`) and the SHA-256 of its content.
    FilingDocument {
        filing: String,
        format: String,
        sha256: String,
    },
    /// A deviation exported as a document: the format (`pdf`) and the SHA-256 of the file
    /// handed out.
    CaseExport { format: String, sha256: String },
    /// The register exported: the format (`xlsx`, `csv`), the filters applied and how many
    /// deviations the file holds.
    RegisterExport {
        format: String,
        filters: ExportFilters,
        rows: u64,
    },
    /// The personal calendar feed fetched (references, deadline kinds and dates of the
    /// deviations the user may see): how many entries it held.
    CalendarFeed { entries: usize },
}

/// The register filters an export applied, as the register's query gives them (`status`
/// `investigating`, `severity` `none`, a sector's name …). A free-text search is recorded
/// only as having been made: what was searched for can be a person's name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportFilters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub year: Option<i32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub free_text: bool,
}

impl AccessKind {
    /// The Swedish label the access-log pages show.
    pub fn label_sv(&self) -> &'static str {
        match self {
            AccessKind::DeviationPage => "Öppnade avvikelsens sida",
            AccessKind::DeviationApi => "Läste avvikelsen via API",
            AccessKind::History => "Läste avvikelsens historik",
            AccessKind::Attachment { .. } => "Laddade ner en bilaga",
            AccessKind::Export { .. } => "Exporterade loggen",
            AccessKind::AuditRegister => "Visade registret vid en tidpunkt",
            AccessKind::AccessLog {
                filter: AccessLogFilter::Deviation,
            } => "Visade läsloggen för en avvikelse",
            AccessKind::AccessLog {
                filter: AccessLogFilter::User,
            } => "Visade läsloggen för en användare",
            AccessKind::RegisterExtract { .. } => "Tog fram ett registerutdrag",
            AccessKind::FilingDocument { .. } => "Visade eller laddade ner en anmälan",
            AccessKind::CaseExport { .. } => "Exporterade avvikelsen",
            AccessKind::RegisterExport { .. } => "Exporterade registret",
            AccessKind::CalendarFeed { .. } => "Hämtade sin kalender med tidsfrister",
        }
    }
}

/// The stored payload of one entry.
#[derive(Debug, Serialize, Deserialize)]
struct Recorded {
    what: AccessKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reference: Option<String>,
}

/// One entry, as the views show it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AccessEntry {
    /// Position in the access log's own chain.
    pub seq: u64,
    pub at: DateTime<Utc>,
    /// e.g. `user:kontakt@kommunen.example`, `system:cli`.
    pub actor: String,
    /// `{kind, …}`: deviation_page, deviation_api, history, attachment {sha256}, export
    /// {from_seq, to_seq}, audit_register, access_log {filter}, register_extract
    /// {subject_index}, filing_document {filing, format, sha256}, case_export {format,
    /// sha256}, register_export {format, filters {status?, severity?, sector?, category?,
    /// year?, free_text?}, rows}, calendar_feed {entries}.
    #[schema(value_type = Object)]
    pub what: AccessKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deviation: Option<Uuid>,
    /// AVV-YYYY-NNNN
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

impl AccessEntry {
    fn from_record(r: &avvik_events::RecordedEvent) -> Option<Self> {
        if r.event_type != ACCESS_RECORDED {
            return None;
        }
        let p: Recorded = serde_json::from_value(r.data.clone()).ok()?;
        Some(Self {
            seq: r.seq,
            at: r.at,
            actor: r.actor.clone(),
            what: p.what,
            deviation: (r.stream != NO_DEVIATION).then_some(r.stream),
            reference: p.reference,
        })
    }

    /// The user's address for `user:…` actors, else the actor as stored.
    pub fn who(&self) -> &str {
        self.actor.strip_prefix("user:").unwrap_or(&self.actor)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccessLogError {
    #[error("the access log cannot be written: {0}")]
    Command(#[from] CommandError),
    #[error("the access log store: {0}")]
    Store(#[from] StoreError),
}

#[derive(Default)]
struct Index {
    entries: BTreeMap<u64, AccessEntry>,
    /// Seqs, ascending.
    by_deviation: HashMap<Uuid, Vec<u64>>,
    /// Seqs, ascending; keyed by the actor in lower case.
    by_actor: HashMap<String, Vec<u64>>,
}

fn insert_sorted(v: &mut Vec<u64>, seq: u64) {
    if let Err(at) = v.binary_search(&seq) {
        v.insert(at, seq);
    }
}

impl Index {
    fn add(&mut self, e: AccessEntry) {
        if self.entries.contains_key(&e.seq) {
            return;
        }
        if let Some(d) = e.deviation {
            insert_sorted(self.by_deviation.entry(d).or_default(), e.seq);
        }
        insert_sorted(
            self.by_actor.entry(e.actor.to_lowercase()).or_default(),
            e.seq,
        );
        self.entries.insert(e.seq, e);
    }

    fn newest_first(&self, seqs: Option<&Vec<u64>>) -> Vec<AccessEntry> {
        seqs.into_iter()
            .flatten()
            .rev()
            .filter_map(|s| self.entries.get(s).cloned())
            .collect()
    }
}

/// The access log: its store, its command path and its index.
#[derive(Clone)]
pub struct AccessLog {
    store: Arc<dyn EventStore>,
    handler: CommandHandler,
    index: Arc<RwLock<Index>>,
}

impl AccessLog {
    /// Opens (or creates) the access log in `<data_dir>/access` and builds its index.
    pub fn open(data_dir: &Path, clock: Arc<dyn Clock>) -> Result<Self, AccessLogError> {
        let store = SledEventStore::open(
            &data_dir.join(ACCESS_DIR),
            StoreOptions {
                cache_capacity: 32 * 1024 * 1024,
                ..StoreOptions::default()
            },
        )?;
        Self::with_store(Arc::new(store), clock)
    }

    /// The access log beside the configured main log: in `<data_dir>/access` (sled), or
    /// in the schema [`PG_SCHEMA`] of the PostgreSQL database (`store.postgres.url`).
    pub fn open_for(
        config: &crate::config::Config,
        data_dir: &Path,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, AccessLogError> {
        match config.store.backend {
            crate::config::StoreBackend::Sled => Self::open(data_dir, clock),
            crate::config::StoreBackend::Postgres => {
                let store = avvik_events::PostgresEventStore::connect(
                    &config.store.postgres.url,
                    avvik_events::PostgresOptions {
                        schema: Some(PG_SCHEMA.into()),
                        ..avvik_events::PostgresOptions::default()
                    },
                )?;
                adopt_local(&store, &data_dir.join(ACCESS_DIR))?;
                Self::with_store(Arc::new(store), clock)
            }
        }
    }

    /// Keeps the index current with entries other processes sharing the store write
    /// (nodes on one PostgreSQL database), until `shutdown`.
    pub fn follow(&self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let from = {
            let index = self.index.read().unwrap_or_else(|p| p.into_inner());
            index.entries.keys().next_back().map_or(1, |s| s + 1)
        };
        let index = self.index.clone();
        let mut sub = avvik_events::Subscription::new(self.store.clone(), from);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.changed() => return,
                    next = sub.next() => match next {
                        Ok(rec) => {
                            if let Some(e) = AccessEntry::from_record(&rec) {
                                index.write().unwrap_or_else(|p| p.into_inner()).add(e);
                            }
                        }
                        Err(StoreError::Closed) => return,
                        Err(StoreError::Corrupt { seq, reason }) => {
                            tracing::warn!(seq, %reason, "an access-log record cannot be read");
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "the access log could not follow other nodes' entries; retrying");
                            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                        }
                    },
                }
            }
        });
    }

    /// Over a store already open (tests use this with a store that fails).
    pub fn with_store(
        store: Arc<dyn EventStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, AccessLogError> {
        let mut index = Index::default();
        for r in avvik_events::read_all(store.as_ref(), 1) {
            match r {
                Ok(rec) => {
                    if let Some(e) = AccessEntry::from_record(&rec) {
                        index.add(e);
                    }
                }
                // One unreadable record: `verify` names it; the index goes on without it.
                Err(StoreError::Corrupt { seq, reason }) => {
                    tracing::warn!(seq, %reason, "an access-log record cannot be read");
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Self {
            handler: CommandHandler::new(store.clone(), clock),
            store,
            index: Arc::new(RwLock::new(index)),
        })
    }

    /// Records that `actor` saw `what` (of `deviation`). Returns once the entry is durable;
    /// an error means the content must not be shown.
    pub async fn record(
        &self,
        actor: &str,
        what: AccessKind,
        deviation: Option<(Uuid, Reference)>,
    ) -> Result<(), AccessLogError> {
        let kind = serde_json::to_value(&what)
            .ok()
            .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(String::from))
            .unwrap_or_default();
        let payload = Recorded {
            what,
            reference: deviation.map(|(_, r)| r.to_string()),
        };
        let stream = deviation.map_or(NO_DEVIATION, |(id, _)| id);
        let fact = Fact::new(ACCESS_RECORDED, &payload);
        let env = Envelope::new(stream, actor).expect_any();
        let result = self
            .handler
            .execute(&env, stateless::<AccessLogError>(), |_, _| {
                Ok(vec![fact.clone()])
            })
            .await;
        match result {
            Ok(executed) => {
                let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
                for rec in executed.records() {
                    if let Some(e) = AccessEntry::from_record(rec) {
                        index.add(e);
                    }
                }
                metrics::counter!("avvik_access_log_records_total").increment(1);
                Ok(())
            }
            Err(e) => {
                metrics::counter!("avvik_access_log_failures_total").increment(1);
                tracing::warn!(error = %e, kind, "the access log could not be written; the content is withheld");
                Err(e)
            }
        }
    }

    /// Who saw this deviation, newest first.
    pub fn for_deviation(&self, id: Uuid) -> Vec<AccessEntry> {
        let index = self.index.read().unwrap_or_else(|p| p.into_inner());
        index.newest_first(index.by_deviation.get(&id))
    }

    /// What this actor (`user:…`, any case) saw, newest first.
    pub fn for_actor(&self, actor: &str) -> Vec<AccessEntry> {
        let index = self.index.read().unwrap_or_else(|p| p.into_inner());
        index.newest_first(index.by_actor.get(&actor.to_lowercase()))
    }

    /// Walks the access log's own chain (blocking: call it off the async threads).
    pub fn verify(&self) -> Result<VerifyReport, AccessLogError> {
        Ok(self.store.verify()?)
    }

    /// True once the access log's store had a storage error and writes may fail.
    pub fn is_degraded(&self) -> bool {
        self.store.is_degraded()
    }

    /// The access log's durable head.
    pub fn head(&self) -> avvik_events::Head {
        self.store.head()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn clock() -> Arc<dyn Clock> {
        Arc::new(ManualClock::new(
            DateTime::parse_from_rfc3339("2026-03-01T10:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        ))
    }

    const KONTAKT: &str = "user:kontakt@kommunen.example";
    const REVISOR: &str = "user:revisor@kommunen.example";

    #[tokio::test]
    async fn entries_survive_a_reopen_and_the_index_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let (ra, rb) = (Reference::new(2026, 1), Reference::new(2026, 2));
        {
            let log = AccessLog::open(dir.path(), clock()).unwrap();
            log.record(KONTAKT, AccessKind::DeviationPage, Some((a, ra)))
                .await
                .unwrap();
            log.record(KONTAKT, AccessKind::DeviationApi, Some((b, rb)))
                .await
                .unwrap();
            log.record(REVISOR, AccessKind::History, Some((a, ra)))
                .await
                .unwrap();
            log.record(
                REVISOR,
                AccessKind::Export {
                    from_seq: 1,
                    to_seq: 9,
                },
                None,
            )
            .await
            .unwrap();
        }
        let log = AccessLog::open(dir.path(), clock()).unwrap();
        let on_a = log.for_deviation(a);
        assert_eq!(on_a.len(), 2);
        // Newest first.
        assert_eq!(on_a[0].actor, REVISOR);
        assert_eq!(on_a[0].what, AccessKind::History);
        assert_eq!(on_a[1].actor, KONTAKT);
        assert_eq!(on_a[1].reference.as_deref(), Some("AVV-2026-0001"));
        assert_eq!(log.for_deviation(b).len(), 1);
        let by_kontakt: Vec<AccessKind> = log
            .for_actor("user:KONTAKT@kommunen.example")
            .into_iter()
            .map(|e| e.what)
            .collect();
        assert_eq!(
            by_kontakt,
            vec![AccessKind::DeviationApi, AccessKind::DeviationPage]
        );
        let by_revisor = log.for_actor(REVISOR);
        assert_eq!(by_revisor.len(), 2);
        assert_eq!(by_revisor[0].deviation, None);
        let report = log.verify().unwrap();
        assert!(report.ok);
        assert_eq!(report.records, 4);
        // The main store's directory is not where it went.
        assert!(dir.path().join(ACCESS_DIR).join("events").exists());
    }

    #[tokio::test]
    async fn the_index_follows_new_records_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = AccessLog::open(dir.path(), clock()).unwrap();
        let d = Uuid::now_v7();
        assert!(log.for_deviation(d).is_empty());
        log.record(
            KONTAKT,
            AccessKind::DeviationPage,
            Some((d, Reference::new(2026, 7))),
        )
        .await
        .unwrap();
        assert_eq!(log.for_deviation(d).len(), 1);
        assert_eq!(log.for_actor(KONTAKT).len(), 1);
        assert!(log.for_actor(REVISOR).is_empty());
    }

    #[tokio::test]
    async fn no_content_and_no_searched_address_in_the_stored_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let log = AccessLog::open(dir.path(), clock()).unwrap();
        let d = Uuid::now_v7();
        let sha = "ab".repeat(32);
        let hmac = "cd".repeat(32);
        log.record(
            KONTAKT,
            AccessKind::Attachment {
                sha256: sha.clone(),
            },
            Some((d, Reference::new(2026, 3))),
        )
        .await
        .unwrap();
        log.record(
            REVISOR,
            AccessKind::AccessLog {
                filter: AccessLogFilter::User,
            },
            None,
        )
        .await
        .unwrap();
        log.record(
            "user:dso@kommunen.example",
            AccessKind::RegisterExtract {
                subject_index: hmac.clone(),
            },
            None,
        )
        .await
        .unwrap();
        let mut raw = Vec::new();
        log.store.export(1, u64::MAX, &mut raw).unwrap();
        let text = String::from_utf8(raw).unwrap();
        assert_eq!(text.lines().count(), 3);
        let stored: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        // The data of each record is exactly the kind, its hash or index, and the
        // reference: nothing else can be in it.
        assert_eq!(
            stored[0]["data"],
            serde_json::json!({"what": {"kind": "attachment", "sha256": sha}, "reference": "AVV-2026-0003"})
        );
        assert_eq!(
            stored[1]["data"],
            serde_json::json!({"what": {"kind": "access_log", "filter": "user"}})
        );
        assert_eq!(
            stored[2]["data"],
            serde_json::json!({"what": {"kind": "register_extract", "subject_index": hmac}})
        );
        // The only addresses in the bytes are the actors'.
        assert_eq!(text.matches('@').count(), 3, "{text}");
    }

    #[tokio::test]
    async fn exports_record_format_filters_and_count_only() {
        let dir = tempfile::tempdir().unwrap();
        let log = AccessLog::open(dir.path(), clock()).unwrap();
        let d = Uuid::now_v7();
        let sha = "ef".repeat(32);
        log.record(
            KONTAKT,
            AccessKind::CaseExport {
                format: "pdf".into(),
                sha256: sha.clone(),
            },
            Some((d, Reference::new(2026, 4))),
        )
        .await
        .unwrap();
        let filters = ExportFilters {
            status: Some("investigating".into()),
            sector: Some("Socialtjänsten".into()),
            free_text: true,
            ..ExportFilters::default()
        };
        log.record(
            KONTAKT,
            AccessKind::RegisterExport {
                format: "xlsx".into(),
                filters,
                rows: 12,
            },
            None,
        )
        .await
        .unwrap();
        let mut raw = Vec::new();
        log.store.export(1, u64::MAX, &mut raw).unwrap();
        let stored: Vec<serde_json::Value> = String::from_utf8(raw)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            stored[0]["data"],
            serde_json::json!({"what": {"kind": "case_export", "format": "pdf", "sha256": sha}, "reference": "AVV-2026-0004"})
        );
        assert_eq!(
            stored[1]["data"],
            serde_json::json!({"what": {"kind": "register_export", "format": "xlsx",
                "filters": {"status": "investigating", "sector": "Socialtjänsten", "free_text": true},
                "rows": 12}})
        );
        assert_eq!(log.for_deviation(d).len(), 1);
        let by_kontakt = log.for_actor(KONTAKT);
        assert_eq!(by_kontakt[0].what.label_sv(), "Exporterade registret");
        assert_eq!(by_kontakt[1].what.label_sv(), "Exporterade avvikelsen");
    }
}
