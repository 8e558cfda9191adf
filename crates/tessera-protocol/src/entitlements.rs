//! Entitlements (docs/PROTOCOL.md §20, §22): feature names, and the terms a
//! feature may carry of its own — an end before the license's, a quota.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::quota::Quota;
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
    /// The feature is metered (§22): an allowance per period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,
}

impl Entitlement {
    /// No terms of its own (not worth keeping).
    #[must_use]
    pub fn is_plain(&self) -> bool {
        self.expires_at.is_none() && self.quota.is_none()
    }

    /// As typed: `@2027-03-01T00:00:00Z` and/or `=100000/month` after a name.
    #[must_use]
    pub fn typed_suffix(&self) -> String {
        let mut s = String::new();
        if let Some(end) = self.expires_at {
            s.push('@');
            s.push_str(&crate::time::format(&end));
        }
        if let Some(q) = &self.quota {
            s.push('=');
            s.push_str(&q.typed());
        }
        s
    }
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

/// Parse one feature as an administrator types it: `sso`;
/// `audit@2027-03-01` (ends at the start of that day, UTC) or
/// `audit@2027-03-01T12:00:00Z`; `api_calls=100000/month` (a quota, §22:
/// `LIMIT/PERIOD[/OVERAGE]`); or both, `exports@2027-03-01=1000/day`.
///
/// # Errors
/// [`Error::Malformed`] for a bad name, end or quota.
pub fn parse_feature(text: &str) -> Result<(String, Entitlement), Error> {
    let text = text.trim();
    let (head, quota) = match text.split_once('=') {
        Some((head, quota)) => (
            head.trim(),
            Some(Quota::parse(quota).map_err(|e| Error::Malformed {
                what: "feature quota",
                reason: format!("{}: {e}", head.trim()),
            })?),
        ),
        None => (text, None),
    };
    let (name, expires_at) = match head.split_once('@') {
        None => (head, None),
        Some((name, end)) => {
            let name = name.trim();
            check_feature_name(name)?;
            let end = crate::human::parse_date_or_time(end).map_err(|e| Error::Malformed {
                what: "feature end",
                reason: format!("{name}: {e}"),
            })?;
            (name, Some(end))
        }
    };
    check_feature_name(name)?;
    Ok((name.to_owned(), Entitlement { expires_at, quota }))
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

/// The next moment after `now` a feature's terms change by themselves: it
/// ends, or its quota's period starts again.
#[must_use]
pub fn next_feature_end(entitlements: &Entitlements, now: Timestamp) -> Option<Timestamp> {
    entitlements
        .values()
        .flat_map(|e| {
            [
                e.expires_at,
                e.quota.as_ref().and_then(|q| q.period_ends_at),
            ]
        })
        .flatten()
        .filter(|t| *t > now)
        .min()
}

/// Features for people: `sso, audit (until 2027-03-01T00:00:00Z),
/// api_calls (1200 of 100000 this month)`.
#[must_use]
pub fn describe(features: &[String], entitlements: &Entitlements) -> String {
    features
        .iter()
        .map(|f| {
            let Some(e) = entitlements.get(f) else {
                return f.clone();
            };
            let mut terms = Vec::new();
            if let Some(end) = e.expires_at {
                terms.push(format!("until {}", crate::time::format(&end)));
            }
            if let Some(q) = &e.quota {
                let per = match q.period {
                    crate::QuotaPeriod::Day => " today",
                    crate::QuotaPeriod::Month => " this month",
                    crate::QuotaPeriod::Total => "",
                };
                let overage = match q.overage {
                    crate::quota::Overage::Block => String::new(),
                    o => format!(", {o}"),
                };
                terms.push(match q.used {
                    Some(used) => format!("{used} of {}{per}{overage}", q.limit),
                    None => format!("{} per {}{overage}", q.limit, q.period.as_str()),
                });
            }
            if terms.is_empty() {
                f.clone()
            } else {
                format!("{f} ({})", terms.join(", "))
            }
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
        assert_eq!(
            parse_feature(" sso ").unwrap(),
            ("sso".into(), Entitlement::default())
        );
        let (name, e) = parse_feature("audit@2027-03-01").unwrap();
        assert_eq!(name, "audit");
        let end = e.expires_at;
        assert_eq!(end.unwrap().to_rfc3339(), "2027-03-01T00:00:00+00:00");
        let (_, e) = parse_feature("audit@2027-03-01T12:30:00Z").unwrap();
        assert_eq!(
            e.expires_at.unwrap().to_rfc3339(),
            "2027-03-01T12:30:00+00:00"
        );
        let (name, e) = parse_feature("exports@2027-03-01=1000/day/allow").unwrap();
        assert_eq!(name, "exports");
        assert!(e.expires_at.is_some());
        assert_eq!(e.quota.as_ref().unwrap().typed(), "1000/day/allow");
        assert_eq!(e.typed_suffix(), "@2027-03-01T00:00:00Z=1000/day/allow");
        assert!(parse_feature("api_calls=0/month").is_err());
        assert!(parse_feature("api calls=10/month").is_err());
        assert!(parse_feature("=10/month").is_err());
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
                quota: None,
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
