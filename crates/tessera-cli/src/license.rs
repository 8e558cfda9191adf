//! `tessera license …`: issue, show, list, extend, suspend, reinstate,
//! revoke, export, instances, usage.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use tessera_protocol::LicenseId;
use tessera_protocol::wire::{
    ExportRequest, ExtendRequest, Fleet, IssueLicenseRequest, LicenseState, LicenseView,
    ReasonRequest, StateAction,
};

use crate::Connection;
use crate::args::{MachineArgs, parse_license_id, split_list};
use crate::client::{AdminClient, LicenseList};
use crate::output;

#[derive(Debug, Subcommand)]
pub enum LicenseCommand {
    /// Issue a license. The token is printed once and never stored.
    Issue(IssueArgs),
    /// Show one license.
    Show(IdArgs),
    /// List licenses.
    List(ListArgs),
    /// Extend a license to a date or by a duration.
    Extend(ExtendArgs),
    /// Suspend a license (reversible with reinstate).
    Suspend(ReasonArgs),
    /// Reinstate a suspended license.
    Reinstate(ReasonArgs),
    /// Revoke a license. Final.
    Revoke(RevokeArgs),
    /// Write a long-lived signed document for an air-gapped site.
    Export(ExportArgs),
    /// Answer an isolated machine's offline activation request (its file,
    /// or the TSRQ1 code read over the phone): the machine takes a place,
    /// and the response file is what it imports (`tessera offline import`).
    /// Run it again later (after an extension) to renew it by file.
    OfflineActivate(OfflineActivateArgs),
    /// Show the installations using a license, most recently seen first, a
    /// page at a time.
    Instances(InstancesArgs),
    /// Show metering: seats in use against the limit, and daily maxima; or,
    /// with --feature, a metered feature's quota, its use this period across
    /// every instance, and its recent periods.
    Usage(UsageArgs),
    /// Show the machines of a license ("3 of 5 machines"), those holding a
    /// place first; for floating licenses, when each lease ends.
    Machines(crate::machines::MachinesArgs),
    /// Free a machine's place at once (force release); it hears so on its
    /// stream.
    Release(crate::machines::ReleaseArgs),
    /// Import licenses in bulk from CSV, JSON lines or Keygen's export,
    /// keeping their existing keys; checked first, then written in
    /// batches, resumable (rerun the same command after a crash).
    Import(Box<crate::import::ImportArgs>),
    /// Every license as JSON lines (the format import reads), for backups
    /// and for leaving.
    ExportAll(crate::import::ExportAllArgs),
}

#[derive(Debug, Args)]
pub struct UsageArgs {
    #[command(flatten)]
    license: IdArgs,
    /// Days of daily maxima to show.
    #[arg(long, default_value_t = 30)]
    days: u32,
    /// A metered feature (e.g. api_calls): show its quota and use instead.
    #[arg(long)]
    feature: Option<String>,
    /// With --feature: how many recent periods to list.
    #[arg(long, default_value_t = 12, requires = "feature")]
    periods: u32,
}

#[derive(Debug, Args)]
pub struct IssueArgs {
    /// Customer name (created if new).
    #[arg(long, env = "TESSERA_CUSTOMER")]
    customer: String,
    /// Customer e-mail, kept when the customer is new.
    #[arg(long, env = "TESSERA_CUSTOMER_EMAIL")]
    email: Option<String>,
    /// Plan name.
    #[arg(long, env = "TESSERA_PLAN")]
    plan: String,
    /// Features, comma-separated (default: the policy's). A feature that
    /// ends before the license: `name@2027-03-01` (the start of that day,
    /// UTC) or `name@2027-03-01T12:00:00Z`. A metered feature:
    /// `name=LIMIT/PERIOD[/OVERAGE]`, e.g. `api_calls=100000/month` (period
    /// day, month or total, UTC; overage block (default), allow or
    /// allow_until_percent(N)). Names: letters, digits, `_ - . :`.
    #[arg(long, env = "TESSERA_FEATURES")]
    features: Option<String>,
    /// Seat limit.
    #[arg(long, env = "TESSERA_MAX_USERS")]
    max_users: Option<u32>,
    /// Expiry date (2027-01-01 = start of that day, UTC) or RFC 3339 time.
    #[arg(long, env = "TESSERA_EXPIRES", conflicts_with_all = ["duration", "perpetual"])]
    expires: Option<String>,
    /// Duration from now: 30d, 12h, 1y.
    #[arg(long, env = "TESSERA_DURATION", conflicts_with = "perpetual")]
    duration: Option<String>,
    /// No expiry.
    #[arg(long)]
    perpetual: bool,
    /// Trial license.
    #[arg(long)]
    trial: bool,
    /// Renew automatically by the policy's period before it lapses (default: the policy's setting).
    #[arg(long)]
    auto_renew: bool,
    #[command(flatten)]
    machines: MachineArgs,
    /// Policy name (default: the built-in "default").
    #[arg(long, env = "TESSERA_POLICY")]
    policy: Option<String>,
    /// Product (default: the policy's; "default" for the built-in policy).
    #[arg(long, env = "TESSERA_PRODUCT")]
    product: Option<String>,
    #[command(flatten)]
    conn: Connection,
}

/// The license a command acts on, and how to reach the authority.
#[derive(Debug, Args)]
pub struct IdArgs {
    /// License id (lic_…).
    #[arg(value_parser = parse_license_id)]
    id: LicenseId,
    #[command(flatten)]
    conn: Connection,
}

#[derive(Debug, Args)]
pub struct InstancesArgs {
    #[command(flatten)]
    license: IdArgs,
    /// Installations per page (the server caps it at its page size).
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Installations to skip (the previous page's "next" offset).
    #[arg(long, default_value_t = 0)]
    offset: u64,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this customer's licenses.
    #[arg(long, env = "TESSERA_CUSTOMER")]
    customer: Option<String>,
    /// Only licenses in this state: active, suspended, revoked.
    #[arg(long)]
    state: Option<LicenseState>,
    /// Only licenses expiring within this duration from now (e.g. 30d).
    #[arg(long)]
    expiring_within: Option<String>,
    /// Only this product's licenses.
    #[arg(long)]
    product: Option<String>,
    /// Most licenses to show.
    #[arg(long, default_value_t = 100)]
    limit: u32,
    #[command(flatten)]
    conn: Connection,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("target").required(true).args(["to", "by"]))]
pub struct ExtendArgs {
    #[command(flatten)]
    license: IdArgs,
    /// New expiry: a date (2027-01-01) or RFC 3339 time.
    #[arg(long)]
    to: Option<String>,
    /// Extension: 30d, 1y… counted from the expiry or from now, as the policy says.
    #[arg(long)]
    by: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReasonArgs {
    #[command(flatten)]
    license: IdArgs,
    /// Why, for the audit log.
    #[arg(long)]
    reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    license: IdArgs,
    /// Why, for the audit log.
    #[arg(long)]
    reason: Option<String>,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    yes: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    license: IdArgs,
    /// How long the document stays trustworthy offline (e.g. 365d).
    #[arg(long, default_value = "365d")]
    ttl: String,
    /// Write to this file instead of standard output.
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct OfflineActivateArgs {
    #[command(flatten)]
    conn: crate::Connection,
    /// The request file, or `-` to read it (or the code) from standard input.
    request: PathBuf,
    /// How long the response stays trustworthy offline (at most 400d).
    #[arg(long, default_value = "365d")]
    ttl: String,
    /// Write the response to this file instead of standard output.
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
}

async fn offline_activate(a: OfflineActivateArgs) -> anyhow::Result<()> {
    let request = if a.request.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
            .context("reading the request from standard input")?
    } else {
        std::fs::read_to_string(&a.request)
            .with_context(|| format!("cannot read {}", a.request.display()))?
    };
    let answer = AdminClient::new(&a.conn)?
        .offline_activate(&tessera_protocol::wire::OfflineActivationRequest {
            request,
            ttl: a.ttl,
        })
        .await?;
    let text = serde_json::to_string_pretty(&answer)? + "\n";
    let what = format!(
        "{} for {} ({}, trustworthy until {})",
        answer.machine.as_deref().unwrap_or("no place"),
        answer.license,
        answer.status.as_str(),
        tessera_protocol::time::format(&answer.valid_until)
    );
    match a.output {
        Some(path) => {
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("Wrote {}: {what}.", path.display());
        }
        None => {
            print!("{text}");
            eprintln!("{what}.");
        }
    }
    Ok(())
}

fn print_license(l: &LicenseView) {
    println!("License   {}", l.id);
    println!("Customer  {}", l.customer);
    println!("Plan      {}", l.plan);
    println!(
        "Features  {}",
        if l.features.is_empty() {
            "(none)".to_owned()
        } else {
            tessera_protocol::entitlements::describe(&l.features, &l.entitlements)
        }
    );
    println!(
        "Users     {}",
        l.max_users
            .map_or_else(|| "unlimited".to_owned(), |n| n.to_string())
    );
    println!("Machines  {}", crate::machines::settings_line(&l.machines));
    println!("Status    {} (state {})", l.status, l.state.as_str());
    println!("Valid     from {}", output::when(&l.valid_from));
    println!("Expires   {}", output::expiry(l.expires_at.as_ref()));
    println!("Revision  {}", l.revision);
    println!(
        "Policy    {}{}",
        l.policy,
        if l.trial { " (trial)" } else { "" }
    );
    println!("Token     tsr_…{}", l.token_last4);
}

fn confirm(question: &str) -> anyhow::Result<bool> {
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES"))
}

/// "Seats: 12 in use of 10 — over the limit", for people.
fn seats_line(in_use: Option<u32>, max: Option<u32>) -> String {
    let used = in_use.map_or_else(|| "no report".to_owned(), |n| format!("{n} in use"));
    match max {
        Some(max) if in_use.is_some_and(|n| n > max) => {
            format!("Seats: {used} of {max} — OVER THE LIMIT")
        }
        Some(max) => format!("Seats: {used} of {max}"),
        None => format!("Seats: {used} (no limit)"),
    }
}

pub async fn run(cmd: LicenseCommand) -> anyhow::Result<()> {
    match cmd {
        LicenseCommand::Issue(a) => issue(a).await,
        LicenseCommand::Show(a) => {
            let l = AdminClient::new(&a.conn)?.license(&a.id).await?;
            if a.conn.json {
                return output::json(&l);
            }
            print_license(&l);
            Ok(())
        }
        LicenseCommand::List(a) => list(a).await,
        LicenseCommand::Import(a) => crate::import::import(*a).await,
        LicenseCommand::ExportAll(a) => crate::import::export_all(a).await,
        LicenseCommand::Extend(a) => {
            let IdArgs { id, conn } = a.license;
            let req = ExtendRequest { to: a.to, by: a.by };
            let l = AdminClient::new(&conn)?.extend(&id, &req).await?;
            if conn.json {
                return output::json(&l);
            }
            println!(
                "Extended {}: expires {}, revision {}.",
                l.id,
                output::expiry(l.expires_at.as_ref()),
                l.revision
            );
            Ok(())
        }
        LicenseCommand::Suspend(a) => {
            state_change(a.license, StateAction::Suspend, a.reason, "Suspended").await
        }
        LicenseCommand::Reinstate(a) => {
            state_change(a.license, StateAction::Reinstate, a.reason, "Reinstated").await
        }
        LicenseCommand::Revoke(a) => {
            if !a.yes {
                if !std::io::stdin().is_terminal() {
                    bail!("revoking is final; pass --yes to confirm");
                }
                if !confirm(&format!(
                    "Revoke {}? Every installation loses it at once; this cannot be undone.",
                    a.license.id
                ))? {
                    bail!("not revoked");
                }
            }
            state_change(a.license, StateAction::Revoke, a.reason, "Revoked").await
        }
        LicenseCommand::Export(a) => export(a).await,
        LicenseCommand::OfflineActivate(a) => offline_activate(a).await,
        LicenseCommand::Machines(a) => crate::machines::list(a).await,
        LicenseCommand::Release(a) => crate::machines::release(a).await,
        LicenseCommand::Instances(a) => {
            let IdArgs { id, conn } = a.license;
            let fleet = AdminClient::new(&conn)?
                .fleet(&id, a.limit, a.offset)
                .await?;
            if conn.json {
                return output::json(&fleet);
            }
            print_fleet(&fleet);
            Ok(())
        }
        LicenseCommand::Usage(a) => {
            let IdArgs { id, conn } = a.license;
            if let Some(feature) = &a.feature {
                let q = AdminClient::new(&conn)?
                    .quota_usage(&id, feature, a.periods)
                    .await?;
                if conn.json {
                    return output::json(&q);
                }
                print_quota(&q);
                return Ok(());
            }
            let usage = AdminClient::new(&conn)?.usage(&id, a.days).await?;
            if conn.json {
                return output::json(&usage);
            }
            println!("{}", seats_line(usage.seats_in_use, usage.max_users));
            if usage.days.is_empty() {
                println!("No usage reported yet.");
                return Ok(());
            }
            let mut table = output::table(&["DAY (UTC)", "MAX USERS"]);
            for d in &usage.days {
                table.add_row(vec![d.day.clone(), d.max_users.to_string()]);
            }
            println!("{table}");
            Ok(())
        }
    }
}

/// `api_calls: 40 of 100 this month (60 left, block; period ends …)` and
/// the periods.
fn print_quota(q: &tessera_protocol::wire::QuotaUsageView) {
    let used = q.quota.used.unwrap_or(0);
    let period = match q.quota.period {
        tessera_protocol::QuotaPeriod::Day => "today (UTC)",
        tessera_protocol::QuotaPeriod::Month => "this month (UTC)",
        tessera_protocol::QuotaPeriod::Total => "in total",
    };
    let ends = q.quota.period_ends_at.map_or(String::new(), |t| {
        format!("; the period ends {}", tessera_protocol::time::format(&t))
    });
    println!(
        "{}: {used} of {} {period} ({} left, overage {}{ends})",
        q.feature, q.quota.limit, q.remaining, q.quota.overage
    );
    if q.periods.is_empty() {
        println!("No consumption reported yet.");
        return;
    }
    let mut table = output::table(&["PERIOD (UTC)", "USED", "LAST REPORT"]);
    for p in &q.periods {
        table.add_row(vec![
            p.period.clone(),
            p.used.to_string(),
            tessera_protocol::time::format(&p.updated_at),
        ]);
    }
    println!("{table}");
}

async fn issue(a: IssueArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(&a.conn)?;
    let req = IssueLicenseRequest {
        customer: a.customer,
        customer_email: a.email,
        plan: a.plan,
        policy: a.policy,
        product: a.product,
        metadata: None,
        features: a.features.as_deref().map(split_list),
        max_users: a.max_users,
        trial: a.trial.then_some(true),
        expires_at: a.expires,
        duration: a.duration,
        perpetual: a.perpetual,
        auto_renew: a.auto_renew.then_some(true),
        machines: a.machines.input(),
    };
    let issued = client.issue(&req).await?;
    if a.conn.json {
        return output::json(&issued);
    }
    let l = &issued.license;
    println!(
        "Issued {} for {} (plan {}), expires {}, revision {}.",
        l.id,
        l.customer,
        l.plan,
        output::expiry(l.expires_at.as_ref()),
        l.revision
    );
    println!();
    println!("Token (shown only now; the authority keeps just its hash):");
    println!("  {}", issued.token);
    Ok(())
}

async fn list(a: ListArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(&a.conn)?;
    let query = LicenseList {
        limit: a.limit,
        customer: a.customer,
        state: a.state,
        expiring_within: a.expiring_within,
        product: a.product,
        cursor: None,
    };
    let page = client.licenses(&query).await?;
    if a.conn.json {
        return output::json(&page.items);
    }
    if page.items.is_empty() {
        println!("No licenses match.");
        return Ok(());
    }
    let mut table = output::table(&["ID", "CUSTOMER", "PLAN", "STATUS", "EXPIRES", "REV"]);
    for l in &page.items {
        table.add_row(vec![
            l.id.clone(),
            l.customer.clone(),
            l.plan.clone(),
            l.status.to_string(),
            output::expiry(l.expires_at.as_ref()),
            l.revision.to_string(),
        ]);
    }
    println!("{table}");
    if page.next_cursor.is_some() {
        println!(
            "(more licenses than --limit {}; narrow the filters or raise --limit)",
            a.limit
        );
    }
    Ok(())
}

async fn export(a: ExportArgs) -> anyhow::Result<()> {
    let IdArgs { id, conn } = a.license;
    let export = AdminClient::new(&conn)?
        .export(&id, &ExportRequest { ttl: a.ttl })
        .await?;
    let text = serde_json::to_string_pretty(&export)? + "\n";
    match a.output {
        Some(path) => {
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("Wrote {} for {}.", path.display(), export.license);
        }
        None => print!("{text}"),
    }
    Ok(())
}

async fn state_change(
    target: IdArgs,
    action: StateAction,
    reason: Option<String>,
    done: &str,
) -> anyhow::Result<()> {
    let IdArgs { id, conn } = target;
    let l = AdminClient::new(&conn)?
        .set_state(&id, action, &ReasonRequest { reason })
        .await?;
    if conn.json {
        return output::json(&l);
    }
    println!(
        "{done} {}: status {}, revision {}.",
        l.id, l.status, l.revision
    );
    Ok(())
}

fn print_fleet(fleet: &Fleet) {
    let s = &fleet.summary;
    println!(
        "License {} at revision {}: delivered to {} of {} instances.",
        fleet.license, fleet.revision, s.current, s.total
    );
    println!("{}", seats_line(s.seats_in_use, s.max_users));
    if fleet.instances.is_empty() {
        return;
    }
    let mut table = output::table(&[
        "INSTANCE",
        "VERSION",
        "LAST SEEN",
        "HELD REV",
        "STREAM",
        "USERS",
    ]);
    let number = |n: Option<u64>| n.map_or_else(|| "-".to_owned(), |n| n.to_string());
    for i in &fleet.instances {
        table.add_row(vec![
            i.instance_id.clone(),
            i.app_version.clone().unwrap_or_else(|| "-".into()),
            tessera_protocol::time::format(&i.last_seen),
            number(i.held_revision),
            if i.stream_connected { "open" } else { "closed" }.into(),
            number(i.users.map(u64::from)),
        ]);
    }
    println!("{table}");
    if fleet.offset > 0 || fleet.next_offset.is_some() {
        let shown = u64::try_from(fleet.instances.len()).unwrap_or(0);
        println!(
            "Installations {}–{} of {} ({} active).{}",
            fleet.offset + 1,
            fleet.offset + shown,
            s.total,
            s.active,
            fleet
                .next_offset
                .map_or_else(String::new, |n| format!(" Next page: --offset {n}"))
        );
    }
}
