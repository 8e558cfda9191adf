//! Checked identifiers: license ids, instance ids, nonces.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// A license's public id: `lic_` + a UUID (v7, so ids sort by creation).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LicenseId(String);

impl LicenseId {
    /// Build from a UUID in its hyphenated text form.
    ///
    /// # Errors
    /// [`Error::Malformed`] when `uuid` is not a hyphenated lowercase UUID.
    pub fn from_uuid_text(uuid: &str) -> Result<Self, Error> {
        Self::parse(&format!("lic_{uuid}"))
    }

    /// Parse `lic_xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
    ///
    /// # Errors
    /// [`Error::Malformed`] with what is wrong.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let bad = |reason: &str| Error::Malformed {
            what: "license id",
            reason: reason.to_owned(),
        };
        let text = text.trim();
        let uuid = text
            .strip_prefix("lic_")
            .ok_or_else(|| bad("a license id starts with \"lic_\""))?;
        let ok = uuid.len() == 36
            && uuid.bytes().enumerate().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => c == b'-',
                _ => matches!(c, b'0'..=b'9' | b'a'..=b'f'),
            });
        if !ok {
            return Err(bad("expected lic_ followed by a UUID (lic_0193…)"));
        }
        Ok(Self(text.to_owned()))
    }

    /// The id text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for LicenseId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

impl TryFrom<String> for LicenseId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        Self::parse(&s)
    }
}

impl From<LicenseId> for String {
    fn from(id: LicenseId) -> String {
        id.0
    }
}

impl fmt::Display for LicenseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn check_safe_text(what: &'static str, text: &str, max: usize) -> Result<(), Error> {
    if text.is_empty() || text.len() > max {
        return Err(Error::Malformed {
            what,
            reason: format!("must be 1 to {max} characters"),
        });
    }
    if !text
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~'))
    {
        return Err(Error::Malformed {
            what,
            reason: "only letters, digits and - _ . ~ are allowed".into(),
        });
    }
    Ok(())
}

/// An installation's id: chosen at random by the client and persisted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InstanceId(String);

impl InstanceId {
    /// Longest instance id accepted.
    pub const MAX_LEN: usize = 64;

    /// Parse an instance id: 1–64 of `A-Z a-z 0-9 - _ . ~`.
    ///
    /// # Errors
    /// [`Error::Malformed`].
    pub fn parse(text: &str) -> Result<Self, Error> {
        check_safe_text("instance id", text, Self::MAX_LEN)?;
        Ok(Self(text.to_owned()))
    }

    /// The id text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for InstanceId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        Self::parse(&s)
    }
}

impl From<InstanceId> for String {
    fn from(id: InstanceId) -> String {
        id.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Check a request nonce: 1–128 of `A-Z a-z 0-9 - _ . ~`.
///
/// # Errors
/// [`Error::Malformed`].
pub fn check_nonce(nonce: &str) -> Result<(), Error> {
    check_safe_text("nonce", nonce, 128)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn license_ids() {
        let id = LicenseId::parse("lic_01936b2e-7c3a-7def-8a12-0123456789ab").unwrap();
        assert_eq!(id.as_str(), "lic_01936b2e-7c3a-7def-8a12-0123456789ab");
        for bad in [
            "",
            "lic_",
            "01936b2e-7c3a-7def-8a12-0123456789ab",
            "lic_01936b2e-7c3a-7def-8a12-0123456789aB",
            "lic_01936b2e_7c3a-7def-8a12-0123456789ab",
            "lic_01936b2e-7c3a-7def-8a12-0123456789abc",
        ] {
            assert!(LicenseId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn instance_ids_and_nonces() {
        assert!(InstanceId::parse("host-1.prod_a~").is_ok());
        assert!(InstanceId::parse("").is_err());
        assert!(InstanceId::parse("a b").is_err());
        assert!(InstanceId::parse(&"x".repeat(65)).is_err());
        assert!(check_nonce("abc").is_ok());
        assert!(check_nonce(&"x".repeat(129)).is_err());
        assert!(check_nonce("ü").is_err());
    }
}
