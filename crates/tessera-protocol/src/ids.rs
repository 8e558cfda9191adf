//! Checked identifiers: license ids, policy, customer and webhook ids,
//! instance ids, nonces.

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
}

impl FromStr for LicenseId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

text_newtype!(LicenseId, parsed);

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
}

text_newtype!(InstanceId, parsed);

/// What a [`PrefixedId`] names: its prefix and its name in errors.
pub trait IdKind {
    /// `pol_`, `cus_`, `whk_`.
    const PREFIX: &'static str;
    /// "policy id", for error messages.
    const WHAT: &'static str;
}

/// An id the authority mints: a kind's prefix, then 1–60 of
/// `a-z 0-9 - _` (a UUID v7 for new ones; `pol_default` for the policy
/// every database starts with). The kind is in the type, so a customer id
/// cannot be passed where a policy id is expected.
#[derive(Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[serde(bound = "")]
pub struct PrefixedId<K: IdKind> {
    text: String,
    kind: std::marker::PhantomData<fn() -> K>,
}

impl<K: IdKind> PrefixedId<K> {
    /// A new id: the prefix and a UUID v7 given in its hyphenated text form
    /// (the caller brings the randomness and the clock).
    ///
    /// # Errors
    /// [`Error::Malformed`] when `uuid` is not lowercase hex and hyphens.
    pub fn from_uuid_text(uuid: &str) -> Result<Self, Error> {
        Self::parse(&format!("{}{uuid}", K::PREFIX))
    }

    /// Parse an id of this kind.
    ///
    /// # Errors
    /// [`Error::Malformed`] with what is wrong.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let bad = |reason: String| Error::Malformed {
            what: K::WHAT,
            reason,
        };
        let rest = text
            .strip_prefix(K::PREFIX)
            .ok_or_else(|| bad(format!("starts with {:?}", K::PREFIX)))?;
        if rest.is_empty()
            || rest.len() > 60
            || !rest
                .bytes()
                .all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_'))
        {
            return Err(bad(format!(
                "expected {} followed by 1 to 60 of a-z 0-9 - _",
                K::PREFIX
            )));
        }
        Ok(Self {
            text: text.to_owned(),
            kind: std::marker::PhantomData,
        })
    }

    /// The id text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl<K: IdKind> Clone for PrefixedId<K> {
    fn clone(&self) -> Self {
        Self {
            text: self.text.clone(),
            kind: std::marker::PhantomData,
        }
    }
}

impl<K: IdKind> PartialEq for PrefixedId<K> {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl<K: IdKind> Eq for PrefixedId<K> {}

impl<K: IdKind> std::hash::Hash for PrefixedId<K> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state);
    }
}

impl<K: IdKind> fmt::Debug for PrefixedId<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

impl<K: IdKind> fmt::Display for PrefixedId<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<K: IdKind> FromStr for PrefixedId<K> {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

impl<K: IdKind> TryFrom<String> for PrefixedId<K> {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        Self::parse(&s)
    }
}

impl<K: IdKind> From<PrefixedId<K>> for String {
    fn from(id: PrefixedId<K>) -> String {
        id.text
    }
}

/// The kind of [`PolicyId`].
#[derive(Debug)]
pub enum Policy {}

impl IdKind for Policy {
    const PREFIX: &'static str = "pol_";
    const WHAT: &'static str = "policy id";
}

/// The kind of [`CustomerId`].
#[derive(Debug)]
pub enum Customer {}

impl IdKind for Customer {
    const PREFIX: &'static str = "cus_";
    const WHAT: &'static str = "customer id";
}

/// The kind of [`WebhookId`].
#[derive(Debug)]
pub enum Webhook {}

impl IdKind for Webhook {
    const PREFIX: &'static str = "whk_";
    const WHAT: &'static str = "webhook id";
}

/// A policy's id: `pol_…`.
pub type PolicyId = PrefixedId<Policy>;
/// A customer's id: `cus_…`.
pub type CustomerId = PrefixedId<Customer>;
/// A webhook endpoint's id: `whk_…`.
pub type WebhookId = PrefixedId<Webhook>;

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
    fn prefixed_ids_keep_their_kind() {
        let p = PolicyId::parse("pol_default").unwrap();
        assert_eq!(p.to_string(), "pol_default");
        let uuid = "01936b2e-7c3a-7def-8a12-0123456789ab";
        assert_eq!(
            CustomerId::from_uuid_text(uuid).unwrap().as_str(),
            format!("cus_{uuid}")
        );
        for bad in ["", "pol_", "cus_default", "pol_A", "pol_a b", "whk_x"] {
            assert!(PolicyId::parse(bad).is_err(), "{bad}");
        }
        assert!(WebhookId::parse("whk_x").is_ok());
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, "\"pol_default\"");
        assert!(serde_json::from_str::<CustomerId>("\"pol_default\"").is_err());
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
