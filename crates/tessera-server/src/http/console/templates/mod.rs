//! The console's markup (maud: compile-time checked, escaped by default).
//! Every page is built here; handlers pass data, never markup.

mod licenses;
mod machines;
mod offline;
mod policies;

pub use licenses::*;
pub use machines::*;
pub use offline::*;
pub use policies::*;

use maud::{DOCTYPE, Markup, html};
use tessera_protocol::wire::EventView;
use tessera_protocol::{Status, Timestamp};

use crate::model::{License, Overview, Session};

/// What every page shows around its content.
pub struct Chrome<'a> {
    /// The signed-in session (none on the login page).
    pub session: Option<&'a Session>,
    /// What its key may do (none on the login page).
    pub principal: Option<&'a crate::access::Principal>,
    /// The nav entry to highlight.
    pub here: &'a str,
    /// Now (for relative times).
    pub now: Timestamp,
}

impl Chrome<'_> {
    /// Whether the signed-in key may do `action`: actions it may not are
    /// not shown (and refused if posted anyway).
    pub fn can(&self, action: crate::access::Action) -> bool {
        self.principal.is_some_and(|p| p.may(action).is_ok())
    }

    /// The session's CSRF token, for the forms of the page.
    pub fn csrf(&self) -> &str {
        self.session.map_or("", |s| s.csrf.as_str())
    }
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
    use crate::access::Action;
    let nav = [
        ("dashboard", "/", "Dashboard", Action::Read),
        ("licenses", "/licenses", "Licenses", Action::Read),
        ("issue", "/licenses/new", "Issue", Action::Issue),
        ("policies", "/policies", "Policies", Action::Read),
        ("offline", "/offline", "Offline", Action::Issue),
        ("events", "/events", "Events", Action::Read),
    ];
    let head = html! { link rel="stylesheet" href="/console.css"; };
    let title = format!("{title} · Tessera");
    document(
        &title,
        head,
        html! {
                body {
                    header {
                        a.brand href="/" { "Tessera" }
                        @if let Some(session) = c.session {
                            @for (key, href, label, action) in nav {
                                @if c.can(action) {
                                    a href=(href) class=[(key == c.here).then_some("here")] { (label) }
                                }
                            }
                            span.who {
                                span { "signed in with key " strong { (session.key_name) }
                                    @if let Some(p) = c.principal { " " span.muted #role { "(" (p.role) ")" } } }
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
        },
    )
}

/// The HTML document around a page's `body`: one head for the console and
/// the agent's status page, which adds its `head` items.
pub fn document(title: &str, head: Markup, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                (head)
            }
            (body)
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
            (product_filter(o))
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

/// The products the counts cover, with a link to each product's own.
fn product_filter(o: &Overview) -> Markup {
    let mut products: Vec<&str> = o.by_product.iter().map(|(p, _, _)| p.as_str()).collect();
    products.dedup();
    html! {
        @if products.len() > 1 {
            p #products {
                "Products: "
                @for p in &products {
                    a href={"/?product=" (p)} { (p) } " "
                }
                a href="/" { "(all)" }
            }
        } @else if let Some(p) = products.first() {
            p.muted #products { "Product " strong { (p) } }
        }
    }
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
