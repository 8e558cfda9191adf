//! `tessera server`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use tessera_server::{Server, ServerConfig};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address to listen on. Port 0 picks a free port (printed at start).
    #[arg(long, env = "TESSERA_LISTEN", default_value = "127.0.0.1:7400")]
    listen: SocketAddr,
    /// Data directory: database, signing key, admin key. Created if missing.
    #[arg(long, env = "TESSERA_DATA_DIR", default_value = "tessera-data")]
    data_dir: PathBuf,
    /// PostgreSQL URL (postgres://user@host/db) for running several replicas
    /// on one database. Default: SQLite in the data directory. Keys stay in
    /// the data directory (or --signing-key-file) either way.
    #[arg(long, env = "TESSERA_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Signing key file (PASERK k4.secret). Default: <data dir>/signing.key,
    /// created on first start. A file given here must already exist.
    #[arg(long, env = "TESSERA_SIGNING_KEY_FILE")]
    signing_key_file: Option<PathBuf>,
    /// Validations allowed per minute per client IP (bursts up to the same
    /// number); over it, 429 with Retry-After. 0 turns limiting off.
    #[arg(long, env = "TESSERA_RATE_LIMIT", default_value_t = ServerConfig::DEFAULT_RATE_LIMIT)]
    rate_limit: u32,
    /// Expiry horizons, comma-separated: each raises one `license.expiring`
    /// event (webhooks, audit log) per license and period; `license.expired`
    /// fires at the date itself.
    #[arg(long, env = "TESSERA_HORIZONS", default_value = "30d,7d,1d", value_parser = parse_horizons)]
    horizons: Horizons,
    /// How often the scheduler checks horizons and automatic renewals.
    #[arg(long, env = "TESSERA_SCHEDULER_INTERVAL", default_value = "1m", value_parser = crate::parse_interval)]
    scheduler_interval: std::time::Duration,
    /// Key file sealing webhook secrets in the database. Default:
    /// <data dir>/secrets.key, created on first start. A file given here
    /// must already exist; replicas sharing a PostgreSQL database must all
    /// be given the same one.
    #[arg(long, env = "TESSERA_SECRETS_KEY_FILE")]
    secrets_key_file: Option<PathBuf>,
    /// Allow webhooks to loopback, private, link-local and other internal
    /// addresses (refused by default, checked after DNS resolution at each
    /// delivery, so the delivery log cannot probe your network).
    #[arg(long, env = "TESSERA_ALLOW_PRIVATE_WEBHOOKS")]
    allow_private_webhooks: bool,
    /// Proxies (addresses or CIDR networks, comma-separated) whose
    /// Forwarded / X-Forwarded-For headers name the client for rate limits
    /// and per-address caps. Default: none; the TCP peer is the client.
    #[arg(long, env = "TESSERA_TRUSTED_PROXY", value_delimiter = ',', value_parser = tessera_server::http::client::TrustedProxies::parse_net)]
    trusted_proxy: Vec<ipnet::IpNet>,
    /// Time allowed for a request's headers, counted from when the server
    /// waits for them; also closes idle keep-alive connections.
    #[arg(long, env = "TESSERA_HEADER_READ_TIMEOUT", default_value = "20s", value_parser = crate::parse_interval)]
    header_read_timeout: std::time::Duration,
    /// Time allowed for a whole request body after its headers.
    #[arg(long, env = "TESSERA_BODY_READ_TIMEOUT", default_value = "30s", value_parser = crate::parse_interval)]
    body_read_timeout: std::time::Duration,
    /// A connection with no bytes either way this long is closed. Must
    /// exceed the 15 s keep-alive of change streams.
    #[arg(long, env = "TESSERA_IDLE_TIMEOUT", default_value = "2m", value_parser = crate::parse_interval)]
    idle_timeout: std::time::Duration,
    /// Open connections in all (lowered at start to fit `ulimit -n`).
    #[arg(long, env = "TESSERA_MAX_CONNECTIONS", default_value_t = 16_384)]
    max_connections: usize,
    /// Open connections from one address (IPv6: one /64). The default fits
    /// a 10,000-instance fleet behind one NAT address.
    #[arg(long, env = "TESSERA_MAX_CONNECTIONS_PER_IP", default_value_t = 12_000)]
    max_connections_per_ip: usize,
    /// Open change streams from one address.
    #[arg(long, env = "TESSERA_MAX_STREAMS_PER_IP", default_value_t = 11_000)]
    max_streams_per_ip: usize,
    /// Open change streams in all (past it, a stream is refused with 503
    /// and the client polls). Each costs about 10 KiB of memory here; see
    /// BENCHMARKS.md.
    #[arg(long, env = "TESSERA_MAX_STREAMS", default_value_t = 50_000)]
    max_streams: usize,
    /// Open change streams for one license.
    #[arg(
        long,
        env = "TESSERA_MAX_STREAMS_PER_LICENSE",
        default_value_t = 20_000
    )]
    max_streams_per_license: usize,
    /// Installations admitted per license at once (0: no limit). A new one
    /// past it gets a signed `instance_limit` answer and is audited.
    #[arg(
        long,
        env = "TESSERA_MAX_INSTANCES_PER_LICENSE",
        default_value_t = 10_000
    )]
    max_instances_per_license: usize,
    /// Installations unseen this long stop counting towards the limit.
    #[arg(long, env = "TESSERA_INSTANCE_ACTIVE_WINDOW", default_value = "7d", value_parser = parse_span)]
    instance_active_window: chrono::Duration,
    /// Installations unseen this long are deleted.
    #[arg(long, env = "TESSERA_INSTANCE_RETENTION", default_value = "90d", value_parser = parse_span)]
    instance_retention: chrono::Duration,
    /// Log format. The level comes from TESSERA_LOG or RUST_LOG (default info).
    #[arg(long, env = "TESSERA_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

fn parse_span(text: &str) -> Result<chrono::Duration, String> {
    tessera_protocol::human::parse_duration(text).map_err(|e| e.to_string())
}

/// Parsed `--horizons`.
#[derive(Debug, Clone)]
pub struct Horizons(Vec<chrono::Duration>);

fn parse_horizons(text: &str) -> Result<Horizons, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let d =
            tessera_protocol::human::parse_duration(part).map_err(|e| format!("{part:?}: {e}"))?;
        if d <= chrono::Duration::zero() {
            return Err(format!("{part:?}: a horizon must be positive"));
        }
        out.push(d);
    }
    Ok(Horizons(out))
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled: a signal that arrives right
/// after "listening on" must still mean a graceful stop.
pub(crate) fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    })
}

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let shutdown = shutdown_signal()?;
    let mut config = ServerConfig::new(args.data_dir);
    config.signing_key_file = args.signing_key_file;
    config.database_url = args.database_url;
    config.rate_limit_per_minute = args.rate_limit;
    config.secrets_key_file = args.secrets_key_file;
    config.trusted_proxies = args.trusted_proxy;
    if args.allow_private_webhooks {
        config.lifecycle.webhook_targets = tessera_server::webhooks::WebhookTargets::AllowPrivate;
    }
    config.limits.header_read_timeout = args.header_read_timeout;
    config.limits.body_read_timeout = args.body_read_timeout;
    config.limits.idle_timeout = args.idle_timeout;
    config.limits.max_connections = args.max_connections;
    config.limits.max_connections_per_ip = args.max_connections_per_ip;
    config.limits.max_watchers_per_ip = args.max_streams_per_ip;
    config.limits.max_watchers = args.max_streams;
    config.limits.max_watchers_per_license = args.max_streams_per_license;
    config.limits.max_instances_per_license = args.max_instances_per_license;
    config.limits.instance_active_window = args.instance_active_window;
    config.limits.instance_retention = args.instance_retention;
    config.lifecycle.horizons = args.horizons.0;
    config.lifecycle.scheduler_interval = args.scheduler_interval;
    let server = Server::open(config).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let s = server.startup();
    println!("Tessera authority {}", env!("CARGO_PKG_VERSION"));
    println!("  data directory: {}", s.data_dir.display());
    println!(
        "  database:       {} ({})",
        s.database,
        if s.backend == "postgres" {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    println!("  replica:        {}", s.replica);
    println!(
        "  signing key:    {}{}",
        s.signing_key_path.display(),
        if s.signing_key_created {
            " (created)"
        } else {
            ""
        }
    );
    println!(
        "  admin key:      {}{}",
        s.admin_key_path.display(),
        if s.admin_key_created {
            " (created; the CLI reads it from there)"
        } else {
            ""
        }
    );
    println!("  public key:     {}", s.public_key.to_paserk());
    println!("  key id:         {}", s.public_key.kid());
    println!("listening on http://{addr}");
    tracing::info!(%addr, "authority started");
    server.serve(listener, shutdown).await?;
    tracing::info!("authority stopped");
    Ok(())
}

/// `tessera keys rotate`: a local operation on the data directory.
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// The authority's data directory (its signing.key is rotated).
    #[arg(long, env = "TESSERA_DATA_DIR", default_value = "tessera-data")]
    pub data_dir: PathBuf,
    /// Rotate this key file instead (the one replicas share).
    #[arg(long, env = "TESSERA_SIGNING_KEY_FILE")]
    pub signing_key_file: Option<PathBuf>,
}

/// Make a new signing key active and retire the old one (the authority
/// must be stopped: the data directory's lock proves it).
pub fn rotate(r: &RotateArgs) -> anyhow::Result<()> {
    // Holding the data directory's lock proves no server runs on it.
    let _lock = tessera_server::datadir::DataDir::open(&r.data_dir)
        .map_err(|e| anyhow::anyhow!("{e}; stop the authority before rotating its key"))?;
    let path = r.signing_key_file.clone().unwrap_or_else(|| {
        r.data_dir
            .join(tessera_server::datadir::DataDir::SIGNING_KEY)
    });
    let now = chrono::Utc::now();
    let (old, new) = tessera_server::datadir::rotate_signing_key(&path, now)?;
    println!("Rotated the signing key in {}.", path.display());
    println!("  new, active:  {}", new.public_key().to_paserk());
    println!(
        "  old, retired: {}@{}",
        old.public_key().to_paserk(),
        tessera_protocol::time::format(&now)
    );
    println!("Start the authority again (every replica sharing this key file).");
    println!("Pin both in clients: --public-key NEW --public-key OLD@TIME (as printed).");
    Ok(())
}
