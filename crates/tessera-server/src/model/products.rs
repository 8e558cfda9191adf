//! Products (§28): a product owns its policies and licenses; documents
//! carry its name, and a client configured for another product refuses
//! them.

use tessera_protocol::Timestamp;

use crate::error::{Error, Result};

/// A product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    /// Its name: short, lower case, fixed for ever (documents carry it and
    /// clients are configured with it).
    pub name: String,
    /// How people call it ("Metabase Enterprise").
    pub display_name: String,
    /// Created.
    pub created_at: Timestamp,
}

impl Product {
    /// Every product id is this prefix and the name.
    pub const ID_PREFIX: &'static str = "prd_";

    /// The stored id of product `name`.
    #[must_use]
    pub fn id_of(name: &str) -> String {
        format!("{}{name}", Self::ID_PREFIX)
    }

    /// A product name must be 1–64 of `a-z 0-9 -`, starting with a letter
    /// or digit: it goes into documents, URLs, metric labels and client
    /// configuration, and a comma-separated list of them into a LIKE
    /// pattern (so no `_` or `%`).
    ///
    /// # Errors
    /// [`Error::Unprocessable`] saying what is wrong.
    pub fn check_name(name: &str) -> Result<()> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-');
        if ok {
            Ok(())
        } else {
            Err(Error::unprocessable(
                "invalid_product",
                format!(
                    "a product name is 1–64 lower-case letters, digits and '-', \
                     not starting with '-' (got {:?})",
                    name.chars().take(70).collect::<String>()
                ),
            ))
        }
    }
}
