//! `tessera relay`: the site relay (docs/PROTOCOL.md §26) — run it, make
//! its key, certify relays below it, export its audit log.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};
use tessera_protocol::TrustedKeys;
use tessera_relay::{Relay, RelayConfig};
use tokio_util::sync::CancellationToken;

/// `tessera relay [serve options] | init | child | audit`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RelayArgs {
    #[command(subcommand)]
    command: Option<RelayCommand>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum RelayCommand {
    /// Create the relay's key (once) and print its public half, for the
    /// vendor's `tessera site create --relay-key`.
    Init(DirArgs),
    /// Certify a relay below this one (a building below a site) with a
    /// share of this relay's licenses; writes its first bundle.
    Child(ChildArgs),
    /// Export the audit log (activations, leases, releases, bundles) as
    /// JSON lines, checking its hash chain.
    Audit(AuditArgs),
}

#[derive(Debug, Args)]
struct DirArgs {
    /// The relay's state directory.
    #[arg(long, env = "TESSERA_RELAY_DIR", default_value = "tessera-relay")]
    data_dir: PathBuf,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// The relay's state directory (its key, SQLite state and audit log).
    #[arg(long, env = "TESSERA_RELAY_DIR", default_value = "tessera-relay")]
    data_dir: PathBuf,
    /// Address to serve the site on.
    #[arg(long, env = "TESSERA_RELAY_LISTEN", default_value = "0.0.0.0:7500")]
    listen: String,
    /// The authority's public key (PASERK k4.public.…): bundles must chain
    /// to it. Repeat or separate with commas for several.
    #[arg(long = "public-key", env = "TESSERA_PUBLIC_KEY", value_delimiter = ',')]
    public_keys: Vec<String>,
    /// A bundle file (from `tessera site create|bundle`, or a relay above's
    /// `tessera relay child`), watched: drop a newer one in and it is taken.
    #[arg(long, env = "TESSERA_RELAY_BUNDLE")]
    bundle: Option<PathBuf>,
    /// The authority (or the relay above) to fetch newer bundles from and
    /// report usage to, whenever a route to it exists.
    #[arg(long, env = "TESSERA_RELAY_UPSTREAM")]
    upstream: Option<String>,
    /// How often to synchronise with the upstream.
    #[arg(long, default_value = "1h", value_parser = crate::parse_interval)]
    sync_interval: std::time::Duration,
}

#[derive(Debug, Args)]
struct ChildArgs {
    #[command(flatten)]
    dir: DirArgs,
    /// The authority's public key (to read this relay's bundle).
    #[arg(
        long = "public-key",
        env = "TESSERA_PUBLIC_KEY",
        value_delimiter = ',',
        required = true
    )]
    public_keys: Vec<String>,
    /// The child's site name (e.g. `plant-7/hall-b`).
    site: String,
    /// The child relay's public key (its `tessera relay init`).
    #[arg(long)]
    relay_key: String,
    /// A license and the child's share of its machines: `lic_…:5`. Repeat.
    #[arg(long = "license", required = true)]
    licenses: Vec<String>,
    /// How long each of its bundles lasts (never past this relay's own).
    #[arg(long, default_value = "7d")]
    valid_for: String,
    /// Write its bundle here (default: standard output).
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct AuditArgs {
    #[command(flatten)]
    dir: DirArgs,
    /// Only events after this sequence number.
    #[arg(long, default_value_t = 0)]
    after: i64,
}

fn pinned(keys: &[String]) -> anyhow::Result<TrustedKeys> {
    anyhow::ensure!(
        !keys.is_empty(),
        "--public-key is required: the authority's key (tessera keys prints it)"
    );
    let mut trusted = TrustedKeys::new();
    for key in keys {
        trusted
            .pin(key)
            .with_context(|| format!("--public-key {key:?}"))?;
    }
    Ok(trusted)
}

pub async fn run(args: RelayArgs) -> anyhow::Result<()> {
    match args.command {
        None => serve(args.serve).await,
        Some(RelayCommand::Init(a)) => {
            std::fs::create_dir_all(&a.data_dir)
                .with_context(|| format!("cannot create {}", a.data_dir.display()))?;
            let (key, created) =
                tessera_relay::keyfile::load_or_create(&tessera_relay::key_path(&a.data_dir))?;
            if created {
                eprintln!("Created the relay key in {}.", a.data_dir.display());
            }
            eprintln!("Give this public key to the vendor (tessera site create … --relay-key):");
            println!("{}", key.public_key().to_paserk());
            Ok(())
        }
        Some(RelayCommand::Child(a)) => {
            let mut config = RelayConfig::new(a.dir.data_dir, pinned(&a.public_keys)?);
            config.bundle_file = None;
            let relay = Relay::open(config).await?;
            let shares = a
                .licenses
                .iter()
                .map(|l| crate::site::parse_share(l))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let valid_for = tessera_protocol::human::parse_duration(&a.valid_for)
                .map_err(|e| anyhow::anyhow!("--valid-for: {e}"))?;
            let file = relay
                .add_child(&a.site, &a.relay_key, shares, valid_for)
                .await?;
            relay.store().close().await;
            crate::site::write_bundle(&file, a.output.as_ref())
        }
        Some(RelayCommand::Audit(a)) => audit(a).await,
    }
}

async fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let mut config = RelayConfig::new(a.data_dir.clone(), pinned(&a.public_keys)?);
    config.bundle_file = a.bundle;
    config.upstream = a.upstream;
    config.sync_interval = a.sync_interval;
    let relay = Relay::open(config).await?;
    let listener = tokio::net::TcpListener::bind(&a.listen)
        .await
        .with_context(|| format!("cannot listen on {}", a.listen))?;
    let addr = listener.local_addr()?;
    match relay.held() {
        Some(h) => tracing::info!(
            site = %h.bundle.site,
            valid_until = %tessera_protocol::time::format(&h.bundle.exp),
            "relay holds a bundle"
        ),
        None => tracing::warn!(
            "no bundle yet: give one with --bundle FILE (tessera site create writes it); until then every answer is 503 no_bundle"
        ),
    }
    // Tests and scripts read this line for the port.
    println!("listening on http://{addr}");
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        signal.cancel();
    });
    #[cfg(unix)]
    {
        let signal = shutdown.clone();
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::spawn(async move {
                term.recv().await;
                signal.cancel();
            });
        }
    }
    Arc::clone(&relay).serve(listener, shutdown).await?;
    Ok(())
}

async fn audit(a: AuditArgs) -> anyhow::Result<()> {
    let db = a.dir.data_dir.join("relay.db");
    anyhow::ensure!(
        db.exists(),
        "no relay state in {}",
        a.dir.data_dir.display()
    );
    let store = tessera_relay::store::Store::open(&db).await?;
    let mut after = a.after;
    let mut prev: Option<String> = None;
    let mut count = 0u64;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    loop {
        let page = store.audit_page(after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in &page {
            let expected = tessera_relay::store::event_hash(
                &e.prev,
                e.at,
                &e.kind,
                &e.license,
                e.machine.as_deref(),
                e.detail.as_deref(),
            );
            if expected != e.hash || prev.as_ref().is_some_and(|p| p != &e.prev) {
                anyhow::bail!(
                    "the audit log is broken at event {}: it was changed after it was written",
                    e.seq
                );
            }
            prev = Some(e.hash.clone());
            std::io::Write::write_all(&mut out, (serde_json::to_string(e)? + "\n").as_bytes())?;
            count += 1;
        }
    }
    std::io::Write::flush(&mut out)?;
    drop(out);
    store.close().await;
    eprintln!("{count} events, hash chain intact.");
    Ok(())
}
