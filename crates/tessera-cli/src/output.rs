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
    tessera_protocol::human::relative(*t, Utc::now())
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
