//! A relay's synchronisation proof (docs/PROTOCOL.md §26): how a relay
//! shows the authority (or the relay above it) that it holds the key its
//! site names, and carries its usage report. Pure: the caller gives `now`.

use pasetors::Public;
use pasetors::token::UntrustedToken;
use pasetors::version4::{PublicToken, V4};
use serde::{Deserialize, Serialize};

use crate::keys::{PublicKey, SigningKey};
use crate::wire::SiteUsage;
use crate::{Error, Timestamp};

/// The proof footer's `typ`.
pub const SYNC_TYPE: &str = "tessera-relay-sync/1";
/// How far a proof's `iat` may be from the receiver's clock.
pub const SYNC_WINDOW: chrono::Duration = chrono::Duration::minutes(5);

/// What a relay reports when it synchronises.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReport {
    /// The site it relays for.
    pub site: String,
    /// When it signed this.
    #[serde(with = "crate::time::rfc3339")]
    pub iat: Timestamp,
    /// Its usage, per license.
    #[serde(default)]
    pub usage: Vec<SiteUsage>,
}

#[derive(Serialize, Deserialize)]
struct SyncFooter {
    kid: String,
    typ: String,
}

fn refused(reason: impl Into<String>) -> Error {
    Error::Malformed {
        what: "relay sync proof",
        reason: reason.into(),
    }
}

/// The relay signs its report.
///
/// # Errors
/// [`Error::Signing`] if it cannot be encoded.
pub fn sign_sync(report: &SyncReport, relay: &SigningKey) -> Result<String, Error> {
    let sign_err = |e: &dyn std::fmt::Debug| Error::Signing {
        reason: format!("{e:?}"),
    };
    let payload = serde_json::to_vec(report).map_err(|e| sign_err(&e))?;
    let footer = serde_json::to_vec(&SyncFooter {
        kid: relay.kid().as_str().to_owned(),
        typ: SYNC_TYPE.to_owned(),
    })
    .map_err(|e| sign_err(&e))?;
    PublicToken::sign(relay.inner(), &payload, Some(&footer), None).map_err(|e| sign_err(&e))
}

/// The site a proof claims to come from, unverified: which relay key to
/// check it with.
///
/// # Errors
/// [`Error::Malformed`] when it is no proof at all.
pub fn claimed_site(proof: &str) -> Result<String, Error> {
    let untrusted = UntrustedToken::<Public, V4>::try_from(proof)
        .map_err(|_| refused("not a v4.public token"))?;
    let report: SyncReport = serde_json::from_slice(untrusted.untrusted_payload())
        .map_err(|e| refused(format!("report: {e}")))?;
    Ok(report.site)
}

/// Verify a proof with the relay key its site names, signed within
/// [`SYNC_WINDOW`] of `now`.
///
/// # Errors
/// [`Error::Malformed`] for anything else than a proof, another key's or
/// one signed too far from `now`; [`Error::BadSignature`] for an edited
/// one.
pub fn verify_sync(proof: &str, relay: &PublicKey, now: Timestamp) -> Result<SyncReport, Error> {
    if proof.len() > 64 * 1024 {
        return Err(refused("over 64 KiB"));
    }
    let untrusted = UntrustedToken::<Public, V4>::try_from(proof)
        .map_err(|_| refused("not a v4.public token"))?;
    let footer: SyncFooter = serde_json::from_slice(untrusted.untrusted_footer())
        .map_err(|_| refused("it names no key"))?;
    if footer.typ != SYNC_TYPE {
        return Err(refused("not a relay sync proof"));
    }
    if footer.kid != relay.kid().as_str() {
        return Err(refused("signed by another key than the site's relay"));
    }
    PublicToken::verify(relay.inner(), &untrusted, None, None).map_err(|_| Error::BadSignature)?;
    let report: SyncReport = serde_json::from_slice(untrusted.untrusted_payload())
        .map_err(|e| refused(format!("report: {e}")))?;
    if (report.iat - now).abs() > SYNC_WINDOW {
        return Err(refused(
            "signed more than 5 minutes from this clock: check the relay's clock",
        ));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        chrono::DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z")
            .unwrap()
            .to_utc()
    }

    #[test]
    fn a_proof_is_the_relays_own_and_recent() {
        let relay = SigningKey::from_seed(&[3; 32]);
        let report = SyncReport {
            site: "plant-7".into(),
            iat: now(),
            usage: vec![],
        };
        let proof = sign_sync(&report, &relay).unwrap();
        assert_eq!(claimed_site(&proof).unwrap(), "plant-7");
        assert_eq!(
            verify_sync(&proof, relay.public_key(), now()).unwrap(),
            report
        );
        let other = SigningKey::from_seed(&[4; 32]);
        assert!(verify_sync(&proof, other.public_key(), now()).is_err());
        let late = now() + chrono::Duration::minutes(6);
        let e = verify_sync(&proof, relay.public_key(), late).unwrap_err();
        assert!(e.to_string().contains("5 minutes"), "{e}");
    }
}
