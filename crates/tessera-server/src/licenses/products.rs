//! Products (§28): creating and listing them, and which product a new
//! license or policy belongs to.

use tessera_protocol::wire::{EventKind, ProductInput, ProductView};

use super::Changes;
use crate::access::Principal;
use crate::error::{Error, Result};
use crate::model::{NewEvent, Policy, Product};

impl Changes {
    /// Create a product.
    ///
    /// # Errors
    /// 422 for a bad name, 409 when it exists.
    pub async fn create_product(&self, input: ProductInput, actor: &str) -> Result<ProductView> {
        let name = input.name.trim().to_owned();
        Product::check_name(&name)?;
        let display_name = input
            .display_name
            .map(|d| d.trim().to_owned())
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| name.clone());
        super::fields::check_text("display_name", &display_name)?;
        let product = Product {
            name,
            display_name,
            created_at: self.now(),
        };
        let view = ProductView {
            name: product.name.clone(),
            display_name: product.display_name.clone(),
            licenses: 0,
            created_at: product.created_at,
        };
        let event = NewEvent {
            at: product.created_at,
            actor: actor.to_owned(),
            kind: EventKind::ProductCreated,
            before: None,
            after: serde_json::to_value(&view).ok(),
        };
        self.shared.store.create_product(&product, event).await?;
        tracing::info!(product = %product.name, actor, "product created");
        Ok(view)
    }

    /// Every product with its license count.
    ///
    /// # Errors
    /// The store's.
    pub async fn products(&self) -> Result<Vec<ProductView>> {
        Ok(self
            .shared
            .store
            .products()
            .await?
            .into_iter()
            .map(|(p, licenses)| ProductView {
                name: p.name,
                display_name: p.display_name,
                licenses,
                created_at: p.created_at,
            })
            .collect())
    }

    /// The product a new license belongs to: its policy's, or (for the
    /// built-in default policy) the one asked for, else `default`; it must
    /// exist and `actor` may use it.
    ///
    /// # Errors
    /// 422 when the request names another product than its policy's; 404
    /// for an unknown product; 403 for a product outside the key's.
    pub(crate) async fn product_for(
        &self,
        asked: Option<&str>,
        policy: &Policy,
        actor: &Principal,
    ) -> Result<String> {
        let product = product_of(policy, asked)?;
        self.require_product(&product).await?;
        actor.may_use_product(&product)?;
        Ok(product)
    }

    /// 404 unless product `name` exists.
    ///
    /// # Errors
    /// 404, or the store's.
    pub(crate) async fn require_product(&self, name: &str) -> Result<()> {
        if self.shared.store.product_exists(name).await? {
            Ok(())
        } else {
            Err(Error::not_found("product", name))
        }
    }
}

/// The product a license of `policy` belongs to: the policy's own, or, for
/// the built-in default policy (which serves every product), the one
/// `asked` for, else `default`.
///
/// # Errors
/// 422 `wrong_product` when `asked` names another product than the
/// policy's.
pub(crate) fn product_of(policy: &Policy, asked: Option<&str>) -> Result<String> {
    let asked = asked.map(str::trim).filter(|p| !p.is_empty());
    match (&policy.product, asked) {
        (Some(own), Some(asked)) if own != asked => Err(Error::unprocessable(
            "wrong_product",
            format!(
                "policy {:?} belongs to product {own:?}, not {asked:?}",
                policy.name
            ),
        )),
        (Some(own), _) => Ok(own.clone()),
        (None, asked) => Ok(asked
            .unwrap_or(tessera_protocol::DEFAULT_PRODUCT)
            .to_owned()),
    }
}
