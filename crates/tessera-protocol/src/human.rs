//! Durations and dates as people type them: `30d`, `12h`, `1y`, `2027-01-01`.

use chrono::{DateTime, Duration, NaiveDate};

use crate::{Error, Timestamp};

/// Parse a duration: a whole number and a unit, `s` `m` `h` `d` `w` or `y`
/// (a year is 365 days). Examples: `90s`, `15m`, `12h`, `30d`, `2w`, `1y`.
///
/// # Errors
/// [`Error::Malformed`] with an example of the expected form.
pub fn parse_duration(text: &str) -> Result<Duration, Error> {
    let bad = |reason: String| Error::Malformed {
        what: "duration",
        reason,
    };
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(|| {
        bad(format!(
            "{text:?} has no unit; write e.g. 30d, 12h, 15m, 1y"
        ))
    })?;
    let (number, unit) = text.split_at(split);
    let n: i64 = number.parse().map_err(|_| {
        bad(format!(
            "{text:?} does not start with a whole number; write e.g. 30d"
        ))
    })?;
    let secs_per_unit: i64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "y" => 365 * 86_400,
        _ => {
            return Err(bad(format!(
                "unknown unit {unit:?}; use s, m, h, d, w or y (e.g. 30d)"
            )));
        }
    };
    // A hundred years is beyond any license term and keeps arithmetic far from overflow.
    let secs = n
        .checked_mul(secs_per_unit)
        .filter(|s| *s <= 100 * 365 * 86_400)
        .ok_or_else(|| bad(format!("{text:?} is longer than 100 years")))?;
    if secs == 0 {
        return Err(bad("a duration must be longer than zero".into()));
    }
    Ok(Duration::seconds(secs))
}

/// Format a duration the way [`parse_duration`] reads it, in the largest
/// unit that divides it exactly.
#[must_use]
pub fn format_duration(d: Duration) -> String {
    let secs = d.num_seconds();
    // Weeks are read but not written: "7d" is clearer than "1w".
    for (unit, size) in [("y", 365 * 86_400), ("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs != 0 && secs % size == 0 {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

/// Parse a date (`2027-01-01`, meaning 00:00 UTC that day) or an RFC 3339
/// time (`2027-01-01T12:00:00Z`).
///
/// # Errors
/// [`Error::Malformed`] with the expected forms.
pub fn parse_date_or_time(text: &str) -> Result<Timestamp, Error> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(crate::time::whole_seconds(t.to_utc()));
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    Err(Error::Malformed {
        what: "date",
        reason: format!(
            "{text:?} is neither a date like 2027-01-01 nor a time like 2027-01-01T12:00:00Z"
        ),
    })
}

/// `t` relative to `now` for people: `in 36 days`, `3 hours ago`, `now`,
/// `just now`. Rounded to the nearest unit, so a 30-day license issued a
/// second ago reads "in 30 days", not "in 29 days".
#[must_use]
pub fn relative(t: Timestamp, now: Timestamp) -> String {
    let secs = (t - now).num_seconds();
    let abs = secs.unsigned_abs();
    let amount = if abs >= 2 * 86_400 {
        format!("{} days", (abs + 43_200) / 86_400)
    } else if abs >= 2 * 3_600 {
        format!("{} hours", (abs + 1_800) / 3_600)
    } else if abs >= 120 {
        format!("{} minutes", (abs + 30) / 60)
    } else if secs >= 0 {
        return "now".into();
    } else {
        return "just now".into();
    };
    if secs >= 0 {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn relative_times_round_to_the_nearest_unit() {
        let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let at = |secs: i64| super::relative(now + Duration::seconds(secs), now);
        assert_eq!(at(30 * 86_400 - 1), "in 30 days");
        assert_eq!(at(-3 * 3_600), "3 hours ago");
        assert_eq!(at(5 * 60), "in 5 minutes");
        assert_eq!(at(30), "now");
        assert_eq!(at(-30), "just now");
    }
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d").unwrap(), Duration::days(30));
        assert_eq!(parse_duration("1y").unwrap(), Duration::days(365));
        assert_eq!(parse_duration(" 15m ").unwrap(), Duration::minutes(15));
        for bad in ["", "d", "30", "30x", "-1d", "0d", "1.5d", "999999999999y"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(Duration::days(30)), "30d");
        assert_eq!(format_duration(Duration::days(14)), "14d");
        assert_eq!(format_duration(Duration::seconds(90)), "90s");
    }

    #[test]
    fn dates() {
        assert_eq!(
            crate::time::format(&parse_date_or_time("2027-01-01").unwrap()),
            "2027-01-01T00:00:00Z"
        );
        assert_eq!(
            crate::time::format(&parse_date_or_time("2027-01-01T12:30:00+02:00").unwrap()),
            "2027-01-01T10:30:00Z"
        );
        assert!(parse_date_or_time("next week").is_err());
    }
}
