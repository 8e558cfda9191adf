//! `tessera events` (the audit log) and `tessera keys` (the public keys;
//! `keys rotate` is local and lives with the server command).

use clap::{Args, Subcommand};
use tessera_protocol::LicenseId;

use crate::Connection;
use crate::args::parse_license_id;
use crate::client::AdminClient;
use crate::output;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct EventsArgs {
    #[command(subcommand)]
    action: Option<EventsAction>,
    /// Only this license's events.
    #[arg(long, value_parser = parse_license_id)]
    license: Option<LicenseId>,
    /// How many of the newest events.
    #[arg(long, default_value_t = 50)]
    limit: u32,
    #[command(flatten)]
    conn: Connection,
}

#[derive(Debug, Subcommand)]
pub enum EventsAction {
    /// Check the audit log's hash chain from its first event: each event
    /// names the one before it and matches its own hash. Names the first
    /// broken link (exit status 1).
    Verify(ChainArgs),
    /// Write the audit log as JSON lines or CSV, oldest first, page by page
    /// (any number of events in constant memory), checking the chain.
    Export(ExportArgs),
}

#[derive(Debug, Args)]
pub struct ChainArgs {
    #[command(flatten)]
    conn: Connection,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Only events at or after this time (RFC 3339 or YYYY-MM-DD).
    #[arg(long, value_parser = crate::args::parse_date)]
    since: Option<tessera_protocol::Timestamp>,
    /// Only events before this time.
    #[arg(long, value_parser = crate::args::parse_date)]
    until: Option<tessera_protocol::Timestamp>,
    /// `jsonl` (one event a line) or `csv`.
    #[arg(long, default_value = "jsonl", value_parser = ["jsonl", "csv"])]
    format: String,
    #[command(flatten)]
    conn: Connection,
}

pub async fn events(a: EventsArgs) -> anyhow::Result<()> {
    match a.action {
        Some(EventsAction::Verify(c)) => return crate::audit::verify(&c.conn).await,
        Some(EventsAction::Export(e)) => {
            return crate::audit::export(&e.conn, e.since, e.until, &e.format).await;
        }
        None => {}
    }
    let page = AdminClient::new(&a.conn)?
        .events(a.license.as_ref(), a.limit)
        .await?;
    // Newest first from the API; oldest first reads better in a terminal.
    let mut items = page.items;
    items.reverse();
    if a.conn.json {
        return output::json(&items);
    }
    if items.is_empty() {
        println!("No events.");
        return Ok(());
    }
    let mut table = output::table(&["SEQ", "TIME", "ACTOR", "EVENT", "LICENSE", "REV"]);
    for e in &items {
        table.add_row(vec![
            e.seq.to_string(),
            e.at.format("%Y-%m-%d %H:%M:%S").to_string(),
            e.actor.clone(),
            e.kind.clone(),
            e.license.clone().unwrap_or_default(),
            e.revision.map(|r| r.to_string()).unwrap_or_default(),
        ]);
    }
    println!("{table}");
    Ok(())
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    action: Option<KeysAction>,
    /// Print what Keygen's SDKs are configured with to use this authority's
    /// Keygen-compatible API (docs/KEYGEN.md): the account id, the active
    /// key as the hex Ed25519 public key they verify response signatures
    /// with, and the API URL.
    #[arg(long)]
    keygen: bool,
    #[command(flatten)]
    conn: Connection,
}

#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Make a new signing key active; the old one is retired now.
    ///
    /// Run it with the authority stopped (every replica, when they share a
    /// key file), then start it again: new documents are signed with the new
    /// key, and `/v1/keys` lists the old one as retired with its time.
    /// Clients should pin the new key and keep the old one as
    /// `k4.public.…@<retired time>`: what the old key signed before its
    /// retirement still verifies, anything it signs later is refused.
    Rotate(crate::server::RotateArgs),
}

pub async fn keys(a: KeysArgs) -> anyhow::Result<()> {
    if let Some(KeysAction::Rotate(r)) = a.action {
        return crate::server::rotate(&r);
    }
    let keys = AdminClient::with_key(&a.conn.server, None)?.keys().await?;
    if a.keygen {
        return keygen_settings(&a.conn, &keys);
    }
    if a.conn.json {
        return output::json(&keys);
    }
    for k in &keys.keys {
        match &k.retired_at {
            Some(at) => println!(
                "{}  retired {}  {}@{}",
                k.kid,
                output::when(at),
                k.public_key,
                tessera_protocol::time::format(at)
            ),
            None => println!("{}  active  {}", k.kid, k.public_key),
        }
    }
    Ok(())
}

/// `tessera keys --keygen`: the Keygen SDK settings for the active key.
fn keygen_settings(
    conn: &Connection,
    keys: &tessera_protocol::wire::KeysResponse,
) -> anyhow::Result<()> {
    let active = keys
        .keys
        .iter()
        .find(|k| k.retired_at.is_none())
        .ok_or_else(|| anyhow::anyhow!("the authority lists no active key"))?;
    let key = tessera_protocol::PublicKey::from_paserk(&active.public_key)?;
    let hex: String = key.raw_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let account = tessera_server::keygen::account_id(&key);
    let url = conn.server.trim_end_matches('/');
    if conn.json {
        return output::json(&serde_json::json!({
            "account": account,
            "public_key": hex,
            "api_url": url,
            "kid": active.kid,
        }));
    }
    println!("Keygen SDK settings for this authority (docs/KEYGEN.md):");
    println!("  account:     {account}");
    println!("  public key:  {hex}");
    println!("  API URL:     {url}   (paths /v1/… or /v1/accounts/{account}/…)");
    println!(
        "Answers are signed with key {} (Keygen-Signature, ed25519).",
        active.kid
    );
    Ok(())
}
