//! Timestamps on the wire: RFC 3339, whole seconds, UTC (`2027-01-01T00:00:00Z`),
//! as PASETO's registered claims are.

use chrono::{DateTime, SecondsFormat, Utc};

/// A point in time, UTC. The protocol never reads the clock: callers pass `now`.
pub type Timestamp = DateTime<Utc>;

/// The earliest time a document may carry: the Unix epoch.
pub const MIN_SUPPORTED_SECS: i64 = 0;
/// The latest time a document may carry: 9999-12-31T23:59:59Z. Every
/// client parses four-digit years; `+10000-…` is where parsers part ways.
pub const MAX_SUPPORTED_SECS: i64 = 253_402_300_799;

/// Whether `t` is within the range every client can parse and do
/// arithmetic on (1970-01-01 … 9999-12-31, whole seconds).
#[must_use]
pub fn is_supported(t: &Timestamp) -> bool {
    (MIN_SUPPORTED_SECS..=MAX_SUPPORTED_SECS).contains(&t.timestamp())
}

/// Format as RFC 3339 with whole seconds and `Z`.
#[must_use]
pub fn format(t: &Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Drop sub-second precision, so that what is signed equals what is parsed back.
#[must_use]
pub fn whole_seconds(t: Timestamp) -> Timestamp {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

/// Serde for a required timestamp.
pub mod rfc3339 {
    use super::{Timestamp, format};
    use chrono::DateTime;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialize as RFC 3339.
    ///
    /// # Errors
    /// Those of the serializer.
    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(t))
    }

    /// Parse RFC 3339.
    ///
    /// # Errors
    /// When the text is not RFC 3339.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.to_utc())
            .map_err(serde::de::Error::custom)
    }
}

/// Serde for an optional timestamp (`null` when absent).
pub mod rfc3339_opt {
    use super::{Timestamp, format};
    use chrono::DateTime;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialize as RFC 3339 or `null`.
    ///
    /// # Errors
    /// Those of the serializer.
    pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&format(t)),
            None => s.serialize_none(),
        }
    }

    /// Parse RFC 3339 or `null`.
    ///
    /// # Errors
    /// When the text is not RFC 3339.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        let text = <Option<std::borrow::Cow<'de, str>>>::deserialize(d)?;
        text.map(|text| {
            DateTime::parse_from_rfc3339(&text)
                .map(|t| t.to_utc())
                .map_err(serde::de::Error::custom)
        })
        .transpose()
    }
}
