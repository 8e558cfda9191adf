//! `tessera events verify|export`: the audit log read oldest first through
//! the API's `?after=` cursor, a page at a time (constant memory however
//! long the log), its hash chain checked on the way (docs/PROTOCOL.md §27).

use std::io::Write;

use anyhow::Context;
use tessera_protocol::Timestamp;
use tessera_protocol::audit::ChainCheck;
use tessera_protocol::wire::EventView;

use crate::Connection;
use crate::client::AdminClient;

/// Events a page.
const PAGE: u32 = 1_000;

/// Walk every event oldest first, checking the chain; `each` sees those
/// the chain vouches for. Progress on standard error for long logs.
async fn walk(
    conn: &Connection,
    mut each: impl FnMut(&EventView) -> anyhow::Result<bool>,
) -> anyhow::Result<u64> {
    let client = AdminClient::new(conn)?;
    let mut chain = ChainCheck::default();
    let mut after = 0i64;
    let started = std::time::Instant::now();
    loop {
        let page = client.events_after(after, PAGE).await?;
        for event in &page.items {
            chain
                .next(event)
                .map_err(|e| anyhow::anyhow!("the audit log's chain is broken: {e}"))?;
            if !each(event)? {
                return Ok(chain.checked());
            }
        }
        let Some(last) = page.items.last() else {
            return Ok(chain.checked());
        };
        after = last.seq;
        if chain.checked().is_multiple_of(100_000) && started.elapsed().as_secs() >= 2 {
            eprintln!(
                "… {} events, {:.0}/s",
                chain.checked(),
                chain.checked() as f64 / started.elapsed().as_secs_f64()
            );
        }
        if page.items.len() < PAGE as usize {
            return Ok(chain.checked());
        }
    }
}

pub async fn verify(conn: &Connection) -> anyhow::Result<()> {
    let checked = walk(conn, |_| Ok(true)).await?;
    eprintln!("{checked} events, hash chain intact.");
    Ok(())
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

pub async fn export(
    conn: &Connection,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
    format: &str,
) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let csv = format == "csv";
    if csv {
        writeln!(
            out,
            "seq,at,actor,kind,license,revision,before,after,prev_hash,hash"
        )?;
    }
    let mut written = 0u64;
    let checked = walk(conn, |e| {
        if until.is_some_and(|u| e.at >= u) {
            // Sequence order is time order: nothing later is wanted.
            return Ok(false);
        }
        if since.is_some_and(|s| e.at < s) {
            return Ok(true);
        }
        if csv {
            let json = |v: &Option<serde_json::Value>| {
                v.as_ref().map(ToString::to_string).unwrap_or_default()
            };
            writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{}",
                e.seq,
                tessera_protocol::time::format(&e.at),
                csv_field(&e.actor),
                csv_field(&e.kind),
                e.license.as_deref().unwrap_or_default(),
                e.revision.map(|r| r.to_string()).unwrap_or_default(),
                csv_field(&json(&e.before)),
                csv_field(&json(&e.after)),
                e.prev_hash.as_deref().unwrap_or_default(),
                e.hash.as_deref().unwrap_or_default(),
            )?;
        } else {
            serde_json::to_writer(&mut out, e)?;
            out.write_all(b"\n")?;
        }
        written += 1;
        Ok(true)
    })
    .await?;
    out.flush().context("writing the export")?;
    eprintln!("{written} events written ({checked} checked, hash chain intact).");
    Ok(())
}
