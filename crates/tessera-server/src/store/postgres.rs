//! PostgreSQL: the backend for any number of stateless replicas.
//!
//! PostgreSQL is the source of truth; each license change's transaction
//! sends `NOTIFY tessera_changes, '<license id>:<revision>'`, and every
//! replica `LISTEN`s, re-reads the license and feeds its own streams.
//! Notifications are lost while a listener is disconnected, so after every
//! reconnect the listener asks for a full resync. Jobs that must run once
//! across replicas take a session advisory lock.

use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::{Any, AnyConnection, AnyPool, ConnectOptions};
use tessera_protocol::LicenseId;
use tokio::sync::mpsc;

use super::{Backend, ChangeNotice, HeldLock, JobLock, Store};
use crate::error::Result;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The `LISTEN`/`NOTIFY` channel.
const CHANNEL: &str = "tessera_changes";
/// Distinguishes Tessera's advisory locks from other users of the database.
const LOCK_NAMESPACE: i64 = 0x7E55_E7A0_0000_0000;

/// PostgreSQL's differences: other replicas share the database.
#[derive(Debug)]
struct Postgres {
    /// The listener's pool (native: `LISTEN` is not in the `Any` driver).
    native: PgPool,
    changes: Mutex<Option<mpsc::Receiver<ChangeNotice>>>,
    listener: tokio::task::JoinHandle<()>,
}

/// The database URL without its password, for the banner and logs.
#[must_use]
pub fn redacted(url: &str) -> String {
    match PgConnectOptions::from_str(url) {
        Ok(o) => format!(
            "postgres://{}@{}:{}/{}",
            o.get_username(),
            o.get_host(),
            o.get_port(),
            o.get_database().unwrap_or("")
        ),
        Err(_) => "postgres://…".into(),
    }
}

fn job_key(job: &str) -> i64 {
    // FNV-1a: stable across processes and versions (unlike std's hasher).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in job.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    LOCK_NAMESPACE ^ i64::from_ne_bytes((h & 0x0000_FFFF_FFFF_FFFF).to_ne_bytes())
}

/// What is left off a notification is the suffix: `<license>:<revision>`
/// or `<license>:machines`.
const MACHINES: &str = "machines";

fn payload(notice: &ChangeNotice) -> Option<String> {
    match notice {
        ChangeNotice::Changed { license, revision } => Some(format!("{license}:{revision}")),
        ChangeNotice::Machines { license } => Some(format!("{license}:{MACHINES}")),
        ChangeNotice::Resync => None,
    }
}

fn parse_payload(payload: &str) -> Option<ChangeNotice> {
    let (license, suffix) = payload.rsplit_once(':')?;
    let license = LicenseId::parse(license).ok()?;
    if suffix == MACHINES {
        return Some(ChangeNotice::Machines { license });
    }
    Some(ChangeNotice::Changed {
        license,
        revision: suffix.parse().ok()?,
    })
}

async fn listen(pool: PgPool, tx: mpsc::Sender<ChangeNotice>) {
    let mut backoff = StdDuration::from_millis(200);
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the change listener; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(StdDuration::from_secs(10));
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            tracing::warn!(error = %e, "cannot LISTEN; retrying");
            tokio::time::sleep(backoff).await;
            continue;
        }
        backoff = StdDuration::from_millis(200);
        // Whatever happened while not listening is unknown: resync.
        if tx.send(ChangeNotice::Resync).await.is_err() {
            return;
        }
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => {
                    if let Some(notice) = parse_payload(n.payload())
                        && tx.send(notice).await.is_err()
                    {
                        return;
                    }
                }
                // The connection was lost; the listener reconnects on the
                // next call, and what was sent meanwhile is gone.
                Ok(None) => {
                    tracing::info!("change listener reconnecting");
                    if listener.listen(CHANNEL).await.is_err() {
                        break;
                    }
                    if tx.send(ChangeNotice::Resync).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "change listener failed; reconnecting");
                    break;
                }
            }
        }
    }
}

/// A session advisory lock, held by its connection.
struct Advisory {
    conn: Option<PoolConnection<Any>>,
    key: i64,
}

impl HeldLock for Advisory {
    fn release(mut self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let Some(mut conn) = self.conn.take() else {
                return;
            };
            let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(self.key)
                .execute(&mut *conn)
                .await;
            if unlocked.is_err() {
                // Closing the session releases every lock it holds.
                drop(conn.detach());
            }
        })
    }
}

impl Drop for Advisory {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Never hand a connection holding a lock back to the pool.
            drop(conn.detach());
        }
    }
}

#[async_trait]
impl Backend for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn json_rows(&self) -> &'static str {
        "jsonb_array_elements($1::jsonb)"
    }

    async fn notify(&self, tx: &mut AnyConnection, notice: &ChangeNotice) -> Result<()> {
        let Some(payload) = payload(notice) else {
            return Ok(());
        };
        // Delivered to listeners only if (and when) the transaction commits.
        // (`pg_notify` returns `void`, a type the `Any` driver cannot
        // carry: select a constant from it.)
        sqlx::query("SELECT 1 FROM pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(payload)
            .execute(tx)
            .await?;
        Ok(())
    }

    async fn database_now(&self, pool: &AnyPool) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        // Milliseconds as a BIGINT: the `Any` driver has no time types.
        let (ms,): (i64,) =
            sqlx::query_as("SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)")
                .fetch_one(pool)
                .await?;
        Ok(chrono::DateTime::from_timestamp_millis(ms))
    }

    /// Events get their `seq` from an identity column at INSERT, but become
    /// visible at COMMIT: two writers could commit out of order, and a
    /// follower reading `seq > N` would step over the later-committing one.
    /// A transaction-scoped advisory lock taken before the INSERT holds
    /// until COMMIT, so events are numbered and committed one writer at a
    /// time (the lock covers only the event and its outbox rows, at the
    /// end of the change's transaction).
    async fn order_events(&self, tx: &mut AnyConnection) -> Result<()> {
        sqlx::query("SELECT 1 FROM pg_advisory_xact_lock($1)")
            .bind(EVENT_ORDER_LOCK)
            .execute(tx)
            .await?;
        Ok(())
    }

    async fn lock_license(&self, tx: &mut AnyConnection, id: &LicenseId) -> Result<()> {
        sqlx::query("SELECT id FROM licenses WHERE id = $1 FOR UPDATE")
            .bind(id.as_str())
            .execute(tx)
            .await?;
        Ok(())
    }

    /// Other replicas' streams are theirs: the reaper handles dead ones.
    async fn startup_cleanup(&self, _: &AnyPool) -> Result<()> {
        Ok(())
    }

    async fn try_job_lock(&self, pool: &AnyPool, job: &str) -> Result<Option<JobLock>> {
        let key = job_key(job);
        let mut conn = pool.acquire().await?;
        let (locked,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut *conn)
            .await?;
        Ok(locked.then(|| {
            JobLock::held(Box::new(Advisory {
                conn: Some(conn),
                key,
            }))
        }))
    }

    fn changes(&self) -> Option<mpsc::Receiver<ChangeNotice>> {
        self.changes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    async fn close(&self) {
        self.listener.abort();
        self.native.close().await;
    }
}

impl Store {
    /// Connect to PostgreSQL, apply migrations, start listening for other
    /// replicas' changes.
    ///
    /// # Errors
    /// When the database cannot be reached or a migration fails.
    pub async fn postgres(url: &str, replica: String) -> Result<Self> {
        sqlx::any::install_default_drivers();
        // Named per replica, so operators (and tests) can tell connections apart.
        let name = format!("tessera {replica}");
        let options = PgConnectOptions::from_str(url)?.application_name(&name);
        // The listener and the migrations need the native driver.
        let native = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(StdDuration::from_secs(10))
            .connect_with(options)
            .await?;
        MIGRATOR.run(&native).await?;
        let mut any_url =
            url::Url::parse(url).map_err(|e| crate::Error::Config(format!("database URL: {e}")))?;
        any_url
            .query_pairs_mut()
            .append_pair("application_name", &name);
        let pool = AnyPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(StdDuration::from_secs(10))
            .connect_with(AnyConnectOptions::from_url(&any_url)?)
            .await?;
        let (tx, rx) = mpsc::channel(1024);
        let listener = tokio::spawn(listen(native.clone(), tx));
        let backend = Postgres {
            native,
            changes: Mutex::new(Some(rx)),
            listener,
        };
        Ok(Self::new(pool.clone(), pool, replica, Box::new(backend)))
    }
}

/// The advisory lock key that orders event commits (in Tessera's
/// namespace; job keys take the low bits from a hash of the job name).
const EVENT_ORDER_LOCK: i64 = LOCK_NAMESPACE | 0x00FF_FFFF_FFFF_FFFF;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_and_lock_keys() {
        let id = "lic_01936b2e-7c3a-7def-8a12-0123456789ab";
        assert_eq!(
            parse_payload(&format!("{id}:42")),
            Some(ChangeNotice::Changed {
                license: LicenseId::parse(id).unwrap(),
                revision: 42
            })
        );
        let machines = ChangeNotice::Machines {
            license: LicenseId::parse(id).unwrap(),
        };
        assert_eq!(parse_payload(&payload(&machines).unwrap()), Some(machines));
        assert_eq!(payload(&ChangeNotice::Resync), None);
        assert_eq!(parse_payload("nonsense"), None);
        assert_eq!(parse_payload(&format!("{id}:lots")), None);
        assert_eq!(job_key("scheduler"), job_key("scheduler"));
        assert_ne!(job_key("scheduler"), job_key("reaper"));
        assert_eq!(
            redacted("postgres://u:secret@db.example:5433/lic"),
            "postgres://u@db.example:5433/lic"
        );
    }
}
