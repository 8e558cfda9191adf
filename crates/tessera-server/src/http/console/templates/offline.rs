//! The offline activation page (docs/PROTOCOL.md §25).

use maud::{Markup, html};

use super::{Chrome, layout};

/// The upload form; a refusal comes back above it with what was entered.
pub fn offline(c: &Chrome, error: Option<&str>, request: &str, ttl: &str) -> Markup {
    layout(
        c,
        "Offline activation",
        html! {
            h1 { "Offline activation" }
            p.muted {
                "An isolated machine writes a request (" code { "tessera offline request" }
                ", or its agent's page). Paste the file, or type the TSRQ1 code read over the "
                "phone: the machine takes a place like an online activation, and the response "
                "file downloads — it works on that machine only. Answer the same request again "
                "after an extension to renew it by file."
            }
            @if let Some(e) = error { p.banner.error #form-error { (e) } }
            form.card method="post" action="/offline" {
                input type="hidden" name="csrf" value=(c.csrf());
                div.fields {
                    div { label for="request" { "Request (file or code)" }
                          textarea #request name="request" rows="6" cols="72" required { (request) } }
                    div { label for="ttl" { "Trustworthy offline for (e.g. 365d, at most 400d)" }
                          input #ttl name="ttl" value=(ttl); }
                }
                button #offline-activate type="submit" { "Answer and download the response" }
            }
        },
    )
}
