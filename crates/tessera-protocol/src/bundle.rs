//! Site bundles (issue 17, part 3 — the relay itself is not built yet): what
//! an authority signs so that a relay inside an isolated site may answer
//! for it, and how an instance that pins only the authority's key checks a
//! document the relay signed.
//!
//! A bundle is a `v4.public` token signed by the authority (footer `{kid,
//! typ: "tessera-site-bundle/1"}`) naming the site, the relay's public key,
//! until when, and each license the site may use with its bounds. A relayed
//! document is an ordinary status document signed by the relay's key whose
//! footer also carries the bundle (`{kid, bundle}`). [`verify_relayed`]
//! verifies the bundle with the pinned authority keys, then the document
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
use crate::{Error, StatusClaims, Timestamp};

/// The bundle footer's `typ`.
pub const BUNDLE_TYPE: &str = "tessera-site-bundle/1";
/// The largest bundle a relayed document may carry.
pub const MAX_BUNDLE_BYTES: usize = 8 * 1024;

/// What the authority allows one site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteBundle {
    /// The site's name (for people and the audit log).
    pub site: String,
    /// The relay's public key (PASERK `k4.public…`).
    pub relay_key: String,
    /// When the authority signed it.
    #[serde(with = "crate::time::rfc3339")]
    pub iat: Timestamp,
    /// Until when the relay may answer: nothing it signs outlives this.
    #[serde(with = "crate::time::rfc3339")]
    pub exp: Timestamp,
    /// The licenses the site may use.
    pub licenses: Vec<BundleLicense>,
}

/// One license of a bundle and its bounds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleLicense {
    /// The token's fingerprint (the relay never holds more than it needs).
    pub tfp: TokenFingerprint,
    /// The license id.
    pub license: String,
    /// Machines (or floating seats) the site may use; `None` = unbounded.
    pub max_machines: Option<u32>,
    /// The features the relay may grant.
    pub features: Vec<String>,
    /// The license's end, which the relay may not extend.
    #[serde(default, with = "crate::time::rfc3339_opt")]
    pub expires_at: Option<Timestamp>,
}

#[derive(Serialize, Deserialize)]
struct BundleFooter {
    kid: String,
    typ: String,
}

#[derive(Serialize, Deserialize)]
struct RelayedFooter {
    kid: String,
    bundle: String,
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

/// The authority signs a bundle.
///
/// # Errors
/// [`Error::Signing`] if it cannot be encoded.
pub fn sign_bundle(bundle: &SiteBundle, authority: &SigningKey) -> Result<String, Error> {
    let payload = serde_json::to_vec(bundle).map_err(signing_error)?;
    let footer = serde_json::to_vec(&BundleFooter {
        kid: authority.kid().as_str().to_owned(),
        typ: BUNDLE_TYPE.to_owned(),
    })
    .map_err(signing_error)?;
    PublicToken::sign(authority.inner(), &payload, Some(&footer), None).map_err(signing_error)
}

/// The relay signs a status document, carrying its bundle.
///
/// # Errors
/// [`Error::Signing`] if it cannot be encoded.
pub fn sign_relayed(
    claims: &StatusClaims,
    relay: &SigningKey,
    bundle: &str,
) -> Result<String, Error> {
    let payload = serde_json::to_vec(claims).map_err(signing_error)?;
    let footer = serde_json::to_vec(&RelayedFooter {
        kid: relay.kid().as_str().to_owned(),
        bundle: bundle.to_owned(),
    })
    .map_err(signing_error)?;
    PublicToken::sign(relay.inner(), &payload, Some(&footer), None).map_err(signing_error)
}

/// Verify a bundle with the pinned authority keys, valid at `now`.
///
/// # Errors
/// [`Error::Malformed`] for anything that is not a canonical bundle,
/// [`Error::UnknownKeyId`] when no pinned key signed it,
/// [`Error::BadSignature`] for an edited one, [`Error::DocumentExpired`]
/// past its `exp`.
pub fn verify_bundle(
    text: &str,
    authority: &TrustedKeys,
    now: Timestamp,
) -> Result<SiteBundle, Error> {
    if text.len() > MAX_BUNDLE_BYTES {
        return Err(refused("the bundle is over 8 KiB"));
    }
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
    let Some(key) = authority.get_str(&footer.kid) else {
        return Err(Error::UnknownKeyId {
            kid: footer.kid.chars().take(32).collect(),
        });
    };
    PublicToken::verify(key.inner(), &untrusted, None, None).map_err(|_| Error::BadSignature)?;
    let bundle: SiteBundle = serde_json::from_slice(untrusted.untrusted_payload())
        .map_err(|e| refused(format!("bundle: {e}")))?;
    if now > bundle.exp {
        return Err(Error::DocumentExpired {
            exp: bundle.exp,
            now,
        });
    }
    Ok(bundle)
}

/// Verify a document a relay signed: its bundle by the pinned authority
/// keys, the document by the relay key the bundle certifies (every check
/// of [`crate::verify`] with `expect`), then the bundle's bounds.
///
/// # Errors
/// As [`verify_bundle`] and [`crate::verify`]; [`Error::Malformed`]
/// (`relayed document`) when the document names another key than the
/// bundle's relay, lives past the bundle, answers for a license the bundle
/// does not name, or grants more than it allows (features, machines, a
/// later end).
pub fn verify_relayed(
    bytes: &[u8],
    authority: &TrustedKeys,
    expect: &Expectations,
    now: Timestamp,
) -> Result<(VerifiedDocument, SiteBundle), Error> {
    let text = std::str::from_utf8(bytes).map_err(|_| refused("not UTF-8"))?;
    let untrusted = UntrustedToken::<Public, V4>::try_from(text)
        .map_err(|_| refused("not a v4.public token"))?;
    let footer: RelayedFooter = serde_json::from_slice(untrusted.untrusted_footer())
        .map_err(|_| refused("no bundle in the footer"))?;
    let bundle = verify_bundle(&footer.bundle, authority, now)?;
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
    let Some(license) = bundle.licenses.iter().find(|l| l.tfp == c.tfp) else {
        return Err(refused("the bundle does not name this license"));
    };
    if let Some(extra) = c.features.iter().find(|f| !license.features.contains(f)) {
        return Err(refused(format!(
            "it grants {extra:?}, which the bundle does not"
        )));
    }
    if let Some(end) = license.expires_at
        && c.expires_at.is_none_or(|e| e > end)
    {
        return Err(refused("it extends the license past the bundle's end"));
    }
    if let (Some(max), Some(m)) = (license.max_machines, &c.machine)
        && (m.max.is_none_or(|n| n > max) || m.used > max)
    {
        return Err(refused(format!(
            "it counts more than the bundle's {max} machines"
        )));
    }
    Ok(())
}
