//! The policies page.

use maud::{Markup, html};

use super::{Chrome, layout};
use crate::model::Policy;

pub fn policies(
    c: &Chrome,
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
                thead { tr { th { "Name" } th { "Product" } th { "Default duration" } th { "Features" } th { "Users" } th { "Refresh" } th { "Offline grace" } th { "Extensions count" } th { "Trial" } } }
                tbody {
                    @for p in policies {
                        tr {
                            td { (p.name) }
                            td { (p.product.as_deref().unwrap_or("every product")) }
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
            @if c.can(crate::access::Action::Manage) {
            h2 { "New policy" }
            form.card method="post" action="/policies" {
                input type="hidden" name="csrf" value=(c.csrf());
                div.fields {
                    div { label for="name" { "Name" } input #name name="name" required; }
                    div { label for="product" { "Product" } input #product name="product" value="default"; }
                    div { label for="duration" { "Default duration (e.g. 365d; empty = none)" } input #duration name="duration"; }
                    div { label for="features" { "Default features, comma-separated" } input #features name="features"; }
                    div { label for="refresh_interval" { "Refresh interval" } input #refresh_interval name="refresh_interval" value="1h"; }
                    div { label for="offline_grace" { "Offline grace" } input #offline_grace name="offline_grace" value="7d"; }
                    div { label for="renewal_basis" { "Extensions count" }
                          select #renewal_basis name="renewal_basis" { option value="from_expiry" { "from the current expiry" } option value="from_now" { "from now" } } }
                    div { label for="renew_before" { "Auto-renew this long before expiry" } input #renew_before name="renew_before" value="7d"; }
                    div { label for="on_expiry" { "On expiry" }
                          select #on_expiry name="on_expiry" { option value="lose_access" { "features stop" } option value="keep_versions_released_before_expiry" { "versions released before expiry keep working" } option value="keep_access" { "features stay on (marked expired)" } } }
                    div { label for="enforcement" { "Enforcement" }
                          select #enforcement name="enforcement" { option value="enforce" { "enforce: refuse what the rules refuse" } option value="warn" { "warn: allow, and the product shows a warning" } option value="observe" { "observe: allow, the vendor sees it" } } }
                    (super::machine_fields(&crate::http::console::forms::MachineFields::default()))
                }
                label style="margin-bottom: 1rem;" { input type="checkbox" name="trial" value="on"; " Trial licenses" }
                label style="margin-bottom: 1rem;" { input #auto_renew type="checkbox" name="auto_renew" value="on"; " Renew licenses automatically (by the default duration)" }
                button #create-policy type="submit" { "Create policy" }
            }
            }
        },
    )
}
