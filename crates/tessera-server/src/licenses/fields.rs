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
pub(super) const MAX_FEATURES: usize = 100;
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

/// A policy's default features, as stored: `sso` or `api_calls=1000/day`
/// (a quota is a policy's to give; an end is a date, which only a license
/// can have).
pub(super) fn check_features(features: &[String]) -> Result<Vec<String>> {
    let (names, terms) = check_entitlements(features, None, None)?;
    if let Some((name, _)) = terms.iter().find(|(_, e)| e.expires_at.is_some()) {
        return Err(Error::unprocessable(
            "invalid_feature",
            format!("{name}: a policy's features take no end date; give it when issuing"),
        ));
    }
    Ok(names
        .into_iter()
        .map(|name| match terms.get(&name) {
            Some(e) => format!("{name}{}", e.typed_suffix()),
            None => name,
        })
        .collect())
}

/// A policy's defaults as a license takes them. They were checked when
/// the policy was made; a name stored before the feature alphabet (§20)
/// is kept as it is.
pub(super) fn policy_defaults(
    features: &[String],
) -> (Vec<String>, tessera_protocol::Entitlements) {
    let mut names = Vec::with_capacity(features.len());
    let mut terms = tessera_protocol::Entitlements::new();
    for f in features {
        match tessera_protocol::entitlements::parse_feature(f) {
            Ok((name, e)) => {
                if !e.is_plain() {
                    terms.insert(name.clone(), e);
                }
                names.push(name);
            }
            Err(_) => names.push(f.clone()),
        }
    }
    (names, terms)
}

/// A license's features as typed (`sso`, `audit@2027-03-01`,
/// `api_calls=100000/month`): the names (a repeated name once) and the
/// terms of those that have any. An end must lie after `now` and not after
/// the license's `expires_at`.
pub(super) fn check_entitlements(
    features: &[String],
    now: Option<Timestamp>,
    expires_at: Option<Timestamp>,
) -> Result<(Vec<String>, tessera_protocol::Entitlements)> {
    if features.len() > MAX_FEATURES {
        return Err(Error::unprocessable(
            "invalid_field",
            format!("at most {MAX_FEATURES} features"),
        ));
    }
    let mut names: Vec<String> = Vec::with_capacity(features.len());
    let mut terms = tessera_protocol::Entitlements::new();
    for f in features {
        let (name, mut e) = tessera_protocol::entitlements::parse_feature(f)
            .map_err(|e| Error::unprocessable("invalid_feature", e.to_string()))?;
        e.expires_at = e
            .expires_at
            .map(|t| in_range("feature end", Some(t)))
            .transpose()?;
        let known = names.contains(&name);
        if known && terms.get(&name).cloned().unwrap_or_default() != e {
            return Err(Error::unprocessable(
                "invalid_feature",
                format!("{name} is given twice with different terms"),
            ));
        }
        if let Some(end) = e.expires_at {
            if now.is_some_and(|now| end <= now) {
                return Err(Error::unprocessable(
                    "invalid_feature",
                    format!(
                        "{name}: its end {} has already passed",
                        tessera_protocol::time::format(&end)
                    ),
                ));
            }
            if expires_at.is_some_and(|license_end| end > license_end) {
                return Err(Error::unprocessable(
                    "invalid_feature",
                    format!(
                        "{name}: its end {} is after the license's own expiry; a feature cannot outlive its license",
                        tessera_protocol::time::format(&end)
                    ),
                ));
            }
        }
        if !e.is_plain() {
            terms.insert(name.clone(), e);
        }
        if !known {
            names.push(name);
        }
    }
    Ok((names, terms))
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
    fn features_have_an_alphabet_and_ends_within_the_license() {
        let at = |s: &str| parse_date_or_time(s).unwrap();
        let f = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let (now, end) = (Some(at("2027-01-01")), Some(at("2028-01-01")));
        let (names, ends) =
            check_entitlements(&f(&["sso", "audit@2027-03-01", "sso"]), now, end).unwrap();
        assert_eq!(names, ["sso", "audit"]);
        assert_eq!(ends["audit"].expires_at, Some(at("2027-03-01")));
        for bad in [
            &["audit@2029-01-01"][..],
            &["audit@2026-12-31"],
            &["audit@2027-03-01", "audit@2027-04-01"],
            &["has space"],
            &["audit@someday"],
            &["api_calls=100/month", "api_calls=200/month"],
            &["api_calls=9007199254740993/month"],
            &["api_calls=-1/month"],
            &["api_calls=10/fortnight"],
        ] {
            let err = check_entitlements(&f(bad), now, end).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::Unprocessable {
                        code: "invalid_feature",
                        ..
                    }
                ),
                "{bad:?}: {err}"
            );
        }
        assert!(
            check_entitlements(&f(&["audit@2099-01-01"]), now, None).is_ok(),
            "perpetual"
        );
        let (_, terms) = check_entitlements(&f(&["api_calls=1_000/day/allow"]), now, end).unwrap();
        assert_eq!(terms["api_calls"].quota.as_ref().unwrap().limit, 1000);
        // A policy keeps its quotas as typed, and a license takes them.
        let stored = check_features(&f(&["sso", "api_calls=1000/month"])).unwrap();
        assert_eq!(stored, ["sso", "api_calls=1000/month"]);
        let (names, terms) = policy_defaults(&stored);
        assert_eq!(names, ["sso", "api_calls"]);
        assert_eq!(terms["api_calls"].quota.as_ref().unwrap().limit, 1000);
        let err = check_features(&f(&["audit@2027-03-01"])).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Unprocessable {
                    code: "invalid_feature",
                    ..
                }
            ),
            "{err}"
        );
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
