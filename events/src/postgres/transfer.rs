//! Walks over the whole log: `verify` in one snapshot, and import into an empty database in
//! one transaction. (Export needs nothing of PostgreSQL: it is the trait's default over
//! `for_each_raw`.)

use std::sync::Arc;

use tokio_postgres::types::Type;
use tokio_postgres::Client;

use super::schema::{self, Rows};
use super::{PostgresEventStore, PostgresOptions, CHUNK};
use crate::store::rules;
use crate::store::{CounterOf, EventStore, Head, Result, StoreError};
use crate::verify::{ChainChecker, VerifyReport};

/// Records per statement while importing (memory does not grow with the export).
const IMPORT_CHUNK: usize = 5_000;

impl PostgresEventStore {
    /// Connects to the database at `url`, which must hold no records, fills it from an
    /// NDJSON export ([`EventStore::import`]) and disconnects. The records keep their exact
    /// bytes, so the head hash is the source's. Returns the new head.
    pub fn import(
        url: &str,
        opts: PostgresOptions,
        input: &mut dyn std::io::BufRead,
        counter_of: &CounterOf,
    ) -> Result<Head> {
        let store = Self::connect(url, opts)?;
        let head = EventStore::import(&store, input, counter_of)?;
        drop(store);
        Ok(head)
    }
}

/// Runs `f` against `client` on the store's runtime and waits (see the module docs of
/// [`super`]).
fn on<T, F, Fut>(
    store: &PostgresEventStore,
    client: &Arc<Client>,
    what: &'static str,
    f: F,
) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(Arc<Client>) -> Fut,
    Fut: std::future::Future<Output = Result<T, tokio_postgres::Error>> + Send + 'static,
{
    let shared = store.shared.clone();
    let fut = f(client.clone());
    store.blocking(what, async move {
        fut.await.map_err(|e| shared.health.failed(what, &e))
    })
}

/// Walks the whole chain in one snapshot (`REPEATABLE READ`), so commits made meanwhile,
/// by this process or another, are neither counted nor mistaken for damage.
pub(super) fn verify(store: &PostgresEventStore) -> Result<VerifyReport> {
    let published = store.head();
    let shared = store.shared.clone();
    let client = store.blocking("verify", async move {
        let reader = shared.reader().await?;
        reader
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(|e| shared.health.failed("verify", &e))?;
        Ok(reader.into_inner())
    })?;
    let client = Arc::new(client);
    let walked = walk(store, &client);
    let ended = on(store, &client, "verify", |c| async move {
        c.batch_execute("COMMIT").await
    });
    if let (Ok(()), Ok(c)) = (&ended, Arc::try_unwrap(client)) {
        store.shared.give_back(c);
    }
    let (checker, tip) = walked?;
    let mut report = checker.finish(Some((tip.seq, hex::encode(tip.hash))));
    if tip.seq < published.seq && report.ok {
        // The head row fell behind the head this store committed: it was altered.
        report.ok = false;
        report.first_bad_seq = Some(tip.seq + 1);
        report.reason = Some(format!(
            "the stored head row says {}, this store committed up to {}",
            tip.seq, published.seq
        ));
    }
    Ok(report)
}

fn walk(
    store: &PostgresEventStore,
    client: &Arc<Client>,
) -> Result<(ChainChecker, rules::ChainTip)> {
    let shared = store.shared.clone();
    let c = client.clone();
    let tip = store.blocking("verify", async move {
        schema::read_head(&c, false)
            .await
            .map_err(|e| e.into_store(&shared.health))
    })?;
    let mut checker = ChainChecker::new();
    let mut next: i64 = 1;
    loop {
        let rows = on(store, client, "verify", move |c| async move {
            c.query_typed(
                "SELECT seq, bytes FROM avvik_events WHERE seq >= $1 ORDER BY seq LIMIT $2",
                &[(&next, Type::INT8), (&(CHUNK as i64), Type::INT8)],
            )
            .await
        })?;
        for row in &rows {
            let seq: i64 = row.get(0);
            if checker.check_keyed(seq as u64, row.get(1)).is_err() {
                return Ok((checker, tip));
            }
            next = seq + 1;
        }
        if rows.len() < CHUNK {
            return Ok((checker, tip));
        }
    }
}

/// The trait's `import`: one transaction on a connection of its own, holding the head
/// row's lock throughout, so no append (of this process or another) interleaves. A
/// refused export rolls it all back: the database stays empty.
pub(super) fn import(
    store: &PostgresEventStore,
    input: &mut dyn std::io::BufRead,
    counter_of: &CounterOf,
) -> Result<Head> {
    let shared = store.shared.clone();
    let client =
        Arc::new(store.blocking("import", async move { shared.target.connect(None).await })?);
    let empty = on(store, &client, "import", |c| async move {
        c.batch_execute("BEGIN").await?;
        let head = c
            .query_typed_one("SELECT seq FROM avvik_head WHERE id = 1 FOR UPDATE", &[])
            .await?;
        let any = c
            .query_typed_one("SELECT EXISTS (SELECT 1 FROM avvik_events)", &[])
            .await?;
        Ok(head.get::<_, i64>(0) == 0 && !any.get::<_, bool>(0))
    });
    let rollback = || {
        let _ = on(store, &client, "import", |c| async move {
            c.batch_execute("ROLLBACK").await
        });
    };
    match empty {
        Ok(true) => {}
        Ok(false) => {
            rollback();
            return Err(rules::import_target_not_empty());
        }
        Err(e) => {
            rollback();
            return Err(e);
        }
    }
    let mut rows = Rows::default();
    let walked = rules::read_export(input, counter_of, &mut |rec, bytes| {
        rows.push(rec, bytes.to_vec());
        if rows.len() >= IMPORT_CHUNK {
            let chunk = std::mem::take(&mut rows);
            on(store, &client, "import", |c| async move {
                schema::insert_rows(&c, &chunk).await
            })?;
        }
        Ok(())
    });
    let log = match walked {
        Ok(log) => log,
        Err(e) => {
            rollback();
            return Err(e);
        }
    };
    let counters: Vec<(String, u64)> = log.counters.into_iter().collect();
    let tip = log.tip;
    let channel = store.shared.target.channel.clone();
    let committed = on(store, &client, "import", move |c| async move {
        schema::insert_rows(&c, &rows).await?;
        schema::upsert_counters(&c, &counters).await?;
        schema::set_head(&c, &tip, &channel).await?;
        c.batch_execute("COMMIT").await
    });
    if let Err(e) = committed {
        rollback();
        return Err(match e {
            StoreError::Storage(m) => {
                StoreError::Storage(format!("the import was not committed: {m}"))
            }
            other => other,
        });
    }
    store.shared.publish(tip);
    Ok(tip.to_head())
}
