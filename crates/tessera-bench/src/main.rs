//! `tessera-bench`: measurements that need many connections at once.
//!
//! `propagation`: open N change streams (`/v1/watch`) for one license, make
//! changes through the admin API, and time, for every stream, from the
//! admin API's answer to the stream delivering the new revision. Streams are
//! read as raw HTTP/1.1 (a few KiB each) so that ten thousand of them fit in
//! this process on a small machine; signature verification, which each real
//! instance does on its own machine (≈70 µs), is not part of the figure.
//! Also reports the server's resident memory per open stream. With
//! `--release-machines`, the license must count machines: after the
//! extensions, each further change activates a machine and then releases
//! it through the admin API, timed from the release's answer to the
//! announcement (`event: machines`) on every stream — on the same streams,
//! in the same run.
//!
//! `fanout-baseline`: the bare-TCP floor for the same fan-out, see
//! `fanout.rs`. `consumption`: consumption reports from many instances of one license
//! (docs/PROTOCOL.md §22), see `consumption.rs`. `http-floor`: the HTTP
//! floor for validations, see `floor.rs`.

mod clients;
mod consumption;
mod fanout;
mod floor;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc};

#[derive(Debug, Parser)]
#[command(name = "tessera-bench", about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Propagation latency from the admin API's answer to every watcher.
    Propagation(PropagationArgs),
    /// Consumption reports from many instances, each reporting once.
    Consumption(consumption::ConsumptionArgs),
    /// The Rust SDK as bench/clients.sh measures the native clients:
    /// has_feature, verification, propagation to N clients.
    Sdk(clients::SdkArgs),
    /// The machine's floor for the same fan-out: a bare TCP server (no HTTP,
    /// no signing, no database) writing one 1 KiB frame to N sockets, each
    /// from its own task woken by one channel, read by N client tasks — the
    /// shape of `/v1/watch`, minus everything Tessera adds.
    FanoutBaseline {
        /// Number of sockets.
        #[arg(long, default_value_t = 10_000)]
        watchers: usize,
        /// Number of frames.
        #[arg(long, default_value_t = 5)]
        changes: usize,
    },
    /// The HTTP floor for validations: a server on the authority's HTTP
    /// stack that only reads the JSON body and sends an answer as long as
    /// a real one (and `/healthz`). Prints its address; runs until killed.
    HttpFloor(floor::FloorArgs),
    /// The baseline's server half (a separate process, as the authority is):
    /// prints its port, writes frame N to every socket when N arrives on stdin.
    #[command(hide = true)]
    FanoutServer,
}

#[derive(Debug, clap::Args)]
struct PropagationArgs {
    /// Authority URL to watch (http://host:port).
    #[arg(long)]
    watch_url: String,
    /// Authority URL to make changes through (another replica, or the same).
    #[arg(long)]
    admin_url: String,
    /// Admin key.
    #[arg(long, env = "TESSERA_ADMIN_KEY")]
    admin_key: String,
    /// License id to change.
    #[arg(long)]
    license: String,
    /// Its token (the streams' credential).
    #[arg(long, env = "TESSERA_TOKEN")]
    token: String,
    /// Number of streams.
    #[arg(long, default_value_t = 1000)]
    watchers: usize,
    /// Number of changes.
    #[arg(long, default_value_t = 5)]
    changes: usize,
    /// Server process id, for its memory (VmRSS) before and after the streams open.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Then as many machine releases (the license must count machines).
    #[arg(long)]
    release_machines: bool,
    /// Spread the streams over this many loopback source addresses
    /// (127.1.0.1, 127.1.0.2, …): one source address has at most ~28,000
    /// ports towards one server port. 0: the system's choice (127.0.0.1).
    #[arg(long, default_value_t = 0)]
    sources: u32,
    /// Then measure the server's CPU over this many seconds with every
    /// stream open and nothing changing (only keep-alives), with
    /// `--server-pid`.
    #[arg(long, default_value_t = 0)]
    idle_seconds: u64,
}

/// The `i`th of `sources` loopback source addresses, 127.1.0.1 onwards.
fn source_address(i: usize, sources: u32) -> Option<std::net::SocketAddr> {
    if sources == 0 {
        return None;
    }
    let k = u32::try_from(i).unwrap_or(u32::MAX) % sources;
    let [_, b, c, d] = (k + 1).to_be_bytes();
    Some(std::net::SocketAddr::from(([127, 1 + b, c, d], 0)))
}

/// The server's CPU time (user + system) in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command's closing parenthesis: utime and stime are
    // the 12th and 13th there.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// One stream: reports (revision, arrival) for every `id:` line it reads.
async fn watcher(
    addr: String,
    from: Option<std::net::SocketAddr>,
    host: String,
    token: String,
    tx: mpsc::UnboundedSender<(u64, Instant)>,
    ready: Arc<Semaphore>,
    connecting: tokio::sync::OwnedSemaphorePermit,
) -> anyhow::Result<()> {
    let mut connecting = Some(connecting);
    let mut sock = match from {
        None => TcpStream::connect(&addr).await?,
        Some(from) => {
            let to = tokio::net::lookup_host(&addr)
                .await?
                .next()
                .context("no address")?;
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(from)?;
            socket.connect(to).await?
        }
    };
    sock.set_nodelay(true)?;
    let request = format!(
        "GET /v1/watch HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    );
    sock.write_all(request.as_bytes()).await?;
    let mut buf = vec![0u8; 4096];
    let mut pending = Vec::new();
    let mut first = true;
    loop {
        let n = sock.read(&mut buf).await?;
        if n == 0 {
            bail!("stream closed");
        }
        let now = Instant::now();
        pending.extend_from_slice(&buf[..n]);
        if first && !pending.starts_with(b"HTTP/1.1 200") && pending.len() >= 12 {
            bail!(
                "watch refused: {}",
                String::from_utf8_lossy(&pending[..pending.len().min(200)])
            );
        }
        // Find complete "id: <n>\n" lines; keep an unfinished tail.
        let mut consumed = 0;
        let mut i = 0;
        while let Some(pos) = find(&pending[i..], b"\nid: ") {
            let start = i + pos + 5;
            let Some(end) = pending[start..].iter().position(|&c| c == b'\n') else {
                break;
            };
            if let Ok(rev) = std::str::from_utf8(&pending[start..start + end])
                .unwrap_or("")
                .trim()
                .parse::<u64>()
            {
                if first {
                    first = false;
                    ready.add_permits(1);
                    // Connected: let the next stream open.
                    connecting.take();
                }
                let _ = tx.send((rev, now));
            }
            i = start + end;
            consumed = i;
        }
        if consumed > 0 {
            pending.drain(..consumed);
        } else if pending.len() > 64 * 1024 {
            pending.drain(..pending.len() - 16);
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn propagation(a: PropagationArgs) -> anyhow::Result<()> {
    let url = a.watch_url.trim_end_matches('/');
    let host = url.trim_start_matches("http://").to_owned();
    let rss_before = a.server_pid.and_then(rss_kib);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let ready = Arc::new(Semaphore::new(0));
    let connecting = Arc::new(Semaphore::new(200));
    let started = Instant::now();
    let sources = a.sources;
    for i in 0..a.watchers {
        let permit = connecting.clone().acquire_owned().await?;
        let (addr, host, token, tx, ready) = (
            host.clone(),
            host.clone(),
            a.token.clone(),
            tx.clone(),
            ready.clone(),
        );
        tokio::spawn(async move {
            let from = source_address(i, sources);
            let result = watcher(addr, from, host, token, tx, ready, permit).await;
            if let Err(e) = result {
                eprintln!("watcher {i}: {e:#}");
            }
        });
        if i % 1000 == 999 {
            eprintln!("{} streams requested", i + 1);
        }
    }
    drop(tx);
    let all = u32::try_from(a.watchers).context("too many watchers")?;
    tokio::time::timeout(Duration::from_secs(300), ready.acquire_many(all))
        .await
        .context("not every stream got its first event within 300 s")??
        .forget();
    eprintln!(
        "{} streams open in {:.1} s",
        a.watchers,
        started.elapsed().as_secs_f64()
    );
    // Let the server settle (instance writes, allocator) before reading memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = a.server_pid.and_then(rss_kib);
    while rx.try_recv().is_ok() {}

    let http = reqwest::Client::new();
    let admin = |path: String| format!("{}{path}", a.admin_url.trim_end_matches('/'));
    let mut timed = Timed::new(a.watchers);
    for change in 0..a.changes {
        let res = http
            .post(admin(format!("/v1/admin/licenses/{}/extend", a.license)))
            .bearer_auth(&a.admin_key)
            .json(&serde_json::json!({"by": "1d"}))
            .send()
            .await?;
        let answered = Instant::now();
        let body = ok_json(res, "extend").await?;
        let revision = body["revision"]
            .as_u64()
            .context("revision in the answer")?;
        timed.collect(&mut rx, change, revision, answered).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("-- license changes (event: status/machines, a new signed document)");
    report(
        a.watchers,
        a.changes,
        timed.samples,
        Some(timed.before_answer),
    );
    if a.release_machines {
        let mut released = Timed::new(a.watchers);
        let revision = license_revision(&http, &admin, &a).await?;
        for change in 0..a.changes {
            // Take a place (its announcement reaches every stream first)…
            let res = http
                .post(admin("/v1/machines/activate".into()))
                .json(&serde_json::json!({"token": a.token, "fingerprint": format!("bench-release-{change}")}))
                .send()
                .await?;
            let activated = Instant::now();
            let body = ok_json(res, "activate").await?;
            if body["verdict"]["status"] != "active" {
                bail!("activation refused: {body}");
            }
            let mut ignored = Timed::new(a.watchers);
            ignored
                .collect(&mut rx, change, revision, activated)
                .await?;
            let machine = machine_id(&http, &admin, &a).await?;
            // …then free it, timed.
            let res = http
                .delete(admin(format!(
                    "/v1/admin/licenses/{}/machines/{machine}",
                    a.license
                )))
                .bearer_auth(&a.admin_key)
                .send()
                .await?;
            let answered = Instant::now();
            ok_json(res, "release").await?;
            released
                .collect(&mut rx, change, revision, answered)
                .await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        println!("-- machine releases (event: machines, announcement)");
        report(
            a.watchers,
            a.changes,
            released.samples,
            Some(released.before_answer),
        );
    }
    if let Some(pid) = a.server_pid.filter(|_| a.idle_seconds > 0) {
        let before = cpu_ticks(pid).context("the server's CPU time")?;
        tokio::time::sleep(Duration::from_secs(a.idle_seconds)).await;
        let after = cpu_ticks(pid).context("the server's CPU time")?;
        // SAFETY: sysconf reads a constant.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let cpu = (after - before) as f64 / hz;
        println!(
            "idle cpu        {:.2} s of CPU over {} s with {} streams open = {:.1} % of one core",
            cpu,
            a.idle_seconds,
            a.watchers,
            100.0 * cpu / a.idle_seconds as f64
        );
    }
    if let (Some(b), Some(after)) = (rss_before, rss_after) {
        let per = (after.saturating_sub(b) as f64 * 1024.0) / a.watchers as f64;
        println!("server rss      {b} KiB before, {after} KiB with the streams open");
        println!("per watcher     {:.1} KiB", per / 1024.0);
    }
    Ok(())
}

/// Arrival times on every stream, from the answer of the change that
/// caused them.
struct Timed {
    watchers: usize,
    samples: Vec<Duration>,
    before_answer: usize,
}

impl Timed {
    fn new(watchers: usize) -> Self {
        Self {
            watchers,
            samples: Vec::new(),
            before_answer: 0,
        }
    }

    /// Wait for every stream's frame of `revision` (announcements repeat
    /// the revision: each stream's next frame).
    async fn collect(
        &mut self,
        rx: &mut mpsc::UnboundedReceiver<(u64, Instant)>,
        change: usize,
        revision: u64,
        answered: Instant,
    ) -> anyhow::Result<()> {
        let mut got = 0;
        let deadline = answered + Duration::from_secs(60);
        while got < self.watchers {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some((rev, at)) = tokio::time::timeout(left, rx.recv()).await.ok().flatten() else {
                bail!(
                    "change {change}: only {got} of {} streams saw revision {revision}",
                    self.watchers
                );
            };
            if rev != revision {
                continue;
            }
            got += 1;
            if at < answered {
                self.before_answer += 1;
            }
            self.samples.push(at.saturating_duration_since(answered));
        }
        Ok(())
    }
}

async fn ok_json(res: reqwest::Response, what: &str) -> anyhow::Result<serde_json::Value> {
    let status = res.status();
    let body: serde_json::Value = res.json().await?;
    if !status.is_success() {
        bail!("{what} failed: {status} {body}");
    }
    Ok(body)
}

async fn license_revision(
    http: &reqwest::Client,
    admin: &impl Fn(String) -> String,
    a: &PropagationArgs,
) -> anyhow::Result<u64> {
    let res = http
        .get(admin(format!("/v1/admin/licenses/{}", a.license)))
        .bearer_auth(&a.admin_key)
        .send()
        .await?;
    ok_json(res, "license read").await?["revision"]
        .as_u64()
        .context("revision of the license")
}

/// The id of the one active machine of the license.
async fn machine_id(
    http: &reqwest::Client,
    admin: &impl Fn(String) -> String,
    a: &PropagationArgs,
) -> anyhow::Result<String> {
    let res = http
        .get(admin(format!("/v1/admin/licenses/{}/machines", a.license)))
        .bearer_auth(&a.admin_key)
        .send()
        .await?;
    let list = ok_json(res, "machine list").await?;
    list["items"][0]["id"]
        .as_str()
        .map(str::to_owned)
        .context("an active machine")
}

fn report(
    watchers: usize,
    changes: usize,
    mut samples: Vec<Duration>,
    before_answer: Option<usize>,
) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("watchers        {watchers}");
    println!("changes         {changes}");
    println!("samples         {}", samples.len());
    println!("p50             {:.2} ms", ms(percentile(&samples, 50.0)));
    println!("p99             {:.2} ms", ms(percentile(&samples, 99.0)));
    println!(
        "max             {:.2} ms",
        ms(*samples.last().unwrap_or(&Duration::ZERO))
    );
    if let Some(n) = before_answer {
        println!(
            "before answer   {n} (delivered before the admin API's answer arrived; counted as 0 ms)"
        );
    }
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Propagation(a) => tokio::runtime::Runtime::new()?.block_on(propagation(a)),
        Command::Consumption(a) => tokio::runtime::Runtime::new()?.block_on(consumption::run(a)),
        Command::Sdk(a) => tokio::runtime::Runtime::new()?.block_on(clients::run(a)),
        Command::FanoutBaseline { watchers, changes } => fanout::fanout_baseline(watchers, changes),
        Command::FanoutServer => fanout::fanout_server(),
        Command::HttpFloor(a) => tokio::runtime::Runtime::new()?.block_on(floor::run(a)),
    }
}
