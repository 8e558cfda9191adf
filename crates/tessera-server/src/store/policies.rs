//! Policies and customers.

use super::Store;
use super::rows::{CustomerRow, PolicyRow, bind_machines, features_json, policy_columns};
use crate::error::{Error, Result};
use crate::model::{Customer, NewEvent, Policy};

impl Store {
    /// Create a policy and its audit event.
    pub async fn create_policy(&self, p: &Policy, event: NewEvent) -> Result<Policy> {
        let mut tx = self.writer().begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO policies (id, name, duration_secs, features, max_users, trial, \
             refresh_interval_secs, offline_grace_secs, renewal_basis, auto_renew, \
             auto_renew_period_secs, created_at, renew_before_secs, \
             max_machines, machine_mode, lease_ttl_secs, max_borrow_secs, fingerprint_match, \
             on_expiry) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
             $14, $15, $16, $17, $18, $19) \
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

    /// All customers by name.
    pub async fn customers(&self) -> Result<Vec<Customer>> {
        self.all(sqlx::query_as::<_, CustomerRow>(
            "SELECT id, name, email, created_at FROM customers ORDER BY name",
        ))
        .await
    }
}
