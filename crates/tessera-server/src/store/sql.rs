//! One implementation of [`LicenseStore`](super::LicenseStore) for both
//! backends. The SQL is the subset SQLite and PostgreSQL share (`$n`
//! parameters, `ON CONFLICT`, `RETURNING`-free updates, `BIGINT`/`INTEGER`
//! as `i64`, booleans as `bool`); what differs — pools, `NOTIFY`, advisory
//! locks, start-up cleanup — comes from the backend type's own methods:
//! `BACKEND`, `writer()`, `reader()`, `replica()`, `notify_change`,
//! `order_events`, `startup_cleanup_impl`, `try_job_lock_impl`, `changes_impl`, `close_impl`.

macro_rules! impl_license_store {
    ($ty:ty, $conn:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::LicenseStore for $ty {

            fn backend(&self) -> &'static str {
                Self::BACKEND
            }

            async fn ping(&self) -> Result<()> {
                sqlx::query("SELECT 1").execute(self.reader()).await?;
                Ok(())
            }

            async fn admin_keys(&self) -> Result<Vec<AdminKeyRecord>> {
                let rows: Vec<(String, String)> =
                    sqlx::query_as("SELECT name, key_hash FROM admin_keys WHERE revoked_at IS NULL")
                        .fetch_all(self.reader())
                        .await?;
                rows.into_iter()
                    .map(|(name, hash)| {
                        Ok(AdminKeyRecord {
                            name,
                            hash: TokenHash::from_hex(&hash).map_err(|e| Error::Corrupt(e.to_string()))?,
                        })
                    })
                    .collect()
            }

            async fn insert_admin_key(&self, name: &str, hash: &TokenHash, now: Timestamp) -> Result<()> {
                sqlx::query("INSERT INTO admin_keys (name, key_hash, created_at) VALUES ($1, $2, $3)")
                    .bind(name)
                    .bind(hash.as_str())
                    .bind(now.timestamp())
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn create_policy(&self, new: &NewPolicy, event: NewEvent) -> Result<Policy> {
                let p = &new.policy;
                let mut tx = self.writer().begin().await?;
                let inserted = sqlx::query(
                    "INSERT INTO policies (id, name, duration_secs, features, max_users, trial, \
                     refresh_interval_secs, offline_grace_secs, renewal_basis, auto_renew, \
                     auto_renew_period_secs, created_at, renew_before_secs) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                     ON CONFLICT (name) DO NOTHING",
                )
                .bind(&new.id)
                .bind(&p.name)
                .bind(p.duration.map(|d| d.num_seconds()))
                .bind(features_json(&p.features))
                .bind(p.max_users.map(i64::from))
                .bind(p.trial)
                .bind(p.refresh_interval.num_seconds())
                .bind(p.offline_grace.num_seconds())
                .bind(p.renewal_basis.as_str())
                .bind(p.auto_renew)
                .bind(p.auto_renew_period.map(|d| d.num_seconds()))
                .bind(p.created_at.timestamp())
                .bind(p.renew_before.num_seconds())
                .execute(&mut *tx)
                .await?;
                if inserted.rows_affected() == 0 {
                    return Err(Error::conflict(
                        "policy_exists",
                        format!("a policy named {:?} already exists", p.name),
                    ));
                }
                insert_event(&mut tx, None, None, &event).await?;
                tx.commit().await?;
                Ok(Policy {
                    id: new.id.clone(),
                    ..p.clone()
                })
            }

            async fn policies(&self) -> Result<Vec<Policy>> {
                let rows: Vec<PolicyRow> = sqlx::query_as(concat!(
                    "SELECT ",
                    policy_columns!(),
                    " FROM policies ORDER BY name"
                ))
                .fetch_all(self.reader())
                .await?;
                collect(rows)
            }

            async fn policy_by_name(&self, name: &str) -> Result<Option<Policy>> {
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

            async fn customers(&self) -> Result<Vec<Customer>> {
                let rows: Vec<CustomerRow> =
                    sqlx::query_as("SELECT id, name, email, created_at FROM customers ORDER BY name")
                        .fetch_all(self.reader())
                        .await?;
                collect(rows)
            }

            async fn insert_license(&self, l: &NewLicense, event: NewEvent) -> Result<License> {
                let mut tx = self.writer().begin().await?;
                let now = event.at.timestamp();
                let customer_id = format!("cus_{}", uuid::Uuid::now_v7());
                sqlx::query(
                    "INSERT INTO customers (id, name, email, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (name) DO NOTHING",
                )
                .bind(&customer_id)
                .bind(&l.customer)
                .bind(&l.customer_email)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                let (customer_id,): (String,) = sqlx::query_as("SELECT id FROM customers WHERE name = $1")
                    .bind(&l.customer)
                    .fetch_one(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO licenses (id, token_hash, token_last4, customer_id, policy_id, plan, \
                     features, max_users, trial, valid_from, expires_at, state, revision, created_at, \
                     updated_at, auto_renew) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'active', 1, $12, $12, $13)",
                )
                .bind(l.id.as_str())
                .bind(l.token_hash.as_str())
                .bind(&l.token_last4)
                .bind(&customer_id)
                .bind(&l.policy_id)
                .bind(&l.plan)
                .bind(features_json(&l.features))
                .bind(l.max_users.map(i64::from))
                .bind(l.trial)
                .bind(l.valid_from.timestamp())
                .bind(l.expires_at.map(|t| t.timestamp()))
                .bind(now)
                .bind(l.auto_renew)
                .execute(&mut *tx)
                .await?;
                insert_event(&mut tx, Some(&l.id), Some(1), &event).await?;
                let row: LicenseRow = sqlx::query_as(concat!(license_select!(), "WHERE l.id = $1"))
                    .bind(l.id.as_str())
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                License::try_from(row)
            }

            async fn license(&self, id: &LicenseId) -> Result<Option<License>> {
                let row: Option<LicenseRow> = sqlx::query_as(concat!(license_select!(), "WHERE l.id = $1"))
                    .bind(id.as_str())
                    .fetch_optional(self.reader())
                    .await?;
                row.map(License::try_from).transpose()
            }

            async fn license_by_token_hash(&self, hash: &TokenHash) -> Result<Option<License>> {
                let row: Option<LicenseRow> =
                    sqlx::query_as(concat!(license_select!(), "WHERE l.token_hash = $1"))
                        .bind(hash.as_str())
                        .fetch_optional(self.reader())
                        .await?;
                row.map(License::try_from).transpose()
            }

            async fn licenses(&self, f: &LicenseFilter) -> Result<Vec<License>> {
                let rows: Vec<LicenseRow> = sqlx::query_as(concat!(
                    license_select!(),
                    "WHERE ($1 IS NULL OR c.name = $1) \
                     AND ($2 IS NULL OR l.state = $2) \
                     AND ($3 IS NULL OR (l.expires_at IS NOT NULL AND l.expires_at <= $3 \
                                         AND l.expires_at > $4)) \
                     AND ($5 IS NULL OR l.id > $5) \
                     ORDER BY l.id LIMIT $6"
                ))
                .bind(&f.customer)
                .bind(f.state.map(|s| s.as_str()))
                .bind(f.expiring_before.map(|t| t.timestamp()))
                .bind(f.not_before.map_or(i64::MIN, |t| t.timestamp()))
                .bind(&f.after)
                .bind(i64::from(f.limit))
                .fetch_all(self.reader())
                .await?;
                collect(rows)
            }

            async fn apply_change(&self, c: &LicenseChange) -> Result<Option<License>> {
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
                insert_event(
                    &mut tx,
                    Some(&c.id),
                    Some(c.expected_revision + 1),
                    &c.event,
                )
                .await?;
                // Other replicas learn of the change from the same transaction.
                Self::notify_change(&mut tx, &c.id, c.expected_revision + 1).await?;
                let row: LicenseRow = sqlx::query_as(concat!(license_select!(), "WHERE l.id = $1"))
                    .bind(c.id.as_str())
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                License::try_from(row).map(Some)
            }

            async fn append_event(
                &self,
                license: Option<(&LicenseId, u64)>,
                event: NewEvent,
            ) -> Result<()> {
                let mut tx = self.writer().begin().await?;
                insert_event(&mut tx, license.map(|l| l.0), license.map(|l| l.1), &event).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn events(&self, f: &EventFilter) -> Result<Vec<EventView>> {
                let license = f.license.as_ref().map(LicenseId::as_str);
                let rows: Vec<EventRow> = if let Some(after) = f.after {
                    sqlx::query_as(
                        "SELECT seq, at, actor, kind, license_id, revision, before, after FROM events \
                         WHERE ($1 IS NULL OR license_id = $1) AND seq > $2 ORDER BY seq LIMIT $3",
                    )
                    .bind(license)
                    .bind(after)
                    .bind(i64::from(f.limit))
                    .fetch_all(self.reader())
                    .await?
                } else {
                    sqlx::query_as(
                        "SELECT seq, at, actor, kind, license_id, revision, before, after FROM events \
                         WHERE ($1 IS NULL OR license_id = $1) AND ($2 IS NULL OR seq < $2) \
                         ORDER BY seq DESC LIMIT $3",
                    )
                    .bind(license)
                    .bind(f.before)
                    .bind(i64::from(f.limit))
                    .fetch_all(self.reader())
                    .await?
                };
                collect(rows)
            }

            async fn record_instances(&self, seen: &[InstanceSeen]) -> Result<()> {
                if seen.is_empty() {
                    return Ok(());
                }
                let mut tx = self.writer().begin().await?;
                for s in seen {
                    // A stream closing on one replica must not mark disconnected an
                    // instance that already reconnected to another.
                    sqlx::query(
                        "INSERT INTO instances (license_id, instance_id, first_seen, last_seen, \
                         app_version, users, stream_connected, stream_replica, held_revision) \
                         VALUES ($1, $2, $3, $4, $5, $6, COALESCE($7, FALSE), \
                                 CASE WHEN $7 THEN $8 ELSE NULL END, $9) \
                         ON CONFLICT (license_id, instance_id) DO UPDATE SET \
                         last_seen = CASE WHEN excluded.last_seen > instances.last_seen \
                             THEN excluded.last_seen ELSE instances.last_seen END, \
                         app_version = COALESCE(excluded.app_version, instances.app_version), \
                         users = COALESCE(excluded.users, instances.users), \
                         stream_connected = CASE WHEN $7 IS NULL THEN instances.stream_connected \
                             WHEN $7 THEN TRUE \
                             WHEN instances.stream_replica = $8 THEN FALSE \
                             ELSE instances.stream_connected END, \
                         stream_replica = CASE WHEN $7 IS NULL THEN instances.stream_replica \
                             WHEN $7 THEN $8 \
                             WHEN instances.stream_replica = $8 THEN NULL \
                             ELSE instances.stream_replica END, \
                         held_revision = CASE WHEN $9 IS NULL THEN instances.held_revision \
                             WHEN instances.held_revision IS NULL THEN $9 \
                             WHEN $9 > instances.held_revision THEN $9 \
                             ELSE instances.held_revision END",
                    )
                    .bind(s.license_id.as_str())
                    .bind(&s.instance_id)
                    .bind(s.first_at.timestamp())
                    .bind(s.at.timestamp())
                    .bind(&s.app_version)
                    .bind(s.users.map(i64::from))
                    .bind(s.stream)
                    .bind(self.replica())
                    .bind(s.held_revision.map(i64_of))
                    .execute(&mut *tx)
                    .await?;
                    if let Some(users) = s.users {
                        // The day's maximum per instance (metering).
                        sqlx::query(
                            "INSERT INTO usage_daily (license_id, instance_id, day, max_users) \
                             VALUES ($1, $2, $3, $4) \
                             ON CONFLICT (license_id, instance_id, day) DO UPDATE SET \
                             max_users = CASE WHEN excluded.max_users > usage_daily.max_users \
                                 THEN excluded.max_users ELSE usage_daily.max_users END",
                        )
                        .bind(s.license_id.as_str())
                        .bind(&s.instance_id)
                        .bind(s.at.format("%Y-%m-%d").to_string())
                        .bind(i64::from(users))
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                tx.commit().await?;
                Ok(())
            }

            async fn create_session(&self, session: &Session) -> Result<()> {
                sqlx::query(
                    "INSERT INTO sessions (id_hash, key_name, csrf, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&session.id_hash)
                .bind(&session.key_name)
                .bind(&session.csrf)
                .bind(session.created_at.timestamp())
                .bind(session.expires_at.timestamp())
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn session(&self, id_hash: &str, now: Timestamp) -> Result<Option<Session>> {
                let row: Option<(String, String, String, i64, i64)> = sqlx::query_as(
                    "SELECT id_hash, key_name, csrf, created_at, expires_at FROM sessions \
                     WHERE id_hash = $1 AND expires_at > $2",
                )
                .bind(id_hash)
                .bind(now.timestamp())
                .fetch_optional(self.reader())
                .await?;
                row.map(|(id_hash, key_name, csrf, created, expires)| {
                    Ok(Session {
                        id_hash,
                        key_name,
                        csrf,
                        created_at: super::rows::ts(created)?,
                        expires_at: super::rows::ts(expires)?,
                    })
                })
                .transpose()
            }

            async fn delete_session(&self, id_hash: &str) -> Result<()> {
                sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
                    .bind(id_hash)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn purge_sessions(&self, now: Timestamp) -> Result<u64> {
                Ok(sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
                    .bind(now.timestamp())
                    .execute(self.writer())
                    .await?
                    .rows_affected())
            }

            async fn overview(
                &self,
                now: Timestamp,
                horizons: &[chrono::Duration],
            ) -> Result<Overview> {
                let by_state: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT state, COUNT(*) FROM licenses GROUP BY state ORDER BY state",
                )
                .fetch_all(self.reader())
                .await?;
                let t = now.timestamp();
                let (expired,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM licenses WHERE state = 'active' \
                     AND expires_at IS NOT NULL AND expires_at <= $1",
                )
                .bind(t)
                .fetch_one(self.reader())
                .await?;
                let mut expiring = Vec::with_capacity(horizons.len());
                for horizon in horizons {
                    let (n,): (i64,) = sqlx::query_as(
                        "SELECT COUNT(*) FROM licenses WHERE state = 'active' \
                         AND expires_at > $1 AND expires_at <= $2",
                    )
                    .bind(t)
                    .bind(t + horizon.num_seconds())
                    .fetch_one(self.reader())
                    .await?;
                    expiring.push((*horizon, n));
                }
                let (online, total): (i64, i64) = sqlx::query_as(
                    "SELECT COALESCE(SUM(CASE WHEN stream_connected OR last_seen >= $1 \
                     THEN 1 ELSE 0 END), 0), COUNT(*) FROM instances",
                )
                .bind(t - 3_600)
                .fetch_one(self.reader())
                .await?;
                Ok(Overview {
                    by_state,
                    expired,
                    expiring,
                    instances_online: online,
                    instances_total: total,
                })
            }

            async fn search_licenses(&self, q: &LicenseSearch) -> Result<(Vec<License>, i64)> {
                // LIKE wildcards typed by the user are taken literally (escaped),
                // so `lic_…` and `50%` mean what they say.
                let text = q.text.as_deref().map(str::trim).filter(|t| !t.is_empty());
                let pattern = text.map(|t| {
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
                let state = q.state.map(|s| s.as_str());
                let before = q.expiring_before.map(|t| t.timestamp());
                let not_before = q.not_before.map_or(i64::MIN, |t| t.timestamp());
                macro_rules! search_where {
                    () => {
                        "WHERE ($1 IS NULL OR LOWER(c.name) LIKE $1 ESCAPE '\\' \
                                OR LOWER(l.plan) LIKE $1 ESCAPE '\\' \
                                OR l.id LIKE $1 ESCAPE '\\' OR l.token_last4 = $2) \
                         AND ($3 IS NULL OR l.state = $3) \
                         AND ($4 IS NULL OR (l.expires_at IS NOT NULL AND l.expires_at <= $4 \
                                             AND l.expires_at > $5)) "
                    };
                }
                let rows: Vec<LicenseRow> = sqlx::query_as(concat!(
                    license_select!(),
                    search_where!(),
                    "ORDER BY l.created_at DESC, l.id DESC LIMIT $6 OFFSET $7"
                ))
                .bind(&pattern)
                .bind(text)
                .bind(state)
                .bind(before)
                .bind(not_before)
                .bind(i64::from(q.limit))
                .bind(i64::from(q.offset))
                .fetch_all(self.reader())
                .await?;
                let (total,): (i64,) = sqlx::query_as(concat!(
                    "SELECT COUNT(*) FROM licenses l JOIN customers c ON c.id = l.customer_id ",
                    search_where!()
                ))
                .bind(&pattern)
                .bind(text)
                .bind(state)
                .bind(before)
                .bind(not_before)
                .fetch_one(self.reader())
                .await?;
                Ok((collect(rows)?, total))
            }

            async fn heartbeat(&self, kid: &str, now: Timestamp) -> Result<()> {
                sqlx::query(
                    "INSERT INTO replicas (id, kid, started_at, heartbeat_at) VALUES ($1, $2, $3, $3) \
                     ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
                )
                .bind(self.replica())
                .bind(kid)
                .bind(now.timestamp())
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn live_replicas(&self, since: Timestamp) -> Result<Vec<(String, String)>> {
                let rows: Vec<(String, String)> =
                    sqlx::query_as("SELECT id, kid FROM replicas WHERE heartbeat_at >= $1 ORDER BY id")
                        .bind(since.timestamp())
                        .fetch_all(self.reader())
                        .await?;
                Ok(rows)
            }

            async fn reap_streams(&self, alive_since: Timestamp) -> Result<u64> {
                let mut tx = self.writer().begin().await?;
                let reaped = sqlx::query(
                    "UPDATE instances SET stream_connected = FALSE, stream_replica = NULL \
                     WHERE stream_connected AND (stream_replica IS NULL OR stream_replica NOT IN \
                         (SELECT id FROM replicas WHERE heartbeat_at >= $1))",
                )
                .bind(alive_since.timestamp())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                // Replicas silent for a day are forgotten.
                sqlx::query("DELETE FROM replicas WHERE heartbeat_at < $1")
                    .bind(alive_since.timestamp() - 86_400)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(reaped)
            }

            async fn startup_cleanup(&self) -> Result<()> {
                self.startup_cleanup_impl().await
            }

            async fn try_job_lock(&self, job: &str) -> Result<Option<JobLock>> {
                self.try_job_lock_impl(job).await
            }

            fn changes(&self) -> Option<tokio::sync::mpsc::Receiver<ChangeNotice>> {
                self.changes_impl()
            }

            async fn close(&self) {
                self.close_impl().await;
            }

            async fn instances(&self, license: &LicenseId, limit: u32, offset: u64) -> Result<Vec<Instance>> {
                let rows: Vec<InstanceRow> = sqlx::query_as(
                    "SELECT instance_id, first_seen, last_seen, app_version, users, held_revision, \
                     stream_connected FROM instances WHERE license_id = $1 \
                     ORDER BY last_seen DESC, instance_id LIMIT $2 OFFSET $3",
                )
                .bind(license.as_str())
                .bind(i64::from(limit))
                .bind(i64::try_from(offset).unwrap_or(i64::MAX))
                .fetch_all(self.reader())
                .await?;
                collect(rows)
            }

            async fn fleet_counts(
                &self,
                license: &LicenseId,
                revision: u64,
                active_since: Timestamp,
            ) -> Result<crate::model::FleetCounts> {
                let (total, current, connected, active): (i64, i64, i64, i64) = sqlx::query_as(
                    "SELECT COUNT(*), \
                     COALESCE(SUM(CASE WHEN held_revision = $2 THEN 1 ELSE 0 END), 0), \
                     COALESCE(SUM(CASE WHEN stream_connected THEN 1 ELSE 0 END), 0), \
                     COALESCE(SUM(CASE WHEN last_seen >= $3 THEN 1 ELSE 0 END), 0) \
                     FROM instances WHERE license_id = $1",
                )
                .bind(license.as_str())
                .bind(i64_of(revision))
                .bind(active_since.timestamp())
                .fetch_one(self.reader())
                .await?;
                let n = |v: i64| usize::try_from(v).unwrap_or(0);
                Ok(crate::model::FleetCounts {
                    total: n(total),
                    current: n(current),
                    connected: n(connected),
                    active: n(active),
                })
            }

            async fn instance_admission(
                &self,
                license: &LicenseId,
                instance: &str,
                since: Timestamp,
            ) -> Result<(u64, bool)> {
                let (active, known): (i64, i64) = sqlx::query_as(
                    "SELECT COUNT(*), COALESCE(SUM(CASE WHEN instance_id = $2 THEN 1 ELSE 0 END), 0) \
                     FROM instances WHERE license_id = $1 AND last_seen >= $3",
                )
                .bind(license.as_str())
                .bind(instance)
                .bind(since.timestamp())
                .fetch_one(self.reader())
                .await?;
                Ok((u64::try_from(active).unwrap_or(0), known > 0))
            }

            async fn prune_instances(&self, before: Timestamp) -> Result<u64> {
                let done = sqlx::query("DELETE FROM instances WHERE last_seen < $1")
                    .bind(before.timestamp())
                    .execute(self.writer())
                    .await?;
                Ok(done.rows_affected())
            }

            async fn horizon_due(
                &self,
                horizon: &str,
                until: Timestamp,
                limit: u32,
            ) -> Result<Vec<License>> {
                let rows: Vec<LicenseRow> = sqlx::query_as(concat!(
                    license_select!(),
                    "WHERE l.state = 'active' AND l.expires_at IS NOT NULL AND l.expires_at <= $1 \
                     AND NOT EXISTS (SELECT 1 FROM horizons_fired h WHERE h.license_id = l.id \
                                     AND h.horizon = $2 AND h.expires_at = l.expires_at) \
                     ORDER BY l.expires_at, l.id LIMIT $3"
                ))
                .bind(until.timestamp())
                .bind(horizon)
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await?;
                collect(rows)
            }

            async fn fire_horizon(
                &self,
                license: &License,
                horizon: &str,
                event: Option<NewEvent>,
            ) -> Result<bool> {
                let Some(expires_at) = license.expires_at else {
                    return Ok(false);
                };
                let mut tx = self.writer().begin().await?;
                let inserted = sqlx::query(
                    "INSERT INTO horizons_fired (license_id, horizon, expires_at, fired_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                )
                .bind(license.id.as_str())
                .bind(horizon)
                .bind(expires_at.timestamp())
                .bind(event.as_ref().map_or(expires_at.timestamp(), |e| e.at.timestamp()))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted == 0 {
                    return Ok(false);
                }
                if let Some(event) = &event {
                    insert_event(&mut tx, Some(&license.id), Some(license.revision), event).await?;
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn auto_renew_due(&self, now: Timestamp, limit: u32) -> Result<Vec<License>> {
                let rows: Vec<LicenseRow> = sqlx::query_as(concat!(
                    license_select!(),
                    "WHERE l.state = 'active' AND l.expires_at IS NOT NULL \
                     AND COALESCE(l.auto_renew, p.auto_renew) \
                     AND l.expires_at - p.renew_before_secs <= $1 \
                     ORDER BY l.expires_at, l.id LIMIT $2"
                ))
                .bind(now.timestamp())
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await?;
                collect(rows)
            }

            async fn create_webhook(
                &self,
                w: &crate::model::Webhook,
                event: NewEvent,
            ) -> Result<()> {
                let mut tx = self.writer().begin().await?;
                sqlx::query(
                    "INSERT INTO webhooks (id, url, secret, created_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(&w.id)
                .bind(&w.url)
                .bind(&w.secret.0)
                .bind(w.created_at.timestamp())
                .execute(&mut *tx)
                .await?;
                for kind in &w.kinds {
                    sqlx::query(
                        "INSERT INTO webhook_kinds (webhook_id, kind) VALUES ($1, $2) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(&w.id)
                    .bind(kind)
                    .execute(&mut *tx)
                    .await?;
                }
                insert_event(&mut tx, None, None, &event).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn webhooks(&self) -> Result<Vec<crate::model::Webhook>> {
                let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
                    "SELECT id, url, secret, created_at FROM webhooks WHERE removed_at IS NULL \
                     ORDER BY created_at, id",
                )
                .fetch_all(self.reader())
                .await?;
                let kinds: Vec<(String, String)> = sqlx::query_as(
                    "SELECT k.webhook_id, k.kind FROM webhook_kinds k \
                     JOIN webhooks w ON w.id = k.webhook_id WHERE w.removed_at IS NULL \
                     ORDER BY k.kind",
                )
                .fetch_all(self.reader())
                .await?;
                rows.into_iter()
                    .map(|(id, url, secret, created)| {
                        Ok(crate::model::Webhook {
                            kinds: kinds
                                .iter()
                                .filter(|(w, _)| *w == id)
                                .map(|(_, k)| k.clone())
                                .collect(),
                            id,
                            url,
                            secret: crate::model::WebhookSecret(secret),
                            created_at: super::rows::ts(created)?,
                        })
                    })
                    .collect()
            }

            async fn set_webhook_secret(&self, id: &str, sealed: &str) -> Result<()> {
                sqlx::query("UPDATE webhooks SET secret = $1 WHERE id = $2")
                    .bind(sealed)
                    .bind(id)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn remove_webhook(&self, id: &str, event: NewEvent) -> Result<bool> {
                let mut tx = self.writer().begin().await?;
                let now = event.at.timestamp();
                let removed = sqlx::query(
                    "UPDATE webhooks SET removed_at = $1 WHERE id = $2 AND removed_at IS NULL",
                )
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if removed == 0 {
                    return Ok(false);
                }
                sqlx::query(
                    "UPDATE deliveries SET state = 'failed', last_error = 'webhook removed', \
                     updated_at = $1 WHERE webhook_id = $2 AND state = 'pending'",
                )
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                insert_event(&mut tx, None, None, &event).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn due_deliveries(
                &self,
                now: Timestamp,
                limit: u32,
            ) -> Result<Vec<crate::model::DueDelivery>> {
                #[derive(sqlx::FromRow)]
                struct Due {
                    id: i64,
                    webhook_id: String,
                    url: String,
                    secret: String,
                    attempts: i64,
                    created_at: i64,
                    #[sqlx(flatten)]
                    event: EventRow,
                }
                let rows: Vec<Due> = sqlx::query_as(
                    "SELECT d.id, d.webhook_id, w.url, w.secret, d.attempts, d.created_at, \
                     e.seq, e.at, e.actor, e.kind, e.license_id, e.revision, e.before, e.after \
                     FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id \
                     JOIN events e ON e.seq = d.event_seq \
                     WHERE d.state = 'pending' AND d.next_at <= $1 \
                     ORDER BY d.next_at, d.id LIMIT $2",
                )
                .bind(now.timestamp())
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await?;
                rows.into_iter()
                    .map(|r| {
                        Ok(crate::model::DueDelivery {
                            id: r.id,
                            webhook_id: r.webhook_id,
                            url: r.url,
                            secret: crate::model::WebhookSecret(r.secret),
                            attempts: u32::try_from(r.attempts).unwrap_or(u32::MAX),
                            created_at: super::rows::ts(r.created_at)?,
                            event: EventView::try_from(r.event)?,
                        })
                    })
                    .collect()
            }

            async fn record_attempt(&self, a: &crate::model::Attempt) -> Result<()> {
                let mut tx = self.writer().begin().await?;
                sqlx::query(
                    "INSERT INTO delivery_attempts (delivery_id, at, status, error, millis) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(a.delivery_id)
                .bind(a.at.timestamp())
                .bind(a.status.map(i64::from))
                .bind(&a.error)
                .bind(a.millis)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE deliveries SET state = $1, attempts = attempts + 1, next_at = $2, \
                     last_status = $3, last_error = $4, updated_at = $5 \
                     WHERE id = $6 AND state = 'pending'",
                )
                .bind(a.state.as_str())
                .bind(a.next_at.timestamp())
                .bind(a.status.map(i64::from))
                .bind(&a.error)
                .bind(a.at.timestamp())
                .bind(a.delivery_id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn deliveries(
                &self,
                webhook: &str,
                limit: u32,
            ) -> Result<Vec<tessera_protocol::wire::DeliveryView>> {
                #[allow(clippy::type_complexity)]
                let rows: Vec<(i64, String, i64, String, String, i64, Option<i64>, Option<String>, i64, i64)> =
                    sqlx::query_as(
                        "SELECT d.id, d.webhook_id, d.event_seq, e.kind, d.state, d.attempts, \
                         d.last_status, d.last_error, d.next_at, d.created_at \
                         FROM deliveries d JOIN events e ON e.seq = d.event_seq \
                         WHERE d.webhook_id = $1 ORDER BY d.id DESC LIMIT $2",
                    )
                    .bind(webhook)
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?;
                rows.into_iter()
                    .map(|(id, webhook, event_seq, kind, state, attempts, status, error, next_at, created)| {
                        let state = tessera_protocol::wire::DeliveryState::parse(&state)
                            .ok_or_else(|| Error::Corrupt(format!("delivery state {state}")))?;
                        Ok(tessera_protocol::wire::DeliveryView {
                            id,
                            webhook,
                            event_seq,
                            kind,
                            state,
                            attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                            last_status: status.and_then(|s| u16::try_from(s).ok()),
                            last_error: error,
                            next_at: (state == tessera_protocol::wire::DeliveryState::Pending)
                                .then(|| super::rows::ts(next_at))
                                .transpose()?,
                            created_at: super::rows::ts(created)?,
                        })
                    })
                    .collect()
            }

            async fn seats_in_use(
                &self,
                license: &LicenseId,
                since: Timestamp,
            ) -> Result<Option<u32>> {
                let (max,): (Option<i64>,) = sqlx::query_as(
                    "SELECT MAX(users) FROM instances WHERE license_id = $1 AND last_seen >= $2",
                )
                .bind(license.as_str())
                .bind(since.timestamp())
                .fetch_one(self.reader())
                .await?;
                Ok(max.map(|n| u32::try_from(n).unwrap_or(u32::MAX)))
            }

            async fn usage_days(
                &self,
                license: &LicenseId,
                limit: u32,
            ) -> Result<Vec<tessera_protocol::wire::UsageDay>> {
                let rows: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT day, MAX(max_users) FROM usage_daily WHERE license_id = $1 \
                     GROUP BY day ORDER BY day DESC LIMIT $2",
                )
                .bind(license.as_str())
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(day, max)| tessera_protocol::wire::UsageDay {
                        day,
                        max_users: u32::try_from(max).unwrap_or(u32::MAX),
                    })
                    .collect())
            }

        }

        /// Append an event and, in the same transaction, its deliveries to
        /// every webhook that wants its kind (the outbox: an event committed
        /// is an event delivered, even across a crash).
        async fn insert_event(
            tx: &mut $conn,
            license: Option<&LicenseId>,
            revision: Option<u64>,
            e: &NewEvent,
        ) -> Result<()> {
            // Sequence numbers must become visible in their order, or a
            // follower of `?after=<seq>` skips one that commits late.
            <$ty>::order_events(&mut *tx).await?;
            let (seq,): (i64,) = sqlx::query_as(
                "INSERT INTO events (at, actor, kind, license_id, revision, before, after) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING seq",
            )
            .bind(e.at.timestamp())
            .bind(&e.actor)
            .bind(e.kind)
            .bind(license.map(LicenseId::as_str))
            .bind(revision.map(i64_of))
            .bind(json_text(&e.before))
            .bind(json_text(&e.after))
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO deliveries (webhook_id, event_seq, state, attempts, next_at, \
                 created_at, updated_at) \
                 SELECT w.id, $1, 'pending', 0, $2, $2, $2 FROM webhooks w \
                 WHERE w.removed_at IS NULL AND EXISTS (SELECT 1 FROM webhook_kinds k \
                   WHERE k.webhook_id = w.id AND (k.kind = $3 OR k.kind = '*'))",
            )
            .bind(seq)
            .bind(e.at.timestamp())
            .bind(e.kind)
            .execute(&mut *tx)
            .await?;
            Ok(())
        }
    };
}

pub(crate) use impl_license_store;
