//! The embedded default: one SQLite file in the data directory.
//!
//! WAL mode, so readers never wait for the writer; `synchronous=FULL`, so an
//! acknowledged change survives power loss. Writes go through a pool of one
//! connection: SQLite has one writer anyway, and a single writer connection
//! can never hit `SQLITE_BUSY` upgrading a read transaction.

use std::path::Path;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AnyConnection, AnyPool, ConnectOptions};
use tessera_protocol::LicenseId;

use super::{Backend, ChangeNotice, JobLock, Store};
use crate::error::Result;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Set on every connection of the `Any` pools (its options carry only
/// what a URL can say: the file and the mode).
const PRAGMAS: [&str; 3] = [
    "PRAGMA foreign_keys = ON",
    "PRAGMA synchronous = FULL",
    "PRAGMA busy_timeout = 10000",
];

/// SQLite's differences: one process owns the file.
#[derive(Debug)]
struct Sqlite;

#[async_trait]
impl Backend for Sqlite {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn json_rows(&self) -> &'static str {
        "json_each($1)"
    }

    /// One process owns the file: nobody else to tell.
    async fn notify(&self, _: &mut AnyConnection, _: &ChangeNotice) -> Result<()> {
        Ok(())
    }

    /// One process: its clock is the only one.
    async fn database_now(&self, _: &AnyPool) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        Ok(None)
    }

    /// One writer connection: events already commit in `seq` order.
    async fn order_events(&self, _: &mut AnyConnection) -> Result<()> {
        Ok(())
    }

    async fn lock_license(&self, _: &mut AnyConnection, _: &LicenseId) -> Result<()> {
        Ok(())
    }

    /// No stream survives a restart, and no other process shares the file.
    async fn startup_cleanup(&self, writer: &AnyPool) -> Result<()> {
        sqlx::query(
            "UPDATE instances SET stream_connected = FALSE, stream_replica = NULL \
             WHERE stream_connected",
        )
        .execute(writer)
        .await?;
        Ok(())
    }

    /// The data directory's file lock already makes this process the only one.
    async fn try_job_lock(&self, _: &AnyPool, _: &str) -> Result<Option<JobLock>> {
        Ok(Some(JobLock::local()))
    }

    fn changes(&self) -> Option<tokio::sync::mpsc::Receiver<ChangeNotice>> {
        None
    }

    async fn bulk_writes(&self, conn: &mut AnyConnection, on: bool) -> Result<()> {
        let pragmas = if on {
            [BULK_CHECKPOINT, BULK_CACHE]
        } else {
            [NORMAL_CHECKPOINT, WRITER_CACHE]
        };
        for pragma in pragmas {
            sqlx::query(pragma).execute(&mut *conn).await?;
        }
        Ok(())
    }

    async fn close(&self) {}
}

/// The writer's page cache: 64 MiB (SQLite's default is 2 MiB). Inserts
/// into the random-ordered token-hash index touch pages all over it; with
/// a million licenses the default cache turned an import into page reads.
/// Memory is taken only as pages are used.
const WRITER_CACHE: &str = "PRAGMA cache_size = -65536";

/// The writer's page cache while it writes an import's batch: 256 MiB. A
/// batch of 50,000 rows dirties some 18,000 pages of the token-hash index
/// alone (72 MiB); past the cache SQLite spills dirty pages to the log in
/// the middle of the transaction and reads them back. Set back to
/// [`WRITER_CACHE`] after each batch, which frees the pages above it.
const BULK_CACHE: &str = "PRAGMA cache_size = -262144";

/// The writer's temporary files in memory: a statement that inserts many
/// rows keeps a statement journal (the pages it changed, to undo it alone
/// on a constraint error), a temporary file by default; on an import of a
/// million licenses its writes were 12 % of the time.
const WRITER_TEMP: &str = "PRAGMA temp_store = MEMORY";

/// Checkpoints during bulk writes: every 50,000 pages (~200 MiB) of log
/// instead of SQLite's 1,000. An import's batch rewrites pages of the
/// random-ordered token-hash index all over the file; checkpointing every
/// 1,000 pages copied each back into the database after every batch,
/// where a longer log copies a page once for many batches (a million-row
/// import: 12,800 → 15,600 rows/s). Outside imports the default stands, so
/// the log stays small for a restart after a crash to read.
const BULK_CHECKPOINT: &str = "PRAGMA wal_autocheckpoint = 50000";
const NORMAL_CHECKPOINT: &str = "PRAGMA wal_autocheckpoint = 1000";

/// A pool of `max` connections with `options`, each set up by [`PRAGMAS`]
/// (and `extra`).
async fn pool(
    options: &SqliteConnectOptions,
    max: u32,
    extra: &'static [&'static str],
) -> Result<AnyPool> {
    let url = AnyConnectOptions::from_url(&options.to_url_lossy())?;
    Ok(AnyPoolOptions::new()
        .max_connections(max)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                for pragma in PRAGMAS.iter().chain(extra) {
                    sqlx::query(*pragma).execute(&mut *conn).await?;
                }
                Ok(())
            })
        })
        .connect_with(url)
        .await?)
}

impl Store {
    /// Open (creating if missing) the SQLite database file and apply
    /// migrations. `replica` names this process in the replicas table.
    ///
    /// # Errors
    /// When the file cannot be opened or a migration fails.
    pub async fn sqlite(path: &Path, replica: String) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(StdDuration::from_secs(10));
        // Migrations (and WAL mode, which the file keeps) on a native
        // connection; the `Any` pools open after.
        let migrations = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        MIGRATOR.run(&migrations).await?;
        migrations.close().await;
        let writer = pool(&options, 1, &[WRITER_CACHE, WRITER_TEMP]).await?;
        let reader = pool(&options.read_only(true), 4, &[]).await?;
        Ok(Self::new(writer, reader, replica, Box::new(Sqlite)))
    }
}
