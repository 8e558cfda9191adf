//! `tessera-bench sdk`: the Rust SDK measured the way `bench/clients.sh`
//! measures the native clients, so the figures sit side by side: a
//! `has_feature` loop (median of batches), verification of the authority's
//! document (median of batches), and the propagation of an extension to N
//! SDK clients of one license — from the admin API's answer to each
//! client's published verdict carrying the new revision (deliveries that
//! beat the answer count as 0 ms).

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tessera_client::Client;
use tessera_protocol::{Expectations, LicenseToken, TrustedKeys};

#[derive(Debug, clap::Args)]
pub struct SdkArgs {
    /// Authority URL.
    #[arg(long)]
    url: String,
    /// The authority's public key (k4.public…).
    #[arg(long)]
    public_key: String,
    /// Admin key.
    #[arg(long, env = "TESSERA_ADMIN_KEY")]
    admin_key: String,
    /// License id to extend.
    #[arg(long)]
    license: String,
    /// Its token.
    #[arg(long, env = "TESSERA_TOKEN")]
    token: String,
    /// Number of clients.
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// Number of extensions.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

/// The median of `batches` runs of `per_batch` calls, in ns per call.
fn median_ns(batches: usize, per_batch: u32, mut f: impl FnMut()) -> f64 {
    let mut each: Vec<f64> = (0..batches)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_batch {
                f();
            }
            t.elapsed().as_secs_f64() * 1e9 / f64::from(per_batch)
        })
        .collect();
    each.sort_by(f64::total_cmp);
    each[each.len() / 2]
}

pub async fn run(a: SdkArgs) -> anyhow::Result<()> {
    let mut clients = Vec::with_capacity(a.clients);
    for _ in 0..a.clients {
        let c = Client::builder()
            .server(a.url.as_str())
            .pin(&a.public_key)?
            .token(a.token.as_str())
            .start()?;
        clients.push(c);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while !clients
        .iter()
        .all(|c| c.verdict().state.is_verified() && c.verdict().connected)
    {
        if Instant::now() > deadline {
            bail!("not every client was valid with its stream open within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // In-process paths, measured on the first client.
    let first = &clients[0];
    let has_feature = median_ns(21, 1_000_000, || {
        black_box(first.has_feature(black_box("sso")));
    });
    let doc = first.document().context("the held document")?;
    let mut keys = TrustedKeys::default();
    keys.pin(&a.public_key)?;
    let token = LicenseToken::parse(&a.token)?;
    let expect = Expectations::for_token(token.fingerprint());
    let now = chrono::Utc::now();
    let verify_ns = median_ns(21, 200, || {
        black_box(tessera_protocol::verify(doc.as_bytes(), &keys, &expect, now).is_ok());
    });

    let http = reqwest::Client::new();
    let mut receivers: Vec<_> = clients.iter().map(Client::subscribe).collect();
    let mut samples = Vec::with_capacity(a.clients * a.rounds);
    for _ in 0..a.rounds {
        let res = http
            .post(format!(
                "{}/v1/admin/licenses/{}/extend",
                a.url.trim_end_matches('/'),
                a.license
            ))
            .bearer_auth(&a.admin_key)
            .json(&serde_json::json!({"by": "1d"}))
            .send()
            .await?;
        let answered = Instant::now();
        let body: serde_json::Value = res.error_for_status()?.json().await?;
        let revision = body["revision"].as_u64().context("revision")?;
        let arrivals = receivers.iter_mut().map(|rx| async move {
            let seen = rx.wait_for(|v| v.license.as_ref().is_some_and(|l| l.revision >= revision));
            tokio::time::timeout(Duration::from_secs(10), seen)
                .await
                .ok()?
                .ok()?;
            Some(Instant::now())
        });
        for arrival in futures_util::future::join_all(arrivals).await {
            let at = arrival.context("a client missed the revision within 10 s")?;
            samples.push(at.saturating_duration_since(answered).as_secs_f64() * 1e3);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    samples.sort_by(f64::total_cmp);
    let q = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
    println!(
        "RESULT language=rust has_feature_ns={has_feature:.2} verify_us={:.1} clients={} rounds={} p50_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        verify_ns / 1e3,
        a.clients,
        a.rounds,
        q(0.5),
        q(0.99),
        samples[samples.len() - 1]
    );
    for c in &clients {
        c.shutdown();
    }
    Ok(())
}
