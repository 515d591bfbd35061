//! Files every process of an installation shares, in the table `avvik_files` beside the
//! log: what would otherwise sit in one machine's data directory and must be the same on
//! every node (the data keys' batches, the check that every node has the same secret).
//! Each call is one statement in its own transaction, committed (and so durable, with the
//! server's `synchronous_commit`) before it returns.

use std::sync::Arc;

use tokio_postgres::types::Type;

use super::Shared;
use crate::store::{Result, SharedFiles};

/// [`SharedFiles`] in PostgreSQL.
pub(crate) struct PgFiles {
    pub(crate) shared: Arc<Shared>,
}

impl SharedFiles for PgFiles {
    fn read(&self, kind: &str, name: &str) -> Result<Option<Vec<u8>>> {
        let (shared, kind, name) = (self.shared.clone(), kind.to_string(), name.to_string());
        self.shared.blocking("read a shared file", async move {
            let c = shared.reader().await?;
            let rows = c
                .query_typed(
                    "SELECT bytes FROM avvik_files WHERE kind = $1 AND name = $2",
                    &[(&kind, Type::TEXT), (&name, Type::TEXT)],
                )
                .await
                .map_err(|e| shared.health.failed("read a shared file", &e))?;
            Ok(rows.first().map(|r| r.get::<_, Vec<u8>>(0)))
        })
    }

    fn create(&self, kind: &str, name: &str, bytes: &[u8]) -> Result<bool> {
        let (shared, kind, name, bytes) = (
            self.shared.clone(),
            kind.to_string(),
            name.to_string(),
            bytes.to_vec(),
        );
        self.shared.blocking("write a shared file", async move {
            let c = shared.reader().await?;
            let n = c
                .execute_typed(
                    "INSERT INTO avvik_files (kind, name, bytes) VALUES ($1, $2, $3) \
                     ON CONFLICT DO NOTHING",
                    &[
                        (&kind, Type::TEXT),
                        (&name, Type::TEXT),
                        (&bytes, Type::BYTEA),
                    ],
                )
                .await
                .map_err(|e| shared.health.failed("write a shared file", &e))?;
            Ok(n == 1)
        })
    }

    fn write_at(&self, kind: &str, name: &str, offset: u64, bytes: &[u8]) -> Result<bool> {
        let (shared, kind, name, bytes) = (
            self.shared.clone(),
            kind.to_string(),
            name.to_string(),
            bytes.to_vec(),
        );
        let from = i32::try_from(offset)
            .ok()
            .and_then(|o| o.checked_add(1))
            .ok_or_else(|| crate::store::StoreError::InvalidAppend("offset too large".into()))?;
        let len = i32::try_from(bytes.len())
            .map_err(|_| crate::store::StoreError::InvalidAppend("write too large".into()))?;
        self.shared.blocking("overwrite a shared file", async move {
            let c = shared.reader().await?;
            let n = c
                .execute_typed(
                    "UPDATE avvik_files SET bytes = overlay(bytes PLACING $3 FROM $4 FOR $5) \
                     WHERE kind = $1 AND name = $2 AND length(bytes) >= $4 + $5 - 1",
                    &[
                        (&kind, Type::TEXT),
                        (&name, Type::TEXT),
                        (&bytes, Type::BYTEA),
                        (&from, Type::INT4),
                        (&len, Type::INT4),
                    ],
                )
                .await
                .map_err(|e| shared.health.failed("overwrite a shared file", &e))?;
            if n == 1 {
                // The row's earlier version stays in the table's pages until vacuumed;
                // vacuum now, so an overwritten key does not linger.
                vacuum(&c).await;
            }
            Ok(n == 1)
        })
    }

    fn list(&self, kind: &str) -> Result<Vec<String>> {
        let (shared, kind) = (self.shared.clone(), kind.to_string());
        self.shared.blocking("list shared files", async move {
            let c = shared.reader().await?;
            let rows = c
                .query_typed(
                    "SELECT name FROM avvik_files WHERE kind = $1 ORDER BY name",
                    &[(&kind, Type::TEXT)],
                )
                .await
                .map_err(|e| shared.health.failed("list shared files", &e))?;
            Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
        })
    }

    fn remove_prefix(&self, kind: &str, prefix: &str) -> Result<u64> {
        let (shared, kind, prefix) = (self.shared.clone(), kind.to_string(), prefix.to_string());
        self.shared.blocking("remove shared files", async move {
            let c = shared.reader().await?;
            let n = c
                .execute_typed(
                    "DELETE FROM avvik_files WHERE kind = $1 AND starts_with(name, $2)",
                    &[(&kind, Type::TEXT), (&prefix, Type::TEXT)],
                )
                .await
                .map_err(|e| shared.health.failed("remove shared files", &e))?;
            if n > 0 {
                vacuum(&c).await;
            }
            Ok(n)
        })
    }
}

/// Lets removed or overwritten rows' bytes go from the table's pages now (best effort:
/// the autovacuum gets there too).
async fn vacuum(c: &tokio_postgres::Client) {
    if let Err(e) = c.batch_execute("VACUUM avvik_files").await {
        tracing::warn!(error = %super::conn::error_text(&e), "vacuuming the shared files failed");
    }
}
