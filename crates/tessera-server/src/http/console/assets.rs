//! The console's stylesheet and script, embedded in the binary.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;

const STYLE: &str = r#"
:root { --fg: #1d2330; --muted: #5b6475; --line: #e3e6eb; --bg: #f6f7f9; --accent: #2563eb; --bad: #b91c1c; --good: #15803d; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, sans-serif; margin: 0; color: var(--fg); background: var(--bg); }
header { background: #111827; color: #fff; display: flex; align-items: center; gap: 1.5rem; padding: .6rem 1.5rem; }
header a { color: #d1d5db; text-decoration: none; } header a:hover, header a.here { color: #fff; }
header .brand { font-weight: 700; color: #fff; margin-right: 1rem; }
header .who { margin-left: auto; color: #9ca3af; display: flex; gap: .8rem; align-items: center; }
header form { margin: 0; } header button { background: transparent; border: 1px solid #4b5563; color: #e5e7eb; padding: .2rem .7rem; }
main { max-width: 72rem; margin: 1.5rem auto; padding: 0 1.5rem; }
h1 { font-size: 1.5rem; margin: 0 0 1rem; } h2 { font-size: 1.15rem; margin: 1.8rem 0 .6rem; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 1rem 1.2rem; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(11rem, 1fr)); gap: .8rem; }
.cards .card .n { font-size: 1.8rem; font-weight: 650; } .cards .card .l { color: var(--muted); }
.cards a.card { color: inherit; text-decoration: none; } .cards a.card:hover { border-color: var(--accent); }
table { width: 100%; border-collapse: collapse; background: #fff; border: 1px solid var(--line); border-radius: 8px; }
th, td { text-align: left; padding: .5rem .7rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; font-size: .85rem; }
td.mono, .mono { font-family: ui-monospace, monospace; font-size: .85rem; }
.badge { display: inline-block; padding: .05rem .55rem; border-radius: 99px; font-size: .82rem; font-weight: 600; }
.badge.active, .badge.trial, .badge.valid, .badge.yes { background: #dcfce7; color: #14532d; }
.badge.expired, .badge.revoked, .badge.not_found { background: #fee2e2; color: #7f1d1d; }
.badge.suspended, .badge.no { background: #fef3c7; color: #78350f; }
.banner { padding: .6rem .9rem; border-radius: 6px; margin-bottom: 1rem; }
.banner.ok { background: #dcfce7; color: #14532d; } .banner.warn { background: #fef3c7; color: #78350f; }
.banner.error { background: #fee2e2; color: #7f1d1d; }
form.inline { display: inline; }
label { display: block; color: var(--muted); font-size: .88rem; margin-bottom: .2rem; }
input, select { font: inherit; padding: .35rem .5rem; border: 1px solid #cbd2da; border-radius: 5px; background: #fff; }
input[type=checkbox] { width: auto; }
button, .button { font: inherit; padding: .4rem 1rem; border-radius: 6px; border: 1px solid #1d4ed8; background: var(--accent); color: #fff; cursor: pointer; text-decoration: none; display: inline-block; }
button.danger, .button.danger { background: var(--bad); border-color: #991b1b; }
button.secondary, .button.secondary { background: #fff; color: var(--fg); border-color: #cbd2da; }
.fields { display: grid; grid-template-columns: repeat(auto-fit, minmax(14rem, 1fr)); gap: .8rem 1rem; margin-bottom: 1rem; }
.row { display: flex; gap: .6rem; align-items: end; flex-wrap: wrap; }
dl.facts { display: grid; grid-template-columns: 11rem 1fr; gap: .35rem 1rem; margin: 0; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; }
.grid2 { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; } @media (max-width: 800px) { .grid2 { grid-template-columns: 1fr; } }
.empty { color: var(--muted); padding: 1.2rem; text-align: center; background: #fff; border: 1px dashed var(--line); border-radius: 8px; }
.token { font-family: ui-monospace, monospace; font-size: 1rem; width: 100%; padding: .6rem; }
.pager { display: flex; justify-content: space-between; margin-top: .8rem; color: var(--muted); }
.muted { color: var(--muted); }
.over { color: var(--bad); font-weight: 600; }
"#;

const SCRIPT: &str = r#"
// Copy the token shown once.
for (const b of document.querySelectorAll('[data-copy]')) {
  b.addEventListener('click', async () => {
    const field = document.getElementById(b.dataset.copy);
    field.select();
    try { await navigator.clipboard.writeText(field.value); } catch (e) { document.execCommand('copy'); }
    b.textContent = 'Copied';
  });
}
// The fleet view of a license page follows deliveries live.
const fleet = document.querySelector('[data-fleet]');
if (fleet) {
  const cell = (text, cls) => { const td = document.createElement('td'); td.textContent = text; if (cls) td.className = cls; return td; };
  const badge = (text, cls) => { const td = document.createElement('td'); const s = document.createElement('span'); s.className = 'badge ' + cls; s.textContent = text; td.appendChild(s); return td; };
  const render = (f) => {
    document.getElementById('delivered').textContent = `Delivered to ${f.summary.current} of ${f.summary.total}`;
    document.getElementById('connected').textContent = `${f.summary.connected} connected`;
    const seats = document.getElementById('seats');
    const used = f.summary.seats_in_use == null ? 'no usage reported' : `${f.summary.seats_in_use} in use`;
    seats.textContent = f.summary.max_users == null ? `Seats: ${used} (no limit)`
      : `Seats: ${used} of ${f.summary.max_users}` + (f.summary.seats_exceeded ? ' — over the limit' : '');
    seats.className = f.summary.seats_exceeded ? 'over' : '';
    const body = document.getElementById('fleet-rows');
    const maxUsers = fleet.dataset.maxUsers ? Number(fleet.dataset.maxUsers) : null;
    body.replaceChildren(...f.instances.map((i) => {
      const tr = document.createElement('tr');
      const id = cell(i.instance_id, 'mono');
      if (i.keygen_api) { const s = document.createElement('span'); s.className = 'badge no'; s.title = 'validates through the Keygen-compatible API'; s.textContent = 'Keygen API'; id.append(' ', s); }
      tr.append(id, cell(i.app_version || '—'), cell(i.last_seen.replace('T', ' ').replace('Z', ' UTC')));
      tr.append(i.held_revision === f.revision ? badge(`${i.held_revision} (current)`, 'yes') : badge(i.held_revision == null ? 'unknown' : String(i.held_revision), 'no'));
      tr.append(i.stream_connected ? badge('connected', 'yes') : badge('not connected', 'no'));
      const users = i.users == null ? '—' : (maxUsers == null ? String(i.users) : `${i.users} of ${maxUsers}`);
      tr.append(cell(users, maxUsers != null && i.users > maxUsers ? 'over' : ''));
      return tr;
    }));
    document.getElementById('fleet-empty').hidden = f.instances.length > 0;
  };
  const poll = async () => {
    try {
      const r = await fetch(fleet.dataset.fleet, { headers: { Accept: 'application/json' } });
      if (r.ok) render(await r.json());
    } catch (e) { /* the authority is restarting: try again */ }
  };
  setInterval(poll, 1000);
}
"#;

/// `GET /console.css`.
pub(super) async fn style() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=300"),
        ],
        STYLE,
    )
}

/// `GET /console.js`.
pub(super) async fn script() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=300"),
        ],
        SCRIPT,
    )
}
