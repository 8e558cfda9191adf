//! Products.

use super::Store;
use super::rows::{product_name, ts};
use crate::error::{Error, Result};
use crate::model::{NewEvent, Product};

impl Store {
    /// Create a product with its audit event.
    pub async fn create_product(&self, p: &Product, event: NewEvent) -> Result<()> {
        let mut tx = self.writer().begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO products (id, name, display_name, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(Product::id_of(&p.name))
        .bind(&p.name)
        .bind(&p.display_name)
        .bind(p.created_at.timestamp())
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(Error::conflict(
                "product_exists",
                format!("a product named {:?} already exists", p.name),
            ));
        }
        self.insert_event(&mut tx, None, None, &event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every product with its number of licenses, by name.
    pub async fn products(&self) -> Result<Vec<(Product, u64)>> {
        let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT p.id, p.display_name, p.created_at, \
             (SELECT COUNT(*) FROM licenses l WHERE l.product_id = p.id) \
             FROM products p ORDER BY p.name",
        )
        .fetch_all(self.reader())
        .await?;
        rows.into_iter()
            .map(|(id, display_name, created_at, licenses)| {
                Ok((
                    Product {
                        name: product_name(&id)?,
                        display_name,
                        created_at: ts(created_at)?,
                    },
                    u64::try_from(licenses).unwrap_or(0),
                ))
            })
            .collect()
    }

    /// Whether product `name` exists.
    pub async fn product_exists(&self, name: &str) -> Result<bool> {
        let row: Option<(i64,)> = sqlx::query_as("SELECT 1 FROM products WHERE id = $1")
            .bind(Product::id_of(name))
            .fetch_optional(self.reader())
            .await?;
        Ok(row.is_some())
    }
}
