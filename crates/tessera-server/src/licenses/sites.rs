//! Sites and their relays (docs/PROTOCOL.md §26): the bundle the authority
//! signs for an isolated network's relay — its licenses' terms as they are
//! now, the site's share of their machines, the relay's key, until when —
//! signed anew whenever the vendor asks or the relay synchronises.

use chrono::Duration;
use tessera_protocol::bundle::{BundleLicense, SiteBundle};
use tessera_protocol::wire::{
    LicenseState, RelaySyncRequest, SiteBundleFile, SiteInput, SiteLicense, SiteUsage, SiteView,
};
use tessera_protocol::{LicenseId, PublicKey, Timestamp};

use super::Shared;
use super::fields::lifetime_field;
use crate::error::{Error, Result};
use crate::model::License;
use crate::status::{Echo, license_claims};
use crate::store::SiteRow;

/// The most licenses one site may name (a bundle stays under 8 KiB).
pub const MAX_SITE_LICENSES: usize = 20;
/// A bundle's lifetime unless the site says otherwise.
pub const DEFAULT_VALID_FOR: Duration = Duration::days(30);

/// Sites: create, list, revoke, and their bundles.
#[derive(Debug)]
pub struct Sites {
    shared: Shared,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::unprocessable("invalid_site", message)
}

fn check_name(name: &str) -> Result<()> {
    let ok = (1..=60).contains(&name.len())
        && name
            .bytes()
            .all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(invalid("a site's name is 1–60 of a-z 0-9 - _ ."))
    }
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_timestamp(secs, 0).unwrap_or_default()
}

impl Sites {
    /// Sites over the shared parts.
    #[must_use]
    pub fn new(shared: &Shared) -> Self {
        Self {
            shared: shared.clone(),
        }
    }

    /// Create a site and sign its first bundle.
    ///
    /// # Errors
    /// 422 `invalid_site` for a bad name, key, license list or share; 404
    /// for an unknown license; 409 `license_revoked`, `site_exists`,
    /// `machines_allocated` (the sites' shares would exceed the license's
    /// machines).
    pub async fn create(&self, input: &SiteInput) -> Result<(SiteView, SiteBundleFile)> {
        check_name(&input.site)?;
        PublicKey::from_paserk(&input.relay_key).map_err(|_| {
            invalid("relay_key is not a k4.public key: copy it from `tessera relay init`")
        })?;
        if input.licenses.is_empty() || input.licenses.len() > MAX_SITE_LICENSES {
            return Err(invalid(format!(
                "a site names 1–{MAX_SITE_LICENSES} licenses"
            )));
        }
        let valid_for = match &input.valid_for {
            Some(text) => lifetime_field("valid_for", text)?,
            None => DEFAULT_VALID_FOR,
        };
        if valid_for < Duration::minutes(10) {
            return Err(invalid("valid_for is at least 10 minutes"));
        }
        for (i, share) in input.licenses.iter().enumerate() {
            if input.licenses[..i]
                .iter()
                .any(|l| l.license == share.license)
            {
                return Err(invalid(format!("{} is named twice", share.license)));
            }
            let license = self.license(&share.license).await?;
            if license.state == LicenseState::Revoked {
                return Err(Error::conflict(
                    "license_revoked",
                    format!("{} is revoked", share.license),
                ));
            }
            self.check_share(&license, share).await?;
        }
        let now = self.shared.clock.now();
        let row = SiteRow {
            name: input.site.clone(),
            relay_key: input.relay_key.clone(),
            licenses: serde_json::to_string(&input.licenses).map_err(json_error)?,
            valid_for: valid_for.num_seconds(),
            created_at: now.timestamp(),
            revoked_at: None,
            last_sync_at: None,
            usage: None,
        };
        if !self.shared.store.insert_site(&row).await? {
            return Err(Error::conflict(
                "site_exists",
                format!("a site named {} exists", input.site),
            ));
        }
        tracing::info!(site = %row.name, "site created");
        let bundle = self.sign(&row).await?;
        Ok((view(&row)?, bundle))
    }

    /// Every site.
    ///
    /// # Errors
    /// The store's.
    pub async fn list(&self) -> Result<Vec<SiteView>> {
        self.shared.store.sites().await?.iter().map(view).collect()
    }

    /// A new bundle for `name`, to carry to its relay by hand.
    ///
    /// # Errors
    /// 404 unknown site, 409 `site_revoked`.
    pub async fn bundle(&self, name: &str) -> Result<SiteBundleFile> {
        let row = self.site(name).await?;
        self.sign(&row).await
    }

    /// Revoke a site: no bundle is signed for it again (its relay keeps
    /// answering until the one it holds ends).
    ///
    /// # Errors
    /// 404 unknown site, 409 `site_revoked`.
    pub async fn revoke(&self, name: &str) -> Result<SiteView> {
        self.site(name).await?;
        if !self
            .shared
            .store
            .revoke_site(name, self.shared.clock.now())
            .await?
        {
            return Err(revoked(name));
        }
        tracing::info!(site = %name, "site revoked");
        let row = self.shared.store.site(name).await?;
        view(&row.ok_or_else(|| Error::not_found("site", name))?)
    }

    /// A relay synchronises: its proof checked with the key its site names,
    /// its usage kept, a fresh bundle returned.
    ///
    /// # Errors
    /// 400 for what is no proof, 401 `unknown_relay` for an unknown site or
    /// a proof its relay key did not sign (or signed more than 5 minutes
    /// from this clock), 409 `site_revoked`.
    pub async fn sync(&self, req: &RelaySyncRequest) -> Result<SiteBundleFile> {
        let unknown = |why: String| Error::Forbidden {
            code: "unknown_relay",
            message: why,
        };
        let name = tessera_protocol::relay::claimed_site(&req.proof)?;
        let Some(row) = self.shared.store.site(&name).await? else {
            return Err(unknown("no site of that name".into()));
        };
        let key = PublicKey::from_paserk(&row.relay_key)?;
        let now = self.shared.clock.now();
        let report = tessera_protocol::relay::verify_sync(&req.proof, &key, now)
            .map_err(|e| unknown(format!("the proof does not verify: {e}")))?;
        if row.revoked_at.is_some() {
            return Err(revoked(&name));
        }
        let usage = serde_json::to_string(&report.usage).map_err(json_error)?;
        self.shared
            .store
            .record_site_sync(&name, &usage, now)
            .await?;
        tracing::info!(site = %name, "relay synchronised");
        self.sign(&row).await
    }

    /// The sites' shares of a license's machines and the places taken
    /// online stay within its limit.
    async fn check_share(&self, license: &License, share: &SiteLicense) -> Result<()> {
        let Some(max) = license.machines.max_machines else {
            return Ok(());
        };
        let mine = share.max_machines.unwrap_or(max);
        if mine > max {
            return Err(invalid(format!(
                "{} has {max} machines; a site cannot have {mine}",
                license.id
            )));
        }
        let store = &self.shared.store;
        let online = store
            .active_machines(&license.id, self.shared.clock.now())
            .await?;
        let taken = online.saturating_add(reserved(store, &license.id, max).await?);
        if taken.saturating_add(mine) > max {
            return Err(Error::conflict(
                "machines_allocated",
                format!(
                    "{} has {max} machines and other sites or online machines hold {taken}: give this site at most {}",
                    license.id,
                    max.saturating_sub(taken)
                ),
            ));
        }
        Ok(())
    }

    async fn site(&self, name: &str) -> Result<SiteRow> {
        let row = self
            .shared
            .store
            .site(name)
            .await?
            .ok_or_else(|| Error::not_found("site", name))?;
        if row.revoked_at.is_some() {
            return Err(revoked(name));
        }
        Ok(row)
    }

    async fn license(&self, id: &str) -> Result<License> {
        let id = LicenseId::parse(id).map_err(|_| invalid(format!("{id} is no license id")))?;
        self.shared.license(&id).await
    }

    /// The site's bundle as of now.
    async fn sign(&self, row: &SiteRow) -> Result<SiteBundleFile> {
        let now = self.shared.clock.now();
        let shares: Vec<SiteLicense> = serde_json::from_str(&row.licenses).map_err(json_error)?;
        let mut licenses = Vec::with_capacity(shares.len());
        for share in &shares {
            let license = self.license(&share.license).await?;
            licenses.push(bundle_license(&license, share.max_machines, now));
        }
        let exp = now + Duration::seconds(row.valid_for);
        let bundle = SiteBundle {
            site: row.name.clone(),
            relay_key: row.relay_key.clone(),
            iat: now,
            exp,
            licenses,
        };
        Ok(SiteBundleFile {
            format: SiteBundleFile::FORMAT.to_owned(),
            site: row.name.clone(),
            valid_until: exp,
            bundle: self.shared.signer.sign_bundle(&bundle)?,
        })
    }
}

/// A license's terms as a bundle carries them: what the authority would
/// sign for it now, and the site's share of its machines.
fn bundle_license(license: &License, share: Option<u32>, now: Timestamp) -> BundleLicense {
    let tfp = license.token_hash.fingerprint();
    let c = license_claims(license, tfp.clone(), Echo::default(), now, None);
    let settings = &license.machines;
    let counts = settings.max_machines.is_some()
        || settings.mode == tessera_protocol::wire::MachineMode::Floating;
    let max_machines = match (share, settings.max_machines) {
        (Some(s), Some(m)) => Some(s.min(m)),
        (s, m) => s.or(m),
    };
    let mode = if counts {
        Some(settings.mode)
    } else {
        max_machines.map(|_| tessera_protocol::wire::MachineMode::NodeLocked)
    };
    BundleLicense {
        product: Some(license.product.clone()),
        tfp,
        license: license.id.to_string(),
        rev: c.rev,
        status: c.status,
        valid: c.valid,
        plan: c.plan,
        customer: c.customer,
        features: c.features,
        entitlements: c.entitlements,
        on_expiry: c.on_expiry,
        enforcement: c.enforcement,
        max_users: c.max_users,
        valid_from: c.valid_from,
        expires_at: c.expires_at,
        max_machines,
        machine_mode: mode,
        lease_ttl: (mode == Some(tessera_protocol::wire::MachineMode::Floating))
            .then(|| settings.lease_ttl.num_seconds().max(1).unsigned_abs()),
    }
}

/// Machines of `license` (limited to `max`) that sites hold.
///
/// # Errors
/// The store's.
pub async fn reserved(store: &crate::store::Store, license: &LicenseId, max: u32) -> Result<u32> {
    Ok(store
        .site_shares(license.as_str())
        .await?
        .into_iter()
        .fold(0u32, |sum, share| sum.saturating_add(share.unwrap_or(max))))
}

fn revoked(name: &str) -> Error {
    Error::conflict("site_revoked", format!("site {name} is revoked"))
}

fn json_error(e: serde_json::Error) -> Error {
    Error::Corrupt(format!("site JSON: {e}"))
}

fn view(row: &SiteRow) -> Result<SiteView> {
    Ok(SiteView {
        site: row.name.clone(),
        relay_key: row.relay_key.clone(),
        licenses: serde_json::from_str(&row.licenses).map_err(json_error)?,
        valid_for_secs: row.valid_for.unsigned_abs(),
        created_at: at(row.created_at),
        revoked_at: row.revoked_at.map(at),
        last_sync_at: row.last_sync_at.map(at),
        usage: match &row.usage {
            Some(text) => serde_json::from_str::<Vec<SiteUsage>>(text).map_err(json_error)?,
            None => Vec::new(),
        },
    })
}
