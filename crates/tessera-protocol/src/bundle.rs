//! Site bundles (docs/PROTOCOL.md §26): what an authority signs so that a
//! relay inside an isolated site may answer for it, and how an instance
//! that pins only the authority's key checks a document the relay signed.
//!
//! A bundle is a `v4.public` token (footer `{kid, typ:
//! "tessera-site-bundle/1", parent?}`) naming the site, the relay's public
//! key, until when, and each license the site may use with its terms and
//! bounds. The authority signs a site's bundle; a relay may sign a bundle
//! for a relay below it (a building below a site), carrying its own bundle
//! as `parent` and granting no more than it holds — a chain ends at the
//! authority's key, at most [`MAX_CHAIN`] relays long. A relayed document
//! is an ordinary status document signed by a relay's key whose footer
//! carries that relay's bundle (`{kid, bundle}`). [`verify_relayed`]
//! verifies the chain with the pinned authority keys, then the document
//! with the relay key it certifies (the whole of [`crate::verify`]), then
//! the bounds: a relay cannot grant more than its bundle allows, and a
//! stolen relay key dies with its bundle.

use pasetors::Public;
use pasetors::token::UntrustedToken;
use pasetors::version4::{PublicToken, V4};
use serde::{Deserialize, Serialize};

use crate::document::{Expectations, VerifiedDocument, is_canonical, verify};
use crate::keys::{PublicKey, SigningKey, TrustedKeys};
use crate::token::TokenFingerprint;
use crate::wire::{Enforcement, MachineMode, OnExpiry};
use crate::{Entitlements, Error, Status, StatusClaims, Timestamp};

/// The bundle footer's `typ`.
pub const BUNDLE_TYPE: &str = "tessera-site-bundle/1";
/// The largest bundle (its parents included) a relayed document may carry.
pub const MAX_BUNDLE_BYTES: usize = 8 * 1024;
/// The most relays between the authority and an instance.
pub const MAX_CHAIN: usize = 3;

/// What the authority (or a relay above) allows one site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteBundle {
    /// The site's name (for people and the audit log).
    pub site: String,
    /// The relay's public key (PASERK `k4.public…`).
    pub relay_key: String,
    /// When it was signed.
    #[serde(with = "crate::time::rfc3339")]
    pub iat: Timestamp,
    /// Until when the relay may answer: nothing it signs outlives this.
    #[serde(with = "crate::time::rfc3339")]
    pub exp: Timestamp,
    /// The licenses the site may use.
    pub licenses: Vec<BundleLicense>,
}

impl SiteBundle {
    /// The license whose token has fingerprint `tfp`.
    #[must_use]
    pub fn license(&self, tfp: &TokenFingerprint) -> Option<&BundleLicense> {
        self.licenses.iter().find(|l| &l.tfp == tfp)
    }
}

/// One license of a bundle: its terms as the authority last knew them, and
/// the site's bounds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleLicense {
    /// The token's fingerprint (the relay never holds more than it needs).
    pub tfp: TokenFingerprint,
    /// The license id.
    pub license: String,
    /// Its product (§28); absent: `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// The license's revision: relayed documents carry exactly this one.
    pub rev: u64,
    /// Its status when signed (`active`, `trial`, `suspended`, …).
    pub status: Status,
    /// Whether that status grants the features: a relay cannot make valid
    /// what the bundle does not.
    pub valid: bool,
    /// Plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// Customer name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    /// The features the relay may grant.
    pub features: Vec<String>,
    /// Features with terms of their own (§20).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub entitlements: Entitlements,
    /// What expiry takes away (§21).
    #[serde(default, skip_serializing_if = "OnExpiry::is_default")]
    pub on_expiry: OnExpiry,
    /// How the policy's rules apply (§24).
    #[serde(default, skip_serializing_if = "Enforcement::is_default")]
    pub enforcement: Enforcement,
    /// Seat limit (users).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_users: Option<u32>,
    /// Start of the license period.
    #[serde(default, with = "crate::time::rfc3339_opt")]
    pub valid_from: Option<Timestamp>,
    /// The license's end, which the relay may not extend.
    #[serde(default, with = "crate::time::rfc3339_opt")]
    pub expires_at: Option<Timestamp>,
    /// Machines or floating seats this site may use; `None` = the license
    /// counts no machines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_machines: Option<u32>,
    /// `node_locked` or `floating`, when it counts machines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_mode: Option<MachineMode>,
    /// Floating: a lease's length in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_ttl: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct BundleFooter {
    kid: String,
    typ: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parent: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct RelayedFooter {
    kid: String,
    bundle: String,
}

/// Only the key of a footer, to tell a relayed document from a direct one.
#[derive(Deserialize)]
struct AnyFooter {
    #[serde(default)]
    bundle: Option<serde::de::IgnoredAny>,
}

fn refused(reason: impl Into<String>) -> Error {
    Error::Malformed {
        what: "relayed document",
        reason: reason.into(),
    }
}

fn signing_error(e: impl std::fmt::Debug) -> Error {
    Error::Signing {
        reason: format!("{e:?}"),
    }
}

fn sign_footed(
    payload: &impl Serialize,
    key: &SigningKey,
    footer: &impl Serialize,
) -> Result<String, Error> {
    let payload = serde_json::to_vec(payload).map_err(signing_error)?;
    let footer = serde_json::to_vec(footer).map_err(signing_error)?;
    PublicToken::sign(key.inner(), &payload, Some(&footer), None).map_err(signing_error)
}

/// The authority signs a site's bundle.
///
/// # Errors
/// [`Error::Signing`] if it cannot be encoded; [`Error::Malformed`] when it
/// is over [`MAX_BUNDLE_BYTES`].
pub fn sign_bundle(bundle: &SiteBundle, authority: &SigningKey) -> Result<String, Error> {
    let footer = BundleFooter {
        kid: authority.kid().as_str().to_owned(),
        typ: BUNDLE_TYPE.to_owned(),
        parent: None,
    };
    sized(sign_footed(bundle, authority, &footer)?)
}

/// A relay signs a bundle for a relay below it, carrying its own (`parent`,
/// as it received it). The child must stay within the parent's bounds, or
/// instances refuse every document under it.
///
/// # Errors
/// As [`sign_bundle`].
pub fn sign_child_bundle(
    child: &SiteBundle,
    relay: &SigningKey,
    parent: &str,
) -> Result<String, Error> {
    let footer = BundleFooter {
        kid: relay.kid().as_str().to_owned(),
        typ: BUNDLE_TYPE.to_owned(),
        parent: Some(parent.to_owned()),
    };
    sized(sign_footed(child, relay, &footer)?)
}

fn sized(text: String) -> Result<String, Error> {
    if text.len() > MAX_BUNDLE_BYTES {
        return Err(refused(format!(
            "the bundle is {} bytes, over {MAX_BUNDLE_BYTES}: name fewer licenses",
            text.len()
        )));
    }
    Ok(text)
}

/// A relay signs a status document, carrying its bundle.
///
/// # Errors
/// [`Error::Signing`] if it cannot be encoded.
pub fn sign_relayed(
    claims: &StatusClaims,
    relay: &SigningKey,
    bundle: &str,
) -> Result<String, Error> {
    let footer = RelayedFooter {
        kid: relay.kid().as_str().to_owned(),
        bundle: bundle.to_owned(),
    };
    sign_footed(claims, relay, &footer)
}

/// Verify a bundle, and the chain of bundles above it, with the pinned
/// authority keys, valid at `now`.
///
/// # Errors
/// [`Error::Malformed`] for anything that is not a canonical bundle or a
/// child granting more than its parent, [`Error::UnknownKeyId`] when no
/// pinned key signed the chain's top, [`Error::BadSignature`] for an
/// edited one, [`Error::DocumentExpired`] past any `exp` in the chain.
pub fn verify_bundle(
    text: &str,
    authority: &TrustedKeys,
    now: Timestamp,
) -> Result<SiteBundle, Error> {
    if text.len() > MAX_BUNDLE_BYTES {
        return Err(refused("the bundle is over 8 KiB"));
    }
    verify_link(text, authority, Some(now), 1)
}

/// `now: None` skips the expiry checks (re-reading what was verified
/// before it was stored, [`crate::Freshness`]).
fn verify_link(
    text: &str,
    authority: &TrustedKeys,
    now: Option<Timestamp>,
    depth: usize,
) -> Result<SiteBundle, Error> {
    let untrusted = UntrustedToken::<Public, V4>::try_from(text)
        .map_err(|_| refused("the bundle is not a v4.public token"))?;
    if !is_canonical(text, &untrusted) {
        return Err(refused("the bundle's encoding is not canonical"));
    }
    let footer: BundleFooter = serde_json::from_slice(untrusted.untrusted_footer())
        .map_err(|_| refused("the bundle names no key"))?;
    if footer.typ != BUNDLE_TYPE {
        return Err(refused("not a site bundle"));
    }
    let parent = match &footer.parent {
        None => None,
        Some(_) if depth >= MAX_CHAIN => {
            return Err(refused(format!(
                "more than {MAX_CHAIN} relays in the chain"
            )));
        }
        Some(parent) => Some(verify_link(parent, authority, now, depth + 1)?),
    };
    let signer = match &parent {
        None => match authority.get_str(&footer.kid) {
            Some(key) => key.clone(),
            None => {
                return Err(Error::UnknownKeyId {
                    kid: footer.kid.chars().take(32).collect(),
                });
            }
        },
        Some(parent) => {
            let key = PublicKey::from_paserk(&parent.relay_key)?;
            if key.kid().as_str() != footer.kid {
                return Err(refused(
                    "a bundle signed by another key than its parent's relay",
                ));
            }
            key
        }
    };
    PublicToken::verify(signer.inner(), &untrusted, None, None).map_err(|_| Error::BadSignature)?;
    let bundle: SiteBundle = serde_json::from_slice(untrusted.untrusted_payload())
        .map_err(|e| refused(format!("bundle: {e}")))?;
    if let Some(now) = now
        && now > bundle.exp
    {
        return Err(Error::DocumentExpired {
            exp: bundle.exp,
            now,
        });
    }
    if let Some(parent) = &parent {
        check_child(&bundle, parent)?;
    }
    Ok(bundle)
}

/// A relay's bundle for a relay below it grants no more than its own.
fn check_child(child: &SiteBundle, parent: &SiteBundle) -> Result<(), Error> {
    if child.exp > parent.exp {
        return Err(refused("a bundle outlives its parent"));
    }
    for l in &child.licenses {
        let Some(p) = parent.license(&l.tfp) else {
            return Err(refused("a bundle names a license its parent does not"));
        };
        let same_terms = l.license == p.license
            && l.rev == p.rev
            && l.status == p.status
            && (!l.valid || p.valid)
            && l.machine_mode == p.machine_mode
            && l.features.iter().all(|f| p.features.contains(f))
            && within_end(l.expires_at, p.expires_at)
            && match (l.max_machines, p.max_machines) {
                (_, None) => true,
                (Some(c), Some(p)) => c <= p,
                (None, Some(_)) => false,
            };
        if !same_terms {
            return Err(refused(format!(
                "a bundle grants more for {} than its parent",
                l.license
            )));
        }
    }
    Ok(())
}

/// `end` is no later than `bound` (none = never ends).
fn within_end(end: Option<Timestamp>, bound: Option<Timestamp>) -> bool {
    match (end, bound) {
        (_, None) => true,
        (Some(e), Some(b)) => e <= b,
        (None, Some(_)) => false,
    }
}

/// Whether a document was signed by a relay (its footer carries a bundle).
#[must_use]
pub fn is_relayed(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| UntrustedToken::<Public, V4>::try_from(text).ok())
        .and_then(|t| serde_json::from_slice::<AnyFooter>(t.untrusted_footer()).ok())
        .is_some_and(|f| f.bundle.is_some())
}

/// Verify a document from the authority or from a relay it certified: what
/// a client that pins only the authority's keys calls for every document.
///
/// # Errors
/// As [`crate::verify`] or [`verify_relayed`].
pub fn verify_any(
    bytes: &[u8],
    authority: &TrustedKeys,
    expect: &Expectations,
    now: Timestamp,
) -> Result<VerifiedDocument, Error> {
    if is_relayed(bytes) {
        verify_relayed(bytes, authority, expect, now).map(|(doc, _)| doc)
    } else {
        verify(bytes, authority, expect, now)
    }
}

/// Verify a document a relay signed: its bundle chain by the pinned
/// authority keys, the document by the relay key the bundle certifies
/// (every check of [`crate::verify`] with `expect`), then the bundle's
/// bounds.
///
/// # Errors
/// As [`verify_bundle`] and [`crate::verify`]; [`Error::Malformed`]
/// (`relayed document`) when the document names another key than the
/// bundle's relay, lives past the bundle, answers for a license the bundle
/// does not name, or grants more than it allows (features, validity,
/// machines, a later end, another revision).
pub fn verify_relayed(
    bytes: &[u8],
    authority: &TrustedKeys,
    expect: &Expectations,
    now: Timestamp,
) -> Result<(VerifiedDocument, SiteBundle), Error> {
    let max = expect.limits.max_document_bytes;
    if bytes.len() > max {
        return Err(Error::DocumentTooLarge {
            size: bytes.len(),
            max,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| refused("not UTF-8"))?;
    let untrusted = UntrustedToken::<Public, V4>::try_from(text)
        .map_err(|_| refused("not a v4.public token"))?;
    let footer: RelayedFooter = serde_json::from_slice(untrusted.untrusted_footer())
        .map_err(|_| refused("no bundle in the footer"))?;
    if footer.bundle.len() > MAX_BUNDLE_BYTES {
        return Err(refused("the bundle is over 8 KiB"));
    }
    let checked_at = (expect.freshness == crate::Freshness::Enforce).then_some(now);
    let bundle = verify_link(&footer.bundle, authority, checked_at, 1)?;
    let relay = PublicKey::from_paserk(&bundle.relay_key)?;
    if relay.kid().as_str() != footer.kid {
        return Err(refused("signed by another key than the bundle's relay"));
    }
    let doc = verify(bytes, &TrustedKeys::single(relay), expect, now)?;
    check_bounds(doc.claims(), &bundle)?;
    Ok((doc, bundle))
}

/// What a relay may say, by its bundle.
fn check_bounds(c: &StatusClaims, bundle: &SiteBundle) -> Result<(), Error> {
    if c.exp > bundle.exp {
        return Err(refused("it outlives its bundle"));
    }
    // "No such license" grants nothing: a relay may say it of any token.
    if c.status == Status::NotFound && c.lic.is_none() && !c.valid && c.features.is_empty() {
        return Ok(());
    }
    let Some(license) = bundle.license(&c.tfp) else {
        return Err(refused("the bundle does not name this license"));
    };
    if c.lic.as_deref() != Some(license.license.as_str()) || c.rev != license.rev {
        return Err(refused(
            "it names another license or revision than the bundle",
        ));
    }
    if c.valid && !license.valid {
        return Err(refused(format!(
            "it grants a license the bundle says is {}",
            license.status.as_str()
        )));
    }
    if let Some(extra) = c.features.iter().find(|f| !license.features.contains(f)) {
        return Err(refused(format!(
            "it grants {extra:?}, which the bundle does not"
        )));
    }
    if !within_end(c.expires_at, license.expires_at) {
        return Err(refused("it extends the license past the bundle's end"));
    }
    if let Some(max) = license.max_machines {
        let Some(m) = &c.machine else {
            return Err(refused(
                "it answers with no machine for a license that counts them",
            ));
        };
        if m.max.is_none_or(|n| n > max) || m.used > max {
            return Err(refused(format!(
                "it counts more than the bundle's {max} machines"
            )));
        }
    }
    Ok(())
}
