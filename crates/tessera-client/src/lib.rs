//! The Tessera client SDK (work in progress: the verdict cache, refresh loop
//! and disk state arrive with the client issue). For now it re-exports the
//! protocol types a product needs to verify documents itself.

pub use tessera_protocol::{
    Expectations, LicenseToken, PublicKey, TrustedKeys, VerifiedDocument, verify,
};
