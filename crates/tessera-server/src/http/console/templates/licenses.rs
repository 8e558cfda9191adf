//! Pages of licenses: the list, issuing, one license, confirmations.

use maud::{Markup, html};
use tessera_protocol::Timestamp;
use tessera_protocol::wire::{EventView, MachineList};

use super::{
    Chrome, event_table, expiry, layout, machine_fields, machines_section, relative, status_badge,
    when,
};
use crate::http::console::forms::IssueForm;
use crate::licenses::StateAction;
use crate::model::{Fleet, License, Policy};

/// The licenses list's query, as the page shows it.
pub struct ListView<'a> {
    pub text: &'a str,
    pub state: &'a str,
    pub expiring: &'a str,
    pub product: &'a str,
    pub page: u32,
    pub pages: u32,
    pub total: i64,
    pub query_without_page: String,
}

pub fn licenses(c: &Chrome, v: &ListView, rows: &[License]) -> Markup {
    let option = |value: &str, label: &str, current: &str| {
        html! {
            option value=(value) selected[value == current] { (label) }
        }
    };
    layout(
        c,
        "Licenses",
        html! {
            h1 { "Licenses" }
            form.row.card method="get" action="/licenses" style="margin-bottom: 1rem;" {
                div { label for="q" { "Customer, plan, id or last 4 of the token" }
                      input #q type="search" name="q" value=(v.text) style="width: 22rem;"; }
                div { label for="state" { "State" }
                      select #state name="state" {
                          (option("", "any", v.state)) (option("active", "active", v.state))
                          (option("suspended", "suspended", v.state)) (option("revoked", "revoked", v.state))
                      } }
                div { label for="expiring" { "Expiry" }
                      select #expiring name="expiring" {
                          (option("", "any", v.expiring)) (option("1d", "within 1 day", v.expiring))
                          (option("7d", "within 7 days", v.expiring)) (option("30d", "within 30 days", v.expiring))
                          (option("expired", "already expired", v.expiring))
                      } }
                div { label for="product" { "Product" }
                      input #product name="product" value=(v.product) placeholder="any" style="width: 10rem;"; }
                button #search type="submit" { "Search" }
                @if c.can(crate::access::Action::Issue) {
                    a.button.secondary href="/licenses/new" { "Issue a license" }
                }
            }
            @if rows.is_empty() {
                p.empty #no-licenses {
                    @if v.total == 0 && v.text.is_empty() && v.state.is_empty() && v.expiring.is_empty() {
                        "No licenses yet. " a href="/licenses/new" { "Issue the first one." }
                    } @else {
                        "No license matches. Try fewer filters."
                    }
                }
            } @else {
                table #licenses {
                    thead { tr { th { "License" } th { "Customer" } th { "Product" } th { "Plan" } th { "Status" } th { "Expires" } th { "Revision" } th { "Token" } } }
                    tbody {
                        @for l in rows {
                            tr {
                                td.mono { a href={"/licenses/" (l.id)} { (l.id) } }
                                td { (l.customer) }
                                td { (l.product) }
                                td { (l.plan) }
                                td { (status_badge(l.status_at(c.now))) }
                                td { (expiry(l, c.now)) }
                                td { (l.revision) }
                                td.mono { "…" (l.token_last4) }
                            }
                        }
                    }
                }
                div.pager {
                    span { (v.total) " licenses · page " (v.page) " of " (v.pages) }
                    span {
                        @if v.page > 1 { a #prev href={"/licenses?" (v.query_without_page) "&page=" (v.page - 1)} { "← previous" } " " }
                        @if v.page < v.pages { a #next href={"/licenses?" (v.query_without_page) "&page=" (v.page + 1)} { "next →" } }
                    }
                }
            }
        },
    )
}

pub fn issue_form(c: &Chrome, policies: &[Policy], f: &IssueForm, error: Option<&str>) -> Markup {
    layout(
        c,
        "Issue a license",
        html! {
            h1 { "Issue a license" }
            @if let Some(e) = error { p.banner.error #form-error { (e) } }
            form.card method="post" action="/licenses" {
                input type="hidden" name="csrf" value=(c.csrf());
                div.fields {
                    div { label for="customer" { "Customer" } input #customer name="customer" required value=(f.customer); }
                    div { label for="email" { "Customer e-mail (optional)" } input #email type="email" name="email" value=(f.email); }
                    div { label for="plan" { "Plan" } input #plan name="plan" required value=(f.plan) placeholder="enterprise"; }
                    div { label for="policy" { "Policy" }
                          select #policy name="policy" {
                              @for p in policies { option value=(p.name) selected[p.name == f.policy] { (p.name) } }
                          } }
                    div { label for="product" { "Product (default: the policy's)" } input #product name="product" value=(f.product) placeholder="default"; }
                    div { label for="features" { "Features, comma-separated (default: the policy's); name@date for one that ends earlier" } input #features name="features" value=(f.features) placeholder="sso, audit@2027-03-01"; }
                    div { label for="max_users" { "Seat limit (optional)" } input #max_users name="max_users" inputmode="numeric" value=(f.max_users); }
                    (machine_fields(&f.machines))
                    div { label for="duration" { "Duration from now, e.g. 30d or 1y" } input #duration name="duration" value=(f.duration) placeholder="365d"; }
                    div { label for="expires_at" { "…or an expiry date" } input #expires_at type="date" name="expires_at" value=(f.expires_at); }
                }
                div.row style="margin-bottom: 1rem;" {
                    label { input #perpetual type="checkbox" name="perpetual" value="on" checked[f.perpetual.is_some()]; " Perpetual (no expiry)" }
                    label { input #trial type="checkbox" name="trial" value="on" checked[f.trial.is_some()]; " Trial" }
                    label { input #auto_renew type="checkbox" name="auto_renew" value="on" checked[f.auto_renew.is_some()]; " Renew automatically" }
                }
                button #issue type="submit" { "Issue license" }
            }
        },
    )
}

pub fn issued(c: &Chrome, l: &License, token: &str) -> Markup {
    layout(
        c,
        "License issued",
        html! {
            h1 { "License issued" }
            p.banner.warn #token-warning {
                strong { "Copy the token now. " }
                "This is the only time it is shown: the authority keeps only a hash of it, "
                "and no page, API or log will show it again. If it is lost, revoke the license and issue a new one."
            }
            div.card {
                label for="token" { "License token for " (l.customer) }
                div.row {
                    input.token #token readonly value=(token) style="flex: 1;";
                    button #copy type="button" data-copy="token" { "Copy" }
                }
            }
            p { a #to-license href={"/licenses/" (l.id)} { "Go to the license " (l.id) " →" } }
        },
    )
}

pub fn license(
    c: &Chrome,
    l: &License,
    fleet: &Fleet,
    machines: &MachineList,
    events: &[EventView],
    done: Option<&str>,
) -> Markup {
    let status = l.status_at(c.now);
    let max_users = l.max_users.map(|n| n.to_string()).unwrap_or_default();
    layout(
        c,
        &l.id.to_string(),
        html! {
            h1 { "License " span.mono { (l.id) } }
            @if let Some(done) = done { p.banner.ok #done { (done) } }
            div.grid2 {
                div.card {
                    dl.facts {
                        dt { "Status" } dd #status { (status_badge(status)) " " span.muted { "state " (l.state.as_str()) } }
                        dt { "Customer" } dd #customer { (l.customer) }
                        dt { "Plan" } dd #plan { (l.plan) @if l.trial { " (trial)" } }
                        dt { "Features" } dd #features { @if l.features.is_empty() { span.muted { "none" } } @else { (tessera_protocol::entitlements::describe(&l.features, &l.entitlements_at(c.now))) } }
                        dt { "Users" } dd #max-users { @if let Some(n) = l.max_users { (n) } @else { "unlimited" } }
                        dt { "Renewal" } dd #auto-renew {
                            @if l.auto_renews() {
                                "automatic, by " (l.renewal_period().map_or_else(|| "its period".to_owned(), tessera_protocol::human::format_duration))
                                " about " (tessera_protocol::human::format_duration(l.policy.renew_before)) " before expiry"
                            } @else { "manual" }
                        }
                        dt { "Valid from" } dd { (when(&l.valid_from)) }
                        dt { "Expires" } dd #expires { (expiry(l, c.now)) }
                        dt { "Revision" } dd #revision { (l.revision) }
                        dt { "Policy" } dd { (l.policy.name) " " span.muted { "(refresh " (tessera_protocol::human::format_duration(l.policy.refresh_interval)) ", offline grace " (tessera_protocol::human::format_duration(l.policy.offline_grace)) ")" } }
                        dt { "Token" } dd.mono { "tsr_…" (l.token_last4) }
                    }
                }
                div.card {
                    @if l.state == tessera_protocol::wire::LicenseState::Revoked {
                        p.muted { "This license is revoked. Nothing can change it any more." }
                    } @else {
                        @if c.can(crate::access::Action::Extend) {
                        h2 style="margin-top: 0;" { "Extend" }
                        form.row method="get" action={"/licenses/" (l.id) "/extend"} {
                            div { label for="by" { "By (counted " (basis(l)) ")" }
                                  select #by name="by" { option value="30d" { "30 days" } option value="90d" { "90 days" } option value="365d" selected { "1 year" } } }
                            button #extend type="submit" { "Extend…" }
                        }
                        form.row method="get" action={"/licenses/" (l.id) "/extend"} style="margin-top: .6rem;" {
                            div { label for="to" { "…or to a date" } input #to type="date" name="to" required; }
                            button #extend-to type="submit" class="secondary" { "Set expiry…" }
                        }
                        }
                        @if c.can(crate::access::Action::Suspend) || c.can(crate::access::Action::Manage) {
                        h2 { "State" }
                        div.row {
                            @if l.state == tessera_protocol::wire::LicenseState::Suspended {
                                @if c.can(crate::access::Action::Reinstate) {
                                    a.button.secondary #reinstate href={"/licenses/" (l.id) "/reinstate"} { "Reinstate…" }
                                }
                            } @else {
                                a.button.secondary #suspend href={"/licenses/" (l.id) "/suspend"} { "Suspend…" }
                            }
                            @if c.can(crate::access::Action::Manage) {
                                a.button.danger #revoke href={"/licenses/" (l.id) "/revoke"} { "Revoke…" }
                            }
                        }
                        }
                        @if !c.can(crate::access::Action::Extend) && !c.can(crate::access::Action::Suspend) {
                            p.muted #read-only { "Your key's role (" (c.principal.map_or("none", |p| p.role.as_str())) ") may not change licenses." }
                        }
                    }
                }
            }
            (machines_section(c, l, machines))
            h2 { "Installations" }
            div data-fleet={"/licenses/" (l.id) "/fleet.json?offset=" (fleet.offset)} data-max-users=(max_users) {
                p {
                    strong #delivered { "Delivered to " (fleet.summary.current) " of " (fleet.summary.total) }
                    " · " span #connected { (fleet.summary.connected) " connected" }
                    " · " span.muted { "revision " (fleet.revision) " is current; this updates by itself" }
                }
                p #seats class=[fleet.summary.seats_exceeded.then_some("over")] {
                    (seats_text(&fleet.summary))
                }
                table #fleet {
                    thead { tr { th { "Instance" } th { "Version" } th { "Last seen" } th { "Holds revision" } th { "Live stream" } th { "Users" } } }
                    tbody #fleet-rows {
                        @for i in &fleet.instances {
                            tr {
                                td.mono { (i.instance_id) @if i.keygen_api { " " span.badge.no title="validates through the Keygen-compatible API" { "Keygen API" } } }
                                td { (i.app_version.as_deref().unwrap_or("—")) }
                                td { (when(&i.last_seen)) }
                                td { @if i.held_revision == Some(fleet.revision) { span.badge.yes { (fleet.revision) " (current)" } }
                                     @else { span.badge.no { (i.held_revision.map_or_else(|| "unknown".to_owned(), |r| r.to_string())) } } }
                                td { @if i.stream_connected { span.badge.yes { "connected" } } @else { span.badge.no { "not connected" } } }
                                td class=[(i.users.zip(l.max_users).is_some_and(|(u, m)| u > m)).then_some("over")] {
                                    @match (i.users, l.max_users) {
                                        (Some(u), Some(m)) => { (u) " of " (m) }
                                        (Some(u), None) => { (u) }
                                        _ => { "—" }
                                    }
                                }
                            }
                        }
                    }
                }
                p.empty #fleet-empty hidden[!fleet.instances.is_empty()] {
                    "No installation has checked in yet. Instances appear here when they validate or open a stream."
                }
                @if fleet.offset > 0 || fleet.next_offset.is_some() {
                    p.row #fleet-pages {
                        span.muted {
                            "Installations " (fleet.offset + 1) "–" (fleet.offset + fleet.instances.len() as u64)
                            " of " (fleet.summary.total) " (" (fleet.summary.active) " active)"
                        }
                        @if fleet.offset > 0 {
                            " " a #fleet-prev href={"/licenses/" (l.id) "?offset=" (fleet.offset.saturating_sub(u64::from(fleet.limit)))} { "‹ Newer" }
                        }
                        @if let Some(next) = fleet.next_offset {
                            " " a #fleet-next href={"/licenses/" (l.id) "?offset=" (next)} { "Older ›" }
                        }
                    }
                }
            }
            h2 { "History" }
            (event_table(events, c.now))
        },
    )
}

fn basis(l: &License) -> &'static str {
    match l.policy.renewal_basis {
        tessera_protocol::wire::RenewalBasis::FromExpiry => "from the current expiry",
        tessera_protocol::wire::RenewalBasis::FromNow => "from now",
    }
}

/// What a confirmation page asks for.
pub struct Confirm<'a> {
    pub title: &'a str,
    /// What will happen, in a sentence or two.
    pub consequence: Markup,
    /// The action's path under the license (`extend`, `revoke`, …).
    pub action: &'a str,
    pub hidden: &'a [(&'a str, String)],
    /// Ask for a reason for the audit log.
    pub with_reason: bool,
    /// Irreversible or disruptive: a red button.
    pub danger: bool,
}

/// "Seats: 7 in use of 5 — over the limit" (the console's metering line).
fn seats_text(s: &crate::model::FleetSummary) -> String {
    let used = s
        .seats_in_use
        .map_or_else(|| "no usage reported".to_owned(), |n| format!("{n} in use"));
    match s.max_users {
        Some(max) if s.seats_exceeded => format!("Seats: {used} of {max} — over the limit"),
        Some(max) => format!("Seats: {used} of {max}"),
        None => format!("Seats: {used} (no limit)"),
    }
}

/// A confirmation page: what will happen, and the form that does it.
pub fn confirm(c: &Chrome, l: &License, confirm: Confirm<'_>) -> Markup {
    let Confirm {
        title,
        consequence,
        action,
        hidden,
        with_reason,
        danger,
    } = confirm;
    layout(
        c,
        title,
        html! {
            h1 { (title) }
            div.card {
                p { "License " span.mono { (l.id) } " for " strong { (l.customer) } " (plan " (l.plan) ", revision " (l.revision) ")." }
                (consequence)
                form method="post" action={"/licenses/" (l.id) "/" (action)} {
                    input type="hidden" name="csrf" value=(c.csrf());
                    @for (name, value) in hidden { input type="hidden" name=(name) value=(value); }
                    @if with_reason {
                        div style="margin-bottom: 1rem;" {
                            label for="reason" { "Reason, for the audit log (optional)" }
                            input #reason name="reason" style="width: 100%;";
                        }
                    }
                    div.row {
                        button #confirm type="submit" class=[danger.then_some("danger")] { (title) }
                        a.button.secondary #cancel href={"/licenses/" (l.id)} { "Cancel" }
                    }
                }
            }
        },
    )
}

/// What an extension will do, for its confirmation page.
pub fn extend_consequence(l: &License, new_expiry: &Timestamp, now: Timestamp) -> Markup {
    let from = l
        .expires_at
        .map_or_else(|| "never (perpetual)".to_owned(), |t| when(&t));
    html! {
        p #consequence {
            "The expiry moves from " strong { (from) } " to " strong { (when(new_expiry)) }
            " (" (relative(new_expiry, now)) "). Installations with a live stream get it within seconds."
        }
    }
}

/// A state change's confirmation: its title, what it does, and whether it
/// is disruptive (a red button).
#[must_use]
pub fn state_consequence(action: StateAction) -> (&'static str, Markup, bool) {
    match action {
        StateAction::Suspend => (
            "Suspend the license",
            html! {
                p #consequence { "Every installation stops being licensed within seconds (those polling, at their next check). "
                    "You can reinstate it later." }
            },
            true,
        ),
        StateAction::Reinstate => (
            "Reinstate the license",
            html! {
                p #consequence { "Installations are licensed again within seconds." }
            },
            false,
        ),
        StateAction::Revoke => (
            "Revoke the license",
            html! {
                p #consequence { strong { "This cannot be undone. " } "Every installation loses the license, and the token stops working for good." }
            },
            true,
        ),
    }
}
