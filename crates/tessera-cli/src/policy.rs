//! `tessera policy create|update|list`.

use clap::{Args, Subcommand};
use tessera_protocol::wire::{Enforcement, OnExpiry, PolicyInput, PolicyUpdate, RenewalBasis};

use crate::Connection;
use crate::args::{MachineArgs, split_list};
use crate::client::AdminClient;
use crate::output;

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Create a policy.
    Create(Box<PolicyCreateArgs>),
    /// Change a policy's enforcement, on-expiry rule, offline grace or
    /// refresh interval. Every license under it gets a new revision,
    /// pushed to its instances. With --dry-run nothing changes: it lists
    /// the licenses whose verdict would change and how many of their
    /// instances are connected.
    Update(PolicyUpdateArgs),
    /// List policies.
    List {
        #[command(flatten)]
        conn: Connection,
    },
}

#[derive(Debug, Args)]
pub struct PolicyCreateArgs {
    /// Unique name.
    name: String,
    /// Default license duration (e.g. 365d); none = perpetual unless given at issue.
    #[arg(long)]
    duration: Option<String>,
    /// Default features, comma-separated; a metered one as
    /// `name=LIMIT/PERIOD[/OVERAGE]`, e.g. `api_calls=100000/month`.
    #[arg(long)]
    features: Option<String>,
    /// Default seat limit.
    #[arg(long)]
    max_users: Option<u32>,
    /// Licenses under this policy are trials.
    #[arg(long)]
    trial: bool,
    /// How often clients without a live stream ask again (default 1h).
    #[arg(long)]
    refresh_interval: Option<String>,
    /// How long a status document stays trustworthy offline (default 7d).
    #[arg(long)]
    offline_grace: Option<String>,
    /// How `extend --by` counts: from_expiry (default) or from_now.
    #[arg(long)]
    renewal_basis: Option<RenewalBasis>,
    /// Renew licenses automatically.
    #[arg(long)]
    auto_renew: bool,
    #[command(flatten)]
    machines: MachineArgs,
    /// Period of each automatic renewal (default: the duration).
    #[arg(long)]
    auto_renew_period: Option<String>,
    /// How long before expiry an automatic renewal happens (default 7d).
    #[arg(long)]
    renew_before: Option<String>,
    /// What expiry takes away: lose_access (default: features stop),
    /// keep_versions_released_before_expiry (versions of the product
    /// released before the expiry keep working: "perpetual fallback"), or
    /// keep_access (marked expired, webhooks fire, features stay on).
    #[arg(long)]
    on_expiry: Option<OnExpiry>,
    /// How the policy's rules apply: enforce (default: refuse what they
    /// refuse), warn (allow it; the verdict carries warnings the product
    /// shows), observe (allow it; the vendor sees it, the product shows
    /// nothing). Suspension and revocation always apply.
    #[arg(long)]
    enforcement: Option<Enforcement>,
    /// The product owning it (default: "default").
    #[arg(long)]
    product: Option<String>,
    #[command(flatten)]
    conn: Connection,
}

#[derive(Debug, Args)]
pub struct PolicyUpdateArgs {
    /// The policy's name.
    name: String,
    /// enforce, warn or observe.
    #[arg(long)]
    enforcement: Option<Enforcement>,
    /// lose_access, keep_versions_released_before_expiry or keep_access.
    #[arg(long)]
    on_expiry: Option<OnExpiry>,
    /// How long a status document stays trustworthy offline (e.g. 14d).
    #[arg(long)]
    offline_grace: Option<String>,
    /// How often clients without a live stream ask again (e.g. 30m).
    #[arg(long)]
    refresh_interval: Option<String>,
    /// Show what would change; change nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    conn: Connection,
}

pub async fn run(cmd: PolicyCommand) -> anyhow::Result<()> {
    match cmd {
        PolicyCommand::Create(a) => {
            let client = AdminClient::new(&a.conn)?;
            let input = PolicyInput {
                name: a.name,
                product: a.product,
                duration: a.duration,
                features: a.features.as_deref().map(split_list).unwrap_or_default(),
                max_users: a.max_users,
                trial: a.trial,
                refresh_interval: a.refresh_interval,
                offline_grace: a.offline_grace,
                renewal_basis: a.renewal_basis,
                auto_renew: a.auto_renew,
                auto_renew_period: a.auto_renew_period,
                renew_before: a.renew_before,
                on_expiry: a.on_expiry.unwrap_or_default(),
                enforcement: a.enforcement.unwrap_or_default(),
                machines: a.machines.input(),
            };
            let p = client.create_policy(&input).await?;
            if a.conn.json {
                return output::json(&p);
            }
            println!("Created policy {} ({}).", p.name, p.id);
            Ok(())
        }
        PolicyCommand::Update(a) => {
            let update = PolicyUpdate {
                enforcement: a.enforcement,
                on_expiry: a.on_expiry,
                offline_grace: a.offline_grace,
                refresh_interval: a.refresh_interval,
            };
            let view = AdminClient::new(&a.conn)?
                .update_policy(&a.name, &update, a.dry_run)
                .await?;
            if a.conn.json {
                return output::json(&view);
            }
            let verb = if view.dry_run {
                "would change"
            } else {
                "changed"
            };
            println!(
                "{} {}: {} of {} licenses {verb} verdict ({} connected instances).",
                if view.dry_run {
                    "Dry run, nothing written. Policy"
                } else {
                    "Updated policy"
                },
                view.policy.name,
                view.changes.len(),
                view.licenses,
                view.instances_connected,
            );
            if !view.changes.is_empty() {
                let mut table =
                    output::table(&["LICENSE", "CUSTOMER", "NOW", "AFTER", "CONNECTED"]);
                for c in &view.changes {
                    table.add_row(vec![
                        c.license.clone(),
                        c.customer.clone(),
                        c.before.clone(),
                        c.after.clone(),
                        c.instances_connected.to_string(),
                    ]);
                }
                println!("{table}");
            }
            Ok(())
        }
        PolicyCommand::List { conn } => {
            let page = AdminClient::new(&conn)?.policies().await?;
            if conn.json {
                return output::json(&page.items);
            }
            let mut table = output::table(&[
                "NAME", "DURATION", "FEATURES", "REFRESH", "GRACE", "BASIS", "TRIAL",
            ]);
            for p in &page.items {
                table.add_row(vec![
                    p.name.clone(),
                    p.duration.clone().unwrap_or_else(|| "perpetual".into()),
                    p.features.join(","),
                    p.refresh_interval.clone(),
                    p.offline_grace.clone(),
                    p.renewal_basis.to_string(),
                    if p.trial { "yes".into() } else { "no".into() },
                ]);
            }
            println!("{table}");
            Ok(())
        }
    }
}
