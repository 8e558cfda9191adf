//! The wire contract: every JSON shape of the authority's HTTP API, shared
//! by the server, the clients and the CLI so they cannot drift apart
//! (docs/PROTOCOL.md). Nothing that is serialised onto the wire is defined
//! anywhere else.
//!
//! - [`public`]: what licensed products send and receive;
//! - [`admin`]: the admin API's bodies;
//! - [`fleet`]: the fleet view;
//! - [`webhooks`]: webhook endpoints, deliveries and payloads;
//! - [`machines`]: machine settings, activation and the admin view;
//! - [`sites`]: sites, their relays and their bundles;
//! - [`enums`]: the wire's enums, each with one spelling.

pub mod admin;
pub mod enums;
pub mod fleet;
pub mod import;
pub mod machines;
pub mod public;
pub mod sites;
pub mod webhooks;

pub use admin::*;
pub use enums::*;
pub use fleet::*;
pub use import::*;
pub use machines::*;
pub use public::*;
pub use sites::*;
pub use webhooks::*;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde::de::IntoDeserializer;

/// The serde name of a unit variant (`from_now`, `license.revoked`).
fn serde_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        // Only unit variants use this; they serialise as strings.
        _ => String::new(),
    }
}

/// The variant named `text` (exactly its serde name), or
/// [`crate::Error::Malformed`] listing nothing but what was wrong.
fn from_serde_name<T: DeserializeOwned>(text: &str, what: &'static str) -> Result<T, crate::Error> {
    let de = IntoDeserializer::<serde::de::value::Error>::into_deserializer(text);
    T::deserialize(de).map_err(|e| crate::Error::Malformed {
        what,
        reason: e.to_string(),
    })
}
