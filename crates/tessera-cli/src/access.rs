//! `tessera product create|list` and `tessera admin-key create|list|revoke`
//! (docs/PROTOCOL.md §28, §29).

use clap::{Args, Subcommand};
use tessera_protocol::wire::{
    AdminKeyInput, AdminKeyView, CreatedAdminKey, Page, ProductInput, ProductView,
};

use crate::Connection;
use crate::client::AdminClient;

#[derive(Debug, Subcommand)]
pub enum ProductCommand {
    /// Create a product: it owns its policies and licenses, and clients
    /// configured with it refuse licenses of any other.
    Create(ProductCreateArgs),
    /// List products with their number of licenses.
    List(ConnArgs),
}

#[derive(Debug, Args)]
pub struct ProductCreateArgs {
    /// Its short name, fixed for ever (1–64 of a-z 0-9 -): clients are
    /// configured with it and documents carry it.
    product: String,
    /// How people call it ("Metabase Enterprise"; default: the short name).
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    conn: Connection,
}

#[derive(Debug, Args)]
pub struct ConnArgs {
    #[command(flatten)]
    conn: Connection,
}

#[derive(Debug, Subcommand)]
pub enum AdminKeyCommand {
    /// Create an admin key; it is printed once and never again.
    ///
    /// Roles: read (list, show, fleet, events, usage); support (read, plus
    /// extend, suspend, reinstate); issuer (read, plus issue and extend);
    /// admin (everything, including keys, webhooks, policies, revoke and
    /// import).
    Create(KeyCreateArgs),
    /// List the admin keys not revoked (never the keys themselves).
    List(ConnArgs),
    /// Revoke an admin key: it stops working at once, on every replica,
    /// and its console sessions end. The last admin key cannot be revoked.
    Revoke(KeyRevokeArgs),
}

#[derive(Debug, Args)]
pub struct KeyCreateArgs {
    /// Its name, the actor the audit log names (letters, digits, - _ .).
    #[arg(long)]
    name: String,
    /// read, support, issuer or admin.
    #[arg(long, value_parser = ["read", "support", "issuer", "admin"])]
    role: String,
    /// Limit it to this product (repeat for more; default: all products).
    #[arg(long = "product", value_name = "PRODUCT")]
    products: Vec<String>,
    /// When it stops working: a date, an RFC 3339 time or a duration
    /// (90d). Default: never.
    #[arg(long, value_name = "WHEN")]
    expires: Option<String>,
    #[command(flatten)]
    conn: Connection,
}

#[derive(Debug, Args)]
pub struct KeyRevokeArgs {
    /// The key's name.
    name: String,
    #[command(flatten)]
    conn: Connection,
}

pub async fn products(cmd: ProductCommand) -> anyhow::Result<()> {
    match cmd {
        ProductCommand::Create(a) => {
            let input = ProductInput {
                name: a.product,
                display_name: a.name,
            };
            let view: ProductView = AdminClient::new(&a.conn)?
                .post("/v1/admin/products", &input)
                .await?;
            if a.conn.json {
                return crate::output::json(&view);
            }
            println!("Product {} ({}) created.", view.name, view.display_name);
            Ok(())
        }
        ProductCommand::List(a) => {
            let page: Page<ProductView> = AdminClient::new(&a.conn)?
                .get("/v1/admin/products", &())
                .await?;
            if a.conn.json {
                return crate::output::json(&page.items);
            }
            for p in page.items {
                println!(
                    "{:<24} {:>9} licenses  {}",
                    p.name, p.licenses, p.display_name
                );
            }
            Ok(())
        }
    }
}

pub async fn admin_keys(cmd: AdminKeyCommand) -> anyhow::Result<()> {
    match cmd {
        AdminKeyCommand::Create(a) => {
            let input = AdminKeyInput {
                name: a.name,
                role: a.role,
                products: (!a.products.is_empty()).then_some(a.products),
                expires: a.expires,
            };
            let created: CreatedAdminKey = AdminClient::new(&a.conn)?
                .post("/v1/admin/keys", &input)
                .await?;
            if a.conn.json {
                return crate::output::json(&created);
            }
            println!("{}", created.key);
            eprintln!(
                "Admin key {:?} ({}) created. It is shown this once: store it now.",
                created.view.name,
                describe(&created.view)
            );
            Ok(())
        }
        AdminKeyCommand::List(a) => {
            let page: Page<AdminKeyView> = AdminClient::new(&a.conn)?
                .get("/v1/admin/keys", &())
                .await?;
            if a.conn.json {
                return crate::output::json(&page.items);
            }
            for k in page.items {
                println!("{:<24} {}", k.name, describe(&k));
            }
            Ok(())
        }
        AdminKeyCommand::Revoke(a) => {
            AdminClient::new(&a.conn)?
                .delete(&format!("/v1/admin/keys/{}", a.name))
                .await?;
            eprintln!(
                "Admin key {:?} revoked: it no longer works, and its console sessions ended.",
                a.name
            );
            Ok(())
        }
    }
}

/// "issuer, products metabase-ee, expires 2027-03-01T00:00:00Z".
fn describe(k: &AdminKeyView) -> String {
    let mut text = k.role.clone();
    match &k.products {
        Some(list) => text.push_str(&format!(", products {}", list.join(", "))),
        None => text.push_str(", all products"),
    }
    if let Some(at) = k.expires_at {
        let word = if k.expired { "expired" } else { "expires" };
        text.push_str(&format!(", {word} {}", tessera_protocol::time::format(&at)));
    }
    text
}
