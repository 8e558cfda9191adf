//! Licenses: insert, read, search, and the optimistic change.

use tessera_protocol::wire::LicenseState;
use tessera_protocol::{LicenseId, Timestamp, TokenHash};

use super::quotas::fill_quota_used;
use super::rows::{
    LicenseRow, bind_machines, features_json, i64_of, license_columns, license_from, license_select,
};
use super::{ChangeNotice, Store};
use crate::error::Result;
use crate::model::{
    License, LicenseChange, LicensePage, LicenseQuery, NewEvent, NewLicense, Overview,
};

/// The filters of a [`LicenseQuery`], as `$1`…`$8`. LIKE wildcards typed
/// by the user are taken literally (escaped), so `lic_…` and `50%` mean
/// what they say.
macro_rules! license_where {
    () => {
        concat!(
            "WHERE ($1 IS NULL OR LOWER(c.name) LIKE $1 ESCAPE '\\' \
                OR LOWER(l.plan) LIKE $1 ESCAPE '\\' \
                OR l.id LIKE $1 ESCAPE '\\' OR l.token_last4 = $2) \
         AND ($3 IS NULL OR c.name = $3) \
         AND ($4 IS NULL OR l.state = $4) \
         AND ($5 IS NULL OR (l.expires_at IS NOT NULL AND l.expires_at <= $5 \
                             AND l.expires_at > $6)) \
         AND ($7 IS NULL OR l.id > $7) \
         AND ",
            in_products!("$8"),
            " "
        )
    };
}

/// `l` (a license row) is of the products in the parameter: a
/// comma-separated list of names, or NULL for every product.
macro_rules! in_products {
    ($p:literal) => {
        concat!(
            "(",
            $p,
            " IS NULL OR ',' || ",
            $p,
            " || ',' LIKE '%,' || SUBSTR(l.product_id, 5) || ',%')"
        )
    };
}

/// A page of licenses after a cursor, oldest first.
const LICENSES_AFTER: &str = concat!(
    license_select!(),
    license_where!(),
    "ORDER BY l.id LIMIT $9"
);

/// A page of licenses at an offset, newest first.
const LICENSES_AT_OFFSET: &str = concat!(
    license_select!(),
    license_where!(),
    "ORDER BY l.created_at DESC, l.id DESC LIMIT $9 OFFSET $10"
);

/// License `id` as `tx` sees it: read back after writing it, before commit.
pub(super) async fn license_in(tx: &mut sqlx::AnyConnection, id: &LicenseId) -> Result<License> {
    let row: LicenseRow = sqlx::query_as(concat!(license_select!(), "WHERE l.id = $1"))
        .bind(id.as_str())
        .fetch_one(&mut *tx)
        .await?;
    let mut license = License::try_from(row)?;
    fill_quota_used(tx, &mut license).await?;
    Ok(license)
}

/// A license with its fleet's figures ([`Store::license_for_validation`]).
#[derive(Debug)]
pub struct LicenseWithFleet {
    /// The license.
    pub license: License,
    /// Installations seen within the instance window; `None` when not
    /// asked (no instance limit).
    pub active_instances: Option<u64>,
    /// The most users an installation reported within the usage window;
    /// read only for a license with a seat limit (`max_users`), else
    /// `None`.
    pub users_in_use: Option<u32>,
}

impl Store {
    /// Insert a license (creating its customer if new) with its audit event.
    pub async fn insert_license(&self, l: &NewLicense, event: NewEvent) -> Result<License> {
        let mut tx = self.writer().begin().await?;
        let now = event.at.timestamp();
        sqlx::query(
            "INSERT INTO customers (id, name, email, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(l.new_customer_id.as_str())
        .bind(&l.customer)
        .bind(&l.customer_email)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let (customer_id,): (String,) = sqlx::query_as("SELECT id FROM customers WHERE name = $1")
            .bind(&l.customer)
            .fetch_one(&mut *tx)
            .await?;
        let insert = sqlx::query(
            "INSERT INTO licenses (id, token_hash, token_last4, customer_id, policy_id, plan, \
             features, max_users, trial, valid_from, expires_at, state, revision, created_at, \
             updated_at, auto_renew, max_machines, machine_mode, lease_ttl_secs, \
             max_borrow_secs, fingerprint_match, entitlements, product_id, metadata) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'active', 1, $12, $12, $13, \
             $14, $15, $16, $17, $18, $19, $20, $21)",
        )
        .bind(l.id.as_str())
        .bind(l.token_hash.as_str())
        .bind(&l.token_last4)
        .bind(&customer_id)
        .bind(l.policy_id.as_str())
        .bind(&l.plan)
        .bind(features_json(&l.features))
        .bind(l.max_users.map(i64::from))
        .bind(l.trial)
        .bind(l.valid_from.timestamp())
        .bind(l.expires_at.map(|t| t.timestamp()))
        .bind(now)
        .bind(l.auto_renew);
        bind_machines(insert, &l.machines)
            .bind(serde_json::to_string(&l.entitlements).unwrap_or_else(|_| "{}".into()))
            .bind(crate::model::Product::id_of(&l.product))
            .bind(serde_json::Value::Object(l.metadata.clone()).to_string())
            .execute(&mut *tx)
            .await?;
        self.insert_event(&mut tx, Some(&l.id), Some(1), &event)
            .await?;
        let license = license_in(&mut tx, &l.id).await?;
        tx.commit().await?;
        Ok(license)
    }

    /// One license by id.
    pub async fn license(&self, id: &LicenseId) -> Result<Option<License>> {
        let row: Option<LicenseRow> = sqlx::query_as(concat!(license_select!(), "WHERE l.id = $1"))
            .bind(id.as_str())
            .fetch_optional(self.reader())
            .await?;
        self.with_quota_used(row).await
    }

    /// A license read one at a time, with its metered features' use.
    async fn with_quota_used(&self, row: Option<LicenseRow>) -> Result<Option<License>> {
        let Some(row) = row else { return Ok(None) };
        let mut license = License::try_from(row)?;
        if license.entitlements.values().any(|e| e.quota.is_some()) {
            let mut conn = self.reader().acquire().await?;
            fill_quota_used(&mut conn, &mut license).await?;
        }
        Ok(Some(license))
    }

    /// One license by token hash.
    pub async fn license_by_token_hash(&self, hash: &TokenHash) -> Result<Option<License>> {
        let row: Option<LicenseRow> =
            sqlx::query_as(concat!(license_select!(), "WHERE l.token_hash = $1"))
                .bind(hash.as_str())
                .fetch_optional(self.reader())
                .await?;
        self.with_quota_used(row).await
    }

    /// As [`Store::license_by_token_hash`], with what validating a license
    /// not cached asks next, in the same read: how many of its
    /// installations were seen since `active_since` (the instance limit;
    /// not counted when `None`), and, for a license with a seat limit, the
    /// most users one of them reported since `users_since` (seats). Three
    /// round trips to the database's thread become one (with a million
    /// licenses, most validations of a fleet are such misses).
    pub async fn license_for_validation(
        &self,
        hash: &TokenHash,
        active_since: Option<Timestamp>,
        users_since: Timestamp,
    ) -> Result<Option<LicenseWithFleet>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            license: LicenseRow,
            active_instances: Option<i64>,
            users_in_use: Option<i64>,
        }
        // CASE evaluates a subquery only when it is wanted: a license
        // without a seat limit, or a gate without a limit, costs no scan of
        // its installations.
        let row: Option<Row> = sqlx::query_as(concat!(
            license_columns!(),
            ", CASE WHEN $2 IS NULL THEN NULL ELSE (SELECT COUNT(*) FROM instances i \
             WHERE i.license_id = l.id AND i.last_seen >= $2) END AS active_instances, \
             CASE WHEN l.max_users IS NULL THEN NULL ELSE (SELECT MAX(i.users) FROM instances i \
             WHERE i.license_id = l.id AND i.last_seen >= $3) END AS users_in_use ",
            license_from!(),
            "WHERE l.token_hash = $1"
        ))
        .bind(hash.as_str())
        .bind(active_since.map(|t| t.timestamp()))
        .bind(users_since.timestamp())
        .fetch_optional(self.reader())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let (active_instances, users_in_use) = (row.active_instances, row.users_in_use);
        Ok(self
            .with_quota_used(Some(row.license))
            .await?
            .map(|license| LicenseWithFleet {
                license,
                active_instances: active_instances.map(|n| u64::try_from(n).unwrap_or(0)),
                users_in_use: users_in_use.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            }))
    }

    /// The licenses whose token has this fingerprint (the first 16 hex
    /// characters of its hash: an offline request carries no token), at
    /// most two — more than one means the fingerprint is ambiguous. A range
    /// on the unique index of `token_hash`, so no scan.
    pub async fn licenses_by_token_fingerprint(
        &self,
        tfp: &tessera_protocol::TokenFingerprint,
    ) -> Result<Vec<License>> {
        let rows: Vec<LicenseRow> = sqlx::query_as(concat!(
            license_select!(),
            "WHERE l.token_hash >= $1 AND l.token_hash < $2 LIMIT 2"
        ))
        .bind(tfp.as_str())
        .bind(format!("{}g", tfp.as_str()))
        .fetch_all(self.reader())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some(l) = self.with_quota_used(Some(row)).await? {
                out.push(l);
            }
        }
        Ok(out)
    }

    /// Apply a change if the license is still at `change.expected_revision`:
    /// revision + 1 and the audit event, in one transaction. `None` when the
    /// license moved on meanwhile (the caller re-reads and retries).
    pub async fn apply_change(&self, c: &LicenseChange) -> Result<Option<License>> {
        let mut tx = self.writer().begin().await?;
        let updated = sqlx::query(
            "UPDATE licenses SET state = $1, expires_at = $2, revision = revision + 1, \
             updated_at = $3 WHERE id = $4 AND revision = $5",
        )
        .bind(c.state.as_str())
        .bind(c.expires_at.map(|t| t.timestamp()))
        .bind(c.event.at.timestamp())
        .bind(c.id.as_str())
        .bind(i64_of(c.expected_revision))
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            // Dropping the transaction rolls it back.
            return Ok(None);
        }
        self.insert_event(
            &mut tx,
            Some(&c.id),
            Some(c.expected_revision + 1),
            &c.event,
        )
        .await?;
        // Other replicas learn of the change from the same transaction.
        let notice = ChangeNotice::Changed {
            license: c.id.clone(),
            revision: c.expected_revision + 1,
        };
        self.backend.notify(&mut tx, &notice).await?;
        let license = license_in(&mut tx, &c.id).await?;
        tx.commit().await?;
        Ok(Some(license))
    }

    /// Licenses matching `q`, one page: oldest first after a cursor, or
    /// newest first at an offset (see [`LicensePage`]).
    pub async fn licenses(&self, q: &LicenseQuery) -> Result<Vec<License>> {
        let w = WhereArgs::of(q);
        let limit = i64::from(q.limit);
        let (sql, offset) = match &q.page {
            LicensePage::After(_) => (LICENSES_AFTER, None),
            LicensePage::Offset(offset) => (LICENSES_AT_OFFSET, Some(i64::from(*offset))),
        };
        let mut query = w.bind(sqlx::query_as::<_, LicenseRow>(sql)).bind(limit);
        if let Some(offset) = offset {
            query = query.bind(offset);
        }
        self.all(query).await
    }

    /// How many licenses match `q` (its page aside).
    pub async fn count_licenses(&self, q: &LicenseQuery) -> Result<i64> {
        let (total,): (i64,) = WhereArgs::of(q)
            .bind(sqlx::query_as(concat!(
                "SELECT COUNT(*) FROM licenses l JOIN customers c ON c.id = l.customer_id ",
                license_where!()
            )))
            .fetch_one(self.reader())
            .await?;
        Ok(total)
    }

    /// Counts at `now`, with active licenses expiring within each horizon,
    /// of the products in `products` (comma-separated names; `None`: all).
    pub async fn overview(
        &self,
        now: Timestamp,
        horizons: &[chrono::Duration],
        products: Option<&str>,
    ) -> Result<Overview> {
        let by_product: Vec<(String, String, i64)> = sqlx::query_as(concat!(
            "SELECT SUBSTR(product_id, 5), state, COUNT(*) FROM licenses l WHERE ",
            in_products!("$1"),
            " GROUP BY product_id, state ORDER BY product_id, state"
        ))
        .bind(products)
        .fetch_all(self.reader())
        .await?;
        let mut by_state: Vec<(String, i64)> = Vec::new();
        for (_, state, n) in &by_product {
            match by_state.iter_mut().find(|(s, _)| s == state) {
                Some((_, total)) => *total += n,
                None => by_state.push((state.clone(), *n)),
            }
        }
        by_state.sort();
        let t = now.timestamp();
        let (expired,): (i64,) = sqlx::query_as(concat!(
            "SELECT COUNT(*) FROM licenses l WHERE l.state = 'active' \
             AND l.expires_at IS NOT NULL AND l.expires_at <= $1 AND ",
            in_products!("$2")
        ))
        .bind(t)
        .bind(products)
        .fetch_one(self.reader())
        .await?;
        let mut expiring = Vec::with_capacity(horizons.len());
        for horizon in horizons {
            let (n,): (i64,) = sqlx::query_as(concat!(
                "SELECT COUNT(*) FROM licenses l WHERE l.state = 'active' \
                 AND l.expires_at > $1 AND l.expires_at <= $2 AND ",
                in_products!("$3")
            ))
            .bind(t)
            .bind(t + horizon.num_seconds())
            .bind(products)
            .fetch_one(self.reader())
            .await?;
            expiring.push((*horizon, n));
        }
        let (online, total): (i64, i64) = sqlx::query_as(concat!(
            "SELECT COALESCE(SUM(CASE WHEN stream_connected OR last_seen >= $1 \
             THEN 1 ELSE 0 END), 0), COUNT(*) FROM instances i \
             WHERE $2 IS NULL OR i.license_id IN (SELECT l.id FROM licenses l WHERE ",
            in_products!("$2"),
            ")"
        ))
        .bind(t - 3_600)
        .bind(products)
        .fetch_one(self.reader())
        .await?;
        Ok(Overview {
            by_state,
            by_product,
            expired,
            expiring,
            instances_online: online,
            instances_total: total,
        })
    }
}

/// The values of [`license_where`].
struct WhereArgs {
    pattern: Option<String>,
    text: Option<String>,
    customer: Option<String>,
    state: Option<&'static str>,
    before: Option<i64>,
    not_before: i64,
    after: Option<String>,
    products: Option<String>,
}

impl WhereArgs {
    fn of(q: &LicenseQuery) -> Self {
        let text = q
            .text
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        let pattern = text.as_deref().map(|t| {
            let mut escaped = String::with_capacity(t.len() + 2);
            escaped.push('%');
            for c in t.to_lowercase().chars() {
                if matches!(c, '%' | '_' | '\\') {
                    escaped.push('\\');
                }
                escaped.push(c);
            }
            escaped.push('%');
            escaped
        });
        Self {
            pattern,
            text,
            customer: q.customer.clone(),
            state: q.state.map(LicenseState::as_str),
            before: q.expiring.map(|w| w.until.timestamp()),
            not_before: q
                .expiring
                .and_then(|w| w.from)
                .map_or(i64::MIN, |t| t.timestamp()),
            after: match &q.page {
                LicensePage::After(after) => after.clone(),
                LicensePage::Offset(_) => None,
            },
            products: q.products.clone(),
        }
    }

    fn bind<'q, O>(
        self,
        query: sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments>,
    ) -> sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments> {
        query
            .bind(self.pattern)
            .bind(self.text)
            .bind(self.customer)
            .bind(self.state)
            .bind(self.before)
            .bind(self.not_before)
            .bind(self.after)
            .bind(self.products)
    }
}
