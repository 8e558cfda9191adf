//! Offline activation requests (docs/PROTOCOL.md §25): what an isolated
//! machine asks the authority for, carried by hand.
//!
//! The essential part is a short code — `TSRQ1-` and groups of five
//! characters of Crockford's base32 (no I, L, O, U; read back
//! case-insensitively, with `O`→0 and `I`/`L`→1) — short enough to read
//! over the phone or put in a QR code (under 200 characters with a
//! 24-byte app version), and checksummed (CRC-32) so that a misread
//! character is caught before anything is signed. It carries the token's
//! fingerprint (never the token), the machine's fingerprint hash, a nonce
//! the response must answer, the client's clock mark and its app version.

use crate::error::Error;
use crate::time::Timestamp;
use crate::token::TokenFingerprint;

/// The code's prefix: format 1.
pub const PREFIX: &str = "TSRQ1";
/// Longest app version carried (longer ones are cut).
pub const MAX_APP_VERSION: usize = 24;
/// Bytes of the nonce (hex in documents).
pub const NONCE_BYTES: usize = 10;

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const VERSION: u8 = 1;

/// An offline activation request, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineRequest {
    /// The license token's fingerprint (`tfp`).
    pub tfp: TokenFingerprint,
    /// The machine's fingerprint hash (`mfp`, 32 hex characters).
    pub mfp: String,
    /// The nonce the response answers (20 hex characters).
    pub nonce: String,
    /// The client's clock mark when it asked (whole seconds).
    pub mark: Timestamp,
    /// The product's version, if given.
    pub app_version: Option<String>,
}

fn malformed(reason: impl Into<String>) -> Error {
    Error::Malformed {
        what: "offline request",
        reason: reason.into(),
    }
}

fn hex_bytes(hex_text: &str, len: usize, what: &str) -> Result<Vec<u8>, Error> {
    let bytes = hex::decode(hex_text).map_err(|_| malformed(format!("{what} is not hex")))?;
    if bytes.len() != len {
        return Err(malformed(format!("{what} is not {len} bytes")));
    }
    Ok(bytes)
}

fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

fn unbase32(text: &str) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.chars() {
        let c = match c.to_ascii_uppercase() {
            '-' | ' ' | '\t' | '\r' | '\n' => continue,
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        };
        let v = ALPHABET
            .iter()
            .position(|&a| char::from(a) == c)
            .ok_or_else(|| malformed(format!("{c:?} is not a character of the code")))?;
        acc = (acc << 5) | u32::try_from(v).unwrap_or(0);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).unwrap_or(0));
        }
        acc &= (1 << bits) - 1;
    }
    // The encoder pads the last character with zero bits: any other last
    // character is a misreading the checksum alone could miss.
    if acc != 0 {
        return Err(malformed(
            "the last character does not fit the code: it was misread",
        ));
    }
    Ok(out)
}

impl OfflineRequest {
    /// The printable code: `TSRQ1-XXXXX-XXXXX-…`.
    ///
    /// # Errors
    /// [`Error::Malformed`] when a field does not fit the format (a `mfp`
    /// or nonce of the wrong length, a mark before 1970 or past 2^40 s).
    pub fn encode(&self) -> Result<String, Error> {
        let mut bytes = vec![VERSION];
        bytes.extend(hex_bytes(self.tfp.as_str(), 8, "tfp")?);
        bytes.extend(hex_bytes(&self.mfp, 16, "mfp")?);
        bytes.extend(hex_bytes(&self.nonce, NONCE_BYTES, "nonce")?);
        let mark = u64::try_from(self.mark.timestamp())
            .ok()
            .filter(|m| *m < 1 << 40)
            .ok_or_else(|| malformed("the clock mark is out of range"))?;
        bytes.extend(&mark.to_be_bytes()[3..]);
        let version = self.app_version.as_deref().unwrap_or("");
        let mut cut = version.len().min(MAX_APP_VERSION);
        while !version.is_char_boundary(cut) {
            cut -= 1;
        }
        bytes.push(u8::try_from(cut).unwrap_or(0));
        bytes.extend(&version.as_bytes()[..cut]);
        let crc = crc32fast::hash(&bytes);
        bytes.extend(crc.to_be_bytes());
        let body = base32(&bytes);
        let groups: Vec<&str> = body
            .as_bytes()
            .chunks(5)
            .map(|c| std::str::from_utf8(c).unwrap_or(""))
            .collect();
        Ok(format!("{PREFIX}-{}", groups.join("-")))
    }

    /// Read a code back (dashes, spaces and case do not matter; `O` is read
    /// as 0 and `I`/`L` as 1). Also finds the code in a request file: the
    /// first line that starts with the prefix.
    ///
    /// # Errors
    /// [`Error::Malformed`]: no code, a character outside the alphabet, a
    /// wrong checksum (a character misread), or an unknown format.
    pub fn decode(text: &str) -> Result<Self, Error> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| l.to_ascii_uppercase().starts_with(PREFIX))
            .ok_or_else(|| malformed(format!("no {PREFIX} code found")))?;
        let bytes = unbase32(&line[PREFIX.len()..])?;
        if bytes.len() < 1 + 8 + 16 + NONCE_BYTES + 5 + 1 + 4 {
            return Err(malformed("the code is too short: a group is missing"));
        }
        let (payload, crc) = bytes.split_at(bytes.len() - 4);
        let expected = crc32fast::hash(payload).to_be_bytes();
        if crc != expected {
            return Err(malformed(
                "the checksum does not match: a character was misread or left out",
            ));
        }
        if payload[0] != VERSION {
            return Err(malformed(format!(
                "format {} is not one this authority reads",
                payload[0]
            )));
        }
        let mut at = 1;
        let mut take = |n: usize| {
            let part = payload.get(at..at + n);
            at += n;
            part.ok_or_else(|| malformed("the code is cut short"))
        };
        let tfp = TokenFingerprint::parse(&hex::encode(take(8)?))?;
        let mfp = hex::encode(take(16)?);
        let nonce = hex::encode(take(NONCE_BYTES)?);
        let mut mark = [0u8; 8];
        mark[3..].copy_from_slice(take(5)?);
        let mark = i64::try_from(u64::from_be_bytes(mark)).unwrap_or(i64::MAX);
        let mark = Timestamp::from_timestamp(mark, 0)
            .ok_or_else(|| malformed("the clock mark is out of range"))?;
        let len = usize::from(take(1)?[0]);
        let version = std::str::from_utf8(take(len)?)
            .map_err(|_| malformed("the app version is not UTF-8"))?
            .to_owned();
        if at != payload.len() {
            return Err(malformed("the code has bytes past its end"));
        }
        Ok(Self {
            tfp,
            mfp,
            nonce,
            mark,
            app_version: (!version.is_empty()).then_some(version),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: Option<&str>) -> OfflineRequest {
        OfflineRequest {
            tfp: TokenFingerprint::parse("6ecc8d203b7d0776").unwrap(),
            mfp: "00112233445566778899aabbccddeeff".into(),
            nonce: "0123456789abcdef0123".into(),
            mark: Timestamp::from_timestamp(1_790_000_000, 0).unwrap(),
            app_version: version.map(str::to_owned),
        }
    }

    #[test]
    fn a_request_round_trips_and_stays_short() {
        let long = "2026.12.1-enterprise+build.4711";
        for version in [None, Some("1.2.3"), Some(long)] {
            let r = request(version);
            let code = r.encode().unwrap();
            assert!(code.starts_with("TSRQ1-"), "{code}");
            assert!(code.len() <= 200, "{} characters: {code}", code.len());
            let mut back = OfflineRequest::decode(&code).unwrap();
            if version == Some(long) {
                assert_eq!(back.app_version.as_deref(), Some(&long[..MAX_APP_VERSION]));
                back.app_version = r.app_version.clone();
            }
            assert_eq!(back, r);
        }
    }

    #[test]
    fn a_code_read_over_the_phone_is_forgiving_but_checked() {
        let code = request(Some("1.2.3")).encode().unwrap();
        // Lower case, spaces for dashes, the letter O for zero: the same.
        let spoken = code.to_lowercase().replace('-', " ").replace('0', "o");
        let file = format!("# Tessera offline activation request\n\n{spoken}\n");
        assert_eq!(
            OfflineRequest::decode(&file).unwrap(),
            OfflineRequest::decode(&code).unwrap()
        );
        // Any single character misread as any other is caught (the
        // checksum, and the last character's padding bits).
        let body_start = PREFIX.len() + 1;
        let mut tried = 0;
        for (i, c) in code.char_indices().skip(body_start) {
            if c == '-' {
                continue;
            }
            for &other in ALPHABET.iter().filter(|&&a| char::from(a) != c) {
                let mut misread = code.clone();
                misread.replace_range(i..=i, &char::from(other).to_string());
                assert!(OfflineRequest::decode(&misread).is_err(), "{misread}");
                tried += 1;
            }
        }
        assert!(tried > 2_000, "{tried}");
        // A group left out, an unknown character, no code at all.
        let short = code[..code.len() - 6].to_owned();
        assert!(OfflineRequest::decode(&short).is_err());
        assert!(OfflineRequest::decode(&code.replace('A', "U")).is_err() || !code.contains('A'));
        assert!(OfflineRequest::decode("hello").is_err());
    }

    #[test]
    fn fields_that_do_not_fit_are_refused() {
        let mut r = request(None);
        r.mfp = "abc".into();
        assert!(r.encode().is_err());
        let mut r = request(None);
        r.nonce = "zz".into();
        assert!(r.encode().is_err());
    }
}
