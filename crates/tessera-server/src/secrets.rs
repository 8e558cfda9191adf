//! Webhook signing secrets at rest: sealed with XChaCha20-Poly1305 (orion)
//! under a key kept outside the database, so a database dump alone (a
//! PostgreSQL backup, a copied `tessera.db`) does not reveal them.
//!
//! The key is 32 random bytes, hex, in `<data dir>/secrets.key` (0600,
//! created at first start) or the file `--secrets-key-file` names. Replicas
//! sharing one PostgreSQL database must share that file, as they share the
//! signing key. Stored form: `enc1:<hex of nonce ‖ ciphertext ‖ tag>`;
//! a value without the prefix is a secret stored before encryption existed
//! and is sealed at start-up.

use std::path::Path;

use crate::datadir::{read_secret_file, write_secret_file};
use crate::error::{Error, Result};

const PREFIX: &str = "enc1:";

/// Seals and opens secrets stored in the database.
pub struct SecretBox {
    key: orion::aead::SecretKey,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(…)")
    }
}

impl SecretBox {
    /// Load the key from `path`, creating it when missing and `create`.
    ///
    /// # Errors
    /// A missing file that may not be created, a file readable by others,
    /// or one that does not hold 64 hex characters.
    pub fn load_or_create(path: &Path, create: bool) -> Result<Self> {
        if !path.exists() {
            if !create {
                return Err(Error::Config(format!(
                    "secrets key file {} does not exist",
                    path.display()
                )));
            }
            let bytes: [u8; 32] = rand::random();
            write_secret_file(path, &format!("{}\n", hex::encode(bytes)))?;
        }
        let text = read_secret_file(path)?;
        let bytes = hex::decode(text.trim())
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| {
                Error::Config(format!(
                    "secrets key file {} must hold 64 hex characters",
                    path.display()
                ))
            })?;
        Self::from_bytes(&bytes)
    }

    /// A box with this 32-byte key (tests).
    ///
    /// # Errors
    /// [`Error::Config`] for a key of the wrong length.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let key = orion::aead::SecretKey::try_from(bytes)
            .map_err(|_| Error::Config("a secrets key is 32 bytes".into()))?;
        Ok(Self { key })
    }

    /// Whether `stored` is already sealed.
    #[must_use]
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(PREFIX)
    }

    /// Seal a secret for storage.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if encryption fails (never in practice).
    pub fn seal(&self, secret: &str) -> Result<String> {
        let sealed = orion::aead::seal(&self.key, secret.as_bytes())
            .map_err(|_| Error::Corrupt("cannot seal a secret".into()))?;
        Ok(format!("{PREFIX}{}", hex::encode(sealed)))
    }

    /// The secret in a stored value (sealed, or plain from before
    /// encryption existed).
    ///
    /// # Errors
    /// [`Error::Config`] when the value was sealed under another key (a
    /// replica started with a different secrets key file).
    pub fn open(&self, stored: &str) -> Result<String> {
        let Some(hex_text) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_owned());
        };
        let wrong_key = || {
            Error::Config(
                "a stored webhook secret cannot be decrypted: every replica must use the same \
                 --secrets-key-file"
                    .into(),
            )
        };
        let sealed = hex::decode(hex_text).map_err(|_| wrong_key())?;
        let plain = orion::aead::open(&self.key, &sealed).map_err(|_| wrong_key())?;
        String::from_utf8(plain).map_err(|_| wrong_key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_round_trip_and_hide_the_text() {
        let sb = SecretBox::from_bytes(&[7; 32]).unwrap();
        let sealed = sb.seal("whsec_0123456789abcdef").unwrap();
        assert!(SecretBox::is_sealed(&sealed));
        assert!(!sealed.contains("whsec_0123456789abcdef"));
        assert_ne!(
            sealed,
            sb.seal("whsec_0123456789abcdef").unwrap(),
            "random nonce"
        );
        assert_eq!(sb.open(&sealed).unwrap(), "whsec_0123456789abcdef");
        assert_eq!(
            sb.open("legacy-plain-secret").unwrap(),
            "legacy-plain-secret"
        );
        let other = SecretBox::from_bytes(&[8; 32]).unwrap();
        assert!(other.open(&sealed).is_err(), "another key cannot open it");
    }

    #[test]
    fn the_key_file_is_created_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.key");
        assert!(SecretBox::load_or_create(&path, false).is_err());
        let a = SecretBox::load_or_create(&path, true).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = SecretBox::load_or_create(&path, false).unwrap();
        assert_eq!(
            b.open(&a.seal("s3cr3t-s3cr3t-s3cr3t").unwrap()).unwrap(),
            "s3cr3t-s3cr3t-s3cr3t"
        );
    }
}
