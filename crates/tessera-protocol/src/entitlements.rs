//! Entitlements (docs/PROTOCOL.md §20): feature names, and the terms a
//! feature may carry of its own — today an end before the license's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Error, Timestamp};

/// Longest feature name.
pub const MAX_FEATURE_NAME: usize = 64;

/// A feature's own terms.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Entitlement {
    /// The feature ends then (an add-on bought for a while), before the
    /// license does; clients turn it off at that instant by their clock.
    #[serde(
        default,
        with = "crate::time::rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub expires_at: Option<Timestamp>,
}

/// Features with terms of their own, by name.
pub type Entitlements = BTreeMap<String, Entitlement>;

/// Check a feature name: 1–64 characters of `A–Z a–z 0–9 _ - . :`,
/// starting with a letter or digit. (`@` separates a name from its end in
/// `sso,audit@2027-03-01`, so it can never be part of one.)
///
/// # Errors
/// [`Error::Malformed`] saying what is wrong.
pub fn check_feature_name(name: &str) -> Result<(), Error> {
    let bad = |reason: String| Error::Malformed {
        what: "feature name",
        reason,
    };
    if name.is_empty() || name.len() > MAX_FEATURE_NAME {
        return Err(bad(format!(
            "{name:?} must be 1 to {MAX_FEATURE_NAME} characters"
        )));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(bad(format!("{name:?} must start with a letter or a digit")));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')))
    {
        return Err(bad(format!(
            "{name:?} contains {c:?}: a feature name is letters, digits and _ - . : only"
        )));
    }
    Ok(())
}

/// Parse one feature as an administrator types it: `sso`, or
/// `audit@2027-03-01` (ends at the start of that day, UTC) or
/// `audit@2027-03-01T12:00:00Z`.
///
/// # Errors
/// [`Error::Malformed`] for a bad name or end.
pub fn parse_feature(text: &str) -> Result<(String, Option<Timestamp>), Error> {
    let text = text.trim();
    match text.split_once('@') {
        None => {
            check_feature_name(text)?;
            Ok((text.to_owned(), None))
        }
        Some((name, end)) => {
            let name = name.trim();
            check_feature_name(name)?;
            let end = crate::human::parse_date_or_time(end).map_err(|e| Error::Malformed {
                what: "feature end",
                reason: format!("{name}: {e}"),
            })?;
            Ok((name.to_owned(), Some(end)))
        }
    }
}

/// The features granted at `now`: those of `features` whose own end (in
/// `entitlements`) is not reached.
pub fn granted_at<'a>(
    features: &'a [String],
    entitlements: &'a Entitlements,
    now: Timestamp,
) -> impl Iterator<Item = &'a String> + 'a {
    features.iter().filter(move |f| {
        entitlements
            .get(f.as_str())
            .and_then(|e| e.expires_at)
            .is_none_or(|end| end > now)
    })
}

/// The next moment after `now` a feature ends by itself.
#[must_use]
pub fn next_feature_end(entitlements: &Entitlements, now: Timestamp) -> Option<Timestamp> {
    entitlements
        .values()
        .filter_map(|e| e.expires_at)
        .filter(|t| *t > now)
        .min()
}

/// Features for people: `sso, audit (until 2027-03-01T00:00:00Z)`.
#[must_use]
pub fn describe(features: &[String], entitlements: &Entitlements) -> String {
    features
        .iter()
        .map(|f| match entitlements.get(f).and_then(|e| e.expires_at) {
            Some(end) => format!("{f} (until {})", crate::time::format(&end)),
            None => f.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_have_an_alphabet() {
        for good in ["sso", "audit", "api_calls", "ee:sso", "v2.export", "9lives"] {
            assert!(check_feature_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "audit@2027-03-01",
            "has space",
            "-x",
            "é",
            "a/b",
            &"x".repeat(65),
        ] {
            assert!(check_feature_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_feature_may_carry_its_end() {
        assert_eq!(parse_feature(" sso ").unwrap(), ("sso".into(), None));
        let (name, end) = parse_feature("audit@2027-03-01").unwrap();
        assert_eq!(name, "audit");
        assert_eq!(end.unwrap().to_rfc3339(), "2027-03-01T00:00:00+00:00");
        let (_, end) = parse_feature("audit@2027-03-01T12:30:00Z").unwrap();
        assert_eq!(end.unwrap().to_rfc3339(), "2027-03-01T12:30:00+00:00");
        assert!(parse_feature("audit@soon").is_err());
        assert!(parse_feature("@2027-03-01").is_err());
        assert!(parse_feature("a b@2027-03-01").is_err());
    }

    #[test]
    fn features_end_by_themselves() {
        let t = |s: &str| crate::human::parse_date_or_time(s).unwrap();
        let features = vec!["sso".to_owned(), "audit".to_owned()];
        let mut ent = Entitlements::new();
        ent.insert(
            "audit".into(),
            Entitlement {
                expires_at: Some(t("2027-03-01")),
            },
        );
        let at = |now| {
            granted_at(&features, &ent, t(now))
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(at("2027-02-28"), ["sso", "audit"]);
        assert_eq!(at("2027-03-01"), ["sso"], "off at that instant");
        assert_eq!(
            next_feature_end(&ent, t("2027-02-28")),
            Some(t("2027-03-01"))
        );
        assert_eq!(next_feature_end(&ent, t("2027-03-01")), None);
        assert_eq!(
            describe(&features, &ent),
            "sso, audit (until 2027-03-01T00:00:00Z)"
        );
    }
}
