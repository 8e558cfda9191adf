//! Output for people: times with "in 3 days", compact tables.

use chrono::Utc;
use comfy_table::{Table, presets};
use tessera_protocol::Timestamp;

/// `2027-01-01 00:00 UTC (in 36 days)`.
pub fn when(t: &Timestamp) -> String {
    format!("{} ({})", t.format("%Y-%m-%d %H:%M UTC"), relative(t))
}

/// `in 36 days`, `3 hours ago`.
pub fn relative(t: &Timestamp) -> String {
    let delta = *t - Utc::now();
    let secs = delta.num_seconds();
    let abs = secs.unsigned_abs();
    // Rounded to the nearest unit: a 30-day license issued a second ago is
    // "in 30 days", not "in 29 days".
    let amount = if abs >= 2 * 86_400 {
        format!("{} days", (abs + 43_200) / 86_400)
    } else if abs >= 2 * 3_600 {
        format!("{} hours", (abs + 1_800) / 3_600)
    } else if abs >= 120 {
        format!("{} minutes", (abs + 30) / 60)
    } else {
        return if secs >= 0 {
            "now".into()
        } else {
            "just now".into()
        };
    };
    if secs >= 0 {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

/// Expiry for a table or a line: a time, or "never".
pub fn expiry(t: Option<&Timestamp>) -> String {
    t.map_or_else(|| "never (perpetual)".into(), when)
}

/// A table with a header and no borders.
pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_header(header.to_vec());
    table
}

/// Print a value as pretty JSON.
pub fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
