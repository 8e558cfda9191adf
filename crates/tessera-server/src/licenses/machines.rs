//! Machines (docs/PROTOCOL.md §19): activation, heartbeats, borrowing,
//! deactivation and release, each answered with a signed document bound to
//! the machine; the lease reaper; the admin list.

use std::sync::Arc;

use tessera_protocol::ids::check_nonce;
use tessera_protocol::wire::{
    ActivateRequest, BorrowRequest, FingerprintMatch, MachineList, MachineMode, MachineRequest,
    MachineState, MachineView,
};
use tessera_protocol::{
    LicenseId, LicenseToken, MachineClaim, Status, Timestamp, TokenFingerprint,
};

use super::machine_rules::{borrow_until, lease_until, machine_identity, same_machine};
use super::places::Places;
use super::{Push, Shared};
use crate::error::{Error, Result};
use crate::model::{License, Machine, NewMachine};
use crate::signer::{MachineAnswer, SignedDocument};
use crate::status::Echo;
use crate::store::{Activation, Decision, MachineKey};

/// Applies the machine rules; every answer a signed document.
#[derive(Debug)]
pub struct Machines {
    pub(super) shared: Shared,
    push: Arc<Push>,
    /// When each machine's latest document was signed: the next one is
    /// signed at least a second later, so a holder takes it as newer by
    /// (revision, `iat`) even when a release follows an activation within
    /// the same second (machine changes do not move the revision).
    issued: moka::sync::Cache<(LicenseId, String), Timestamp>,
    /// The places held, as known here, and heartbeats not yet written.
    pub(super) places: Places,
    /// Machines holding a place per license, for the `used` of answers:
    /// read at most once a second (dropped at once on changes), so a
    /// heartbeat reads nothing.
    pub(super) used: moka::sync::Cache<LicenseId, u32>,
}

/// The license and the machine a public request names, checked.
struct Asked {
    license: License,
    tfp: TokenFingerprint,
    mfp: String,
    echo: Echo,
    /// The answer's lifetime, for an offline activation (§25).
    ttl: Option<chrono::Duration>,
}

impl Machines {
    /// Machines over the shared parts; changes are announced through `push`.
    #[must_use]
    pub fn new(shared: &Shared, push: Arc<Push>) -> Self {
        Self {
            shared: shared.clone(),
            push,
            issued: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(std::time::Duration::from_secs(600))
                .build(),
            places: Places::new(shared.store.clone()),
            used: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(std::time::Duration::from_secs(1))
                .build(),
        }
    }

    /// Now on this replica's clock: documents' `iat`, license expiry.
    fn now(&self) -> Timestamp {
        self.shared.clock.now()
    }

    /// Now on the database's time, for everything about leases, so that
    /// replicas whose clocks disagree agree on when a lease ends (see
    /// `Store::sync_clock`).
    pub(super) fn lease_now(&self) -> Timestamp {
        self.shared.store.lease_time(self.now())
    }

    /// Check a public request: token, fingerprint, nonce. An unknown token
    /// is answered at once with the signed `not_found` (`Err(document)`),
    /// as `/v1/validate` answers it.
    async fn asked(
        &self,
        token: &str,
        fingerprint: &str,
        components: &[String],
        nonce: Option<String>,
    ) -> Result<std::result::Result<(Asked, Vec<String>), Arc<SignedDocument>>> {
        let token = LicenseToken::parse(token)?;
        let (mfp, components) = machine_identity(fingerprint, components)?;
        if let Some(n) = &nonce {
            check_nonce(n)?;
        }
        let hash = token.hash();
        let echo = Echo {
            instance_id: None,
            nonce,
        };
        let Some(license) = self.shared.cache.lookup(&hash).await? else {
            let signed = (self.shared.signer).for_unknown(hash.fingerprint(), echo, self.now())?;
            self.shared
                .metrics
                .validation(signed.claims.status.as_str());
            return Ok(Err(signed));
        };
        let asked = Asked {
            license: (*license).clone(),
            tfp: hash.fingerprint(),
            mfp,
            echo,
            ttl: None,
        };
        Ok(Ok((asked, components)))
    }

    /// The claim of where `machine` (or, refused, the license) stands.
    async fn claim(&self, license: &License, machine: Option<&Machine>) -> Result<MachineClaim> {
        let s = &license.machines;
        let floating = s.mode == MachineMode::Floating;
        Ok(MachineClaim {
            id: machine.map(|m| m.id.clone()),
            activated_at: machine.map(|m| m.activated_at),
            mode: s.mode,
            used: self.holding(&license.id).await?,
            max: s.max_machines,
            lease_ttl: floating.then(|| u64::try_from(s.lease_ttl.num_seconds()).unwrap_or(0)),
            lease_expires_at: machine.and_then(|m| m.lease_expires_at),
        })
    }

    /// The signed answer for `asked`: its place, or `refused`.
    async fn answer(
        &self,
        asked: Asked,
        machine: Option<&Machine>,
        refused: Option<Status>,
    ) -> Result<Arc<SignedDocument>> {
        let claim = self.claim(&asked.license, machine).await?;
        let seats_exceeded = self.shared.seats.exceeded(&asked.license).await;
        // A license that cannot be used answers with its own status (one
        // kept past expiry by its policy still holds its places, §21).
        let now = self.now();
        let refused = if crate::status::usable(&asked.license, now) {
            refused
        } else {
            Some(asked.license.status_at(now))
        };
        let key = (asked.license.id.clone(), asked.mfp.clone());
        let at = self
            .issued
            .get(&key)
            .map_or(now, |last| now.max(last + chrono::Duration::seconds(1)));
        self.issued.insert(key, at);
        let answer = MachineAnswer {
            mfp: asked.mfp,
            claim,
            refused,
            seats_exceeded,
            ttl: asked.ttl,
        };
        let signed =
            (self.shared.signer).for_machine(&asked.license, asked.tfp, asked.echo, at, answer)?;
        self.shared
            .metrics
            .validation(signed.claims.status.as_str());
        Ok(signed)
    }

    /// `POST /v1/machines/activate`: take a place, or hold the one this
    /// machine has; `too_many_machines` when every place is taken.
    ///
    /// # Errors
    /// 400 for a malformed token, fingerprint, components or nonce; 404
    /// for an unknown token.
    pub async fn activate(&self, req: ActivateRequest) -> Result<Arc<SignedDocument>> {
        self.activate_as(req, true).await
    }

    /// [`Machines::activate`]; `heartbeat_started`: whether the activation
    /// counts as the machine's first heartbeat (Tessera's API) or not
    /// (Keygen's: its first ping starts it, `HEARTBEAT_NOT_STARTED` until then).
    ///
    /// # Errors
    /// As [`Machines::activate`].
    pub async fn activate_as(
        &self,
        req: ActivateRequest,
        heartbeat_started: bool,
    ) -> Result<Arc<SignedDocument>> {
        let (asked, components) = match self
            .asked(&req.token, &req.fingerprint, &req.components, req.nonce)
            .await?
        {
            Ok(asked) => asked,
            Err(unknown) => return Ok(unknown),
        };
        let new = NewMachine {
            id: format!("mch_{}", uuid::Uuid::now_v7()),
            mfp: asked.mfp.clone(),
            name: req.name.map(|n| clip(&n)),
            hostname: req.hostname.map(|n| clip(&n)),
            platform: req.platform.map(|n| clip(&n)),
            components: components.clone(),
            heartbeat_started,
        };
        self.take_place(asked, new, components).await
    }

    /// An offline activation (§25): the machine `mfp` of `license` takes a
    /// place like an online activation, and the answer — bound to the
    /// machine, answering `nonce` — lives `ttl`. Floating licenses need
    /// heartbeats, which an isolated machine cannot send: refused.
    ///
    /// # Errors
    /// 422 `offline_floating` for a floating license, 400 for a bad nonce.
    pub async fn activate_offline(
        &self,
        license: License,
        mfp: String,
        nonce: String,
        ttl: chrono::Duration,
        app_version: Option<String>,
    ) -> Result<Arc<SignedDocument>> {
        if license.machines.mode == MachineMode::Floating {
            return Err(Error::unprocessable(
                "offline_floating",
                "a floating license needs heartbeats, which an isolated machine cannot send: \
                 use node-locked machines for offline activation (or a site relay)",
            ));
        }
        check_nonce(&nonce)?;
        let asked = Asked {
            tfp: license.token_hash.fingerprint(),
            license,
            mfp: mfp.clone(),
            echo: Echo {
                instance_id: None,
                nonce: Some(nonce),
            },
            ttl: Some(ttl),
        };
        let new = NewMachine {
            id: format!("mch_{}", uuid::Uuid::now_v7()),
            mfp,
            name: Some("offline".to_owned()),
            hostname: None,
            platform: app_version.map(|v| clip(&format!("offline, app {v}"))),
            components: Vec::new(),
            heartbeat_started: true,
        };
        self.take_place(asked, new, Vec::new()).await
    }

    /// Take a place for `new`, or hold the one the machine has.
    async fn take_place(
        &self,
        asked: Asked,
        new: NewMachine,
        components: Vec<String>,
    ) -> Result<Arc<SignedDocument>> {
        if !crate::status::usable(&asked.license, self.now()) {
            return self.answer(asked, None, None).await;
        }
        let now = self.lease_now();
        let settings = asked.license.machines;
        let mfp = asked.mfp.clone();
        // Machines held by sites' relays (§26) are not free here.
        let reserved = match settings.max_machines {
            Some(max) => super::sites::reserved(&self.shared.store, &asked.license.id, max).await?,
            None => 0,
        };
        let activation = self
            .shared
            .store
            .activate_machine(
                &asked.license.id,
                &new,
                lease_until(&settings, now),
                now,
                settings.fingerprint_match != FingerprintMatch::Exact,
                |candidates, held| {
                    let exact = candidates.iter().find(|m| m.mfp == mfp);
                    let matched = exact.or_else(|| {
                        candidates.iter().find(|m| {
                            same_machine(m, &mfp, &components, settings.fingerprint_match)
                        })
                    });
                    if let Some(m) = matched {
                        return Decision::Renew(m.id.clone());
                    }
                    let full = settings
                        .max_machines
                        .is_some_and(|max| held.saturating_add(reserved) >= max);
                    if full {
                        Decision::Refuse
                    } else {
                        Decision::Insert
                    }
                },
            )
            .await?;
        match activation {
            Activation::Activated(m) => {
                tracing::info!(license = %asked.license.id, machine = %m.id, "machine activated");
                self.announce(&asked.license);
                self.answer(asked, Some(&m), None).await
            }
            Activation::Existing(m) => {
                // Its fingerprint may have moved (matched by components).
                self.places.forget(&asked.license.id);
                self.answer(asked, Some(&m), None).await
            }
            Activation::Refused => {
                self.answer(asked, None, Some(Status::TooManyMachines))
                    .await
            }
        }
    }

    /// `POST /v1/machines/heartbeat`: renew a floating lease (note a
    /// node-locked machine's heartbeat). A machine without a place gets
    /// `not_activated`, or `lease_expired` when its lease ran out.
    ///
    /// # Errors
    /// As [`Machines::activate`].
    pub async fn heartbeat(&self, req: MachineRequest) -> Result<Arc<SignedDocument>> {
        let (asked, _) = match self
            .asked(&req.token, &req.fingerprint, &[], req.nonce)
            .await?
        {
            Ok(asked) => asked,
            Err(unknown) => return Ok(unknown),
        };
        self.held(asked).await
    }

    /// The answer for a machine that already activated (heartbeat, or a
    /// validation that names its fingerprint).
    async fn held(&self, asked: Asked) -> Result<Arc<SignedDocument>> {
        match self.beat(&asked.license, &asked.mfp).await? {
            Ok(machine) => self.answer(asked, Some(&machine), None).await,
            Err(refusal) => self.answer(asked, None, Some(refusal)).await,
        }
    }

    /// Write the heartbeats answered since the last call (see
    /// [`Places::flush`]).
    ///
    /// # Errors
    /// The store's; the heartbeats are kept for the next call.
    pub async fn flush_heartbeats(&self) -> Result<usize> {
        self.places.flush().await
    }

    /// `/v1/validate` for a license that counts machines: the request must
    /// name its machine; the answer is that machine's (a floating lease is
    /// renewed, as by a heartbeat).
    ///
    /// # Errors
    /// 400 for a malformed fingerprint.
    pub async fn validate(
        &self,
        license: &License,
        tfp: TokenFingerprint,
        fingerprint: Option<&str>,
        echo: Echo,
    ) -> Result<Arc<SignedDocument>> {
        let Some(fingerprint) = fingerprint else {
            let asked = Asked {
                license: license.clone(),
                tfp,
                mfp: String::new(),
                echo,
                ttl: None,
            };
            return self.answer(asked, None, Some(Status::NotActivated)).await;
        };
        let (mfp, _) = machine_identity(fingerprint, &[])?;
        let asked = Asked {
            license: license.clone(),
            tfp,
            mfp,
            echo,
            ttl: None,
        };
        self.held(asked).await
    }

    /// `POST /v1/machines/borrow`: keep a floating lease until `until` (at
    /// most `max_borrow` ahead) to go offline.
    ///
    /// # Errors
    /// As [`Machines::activate`]; 422 `borrow_not_allowed`,
    /// `borrow_too_long` or `invalid_date`.
    pub async fn borrow(&self, req: BorrowRequest) -> Result<Arc<SignedDocument>> {
        let (asked, _) = match self
            .asked(&req.token, &req.fingerprint, &[], req.nonce)
            .await?
        {
            Ok(asked) => asked,
            Err(unknown) => return Ok(unknown),
        };
        let now = self.lease_now();
        let until = borrow_until(&asked.license.machines, req.until, now)?;
        // The lease as the latest heartbeats left it.
        self.flush_heartbeats().await?;
        let borrowed = self
            .shared
            .store
            .borrow_lease(&asked.license.id, &asked.mfp, until, now)
            .await?;
        self.places.forget(&asked.license.id);
        match borrowed {
            Some(m) => self.answer(asked, Some(&m), None).await,
            None => {
                let refusal = self.why_not_alive(&asked.license.id, &asked.mfp).await?;
                self.answer(asked, None, Some(refusal)).await
            }
        }
    }

    /// `POST /v1/machines/deactivate`: give the place back.
    ///
    /// # Errors
    /// As [`Machines::activate`]; 409 `not_activated` when the machine
    /// holds no place (deactivating twice).
    pub async fn deactivate(&self, req: MachineRequest) -> Result<Arc<SignedDocument>> {
        let (asked, _) = match self
            .asked(&req.token, &req.fingerprint, &[], req.nonce)
            .await?
        {
            Ok(asked) => asked,
            Err(unknown) => return Ok(unknown),
        };
        let ended = self
            .shared
            .store
            .end_machine(
                &asked.license.id,
                MachineKey::Fingerprint(&asked.mfp),
                MachineState::Deactivated,
                "machine",
                self.lease_now(),
            )
            .await?;
        if ended.is_none() {
            return Err(Error::conflict(
                "not_activated",
                "this machine holds no place on the license (already deactivated?)",
            ));
        }
        self.announce(&asked.license);
        self.answer(asked, None, Some(Status::NotActivated)).await
    }

    /// `GET /v1/admin/licenses/{id}/machines`: one page.
    ///
    /// # Errors
    /// 404 for an unknown license; the store's.
    pub async fn list(&self, id: &LicenseId, limit: u32, offset: u64) -> Result<MachineList> {
        let license = self.shared.license(id).await?;
        let items = self.shared.store.machines(id, limit, offset).await?;
        let next_offset = (items.len() == limit as usize).then(|| offset + u64::from(limit));
        Ok(MachineList {
            items: items.iter().map(Machine::view).collect(),
            active: self
                .shared
                .store
                .active_machines(id, self.lease_now())
                .await?,
            max_machines: license.machines.max_machines,
            machine_mode: license.machines.mode,
            next_offset,
        })
    }

    /// `DELETE /v1/admin/licenses/{id}/machines/{machine}`: free the place
    /// of `machine` at once (its stream hears of it).
    ///
    /// # Errors
    /// 404 for an unknown license or a machine holding no place.
    pub async fn release(&self, id: &LicenseId, machine: &str, actor: &str) -> Result<MachineView> {
        let license = self.shared.license(id).await?;
        let ended = self
            .shared
            .store
            .end_machine(
                id,
                MachineKey::Id(machine),
                MachineState::Released,
                actor,
                self.lease_now(),
            )
            .await?
            .ok_or_else(|| Error::not_found("machine", machine))?;
        tracing::info!(license = %id, machine, actor, "machine released");
        self.announce(&license);
        Ok(ended.view())
    }

    /// End the leases that ran out (the reaper, under its job lock);
    /// returns how many.
    ///
    /// # Errors
    /// The store's.
    pub async fn reap(&self, limit: u32) -> Result<usize> {
        // Leases are ended only a grace after their end, so that another
        // replica's heartbeats of the last second are written first.
        let due = self.lease_now() - crate::store::HEARTBEAT_GRACE;
        let expired = self.shared.store.expire_leases(due, limit).await?;
        let mut licenses: Vec<&LicenseId> = expired.iter().map(|m| &m.license_id).collect();
        licenses.sort_unstable();
        licenses.dedup();
        for id in licenses {
            if let Ok(license) = self.shared.license(id).await {
                self.announce(&license);
            }
        }
        Ok(expired.len())
    }

    /// A place was taken or freed: tell the license's streams, so the
    /// machine concerned asks for its own answer and waiting machines try
    /// again at once (docs/PROTOCOL.md §19).
    pub(super) fn announce(&self, license: &License) {
        self.used.invalidate(&license.id);
        self.places.forget(&license.id);
        self.push.announce(license);
    }

    /// Another replica changed the places of license `id`: drop what is
    /// known of them here and tell this replica's streams.
    pub async fn on_remote_change(&self, id: &LicenseId) {
        match self.shared.license(id).await {
            Ok(license) => self.announce(&license),
            Err(e) => {
                self.used.invalidate(id);
                self.places.forget(id);
                tracing::warn!(license = %id, error = %e, "cannot re-read a license whose machines changed elsewhere");
            }
        }
    }

    /// Notifications may have been lost: read every place again.
    pub fn resync(&self) {
        self.used.invalidate_all();
        self.places.forget_all();
    }
}

/// Names and platforms are for people: kept short.
fn clip(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(200).collect()
}
