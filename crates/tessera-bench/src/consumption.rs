//! `consumption`: N instances of one license each send one consumption
//! report (`POST /v1/consumption`, docs/PROTOCOL.md §22), `concurrency` at
//! a time; reports per second from the first request to the last answer,
//! then the authority's total checked against what was sent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::sync::Semaphore;

#[derive(Debug, clap::Args)]
pub struct ConsumptionArgs {
    /// Authority URL (http://host:port).
    #[arg(long)]
    url: String,
    /// Admin key (to read the total afterwards).
    #[arg(long, env = "TESSERA_ADMIN_KEY")]
    admin_key: String,
    /// License id.
    #[arg(long)]
    license: String,
    /// Its token.
    #[arg(long, env = "TESSERA_TOKEN")]
    token: String,
    /// The metered feature reported.
    #[arg(long, default_value = "api_calls")]
    feature: String,
    /// Instances, each reporting once.
    #[arg(long, default_value_t = 10_000)]
    instances: usize,
    /// Reports in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
}

pub async fn run(a: ConsumptionArgs) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(a.concurrency)
        .build()?;
    let gate = Arc::new(Semaphore::new(a.concurrency));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(a.instances);
    for i in 0..a.instances {
        let permit = gate.clone().acquire_owned().await?;
        let (http, url) = (http.clone(), format!("{}/v1/consumption", a.url));
        let body = serde_json::json!({
            "token": a.token, "instance_id": format!("bench-{i}"), "seq": 1,
            "amounts": {a.feature.clone(): 1 + (i % 7)},
        });
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let res = http.post(url).json(&body).send().await;
            drop(permit);
            let status = res.map(|r| r.status().as_u16()).unwrap_or(0);
            (status, t.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(a.instances);
    for t in tasks {
        let (status, took) = t.await?;
        if status != 200 {
            bail!("a report was answered {status}");
        }
        latencies.push(took);
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let sent: usize = (0..a.instances).map(|i| 1 + (i % 7)).sum();
    let view: serde_json::Value = http
        .get(format!(
            "{}/v1/admin/licenses/{}/quotas/{}",
            a.url, a.license, a.feature
        ))
        .bearer_auth(&a.admin_key)
        .send()
        .await?
        .json()
        .await
        .context("the quota view")?;
    let counted = view["quota"]["used"].as_u64().unwrap_or(0);
    let rate = a.instances as f64 / elapsed.as_secs_f64();
    println!(
        "{} instances, one report each, {} in flight: {:.2} s, {rate:.0} reports/s, p50 {:?}, p99 {:?}",
        a.instances,
        a.concurrency,
        elapsed.as_secs_f64(),
        pct(&latencies, 0.50),
        pct(&latencies, 0.99),
    );
    println!("amount sent {sent}, counted by the authority {counted}");
    if counted != sent as u64 {
        bail!("the authority counted {counted}, {sent} were sent");
    }
    Ok(())
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}
