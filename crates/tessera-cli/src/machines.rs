//! `tessera license machines` and `tessera license release`.

use clap::Args;
use tessera_protocol::LicenseId;
use tessera_protocol::wire::{MachineList, MachineMode, MachineSettingsView, MachineState};

use crate::Connection;
use crate::args::parse_license_id;
use crate::client::AdminClient;
use crate::output;

#[derive(Debug, Args)]
pub struct MachinesArgs {
    /// License id (lic_…).
    #[arg(value_parser = parse_license_id)]
    id: LicenseId,
    /// Machines per page (the server caps it at its page size).
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Machines to skip (the previous page's "next" offset).
    #[arg(long, default_value_t = 0)]
    offset: u64,
    #[command(flatten)]
    conn: Connection,
}

#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// License id (lic_…).
    #[arg(value_parser = parse_license_id)]
    id: LicenseId,
    /// Machine id (mch_…, from `tessera license machines`).
    machine: String,
    #[command(flatten)]
    conn: Connection,
}

/// The machines of a license, those holding a place first.
pub async fn list(a: MachinesArgs) -> anyhow::Result<()> {
    let list = AdminClient::new(&a.conn)?
        .machines(&a.id, a.limit, a.offset)
        .await?;
    if a.conn.json {
        return output::json(&list);
    }
    println!("{}", places_line(&list));
    if list.items.is_empty() {
        println!("No machine has activated yet.");
        return Ok(());
    }
    let floating = list.machine_mode == MachineMode::Floating;
    let mut table = output::table(&[
        "MACHINE",
        "NAME",
        "HOST",
        "STATE",
        "ACTIVATED",
        "LAST SEEN",
        "LEASE ENDS",
    ]);
    for m in &list.items {
        table.add_row(vec![
            m.id.clone(),
            m.name.clone().unwrap_or_default(),
            m.hostname.clone().unwrap_or_default(),
            m.state.to_string(),
            output::when(&m.activated_at),
            output::when(&m.last_heartbeat_at),
            match (floating, m.state, m.lease_expires_at) {
                (true, MachineState::Active, Some(t)) => output::when(&t),
                _ => String::new(),
            },
        ]);
    }
    println!("{table}");
    if let Some(next) = list.next_offset {
        println!("More: --offset {next}");
    }
    Ok(())
}

/// "3 of 5 machines (floating)".
fn places_line(list: &MachineList) -> String {
    let mode = match list.machine_mode {
        MachineMode::NodeLocked => "node-locked",
        MachineMode::Floating => "floating",
    };
    match list.max_machines {
        Some(max) => format!("{} of {max} machines ({mode})", list.active),
        None => format!("{} machines (no limit, {mode})", list.active),
    }
}

/// "at most 3, floating (lease 10m, borrow up to 7d)".
pub fn settings_line(m: &MachineSettingsView) -> String {
    let limit = m
        .max_machines
        .map_or_else(|| "unlimited".to_owned(), |n| format!("at most {n}"));
    match m.machine_mode {
        MachineMode::NodeLocked => format!("{limit}, node-locked"),
        MachineMode::Floating if m.max_borrow == "0s" => {
            format!("{limit}, floating (lease {})", m.lease_ttl)
        }
        MachineMode::Floating => format!(
            "{limit}, floating (lease {}, borrow up to {})",
            m.lease_ttl, m.max_borrow
        ),
    }
}

/// Free a machine's place at once.
pub async fn release(a: ReleaseArgs) -> anyhow::Result<()> {
    let m = AdminClient::new(&a.conn)?
        .release(&a.id, &a.machine)
        .await?;
    if a.conn.json {
        return output::json(&m);
    }
    println!(
        "Released {} ({}): its place is free, and it hears so on its stream.",
        m.id,
        m.name
            .as_deref()
            .or(m.hostname.as_deref())
            .unwrap_or("unnamed")
    );
    Ok(())
}
