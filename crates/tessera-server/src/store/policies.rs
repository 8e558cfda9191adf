//! Policies and customers.

use std::collections::HashMap;

use tessera_protocol::{LicenseId, PolicyId};

use super::rows::{
    CustomerRow, LicenseRow, PolicyRow, bind_machines, features_json, license_select,
    policy_columns,
};
use super::{ChangeNotice, Store};
use crate::error::{Error, Result};
use crate::model::{Customer, License, NewEvent, Policy};

impl Store {
    /// Create a policy and its audit event.
    pub async fn create_policy(&self, p: &Policy, event: NewEvent) -> Result<Policy> {
        let mut tx = self.writer().begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO policies (id, name, duration_secs, features, max_users, trial, \
             refresh_interval_secs, offline_grace_secs, renewal_basis, auto_renew, \
             auto_renew_period_secs, created_at, renew_before_secs, \
             max_machines, machine_mode, lease_ttl_secs, max_borrow_secs, fingerprint_match, \
             on_expiry, enforcement, product_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
             $14, $15, $16, $17, $18, $19, $20, $21) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(p.id.as_str())
        .bind(&p.name)
        .bind(p.duration.map(|d| d.num_seconds()))
        .bind(features_json(&p.features))
        .bind(p.max_users.map(i64::from))
        .bind(p.trial)
        .bind(p.refresh_interval.num_seconds())
        .bind(p.offline_grace.num_seconds())
        .bind(p.renewal_basis.to_string())
        .bind(p.auto_renew)
        .bind(p.auto_renew_period.map(|d| d.num_seconds()))
        .bind(p.created_at.timestamp())
        .bind(p.renew_before.num_seconds());
        let inserted = bind_machines(inserted, &p.machines)
            .bind(p.on_expiry.to_string())
            .bind(p.enforcement.to_string())
            .bind(p.product.as_deref().map(crate::model::Product::id_of))
            .execute(&mut *tx)
            .await?;
        if inserted.rows_affected() == 0 {
            return Err(Error::conflict(
                "policy_exists",
                format!("a policy named {:?} already exists", p.name),
            ));
        }
        self.insert_event(&mut tx, None, None, &event).await?;
        tx.commit().await?;
        Ok(p.clone())
    }

    /// All policies by name.
    pub async fn policies(&self) -> Result<Vec<Policy>> {
        self.all(sqlx::query_as::<_, PolicyRow>(concat!(
            "SELECT ",
            policy_columns!(),
            " FROM policies ORDER BY name"
        )))
        .await
    }

    /// One policy by name.
    pub async fn policy_by_name(&self, name: &str) -> Result<Option<Policy>> {
        let row: Option<PolicyRow> = sqlx::query_as(concat!(
            "SELECT ",
            policy_columns!(),
            " FROM policies WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(self.reader())
        .await?;
        row.map(Policy::try_from).transpose()
    }

    /// Change a policy's client settings (enforcement, on_expiry, offline
    /// grace, refresh interval): every license under it (revoked ones
    /// aside) gets a new revision, notified to the other replicas, and the
    /// one `policy.updated` event records them, in one transaction. The
    /// licenses changed, at their new revisions.
    pub async fn update_policy(
        &self,
        p: &Policy,
        event: NewEvent,
    ) -> Result<Vec<(LicenseId, u64)>> {
        let mut tx = self.writer().begin().await?;
        sqlx::query(
            "UPDATE policies SET enforcement = $1, on_expiry = $2, offline_grace_secs = $3, \
             refresh_interval_secs = $4 WHERE id = $5",
        )
        .bind(p.enforcement.to_string())
        .bind(p.on_expiry.to_string())
        .bind(p.offline_grace.num_seconds())
        .bind(p.refresh_interval.num_seconds())
        .bind(p.id.as_str())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE licenses SET revision = revision + 1, updated_at = $1 \
             WHERE policy_id = $2 AND state <> 'revoked'",
        )
        .bind(event.at.timestamp())
        .bind(p.id.as_str())
        .execute(&mut *tx)
        .await?;
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT id, revision FROM licenses WHERE policy_id = $1 AND state <> 'revoked'",
        )
        .bind(p.id.as_str())
        .fetch_all(&mut *tx)
        .await?;
        let mut changed = Vec::with_capacity(rows.len());
        for (id, revision) in rows {
            let license = LicenseId::parse(&id)?;
            let revision = u64::try_from(revision).unwrap_or(0);
            let notice = ChangeNotice::Changed {
                license: license.clone(),
                revision,
            };
            self.backend.notify(&mut tx, &notice).await?;
            changed.push((license, revision));
        }
        self.insert_event(&mut tx, None, None, &event).await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// The licenses under `policy`, revoked ones aside, by id.
    pub async fn licenses_of_policy(&self, policy: &PolicyId) -> Result<Vec<License>> {
        self.all(
            sqlx::query_as::<_, LicenseRow>(concat!(
                license_select!(),
                "WHERE l.policy_id = $1 AND l.state <> 'revoked' ORDER BY l.id"
            ))
            .bind(policy.as_str()),
        )
        .await
    }

    /// Instances holding an open change stream, per license under `policy`.
    pub async fn connected_under_policy(&self, policy: &PolicyId) -> Result<HashMap<String, u64>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT i.license_id, SUM(CASE WHEN i.stream_connected THEN 1 ELSE 0 END) \
             FROM instances i JOIN licenses l ON l.id = i.license_id \
             WHERE l.policy_id = $1 GROUP BY i.license_id",
        )
        .bind(policy.as_str())
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, n)| (id, u64::try_from(n).unwrap_or(0)))
            .collect())
    }

    /// All customers by name.
    pub async fn customers(&self) -> Result<Vec<Customer>> {
        self.all(sqlx::query_as::<_, CustomerRow>(
            "SELECT id, name, email, created_at FROM customers ORDER BY name",
        ))
        .await
    }
}
