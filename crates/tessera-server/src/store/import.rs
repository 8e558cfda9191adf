//! Bulk import (§30): a batch per transaction, each of its statements
//! taking all of the batch's rows as one JSON array, the import's progress
//! in the same transaction.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use tessera_protocol::TokenHash;
use tessera_protocol::wire::ImportBatch;

use super::Store;
use super::rows::{features_json, i64_of};
use crate::error::{Error, Result};
use crate::licenses::import::Imported;
use crate::model::{NewEvent, Product};

// Why one JSON parameter rather than rows of `$n` placeholders: sqlx binds
// SQLite's parameters by looking each one's name up among the statement's
// (quadratic in a statement's parameters), and every statement is a round
// trip to the database's worker thread. Ten rows a statement (the limit
// that lookup allowed) made a 5,000-row batch about 1,000 statements of
// binding and waking; one statement per table per batch leaves the
// database's own work.

/// A license row as the bulk INSERT reads it (`value ->> 'field'`).
#[derive(Serialize)]
struct LicenseRow<'a> {
    id: &'a str,
    token_hash: &'a str,
    token_last4: &'a str,
    customer_id: Option<&'a str>,
    policy_id: &'a str,
    plan: &'a str,
    features: String,
    max_users: Option<u32>,
    trial: bool,
    valid_from: i64,
    expires_at: Option<i64>,
    state: &'a str,
    max_machines: Option<u32>,
    machine_mode: String,
    lease_ttl_secs: i64,
    max_borrow_secs: i64,
    fingerprint_match: String,
    entitlements: String,
    product_id: String,
    metadata: String,
}

/// Inserts the licenses of a JSON array (`$1`, rows of [`LicenseRow`]),
/// created and updated at `$2`; `{rows}` is the backend's
/// [`super::Backend::json_rows`]. Each element once into `r`: SQLite
/// converts `json_each`'s `value` to text each time it is named (22 times
/// a row: 16 % of an import's time).
const INSERT_LICENSES: &str = "WITH r AS MATERIALIZED (SELECT value AS v FROM {rows}) \
     INSERT INTO licenses (id, token_hash, token_last4, customer_id, \
     policy_id, plan, features, max_users, trial, valid_from, expires_at, state, created_at, \
     updated_at, max_machines, machine_mode, lease_ttl_secs, max_borrow_secs, fingerprint_match, \
     entitlements, product_id, metadata, revision) \
     SELECT v ->> 'id', v ->> 'token_hash', v ->> 'token_last4', \
     v ->> 'customer_id', v ->> 'policy_id', v ->> 'plan', v ->> 'features', \
     CAST(v ->> 'max_users' AS BIGINT), CAST(v ->> 'trial' AS BOOLEAN), \
     CAST(v ->> 'valid_from' AS BIGINT), CAST(v ->> 'expires_at' AS BIGINT), \
     v ->> 'state', $2, $2, CAST(v ->> 'max_machines' AS BIGINT), \
     v ->> 'machine_mode', CAST(v ->> 'lease_ttl_secs' AS BIGINT), \
     CAST(v ->> 'max_borrow_secs' AS BIGINT), v ->> 'fingerprint_match', \
     v ->> 'entitlements', v ->> 'product_id', v ->> 'metadata', 1 FROM r";

/// Inserts the customers of a JSON array (`$1`, `{id, name, email}`) not
/// there yet, created at `$2`. (`WHERE true`: SQLite's parser needs it
/// between a SELECT and ON CONFLICT.)
const INSERT_CUSTOMERS: &str = "INSERT INTO customers (id, name, email, created_at) \
     SELECT value ->> 'id', value ->> 'name', value ->> 'email', $2 FROM {rows} WHERE true \
     ON CONFLICT (name) DO NOTHING";

/// The customers named in a JSON array (`$1`, `{name}`): name and id.
const CUSTOMERS_NAMED: &str =
    "SELECT name, id FROM customers WHERE name IN (SELECT value ->> 'name' FROM {rows})";

/// The token hashes of a JSON array (`$1`, `{h}`) that belong to a license.
const KNOWN_HASHES: &str =
    "SELECT token_hash FROM licenses WHERE token_hash IN (SELECT value ->> 'h' FROM {rows})";

/// Rows as the JSON array parameter of a bulk statement.
fn json_param<T: Serialize>(rows: &[T]) -> Result<String> {
    serde_json::to_string(rows).map_err(|e| Error::Database(sqlx::Error::Encode(Box::new(e))))
}

impl Store {
    /// A bulk statement for this backend (`{rows}` filled in).
    fn bulk(&self, template: &str) -> sqlx::AssertSqlSafe<String> {
        sqlx::AssertSqlSafe(template.replace("{rows}", self.backend.json_rows()))
    }

    /// Which of `hashes` already belong to a license.
    pub async fn existing_token_hashes(&self, hashes: &[TokenHash]) -> Result<HashSet<TokenHash>> {
        #[derive(Serialize)]
        struct Hash<'a> {
            h: &'a str,
        }
        let json = json_param(
            &hashes
                .iter()
                .map(|h| Hash { h: h.as_str() })
                .collect::<Vec<_>>(),
        )?;
        // Not a prepared statement kept for reuse: PostgreSQL would keep a
        // generic plan made while the table was small (a sequential scan),
        // and an import grows it by a million rows.
        let rows: Vec<(String,)> = sqlx::query_as(self.bulk(KNOWN_HASHES))
            .persistent(false)
            .bind(json)
            .fetch_all(self.reader())
            .await?;
        rows.into_iter()
            .map(|(h,)| TokenHash::from_hex(&h).map_err(|e| Error::Corrupt(e.to_string())))
            .collect()
    }

    /// Where import `id` stands: the next line and how many imported.
    pub async fn import_progress(&self, id: &str) -> Result<(u64, u64)> {
        let row: Option<(i64, i64)> =
            sqlx::query_as("SELECT next_row, imported FROM imports WHERE id = $1")
                .bind(id)
                .fetch_optional(self.reader())
                .await?;
        Ok(row.map_or((1, 0), |(next, n)| {
            (
                u64::try_from(next).unwrap_or(1),
                u64::try_from(n).unwrap_or(0),
            )
        }))
    }

    /// Write a batch: its customers, its licenses, the import's progress
    /// and one audit event, in one transaction — unless the import is past
    /// this batch already (then nothing). The progress as it then stands.
    pub async fn import_licenses(
        &self,
        batch: &ImportBatch,
        licenses: &[Imported],
        event: NewEvent,
    ) -> Result<(u64, u64)> {
        let mut conn = self.writer().acquire().await?;
        self.backend.bulk_writes(&mut conn, true).await?;
        let written = self.import_batch(&mut conn, batch, licenses, event).await;
        // Back to normal whatever happened: the connection returns to the pool.
        self.backend.bulk_writes(&mut conn, false).await?;
        written
    }

    /// [`Store::import_licenses`] on the writer connection `conn`.
    async fn import_batch(
        &self,
        conn: &mut sqlx::AnyConnection,
        batch: &ImportBatch,
        licenses: &[Imported],
        event: NewEvent,
    ) -> Result<(u64, u64)> {
        use sqlx::Connection;
        let now = event.at.timestamp();
        let mut tx = conn.begin().await?;
        // One import batch at a time, in event order on every replica: two
        // runs of the same import cannot both write a batch.
        self.backend.order_events(&mut tx).await?;
        let done: Option<(i64, i64)> =
            sqlx::query_as("SELECT next_row, imported FROM imports WHERE id = $1")
                .bind(&batch.import)
                .fetch_optional(&mut *tx)
                .await?;
        let (next, imported) = done.map_or((1, 0), |(n, i)| {
            (u64::try_from(n).unwrap_or(1), u64::try_from(i).unwrap_or(0))
        });
        if next >= batch.next_row {
            return Ok((next, imported));
        }
        if done.is_some() && next != batch.first_row {
            return Err(Error::conflict(
                "import_out_of_order",
                format!(
                    "this import stands at line {next}; the batch starts at {}",
                    batch.first_row
                ),
            ));
        }
        let customers = self.import_customers(&mut tx, licenses, now).await?;
        let rows: Vec<LicenseRow<'_>> = licenses
            .iter()
            .map(|i| {
                let l = &i.license;
                let m = &l.machines;
                LicenseRow {
                    id: l.id.as_str(),
                    token_hash: l.token_hash.as_str(),
                    token_last4: &l.token_last4,
                    customer_id: customers.get(&l.customer).map(String::as_str),
                    policy_id: l.policy_id.as_str(),
                    plan: &l.plan,
                    features: features_json(&l.features),
                    max_users: l.max_users,
                    trial: l.trial,
                    valid_from: l.valid_from.timestamp(),
                    expires_at: l.expires_at.map(|t| t.timestamp()),
                    state: i.state.as_str(),
                    max_machines: m.max_machines,
                    machine_mode: m.mode.to_string(),
                    lease_ttl_secs: m.lease_ttl.num_seconds(),
                    max_borrow_secs: m.max_borrow.num_seconds(),
                    fingerprint_match: m.fingerprint_match.to_string(),
                    entitlements: serde_json::to_string(&l.entitlements)
                        .unwrap_or_else(|_| "{}".into()),
                    product_id: Product::id_of(&l.product),
                    metadata: serde_json::Value::Object(l.metadata.clone()).to_string(),
                }
            })
            .collect();
        sqlx::query(self.bulk(INSERT_LICENSES))
            .persistent(false)
            .bind(json_param(&rows)?)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(db) if db.is_unique_violation() => Error::conflict(
                    "duplicate_key",
                    "a key of this batch already belongs to a license (imported meanwhile?)",
                ),
                _ => Error::from(e),
            })?;
        let imported = imported + licenses.len() as u64;
        sqlx::query(
            "INSERT INTO imports (id, next_row, imported, started_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (id) DO UPDATE SET next_row = $2, imported = $3, updated_at = $4",
        )
        .bind(&batch.import)
        .bind(i64_of(batch.next_row))
        .bind(i64_of(imported))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        self.insert_event(&mut tx, None, None, &event).await?;
        tx.commit().await?;
        Ok((batch.next_row, imported))
    }

    /// The batch's customers, created when new: name → id.
    async fn import_customers(
        &self,
        tx: &mut sqlx::AnyConnection,
        licenses: &[Imported],
        now: i64,
    ) -> Result<HashMap<String, String>> {
        let mut new: HashMap<&str, (&str, Option<&str>)> = HashMap::new();
        for i in licenses {
            let l = &i.license;
            new.entry(l.customer.as_str())
                .or_insert((l.new_customer_id.as_str(), l.customer_email.as_deref()));
        }
        #[derive(Serialize)]
        struct Customer<'a> {
            id: &'a str,
            name: &'a str,
            email: Option<&'a str>,
        }
        let customers: Vec<Customer<'_>> = new
            .iter()
            .map(|(name, (id, email))| Customer {
                id,
                name,
                email: *email,
            })
            .collect();
        sqlx::query(self.bulk(INSERT_CUSTOMERS))
            .persistent(false)
            .bind(json_param(&customers)?)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        #[derive(Serialize)]
        struct Name<'a> {
            name: &'a str,
        }
        let names: Vec<Name<'_>> = new.keys().map(|name| Name { name }).collect();
        let ids: HashMap<String, String> = sqlx::query_as(self.bulk(CUSTOMERS_NAMED))
            .persistent(false)
            .bind(json_param(&names)?)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
        Ok(ids)
    }
}
