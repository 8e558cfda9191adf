//! `tessera agent`: the client SDK as a sidecar for products not written in
//! Rust. It holds the license and serves a small localhost HTTP API and a
//! status page:
//!
//! - `GET /v1/status`: the verdict as JSON;
//! - `POST /v1/refresh`: ask the authority now;
//! - `POST /v1/activate {"token"}`: use a token (the same one again, too);
//! - `GET /metrics`: Prometheus gauges;
//! - `GET /`: the status page, with "Refresh now" and an activate form.

mod page;
mod routes;
pub(crate) mod view;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use tessera_client::Client;

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Authority URL. Repeat (or separate with commas) for several replicas:
    /// on failure the agent moves to the next.
    #[arg(
        long = "server",
        env = "TESSERA_SERVER",
        value_delimiter = ',',
        required_unless_present = "offline_file"
    )]
    servers: Vec<String>,
    /// The authority's public key (PASERK k4.public.…). Repeat to pin
    /// several (key rotation); `k4.public.…@<time>` pins a key retired then:
    /// what it signed later is refused. Never taken from the authority's answers.
    #[arg(
        long = "public-key",
        env = "TESSERA_PUBLIC_KEY",
        value_delimiter = ',',
        required = true
    )]
    public_keys: Vec<String>,
    /// File holding the license token. Optional: a token can also be
    /// activated through the API or the status page.
    #[arg(long, env = "TESSERA_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// Where the agent keeps its state (token, document, clock mark).
    #[arg(long, env = "TESSERA_STATE_DIR", default_value = "tessera-agent")]
    state_dir: PathBuf,
    /// Address of the local API and status page. Loopback unless you say
    /// otherwise: the API can change the license in use.
    #[arg(long, env = "TESSERA_AGENT_LISTEN", default_value = "127.0.0.1:7401")]
    listen: SocketAddr,
    /// Air-gapped mode: a file made by `tessera license export`, or the
    /// response to this machine's offline request (`tessera license
    /// offline-activate`) — or a directory of them, whose newest file is
    /// used. Watched: a newer file put in its place (or in the directory)
    /// is taken within a second, with no restart.
    #[arg(long, env = "TESSERA_OFFLINE_FILE")]
    offline_file: Option<PathBuf>,
    /// The product's version, shown in the authority's fleet view.
    #[arg(long, env = "TESSERA_APP_VERSION")]
    app_version: Option<String>,
    /// When this version of the product was released (`2026-11-01` or an
    /// RFC 3339 time): under a policy that keeps the versions released
    /// before expiry, an expired license stays valid for this version.
    #[arg(long, env = "TESSERA_APP_RELEASED_AT", value_parser = parse_released_at)]
    app_released_at: Option<tessera_protocol::Timestamp>,
    /// This machine's fingerprint, for licenses that count machines (1–256
    /// printable ASCII characters). Default: derived from the host's
    /// machine id and the token. In a container set your own — a value kept
    /// on a persistent volume, or the StatefulSet ordinal, never the pod UID.
    #[arg(long, env = "TESSERA_FINGERPRINT")]
    fingerprint: Option<String>,
    /// The product this agent serves: a license of another product is
    /// refused (wrong_product). Default: any product.
    #[arg(long, env = "TESSERA_PRODUCT")]
    product: Option<String>,
    /// This machine's components, for licenses that match machines by a
    /// threshold of components (repeat: `--component cpu:… --component
    /// disk:…`, or comma-separated in `TESSERA_COMPONENTS`). Default: the
    /// host's (host name, MAC address, CPU model, root disk). Sent hashed.
    #[arg(long = "component", env = "TESSERA_COMPONENTS", value_delimiter = ',')]
    components: Vec<String>,
    /// How often the user count posted to the agent's `/v1/usage` is
    /// reported to the authority (metering).
    #[arg(long, env = "TESSERA_USAGE_INTERVAL", default_value = "15m", value_parser = crate::parse_interval)]
    usage_interval: std::time::Duration,
    /// How often what the product consumed through `/v1/consume` (metered
    /// features) is reported to the authority.
    #[arg(long, env = "TESSERA_CONSUMPTION_INTERVAL", default_value = "10s", value_parser = crate::parse_interval)]
    consumption_interval: std::time::Duration,
    /// With no token (none given, none kept in the state directory), start
    /// this machine's trial of this trial policy by itself (the authority's
    /// `POST /v1/trials`; a reinstall gets the same trial back).
    #[arg(long, env = "TESSERA_TRIAL_POLICY")]
    trial_policy: Option<String>,
}

pub(crate) fn read_token(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read token file {}", path.display()))?;
    let token = text.trim().to_owned();
    if token.is_empty() {
        bail!("token file {} is empty", path.display());
    }
    Ok(token)
}

pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let shutdown = crate::server::shutdown_signal()?;
    let mut builder = Client::builder()
        .servers(
            args.servers
                .iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty()),
        )
        .state_dir(&args.state_dir)
        .usage_interval(args.usage_interval)
        .consumption_interval(args.consumption_interval);
    if let Some(policy) = &args.trial_policy {
        builder = builder.trial(policy);
    }
    for key in &args.public_keys {
        builder = builder
            .pin(key)
            .with_context(|| format!("--public-key {key:?}"))?;
    }
    if let Some(path) = &args.token_file {
        builder = builder.token(read_token(path)?);
    }
    // A directory of offline files is read by the watcher (its newest
    // file); a single file is taken at start, refused if it does not verify.
    if let Some(path) = args.offline_file.as_ref().filter(|p| !p.is_dir()) {
        builder = builder.offline_file(path);
    }
    if let Some(released_at) = args.app_released_at {
        builder = builder.app_released_at(released_at);
    }
    if let Some(version) = &args.app_version {
        builder = builder.app_version(version);
    }
    if !args.components.is_empty() {
        builder = builder.components(&args.components);
    }
    if let Some(product) = &args.product {
        builder = builder.product(product);
    }
    if let Some(fingerprint) = &args.fingerprint {
        builder = builder.fingerprint(fingerprint);
    }
    let client = builder.start().context("cannot start the license client")?;
    if let Some(path) = args.offline_file.clone() {
        let first = path.is_dir();
        tokio::spawn(watch_offline_file(client.clone(), path, first));
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "the agent API is reachable from other hosts; anyone who can reach it can change the license in use");
    }
    println!("Tessera agent {}", env!("CARGO_PKG_VERSION"));
    println!("  state directory: {}", args.state_dir.display());
    println!("  instance id:     {}", client.instance_id());
    println!(
        "  verdict:         {}",
        view::StatusView::of(&client).summary()
    );
    println!("listening on http://{addr}");
    let app = routes::router(client.clone(), addr);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("agent HTTP server failed")?;
    // A floating place is given back on a clean stop, not left to its lease.
    if client
        .machine()
        .is_some_and(|m| m.mode == tessera_protocol::wire::MachineMode::Floating && m.id.is_some())
    {
        match client.deactivate().await {
            Ok(_) => tracing::info!("floating place given back"),
            Err(e) => {
                tracing::warn!(error = %e, "could not give the floating place back; its lease will end it")
            }
        }
    }
    // What the product consumed since the last report is sent now, not lost
    // with the process (bounded: a stop never hangs on the authority).
    match tokio::time::timeout(
        std::time::Duration::from_secs(5),
        client.flush_consumption(),
    )
    .await
    {
        Ok(Ok(())) | Ok(Err(tessera_client::Error::NoServer)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "could not report the last consumption"),
        Err(_) => tracing::warn!("the last consumption report did not finish in 5 s"),
    }
    client.shutdown();
    tracing::info!("agent stopped");
    Ok(())
}

/// The file to look at: `path` itself, or a directory's newest regular
/// file (by modification time), with what identifies its current content.
fn offline_candidate(path: &Path) -> Option<(PathBuf, Option<std::time::SystemTime>, u64)> {
    let seen = |p: PathBuf| {
        let m = std::fs::metadata(&p)
            .ok()
            .filter(std::fs::Metadata::is_file)?;
        Some((p, m.modified().ok(), m.len()))
    };
    if !path.is_dir() {
        return seen(path.to_path_buf());
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(|e| e.ok())
        // Files being written by a copy (`*.tmp`, dot files) are not yet offline files.
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            !name.starts_with('.') && !name.ends_with(".tmp")
        })
        .filter_map(|e| seen(e.path()))
        .max_by_key(|(_, modified, _)| *modified)
}

/// Renewal by file (docs/PROTOCOL.md §25): the offline file (or the
/// directory's newest) is looked at four times a second; when it changed
/// (replaced, rewritten, a newer file dropped in), it is imported —
/// verified, bound to this machine, and taken only if newer. `first`: also
/// import what is there now (a directory is not read at start).
async fn watch_offline_file(client: Client, path: PathBuf, first: bool) {
    let mut last = if first {
        None
    } else {
        offline_candidate(&path)
    };
    let mut every = tokio::time::interval(std::time::Duration::from_millis(250));
    loop {
        every.tick().await;
        let now = offline_candidate(&path);
        if now.is_none() || now == last {
            continue;
        }
        last.clone_from(&now);
        let Some((file, _, _)) = now else {
            continue;
        };
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        match client.import_offline(&bytes).await {
            Ok(v) => tracing::info!(
                file = %file.display(),
                revision = v.license.as_ref().map_or(0, |l| l.revision),
                "offline file taken"
            ),
            Err(e) => tracing::warn!(file = %file.display(), error = %e, "offline file refused"),
        }
    }
}

fn parse_released_at(text: &str) -> Result<tessera_protocol::Timestamp, String> {
    tessera_protocol::human::parse_date_or_time(text).map_err(|e| e.to_string())
}
