//! Trials (docs/PROTOCOL.md §23): one per (trial policy, machine).

use tessera_protocol::{LicenseId, PolicyId, Timestamp};

use super::Store;
use crate::error::Result;

/// A trial as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TrialRow {
    /// The trial license.
    pub license_id: String,
    /// Its token, sealed.
    pub token_sealed: String,
    /// When it was converted to a paid license (seconds), if it was.
    pub converted_at: Option<i64>,
}

impl Store {
    /// The trial of `policy` for machine `mfp`, if one was started.
    pub async fn trial(&self, policy: &PolicyId, mfp: &str) -> Result<Option<TrialRow>> {
        Ok(sqlx::query_as(
            "SELECT license_id, token_sealed, converted_at FROM trials \
             WHERE policy_id = $1 AND mfp = $2",
        )
        .bind(policy.as_str())
        .bind(mfp)
        .fetch_optional(self.writer())
        .await?)
    }

    /// Record a trial; `false` when this machine already had one (another
    /// request won a race: its trial stands, this one's license is left
    /// unused).
    pub async fn insert_trial(
        &self,
        policy: &PolicyId,
        mfp: &str,
        license: &LicenseId,
        token_sealed: &str,
        email: Option<&str>,
        at: Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO trials (policy_id, mfp, license_id, token_sealed, email, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(policy.as_str())
        .bind(mfp)
        .bind(license.as_str())
        .bind(token_sealed)
        .bind(email)
        .bind(at.timestamp())
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Trial licenses not yet converted: those started with `email`, or the
    /// one that is `license`.
    pub async fn open_trials(
        &self,
        email: Option<&str>,
        license: Option<&LicenseId>,
    ) -> Result<Vec<LicenseId>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT license_id FROM trials WHERE converted_at IS NULL \
             AND ((CAST($1 AS TEXT) IS NOT NULL AND LOWER(email) = LOWER($1)) \
                  OR (CAST($2 AS TEXT) IS NOT NULL AND license_id = $2))",
        )
        .bind(email)
        .bind(license.map(LicenseId::as_str))
        .fetch_all(self.reader())
        .await?;
        rows.into_iter()
            .map(|(id,)| Ok(LicenseId::parse(&id)?))
            .collect()
    }

    /// Mark a trial converted to `to`.
    pub async fn mark_trial_converted(
        &self,
        trial: &LicenseId,
        to: &LicenseId,
        at: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE trials SET converted_at = $1, converted_to = $2 \
             WHERE license_id = $3 AND converted_at IS NULL",
        )
        .bind(at.timestamp())
        .bind(to.as_str())
        .bind(trial.as_str())
        .execute(self.writer())
        .await?;
        Ok(())
    }
}
