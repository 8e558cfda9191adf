//! Parsing of command-line values shared by the commands.

use tessera_protocol::LicenseId;

/// `a, b,c` → `["a", "b", "c"]` (blanks dropped).
pub fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A license id argument, checked before anything is sent.
pub fn parse_license_id(text: &str) -> Result<LicenseId, String> {
    LicenseId::parse(text).map_err(|e| e.to_string())
}
