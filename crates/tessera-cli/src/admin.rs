//! Admin commands: a thin HTTP client for `/v1/admin/…`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tessera_protocol::wire::{
    ErrorBody, EventView, ExportRequest, ExtendRequest, IssueLicenseRequest, IssuedLicense,
    KeysResponse, LicenseExport, LicenseView, Page, PolicyInput, PolicyView, ReasonRequest,
    RenewalBasis,
};

use crate::Connection;
use crate::output;

/// HTTP client for the admin API.
pub struct AdminClient {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
}

/// The authority's `{"error": {code, message}}` (or just its status) as an error.
pub(crate) fn refusal(status: reqwest::StatusCode, body: &[u8]) -> anyhow::Error {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(body) => anyhow::anyhow!(
            "{} ({}, {})",
            body.error.message,
            status.as_u16(),
            body.error.code
        ),
        Err(_) => anyhow::anyhow!("the authority answered {status}"),
    }
}

fn read_key_file(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read admin key file {}", path.display()))?;
    Ok(text.trim().to_owned())
}

impl AdminClient {
    /// A client for `conn`, with the admin key from (in order)
    /// `--admin-key-file`, `TESSERA_ADMIN_KEY`, `<data dir>/admin.key`.
    pub fn new(conn: &Connection) -> anyhow::Result<Self> {
        let key = if let Some(path) = &conn.admin_key_file {
            Some(read_key_file(path)?)
        } else if let Ok(key) = std::env::var("TESSERA_ADMIN_KEY") {
            Some(key.trim().to_owned())
        } else {
            let path = conn.data_dir.join("admin.key");
            path.exists().then(|| read_key_file(&path)).transpose()?
        };
        Self::with_key(&conn.server, key)
    }

    /// A client with an explicit key (or none, for public routes).
    pub fn with_key(server: &str, key: Option<String>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .user_agent(concat!("tessera-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Self {
            http,
            base: server.trim_end_matches('/').to_owned(),
            key,
        })
    }

    fn key(&self) -> anyhow::Result<&str> {
        self.key.as_deref().context(
            "no admin key: set TESSERA_ADMIN_KEY, pass --admin-key-file, \
             or run next to the server's data directory (tessera-data/admin.key)",
        )
    }

    /// Send, repeating a request the authority answered `503` with
    /// `Retry-After` (it says nothing was changed, e.g. its database
    /// connection dropped mid-transaction): up to 3 tries, waits capped at 5 s.
    async fn send_retrying(
        &self,
        req: reqwest::RequestBuilder,
    ) -> anyhow::Result<reqwest::Response> {
        const TRIES: usize = 3;
        let mut req = req;
        let mut attempt = 1;
        loop {
            let again = req.try_clone();
            let response = req
                .send()
                .await
                .with_context(|| format!("cannot reach the authority at {}", self.base))?;
            let wait = (response.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE)
                .then(|| response.headers().get(reqwest::header::RETRY_AFTER))
                .flatten()
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            match (wait, again) {
                (Some(secs), Some(next)) if attempt < TRIES => {
                    eprintln!("the authority asked to retry in {secs} s; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(secs.min(5))).await;
                    req = next;
                    attempt += 1;
                }
                _ => return Ok(response),
            }
        }
    }

    async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> anyhow::Result<T> {
        let response = self.send_retrying(req).await?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .context("reading the authority's answer")?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .with_context(|| format!("unexpected answer from the authority ({status})"));
        }
        Err(refusal(status, &bytes))
    }

    /// GET an admin route.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<T> {
        let req = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(self.key()?)
            .query(query);
        self.send(req).await
    }

    /// POST JSON to an admin route.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(self.key()?)
            .json(body);
        self.send(req).await
    }

    /// DELETE an admin route (an empty answer).
    pub async fn delete(&self, path: &str) -> anyhow::Result<()> {
        let response = self
            .send_retrying(
                self.http
                    .delete(format!("{}{path}", self.base))
                    .bearer_auth(self.key()?),
            )
            .await?;
        if response.status().is_success() {
            return Ok(());
        }
        let status = response.status();
        let bytes = response.bytes().await.unwrap_or_default();
        Err(refusal(status, &bytes))
    }

    /// GET a public route.
    pub async fn get_public<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }
}

pub(crate) fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

// ----- license ---------------------------------------------------------------

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
    /// Show the installations using a license, most recently seen first, a
    /// page at a time.
    Instances(InstancesArgs),
    /// Show metering: seats in use against the limit, and daily maxima.
    Usage(UsageArgs),
}

#[derive(Debug, Args)]
pub struct UsageArgs {
    /// License id (lic_…).
    id: String,
    /// Days of daily maxima to show.
    #[arg(long, default_value_t = 30)]
    days: u32,
    #[command(flatten)]
    conn: Connection,
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
    /// Features, comma-separated (default: the policy's).
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
    /// Policy name (default: the built-in "default").
    #[arg(long, env = "TESSERA_POLICY")]
    policy: Option<String>,
    #[command(flatten)]
    conn: Connection,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    /// License id (lic_…).
    id: String,
    #[command(flatten)]
    conn: Connection,
}

#[derive(Debug, Args)]
pub struct InstancesArgs {
    /// License id (lic_…).
    id: String,
    /// Installations per page (the server caps it at its page size).
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Installations to skip (the previous page's "next" offset).
    #[arg(long, default_value_t = 0)]
    offset: u64,
    #[command(flatten)]
    conn: Connection,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this customer's licenses.
    #[arg(long, env = "TESSERA_CUSTOMER")]
    customer: Option<String>,
    /// Only licenses in this state: active, suspended, revoked.
    #[arg(long)]
    state: Option<String>,
    /// Only licenses expiring within this duration from now (e.g. 30d).
    #[arg(long)]
    expiring_within: Option<String>,
    /// Most licenses to show.
    #[arg(long, default_value_t = 100)]
    limit: u32,
    #[command(flatten)]
    conn: Connection,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("target").required(true).args(["to", "by"]))]
pub struct ExtendArgs {
    /// License id (lic_…).
    id: String,
    /// New expiry: a date (2027-01-01) or RFC 3339 time.
    #[arg(long)]
    to: Option<String>,
    /// Extension: 30d, 1y… counted from the expiry or from now, as the policy says.
    #[arg(long)]
    by: Option<String>,
    #[command(flatten)]
    conn: Connection,
}

#[derive(Debug, Args)]
pub struct ReasonArgs {
    /// License id (lic_…).
    id: String,
    /// Why, for the audit log.
    #[arg(long)]
    reason: Option<String>,
    #[command(flatten)]
    conn: Connection,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// License id (lic_…).
    id: String,
    /// Why, for the audit log.
    #[arg(long)]
    reason: Option<String>,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    yes: bool,
    #[command(flatten)]
    conn: Connection,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// License id (lic_…).
    id: String,
    /// How long the document stays trustworthy offline (e.g. 365d).
    #[arg(long, default_value = "365d")]
    ttl: String,
    /// Write to this file instead of standard output.
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
    #[command(flatten)]
    conn: Connection,
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
            l.features.join(", ")
        }
    );
    println!(
        "Users     {}",
        l.max_users
            .map_or_else(|| "unlimited".to_owned(), |n| n.to_string())
    );
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

pub async fn license(cmd: LicenseCommand) -> anyhow::Result<()> {
    match cmd {
        LicenseCommand::Issue(a) => {
            let client = AdminClient::new(&a.conn)?;
            let req = IssueLicenseRequest {
                customer: a.customer,
                customer_email: a.email,
                plan: a.plan,
                policy: a.policy,
                features: a.features.as_deref().map(split_list),
                max_users: a.max_users,
                trial: a.trial.then_some(true),
                expires_at: a.expires,
                duration: a.duration,
                perpetual: a.perpetual,
                auto_renew: a.auto_renew.then_some(true),
            };
            let issued: IssuedLicense = client.post("/v1/admin/licenses", &req).await?;
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
        LicenseCommand::Show(a) => {
            let client = AdminClient::new(&a.conn)?;
            let l: LicenseView = client
                .get(&format!("/v1/admin/licenses/{}", a.id), &[])
                .await?;
            if a.conn.json {
                return output::json(&l);
            }
            print_license(&l);
            Ok(())
        }
        LicenseCommand::List(a) => {
            let client = AdminClient::new(&a.conn)?;
            let mut query = vec![("limit", a.limit.to_string())];
            if let Some(c) = a.customer {
                query.push(("customer", c));
            }
            if let Some(s) = a.state {
                query.push(("state", s));
            }
            if let Some(e) = a.expiring_within {
                query.push(("expiring_within", e));
            }
            let page: Page<LicenseView> = client.get("/v1/admin/licenses", &query).await?;
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
        LicenseCommand::Extend(a) => {
            let client = AdminClient::new(&a.conn)?;
            let req = ExtendRequest { to: a.to, by: a.by };
            let l: LicenseView = client
                .post(&format!("/v1/admin/licenses/{}/extend", a.id), &req)
                .await?;
            if a.conn.json {
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
            state_change(a.conn, &a.id, "suspend", a.reason, "Suspended").await
        }
        LicenseCommand::Reinstate(a) => {
            state_change(a.conn, &a.id, "reinstate", a.reason, "Reinstated").await
        }
        LicenseCommand::Revoke(a) => {
            if !a.yes {
                if !std::io::stdin().is_terminal() {
                    bail!("revoking is final; pass --yes to confirm");
                }
                if !confirm(&format!(
                    "Revoke {}? Every installation loses it at once; this cannot be undone.",
                    a.id
                ))? {
                    bail!("not revoked");
                }
            }
            state_change(a.conn, &a.id, "revoke", a.reason, "Revoked").await
        }
        LicenseCommand::Export(a) => {
            let client = AdminClient::new(&a.conn)?;
            let export: LicenseExport = client
                .post(
                    &format!("/v1/admin/licenses/{}/export", a.id),
                    &ExportRequest { ttl: a.ttl },
                )
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
        LicenseCommand::Instances(a) => {
            let client = AdminClient::new(&a.conn)?;
            let fleet: serde_json::Value = client
                .get(
                    &format!("/v1/admin/licenses/{}/instances", a.id),
                    &[
                        ("limit", a.limit.to_string()),
                        ("offset", a.offset.to_string()),
                    ],
                )
                .await?;
            if a.conn.json {
                return output::json(&fleet);
            }
            print_fleet(&fleet);
            Ok(())
        }
        LicenseCommand::Usage(a) => {
            let client = AdminClient::new(&a.conn)?;
            let usage: tessera_protocol::wire::UsageView = client
                .get(
                    &format!("/v1/admin/licenses/{}/usage", a.id),
                    &[("days", a.days.to_string())],
                )
                .await?;
            if a.conn.json {
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

fn print_fleet(fleet: &serde_json::Value) {
    let empty = Vec::new();
    let instances = fleet["instances"].as_array().unwrap_or(&empty);
    println!(
        "License {} at revision {}: delivered to {} of {} instances.",
        fleet["license"].as_str().unwrap_or("?"),
        fleet["revision"],
        fleet["summary"]["current"],
        fleet["summary"]["total"]
    );
    let summary = &fleet["summary"];
    let as_u32 = |v: &serde_json::Value| v.as_u64().and_then(|n| u32::try_from(n).ok());
    println!(
        "{}",
        seats_line(
            as_u32(&summary["seats_in_use"]),
            as_u32(&summary["max_users"])
        )
    );
    if instances.is_empty() {
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
    for i in instances {
        let text = |v: &serde_json::Value| v.as_str().map_or_else(|| "-".to_owned(), str::to_owned);
        let number =
            |v: &serde_json::Value| v.as_u64().map_or_else(|| "-".to_owned(), |n| n.to_string());
        table.add_row(vec![
            text(&i["instance_id"]),
            text(&i["app_version"]),
            text(&i["last_seen"]),
            number(&i["held_revision"]),
            if i["stream_connected"].as_bool() == Some(true) {
                "open".into()
            } else {
                "closed".into()
            },
            number(&i["users"]),
        ]);
    }
    println!("{table}");
    let offset = fleet["offset"].as_u64().unwrap_or(0);
    let total = summary["total"].as_u64().unwrap_or(0);
    if offset > 0 || !fleet["next_offset"].is_null() {
        let shown = u64::try_from(instances.len()).unwrap_or(0);
        println!(
            "Installations {}–{} of {total} ({} active).{}",
            offset + 1,
            offset + shown,
            summary["active"],
            fleet["next_offset"]
                .as_u64()
                .map_or_else(String::new, |n| format!(" Next page: --offset {n}"))
        );
    }
}

async fn state_change(
    conn: Connection,
    id: &str,
    action: &str,
    reason: Option<String>,
    done: &str,
) -> anyhow::Result<()> {
    let client = AdminClient::new(&conn)?;
    let l: LicenseView = client
        .post(
            &format!("/v1/admin/licenses/{id}/{action}"),
            &ReasonRequest { reason },
        )
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

// ----- policy ----------------------------------------------------------------

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Create a policy.
    Create(Box<PolicyCreateArgs>),
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
    /// Default features, comma-separated.
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
    #[arg(long, value_parser = ["from_expiry", "from_now"])]
    renewal_basis: Option<String>,
    /// Renew licenses automatically.
    #[arg(long)]
    auto_renew: bool,
    /// Period of each automatic renewal (default: the duration).
    #[arg(long)]
    auto_renew_period: Option<String>,
    /// How long before expiry an automatic renewal happens (default 7d).
    #[arg(long)]
    renew_before: Option<String>,
    #[command(flatten)]
    conn: Connection,
}

pub async fn policy(cmd: PolicyCommand) -> anyhow::Result<()> {
    match cmd {
        PolicyCommand::Create(a) => {
            let client = AdminClient::new(&a.conn)?;
            let input = PolicyInput {
                name: a.name,
                duration: a.duration,
                features: a.features.as_deref().map(split_list).unwrap_or_default(),
                max_users: a.max_users,
                trial: a.trial,
                refresh_interval: a.refresh_interval,
                offline_grace: a.offline_grace,
                renewal_basis: a.renewal_basis.map(|b| {
                    if b == "from_now" {
                        RenewalBasis::FromNow
                    } else {
                        RenewalBasis::FromExpiry
                    }
                }),
                auto_renew: a.auto_renew,
                auto_renew_period: a.auto_renew_period,
                renew_before: a.renew_before,
            };
            let p: PolicyView = client.post("/v1/admin/policies", &input).await?;
            if a.conn.json {
                return output::json(&p);
            }
            println!("Created policy {} ({}).", p.name, p.id);
            Ok(())
        }
        PolicyCommand::List { conn } => {
            let client = AdminClient::new(&conn)?;
            let page: Page<PolicyView> = client.get("/v1/admin/policies", &[]).await?;
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
                    p.renewal_basis.as_str().into(),
                    if p.trial { "yes".into() } else { "no".into() },
                ]);
            }
            println!("{table}");
            Ok(())
        }
    }
}

// ----- events, keys ----------------------------------------------------------

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only this license's events.
    #[arg(long)]
    license: Option<String>,
    /// How many of the newest events.
    #[arg(long, default_value_t = 50)]
    limit: u32,
    #[command(flatten)]
    conn: Connection,
}

pub async fn events(a: EventsArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(&a.conn)?;
    let mut query = vec![("limit", a.limit.to_string())];
    if let Some(l) = a.license {
        query.push(("license", l));
    }
    let page: Page<EventView> = client.get("/v1/admin/events", &query).await?;
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
    Rotate(RotateArgs),
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    /// The authority's data directory (its signing.key is rotated).
    #[arg(long, env = "TESSERA_DATA_DIR", default_value = "tessera-data")]
    data_dir: PathBuf,
    /// Rotate this key file instead (the one replicas share).
    #[arg(long, env = "TESSERA_SIGNING_KEY_FILE")]
    signing_key_file: Option<PathBuf>,
}

pub async fn keys(a: KeysArgs) -> anyhow::Result<()> {
    if let Some(KeysAction::Rotate(r)) = a.action {
        return rotate(&r);
    }
    let client = AdminClient::with_key(&a.conn.server, None)?;
    let keys: KeysResponse = client.get_public("/v1/keys").await?;
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

fn rotate(r: &RotateArgs) -> anyhow::Result<()> {
    // Holding the data directory's lock proves no server runs on it.
    let _lock = tessera_server::datadir::DataDir::open(&r.data_dir)
        .map_err(|e| anyhow::anyhow!("{e}; stop the authority before rotating its key"))?;
    let path = r
        .signing_key_file
        .clone()
        .unwrap_or_else(|| r.data_dir.join("signing.key"));
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
