//! `tessera`: the license authority, its admin commands, and `check`.
//!
//! Thin by design: parse the command line, set up logging, call into the
//! library crates. Modules:
//! - `server`: `tessera server`, and `keys rotate` (a local operation);
//! - `client`: the typed client of the admin API;
//! - `license`, `policy`, `events`, `webhook`: one file per command group;
//! - `args`: command-line values shared by the commands;
//! - `agent`: the client SDK as a sidecar (local API, status page);
//! - `check`: one-shot validation with full verification;
//! - `access`: products and admin keys;
//! - `site`, `relay`: isolated sites — the vendor's side and the relay;
//! - `output`: tables and times for people.

mod access;
mod agent;
mod args;
mod audit;
mod check;
mod client;
mod events;
mod import;
mod license;
mod machines;
mod offline;
mod output;
mod policy;
mod relay;
mod server;
mod site;
mod webhook;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Tessera: a license authority whose renewals reach running products at once.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the license authority (SQLite in ./tessera-data by default).
    Server(server::ServerArgs),
    /// Issue, inspect and change licenses.
    #[command(subcommand)]
    License(license::LicenseCommand),
    /// Create and list policies.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Manage webhook endpoints and see their deliveries.
    #[command(subcommand)]
    Webhook(webhook::WebhookCommand),
    /// Create and list products.
    #[command(subcommand)]
    Product(access::ProductCommand),
    /// Create, list and revoke admin keys with roles.
    #[command(subcommand, name = "admin-key")]
    AdminKey(access::AdminKeyCommand),
    /// Show the audit log.
    Events(events::EventsArgs),
    /// Show the authority's public keys, or rotate the signing key (`keys rotate`).
    Keys(events::KeysArgs),
    /// Run the license client as a sidecar with a local API and status page.
    Agent(agent::AgentArgs),
    /// Offline activation on an isolated machine: write a request, import
    /// the response.
    #[command(subcommand)]
    Offline(offline::OfflineCommand),
    /// Sites: isolated networks whose relay answers for the authority.
    #[command(subcommand)]
    Site(site::SiteCommand),
    /// Run a site relay: answers every instance of an isolated network,
    /// within the bundle the authority signed (`relay init` makes its key).
    Relay(relay::RelayArgs),
    /// Validate a token against an authority and verify the answer.
    ///
    /// Exit status: 0 valid, 1 not valid, 2 error.
    Check(check::CheckArgs),
}

/// How admin commands reach the authority.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// The authority's URL.
    #[arg(long, env = "TESSERA_SERVER", default_value = "http://127.0.0.1:7400")]
    pub server: String,
    /// File holding the admin key. Default: $TESSERA_ADMIN_KEY, else
    /// <data dir>/admin.key.
    #[arg(long, env = "TESSERA_ADMIN_KEY_FILE")]
    pub admin_key_file: Option<PathBuf>,
    /// Data directory whose admin.key to use when no other key is given.
    #[arg(long, env = "TESSERA_DATA_DIR", default_value = "tessera-data")]
    pub data_dir: PathBuf,
    /// Print JSON instead of tables.
    #[arg(long, env = "TESSERA_JSON")]
    pub json: bool,
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TESSERA_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Server(args) => {
            init_tracing(args.log_format == server::LogFormat::Json);
            report(runtime.block_on(server::run(args)))
        }
        Command::License(cmd) => report(runtime.block_on(license::run(cmd))),
        Command::Policy(cmd) => report(runtime.block_on(policy::run(cmd))),
        Command::Webhook(cmd) => report(runtime.block_on(webhook::run(cmd))),
        Command::Product(cmd) => report(runtime.block_on(access::products(cmd))),
        Command::AdminKey(cmd) => report(runtime.block_on(access::admin_keys(cmd))),
        Command::Events(args) => report(runtime.block_on(events::events(args))),
        Command::Keys(args) => report(runtime.block_on(events::keys(args))),
        Command::Agent(args) => {
            init_tracing(false);
            report(runtime.block_on(agent::run(args)))
        }
        Command::Check(args) => runtime.block_on(check::run(args)),
        Command::Offline(cmd) => report(runtime.block_on(offline::run(cmd))),
        Command::Site(cmd) => report(runtime.block_on(site::run(cmd))),
        Command::Relay(args) => {
            init_tracing(false);
            report(runtime.block_on(relay::run(args)))
        }
    }
}

/// A positive duration typed by a person (`90s`, `15m`), for interval flags.
pub(crate) fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    tessera_protocol::human::parse_duration(text)
        .map_err(|e| e.to_string())?
        .to_std()
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| "must be a positive duration".to_owned())
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
