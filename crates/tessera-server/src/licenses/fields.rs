//! Checks of what an administrator types: names, features, dates,
//! durations. Pure functions, each refusing with the error code the API
//! answers (`invalid_characters`, `date_out_of_range`, …).

use chrono::Duration;
use tessera_protocol::Timestamp;
use tessera_protocol::human::{parse_date_or_time, parse_duration};

use crate::error::{Error, Result};

/// Longest free-text field accepted (names, plans, features, reasons).
const MAX_TEXT: usize = 200;
/// Most features on one license.
const MAX_FEATURES: usize = 100;
/// Bidi overrides and embeddings, isolates, marks, and zero-width
/// characters: each can make a name look like another in the console, the
/// CLI and audit logs ("Acme" vs "Ac\u{200B}me", or text shown reversed).
fn is_deceptive(c: char) -> bool {
    matches!(c,
        '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

pub(super) fn check_text(what: &'static str, text: &str) -> Result<()> {
    if text.trim().is_empty() {
        return Err(Error::unprocessable(
            "missing_field",
            format!("{what} must not be empty"),
        ));
    }
    if let Some(c) = text.chars().find(|c| is_deceptive(*c)) {
        return Err(Error::bad_request(
            "invalid_characters",
            format!(
                "{what} contains U+{:04X}, an invisible or text-direction character that \
                 can make a name display as something else",
                u32::from(c)
            ),
        ));
    }
    if text.len() > MAX_TEXT || text.chars().any(char::is_control) {
        return Err(Error::unprocessable(
            "invalid_field",
            format!("{what} must be at most {MAX_TEXT} characters without control characters"),
        ));
    }
    Ok(())
}

pub(super) fn check_features(features: &[String]) -> Result<Vec<String>> {
    if features.len() > MAX_FEATURES {
        return Err(Error::unprocessable(
            "invalid_field",
            format!("at most {MAX_FEATURES} features"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(features.len());
    for f in features {
        let f = f.trim();
        check_text("feature name", f)?;
        if !out.iter().any(|x| x == f) {
            out.push(f.to_owned());
        }
    }
    Ok(out)
}

pub(super) fn duration_field(what: &'static str, text: &str) -> Result<Duration> {
    parse_duration(text)
        .map_err(|e| Error::unprocessable("invalid_duration", format!("{what}: {e}")))
}

pub(super) fn date_field(what: &'static str, text: &str) -> Result<Timestamp> {
    let at = parse_date_or_time(text)
        .map_err(|e| Error::unprocessable("invalid_date", format!("{what}: {e}")))?;
    in_range(what, Some(at))
}

/// A date every client can parse and compute with (1970 … 9999-12-31):
/// anything later would be signed as `+10000-…`, which clients refuse.
fn in_range(what: &'static str, at: Option<Timestamp>) -> Result<Timestamp> {
    match at {
        Some(at) if tessera_protocol::time::is_supported(&at) => Ok(at),
        _ => Err(Error::bad_request(
            "date_out_of_range",
            format!("{what} must be between 1970-01-01 and 9999-12-31"),
        )),
    }
}

/// `at + by`, checked: an overflow or a date past 9999 is a clear 400.
pub(super) fn later(what: &'static str, at: Timestamp, by: Duration) -> Result<Timestamp> {
    in_range(what, at.checked_add_signed(by))
}

/// A document lifetime (offline grace, export TTL) within what clients
/// accept from a key after its retirement (`MAX_DOCUMENT_LIFETIME`).
pub(super) fn lifetime_field(what: &'static str, text: &str) -> Result<Duration> {
    let d = duration_field(what, text)?;
    if d > tessera_protocol::MAX_DOCUMENT_LIFETIME {
        return Err(Error::unprocessable(
            "invalid_duration",
            format!(
                "{what} may be at most {} days: no document lives longer",
                tessera_protocol::MAX_DOCUMENT_LIFETIME.num_days()
            ),
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_refuse_control_and_deceptive_characters() {
        assert!(check_text("customer", "Acme GmbH").is_ok());
        for bad in [
            "Ac\u{200B}me",
            "Acme\u{202E}",
            "\u{2066}x\u{2069}",
            "\u{FEFF}x",
            "a\nb",
        ] {
            assert!(check_text("customer", bad).is_err(), "{bad:?}");
        }
        assert!(check_text("customer", "  ").is_err());
        assert!(check_text("customer", &"x".repeat(MAX_TEXT + 1)).is_err());
    }

    #[test]
    fn dates_and_lifetimes_stay_in_range() {
        let last = parse_date_or_time("9999-12-31T23:00:00Z").unwrap();
        assert!(later("the new expiry", last, Duration::days(365)).is_err());
        assert!(later("the new expiry", last, Duration::minutes(30)).is_ok());
        assert!(date_field("to", "1969-12-31").is_err());
        assert!(date_field("to", "2030-01-01").is_ok());
        assert!(lifetime_field("ttl", "400d").is_ok());
        assert!(lifetime_field("ttl", "401d").is_err());
    }
}
