//! `tessera license import FILE` and `tessera license export-all`
//! (docs/PROTOCOL.md §30).
//!
//! An import reads the file twice, a line at a time (constant memory but
//! for one 16-byte hash per key, to find duplicates): first every row is
//! checked — here (encoding, shape, duplicate keys) and by the authority in
//! dry-run batches (products, policies, dates, keys already taken) — then,
//! unless a row is bad (or `--skip-invalid`), the rows are sent in batches,
//! each written in one transaction with the import's progress. The import
//! is named by the file's hash, so a rerun after a crash resumes after the
//! last committed batch: no duplicates, nothing half-imported.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use sha2::{Digest, Sha256};
use tessera_protocol::LicenseToken;
use tessera_protocol::wire::{ExportedLicense, ImportBatch, ImportProgress, ImportRow, Page};

use crate::Connection;
use crate::client::AdminClient;

mod rows;

pub use rows::Format;
use rows::Rows;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file: CSV or JSON lines of licenses (columns/fields: key,
    /// customer, customer_email, product, policy, plan, features,
    /// valid_from, expires_at, max_users, max_machines, state, metadata),
    /// or Keygen's license export. A row's `key` keeps an existing license
    /// key as it is; rows without one get a new tsr_ token (--keys-out).
    file: PathBuf,
    /// The file's format (default: from its extension, .csv, .jsonl or
    /// .json for Keygen).
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Check every row and print each bad one's line and reason; import
    /// nothing.
    #[arg(long)]
    dry_run: bool,
    /// Import the good rows and leave out the bad ones (listed). Without
    /// it, one bad row imports nothing.
    #[arg(long)]
    skip_invalid: bool,
    /// Where the tokens made for rows without a key are written (JSON
    /// lines: row, customer, key), before each batch is sent; a rerun
    /// reuses them.
    #[arg(long, value_name = "FILE")]
    keys_out: Option<PathBuf>,
    /// Product of rows that name none.
    #[arg(long)]
    product: Option<String>,
    /// Policy of rows that name none.
    #[arg(long)]
    policy: Option<String>,
    /// Plan of Keygen licenses (their metadata's "plan" wins).
    #[arg(long, default_value = "keygen")]
    plan: String,
    /// Rows per batch (one transaction each; a batch is also cut at 24 MiB
    /// of JSON, under the authority's 32 MiB limit for one request).
    /// Bigger batches write faster: each commit writes every index page
    /// its rows touched, and with random keys that is a page per row until
    /// the batch covers the index (a million rows: 5,000 a batch ran at
    /// 16,000 rows/s, 50,000 at 30,000).
    #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    batch: u64,
    #[command(flatten)]
    conn: Connection,
}

#[derive(Debug, Args)]
pub struct ExportAllArgs {
    /// Output format (JSON lines: one license per line, as import reads it).
    #[arg(long, value_parser = ["jsonl"], default_value = "jsonl")]
    format: String,
    /// Write here (default: standard output).
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
    #[command(flatten)]
    conn: Connection,
}

fn format_of(args: &ImportArgs) -> anyhow::Result<Format> {
    if let Some(f) = args.format {
        return Ok(f);
    }
    match args.file.extension().and_then(|e| e.to_str()) {
        Some("csv") => Ok(Format::Csv),
        Some("jsonl" | "ndjson") => Ok(Format::Jsonl),
        Some("json") => Ok(Format::Keygen),
        _ => bail!(
            "cannot tell the format of {} from its name: give --format csv|jsonl|keygen",
            args.file.display()
        ),
    }
}

/// The import's id: the file's SHA-256 with the defaults applied to it.
fn import_id(args: &ImportArgs) -> anyhow::Result<String> {
    let mut file = std::fs::File::open(&args.file)
        .with_context(|| format!("cannot open {}", args.file.display()))?;
    let mut hash = Sha256::new();
    std::io::copy(&mut file, &mut hash)?;
    for default in [&args.product, &args.policy] {
        hash.update([0]);
        hash.update(default.as_deref().unwrap_or_default());
    }
    hash.update(args.plan.as_bytes());
    Ok(hex::encode(&hash.finalize()[..16]))
}

/// A progress line on a terminal: rows done, of how many, rows/s.
struct Progress {
    started: Instant,
    total: u64,
    shown: bool,
    what: &'static str,
}

impl Progress {
    fn new(what: &'static str, total: u64) -> Self {
        Self {
            started: Instant::now(),
            total,
            shown: std::io::stderr().is_terminal(),
            what,
        }
    }

    fn rate(&self, done: u64) -> f64 {
        done as f64 / self.started.elapsed().as_secs_f64().max(1e-3)
    }

    fn update(&self, done: u64) {
        if self.shown {
            if self.total == 0 {
                eprint!(
                    "\r{} {done} rows  {:.0} rows/s ",
                    self.what,
                    self.rate(done)
                );
                return;
            }
            let width = 30usize;
            let filled = (done * width as u64 / self.total.max(1)) as usize;
            eprint!(
                "\r{} [{}{}] {done}/{} rows  {:.0} rows/s ",
                self.what,
                "#".repeat(filled.min(width)),
                " ".repeat(width - filled.min(width)),
                self.total,
                self.rate(done)
            );
        }
    }

    fn finish(&self) {
        if self.shown {
            eprintln!();
        }
    }
}

pub async fn import(args: ImportArgs) -> anyhow::Result<()> {
    let format = format_of(&args)?;
    let client = AdminClient::new(&args.conn)?;
    let id = import_id(&args)?;
    let state: ImportProgress = client.get(&format!("/v1/admin/imports/{id}"), &()).await?;
    // Pass 1: every row not yet imported checked, nothing written.
    let mut bad: HashMap<u64, String> = HashMap::new();
    let mut seen: HashMap<[u8; 16], u64> = HashMap::new();
    let mut keyless = 0u64;
    // No total yet: counting the rows first would read the file once more.
    let check = Progress::new("checking", 0);
    let mut checked = 0u64;
    let mut total = 0u64;
    let mut rows = Rows::open(&args.file, format, &args)?;
    let mut batch = Batch::default();
    // Checking writes nothing, so two batches may be at the authority at
    // once (one per core there) while the next is read here.
    let mut in_flight: tokio::task::JoinSet<anyhow::Result<(u64, ImportProgress)>> =
        tokio::task::JoinSet::new();
    let checked_batch =
        |(n, answer): (u64, ImportProgress), checked: &mut u64, bad: &mut HashMap<u64, String>| {
            for e in answer.errors {
                bad.entry(e.row).or_insert(e.reason);
            }
            *checked += n;
            check.update(*checked);
        };
    loop {
        let read = rows.next()?;
        let end = read.is_none();
        total += u64::from(!end);
        match read {
            None => {}
            Some(Err((row, reason))) => {
                bad.insert(row, reason);
            }
            // Imported by an earlier run of this import: its key is taken.
            Some(Ok(row)) if row.row < state.next_row => {}
            Some(Ok(mut row)) => match row.key.as_deref().map(str::trim) {
                Some(key) => {
                    let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
                    let mut short = [0u8; 16];
                    short.copy_from_slice(&digest[..16]);
                    match seen.insert(short, row.row) {
                        Some(first) => {
                            bad.insert(row.row, format!("the same key as line {first}"));
                        }
                        None => batch.push(row),
                    }
                }
                None => {
                    if row.key_sha256.is_none() {
                        keyless += 1;
                        // Checked with a token like the one it will get.
                        row.key = Some(
                            LicenseToken::generate(&mut rand::rng())
                                .expose_secret()
                                .to_owned(),
                        );
                    }
                    batch.push(row);
                }
            },
        }
        if !batch.is_empty() && (end || batch.is_full(args.batch)) {
            let rows = batch.take();
            let n = rows.len() as u64;
            let first = rows[0].row;
            let next = rows.last().map_or(first, |r| r.row) + 1;
            if in_flight.len() >= 2
                && let Some(answer) = in_flight.join_next().await
            {
                checked_batch(answer??, &mut checked, &mut bad);
            }
            let (client, id) = (client.clone(), id.clone());
            in_flight.spawn(async move {
                let answer = send(&client, &id, (first, next), true, rows).await?;
                Ok((n, answer))
            });
        }
        if end {
            break;
        }
    }
    while let Some(answer) = in_flight.join_next().await {
        checked_batch(answer??, &mut checked, &mut bad);
    }
    check.finish();
    let mut lines: Vec<(&u64, &String)> = bad.iter().collect();
    lines.sort();
    for (row, reason) in &lines {
        eprintln!("line {row}: {reason}");
    }
    let good = total - (bad.len() as u64).min(total);
    if args.dry_run {
        eprintln!(
            "Dry run of import {id}: {good} of {total} rows can be imported, {} cannot. Nothing was imported.",
            bad.len()
        );
        if !bad.is_empty() {
            bail!("{} bad rows", bad.len());
        }
        return Ok(());
    }
    if !bad.is_empty() && !args.skip_invalid {
        bail!(
            "{} bad rows: nothing was imported. Fix them, or pass --skip-invalid to import the other {good}",
            bad.len()
        );
    }
    if keyless > 0 && args.keys_out.is_none() {
        bail!(
            "{keyless} rows have no key: give --keys-out FILE to receive the tokens made for them. Nothing was imported"
        );
    }
    write_rows(&args, format, &client, &state, &bad, good).await
}

/// JSON a batch may carry: the authority takes 32 MiB in one import
/// request; the rest is room for the envelope.
const BATCH_BYTES: usize = 24 << 20;

/// Rows gathered for one batch, with the size of their JSON.
#[derive(Default)]
struct Batch {
    rows: Vec<ImportRow>,
    bytes: usize,
}

impl Batch {
    fn push(&mut self, row: ImportRow) {
        self.bytes += json_len(&row) + 1;
        self.rows.push(row);
    }

    fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// `rows` rows, or as many bytes as one request takes.
    fn is_full(&self, rows: u64) -> bool {
        self.rows.len() as u64 >= rows || self.bytes >= BATCH_BYTES
    }

    fn take(&mut self) -> Vec<ImportRow> {
        self.bytes = 0;
        std::mem::take(&mut self.rows)
    }
}

/// The length of `row`'s JSON, counted without keeping it.
fn json_len(row: &ImportRow) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing to a counter cannot fail; a row that cannot be encoded is
    // refused when the batch is sent.
    let _ = serde_json::to_writer(&mut count, row);
    count.0
}

/// One batch of lines `first..next` to the authority (checked only, with
/// `dry_run`); where the import then stands, with the batch's bad rows.
async fn send(
    client: &AdminClient,
    id: &str,
    (first, next): (u64, u64),
    dry_run: bool,
    rows: Vec<ImportRow>,
) -> anyhow::Result<ImportProgress> {
    let batch = ImportBatch {
        import: id.to_owned(),
        first_row: first,
        next_row: next,
        dry_run,
        rows,
    };
    client.post_any("/v1/admin/licenses/import", &batch).await
}

/// Pass 2: the good rows in batches, from where the import stands.
async fn write_rows(
    args: &ImportArgs,
    format: Format,
    client: &AdminClient,
    state: &ImportProgress,
    bad: &HashMap<u64, String>,
    good: u64,
) -> anyhow::Result<()> {
    let id = state.import.as_str();
    let already = state.imported;
    if already > 0 {
        eprintln!(
            "Resuming import {id}: {already} licenses imported before, from line {}.",
            state.next_row
        );
    }
    let mut keys = KeysOut::open(args.keys_out.as_deref())?;
    let mut first = state.next_row;
    let progress = Progress::new("importing", good);
    let mut done = already;
    // A batch's answer: written, or the whole import stops here.
    let committed = |answer: ImportProgress, done: &mut u64| -> anyhow::Result<()> {
        if !answer.errors.is_empty() {
            progress.finish();
            for e in &answer.errors {
                eprintln!("line {}: {}", e.row, e.reason);
            }
            bail!(
                "the authority refused a batch (nothing of it was written; {} licenses imported before it). \
                 Fix the file, or rerun to resume",
                answer.imported
            );
        }
        *done = answer.imported;
        progress.update(*done);
        Ok(())
    };
    // One batch in flight while the next is read: batches still commit in
    // order (each is sent only once the one before it is answered), but
    // reading and encoding rows no longer waits for the authority's writes.
    let mut in_flight: Option<tokio::task::JoinHandle<anyhow::Result<ImportProgress>>> = None;
    let mut rows = Rows::open(&args.file, format, args)?;
    let mut batch = Batch::default();
    loop {
        let read = rows.next()?;
        let end = read.is_none();
        if let Some(Ok(mut row)) = read
            && row.row >= state.next_row
            && !bad.contains_key(&row.row)
        {
            if row.key.is_none() && row.key_sha256.is_none() {
                row.key = Some(keys.key_for(&row)?);
            }
            batch.push(row);
        }
        if !batch.is_empty() && (end || batch.is_full(args.batch)) {
            // The tokens made for this batch are on disk before it is sent.
            keys.sync()?;
            let rows = batch.take();
            let next = rows.last().map_or(first, |r| r.row) + 1;
            if let Some(previous) = in_flight.take() {
                committed(previous.await??, &mut done)?;
            }
            let (client, id) = (client.clone(), id.to_owned());
            in_flight = Some(tokio::spawn(async move {
                send(&client, &id, (first, next), false, rows).await
            }));
            first = next;
        }
        if end {
            break;
        }
    }
    if let Some(last) = in_flight.take() {
        committed(last.await??, &mut done)?;
    }
    progress.finish();
    eprintln!(
        "Imported {} licenses ({} in this run, {:.0} rows/s){}.",
        done,
        done - already,
        progress.rate(done - already),
        if bad.is_empty() {
            String::new()
        } else {
            format!("; {} bad rows left out", bad.len())
        }
    );
    Ok(())
}

/// The tokens made for rows without a key: written (and synced) before
/// the batch that carries them is sent, and reused by a rerun.
struct KeysOut {
    file: Option<std::fs::File>,
    known: HashMap<u64, String>,
}

impl KeysOut {
    fn open(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Self {
                file: None,
                known: HashMap::new(),
            });
        };
        let mut known = HashMap::new();
        if path.exists() {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let v: serde_json::Value = serde_json::from_str(line).with_context(|| {
                    format!("{} is not a keys file of an import", path.display())
                })?;
                if let (Some(row), Some(key)) = (v["row"].as_u64(), v["key"].as_str()) {
                    known.insert(row, key.to_owned());
                }
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Self {
            file: Some(file),
            known,
        })
    }

    fn key_for(&mut self, row: &ImportRow) -> anyhow::Result<String> {
        if let Some(key) = self.known.get(&row.row) {
            return Ok(key.clone());
        }
        let key = LicenseToken::generate(&mut rand::rng())
            .expose_secret()
            .to_owned();
        let file = self.file.as_mut().context("no --keys-out file")?;
        writeln!(
            file,
            "{}",
            serde_json::json!({"row": row.row, "customer": row.customer, "key": key})
        )?;
        self.known.insert(row.row, key.clone());
        Ok(key)
    }

    fn sync(&mut self) -> anyhow::Result<()> {
        if let Some(file) = &self.file {
            file.sync_all().context("cannot sync the keys file")?;
        }
        Ok(())
    }
}

pub async fn export_all(args: ExportAllArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(&args.conn)?;
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot write {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let progress = Progress::new("exporting", 0);
    let mut cursor: Option<String> = None;
    let mut n = 0u64;
    loop {
        let mut q = vec![("limit", "1000".to_owned())];
        if let Some(c) = &cursor {
            q.push(("cursor", c.clone()));
        }
        let page: Page<ExportedLicense> = client.get("/v1/admin/licenses/export", &q).await?;
        for l in &page.items {
            serde_json::to_writer(&mut out, l)?;
            out.write_all(b"\n")?;
            n += 1;
        }
        if progress.shown {
            eprint!("\rexported {n} licenses ");
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    out.flush()?;
    progress.finish();
    eprintln!("Exported {n} licenses (keys as their SHA-256: the authority never holds keys).");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_cut_by_rows_or_by_the_bytes_one_request_takes() {
        let small = ImportRow {
            customer: "Acme".into(),
            plan: "pro".into(),
            ..ImportRow::default()
        };
        let mut batch = Batch::default();
        batch.push(small.clone());
        batch.push(small.clone());
        assert!(!batch.is_full(3));
        assert!(batch.is_full(2));
        assert_eq!(
            batch.bytes,
            2 * (serde_json::to_vec(&small).unwrap().len() + 1)
        );
        // Rows of 1 MiB: full at 24 MiB whatever the row count allows.
        let big = ImportRow {
            customer: "x".repeat(1 << 20),
            ..small
        };
        let mut batch = Batch::default();
        let mut n = 0;
        while !batch.is_full(100_000) {
            batch.push(big.clone());
            n += 1;
        }
        assert_eq!(n, 24);
        assert_eq!(batch.take().len(), 24);
        assert!(batch.is_empty() && batch.bytes == 0);
    }
}
