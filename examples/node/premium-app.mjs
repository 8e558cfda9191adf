// A tiny product with a premium feature, checked by the Tessera Node client:
// the Metabase scenario end to end (see examples/README.md).
//
//   TESSERA_SERVER=http://127.0.0.1:7400 TESSERA_PUBLIC_KEY=k4.public.… \
//   TESSERA_TOKEN=tsr_… PORT=3000 node examples/node/premium-app.mjs
//
// Routes: GET / (the page), GET /status (JSON), POST /refresh (ask the
// authority now), POST /activate (form field `token`).
import { createServer } from "node:http";

import { Client } from "../../clients/node/src/index.js";

const license = new Client({
  servers: [process.env.TESSERA_SERVER ?? "http://127.0.0.1:7400"],
  publicKeys: [process.env.TESSERA_PUBLIC_KEY],
  token: process.env.TESSERA_TOKEN || null,
  stateDir: process.env.TESSERA_STATE_DIR ?? "tessera-state",
});
license.onChange((v) => console.log(`license: ${v.state} (revision ${v.revision})`));

const status = () => {
  const { verdict: v, lastVerifiedAt, lastError } = license.status;
  return { state: v.state, reason: v.reason, revision: v.revision, premium: license.hasFeature("premium"), features: v.features, last_verified_at: lastVerifiedAt, last_error: lastError?.kind ?? null };
};

const escape = (s) => String(s).replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
const page = () => {
  const v = license.verdict;
  const premium = license.hasFeature("premium") ? "<p>Revenue by region, forecast, cohorts…</p>" : "<p>Locked: the license does not grant <code>premium</code> now.</p>";
  return `<!doctype html><title>Premium app</title><h1>Premium app</h1><p>License: <b id=state>${v.state}</b>${v.reason ? ` (${escape(v.reason)})` : ""}, revision ${v.revision}</p><section><h2>Premium report</h2>${premium}</section><form method=post action=/refresh><button>Refresh now</button></form><form method=post action=/activate><input name=token size=48 placeholder=tsr_…><button>Enter license</button></form>`;
};

const server = createServer(async (req, res) => {
  const send = (code, type, body) => res.writeHead(code, { "content-type": type }).end(body);
  const route = `${req.method} ${req.url}`;
  if (route === "GET /") return send(200, "text/html; charset=utf-8", page());
  if (route === "GET /status") return send(200, "application/json", JSON.stringify(status()));
  if (req.method !== "POST" || !["/refresh", "/activate"].includes(req.url)) return send(404, "text/plain", "not found\n");
  let body = "";
  for await (const chunk of req) body += chunk;
  try {
    if (req.url === "/refresh") await license.refresh();
    else await license.activate((new URLSearchParams(body).get("token") ?? "").trim());
  } catch (e) {
    // A typo, the authority unreachable: said, and the verdict kept.
    return send(422, "application/json", JSON.stringify({ error: e.message, status: status() }));
  }
  send(200, "application/json", JSON.stringify(status()));
});

license.start(); // never waits for the network: the last verdict from disk at once
server.listen(Number(process.env.PORT ?? 3000), "127.0.0.1", () => console.log(`premium app on http://127.0.0.1:${server.address().port}/`));
