//! The console's pages (maud: compile-time checked, escaped by default).

use maud::{DOCTYPE, Markup, html};
use tessera_protocol::wire::EventView;
use tessera_protocol::{Status, Timestamp};

use crate::model::{Fleet, License, Overview, Policy, Session};

/// What every page shows around its content.
pub struct Chrome<'a> {
    /// The signed-in session (none on the login page).
    pub session: Option<&'a Session>,
    /// The nav entry to highlight.
    pub here: &'a str,
    /// Now (for relative times).
    pub now: Timestamp,
}

pub fn when(t: &Timestamp) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

pub fn relative(t: &Timestamp, now: Timestamp) -> String {
    tessera_protocol::human::relative(*t, now)
}

fn expiry(l: &License, now: Timestamp) -> Markup {
    match l.expires_at {
        Some(t) => html! { (when(&t)) " " span.muted { "(" (relative(&t, now)) ")" } },
        None => html! { "never " span.muted { "(perpetual)" } },
    }
}

fn status_badge(status: Status) -> Markup {
    html! { span class={"badge " (status.as_str())} { (status.as_str()) } }
}

pub fn layout(c: &Chrome, title: &str, body: Markup) -> Markup {
    let nav = [
        ("dashboard", "/", "Dashboard"),
        ("licenses", "/licenses", "Licenses"),
        ("issue", "/licenses/new", "Issue"),
        ("policies", "/policies", "Policies"),
        ("events", "/events", "Events"),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Tessera" }
                link rel="stylesheet" href="/console.css";
            }
            body {
                header {
                    a.brand href="/" { "Tessera" }
                    @if let Some(session) = c.session {
                        @for (key, href, label) in nav {
                            a href=(href) class=[(key == c.here).then_some("here")] { (label) }
                        }
                        span.who {
                            span { "signed in with key " strong { (session.key_name) } }
                            form.inline method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(session.csrf);
                                button #logout type="submit" { "Log out" }
                            }
                        }
                    }
                }
                main { (body) }
                script src="/console.js" {}
            }
        }
    }
}

pub fn login(c: &Chrome, error: Option<&str>) -> Markup {
    layout(
        c,
        "Sign in",
        html! {
            div.card style="max-width: 30rem; margin: 3rem auto;" {
                h1 { "Sign in to the license console" }
                @if let Some(e) = error { p.banner.error #login-error { (e) } }
                form method="post" action="/login" {
                    label for="key" { "Admin key" }
                    input #key type="password" name="key" autocomplete="off" spellcheck="false"
                        placeholder="tsa_…" required style="width: 100%; margin-bottom: 1rem;";
                    button #sign-in type="submit" { "Sign in" }
                }
                p.muted {
                    "The key is in " span.mono { "admin.key" } " in the authority's data directory. "
                    "A session lasts eight hours."
                }
            }
        },
    )
}

pub fn dashboard(c: &Chrome, o: &Overview, recent: &[EventView]) -> Markup {
    let count = |state: &str| {
        o.by_state
            .iter()
            .find(|(s, _)| s == state)
            .map_or(0, |(_, n)| *n)
    };
    layout(
        c,
        "Dashboard",
        html! {
            h1 { "Dashboard" }
            div.cards {
                a.card href="/licenses?state=active" { div.n #count-active { (count("active")) } div.l { "active" } }
                a.card href="/licenses?state=suspended" { div.n #count-suspended { (count("suspended")) } div.l { "suspended" } }
                a.card href="/licenses?state=revoked" { div.n #count-revoked { (count("revoked")) } div.l { "revoked" } }
                a.card href="/licenses?expiring=expired" { div.n #count-expired { (o.expired) } div.l { "expired (active, past their date)" } }
                div.card { div.n #instances-online { (o.instances_online) } div.l { "instances online of " (o.instances_total) } }
            }
            h2 { "Expiring soon" }
            div.cards {
                @for (horizon, n) in &o.expiring {
                    @let days = horizon.num_days();
                    a.card href={"/licenses?expiring=" (days) "d"} {
                        div.n id={"expiring-" (days)} { (n) }
                        div.l { "within " (days) @if days == 1 { " day" } @else { " days" } }
                    }
                }
            }
            h2 { "Recently changed" }
            (event_table(recent, c.now))
        },
    )
}

pub fn event_table(events: &[EventView], now: Timestamp) -> Markup {
    html! {
        @if events.is_empty() {
            p.empty { "Nothing has happened yet. Issue a license to get started." }
        } @else {
            table #events {
                thead { tr { th { "When" } th { "Who" } th { "What" } th { "License" } th { "Revision" } th { "Details" } } }
                tbody {
                    @for e in events {
                        tr {
                            td { (when(&e.at)) br; span.muted { (relative(&e.at, now)) } }
                            td { (e.actor) }
                            td { (e.kind) }
                            td.mono { @if let Some(l) = &e.license { a href={"/licenses/" (l)} { (l) } } }
                            td { @if let Some(r) = e.revision { (r) } }
                            td.muted { (event_details(e)) }
                        }
                    }
                }
            }
        }
    }
}

fn event_details(e: &EventView) -> String {
    let Some(after) = &e.after else {
        return String::new();
    };
    let mut parts = Vec::new();
    if let Some(exp) = after.get("expires_at").and_then(|v| v.as_str()) {
        parts.push(format!(
            "expires {}",
            exp.replace('T', " ").replace('Z', " UTC")
        ));
    }
    if let Some(state) = after.get("state").and_then(|v| v.as_str()) {
        parts.push(state.to_owned());
    }
    if let Some(reason) = after.get("reason").and_then(|v| v.as_str()) {
        parts.push(format!("reason: {reason}"));
    }
    if let Some(name) = after.get("name").and_then(|v| v.as_str()) {
        parts.push(format!("policy {name}"));
    }
    parts.join(" · ")
}

/// The licenses list's query, as the page shows it.
pub struct ListView<'a> {
    pub text: &'a str,
    pub state: &'a str,
    pub expiring: &'a str,
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
                button #search type="submit" { "Search" }
                a.button.secondary href="/licenses/new" { "Issue a license" }
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
                    thead { tr { th { "License" } th { "Customer" } th { "Plan" } th { "Status" } th { "Expires" } th { "Revision" } th { "Token" } } }
                    tbody {
                        @for l in rows {
                            tr {
                                td.mono { a href={"/licenses/" (l.id)} { (l.id) } }
                                td { (l.customer) }
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

/// The issue form's values (kept when the form comes back with an error).
#[derive(Debug, Default, serde::Deserialize)]
pub struct IssueForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub customer: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub plan: String,
    #[serde(default)]
    pub policy: String,
    #[serde(default)]
    pub features: String,
    #[serde(default)]
    pub max_users: String,
    #[serde(default)]
    pub duration: String,
    #[serde(default)]
    pub expires_at: String,
    #[serde(default)]
    pub perpetual: Option<String>,
    #[serde(default)]
    pub trial: Option<String>,
    #[serde(default)]
    pub auto_renew: Option<String>,
}

pub fn issue_form(
    c: &Chrome,
    csrf: &str,
    policies: &[Policy],
    f: &IssueForm,
    error: Option<&str>,
) -> Markup {
    layout(
        c,
        "Issue a license",
        html! {
            h1 { "Issue a license" }
            @if let Some(e) = error { p.banner.error #form-error { (e) } }
            form.card method="post" action="/licenses" {
                input type="hidden" name="csrf" value=(csrf);
                div.fields {
                    div { label for="customer" { "Customer" } input #customer name="customer" required value=(f.customer); }
                    div { label for="email" { "Customer e-mail (optional)" } input #email type="email" name="email" value=(f.email); }
                    div { label for="plan" { "Plan" } input #plan name="plan" required value=(f.plan) placeholder="enterprise"; }
                    div { label for="policy" { "Policy" }
                          select #policy name="policy" {
                              @for p in policies { option value=(p.name) selected[p.name == f.policy] { (p.name) } }
                          } }
                    div { label for="features" { "Features, comma-separated (default: the policy's)" } input #features name="features" value=(f.features) placeholder="sso, audit"; }
                    div { label for="max_users" { "Seat limit (optional)" } input #max_users name="max_users" inputmode="numeric" value=(f.max_users); }
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
                        dt { "Features" } dd #features { @if l.features.is_empty() { span.muted { "none" } } @else { (l.features.join(", ")) } }
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
                        h2 { "State" }
                        div.row {
                            @if l.state == tessera_protocol::wire::LicenseState::Suspended {
                                a.button.secondary #reinstate href={"/licenses/" (l.id) "/reinstate"} { "Reinstate…" }
                            } @else {
                                a.button.secondary #suspend href={"/licenses/" (l.id) "/suspend"} { "Suspend…" }
                            }
                            a.button.danger #revoke href={"/licenses/" (l.id) "/revoke"} { "Revoke…" }
                        }
                    }
                }
            }
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
                                td.mono { (i.instance_id) }
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
pub fn confirm(c: &Chrome, csrf: &str, l: &License, confirm: Confirm<'_>) -> Markup {
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
                    input type="hidden" name="csrf" value=(csrf);
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

pub fn policies(
    c: &Chrome,
    csrf: &str,
    policies: &[Policy],
    error: Option<&str>,
    done: Option<&str>,
) -> Markup {
    layout(
        c,
        "Policies",
        html! {
            h1 { "Policies" }
            @if let Some(done) = done { p.banner.ok #done { (done) } }
            @if let Some(e) = error { p.banner.error #form-error { (e) } }
            table #policies {
                thead { tr { th { "Name" } th { "Default duration" } th { "Features" } th { "Users" } th { "Refresh" } th { "Offline grace" } th { "Extensions count" } th { "Trial" } } }
                tbody {
                    @for p in policies {
                        tr {
                            td { (p.name) }
                            td { (p.duration.map_or_else(|| "none".to_owned(), tessera_protocol::human::format_duration)) }
                            td { @if p.features.is_empty() { span.muted { "none" } } @else { (p.features.join(", ")) } }
                            td { (p.max_users.map_or_else(|| "unlimited".to_owned(), |n| n.to_string())) }
                            td { (tessera_protocol::human::format_duration(p.refresh_interval)) }
                            td { (tessera_protocol::human::format_duration(p.offline_grace)) }
                            td { (match p.renewal_basis { tessera_protocol::wire::RenewalBasis::FromExpiry => "from expiry", tessera_protocol::wire::RenewalBasis::FromNow => "from now" }) }
                            td { @if p.trial { "yes" } @else { "no" } }
                        }
                    }
                }
            }
            h2 { "New policy" }
            form.card method="post" action="/policies" {
                input type="hidden" name="csrf" value=(csrf);
                div.fields {
                    div { label for="name" { "Name" } input #name name="name" required; }
                    div { label for="duration" { "Default duration (e.g. 365d; empty = none)" } input #duration name="duration"; }
                    div { label for="features" { "Default features, comma-separated" } input #features name="features"; }
                    div { label for="refresh_interval" { "Refresh interval" } input #refresh_interval name="refresh_interval" value="1h"; }
                    div { label for="offline_grace" { "Offline grace" } input #offline_grace name="offline_grace" value="7d"; }
                    div { label for="renewal_basis" { "Extensions count" }
                          select #renewal_basis name="renewal_basis" { option value="from_expiry" { "from the current expiry" } option value="from_now" { "from now" } } }
                    div { label for="renew_before" { "Auto-renew this long before expiry" } input #renew_before name="renew_before" value="7d"; }
                }
                label style="margin-bottom: 1rem;" { input type="checkbox" name="trial" value="on"; " Trial licenses" }
                label style="margin-bottom: 1rem;" { input #auto_renew type="checkbox" name="auto_renew" value="on"; " Renew licenses automatically (by the default duration)" }
                button #create-policy type="submit" { "Create policy" }
            }
        },
    )
}

pub fn events(c: &Chrome, events: &[EventView], license: &str, next: Option<i64>) -> Markup {
    layout(
        c,
        "Events",
        html! {
            h1 { "Events" }
            form.row.card method="get" action="/events" style="margin-bottom: 1rem;" {
                div { label for="license" { "License id" } input #license name="license" value=(license) style="width: 26rem;"; }
                button type="submit" { "Filter" }
                @if !license.is_empty() { a.button.secondary href="/events" { "All events" } }
            }
            (event_table(events, c.now))
            @if let Some(before) = next {
                div.pager { span {} a #older href={"/events?license=" (license) "&before=" (before)} { "older →" } }
            }
        },
    )
}

pub fn error_page(c: &Chrome, title: &str, message: &str, back: Option<&str>) -> Markup {
    layout(
        c,
        title,
        html! {
            div.card style="max-width: 40rem; margin: 2rem auto;" {
                h1 #error-title { (title) }
                p #error-message { (message) }
                p { @if let Some(back) = back { a href=(back) { "← Back" } " · " } a href="/" { "Dashboard" } }
            }
        },
    )
}
