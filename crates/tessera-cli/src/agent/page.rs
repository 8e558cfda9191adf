//! The agent's status page: server-rendered (maud escapes everything), a
//! few lines of script for the two buttons and to notice changes.

use maud::{Markup, PreEscaped, html};
use tessera_client::Timestamp;
use tessera_server::http::console::document;

use super::view::StatusView;

const STYLE: &str = r"
body { font: 16px/1.5 system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #1d2330; }
main { max-width: 44rem; margin: 2rem auto; background: #fff; padding: 1.5rem 2rem; border-radius: 8px;
       box-shadow: 0 1px 3px rgba(0,0,0,.1); }
h1 { font-size: 1.4rem; margin: 0 0 1rem; }
.state { display: inline-block; padding: .2rem .7rem; border-radius: 99px; font-weight: 600; }
.state.valid { background: #dff5e3; color: #14532d; }
.state.expired, .state.revoked, .state.suspended, .state.not_found { background: #fde2e1; color: #7f1d1d; }
.state.unverified { background: #fef3c7; color: #78350f; }
.warning { background: #fef3c7; border-left: 4px solid #d97706; padding: .5rem .8rem; }
.warning.urgent { background: #fde2e1; border-color: #dc2626; }
dl { display: grid; grid-template-columns: 10rem 1fr; gap: .3rem 1rem; }
dt { color: #5b6475; } dd { margin: 0; }
button { font: inherit; padding: .4rem 1rem; border-radius: 6px; border: 1px solid #1d4ed8; background: #2563eb; color: #fff; cursor: pointer; }
form { margin-top: 1.5rem; display: flex; gap: .5rem; align-items: end; flex-wrap: wrap; }
label { display: block; color: #5b6475; font-size: .9rem; }
input { font: inherit; padding: .35rem .5rem; width: 24rem; max-width: 100%; }
#message.error { color: #b91c1c; }
";

const SCRIPT: &str = r"
const message = document.getElementById('message');
async function call(path, body) {
  message.className = ''; message.textContent = 'Asking the authority…';
  try {
    const r = await fetch(path, { method: 'POST', headers: { 'Content-Type': 'application/json' },
                                  body: JSON.stringify(body || {}) });
    const answer = await r.json();
    if (!r.ok) {
      message.className = 'error';
      message.textContent = answer.error ? answer.error.message : ('The agent answered ' + r.status);
      return;
    }
    location.reload();
  } catch (e) {
    message.className = 'error';
    message.textContent = 'The agent did not answer: ' + e;
  }
}
document.getElementById('refresh').addEventListener('click', () => call('/v1/refresh'));
document.getElementById('activate-form').addEventListener('submit', (e) => {
  e.preventDefault();
  call('/v1/activate', { token: document.getElementById('token').value });
});
// Offline activation (no network): the request to send, the response to paste.
document.getElementById('offline-request').addEventListener('click', async () => {
  const r = await fetch('/v1/offline/request', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
  const answer = await r.json();
  const out = document.getElementById('offline-code');
  out.textContent = r.ok ? answer.request : (answer.error ? answer.error.message : 'The agent answered ' + r.status);
});
document.getElementById('offline-form').addEventListener('submit', (e) => {
  e.preventDefault();
  call('/v1/offline/import', { response: document.getElementById('offline-response').value.trim() });
});
// A change that reaches the agent by itself shows without a click.
const shown = document.body.dataset.revision + '|' + document.body.dataset.state;
setInterval(async () => {
  try {
    const s = await (await fetch('/v1/status')).json();
    if ((s.revision ?? '') + '|' + s.state !== shown) location.reload();
  } catch (e) { /* the agent is restarting; try again */ }
}, 3000);
";

fn when(t: Option<Timestamp>) -> String {
    t.map_or_else(
        || "—".into(),
        |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

fn state_label(v: &StatusView) -> String {
    match (v.state, v.reason) {
        ("valid", _) => "Valid".into(),
        ("expired", _) => "Expired".into(),
        ("suspended", _) => "Suspended by the vendor".into(),
        ("revoked", _) => "Revoked by the vendor".into(),
        ("not_found", _) => "Unknown license token".into(),
        (_, Some("no_document")) => "No license yet — activate a token below".into(),
        (_, Some("clock_tampered")) => "Unverified: this machine's clock was set back".into(),
        (_, Some("stale")) => "Unverified: the authority has not been reached for too long".into(),
        (state, _) => state.into(),
    }
}

/// An offline license (no authority configured): days until its next file
/// is due — the held document's end, or the license's if sooner.
fn renewal_due_in(v: &StatusView) -> Option<i64> {
    if v.server.is_some() || v.revision.is_none() {
        return None;
    }
    let due = match (v.fresh_until, v.expires_at) {
        (Some(f), Some(e)) => f.min(e),
        (f, e) => f.or(e)?,
    };
    Some(super::view::days_left(due - chrono::Utc::now()))
}

/// The expiry warning inside 30, 7 and 1 days; `(text, urgent)`. For an
/// offline license the same horizons apply to its next file.
fn warning(v: &StatusView) -> Option<(String, bool)> {
    if let Some(due) = renewal_due_in(v).filter(|d| *d <= 30 && v.state == "valid") {
        let when = if due <= 1 {
            "within a day".to_owned()
        } else {
            format!("in {due} days")
        };
        return Some((
            format!(
                "This offline license needs its next file {when}: make a request and send it to your vendor."
            ),
            due <= 7,
        ));
    }
    let days = v.days_left?;
    if v.state == "expired" || days <= 0 {
        return Some((
            "This license has expired. Renew it with your vendor, then press Refresh now.".into(),
            true,
        ));
    }
    match days {
        1 => Some((
            "This license expires within a day. Renew it now.".into(),
            true,
        )),
        2..=7 => Some((
            format!("This license expires in {days} days. Renew it soon."),
            true,
        )),
        8..=30 => Some((format!("This license expires in {days} days."), false)),
        _ => None,
    }
}

/// "machine 2 of 3 · lease renews every 5 min".
fn machine_line(m: &super::view::MachineStatus) -> String {
    let place = match (m.id.is_some(), m.max) {
        (true, Some(max)) => format!("machine {} of {max}", m.used),
        (true, None) => format!("machine {} (no limit)", m.used),
        (false, Some(max)) => format!("no place ({} of {max} taken)", m.used),
        (false, None) => "no place".to_owned(),
    };
    match m.lease_renews_every_secs {
        Some(secs) if m.id.is_some() && secs >= 60 && secs % 60 == 0 => {
            format!("{place} · lease renews every {} min", secs / 60)
        }
        Some(secs) if m.id.is_some() => format!("{place} · lease renews every {secs} s"),
        _ => place,
    }
}

/// The page.
pub fn render(v: &StatusView) -> Markup {
    let expires = match (v.expires_at, v.days_left) {
        (Some(t), Some(1)) => format!("{} (less than a day left)", when(Some(t))),
        (Some(t), Some(days)) if days > 0 => format!("{} ({days} days left)", when(Some(t))),
        (Some(t), _) => format!("{} (expired)", when(Some(t))),
        (None, _) if v.revision.is_some() => "never (perpetual)".into(),
        (None, _) => "—".into(),
    };
    let head = html! { style { (PreEscaped(STYLE)) } };
    document(
        "License status",
        head,
        html! {
                body data-revision=(v.revision.map(|r| r.to_string()).unwrap_or_default()) data-state=(v.state) {
                    main {
                        h1 { "License status" }
                        p { span #state class={"state " (v.state)} { (state_label(v)) } }
                        @if let Some(kept) = v.after_expiry {
                            p #after-expiry class="warning" { (match kept {
                                tessera_protocol::wire::OnExpiry::KeepVersionsReleasedBeforeExpiry => "The license has expired; this version, released before the expiry, stays covered.",
                                _ => "The license has expired; its policy keeps the features on.",
                            }) }
                        }
                        @if !v.warnings.is_empty() && v.enforcement == Some(tessera_protocol::wire::Enforcement::Warn) {
                            p #policy-warnings class="warning urgent" { "The license's policy would refuse this (" (v.warnings.join(", ")) "); it is allowed for now." }
                        }
                        @if let Some((text, urgent)) = warning(v) {
                            p #warning class=(if urgent { "warning urgent" } else { "warning" }) { (text) }
                        }
                        dl {
                            dt { "Customer" } dd #customer { (v.customer.as_deref().unwrap_or("—")) }
                            dt { "Plan" } dd #plan { (v.plan.as_deref().unwrap_or("—")) }
                            dt { "Features" } dd #features {
                                @if v.features.is_empty() { "—" } @else { (tessera_protocol::entitlements::describe(&v.features, &v.entitlements)) }
                            }
                            dt { "Users" } dd #max-users {
                                (v.max_users.map_or_else(|| "unlimited".to_owned(), |n| n.to_string()))
                                @if v.seats_exceeded { " — " strong { "more users reported than the license allows" } }
                            }
                            @if let Some(m) = &v.machine {
                                dt { "Machine" } dd #machine { (machine_line(m)) }
                            }
                            dt { "Expires" } dd #expires { (expires) }
                            dt { "Revision" } dd #revision { (v.revision.map_or_else(|| "—".to_owned(), |r| r.to_string())) }
                            dt { "Last verified" } dd #last-verified { (when(v.last_verified_at)) }
                            dt { "Updates" } dd #updates {
                                @if let Some(due) = renewal_due_in(v) {
                                    "offline license, renews by file, next due "
                                    (if due == 1 { "within a day".to_owned() } else if due > 0 { format!("in {due} days") } else { "now".to_owned() })
                                } @else if v.stream_connected { "live (pushed by the authority)" } @else { "polling" }
                            }
                            dt { "Offline since" } dd #offline-since {
                                @if v.offline_since.is_some() { (when(v.offline_since)) } @else { "online" }
                            }
                            dt { "Last error" } dd #last-error {
                                @if let Some(e) = &v.last_error { (e.message) " (" (when(Some(e.at))) ")" } @else { "none" }
                            }
                            dt { "Instance" } dd #instance { (v.instance_id) }
                        }
                        button #refresh type="button" { "Refresh now" }
                        form #activate-form {
                            div {
                                label for="token" { "License token" }
                                input #token name="token" autocomplete="off" spellcheck="false" placeholder="tsr_…";
                            }
                            button #activate type="submit" { "Activate" }
                        }
                        details #offline {
                            summary { "Offline activation (no network to the authority)" }
                            p { "Make a request, send it to your vendor (or read them its last line), then paste the response they send back." }
                            button #offline-request type="button" { "Make an offline request" }
                            pre #offline-code {}
                            form #offline-form {
                                label for="offline-response" { "Response" }
                                textarea #offline-response rows="4" spellcheck="false" placeholder="{\"format\": \"tessera-offline-response/1\", …}" {}
                                button #offline-import type="submit" { "Import the response" }
                            }
                        }
                        p #message role="status" {}
                    }
                    script { (PreEscaped(SCRIPT)) }
                }
        },
    )
}
