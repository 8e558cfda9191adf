//! What a license listing asks for: filters and the page.

use chrono::Duration;
use tessera_protocol::Timestamp;
use tessera_protocol::wire::LicenseState;

/// Expiries from `from` (usually now; `None`: also those already past) to
/// `until`, both included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiryWindow {
    /// Earliest expiry listed.
    pub from: Option<Timestamp>,
    /// Latest expiry listed.
    pub until: Timestamp,
}

impl ExpiryWindow {
    /// Expiries from `now` to `span` later.
    #[must_use]
    pub fn within(now: Timestamp, span: Duration) -> Self {
        let until = now + span;
        Self {
            from: Some(now),
            until,
        }
    }
}

/// Which licenses to list (every filter optional), and which page: the
/// admin API pages by id cursor, oldest first; the console by offset,
/// newest first.
#[derive(Debug, Clone, Default)]
pub struct LicenseQuery {
    /// Matches customer, plan or id (substring, any case) or the token's last four.
    pub text: Option<String>,
    /// Customer name, exactly.
    pub customer: Option<String>,
    /// Stored state.
    pub state: Option<LicenseState>,
    /// Only licenses whose expiry falls in this window.
    pub expiring: Option<ExpiryWindow>,
    /// Only these products: names separated by commas (`None`: all).
    pub products: Option<String>,
    /// Which page.
    pub page: LicensePage,
    /// Page size.
    pub limit: u32,
}

/// A page of a license listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LicensePage {
    /// Oldest first, after this id (the admin API's cursor).
    After(Option<String>),
    /// Newest first, skipping this many (the console's pages).
    Offset(u32),
}

impl Default for LicensePage {
    fn default() -> Self {
        Self::After(None)
    }
}
