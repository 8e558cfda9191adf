//! `tessera webhook add|list|remove|deliveries`.

use clap::{Args, Subcommand};
use tessera_protocol::wire::WebhookInput;

use crate::Connection;
use crate::args::split_list;
use crate::client::AdminClient;
use crate::output;

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Add an endpoint. Its signing secret is printed once.
    ///
    /// Deliveries are POSTed as JSON with `Tessera-Signature: t=<unix>,v1=<hex
    /// HMAC-SHA256 of "t.body">`, `Tessera-Event` and `Tessera-Delivery`
    /// (the same on every retry). Failures are retried with backoff for 24 h.
    Add(AddArgs),
    /// List endpoints.
    List {
        #[command(flatten)]
        conn: Connection,
    },
    /// Remove an endpoint; its pending deliveries stop.
    Remove(WebhookArgs),
    /// Show an endpoint's deliveries, newest first, with their last status.
    Deliveries(DeliveriesArgs),
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Where to POST deliveries (http:// or https://).
    url: String,
    /// Event kinds, comma-separated, or `*` for all: license.issued,
    /// license.extended, license.auto_renewed, license.suspended,
    /// license.reinstated, license.revoked, license.exported,
    /// license.expiring, license.expired, policy.created, webhook.created,
    /// webhook.removed.
    #[arg(long, default_value = "*")]
    events: String,
    /// Signing secret (16+ characters). Default: a random one, printed once.
    #[arg(long, env = "TESSERA_WEBHOOK_SECRET", hide_env_values = true)]
    secret: Option<String>,
    #[command(flatten)]
    conn: Connection,
}

#[derive(Debug, Args)]
pub struct WebhookArgs {
    /// Webhook id (whk_…).
    id: String,
    #[command(flatten)]
    conn: Connection,
}

#[derive(Debug, Args)]
pub struct DeliveriesArgs {
    /// Webhook id (whk_…).
    id: String,
    /// How many to show.
    #[arg(long, default_value_t = 50)]
    limit: u32,
    #[command(flatten)]
    conn: Connection,
}

pub async fn run(cmd: WebhookCommand) -> anyhow::Result<()> {
    match cmd {
        WebhookCommand::Add(a) => {
            let client = AdminClient::new(&a.conn)?;
            let input = WebhookInput {
                url: a.url,
                events: split_list(&a.events),
                secret: a.secret,
            };
            let created = client.create_webhook(&input).await?;
            if a.conn.json {
                return output::json(&created);
            }
            println!(
                "Added webhook {} → {} for {}.",
                created.id,
                created.url,
                created.events.join(", ")
            );
            if let Some(secret) = &created.secret {
                println!("Signing secret (shown only now; verify Tessera-Signature with it):");
                println!("  {secret}");
            }
            Ok(())
        }
        WebhookCommand::List { conn } => {
            let page = AdminClient::new(&conn)?.webhooks().await?;
            if conn.json {
                return output::json(&page.items);
            }
            if page.items.is_empty() {
                println!("No webhooks. Add one with `tessera webhook add URL`.");
                return Ok(());
            }
            let mut table = output::table(&["ID", "URL", "EVENTS", "CREATED"]);
            for w in &page.items {
                table.add_row(vec![
                    w.id.to_string(),
                    w.url.clone(),
                    w.events.join(","),
                    output::when(&w.created_at),
                ]);
            }
            println!("{table}");
            Ok(())
        }
        WebhookCommand::Remove(a) => {
            AdminClient::new(&a.conn)?.remove_webhook(&a.id).await?;
            println!("Removed webhook {}.", a.id);
            Ok(())
        }
        WebhookCommand::Deliveries(a) => {
            let page = AdminClient::new(&a.conn)?
                .deliveries(&a.id, a.limit)
                .await?;
            if a.conn.json {
                return output::json(&page.items);
            }
            if page.items.is_empty() {
                println!("No deliveries yet.");
                return Ok(());
            }
            let mut table = output::table(&[
                "DELIVERY", "EVENT", "KIND", "STATE", "ATTEMPTS", "LAST", "NEXT",
            ]);
            for d in &page.items {
                let last = match (d.last_status, &d.last_error) {
                    (Some(s), _) => s.to_string(),
                    (None, Some(e)) => e.clone(),
                    (None, None) => "-".into(),
                };
                table.add_row(vec![
                    d.id.to_string(),
                    d.event_seq.to_string(),
                    d.kind.clone(),
                    d.state.to_string(),
                    d.attempts.to_string(),
                    last,
                    d.next_at
                        .as_ref()
                        .map_or_else(|| "-".into(), output::relative),
                ]);
            }
            println!("{table}");
            Ok(())
        }
    }
}
