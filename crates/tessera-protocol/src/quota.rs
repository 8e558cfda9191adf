//! Metered quotas (docs/PROTOCOL.md §22): a feature's allowance per
//! calendar period (UTC), what happens past it, and the arithmetic both
//! sides share — which period an instant falls in, when it ends, how far
//! consumption may go.

use chrono::{Datelike, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::{Error, Timestamp};

/// The largest quota limit and the largest single amount: 2^53, so every
/// count is exact in a JSON number read as a double (JavaScript, Python's
/// `json` keeps ints, but many tools do not).
pub const MAX_QUOTA: u64 = 1 << 53;

/// The share of a quota at which `quota.threshold` fires, in percent.
pub const THRESHOLD_PERCENT: u64 = 80;

/// How long a quota's allowance lasts before it starts again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum QuotaPeriod {
    /// A UTC calendar day.
    Day,
    /// A UTC calendar month.
    Month,
    /// The license's whole life: never starts again.
    Total,
}

impl QuotaPeriod {
    /// The period `at` falls in, as stored and shown: `2026-12-01`,
    /// `2026-12` or `total`.
    #[must_use]
    pub fn key(self, at: Timestamp) -> String {
        match self {
            Self::Day => at.format("%Y-%m-%d").to_string(),
            Self::Month => at.format("%Y-%m").to_string(),
            Self::Total => "total".to_owned(),
        }
    }

    /// When the period `at` falls in ends (`None`: never).
    #[must_use]
    pub fn end(self, at: Timestamp) -> Option<Timestamp> {
        let date = at.date_naive();
        let next = match self {
            Self::Day => date.succ_opt()?,
            Self::Month => {
                let (y, m) = if date.month() == 12 {
                    (date.year() + 1, 1)
                } else {
                    (date.year(), date.month() + 1)
                };
                NaiveDate::from_ymd_opt(y, m, 1)?
            }
            Self::Total => return None,
        };
        Some(Utc.from_utc_datetime(&next.and_hms_opt(0, 0, 0)?))
    }

    /// `day`, `month` or `total`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Month => "month",
            Self::Total => "total",
        }
    }
}

/// What consumption past the limit does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Overage {
    /// Refused at the limit.
    #[default]
    Block,
    /// Never refused; counted and reported.
    Allow,
    /// Refused past this percentage of the limit (> 100).
    AllowUntilPercent(u32),
}

impl Overage {
    /// How far consumption may go in a period: `None` without bound.
    #[must_use]
    pub fn ceiling(self, limit: u64) -> Option<u64> {
        match self {
            Self::Block => Some(limit),
            Self::Allow => None,
            Self::AllowUntilPercent(p) => {
                Some(u64::try_from(u128::from(limit) * u128::from(p) / 100).unwrap_or(u64::MAX))
            }
        }
    }
}

impl std::fmt::Display for Overage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Block => f.write_str("block"),
            Self::Allow => f.write_str("allow"),
            Self::AllowUntilPercent(p) => write!(f, "allow_until_percent({p})"),
        }
    }
}

impl std::str::FromStr for Overage {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let bad = |reason: String| Error::Malformed {
            what: "overage",
            reason,
        };
        match text {
            "block" => Ok(Self::Block),
            "allow" => Ok(Self::Allow),
            _ => {
                let n = text
                    .strip_prefix("allow_until_percent(")
                    .and_then(|rest| rest.strip_suffix(')'))
                    .ok_or_else(|| {
                        bad(format!(
                            "{text:?}: expected block, allow or allow_until_percent(N)"
                        ))
                    })?;
                let n: u32 = n
                    .parse()
                    .map_err(|_| bad(format!("{n:?} is not a whole percentage")))?;
                if !(101..=10_000).contains(&n) {
                    return Err(bad(format!(
                        "allow_until_percent({n}): N must be 101 to 10000 (100 is block)"
                    )));
                }
                Ok(Self::AllowUntilPercent(n))
            }
        }
    }
}

impl Serialize for Overage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Overage {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Overage {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(r"^(block|allow|allow_until_percent\([0-9]+\))$"))
            .description(Some(
                "block, allow, or allow_until_percent(N) with N in 101..=10000",
            ))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Overage {}

/// A feature's quota. In a document it also says how much of the current
/// period was used as of `iat` (`used`) and when that period ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Quota {
    /// Allowance per period, 1 to 2^53.
    pub limit: u64,
    /// `day`, `month` (UTC calendar) or `total`.
    pub period: QuotaPeriod,
    /// What consumption past `limit` does.
    #[serde(default)]
    pub overage: Overage,
    /// Used in the period of `iat`, across every instance, as the authority
    /// had counted it (documents and admin views; absent in definitions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used: Option<u64>,
    /// What was left of `limit` then: `limit - used`, 0 in overage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u64>,
    /// When that period ends (absent for `total`).
    #[serde(
        default,
        with = "crate::time::rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub period_ends_at: Option<Timestamp>,
}

impl Quota {
    /// A definition: no usage yet.
    #[must_use]
    pub fn new(limit: u64, period: QuotaPeriod, overage: Overage) -> Self {
        Self {
            limit,
            period,
            overage,
            used: None,
            remaining: None,
            period_ends_at: None,
        }
    }

    /// This quota as of `at`, with `used` in that period.
    #[must_use]
    pub fn as_of(&self, at: Timestamp, used: u64) -> Self {
        Self {
            used: Some(used),
            remaining: Some(self.limit.saturating_sub(used)),
            period_ends_at: self.period.end(at),
            ..Self::new(self.limit, self.period, self.overage)
        }
    }

    /// What is left of the limit after `used` (0 in overage).
    #[must_use]
    pub fn left_after(&self, used: u64) -> u64 {
        self.limit.saturating_sub(used)
    }

    /// `100000/month` or `500/total/allow`: the form typed after `=`.
    #[must_use]
    pub fn typed(&self) -> String {
        match self.overage {
            Overage::Block => format!("{}/{}", self.limit, self.period.as_str()),
            o => format!("{}/{}/{o}", self.limit, self.period.as_str()),
        }
    }

    /// Parse `LIMIT/PERIOD[/OVERAGE]` (`100000/month`, `500/total/allow`,
    /// `1000/day/allow_until_percent(120)`).
    ///
    /// # Errors
    /// [`Error::Malformed`] saying what is wrong.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let bad = |reason: String| Error::Malformed {
            what: "quota",
            reason,
        };
        let mut parts = text.trim().splitn(3, '/');
        let limit = parts.next().unwrap_or_default().replace('_', "");
        let period = parts.next().ok_or_else(|| {
            bad(format!(
                "{text:?}: expected LIMIT/PERIOD[/OVERAGE], e.g. 100000/month"
            ))
        })?;
        let limit: u64 = limit
            .parse()
            .map_err(|_| bad(format!("limit {limit:?} is not a whole number")))?;
        if !(1..=MAX_QUOTA).contains(&limit) {
            return Err(bad(format!(
                "limit {limit} must be 1 to 2^53 ({MAX_QUOTA})"
            )));
        }
        let period = match period {
            "day" => QuotaPeriod::Day,
            "month" => QuotaPeriod::Month,
            "total" => QuotaPeriod::Total,
            other => {
                return Err(bad(format!(
                    "period {other:?}: expected day, month or total"
                )));
            }
        };
        let overage = parts.next().map_or(Ok(Overage::Block), str::parse)?;
        Ok(Self::new(limit, period, overage))
    }
}

/// What one addition to a period's use passed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Crossings {
    /// 80 % of the limit (`quota.threshold`).
    pub threshold: bool,
    /// The limit (`quota.exhausted`).
    pub exhausted: bool,
    /// The point past which consumption is refused (the limit under
    /// `block`, N % of it under `allow_until_percent(N)`): every instance
    /// must hear of it at once.
    pub blocked: bool,
}

impl Quota {
    /// What going from `before` to `after` used passes. Each mark is passed
    /// once per period, whatever the size of the steps.
    #[must_use]
    pub fn crossings(&self, before: u64, after: u64) -> Crossings {
        let passed = |mark: u64| before < mark && after >= mark;
        let threshold = u64::try_from(u128::from(self.limit) * u128::from(THRESHOLD_PERCENT) / 100)
            .unwrap_or(u64::MAX)
            .max(1);
        Crossings {
            threshold: passed(threshold),
            exhausted: passed(self.limit),
            blocked: self.overage.ceiling(self.limit).is_some_and(passed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        crate::human::parse_date_or_time(s).unwrap()
    }

    #[test]
    fn periods_are_utc_calendar_periods() {
        let at = t("2026-12-31T23:59:59Z");
        assert_eq!(QuotaPeriod::Day.key(at), "2026-12-31");
        assert_eq!(QuotaPeriod::Month.key(at), "2026-12");
        assert_eq!(QuotaPeriod::Total.key(at), "total");
        assert_eq!(QuotaPeriod::Day.end(at), Some(t("2027-01-01")));
        assert_eq!(QuotaPeriod::Month.end(at), Some(t("2027-01-01")));
        assert_eq!(
            QuotaPeriod::Month.end(t("2027-02-10")),
            Some(t("2027-03-01"))
        );
        assert_eq!(QuotaPeriod::Total.end(at), None);
        // The first instant of a period belongs to it.
        assert_eq!(QuotaPeriod::Month.key(t("2027-01-01")), "2027-01");
    }

    #[test]
    fn quotas_parse_as_typed_and_refuse_bad_input() {
        let q = Quota::parse("100_000/month").unwrap();
        assert_eq!(
            (q.limit, q.period, q.overage),
            (100_000, QuotaPeriod::Month, Overage::Block)
        );
        assert_eq!(q.typed(), "100000/month");
        let q = Quota::parse("1000/day/allow_until_percent(120)").unwrap();
        assert_eq!(q.overage, Overage::AllowUntilPercent(120));
        assert_eq!(q.overage.ceiling(q.limit), Some(1200));
        assert_eq!(Quota::parse(&q.typed()).unwrap(), q);
        assert_eq!(
            Quota::parse("5/total/allow").unwrap().overage.ceiling(5),
            None
        );
        assert!(Quota::parse(&format!("{MAX_QUOTA}/day")).is_ok());
        for bad in [
            "",
            "100",
            "0/day",
            "-5/day",
            "1.5/day",
            &format!("{}/day", MAX_QUOTA + 1),
            "18446744073709551616/day",
            "10/week",
            "10/day/sometimes",
            "10/day/allow_until_percent(100)",
            "10/day/allow_until_percent(x)",
        ] {
            assert!(Quota::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn each_mark_is_passed_once() {
        let q = Quota::parse("100/month").unwrap();
        assert_eq!(q.crossings(0, 79), Crossings::default());
        let c = q.crossings(79, 80);
        assert!(c.threshold && !c.exhausted && !c.blocked);
        let c = q.crossings(0, 150);
        assert!(
            c.threshold && c.exhausted && c.blocked,
            "one big step passes all"
        );
        assert_eq!(
            q.crossings(100, 120),
            Crossings::default(),
            "already passed"
        );
        let q = Quota::parse("100/month/allow_until_percent(120)").unwrap();
        let c = q.crossings(90, 110);
        assert!(c.exhausted && !c.blocked);
        assert!(q.crossings(110, 120).blocked);
        let q = Quota::parse("100/month/allow").unwrap();
        assert!(!q.crossings(0, u64::MAX).blocked);
    }

    #[test]
    fn overage_round_trips_on_the_wire() {
        for o in [
            Overage::Block,
            Overage::Allow,
            Overage::AllowUntilPercent(150),
        ] {
            let json = serde_json::to_string(&o).unwrap();
            assert_eq!(serde_json::from_str::<Overage>(&json).unwrap(), o);
        }
        assert!(serde_json::from_str::<Overage>("\"maybe\"").is_err());
    }
}
