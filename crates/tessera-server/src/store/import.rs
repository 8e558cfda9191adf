//! Bulk import (§30): many licenses per statement, a batch per
//! transaction, the import's progress in the same transaction.

use std::collections::{HashMap, HashSet};

use tessera_protocol::TokenHash;
use tessera_protocol::wire::ImportBatch;

use super::Store;
use super::rows::{features_json, i64_of};
use crate::error::{Error, Result};
use crate::licenses::import::Imported;
use crate::model::{NewEvent, Product};

/// Rows per INSERT statement. Few hundred parameters a statement: sqlx
/// binds SQLite's `$n` parameters by looking each one's name up among the
/// statement's, so a statement's binding cost grows with the square of its
/// parameters (at 500 rows × 22 parameters, that lookup was 58 % of an import's
/// time; at 25 rows, 14 %).
const ROWS_PER_STATEMENT: usize = 10;
/// Parameters per `IN (…)` lookup (the same reason).
const KEYS_PER_LOOKUP: usize = 100;

/// `($1, $2, …), (…)` for `rows` rows of `columns` parameters.
fn placeholders(rows: usize, columns: usize, literal_tail: &str) -> String {
    let mut sql = String::with_capacity(rows * columns * 5);
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..columns {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(r * columns + c + 1).to_string());
        }
        sql.push_str(literal_tail);
        sql.push(')');
    }
    sql
}

/// `$1, $2, …, $n`.
fn list(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    /// Which of `hashes` already belong to a license.
    pub async fn existing_token_hashes(&self, hashes: &[TokenHash]) -> Result<HashSet<TokenHash>> {
        let mut found = HashSet::new();
        for chunk in hashes.chunks(KEYS_PER_LOOKUP) {
            let sql = format!(
                "SELECT token_hash FROM licenses WHERE token_hash IN ({})",
                list(chunk.len())
            );
            // Not a prepared statement kept for reuse: PostgreSQL would
            // keep a generic plan made while the table was small (a
            // sequential scan), and an import grows it by a million rows.
            let mut q = sqlx::query_as::<_, (String,)>(sqlx::AssertSqlSafe(sql)).persistent(false);
            for h in chunk {
                q = q.bind(h.as_str());
            }
            for (hash,) in q.fetch_all(self.reader()).await? {
                found
                    .insert(TokenHash::from_hex(&hash).map_err(|e| Error::Corrupt(e.to_string()))?);
            }
        }
        Ok(found)
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
        let now = event.at.timestamp();
        let mut tx = self.writer().begin().await?;
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
        for chunk in licenses.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO licenses (id, token_hash, token_last4, customer_id, policy_id, plan, \
                 features, max_users, trial, valid_from, expires_at, state, created_at, \
                 updated_at, max_machines, machine_mode, lease_ttl_secs, max_borrow_secs, \
                 fingerprint_match, entitlements, product_id, metadata, revision) VALUES {}",
                placeholders(chunk.len(), 22, ", 1")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for i in chunk {
                let l = &i.license;
                let m = &l.machines;
                q = q
                    .bind(l.id.as_str())
                    .bind(l.token_hash.as_str())
                    .bind(&l.token_last4)
                    .bind(customers.get(&l.customer).cloned())
                    .bind(l.policy_id.as_str())
                    .bind(&l.plan)
                    .bind(features_json(&l.features))
                    .bind(l.max_users.map(i64::from))
                    .bind(l.trial)
                    .bind(l.valid_from.timestamp())
                    .bind(l.expires_at.map(|t| t.timestamp()))
                    .bind(i.state.as_str())
                    .bind(now)
                    .bind(now)
                    .bind(m.max_machines.map(i64::from))
                    .bind(m.mode.to_string())
                    .bind(m.lease_ttl.num_seconds())
                    .bind(m.max_borrow.num_seconds())
                    .bind(m.fingerprint_match.to_string())
                    .bind(serde_json::to_string(&l.entitlements).unwrap_or_else(|_| "{}".into()))
                    .bind(Product::id_of(&l.product))
                    .bind(serde_json::Value::Object(l.metadata.clone()).to_string());
            }
            q.execute(&mut *tx).await.map_err(|e| match &e {
                sqlx::Error::Database(db) if db.is_unique_violation() => Error::conflict(
                    "duplicate_key",
                    "a key of this batch already belongs to a license (imported meanwhile?)",
                ),
                _ => Error::from(e),
            })?;
        }
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
        let names: Vec<&str> = new.keys().copied().collect();
        for chunk in names.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO customers (id, name, email, created_at) VALUES {} \
                 ON CONFLICT (name) DO NOTHING",
                placeholders(chunk.len(), 4, "")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for name in chunk {
                let (id, email) = new[name];
                q = q.bind(id).bind(*name).bind(email).bind(now);
            }
            q.execute(&mut *tx).await?;
        }
        let mut ids = HashMap::with_capacity(names.len());
        for chunk in names.chunks(KEYS_PER_LOOKUP) {
            let sql = format!(
                "SELECT name, id FROM customers WHERE name IN ({})",
                list(chunk.len())
            );
            let mut q =
                sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(sql)).persistent(false);
            for name in chunk {
                q = q.bind(*name);
            }
            ids.extend(q.fetch_all(&mut *tx).await?);
        }
        Ok(ids)
    }
}
