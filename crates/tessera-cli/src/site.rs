//! `tessera site create|list|bundle|revoke`: the vendor's side of a site
//! relay (docs/PROTOCOL.md §26) — which licenses an isolated network may
//! use, its relay's key, and the bundles carried to it.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use tessera_protocol::wire::{SiteBundleFile, SiteInput, SiteLicense};

use crate::Connection;
use crate::client::AdminClient;

#[derive(Debug, Subcommand)]
pub enum SiteCommand {
    /// Create a site: its relay (the key `tessera relay init` printed) may
    /// answer for these licenses inside the isolated network. Writes the
    /// first bundle, for the relay's `--bundle` file.
    Create(CreateArgs),
    /// List sites, with what each relay reported at its last synchronisation.
    List(ListArgs),
    /// A new bundle (the licenses' terms as they are now), to carry to a
    /// relay with no route to the authority.
    Bundle(NamedArgs),
    /// Revoke a site: no new bundle; its relay stops at its bundle's end.
    Revoke(NamedArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The site's name (1–60 of a-z 0-9 - _ .).
    site: String,
    /// The relay's public key (k4.public.…), from `tessera relay init`.
    #[arg(long)]
    relay_key: String,
    /// A license the site may use, optionally with its share of the
    /// license's machines or floating seats: `lic_…` or `lic_…:20`.
    /// Repeat for more.
    #[arg(long = "license", required = true)]
    licenses: Vec<String>,
    /// How long each bundle lets the relay answer without a new one.
    #[arg(long, default_value = "30d")]
    valid_for: String,
    /// Write the bundle file here (default: standard output).
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
    #[command(flatten)]
    conn: Connection,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    conn: Connection,
}

#[derive(Debug, Args)]
pub struct NamedArgs {
    /// The site's name.
    site: String,
    /// Write the bundle file here (`bundle`; default: standard output).
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
    #[command(flatten)]
    conn: Connection,
}

/// `lic_…` or `lic_…:N`.
pub fn parse_share(text: &str) -> anyhow::Result<SiteLicense> {
    match text.split_once(':') {
        None => Ok(SiteLicense {
            license: text.to_owned(),
            max_machines: None,
        }),
        Some((license, n)) => {
            Ok(SiteLicense {
                license: license.to_owned(),
                max_machines: Some(n.parse().with_context(|| {
                    format!("--license {text}: the share after ':' is a number")
                })?),
            })
        }
    }
}

/// Write a bundle file, saying until when it lets the relay answer.
pub fn write_bundle(file: &SiteBundleFile, output: Option<&PathBuf>) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(file)? + "\n";
    let until = tessera_protocol::time::format(&file.valid_until);
    match output {
        Some(path) => {
            std::fs::write(path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!(
                "Wrote {}: the bundle of site {}, valid until {until}.",
                path.display(),
                file.site
            );
        }
        None => {
            print!("{text}");
            eprintln!("The bundle of site {}, valid until {until}.", file.site);
        }
    }
    Ok(())
}

pub async fn run(cmd: SiteCommand) -> anyhow::Result<()> {
    match cmd {
        SiteCommand::Create(a) => {
            let licenses = a
                .licenses
                .iter()
                .map(|l| parse_share(l))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let answer = AdminClient::new(&a.conn)?
                .create_site(&SiteInput {
                    site: a.site,
                    relay_key: a.relay_key,
                    licenses,
                    valid_for: Some(a.valid_for),
                })
                .await?;
            let bundle: SiteBundleFile = serde_json::from_value(answer["bundle"].clone())
                .context("unexpected answer from the authority")?;
            write_bundle(&bundle, a.output.as_ref())
        }
        SiteCommand::List(a) => {
            let sites = AdminClient::new(&a.conn)?.sites().await?;
            if a.conn.json {
                return crate::output::json(&sites);
            }
            if sites.is_empty() {
                println!("No sites.");
            }
            for s in sites {
                let state = match (s.revoked_at, s.last_sync_at) {
                    (Some(at), _) => format!("revoked {}", tessera_protocol::time::format(&at)),
                    (None, Some(at)) => {
                        format!("last sync {}", tessera_protocol::time::format(&at))
                    }
                    (None, None) => "never synchronised".to_owned(),
                };
                println!("{}  ({state})", s.site);
                for l in &s.licenses {
                    let used = s.usage.iter().find(|u| u.license == l.license);
                    println!(
                        "  {}  share {}  in use {}  installations {}",
                        l.license,
                        l.max_machines
                            .map_or_else(|| "-".to_owned(), |m| m.to_string()),
                        used.map_or_else(|| "?".to_owned(), |u| u.machines.to_string()),
                        used.map_or_else(|| "?".to_owned(), |u| u.instances.to_string()),
                    );
                }
            }
            Ok(())
        }
        SiteCommand::Bundle(a) => {
            let bundle = AdminClient::new(&a.conn)?.site_bundle(&a.site).await?;
            write_bundle(&bundle, a.output.as_ref())
        }
        SiteCommand::Revoke(a) => {
            let view = AdminClient::new(&a.conn)?.revoke_site(&a.site).await?;
            eprintln!(
                "Site {} revoked: no new bundle will be signed; its relay answers until its bundle ends.",
                view.site
            );
            Ok(())
        }
    }
}
