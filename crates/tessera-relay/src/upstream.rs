//! Upstream and downstream (docs/PROTOCOL.md §26): a relay synchronises
//! with the authority — or with the relay above it — whenever a route
//! exists, proving it holds its key, reporting usage and taking a newer
//! bundle; and it certifies the relays below it (a building below a site)
//! with bundles of its own, carrying its bundle as their parent and
//! granting no more than their share, which it counts as taken.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use tessera_protocol::bundle::{SiteBundle, sign_child_bundle};
use tessera_protocol::relay::{SyncReport, claimed_site, sign_sync, verify_sync};
use tessera_protocol::wire::{RelaySyncRequest, SiteBundleFile, SiteLicense, SiteUsage};
use tessera_protocol::{PublicKey, Timestamp};
use tokio_util::sync::CancellationToken;

use crate::Relay;
use crate::error::{Error, Result};
use crate::store::ChildRow;

/// Installations count as in use when seen within a day.
const INSTANCE_WINDOW: Duration = Duration::days(1);

impl Relay {
    /// Synchronise every `sync_interval` (and at start) while an upstream
    /// is configured; failures are kept for the status and retried.
    pub(crate) async fn sync_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let Some(upstream) = self.config().upstream.clone() else {
            return;
        };
        let client = match reqwest::Client::builder()
            .timeout(StdDuration::from_secs(30))
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot build the upstream client");
                return;
            }
        };
        loop {
            let outcome = self.sync_once(&client, &upstream).await;
            if let Err(e) = &outcome {
                tracing::warn!(error = %e, upstream = %upstream, "synchronisation failed; retrying later");
            }
            *self
                .last_sync
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some(((self.config().clock)(), outcome.map_err(|e| e.to_string())));
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.config().sync_interval) => {}
            }
        }
    }

    /// One synchronisation: report, fetch, take the bundle if newer.
    ///
    /// # Errors
    /// When the upstream cannot be reached or refuses, or its bundle does
    /// not verify.
    pub async fn sync_once(&self, client: &reqwest::Client, upstream: &str) -> Result<bool> {
        let Some(site) = self.held().map(|h| h.bundle.site.clone()) else {
            return Err(Error::Upstream(
                "no bundle yet: import the first one by hand (it names the site)".into(),
            ));
        };
        let report = SyncReport {
            site,
            iat: (self.config().clock)(),
            usage: self.usage().await?,
        };
        let proof = sign_sync(&report, self.key())?;
        let response = client
            .post(format!("{}/v1/relay/sync", upstream.trim_end_matches('/')))
            .json(&RelaySyncRequest { proof })
            .send()
            .await
            .map_err(|e| Error::Upstream(e.to_string()))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| Error::Upstream(e.to_string()))?;
        if !status.is_success() {
            return Err(Error::Upstream(format!(
                "{status}: {}",
                text.chars().take(300).collect::<String>()
            )));
        }
        match self.take_bundle(&text).await {
            Ok(taken) => Ok(taken),
            // The upstream answered with the bundle held: nothing newer.
            Err(Error::Conflict {
                code: "rollback", ..
            }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// What this relay reports upstream: per license of its bundle, places
    /// taken (here and below), installations seen within a day and their
    /// highest user count.
    async fn usage(&self) -> Result<Vec<SiteUsage>> {
        let Some(held) = self.held() else {
            return Ok(Vec::new());
        };
        let now = (self.config().clock)();
        let seen = self
            .store()
            .instance_usage((now - INSTANCE_WINDOW).timestamp())
            .await?;
        let mut out = Vec::new();
        for l in &held.bundle.licenses {
            let row = seen.iter().find(|(tfp, _, _)| tfp == l.tfp.as_str());
            out.push(SiteUsage {
                license: l.license.clone(),
                machines: self.places().used(l.tfp.as_str(), now).await,
                instances: row.map_or(0, |r| u32::try_from(r.1).unwrap_or(u32::MAX)),
                users: row.and_then(|r| r.2).and_then(|u| u32::try_from(u).ok()),
            });
        }
        Ok(out)
    }

    /// Certify a relay below this one: its share of each license (at most
    /// what is free here, which it then holds), and its first bundle.
    ///
    /// # Errors
    /// 400 for a bad name or key, a license this relay's bundle does not
    /// name, or a share larger than what is free here.
    pub async fn add_child(
        &self,
        site: &str,
        relay_key: &str,
        shares: Vec<SiteLicense>,
        valid_for: Duration,
    ) -> Result<SiteBundleFile> {
        PublicKey::from_paserk(relay_key)
            .map_err(|_| Error::bad_request("invalid_site", "relay_key is not a k4.public key"))?;
        let ok_name = (1..=60).contains(&site.len())
            && site
                .bytes()
                .all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/'));
        if !ok_name {
            return Err(Error::bad_request(
                "invalid_site",
                "a site's name is 1–60 of a-z 0-9 - _ . /",
            ));
        }
        let now = self.now()?;
        let held = self.current(now)?;
        for share in &shares {
            let Some(l) = held
                .bundle
                .licenses
                .iter()
                .find(|l| l.license == share.license)
            else {
                return Err(Error::bad_request(
                    "invalid_site",
                    format!("this relay's bundle does not name {}", share.license),
                ));
            };
            if let Some(max) = l.max_machines {
                let want = share.max_machines.ok_or_else(|| {
                    Error::bad_request(
                        "invalid_site",
                        format!("{} counts machines: give the share", l.license),
                    )
                })?;
                let used = self.places().used(l.tfp.as_str(), now).await;
                if used + want > max {
                    return Err(Error::bad_request(
                        "invalid_site",
                        format!(
                            "{} has {} of {max} places free here",
                            l.license,
                            max.saturating_sub(used)
                        ),
                    ));
                }
            }
        }
        let row = ChildRow {
            site: site.to_owned(),
            relay_key: relay_key.to_owned(),
            licenses: serde_json::to_string(&shares)
                .map_err(|e| Error::Config(format!("shares: {e}")))?,
            valid_for: valid_for.num_seconds(),
            created_at: now.timestamp(),
            last_sync_at: None,
            usage: None,
        };
        self.store().put_child(&row).await?;
        self.refresh_delegated().await?;
        // The seats it holds are no longer free here: waiting streams hear.
        for l in &held.bundle.licenses {
            self.announce(l.tfp.as_str());
        }
        self.child_bundle(&row, now)
    }

    /// A bundle for a relay below, as of now, within this relay's own.
    fn child_bundle(&self, child: &ChildRow, now: Timestamp) -> Result<SiteBundleFile> {
        let held = self.current(now)?;
        let shares: Vec<SiteLicense> = serde_json::from_str(&child.licenses)
            .map_err(|e| Error::Config(format!("child {}: {e}", child.site)))?;
        let licenses = shares
            .iter()
            .filter_map(|share| {
                let mut l = held
                    .bundle
                    .licenses
                    .iter()
                    .find(|l| l.license == share.license)?
                    .clone();
                if l.max_machines.is_some() {
                    l.max_machines = share.max_machines;
                }
                Some(l)
            })
            .collect();
        let exp = (now + Duration::seconds(child.valid_for)).min(held.bundle.exp);
        let bundle = SiteBundle {
            site: child.site.clone(),
            relay_key: child.relay_key.clone(),
            iat: now,
            exp,
            licenses,
        };
        Ok(SiteBundleFile {
            format: SiteBundleFile::FORMAT.to_owned(),
            site: child.site.clone(),
            valid_until: exp,
            bundle: sign_child_bundle(&bundle, self.key(), &held.text)?,
        })
    }
}

/// A relay below synchronises here: its proof checked with the key it was
/// added with, its usage kept, a fresh bundle returned.
///
/// # Errors
/// 400 for what is no proof, 403 `unknown_relay` for an unknown site or a
/// proof its key did not sign.
pub async fn sync_child(relay: &Relay, req: &RelaySyncRequest) -> Result<SiteBundleFile> {
    let unknown = |why: String| Error::Forbidden {
        code: "unknown_relay",
        message: why,
    };
    let site = claimed_site(&req.proof)?;
    let children = relay.store().children().await?;
    let Some(child) = children.into_iter().find(|c| c.site == site) else {
        return Err(unknown("no relay below this one has that site".into()));
    };
    let key = PublicKey::from_paserk(&child.relay_key)?;
    let now = relay.now()?;
    let report = verify_sync(&req.proof, &key, now)
        .map_err(|e| unknown(format!("the proof does not verify: {e}")))?;
    let usage = serde_json::to_string(&report.usage).map_err(|e| Error::Config(e.to_string()))?;
    relay
        .store()
        .record_child_sync(&site, &usage, now.timestamp())
        .await?;
    relay
        .store()
        .audit(now.timestamp(), "child.synced", &site, Some(&usage))
        .await?;
    relay.child_bundle(&child, now)
}

/// `/v1/relay/status`: the bundle, places per license, the upstream's last
/// synchronisation and the relays below.
///
/// # Errors
/// The store's.
pub async fn status(relay: &Relay) -> Result<serde_json::Value> {
    let now = (relay.config().clock)();
    let held = relay.held();
    let mut licenses = Vec::new();
    if let Some(h) = &held {
        for l in &h.bundle.licenses {
            licenses.push(serde_json::json!({
                "license": l.license,
                "status": l.status,
                "features": l.features,
                "expires_at": l.expires_at.map(|t| tessera_protocol::time::format(&t)),
                "machines": relay.places().used(l.tfp.as_str(), now).await,
                "max_machines": l.max_machines,
                "mode": l.machine_mode,
            }));
        }
    }
    let last_sync = relay
        .last_sync
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let children: Vec<serde_json::Value> = relay
        .store()
        .children()
        .await?
        .into_iter()
        .map(|c| {
            serde_json::json!({
                "site": c.site,
                "licenses": serde_json::from_str::<serde_json::Value>(&c.licenses).unwrap_or_default(),
                "last_sync_at": c.last_sync_at,
                "usage": c.usage.and_then(|u| serde_json::from_str::<serde_json::Value>(&u).ok()),
            })
        })
        .collect();
    Ok(serde_json::json!({
        "site": held.as_ref().map(|h| h.bundle.site.clone()),
        "relay_key": relay.public_key().to_paserk(),
        "bundle_valid_until": held.as_ref().map(|h| tessera_protocol::time::format(&h.bundle.exp)),
        "licenses": licenses,
        "upstream": relay.config().upstream,
        "last_sync": last_sync.map(|(at, outcome)| serde_json::json!({
            "at": tessera_protocol::time::format(&at),
            "ok": outcome.is_ok(),
            "error": outcome.err(),
        })),
        "children": children,
    }))
}
