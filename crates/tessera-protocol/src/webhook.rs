//! Webhook signatures: `Tessera-Signature: t=<unix>,v1=<hex>` where the hex is
//! HMAC-SHA256 over `"<t>.<body>"` with the endpoint's secret.
//!
//! Receivers call [`verify_signature`] with the raw body (before any JSON
//! parsing) and their own clock; a signature older than the tolerance is
//! refused so a captured delivery cannot be replayed later.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{Error, Timestamp};

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "Tessera-Signature";

/// How old a signature may be by default (5 minutes, as for documents).
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

fn mac(secret: &str, t: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The header value for `body` sent at `t` (Unix seconds).
#[must_use]
pub fn signature_header(secret: &str, t: i64, body: &[u8]) -> String {
    let tag = mac(secret, t, body).finalize().into_bytes();
    format!("t={t},v1={}", hex::encode(tag))
}

/// Check a `Tessera-Signature` value against `body` and `secret` at `now`.
/// Several `v1=` parts are allowed (one must match), so a secret can be
/// rotated without a gap.
///
/// # Errors
/// [`Error::WebhookSignature`] when the header is malformed, no `v1` matches,
/// or `t` is more than `tolerance_secs` away from `now`.
pub fn verify_signature(
    header: &str,
    secret: &str,
    body: &[u8],
    now: Timestamp,
    tolerance_secs: i64,
) -> Result<(), Error> {
    let fail = |reason| Error::WebhookSignature { reason };
    if header.len() > 1024 {
        return Err(fail("header too long"));
    }
    let mut t = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v.parse::<i64>().map_err(|_| fail("t is not a number"))?),
            Some(("v1", v)) => candidates.push(v),
            _ => {}
        }
    }
    let t = t.ok_or(fail("no t= part"))?;
    if candidates.is_empty() {
        return Err(fail("no v1= part"));
    }
    if (now.timestamp() - t).abs() > tolerance_secs {
        return Err(fail("timestamp outside the tolerance"));
    }
    for candidate in candidates {
        if let Ok(tag) = hex::decode(candidate)
            && mac(secret, t, body).verify_slice(&tag).is_ok()
        {
            return Ok(());
        }
    }
    Err(fail("no signature matches"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    fn at(t: i64) -> Timestamp {
        DateTime::from_timestamp(t, 0).unwrap()
    }

    #[test]
    fn a_signature_verifies_and_nothing_else_does() {
        let body = br#"{"kind":"license.extended"}"#;
        let header = signature_header("s3cret", 1_700_000_000, body);
        assert!(header.starts_with("t=1700000000,v1="));
        assert!(verify_signature(&header, "s3cret", body, at(1_700_000_010), 300).is_ok());
        let wrong = |h: &str, secret: &str, body: &[u8], now| {
            verify_signature(h, secret, body, at(now), 300)
                .unwrap_err()
                .code()
        };
        assert_eq!(
            wrong(&header, "other", body, 1_700_000_010),
            "webhook_signature"
        );
        assert_eq!(
            wrong(&header, "s3cret", b"{}", 1_700_000_010),
            "webhook_signature"
        );
        assert_eq!(
            wrong(&header, "s3cret", body, 1_700_000_400),
            "webhook_signature"
        );
        assert_eq!(
            wrong("v1=00", "s3cret", body, 1_700_000_000),
            "webhook_signature"
        );
        assert_eq!(
            wrong("t=1700000000", "s3cret", body, 1_700_000_000),
            "webhook_signature"
        );
        let rotated = format!("{header},v1=deadbeef");
        assert!(verify_signature(&rotated, "s3cret", body, at(1_700_000_000), 300).is_ok());
    }

    #[test]
    fn matches_an_independent_hmac() {
        // Computed with Python's hmac module: what a receiver in any
        // language gets.
        assert_eq!(
            signature_header("whsec_test", 1_700_000_000, br#"{"seq":1}"#),
            "t=1700000000,v1=926c3c48823e4dc937cdb0992313bcbbc472579d779ab54f0d4e09e4049838aa"
        );
    }
}
