// The Node client, measured as bench/clients.sh measures every client:
// `hasFeature` (median of batches, the loop included), verification of the
// authority's document (median of batches), and the propagation of an
// extension to N clients of one license in this process, from the admin
// API's answer to each client's listener seeing the new revision.
//
// Environment: URL, PUBLIC_KEY, ADMIN_KEY, LICENSE, TOKEN, CLIENTS, ROUNDS.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { Client, LicenseToken, TrustedKeys, verify } from "../../clients/node/src/index.js";

const env = process.env;
const N = Number(env.CLIENTS ?? 100);
const ROUNDS = Number(env.ROUNDS ?? 5);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => Number(process.hrtime.bigint()) / 1e6; // ms

function medianNs(batches, perBatch, f) {
  const each = [];
  for (let b = 0; b < batches; b++) {
    const t = process.hrtime.bigint();
    f(perBatch);
    each.push(Number(process.hrtime.bigint() - t) / perBatch);
  }
  return each.sort((a, b) => a - b)[Math.floor(batches / 2)];
}

const clients = [];
for (let i = 0; i < N; i++) {
  const c = new Client({ servers: [env.URL], publicKeys: [env.PUBLIC_KEY], stateDir: mkdtempSync(join(tmpdir(), "tessera-bench-")) }).start();
  await c.activate(env.TOKEN);
  clients.push(c);
}
const deadline = Date.now() + 60_000;
while (!clients.every((c) => c.connected)) {
  if (Date.now() > deadline) throw new Error("not every stream open within 60 s");
  await sleep(20);
}

const first = clients[0];
let sink = 0;
const hasFeature = medianNs(21, 2_000_000, (n) => {
  for (let i = 0; i < n; i++) if (first.hasFeature("sso")) sink++;
});
const doc = Buffer.from(first.document);
const keys = new TrustedKeys().pin(env.PUBLIC_KEY);
const tfp = new LicenseToken(env.TOKEN).fingerprint();
const t0 = Math.floor(Date.now() / 1000);
const verifyNs = medianNs(21, 200, (n) => {
  for (let i = 0; i < n; i++) verify(doc, keys, tfp, t0);
});

let target = null;
const arrivals = new Map();
clients.forEach((c, i) => c.onChange((v) => {
  if (target !== null && v.revision >= target && !arrivals.has(i)) arrivals.set(i, now());
}));

const samples = [];
for (let r = 0; r < ROUNDS; r++) {
  target = first.verdict.revision + 1;
  arrivals.clear();
  const res = await fetch(`${env.URL}/v1/admin/licenses/${env.LICENSE}/extend`, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${env.ADMIN_KEY}` }, body: JSON.stringify({ by: "1d" }) });
  const answered = now();
  const body = await res.json();
  if (body.revision !== target) throw new Error(`revision ${body.revision}, expected ${target}`);
  const end = Date.now() + 10_000;
  while (arrivals.size < N && Date.now() < end) await sleep(2);
  if (arrivals.size < N) throw new Error(`${N - arrivals.size} clients missed revision ${target} within 10 s`);
  for (const t of arrivals.values()) samples.push(Math.max(0, t - answered));
  await sleep(500);
}
samples.sort((a, b) => a - b);
const q = (p) => samples[Math.round((samples.length - 1) * p)];
console.log(`RESULT language=node has_feature_ns=${hasFeature.toFixed(2)} verify_us=${(verifyNs / 1e3).toFixed(1)} clients=${N} rounds=${ROUNDS} p50_ms=${q(0.5).toFixed(2)} p99_ms=${q(0.99).toFixed(2)} max_ms=${samples.at(-1).toFixed(2)} sink=${sink > 0}`);
for (const c of clients) c.close();
process.exit(0);
