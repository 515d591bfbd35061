//! The tables, created at the first open, and the statements that read and move the head.
//!
//! | table | holds |
//! |---|---|
//! | `avvik_schema` | one row: the layout's version |
//! | `avvik_events` | each record's exact stored bytes (`bytea`: the chain hashes the bytes), with its seq, id, stream and version as indexed columns |
//! | `avvik_head` | one row: the head's seq, hash and commit time. Every commit locks it (`FOR UPDATE`), so commits from any number of processes are serialized and each reads the true tip |
//! | `avvik_counters` | the gap-free counters |
//! | `avvik_files` | files every process of the installation shares, by kind and name (the data keys' batches, the installation's secret check): see [`super::files`] |

use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Client;

use super::conn::Health;
use crate::store::rules::ChainTip;
use crate::store::{Result, StoreError};

/// A statement parameter with its type named (no round trip to ask the server for it).
pub(crate) type Param<'a> = (&'a (dyn ToSql + Sync), Type);

/// The layout this code reads and writes.
pub(crate) const SCHEMA_VERSION: i32 = 1;

/// The channel a commit notifies with its new head seq (tables in a schema of their own:
/// `<schema>_head`).
pub(crate) const CHANNEL: &str = "avvik_head";

/// Serializes the creation of the tables between processes opening an empty database at
/// once (`CREATE TABLE IF NOT EXISTS` alone can race).
const SCHEMA_LOCK: i64 = 0x6176_7669_6b5f_6576;

const CREATE: &str = "
CREATE TABLE IF NOT EXISTS avvik_schema (
    id smallint PRIMARY KEY CHECK (id = 1),
    version integer NOT NULL
);
CREATE TABLE IF NOT EXISTS avvik_events (
    seq bigint PRIMARY KEY,
    id uuid NOT NULL UNIQUE,
    stream uuid NOT NULL,
    version integer NOT NULL,
    bytes bytea NOT NULL,
    UNIQUE (stream, version)
);
CREATE TABLE IF NOT EXISTS avvik_head (
    id smallint PRIMARY KEY CHECK (id = 1),
    seq bigint NOT NULL,
    hash bytea NOT NULL,
    at_micros bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS avvik_counters (
    name text PRIMARY KEY,
    value bigint NOT NULL
);
";

/// Tables added after the first layout, created when missing by any version that uses
/// them (adding a table changes nothing the older code reads).
const CREATE_SIDE: &str = "
CREATE TABLE IF NOT EXISTS avvik_files (
    kind text NOT NULL,
    name text NOT NULL,
    bytes bytea NOT NULL,
    PRIMARY KEY (kind, name)
);
";

/// Runs `sql` (one or more statements) in a transaction that holds the set-up lock, so
/// processes opening an empty database at once do not race.
async fn locked_ddl(client: &Client, sql: &str) -> Result<(), tokio_postgres::Error> {
    client.batch_execute("BEGIN").await?;
    let done = async {
        client
            .execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .await?;
        client.batch_execute(sql).await?;
        client.batch_execute("COMMIT").await
    }
    .await;
    if done.is_err() {
        let _ = client.batch_execute("ROLLBACK").await;
    }
    done
}

/// Whether the table `name` exists (in the connection's schema).
async fn exists(client: &Client, name: &str) -> Result<bool, tokio_postgres::Error> {
    let found: Option<String> = client
        .query_one("SELECT to_regclass($1)::text", &[&name])
        .await?
        .get(0);
    Ok(found.is_some())
}

/// Creates the tables if they are missing and checks the layout's version.
pub(crate) async fn ensure(client: &Client, health: &Health, schema: Option<&str>) -> Result<()> {
    let failed = |e: tokio_postgres::Error| health.failed("schema set-up", &e);
    if let Some(schema) = schema {
        // A name checked by `Target::parse`: lower-case letters, digits and _.
        locked_ddl(client, &format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
            .await
            .map_err(failed)?;
    }
    if !exists(client, "avvik_schema").await.map_err(failed)? {
        let empty = hex::encode(ChainTip::EMPTY.hash);
        let first = format!(
            "{CREATE}
INSERT INTO avvik_schema (id, version) VALUES (1, {SCHEMA_VERSION}) ON CONFLICT DO NOTHING;
INSERT INTO avvik_head (id, seq, hash, at_micros) VALUES (1, 0, '\\x{empty}', 0) ON CONFLICT DO NOTHING;"
        );
        locked_ddl(client, &first).await.map_err(failed)?;
    }
    let version: i32 = client
        .query_one("SELECT version FROM avvik_schema WHERE id = 1", &[])
        .await
        .map_err(failed)?
        .get(0);
    if version != SCHEMA_VERSION {
        return Err(StoreError::Storage(format!(
            "the PostgreSQL event tables have layout version {version}; this avvik reads version {SCHEMA_VERSION}"
        )));
    }
    if !exists(client, "avvik_files").await.map_err(failed)? {
        locked_ddl(client, CREATE_SIDE).await.map_err(failed)?;
    }
    Ok(())
}

/// The head row as a tip; `lock` takes it `FOR UPDATE` (inside a transaction).
pub(crate) async fn read_head(client: &Client, lock: bool) -> Result<ChainTip, HeadError> {
    let sql = if lock {
        "SELECT seq, hash, at_micros FROM avvik_head WHERE id = 1 FOR UPDATE"
    } else {
        "SELECT seq, hash, at_micros FROM avvik_head WHERE id = 1"
    };
    let row = client.query_typed_one(sql, &[]).await?;
    let hash: &[u8] = row.get(1);
    Ok(ChainTip {
        seq: row.get::<_, i64>(0) as u64,
        hash: hash.try_into().map_err(|_| HeadError::Malformed)?,
        at_micros: row.get(2),
    })
}

/// Why the head could not be read.
#[derive(Debug)]
pub(crate) enum HeadError {
    Client(tokio_postgres::Error),
    /// The stored hash is not 32 bytes: the row was changed outside the store.
    Malformed,
}

impl From<tokio_postgres::Error> for HeadError {
    fn from(e: tokio_postgres::Error) -> Self {
        HeadError::Client(e)
    }
}

impl HeadError {
    pub(crate) fn into_store(self, health: &Health) -> StoreError {
        match self {
            HeadError::Client(e) => health.failed("head", &e),
            HeadError::Malformed => StoreError::Corrupt {
                seq: 0,
                reason: "the head row's hash is not 32 bytes".into(),
            },
        }
    }
}

/// The staged rows of one commit, column by column, for one `INSERT … SELECT unnest(…)`.
#[derive(Default)]
pub(crate) struct Rows {
    pub(crate) seq: Vec<i64>,
    pub(crate) id: Vec<uuid::Uuid>,
    pub(crate) stream: Vec<uuid::Uuid>,
    pub(crate) version: Vec<i32>,
    pub(crate) bytes: Vec<Vec<u8>>,
}

impl Rows {
    pub(crate) fn push(&mut self, rec: &crate::record::RecordedEvent, bytes: Vec<u8>) {
        self.seq.push(rec.seq as i64);
        self.id.push(rec.id);
        self.stream.push(rec.stream);
        self.version.push(rec.version as i32);
        self.bytes.push(bytes);
    }

    pub(crate) fn len(&self) -> usize {
        self.seq.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.seq.is_empty()
    }
}

/// Inserts `rows` in one statement.
pub(crate) async fn insert_rows(
    client: &Client,
    rows: &Rows,
) -> Result<u64, tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    client
        .execute_typed(
            "INSERT INTO avvik_events (seq, id, stream, version, bytes) \
             SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::uuid[], $4::integer[], $5::bytea[])",
            &[
                (&rows.seq, Type::INT8_ARRAY),
                (&rows.id, Type::UUID_ARRAY),
                (&rows.stream, Type::UUID_ARRAY),
                (&rows.version, Type::INT4_ARRAY),
                (&rows.bytes, Type::BYTEA_ARRAY),
            ],
        )
        .await
}

/// Sets counters in one statement.
pub(crate) async fn upsert_counters(
    client: &Client,
    counters: &[(String, u64)],
) -> Result<u64, tokio_postgres::Error> {
    if counters.is_empty() {
        return Ok(0);
    }
    let names: Vec<&str> = counters.iter().map(|(n, _)| n.as_str()).collect();
    let values: Vec<i64> = counters.iter().map(|(_, v)| *v as i64).collect();
    client
        .execute_typed(
            "INSERT INTO avvik_counters (name, value) \
             SELECT * FROM unnest($1::text[], $2::bigint[]) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            &[(&names, Type::TEXT_ARRAY), (&values, Type::INT8_ARRAY)],
        )
        .await
}

/// Moves the head row to `tip` and notifies other processes of its seq (delivered at
/// COMMIT).
pub(crate) async fn set_head(
    client: &Client,
    tip: &ChainTip,
    channel: &str,
) -> Result<(), tokio_postgres::Error> {
    let seq = tip.seq as i64;
    let hash = tip.hash.as_slice();
    let head: [Param; 3] = [
        (&seq, Type::INT8),
        (&hash, Type::BYTEA),
        (&tip.at_micros, Type::INT8),
    ];
    let update = client.execute_typed(
        "UPDATE avvik_head SET seq = $1, hash = $2, at_micros = $3 WHERE id = 1",
        &head,
    );
    let payload = tip.seq.to_string();
    let notice: [Param; 2] = [(&channel, Type::TEXT), (&payload, Type::TEXT)];
    let notify = client.execute_typed("SELECT pg_notify($1, $2)", &notice);
    tokio::try_join!(update, notify)?;
    Ok(())
}
