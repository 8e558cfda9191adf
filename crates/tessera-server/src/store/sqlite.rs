//! The embedded default: one SQLite file in the data directory.
//!
//! WAL mode, so readers never wait for the writer; `synchronous=FULL`, so an
//! acknowledged change survives power loss. Writes go through a pool of one
//! connection: SQLite has one writer anyway, and a single writer connection
//! can never hit `SQLITE_BUSY` upgrading a read transaction.

use std::path::Path;
use std::time::Duration as StdDuration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tessera_protocol::wire::EventView;
use tessera_protocol::{LicenseId, Timestamp, TokenHash};

use super::rows::{
    CustomerRow, EventRow, InstanceRow, LicenseRow, PolicyRow, collect, features_json, i64_of,
    json_text, license_select, policy_columns,
};
use super::sql::impl_license_store;
use super::{AdminKeyRecord, ChangeNotice, JobLock};
use crate::error::{Error, Result};
use crate::model::{
    Customer, EventFilter, Instance, InstanceSeen, License, LicenseChange, LicenseFilter,
    LicenseSearch, NewEvent, NewLicense, NewPolicy, Overview, Policy, Session,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// SQLite storage.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    replica: String,
}

impl SqliteStore {
    const BACKEND: &'static str = "sqlite";

    /// Open (creating if missing) the database file and apply migrations.
    /// `replica` names this process in the replicas table.
    ///
    /// # Errors
    /// When the file cannot be opened or a migration fails.
    pub async fn open(path: &Path, replica: String) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(StdDuration::from_secs(10));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        MIGRATOR.run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self {
            writer,
            reader,
            replica,
        })
    }

    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    fn replica(&self) -> &str {
        &self.replica
    }

    /// One process owns the file: nobody else to tell.
    #[allow(clippy::unused_async)]
    async fn notify_change(_: &mut sqlx::SqliteConnection, _: &LicenseId, _: u64) -> Result<()> {
        Ok(())
    }

    /// One writer connection: events already commit in `seq` order.
    #[allow(clippy::unused_async)]
    async fn order_events(_: &mut sqlx::SqliteConnection) -> Result<()> {
        Ok(())
    }

    /// No stream survives a restart, and no other process shares the file.
    async fn startup_cleanup_impl(&self) -> Result<()> {
        sqlx::query(
            "UPDATE instances SET stream_connected = FALSE, stream_replica = NULL \
             WHERE stream_connected",
        )
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// The data directory's file lock already makes this process the only one.
    #[allow(clippy::unused_async)]
    async fn try_job_lock_impl(&self, _: &str) -> Result<Option<JobLock>> {
        Ok(Some(JobLock::local()))
    }

    fn changes_impl(&self) -> Option<tokio::sync::mpsc::Receiver<ChangeNotice>> {
        None
    }

    async fn close_impl(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

impl_license_store!(SqliteStore, sqlx::SqliteConnection);
