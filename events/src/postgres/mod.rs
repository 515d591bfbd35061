//! The PostgreSQL backend: the log in a table of exact record bytes, shared by any number
//! of avvik processes (`schema`); one writer thread per process commits queued appends in
//! one transaction each, under a lock on the head row (`writer`); the head follows other
//! processes' commits by `LISTEN`/`NOTIFY` and a poll (`follow`); import fills an empty
//! database from an export (`transfer`); files every process shares sit beside the log
//! (`files`), and single-runner duties are advisory locks (`lease`). The rules of an append are
//! [`crate::store::rules`], shared with every backend.
//!
//! # Synchronous and async calls
//!
//! Every connection is a `tokio-postgres` connection driven by the store's own
//! single-threaded runtime, on a thread of its own (`conn::Io`). The async forms run
//! their query there and await the answer, on whatever runtime the caller uses. The
//! synchronous forms hand the query over and wait on a plain channel, so they work from
//! any thread, a tokio worker included (where the `postgres` crate's client would panic
//! starting its own runtime); they do block that thread for a round trip, which is why
//! async code should call the async forms (see [`crate::store`]). The writer is a plain
//! thread too, so the append rules' lookups can wait for the database the same way.
//!
//! # Failures
//!
//! A lost connection is made again by whoever needs it next: the writer before its next
//! commit, a read when it takes a connection, the head poll every interval. While the
//! database cannot be reached, calls fail with `Storage` errors naming the server (never
//! the password) within the configured timeout, and [`EventStore::is_degraded`] is true.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::types::Type;
use tokio_postgres::Client;
use uuid::Uuid;

use crate::record::{NewEvent, RecordedEvent};
use crate::store::rules::ChainTip;
use crate::store::{
    BoxFuture, CounterOf, EventStore, ExpectedVersion, Head, NumberedBuild, Result, SharedFiles,
    StoreError,
};
use crate::verify::VerifyReport;

mod conn;
mod files;
mod follow;
mod lease;
mod schema;
mod transfer;
mod writer;

use conn::{Health, Io, Pool, Target};
use writer::{Job, Writer};

/// Settings for a PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Most appends committed in one transaction.
    pub max_batch: usize,
    /// Queue length before `append` waits (backpressure).
    pub queue: usize,
    /// Idle read connections kept open.
    pub read_connections: usize,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// How long a query or a commit may take before the caller gets a `Storage` error.
    pub timeout: Duration,
    /// How often the head row is read, in case a notification of another process's
    /// commit was lost.
    pub poll_interval: Duration,
    /// A schema of its own for the tables (created if missing), for a second log in the
    /// same database (the access log); `None`: the connection's default schema.
    pub schema: Option<String>,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            max_batch: 1024,
            queue: 8192,
            read_connections: 4,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            schema: None,
        }
    }
}

/// What the store's threads and tasks share.
pub(crate) struct Shared {
    pub(crate) target: Target,
    pub(crate) io: Io,
    pool: Pool,
    pub(crate) health: Health,
    pub(crate) timeout: Duration,
    head: Mutex<Head>,
    head_tx: watch::Sender<u64>,
}

impl Shared {
    /// Makes `tip` the head readers see, if it is ahead of the one they see.
    pub(crate) fn publish(&self, tip: ChainTip) {
        let mut head = self.head.lock().unwrap_or_else(|p| p.into_inner());
        if tip.seq <= head.seq {
            return;
        }
        *head = tip.to_head();
        drop(head);
        self.head_tx.send_replace(tip.seq);
    }

    /// Runs `f` on the store's runtime within the timeout and waits for it, from any
    /// thread but the runtime's own (see the module docs).
    pub(crate) fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        what: &'static str,
        f: impl std::future::Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        let shared = self.clone();
        self.io
            .block_on(async move { shared.health.within(shared.timeout, what, f).await })
    }

    pub(crate) fn give_back(&self, client: Client) {
        self.pool.give_back(client);
    }

    pub(crate) fn published_seq(&self) -> u64 {
        *self.head_tx.borrow()
    }

    /// An idle read connection, or a new one.
    pub(crate) async fn reader(self: &Arc<Self>) -> Result<Reader> {
        let client = match self.pool.take() {
            Some(c) => c,
            None => self.target.connect(None).await.inspect_err(|_| {
                self.health.unreachable();
            })?,
        };
        Ok(Reader {
            client: Some(client),
            shared: self.clone(),
        })
    }
}

/// A read connection taken from the pool; goes back when dropped, unless it was closed or
/// left inside a transaction.
pub(crate) struct Reader {
    client: Option<Client>,
    shared: Arc<Shared>,
}

impl Reader {
    /// The connection itself, for a caller that keeps it across several round trips; it
    /// goes back with [`Pool::give_back`] (through [`Shared::give_back`]) or not at all.
    pub(crate) fn into_inner(mut self) -> Client {
        self.client
            .take()
            .expect("a reader holds its client until dropped")
    }
}

impl std::ops::Deref for Reader {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client
            .as_ref()
            .expect("a reader holds its client until dropped")
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            self.shared.pool.give_back(c);
        }
    }
}

/// The PostgreSQL-backed store.
pub struct PostgresEventStore {
    shared: Arc<Shared>,
    jobs: mpsc::Sender<Job>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for PostgresEventStore {
    fn drop(&mut self) {
        // Close the queue so the writer finishes its transaction and exits, then end the
        // runtime: every connection is closed when the store is gone.
        let (closed, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.jobs, closed));
        if let Some(h) = self.writer.take() {
            let _ = h.join();
        }
        self.shared.pool.clear();
        self.shared.io.stop();
    }
}

impl PostgresEventStore {
    /// Connects to the database at `url` (a `postgres://` URL or a `key=value` string),
    /// creates the tables if they are missing, and reads the head. Fails with `Storage` if
    /// the database cannot be reached.
    ///
    /// TLS: `sslmode=require`, `verify-ca` and `verify-full` connect with rustls and check
    /// the server's certificate against the system CA store and its name against the host;
    /// `sslmode=disable` connects in plain text; without `sslmode` a loopback host or a
    /// Unix socket connects in plain text and any other host with TLS.
    pub fn connect(url: &str, opts: PostgresOptions) -> Result<Self> {
        let target = Target::parse(url, opts.connect_timeout, opts.schema.as_deref())?;
        let (head_tx, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            target,
            io: Io::start()?,
            pool: Pool::new(opts.read_connections),
            health: Health::default(),
            timeout: opts.timeout,
            head: Mutex::new(ChainTip::EMPTY.to_head()),
            head_tx,
        });
        let opened = {
            let shared = shared.clone();
            shared.clone().io.block_on(async move {
                let open = async {
                    let client = shared.target.connect(None).await?;
                    schema::ensure(&client, &shared.health, shared.target.schema.as_deref())
                        .await?;
                    // Listen first, then read the head: a commit by another process in
                    // between is heard, not missed until the next poll.
                    let listener = follow::listen(&shared).await;
                    let tip = schema::read_head(&client, false)
                        .await
                        .map_err(|e| e.into_store(&shared.health))?;
                    Ok((client, listener, tip))
                };
                shared.health.within(shared.timeout, "connect", open).await
            })
        };
        let (client, listener, tip) = match opened {
            Ok(x) => x,
            Err(e) => {
                shared.io.stop();
                return Err(e);
            }
        };
        shared.publish(tip);
        shared.io.spawn(follow::follow_head(
            shared.clone(),
            opts.poll_interval,
            listener,
        ));
        let (tx, rx) = mpsc::channel(opts.queue.max(1));
        let writer = Writer::new(shared.clone(), opts.max_batch, Some(client));
        let handle = std::thread::Builder::new()
            .name("avvik-pg-writer".into())
            .spawn(move || writer.run(rx));
        let handle = match handle {
            Ok(h) => h,
            Err(e) => {
                shared.io.stop();
                return Err(e.into());
            }
        };
        Ok(Self {
            shared,
            jobs: tx,
            writer: Some(handle),
        })
    }

    async fn submit(
        &self,
        job: Job,
        rx: oneshot::Receiver<Result<Vec<RecordedEvent>>>,
    ) -> Result<Vec<RecordedEvent>> {
        self.jobs.send(job).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs a read on the store's runtime and waits for it (see the module docs).
    fn blocking<T: Send + 'static>(
        &self,
        what: &'static str,
        read: impl std::future::Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        self.shared.blocking(what, read)
    }

    /// Runs a read on the store's runtime; the answer can be awaited anywhere.
    fn nonblocking<T: Send + 'static>(
        &self,
        what: &'static str,
        read: impl std::future::Future<Output = Result<T>> + Send + 'static,
    ) -> impl std::future::Future<Output = Result<T>> + Send + 'static {
        let shared = self.shared.clone();
        self.shared
            .io
            .run(async move { shared.health.within(shared.timeout, what, read).await })
    }
}

pub(crate) fn decode(seq: u64, bytes: &[u8]) -> Result<RecordedEvent> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        seq,
        reason: e.to_string(),
    })
}

fn decode_all(rows: Vec<(u64, Vec<u8>)>) -> Result<Vec<RecordedEvent>> {
    rows.iter()
        .map(|(seq, bytes)| decode(*seq, bytes))
        .collect()
}

fn raw_rows(rows: Vec<tokio_postgres::Row>) -> Vec<(u64, Vec<u8>)> {
    rows.into_iter()
        .map(|r| (r.get::<_, i64>(0) as u64, r.get(1)))
        .collect()
}

fn clamp(n: u64) -> i64 {
    n.min(i64::MAX as u64) as i64
}

/// Records from `from` on, at most `limit`, in seq order.
async fn rows_from(
    shared: Arc<Shared>,
    from: u64,
    to: u64,
    limit: usize,
) -> Result<Vec<(u64, Vec<u8>)>> {
    let reader = shared.reader().await?;
    let (from, to, limit) = (clamp(from), clamp(to), clamp(limit as u64));
    let rows = reader
        .query_typed(
            "SELECT seq, bytes FROM avvik_events WHERE seq >= $1 AND seq <= $2 \
             ORDER BY seq LIMIT $3",
            &[(&from, Type::INT8), (&to, Type::INT8), (&limit, Type::INT8)],
        )
        .await
        .map_err(|e| shared.health.failed("read", &e))?;
    Ok(raw_rows(rows))
}

/// Records of `stream` from `from_version` on.
async fn stream_rows(
    shared: Arc<Shared>,
    stream: Uuid,
    from_version: u32,
) -> Result<Vec<(u64, Vec<u8>)>> {
    let reader = shared.reader().await?;
    let from = i64::from(from_version);
    let rows = reader
        .query_typed(
            "SELECT seq, bytes FROM avvik_events WHERE stream = $1 AND version >= $2 \
             ORDER BY version",
            &[(&stream, Type::UUID), (&from, Type::INT8)],
        )
        .await
        .map_err(|e| shared.health.failed("read", &e))?;
    Ok(raw_rows(rows))
}

/// Records per round trip when walking the log.
const CHUNK: usize = 4096;

impl EventStore for PostgresEventStore {
    fn append(
        &self,
        stream: Uuid,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> BoxFuture<'_, Result<Vec<RecordedEvent>>> {
        Box::pin(async move {
            let (reply, rx) = oneshot::channel();
            let job = Job::Append {
                stream,
                expected,
                events,
                reply,
            };
            self.submit(job, rx).await
        })
    }

    fn append_numbered(
        &self,
        counter: String,
        stream: Uuid,
        expected: ExpectedVersion,
        build: NumberedBuild,
    ) -> BoxFuture<'_, Result<Vec<RecordedEvent>>> {
        Box::pin(async move {
            let (reply, rx) = oneshot::channel();
            let job = Job::Numbered {
                counter,
                stream,
                expected,
                build,
                reply,
            };
            self.submit(job, rx).await
        })
    }

    fn read_batch(&self, from_seq: u64, limit: usize) -> Result<Vec<RecordedEvent>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let rows = rows_from(self.shared.clone(), from_seq.max(1), u64::MAX, limit);
        decode_all(self.blocking("read", rows)?)
    }

    fn read_batch_async(
        &self,
        from_seq: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<RecordedEvent>>> {
        if limit == 0 {
            return Box::pin(std::future::ready(Ok(Vec::new())));
        }
        let rows = rows_from(self.shared.clone(), from_seq.max(1), u64::MAX, limit);
        let rows = self.nonblocking("read", rows);
        Box::pin(async move { decode_all(rows.await?) })
    }

    fn for_each_raw(
        &self,
        from_seq: u64,
        to_seq: u64,
        f: &mut dyn FnMut(u64, &[u8]) -> Result<()>,
    ) -> Result<()> {
        let mut next = from_seq.max(1);
        while next <= to_seq {
            let rows =
                self.blocking("read", rows_from(self.shared.clone(), next, to_seq, CHUNK))?;
            let done = rows.len() < CHUNK;
            for (seq, bytes) in &rows {
                f(*seq, bytes)?;
                next = seq + 1;
            }
            if done {
                break;
            }
        }
        Ok(())
    }

    fn read_stream(&self, stream: Uuid, from_version: u32) -> Result<Vec<RecordedEvent>> {
        let rows = stream_rows(self.shared.clone(), stream, from_version.max(1));
        decode_all(self.blocking("read", rows)?)
    }

    fn read_stream_async(
        &self,
        stream: Uuid,
        from_version: u32,
    ) -> BoxFuture<'_, Result<Vec<RecordedEvent>>> {
        let rows = stream_rows(self.shared.clone(), stream, from_version.max(1));
        let rows = self.nonblocking("read", rows);
        Box::pin(async move { decode_all(rows.await?) })
    }

    fn head(&self) -> Head {
        self.shared
            .head
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn watch_head(&self) -> watch::Receiver<u64> {
        self.shared.head_tx.subscribe()
    }

    fn counter(&self, name: &str) -> Result<u64> {
        let shared = self.shared.clone();
        let name = name.to_string();
        self.blocking("read", async move {
            let reader = shared.reader().await?;
            let rows = reader
                .query_typed(
                    "SELECT value FROM avvik_counters WHERE name = $1",
                    &[(&name, Type::TEXT)],
                )
                .await
                .map_err(|e| shared.health.failed("read", &e))?;
            Ok(rows.first().map_or(0, |r| r.get::<_, i64>(0) as u64))
        })
    }

    fn verify(&self) -> Result<VerifyReport> {
        transfer::verify(self)
    }

    fn is_degraded(&self) -> bool {
        self.shared.health.degraded()
    }

    fn size_on_disk(&self) -> Result<u64> {
        let shared = self.shared.clone();
        self.blocking("size", async move {
            let reader = shared.reader().await?;
            let row = reader
                .query_typed_one(
                    "SELECT (pg_total_relation_size('avvik_events') \
                     + pg_total_relation_size('avvik_head') \
                     + pg_total_relation_size('avvik_counters'))::bigint",
                    &[],
                )
                .await
                .map_err(|e| shared.health.failed("size", &e))?;
            Ok(row.get::<_, i64>(0) as u64)
        })
    }

    fn import(&self, input: &mut dyn std::io::BufRead, counter_of: &CounterOf) -> Result<Head> {
        transfer::import(self, input, counter_of)
    }

    fn shared_files(&self) -> Option<Arc<dyn SharedFiles>> {
        Some(Arc::new(files::PgFiles {
            shared: self.shared.clone(),
        }))
    }

    fn sync_head(&self) -> BoxFuture<'_, Result<Option<Head>>> {
        let shared = self.shared.clone();
        let read = self.nonblocking("head", async move {
            let reader = shared.reader().await?;
            schema::read_head(&reader, false)
                .await
                .map_err(|e| e.into_store(&shared.health))
        });
        Box::pin(async move {
            let tip = read.await?;
            self.shared.publish(tip);
            Ok(Some(self.head()))
        })
    }

    fn duty(&self, name: &str) -> watch::Receiver<bool> {
        let (held, rx) = watch::channel(false);
        self.shared
            .io
            .spawn(lease::hold(self.shared.clone(), name.to_string(), held));
        rx
    }
}
