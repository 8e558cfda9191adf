//! Machines: activations, heartbeats, releases and the lease reaper.
//!
//! An activation runs in one transaction with the license's row locked
//! (PostgreSQL; SQLite has one writer), so racing machines are counted one
//! after another: exactly the limit win, on one replica or many. The
//! partial unique index `machines_active` backs this up: one active row per
//! (license, fingerprint hash).

use serde_json::json;
use tessera_protocol::wire::{EventKind, MachineState};
use tessera_protocol::{LicenseId, Timestamp};

use super::rows::MachineActivationRow;
use super::{ChangeNotice, Store};
use crate::error::Result;
use crate::model::{Machine, NewEvent, NewMachine};

/// How long after its end a lease is still counted as holding its place,
/// and is ended by the reaper: heartbeats are written in batches each
/// second, so one answered on another replica just before the end may not
/// be in the database yet. A lease still ends within its TTL + 2 s.
pub const HEARTBEAT_GRACE: chrono::Duration = chrono::Duration::milliseconds(1500);

/// What an activation found and did.
#[derive(Debug, Clone)]
pub enum Activation {
    /// A new place was taken.
    Activated(Machine),
    /// The machine already held a place (its lease, if any, renewed).
    Existing(Machine),
    /// Every place is taken.
    Refused,
}

/// What the component decides, given the machines holding a place.
#[derive(Debug, Clone)]
pub enum Decision {
    /// This one is the machine asking: renew it.
    Renew(String),
    /// Take a new place.
    Insert,
    /// No place left.
    Refuse,
}

/// The machine columns, as a literal for `concat!` (sqlx takes only static SQL).
macro_rules! machine_columns {
    () => {
        "id, license_id, mfp, name, hostname, platform, components, state, \
         activated_at, last_heartbeat, lease_expires_at, ended_at, heartbeat_started"
    };
}

fn summary(m: &Machine) -> serde_json::Value {
    json!({
        "machine": m.id,
        "mfp": m.mfp,
        "name": m.name,
        "state": m.state,
        "lease_expires_at": m.lease_expires_at.as_ref().map(tessera_protocol::time::format),
    })
}

impl Store {
    /// Activate a machine on `license` at `now`: leases already run out are
    /// ended first (with their events), then `decide` sees the candidates
    /// — the active machines with this fingerprint hash, or with
    /// `every_candidate` all active machines (threshold matching) — and how
    /// many hold a place, and chooses. `lease_until` is the lease a new or
    /// renewed floating machine gets.
    ///
    /// # Errors
    /// The database's.
    pub async fn activate_machine(
        &self,
        license: &LicenseId,
        new: &NewMachine,
        lease_until: Option<Timestamp>,
        now: Timestamp,
        every_candidate: bool,
        decide: impl FnOnce(&[Machine], u32) -> Decision + Send,
    ) -> Result<Activation> {
        let mut tx = self.writer().begin().await?;
        self.backend.lock_license(&mut tx, license).await?;
        self.expire_leases_in(&mut tx, Some(license), now - HEARTBEAT_GRACE, u32::MAX)
            .await?;
        let candidates = if every_candidate {
            active_in(&mut tx, license).await?
        } else {
            active_machine(&mut tx, license, &new.mfp)
                .await?
                .into_iter()
                .collect()
        };
        let (held,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM machines WHERE license_id = $1 AND state = 'active'",
        )
        .bind(license.as_str())
        .fetch_one(&mut *tx)
        .await?;
        let held = u32::try_from(held).unwrap_or(u32::MAX);
        let answer = match decide(&candidates, held) {
            Decision::Renew(id) => {
                // Matched by its components, a machine whose fingerprint
                // changed keeps its place under the new one (no active row
                // has it: an exact match is always preferred).
                sqlx::query(
                    "UPDATE machines SET last_heartbeat = $1, lease_expires_at = $2, \
                     mfp = $3, components = $4 WHERE id = $5",
                )
                .bind(now.timestamp())
                .bind(lease_until.map(|t| t.timestamp()))
                .bind(&new.mfp)
                .bind(serde_json::to_string(&new.components).unwrap_or_else(|_| "[]".into()))
                .bind(&id)
                .execute(&mut *tx)
                .await?;
                if candidates.iter().any(|m| m.id == id && m.mfp != new.mfp) {
                    self.notify_machines(&mut tx, license).await?;
                }
                Activation::Existing(machine_by_id(&mut tx, &id).await?)
            }
            Decision::Insert => {
                sqlx::query(concat!(
                    "INSERT INTO machines (",
                    machine_columns!(),
                    ") \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', $8, $8, $9, NULL, $10)"
                ))
                .bind(&new.id)
                .bind(license.as_str())
                .bind(&new.mfp)
                .bind(&new.name)
                .bind(&new.hostname)
                .bind(&new.platform)
                .bind(serde_json::to_string(&new.components).unwrap_or_else(|_| "[]".into()))
                .bind(now.timestamp())
                .bind(lease_until.map(|t| t.timestamp()))
                .bind(new.heartbeat_started)
                .execute(&mut *tx)
                .await?;
                let machine = machine_by_id(&mut tx, &new.id).await?;
                let event = machine_event(EventKind::MachineActivated, "machine", now, &machine);
                self.insert_event(&mut tx, Some(license), None, &event)
                    .await?;
                self.notify_machines(&mut tx, license).await?;
                Activation::Activated(machine)
            }
            Decision::Refuse => {
                let event = NewEvent {
                    at: now,
                    actor: "machine".into(),
                    kind: EventKind::MachineRefused,
                    before: None,
                    after: Some(json!({"mfp": new.mfp, "name": new.name, "active": held})),
                };
                self.insert_event(&mut tx, Some(license), None, &event)
                    .await?;
                Activation::Refused
            }
        };
        tx.commit().await?;
        Ok(answer)
    }

    /// Keep the lease of machine `mfp` until `until` (a borrow), written at
    /// once; `None` when it holds no place (never activated, released, or
    /// its lease already ran out: a borrow does not bring a lease back).
    ///
    /// # Errors
    /// The database's.
    pub async fn borrow_lease(
        &self,
        license: &LicenseId,
        mfp: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<Machine>> {
        let mut tx = self.writer().begin().await?;
        let renewed = sqlx::query(
            "UPDATE machines SET last_heartbeat = $1, \
             lease_expires_at = CASE WHEN $2 > lease_expires_at THEN $2 ELSE lease_expires_at END \
             WHERE license_id = $3 AND mfp = $4 AND state = 'active' \
             AND lease_expires_at IS NOT NULL AND lease_expires_at > $1",
        )
        .bind(now.timestamp())
        .bind(until.timestamp())
        .bind(license.as_str())
        .bind(mfp)
        .execute(&mut *tx)
        .await?;
        let machine = if renewed.rows_affected() == 0 {
            None
        } else {
            active_machine(&mut tx, license, mfp).await?
        };
        tx.commit().await?;
        Ok(machine)
    }

    /// End the place of the active machine matching `which` (`mfp = $2` or
    /// `id = $2`): `deactivated` by itself or `released` by `actor`, with a
    /// `machine.released` event. `None` when no such machine holds a place.
    ///
    /// # Errors
    /// The database's.
    pub async fn end_machine(
        &self,
        license: &LicenseId,
        which: MachineKey<'_>,
        state: MachineState,
        actor: &str,
        now: Timestamp,
    ) -> Result<Option<Machine>> {
        let mut tx = self.writer().begin().await?;
        let found = match which {
            MachineKey::Fingerprint(mfp) => active_machine(&mut tx, license, mfp).await?,
            MachineKey::Id(id) => find_machine(&mut tx, id)
                .await?
                .filter(|m| m.license_id == *license && m.state == MachineState::Active),
        };
        let Some(mut machine) = found else {
            return Ok(None);
        };
        sqlx::query("UPDATE machines SET state = $1, ended_at = $2 WHERE id = $3")
            .bind(state.to_string())
            .bind(now.timestamp())
            .bind(&machine.id)
            .execute(&mut *tx)
            .await?;
        machine.state = state;
        machine.ended_at = Some(now);
        let event = machine_event(EventKind::MachineReleased, actor, now, &machine);
        self.insert_event(&mut tx, Some(license), None, &event)
            .await?;
        self.notify_machines(&mut tx, license).await?;
        tx.commit().await?;
        Ok(Some(machine))
    }

    /// End every lease that ran out by `now` (at most `limit`), each with a
    /// `lease.expired` event: the reaper's job.
    ///
    /// # Errors
    /// The database's.
    pub async fn expire_leases(&self, now: Timestamp, limit: u32) -> Result<Vec<Machine>> {
        let mut tx = self.writer().begin().await?;
        let expired = self.expire_leases_in(&mut tx, None, now, limit).await?;
        tx.commit().await?;
        Ok(expired)
    }

    async fn expire_leases_in(
        &self,
        tx: &mut sqlx::AnyConnection,
        license: Option<&LicenseId>,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<Machine>> {
        let due: Vec<MachineActivationRow> = sqlx::query_as(concat!(
            "SELECT ",
            machine_columns!(),
            " FROM machines WHERE state = 'active' \
             AND lease_expires_at IS NOT NULL AND lease_expires_at <= $1 \
             AND ($2 IS NULL OR license_id = $2) ORDER BY lease_expires_at LIMIT $3"
        ))
        .bind(now.timestamp())
        .bind(license.map(LicenseId::as_str))
        .bind(i64::from(limit.min(i32::MAX as u32)))
        .fetch_all(&mut *tx)
        .await?;
        let mut expired = Vec::with_capacity(due.len());
        for row in due {
            let mut m = Machine::try_from(row)?;
            sqlx::query(
                "UPDATE machines SET state = 'expired', ended_at = lease_expires_at \
                 WHERE id = $1 AND state = 'active'",
            )
            .bind(&m.id)
            .execute(&mut *tx)
            .await?;
            m.state = MachineState::Expired;
            m.ended_at = m.lease_expires_at;
            let event = machine_event(EventKind::LeaseExpired, "scheduler", now, &m);
            self.insert_event(&mut *tx, Some(&m.license_id), None, &event)
                .await?;
            expired.push(m);
        }
        let mut licenses: Vec<&LicenseId> = expired.iter().map(|m| &m.license_id).collect();
        licenses.sort_unstable();
        licenses.dedup();
        for id in licenses {
            self.notify_machines(tx, id).await?;
        }
        Ok(expired)
    }

    /// Other replicas learn that places of `license` changed (their
    /// streams of it are told, their cached places dropped).
    async fn notify_machines(
        &self,
        tx: &mut sqlx::AnyConnection,
        license: &LicenseId,
    ) -> Result<()> {
        let notice = ChangeNotice::Machines {
            license: license.clone(),
        };
        self.backend.notify(tx, &notice).await
    }

    /// Machines of `license`: those holding a place first, then the most
    /// recently ended; `limit` after skipping `offset`.
    ///
    /// # Errors
    /// The database's.
    pub async fn machines(
        &self,
        license: &LicenseId,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<Machine>> {
        self.all(
            sqlx::query_as::<_, MachineActivationRow>(concat!(
                "SELECT ",
                machine_columns!(),
                " FROM machines WHERE license_id = $1 \
                 ORDER BY CASE WHEN state = 'active' THEN 0 ELSE 1 END, \
                 COALESCE(ended_at, activated_at) DESC, id LIMIT $2 OFFSET $3"
            ))
            .bind(license.as_str())
            .bind(i64::from(limit))
            .bind(i64::try_from(offset).unwrap_or(i64::MAX)),
        )
        .await
    }

    /// Write a batch of heartbeats `(license, mfp) → beat` in one
    /// transaction. A heartbeat was answered only while its lease ran (as
    /// stored or as an earlier heartbeat of the batch left it); it renews
    /// only a machine still active — one the reaper ended stays ended —
    /// and never shortens a lease.
    ///
    /// # Errors
    /// The database's.
    pub async fn write_heartbeats(
        &self,
        beats: &[((LicenseId, String), crate::licenses::places::Beat)],
    ) -> Result<()> {
        let mut tx = self.writer().begin().await?;
        for ((license, mfp), beat) in beats {
            sqlx::query(
                "UPDATE machines SET \
                 last_heartbeat = CASE WHEN $1 > last_heartbeat THEN $1 ELSE last_heartbeat END, \
                 heartbeat_started = TRUE, \
                 lease_expires_at = CASE WHEN lease_expires_at IS NULL THEN NULL \
                     WHEN $2 > lease_expires_at THEN $2 ELSE lease_expires_at END \
                 WHERE license_id = $3 AND mfp = $4 AND state = 'active'",
            )
            .bind(beat.at.timestamp())
            .bind(beat.lease_until.map(|t| t.timestamp()))
            .bind(license.as_str())
            .bind(mfp)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The active row of machine `mfp` on `license`, whatever its lease.
    ///
    /// # Errors
    /// The database's.
    pub async fn active_machine_of(
        &self,
        license: &LicenseId,
        mfp: &str,
    ) -> Result<Option<Machine>> {
        let mut conn = self.reader().acquire().await?;
        active_machine(&mut conn, license, mfp).await
    }

    /// Machine `id`, whatever its state.
    ///
    /// # Errors
    /// The database's.
    pub async fn machine(&self, id: &str) -> Result<Option<Machine>> {
        let row: Option<MachineActivationRow> = sqlx::query_as(concat!(
            "SELECT ",
            machine_columns!(),
            " FROM machines WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        row.map(Machine::try_from).transpose()
    }

    /// Machines of `license` holding a place at `now`.
    ///
    /// # Errors
    /// The database's.
    pub async fn active_machines(&self, license: &LicenseId, now: Timestamp) -> Result<u32> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM machines WHERE license_id = $1 AND state = 'active' \
             AND (lease_expires_at IS NULL OR lease_expires_at > $2)",
        )
        .bind(license.as_str())
        .bind((now - HEARTBEAT_GRACE).timestamp())
        .fetch_one(self.reader())
        .await?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// The latest activation of machine `mfp` on `license`, whatever its
    /// state.
    ///
    /// # Errors
    /// The database's.
    pub async fn latest_machine(&self, license: &LicenseId, mfp: &str) -> Result<Option<Machine>> {
        let row: Option<MachineActivationRow> = sqlx::query_as(concat!(
            "SELECT ",
            machine_columns!(),
            " FROM machines WHERE license_id = $1 AND mfp = $2 \
             ORDER BY activated_at DESC, id DESC LIMIT 1"
        ))
        .bind(license.as_str())
        .bind(mfp)
        .fetch_optional(self.reader())
        .await?;
        row.map(Machine::try_from).transpose()
    }
}

/// Which machine an end names.
#[derive(Debug, Clone, Copy)]
pub enum MachineKey<'a> {
    /// By fingerprint hash (the machine itself).
    Fingerprint(&'a str),
    /// By id (the vendor).
    Id(&'a str),
}

fn machine_event(kind: EventKind, actor: &str, now: Timestamp, m: &Machine) -> NewEvent {
    NewEvent {
        at: now,
        actor: actor.to_owned(),
        kind,
        before: None,
        after: Some(summary(m)),
    }
}

/// The machines of `license` with `state = 'active'` (leases included,
/// whatever their end: callers expire them first).
async fn active_in(tx: &mut sqlx::AnyConnection, license: &LicenseId) -> Result<Vec<Machine>> {
    let rows: Vec<MachineActivationRow> = sqlx::query_as(concat!(
        "SELECT ",
        machine_columns!(),
        " FROM machines WHERE license_id = $1 AND state = 'active'"
    ))
    .bind(license.as_str())
    .fetch_all(&mut *tx)
    .await?;
    rows.into_iter().map(Machine::try_from).collect()
}

async fn machine_by_id(tx: &mut sqlx::AnyConnection, id: &str) -> Result<Machine> {
    find_machine(tx, id)
        .await?
        .ok_or_else(|| crate::Error::Corrupt(format!("machine {id} vanished in its transaction")))
}

/// Machine `id`, whatever its state; `None` when there is none.
async fn find_machine(tx: &mut sqlx::AnyConnection, id: &str) -> Result<Option<Machine>> {
    let row: Option<MachineActivationRow> = sqlx::query_as(concat!(
        "SELECT ",
        machine_columns!(),
        " FROM machines WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    row.map(Machine::try_from).transpose()
}

async fn active_machine(
    tx: &mut sqlx::AnyConnection,
    license: &LicenseId,
    mfp: &str,
) -> Result<Option<Machine>> {
    let row: Option<MachineActivationRow> = sqlx::query_as(concat!(
        "SELECT ",
        machine_columns!(),
        " FROM machines \
         WHERE license_id = $1 AND mfp = $2 AND state = 'active'"
    ))
    .bind(license.as_str())
    .bind(mfp)
    .fetch_optional(&mut *tx)
    .await?;
    row.map(Machine::try_from).transpose()
}
