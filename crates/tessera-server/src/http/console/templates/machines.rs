//! The machines of a license, and the machine fields of the issue and
//! policy forms.

use maud::{Markup, html};
use tessera_protocol::wire::{MachineList, MachineMode, MachineState};

use super::{Chrome, when};
use crate::http::console::forms::MachineFields;
use crate::model::License;

/// "3 of 5 machines": each with its lease and last heartbeat when
/// floating, and a Release button while it holds a place.
pub fn machines_section(c: &Chrome, l: &License, list: &MachineList) -> Markup {
    let floating = list.machine_mode == MachineMode::Floating;
    html! {
        h2 { "Machines" }
        p #machines-count {
            strong { (list.active) @if let Some(max) = list.max_machines { " of " (max) } " machines" }
            " · " span.muted { @if floating { "floating: a place is held while the machine heartbeats" } @else { "node-locked: a place is kept until released" } }
        }
        @if list.items.is_empty() {
            p.empty #machines-empty { "No machine has activated yet." }
        } @else {
            table #machines {
                thead { tr { th { "Machine" } th { "Host" } th { "State" } th { "Activated" } th { "Last heartbeat" } @if floating { th { "Lease ends" } } th {} } }
                tbody {
                    @for m in &list.items {
                        tr data-machine=(m.id) {
                            td { (m.name.as_deref().unwrap_or("—")) br; span.mono.muted { (m.id) } }
                            td { (m.hostname.as_deref().unwrap_or("—")) " " span.muted { (m.platform.as_deref().unwrap_or("")) } }
                            td { @if m.state == MachineState::Active { span.badge.yes { "active" } } @else { span.badge.no { (m.state) } } }
                            td { (when(&m.activated_at)) }
                            td { (when(&m.last_heartbeat_at)) }
                            @if floating { td { (m.lease_expires_at.as_ref().map(when).unwrap_or_default()) } }
                            td {
                                @if m.state == MachineState::Active && c.can(crate::access::Action::Manage) {
                                    form.inline method="post" action={"/licenses/" (l.id) "/machines/" (m.id) "/release"} {
                                        input type="hidden" name="csrf" value=(c.csrf());
                                        button.secondary.release type="submit" { "Release" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The machine settings inputs of the issue and policy forms.
pub fn machine_fields(f: &MachineFields) -> Markup {
    html! {
        div { label for="max_machines" { "Machine limit (optional)" } input #max_machines name="max_machines" inputmode="numeric" value=(f.max_machines); }
        div { label for="lease_ttl" { "Floating lease, e.g. 15m" } input #lease_ttl name="lease_ttl" value=(f.lease_ttl) placeholder="15m"; }
        div { label for="max_borrow" { "Floating: longest borrow, e.g. 7d" } input #max_borrow name="max_borrow" value=(f.max_borrow) placeholder="0"; }
        div { label { input #floating type="checkbox" name="floating" value="on" checked[f.floating.is_some()]; " Floating (leases) rather than node-locked" } }
    }
}
