//! Secret tokens: license tokens (`tsr_…`) and admin keys (`tsa_…`).
//!
//! Format: prefix + 30 base62 characters of randomness (≈178 bits) + 6 base62
//! characters of CRC32 over the random part. The checksum lets anyone reject a
//! mistyped token without a database lookup or a network call, and lets secret
//! scanners recognise a leaked one (the GitHub token format).
//!
//! The secret text is never printed by `Debug` or `Display`: only the prefix
//! and the last four characters, which is what the console shows too.

use std::fmt;
use std::str::FromStr;

use rand_core::CryptoRng;
use sha2::{Digest, Sha256};

use crate::Error;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const RANDOM_LEN: usize = 30;
const CHECKSUM_LEN: usize = 6;
const BODY_LEN: usize = RANDOM_LEN + CHECKSUM_LEN;
/// Length of every token, prefix included.
pub const TOKEN_LEN: usize = 4 + BODY_LEN;

/// Which kind of secret a token is; fixes its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A license token handed to a customer (`tsr_`).
    License,
    /// An authority administrator key (`tsa_`).
    Admin,
}

impl TokenKind {
    /// The four-character prefix of this kind.
    #[must_use]
    pub fn prefix(self) -> &'static str {
        match self {
            TokenKind::License => "tsr_",
            TokenKind::Admin => "tsa_",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            TokenKind::License => "license token",
            TokenKind::Admin => "admin key",
        }
    }
}

fn base62_value(c: u8) -> Option<u32> {
    match c {
        b'0'..=b'9' => Some(u32::from(c - b'0')),
        b'A'..=b'Z' => Some(u32::from(c - b'A') + 10),
        b'a'..=b'z' => Some(u32::from(c - b'a') + 36),
        _ => None,
    }
}

fn checksum_chars(random: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut crc = crc32fast::hash(random);
    let mut out = [b'0'; CHECKSUM_LEN];
    // Big-endian, zero-padded: 62^6 ≈ 5.7e10 > 2^32, so six characters hold any CRC32.
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(crc % 62) as usize];
        crc /= 62;
    }
    out
}

/// Generate the body (random part + checksum) with rejection sampling, so every
/// character is uniform over the alphabet.
fn generate_body<R: CryptoRng + ?Sized>(rng: &mut R) -> String {
    let mut random = Vec::with_capacity(RANDOM_LEN);
    let mut buf = [0u8; 64];
    while random.len() < RANDOM_LEN {
        rng.fill_bytes(&mut buf);
        for &b in &buf {
            // 248 = 4 * 62: bytes at or above it would bias the low characters.
            if b < 248 && random.len() < RANDOM_LEN {
                random.push(ALPHABET[usize::from(b % 62)]);
            }
        }
    }
    let checksum = checksum_chars(&random);
    random.extend_from_slice(&checksum);
    String::from_utf8(random).unwrap_or_default()
}

/// Shortest license key from another system that is taken as one.
pub const FOREIGN_KEY_MIN: usize = 8;
/// Longest (Keygen's signed keys run to a few hundred characters).
pub const FOREIGN_KEY_MAX: usize = 512;

/// Whether `text` is a license key imported from another system (§30):
/// not `tsr_…` (those are checked, checksum and all) nor `tsa_…`, 8–512
/// printable ASCII characters without spaces. It is kept exactly as it is,
/// so customers need not re-enter anything; only its hash is stored, as for
/// Tessera's own tokens. Without a checksum, a mistyped one is simply not
/// found.
#[must_use]
pub fn is_foreign_license_key(text: &str) -> bool {
    !text.starts_with(TokenKind::License.prefix())
        && !text.starts_with(TokenKind::Admin.prefix())
        && (FOREIGN_KEY_MIN..=FOREIGN_KEY_MAX).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_graphic())
}

fn parse_body(kind: TokenKind, text: &str) -> Result<(), Error> {
    let noun = kind.noun();
    let Some(body) = text.strip_prefix(kind.prefix()) else {
        return Err(Error::TokenFormat {
            reason: format!("a {noun} starts with \"{}\"", kind.prefix()),
        });
    };
    if body.len() != BODY_LEN {
        return Err(Error::TokenFormat {
            reason: format!(
                "a {noun} is {TOKEN_LEN} characters long, this one is {}",
                text.chars().count()
            ),
        });
    }
    if let Some(pos) = body.bytes().position(|c| base62_value(c).is_none()) {
        return Err(Error::TokenFormat {
            reason: format!(
                "character {} of the {noun} is not a letter or digit",
                pos + 5
            ),
        });
    }
    let (random, checksum) = body.as_bytes().split_at(RANDOM_LEN);
    if checksum_chars(random) != checksum {
        return Err(Error::TokenChecksum {
            noun: noun.to_owned(),
        });
    }
    Ok(())
}

macro_rules! secret_token {
    ($(#[$doc:meta])* $name:ident, $kind:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            /// Generate a new random token.
            pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
                Self(format!("{}{}", $kind.prefix(), generate_body(rng)))
            }

            /// Parse a token, checking prefix, length, alphabet and checksum.
            ///
            /// Surrounding white space is ignored (tokens are pasted from mails).
            ///
            /// # Errors
            /// [`Error::TokenFormat`] or [`Error::TokenChecksum`]; the message never
            /// contains the token.
            pub fn parse(text: &str) -> Result<Self, Error> {
                let text = text.trim();
                if $kind == TokenKind::License && !text.starts_with($kind.prefix()) {
                    if is_foreign_license_key(text) {
                        return Ok(Self(text.to_owned()));
                    }
                    return Err(Error::TokenFormat {
                        reason: format!(
                            "a license key is a tsr_… token, or another system's key of \
                             {FOREIGN_KEY_MIN}–{FOREIGN_KEY_MAX} printable ASCII characters \
                             without spaces"
                        ),
                    });
                }
                parse_body($kind, text)?;
                Ok(Self(text.to_owned()))
            }

            /// The secret text. Handle with care: never log it.
            #[must_use]
            pub fn expose_secret(&self) -> &str {
                &self.0
            }

            /// The last four characters, safe to display.
            #[must_use]
            pub fn last4(&self) -> &str {
                &self.0[self.0.len() - 4..]
            }

            /// SHA-256 of the token, hex: what the authority stores.
            #[must_use]
            pub fn hash(&self) -> TokenHash {
                TokenHash(hex::encode(Sha256::digest(self.0.as_bytes())))
            }

            /// First 16 hex characters of SHA-256 of the token: binds a status
            /// document to the token it answers for.
            #[must_use]
            pub fn fingerprint(&self) -> TokenFingerprint {
                self.hash().fingerprint()
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                Self::parse(s)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}…{}", $kind.prefix(), self.last4())
            }
        }
    };
}

secret_token!(
    /// A license token (`tsr_…`). Secret: `Debug` shows only prefix and last four.
    LicenseToken,
    TokenKind::License
);
secret_token!(
    /// An administrator key (`tsa_…`). Secret: `Debug` shows only prefix and last four.
    AdminKey,
    TokenKind::Admin
);

/// Hex SHA-256 of a token. Stored by the authority instead of the token.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenHash(String);

impl TokenHash {
    /// Wrap a stored hash (64 lowercase hex characters).
    ///
    /// # Errors
    /// [`Error::Malformed`] when the text is not 64 lowercase hex characters.
    pub fn from_hex(text: &str) -> Result<Self, Error> {
        if text.len() == 64 && text.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Self(text.to_owned()))
        } else {
            Err(Error::Malformed {
                what: "token hash",
                reason: "expected 64 lowercase hex characters".into(),
            })
        }
    }

    /// The hex text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The fingerprint derived from this hash.
    #[must_use]
    pub fn fingerprint(&self) -> TokenFingerprint {
        TokenFingerprint(self.0[..16].to_owned())
    }
}

/// First 16 hex characters of SHA-256(token): the `tfp` claim.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct TokenFingerprint(String);

text_newtype!(TokenFingerprint);

impl TokenFingerprint {
    /// A fingerprint as carried by hand (an offline request): 16 lowercase
    /// hex characters.
    ///
    /// # Errors
    /// [`Error::Malformed`] for anything else.
    pub fn parse(text: &str) -> Result<Self, Error> {
        if text.len() == 16
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Self(text.to_owned()))
        } else {
            Err(Error::Malformed {
                what: "token fingerprint",
                reason: "not 16 lowercase hex characters".into(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> LicenseToken {
        LicenseToken::generate(&mut rand::rng())
    }

    #[test]
    fn generated_tokens_parse_and_differ() {
        let a = token();
        let b = token();
        assert_ne!(a, b);
        assert_eq!(a.expose_secret().len(), TOKEN_LEN);
        assert!(a.expose_secret().starts_with("tsr_"));
        assert_eq!(LicenseToken::parse(a.expose_secret()).unwrap(), a);
        let admin = AdminKey::generate(&mut rand::rng());
        assert!(admin.expose_secret().starts_with("tsa_"));
        assert!(AdminKey::parse(admin.expose_secret()).is_ok());
    }

    #[test]
    fn one_changed_character_is_caught_by_the_checksum() {
        let t = token();
        let text = t.expose_secret();
        for i in 4..TOKEN_LEN {
            let mut bytes = text.as_bytes().to_vec();
            bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
            let typo = String::from_utf8(bytes).unwrap();
            let err = LicenseToken::parse(&typo).unwrap_err();
            assert!(
                matches!(err, Error::TokenChecksum { .. }),
                "position {i}: {err}"
            );
        }
    }

    #[test]
    fn errors_explain_and_never_echo_the_token() {
        let t = token();
        let text = t.expose_secret();
        // (`tsx_…` of 40 characters would be another system's key: §30.)
        let cases = [
            (format!("tsx {}", &text[4..]), "8–512 printable"),
            (text[..TOKEN_LEN - 1].to_string(), "40 characters long"),
            (format!("{}!{}", &text[..10], &text[11..]), "not a letter"),
        ];
        for (input, expected) in cases {
            let msg = LicenseToken::parse(&input).unwrap_err().to_string();
            assert!(msg.contains(expected), "{msg}");
            assert!(
                !msg.contains(&text[4..20]),
                "message leaks the token: {msg}"
            );
        }
        let admin_as_license = AdminKey::generate(&mut rand::rng());
        assert!(LicenseToken::parse(admin_as_license.expose_secret()).is_err());
        let msg = AdminKey::parse(&format!("tsx_{}", &text[4..]))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("starts with") && !msg.contains(&text[4..20]),
            "{msg}"
        );
    }

    #[test]
    fn debug_redacts() {
        let t = token();
        let shown = format!("{t:?}");
        assert!(!shown.contains(&t.expose_secret()[4..30]));
        assert!(shown.ends_with(t.last4()));
    }

    #[test]
    fn foreign_license_keys_are_kept_as_they_are() {
        let keygen = "C1B6DE-39A6E3-DE1529-8559A0-4AF593-V3";
        let t = LicenseToken::parse(&format!("  {keygen}\n")).unwrap();
        assert_eq!(t.expose_secret(), keygen);
        assert_eq!(t.last4(), "3-V3");
        // Tessera's own keep their checks; admin keys never pass as licenses;
        // too short, too long, spaces or non-ASCII are not keys.
        assert!(LicenseToken::parse("tsr_notachecksummedtoken0000000000000000").is_err());
        for bad in [
            "tsa_0123456789",
            "short",
            "has space inside",
            "ключ-лицензии-1",
            &"k".repeat(513),
        ] {
            assert!(LicenseToken::parse(bad).is_err(), "{bad}");
        }
        assert!(AdminKey::parse(keygen).is_err());
    }

    #[test]
    fn fingerprint_is_hash_prefix() {
        let t = token();
        assert_eq!(t.fingerprint().as_str(), &t.hash().as_str()[..16]);
        assert!(TokenHash::from_hex(t.hash().as_str()).is_ok());
        assert!(TokenHash::from_hex("xyz").is_err());
    }

    #[test]
    fn white_space_around_a_pasted_token_is_ignored() {
        let t = token();
        let pasted = format!("  {}\n", t.expose_secret());
        assert_eq!(LicenseToken::parse(&pasted).unwrap(), t);
    }
}
