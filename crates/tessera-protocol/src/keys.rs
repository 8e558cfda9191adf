//! Ed25519 keys for status documents, their ids and PASERK text forms.
//!
//! The public key is shown and taken everywhere as a PASERK string
//! (`k4.public.…`); the signing key is kept on disk as `k4.secret.…`.
//! A key id (`kid`) is the first 16 hex characters of SHA-256 of the raw
//! public key, so anyone holding the public key can compute it.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use pasetors::keys::{AsymmetricPublicKey, AsymmetricSecretKey};
use pasetors::paserk::FormatAsPaserk;
use pasetors::version4::V4;
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};

use crate::{Error, Timestamp};

/// Key id: first 16 hex characters of SHA-256 of the raw public key.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct KeyId(String);

text_newtype!(KeyId);

/// A key's PASERK text.
fn paserk(key: &impl FormatAsPaserk) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = key.fmt(&mut out);
    out
}

/// An Ed25519 public key for verifying status documents.
#[derive(Clone)]
pub struct PublicKey {
    key: AsymmetricPublicKey<V4>,
    kid: KeyId,
}

impl PublicKey {
    fn from_pasetors(key: AsymmetricPublicKey<V4>) -> Self {
        let kid = KeyId(hex::encode(&Sha256::digest(key.as_bytes())[..8]));
        Self { key, kid }
    }

    /// Parse a PASERK `k4.public.…` string.
    ///
    /// # Errors
    /// [`Error::Key`] when the text is not a v4 public PASERK.
    pub fn from_paserk(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        if !text.starts_with("k4.public.") {
            return Err(Error::Key {
                reason: "a public key is a PASERK string starting with \"k4.public.\"".into(),
            });
        }
        AsymmetricPublicKey::<V4>::try_from(text)
            .map(Self::from_pasetors)
            .map_err(|_| Error::Key {
                reason: "the public key's PASERK encoding is invalid".into(),
            })
    }

    /// The PASERK text (`k4.public.…`).
    #[must_use]
    pub fn to_paserk(&self) -> String {
        paserk(&self.key)
    }

    /// This key's id.
    #[must_use]
    pub fn kid(&self) -> &KeyId {
        &self.kid
    }

    /// The raw 32-byte Ed25519 key (what Keygen's SDKs take, hex-encoded).
    #[must_use]
    pub fn raw_bytes(&self) -> &[u8] {
        self.key.as_bytes()
    }

    pub(crate) fn inner(&self) -> &AsymmetricPublicKey<V4> {
        &self.key
    }
}

impl FromStr for PublicKey {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::from_paserk(s)
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for PublicKey {}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.kid)
    }
}

/// An Ed25519 signing key. Secret: `Debug` shows only its key id.
pub struct SigningKey {
    secret: AsymmetricSecretKey<V4>,
    public: PublicKey,
}

impl SigningKey {
    /// Generate a new key from a cryptographic random source.
    ///
    /// # Panics
    /// Never: a 32-byte seed always yields a valid key pair.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        Self::from_seed(&seed)
    }

    /// Derive the key pair from a 32-byte seed.
    #[must_use]
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let pair = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(*seed));
        // Lengths are fixed by ed25519-compact (64 and 32 bytes), which is exactly
        // what pasetors expects, so these conversions cannot fail.
        let secret = AsymmetricSecretKey::<V4>::from(pair.sk.as_ref())
            .unwrap_or_else(|_| unreachable!("64-byte ed25519 secret key"));
        let public = AsymmetricPublicKey::<V4>::from(pair.pk.as_ref())
            .unwrap_or_else(|_| unreachable!("32-byte ed25519 public key"));
        Self {
            secret,
            public: PublicKey::from_pasetors(public),
        }
    }

    /// Parse a PASERK `k4.secret.…` string (the signing key file's content).
    ///
    /// # Errors
    /// [`Error::Key`] when the text is not a v4 secret PASERK or its halves
    /// do not belong together.
    pub fn from_paserk(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        if !text.starts_with("k4.secret.") {
            return Err(Error::Key {
                reason: "a signing key is a PASERK string starting with \"k4.secret.\"".into(),
            });
        }
        let secret = AsymmetricSecretKey::<V4>::try_from(text).map_err(|_| Error::Key {
            reason: "the signing key's PASERK encoding is invalid".into(),
        })?;
        let bytes = secret.as_bytes();
        let seed: [u8; 32] = bytes[..32].try_into().map_err(|_| Error::Key {
            reason: "the signing key has the wrong length".into(),
        })?;
        let derived = Self::from_seed(&seed);
        // The secret key embeds its public half; a file whose halves disagree
        // would sign documents nobody can verify.
        if derived.secret.as_bytes() != bytes {
            return Err(Error::Key {
                reason: "the signing key's public half does not match its seed".into(),
            });
        }
        Ok(derived)
    }

    /// The PASERK text (`k4.secret.…`). Secret: write it only to a 0600 file.
    #[must_use]
    pub fn to_paserk(&self) -> String {
        paserk(&self.secret)
    }

    /// The matching public key.
    #[must_use]
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// This key's id.
    #[must_use]
    pub fn kid(&self) -> &KeyId {
        self.public.kid()
    }

    pub(crate) fn inner(&self) -> &AsymmetricSecretKey<V4> {
        &self.secret
    }

    /// A bare Ed25519 signature of `message` (no PASETO around it), for
    /// answers signed in another system's format: the Keygen-compatible
    /// API signs its responses so (`Keygen-Signature`, docs/KEYGEN.md).
    #[must_use]
    pub fn sign_raw(&self, message: &[u8]) -> [u8; 64] {
        let secret = ed25519_compact::SecretKey::from_slice(self.secret.as_bytes())
            .unwrap_or_else(|_| unreachable!("a v4 secret key is a 64-byte ed25519 secret key"));
        *secret.sign(message, None)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.kid())
    }
}

/// The pinned public keys a verifier trusts, by key id.
///
/// Keys are only ever added by the holder (configuration, key rotation): a
/// document can never bring its own key.
///
/// A key may be pinned as *retired* at a time (key rotation): documents it
/// signed up to then still verify, documents it signed later are refused —
/// whoever still holds a retired key cannot mint new answers with it.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: BTreeMap<KeyId, PublicKey>,
    retired: BTreeMap<KeyId, Timestamp>,
}

impl TrustedKeys {
    /// An empty set: trusts nothing.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Trust exactly this key.
    #[must_use]
    pub fn single(key: PublicKey) -> Self {
        let mut keys = Self::new();
        keys.insert(key);
        keys
    }

    /// Pin a key (replaces one with the same id).
    pub fn insert(&mut self, key: PublicKey) {
        self.keys.insert(key.kid().clone(), key);
    }

    /// Pin a retired key: it verifies documents signed (`iat`) at or before
    /// `retired_at` only.
    pub fn insert_retired(&mut self, key: PublicKey, retired_at: Timestamp) {
        self.retired.insert(key.kid().clone(), retired_at);
        self.insert(key);
    }

    /// Pin a key given as text: `k4.public.…`, or `k4.public.…@<RFC 3339
    /// time or date>` for a key retired then (the form `--public-key` takes).
    ///
    /// # Errors
    /// [`Error::Key`] for a bad key, [`Error::Malformed`] for a bad time.
    pub fn pin(&mut self, text: &str) -> Result<(), Error> {
        let text = text.trim();
        match text.split_once('@') {
            None => {
                self.insert(PublicKey::from_paserk(text)?);
            }
            Some((key, at)) => {
                let key = PublicKey::from_paserk(key)?;
                let at = crate::human::parse_date_or_time(at)?;
                self.insert_retired(key, at);
            }
        }
        Ok(())
    }

    /// When the key with this id was retired, if it was.
    #[must_use]
    pub fn retired_at(&self, kid: &KeyId) -> Option<Timestamp> {
        self.retired.get(kid).copied()
    }

    /// Stop trusting a key.
    pub fn remove(&mut self, kid: &KeyId) -> Option<PublicKey> {
        self.retired.remove(kid);
        self.keys.remove(kid)
    }

    /// The key with this id, if pinned.
    #[must_use]
    pub fn get(&self, kid: &KeyId) -> Option<&PublicKey> {
        self.keys.get(kid)
    }

    /// The key with this id given as text, if pinned.
    pub(crate) fn get_str(&self, kid: &str) -> Option<&PublicKey> {
        self.keys
            .iter()
            .find(|(k, _)| k.as_str() == kid)
            .map(|(_, v)| v)
    }

    /// Number of pinned keys.
    #[must_use]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is pinned.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The pinned keys in key id order.
    pub fn iter(&self) -> impl Iterator<Item = &PublicKey> {
        self.keys.values()
    }
}

impl FromIterator<PublicKey> for TrustedKeys {
    fn from_iter<T: IntoIterator<Item = PublicKey>>(iter: T) -> Self {
        let mut keys = Self::new();
        for key in iter {
            keys.insert(key);
        }
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paserk_round_trips() {
        let key = SigningKey::generate(&mut rand::rng());
        let text = key.to_paserk();
        assert!(text.starts_with("k4.secret."));
        let again = SigningKey::from_paserk(&text).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        let public = key.public_key().to_paserk();
        assert!(public.starts_with("k4.public."));
        let parsed = PublicKey::from_paserk(&public).unwrap();
        assert_eq!(parsed.kid(), key.kid());
        assert_eq!(key.kid().as_str().len(), 16);
    }

    #[test]
    fn a_raw_signature_verifies_with_the_raw_public_key() {
        let key = SigningKey::generate(&mut rand::rng());
        let signature = key.sign_raw(b"(request-target): post /v1/me");
        let public = ed25519_compact::PublicKey::from_slice(key.public_key().raw_bytes()).unwrap();
        let signature = ed25519_compact::Signature::from_slice(&signature).unwrap();
        assert!(
            public
                .verify(b"(request-target): post /v1/me", &signature)
                .is_ok()
        );
        assert!(
            public
                .verify(b"(request-target): get /v1/me", &signature)
                .is_err()
        );
    }

    #[test]
    fn bad_paserk_is_refused() {
        assert!(PublicKey::from_paserk("k4.public.AAAA").is_err());
        assert!(PublicKey::from_paserk("k3.public.AAAA").is_err());
        assert!(SigningKey::from_paserk("hello").is_err());
        let public = SigningKey::generate(&mut rand::rng())
            .public_key()
            .to_paserk();
        assert!(SigningKey::from_paserk(&public).is_err());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let key = SigningKey::generate(&mut rand::rng());
        let paserk = key.to_paserk();
        let shown = format!("{key:?}");
        assert!(!shown.contains(&paserk[10..]));
    }
}
