//! The single writer thread: takes the queued appends and commits as many as are waiting
//! in one transaction (group commit). Each transaction locks the head row and reads the
//! tip from it, so another process appending to the same database is never overwritten.
//! What each append means is [`crate::store::rules`]; this module only stages what the
//! rules seal and commits it.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_postgres::types::Type;
use tokio_postgres::Client;
use uuid::Uuid;

use super::schema::{self, Param as SqlParam, Rows};
use super::{decode, Shared};
use crate::record::RecordedEvent;
use crate::store::rules::{AppendView, ChainTip};
use crate::store::{Result, StoreError};

pub(crate) use crate::store::job::Job;
use crate::store::job::{Queue, Reply};

pub(crate) struct Writer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) max_batch: usize,
    /// The writer's connection; `None` until (re)connected.
    client: Option<Arc<Client>>,
}

/// What a lookup found: stored, staged in this commit, or known to be absent.
enum Known {
    Absent,
    Stored(u64, Vec<u8>),
    Staged(usize),
}

/// The rules' view of the database during one transaction: what the transaction read
/// (most of it fetched up front, in one round trip with the head lock), plus what earlier
/// appends of the same commit staged.
struct View<'a> {
    shared: &'a Arc<Shared>,
    client: &'a Arc<Client>,
    ids: HashMap<Uuid, Known>,
    versions: HashMap<Uuid, u32>,
    counters: HashMap<String, u64>,
    rows: Rows,
    changed_counters: HashMap<String, u64>,
    /// A lookup that failed: the transaction is lost, the whole commit fails.
    failed: Option<StoreError>,
}

impl View<'_> {
    /// Runs one lookup in the open transaction (for what was not fetched up front).
    fn query(&mut self, sql: &'static str, param: Param) -> Result<Vec<tokio_postgres::Row>> {
        if let Some(e) = &self.failed {
            return Err(StoreError::Storage(e.to_string()));
        }
        let client = self.client.clone();
        let shared = self.shared.clone();
        let limit = self.shared.timeout;
        let r = self.shared.io.block_on(async move {
            let fut = async {
                let r = match &param {
                    Param::Uuid(u) => client.query_typed(sql, &[(u, Type::UUID)]).await,
                    Param::Text(t) => client.query_typed(sql, &[(t, Type::TEXT)]).await,
                };
                r.map_err(|e| shared.health.failed("lookup", &e))
            };
            shared.health.within(limit, "lookup", fut).await
        });
        if let Err(e) = &r {
            self.failed = Some(StoreError::Storage(e.to_string()));
        }
        r
    }
}

enum Param {
    Uuid(Uuid),
    Text(String),
}

impl AppendView for View<'_> {
    fn stored_by_id(&mut self, id: Uuid) -> Result<Option<RecordedEvent>> {
        if !self.ids.contains_key(&id) {
            let rows = self.query(
                "SELECT seq, bytes FROM avvik_events WHERE id = $1",
                Param::Uuid(id),
            )?;
            let known = match rows.first() {
                Some(row) => Known::Stored(row.get::<_, i64>(0) as u64, row.get(1)),
                None => Known::Absent,
            };
            self.ids.insert(id, known);
        }
        match &self.ids[&id] {
            Known::Absent => Ok(None),
            Known::Stored(seq, bytes) => Ok(Some(decode(*seq, bytes)?)),
            Known::Staged(i) => Ok(Some(decode(
                self.rows.seq[*i] as u64,
                &self.rows.bytes[*i],
            )?)),
        }
    }

    fn stream_version(&mut self, stream: Uuid) -> Result<u32> {
        if let Some(v) = self.versions.get(&stream) {
            return Ok(*v);
        }
        let rows = self.query(
            "SELECT coalesce(max(version), 0) FROM avvik_events WHERE stream = $1",
            Param::Uuid(stream),
        )?;
        let v = rows.first().map_or(0, |r| r.get::<_, i32>(0) as u32);
        self.versions.insert(stream, v);
        Ok(v)
    }

    fn counter(&mut self, name: &str) -> Result<u64> {
        if let Some(v) = self.counters.get(name) {
            return Ok(*v);
        }
        let rows = self.query(
            "SELECT value FROM avvik_counters WHERE name = $1",
            Param::Text(name.to_string()),
        )?;
        let v = rows.first().map_or(0, |r| r.get::<_, i64>(0) as u64);
        self.counters.insert(name.to_string(), v);
        Ok(v)
    }

    fn put(&mut self, rec: &RecordedEvent, bytes: Vec<u8>) {
        self.ids.insert(rec.id, Known::Staged(self.rows.len()));
        self.versions.insert(rec.stream, rec.version);
        self.rows.push(rec, bytes);
    }

    fn put_counter(&mut self, name: String, value: u64) {
        self.counters.insert(name.clone(), value);
        self.changed_counters.insert(name, value);
    }
}

/// What a commit writes: the rows, the counters that moved, and the new head.
struct Staged {
    rows: Rows,
    counters: Vec<(String, u64)>,
    tip: ChainTip,
}

/// What the first round trip of a commit returns: the locked tip and the lookups for the
/// ids, streams and counters the queued jobs name.
struct Begun {
    tip: ChainTip,
    ids: HashMap<Uuid, Known>,
    versions: HashMap<Uuid, u32>,
    counters: HashMap<String, u64>,
}

impl Writer {
    pub(crate) fn new(shared: Arc<Shared>, max_batch: usize, client: Option<Client>) -> Self {
        Self {
            shared,
            max_batch: max_batch.max(1),
            client: client.map(Arc::new),
        }
    }

    pub(crate) fn run(mut self, rx: mpsc::Receiver<Job>) {
        let mut queue = Queue::new(rx, self.max_batch);
        let mut jobs: Vec<Job> = Vec::with_capacity(self.max_batch);
        while queue.next_batch(&mut jobs) {
            self.commit(&mut jobs);
        }
        tracing::debug!("PostgreSQL event store writer stopped");
    }

    /// The writer's connection, connecting again if it was lost.
    fn client(&mut self) -> Result<Arc<Client>> {
        if let Some(c) = &self.client {
            if !c.is_closed() {
                return Ok(c.clone());
            }
        }
        self.client = None;
        let shared = self.shared.clone();
        let limit = self.shared.timeout;
        let client = self.shared.io.block_on(async move {
            let connect = async {
                let c = shared.target.connect(None).await;
                if c.is_err() {
                    shared.health.unreachable();
                }
                c
            };
            shared.health.within(limit, "connect", connect).await
        })?;
        let client = Arc::new(client);
        self.client = Some(client.clone());
        Ok(client)
    }

    fn commit(&mut self, jobs: &mut Vec<Job>) {
        let client = match self.client() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "event store commit failed: no connection");
                for job in jobs.drain(..) {
                    let _ = job
                        .into_reply()
                        .send(Err(StoreError::Storage(e.to_string())));
                }
                return;
            }
        };
        let begun = match self.begin(&client, jobs) {
            Ok(b) => b,
            Err(e) => {
                self.abandon(&client);
                for job in jobs.drain(..) {
                    let _ = job
                        .into_reply()
                        .send(Err(StoreError::Storage(e.to_string())));
                }
                return;
            }
        };
        let start = begun.tip;
        let mut tip = begun.tip;
        let mut view = View {
            shared: &self.shared,
            client: &client,
            ids: begun.ids,
            versions: begun.versions,
            counters: begun.counters,
            rows: Rows::default(),
            changed_counters: HashMap::new(),
            failed: None,
        };
        let mut answers: Vec<(Reply, Result<Vec<RecordedEvent>>)> = Vec::with_capacity(jobs.len());
        for job in jobs.drain(..) {
            answers.push(job.stage(&mut view, &mut tip));
        }
        let View {
            rows,
            changed_counters,
            failed,
            ..
        } = view;
        let written = match failed {
            Some(e) => Err(e),
            None if tip.seq == start.seq => self.finish(&client, "ROLLBACK", None),
            None => self.finish(
                &client,
                "COMMIT",
                Some(Staged {
                    rows,
                    counters: changed_counters.into_iter().collect(),
                    tip,
                }),
            ),
        };
        match written {
            Ok(()) => {
                self.shared.health.reached();
                self.shared.publish(tip);
            }
            Err(e) => {
                self.abandon(&client);
                // The COMMIT may have reached the server before the connection failed:
                // ask, before answering, whether the commit's last record is stored.
                let last = answers
                    .iter()
                    .filter_map(|(_, r)| r.as_ref().ok()?.last())
                    .filter(|r| r.seq > start.seq)
                    .max_by_key(|r| r.seq)
                    .map(|r| (r.id, r.seq));
                match last.map(|(id, seq)| self.committed(id, seq)) {
                    Some(Some(true)) => {
                        tracing::warn!(error = %e, "event store commit reported a failure but was stored; answered as stored");
                        self.shared.health.reached();
                        self.shared.publish(tip);
                    }
                    outcome => {
                        tracing::error!(error = %e, "event store commit failed");
                        let why = match outcome {
                            Some(Some(false)) | None => e.to_string(),
                            _ => format!(
                                "{e}; whether it was stored is unknown (re-sending the same event ids is safe)"
                            ),
                        };
                        // Nothing of this commit was stored; callers may retry with the
                        // same event ids (idempotent). The next commit reads the tip afresh.
                        for (_, r) in answers.iter_mut() {
                            if r.is_ok() {
                                *r = Err(StoreError::Storage(why.clone()));
                            }
                        }
                    }
                }
            }
        }
        for (reply, r) in answers {
            let _ = reply.send(r);
        }
    }

    /// Opens the transaction, locks the head row and fetches what the jobs will look up,
    /// all sent at once.
    fn begin(&self, client: &Arc<Client>, jobs: &[Job]) -> Result<Begun> {
        let mut ids: Vec<Uuid> = Vec::new();
        let mut streams: Vec<Uuid> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for job in jobs {
            match job {
                Job::Append { stream, events, .. } => {
                    streams.push(*stream);
                    ids.extend(events.iter().map(|e| e.id));
                }
                Job::Numbered {
                    counter, stream, ..
                } => {
                    streams.push(*stream);
                    names.push(counter.clone());
                }
            }
        }
        let client = client.clone();
        let shared = self.shared.clone();
        let limit = self.shared.timeout;
        self.shared.io.block_on(async move {
            let fut = async {
                let begin = client.batch_execute("BEGIN");
                let head = schema::read_head(&client, true);
                let id_param: [SqlParam; 1] = [(&ids, Type::UUID_ARRAY)];
                let by_id = client.query_typed(
                    "SELECT id, seq, bytes FROM avvik_events WHERE id = ANY($1)",
                    &id_param,
                );
                let stream_param: [SqlParam; 1] = [(&streams, Type::UUID_ARRAY)];
                // One backward index step per stream, whatever the planner knows of the
                // table's size: `max(version) … WHERE stream = ANY($1) GROUP BY stream`
                // was planned as a scan that grew with the log.
                let by_stream = client.query_typed(
                    "SELECT s, (SELECT version FROM avvik_events WHERE stream = s \
                     ORDER BY version DESC LIMIT 1) FROM unnest($1::uuid[]) AS s",
                    &stream_param,
                );
                let name_param: [SqlParam; 1] = [(&names, Type::TEXT_ARRAY)];
                let by_name = client.query_typed(
                    "SELECT name, value FROM avvik_counters WHERE name = ANY($1)",
                    &name_param,
                );
                let (begin, head, by_id, by_stream, by_name) =
                    tokio::join!(begin, head, by_id, by_stream, by_name);
                let failed = |e: tokio_postgres::Error| shared.health.failed("commit", &e);
                begin.map_err(failed)?;
                let tip = head.map_err(|e| e.into_store(&shared.health))?;
                let mut known: HashMap<Uuid, Known> =
                    ids.iter().map(|id| (*id, Known::Absent)).collect();
                for row in by_id.map_err(failed)? {
                    known.insert(
                        row.get(0),
                        Known::Stored(row.get::<_, i64>(1) as u64, row.get(2)),
                    );
                }
                let mut versions: HashMap<Uuid, u32> = streams.iter().map(|s| (*s, 0)).collect();
                for row in by_stream.map_err(failed)? {
                    if let Some(v) = row.get::<_, Option<i32>>(1) {
                        versions.insert(row.get(0), v as u32);
                    }
                }
                let mut counters: HashMap<String, u64> =
                    names.iter().map(|n| (n.clone(), 0)).collect();
                for row in by_name.map_err(failed)? {
                    counters.insert(row.get(0), row.get::<_, i64>(1) as u64);
                }
                Ok(Begun {
                    tip,
                    ids: known,
                    versions,
                    counters,
                })
            };
            shared.health.within(limit, "commit", fut).await
        })
    }

    /// Writes the staged rows, the counters and the head, and ends the transaction with
    /// `end`, all sent at once. Returns only after the server answered the COMMIT.
    fn finish(
        &self,
        client: &Arc<Client>,
        end: &'static str,
        staged: Option<Staged>,
    ) -> Result<()> {
        let client = client.clone();
        let shared = self.shared.clone();
        let limit = self.shared.timeout;
        self.shared.io.block_on(async move {
            let fut = async {
                let failed = |e: tokio_postgres::Error| shared.health.failed("commit", &e);
                match &staged {
                    Some(Staged {
                        rows,
                        counters,
                        tip,
                    }) => {
                        // If a statement fails, the COMMIT sent behind it only rolls back.
                        tokio::try_join!(
                            schema::insert_rows(&client, rows),
                            schema::upsert_counters(&client, counters),
                            schema::set_head(&client, tip, &shared.target.channel),
                            client.batch_execute(end),
                        )
                        .map_err(failed)?;
                    }
                    None => client.batch_execute(end).await.map_err(failed)?,
                }
                Ok(())
            };
            shared.health.within(limit, "commit", fut).await
        })
    }

    /// After a commit that failed with its connection: was it stored? A new transaction
    /// locks the head row, so the failed one has ended on the server one way or the other,
    /// and looks for the commit's last record `id` at `seq`. `None`: the server cannot be
    /// asked now.
    fn committed(&mut self, id: Uuid, seq: u64) -> Option<bool> {
        let client = self.client().ok()?;
        let shared = self.shared.clone();
        let limit = self.shared.timeout;
        let c = client.clone();
        let found = self.shared.io.block_on(async move {
            let fut = async {
                let ask = async {
                    c.batch_execute("BEGIN").await?;
                    let _ = schema::read_head(&c, true).await;
                    let rows = c
                        .query_typed(
                            "SELECT seq FROM avvik_events WHERE id = $1",
                            &[(&id, Type::UUID)],
                        )
                        .await?;
                    c.batch_execute("ROLLBACK").await?;
                    Ok::<_, tokio_postgres::Error>(rows.first().map(|r| r.get::<_, i64>(0) as u64))
                };
                ask.await.map_err(|e| shared.health.failed("resolve", &e))
            };
            shared.health.within(limit, "resolve", fut).await
        });
        match found {
            Ok(at) => Some(at == Some(seq)),
            Err(_) => {
                self.client = None;
                None
            }
        }
    }

    /// After a failed commit: the transaction is rolled back, or, if that fails too, the
    /// connection is dropped (which ends the transaction on the server) and made again for
    /// the next commit.
    fn abandon(&mut self, client: &Arc<Client>) {
        let c = client.clone();
        let shared = self.shared.clone();
        // Short: a server that did not answer the commit will not answer this either.
        let limit = self.shared.timeout.min(std::time::Duration::from_secs(2));
        let rolled_back = self.shared.io.block_on(async move {
            let fut = async {
                c.batch_execute("ROLLBACK")
                    .await
                    .map_err(|e| shared.health.failed("rollback", &e))
            };
            shared.health.within(limit, "rollback", fut).await
        });
        if rolled_back.is_err() {
            self.client = None;
        }
    }
}
