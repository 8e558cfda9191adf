//! `tessera offline request|import`: offline activation on the isolated
//! machine (docs/PROTOCOL.md §25), over the same state directory as the
//! agent (`tessera agent --state-dir`), with no network.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use tessera_client::Client;

#[derive(Debug, Subcommand)]
pub enum OfflineCommand {
    /// Write this machine's offline activation request (a file whose last
    /// line is a short `TSRQ1-…` code you can also read over the phone).
    /// The vendor answers it with `tessera license offline-activate`.
    Request(RequestArgs),
    /// Import the response to a request made here (or a renewal of it, or a
    /// license export): verified, bound to this machine, newer than what is
    /// held. A running agent watching its `--offline-file` takes it too.
    Import(ImportArgs),
}

/// The isolated machine's client, as the agent configures it.
#[derive(Debug, Args)]
pub struct Local {
    /// The authority's public key (PASERK k4.public.…).
    #[arg(
        long = "public-key",
        env = "TESSERA_PUBLIC_KEY",
        value_delimiter = ',',
        required = true
    )]
    public_keys: Vec<String>,
    /// File holding the license token. Default: the token kept in the
    /// state directory.
    #[arg(long, env = "TESSERA_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// The state directory (the agent's: the request's nonce is kept there).
    #[arg(long, env = "TESSERA_STATE_DIR", default_value = "tessera-agent")]
    state_dir: PathBuf,
    /// This machine's fingerprint (default: derived from the host's machine
    /// id and the token, as the agent derives it).
    #[arg(long, env = "TESSERA_FINGERPRINT")]
    fingerprint: Option<String>,
    /// The product's version, carried in the request.
    #[arg(long, env = "TESSERA_APP_VERSION")]
    app_version: Option<String>,
}

#[derive(Debug, Args)]
pub struct RequestArgs {
    #[command(flatten)]
    local: Local,
    /// Write the request to this file instead of standard output.
    #[arg(long, short = 'o')]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    local: Local,
    /// The response file (`tessera license offline-activate` wrote it).
    file: PathBuf,
}

fn client(l: &Local) -> anyhow::Result<Client> {
    let mut b = Client::builder()
        .state_dir(&l.state_dir)
        .watch(tessera_client::Watching::Off);
    for key in &l.public_keys {
        b = b
            .pin(key)
            .with_context(|| format!("--public-key {key:?}"))?;
    }
    if let Some(path) = &l.token_file {
        b = b.token(crate::agent::read_token(path)?);
    }
    if let Some(fp) = &l.fingerprint {
        b = b.fingerprint(fp);
    }
    if let Some(v) = &l.app_version {
        b = b.app_version(v);
    }
    b.start().context("cannot open the license state")
}

pub async fn run(cmd: OfflineCommand) -> anyhow::Result<()> {
    match cmd {
        OfflineCommand::Request(a) => {
            let c = client(&a.local)?;
            let text = c.offline_request().context("cannot make the request")?;
            c.shutdown();
            match a.out {
                Some(path) => {
                    std::fs::write(&path, &text)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    let code = text.lines().last().unwrap_or_default();
                    eprintln!(
                        "Wrote {}. Its code, to read over the phone:\n{code}",
                        path.display()
                    );
                }
                None => print!("{text}"),
            }
            Ok(())
        }
        OfflineCommand::Import(a) => {
            let bytes = std::fs::read(&a.file)
                .with_context(|| format!("cannot read {}", a.file.display()))?;
            let c = client(&a.local)?;
            let outcome = c.import_offline(&bytes).await;
            let v = outcome.with_context(|| format!("{} was refused", a.file.display()))?;
            let license = v.license.as_ref();
            println!(
                "Imported: {}; revision {}, trustworthy offline until {}.",
                crate::agent::view::StatusView::of(&c).summary(),
                license.map_or(0, |l| l.revision),
                license.map_or_else(String::new, |l| tessera_protocol::time::format(
                    &l.fresh_until
                )),
            );
            c.shutdown();
            Ok(())
        }
    }
}
