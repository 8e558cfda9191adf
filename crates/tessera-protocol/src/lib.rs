//! The Tessera wire contract: what the authority and its clients agree on.
//!
//! This crate is pure: no async runtime, no HTTP, no database, and it never
//! reads the clock — every function that needs the time takes `now`. That is
//! what lets the client's verification be tested with any clock, and what
//! `.ci/run` checks with `cargo tree`.
//!
//! Modules:
//! - [`token`]: license tokens (`tsr_…`) and admin keys (`tsa_…`) with their
//!   checksum, hash and fingerprint;
//! - [`keys`]: Ed25519 signing and public keys, key ids, PASERK text, the
//!   pinned [`TrustedKeys`];
//! - [`document`]: the signed status document — [`sign`](document::sign) and
//!   [`verify`](document::verify), the only source of a
//!   [`VerifiedDocument`];
//! - [`rollback`]: the rule that stops replayed or rolled-back documents;
//! - [`ids`]: license ids, instance ids, nonces;
//! - [`human`]: durations and dates as typed by people;
//! - [`wire`]: JSON bodies of the HTTP API;
//! - [`webhook`]: signing and verifying webhook deliveries;
//! - [`time`]: timestamp encoding;
//! - [`clock`]: the `Clock` trait and a hand-moved `ManualClock` (no real clock here).

/// `as_str` and `Display` for a newtype over `String`; with `parsed`, also
/// the `TryFrom<String>` / `Into<String>` pair its serde attributes name
/// (the type supplies `parse`).
macro_rules! text_newtype {
    ($name:ident) => {
        impl $name {
            /// The text.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
    ($name:ident, parsed) => {
        text_newtype!($name);

        impl TryFrom<String> for $name {
            type Error = crate::Error;
            fn try_from(s: String) -> Result<Self, crate::Error> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

mod error;

pub mod audit;
pub mod bundle;
pub mod clock;
pub mod document;
pub mod entitlements;
#[doc(hidden)]
pub mod fuzzing;
pub mod human;
pub mod ids;
pub mod keys;
pub mod offline;
pub mod quota;
pub mod relay;
pub mod rollback;
pub mod time;
pub mod token;
pub mod webhook;
pub mod wire;

pub use document::{
    DEFAULT_PRODUCT, Expectations, Freshness, Limits, MAX_DOCUMENT_LIFETIME, MAX_REVISION,
    MachineClaim, Status, StatusClaims, VerifiedDocument, sign, verify,
};
pub use entitlements::{Entitlement, Entitlements};
pub use error::Error;
pub use ids::{CustomerId, InstanceId, LicenseId, PolicyId, WebhookId};
pub use keys::{KeyId, PublicKey, SigningKey, TrustedKeys};
pub use quota::{Overage, Quota, QuotaPeriod};
pub use rollback::{RollbackDecision, check_document_rollback, check_rollback};
pub use time::Timestamp;
pub use token::{AdminKey, LicenseToken, TokenFingerprint, TokenHash};
