// The Node client against a real `tessera server` process (the binary in
// $TESSERA_BIN): issue, activate, an extension on the stream within 1 s,
// the ack, the authority stopped with the verdict kept, a restart from disk,
// revoke, and the same token re-activated re-checks (the seed bug).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

import { Client, ClientError, ProtocolError, QuotaError } from "../src/index.js";

const BIN = process.env.TESSERA_BIN;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function freePort() {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function startServer(data, port) {
  const proc = spawn(BIN, ["server", "--listen", `127.0.0.1:${port}`, "--data-dir", data], { stdio: ["ignore", "pipe", "ignore"] });
  const lines = createInterface({ input: proc.stdout });
  let publicKey;
  const url = await new Promise((resolve, reject) => {
    lines.on("line", (line) => {
      if (line.includes("public key:")) publicKey = line.split("public key:")[1].trim();
      if (line.startsWith("listening on ")) resolve(line.slice("listening on ".length).trim());
    });
    proc.on("exit", () => reject(new Error("the server exited")));
  });
  const adminKey = readFileSync(join(data, "admin.key"), "utf-8").trim();
  const admin = async (method, path, body) => {
    const res = await fetch(url + path, { method, headers: { authorization: `Bearer ${adminKey}`, "content-type": "application/json" }, body: body ? JSON.stringify(body) : undefined });
    return res.json();
  };
  const stop = () =>
    new Promise((r) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return r();
      proc.on("exit", r);
      proc.kill("SIGTERM");
    });
  return { url, publicKey, admin, stop };
}

test("the client against a real authority", { skip: !BIN && "set TESSERA_BIN to the tessera binary" }, async (t) => {
  // Whatever happens, nothing is left running: a failed assertion must not
  // leave a stream keeping the test process alive.
  const running = [];
  t.after(async () => {
    for (const r of running) await r();
  });
  const work = mkdtempSync(join(tmpdir(), "tessera-node-"));
  const data = join(work, "data");
  const state = join(work, "state");
  const port = await freePort();
  let server = await startServer(data, port);
  running.push(() => server.stop());
  const issued = await server.admin("POST", "/v1/admin/licenses", { customer: "Acme", plan: "p", duration: "2d", features: ["sso"] });
  const lic = issued.license.id;
  const token = issued.token;

  let client = new Client({ servers: [server.url], publicKeys: [server.publicKey], stateDir: state }).start();
  running.push(() => client.close());
  assert.equal(client.verdict.state, "unverified");
  const typo = token.slice(0, -1) + (token.endsWith("A") ? "B" : "A");
  await assert.rejects(client.activate(typo), ProtocolError);
  const v = await client.activate(token);
  assert.equal(v.state, "valid");
  assert.equal(v.plan, "p");
  assert.equal(v.customer, "Acme");
  assert.equal(v.daysLeft, 2);
  assert.ok(v.expiresAt > Date.now() / 1000);
  assert.ok(client.hasFeature("sso"));
  assert.equal(statSync(join(state, "tessera-state.json")).mode & 0o777, 0o600);

  // An extension arrives on the change stream, with no request.
  for (let i = 0; i < 250 && !client.connected; i++) await sleep(20);
  assert.ok(client.connected, "the stream is open");
  const seen = [];
  client.onChange((v) => seen.push(v));
  await server.admin("POST", `/v1/admin/licenses/${lic}/extend`, { by: "30d" });
  const pushedAt = Date.now();
  while (client.verdict.revision !== 2 && Date.now() - pushedAt < 5000) await sleep(5);
  const took = Date.now() - pushedAt;
  assert.equal(client.verdict.revision, 2);
  assert.ok(took < 1000, `seen after ${took} ms`);
  assert.equal(seen.at(-1).revision, 2);
  // The held revision is acknowledged: the fleet view shows it.
  let held;
  for (let i = 0; i < 50; i++) {
    const fleet = await server.admin("GET", `/v1/admin/licenses/${lic}/instances`);
    held = fleet.instances[0]?.held_revision;
    if (held === 2) break;
    await sleep(100);
  }
  assert.equal(held, 2);

  // The authority goes away: the verdict stays, the error is reported.
  await server.stop();
  await assert.rejects(client.refresh(), ClientError);
  assert.equal(client.verdict.state, "valid");
  assert.equal(client.status.lastError.kind, "network");
  client.close();

  // A restart from disk, offline: valid at once.
  const again = new Client({ servers: [server.url], publicKeys: [server.publicKey], stateDir: state, watch: false }).start();
  assert.equal(again.verdict.state, "valid");
  assert.equal(again.verdict.revision, 2);
  again.close();

  // Back; revoked; the same token entered again re-checks at once.
  server = await startServer(data, port);
  running.push(() => server.stop());
  await server.admin("POST", `/v1/admin/licenses/${lic}/revoke`, { reason: "test" });
  client = new Client({ servers: [server.url], publicKeys: [server.publicKey], stateDir: state, watch: false }).start();
  assert.equal(client.verdict.state, "valid", "from disk until asked");
  assert.equal((await client.activate(token)).state, "revoked");
  assert.equal(client.hasFeature("sso"), false);
  client.close();
  await server.stop();
});

test("machines, usage and offline files against a real authority", { skip: !BIN && "set TESSERA_BIN to the tessera binary" }, async (t) => {
  const running = [];
  t.after(async () => {
    for (const r of running) await r();
  });
  const work = mkdtempSync(join(tmpdir(), "tessera-node-machines-"));
  const server = await startServer(join(work, "data"), await freePort());
  running.push(() => server.stop());
  const issued = await server.admin("POST", "/v1/admin/licenses", { customer: "Acme", plan: "p", duration: "30d", features: ["sso"], max_machines: 1 });
  const lic = issued.license.id;
  const client = (name, fingerprint) => {
    const c = new Client({ servers: [server.url], publicKeys: [server.publicKey], stateDir: join(work, name), fingerprint }).start();
    running.unshift(() => c.close());
    return c;
  };
  const until = async (pred, ms = 10_000) => {
    const end = Date.now() + ms;
    while (!(await pred()) && Date.now() < end) await sleep(20);
    return pred();
  };

  // The first machine takes the one place by itself; the second is refused.
  const first = client("first", "host-1");
  assert.equal((await first.activate(issued.token)).state, "valid");
  const second = client("second", "host-2");
  const refused = await second.activate(issued.token);
  assert.equal(refused.state, "too_many_machines");
  assert.ok(!second.hasFeature("sso"));
  assert.equal((await server.admin("GET", `/v1/admin/licenses/${lic}/machines`)).active, 1);

  // The first gives its place back: the second, told on its stream, takes it.
  assert.ok(await until(() => second.connected), "the stream is open");
  assert.equal((await first.deactivate()).state, "not_activated");
  assert.ok(await until(() => second.verdict.state === "valid"), JSON.stringify(second.verdict));
  assert.equal((await first.refresh()).state, "not_activated", "a released machine stays released");

  // Usage: the user count reaches the fleet view.
  second.setUsers(7);
  const users = async () => {
    const { instances } = await server.admin("GET", `/v1/admin/licenses/${lic}/instances`);
    return instances.find((i) => i.instance_id === second.instanceId)?.users === 7;
  };
  assert.ok(await until(users), "the fleet view shows 7 users");

  // An offline file from `tessera license export`, with no authority.
  const plain = await server.admin("POST", "/v1/admin/licenses", { customer: "Site", plan: "p", duration: "30d", features: ["sso"] });
  const file = join(work, "license.json");
  writeFileSync(file, JSON.stringify(await server.admin("POST", `/v1/admin/licenses/${plain.license.id}/export`, { ttl: "365d" })));
  await server.stop();
  const offline = new Client({ servers: [], publicKeys: [server.publicKey], token: plain.token, stateDir: join(work, "offline"), offlineFile: file }).start();
  assert.equal(offline.verdict.state, "valid");
  assert.ok(offline.hasFeature("sso"));
  offline.close();
});

test("metered quotas against a real authority", { skip: !BIN && "set TESSERA_BIN to the tessera binary" }, async (t) => {
  const running = [];
  t.after(async () => {
    for (const r of running) await r();
  });
  const work = mkdtempSync(join(tmpdir(), "tessera-node-quotas-"));
  const server = await startServer(join(work, "data"), await freePort());
  running.push(() => server.stop());
  const issued = await server.admin("POST", "/v1/admin/licenses", { customer: "Acme", plan: "p", duration: "30d", features: ["sso", "api_calls=100/month"] });
  const lic = issued.license.id;
  const client = new Client({ servers: [server.url], publicKeys: [server.publicKey], stateDir: join(work, "a") }).start();
  running.unshift(() => client.close());
  await client.activate(issued.token);
  assert.deepEqual(client.quotas(), { api_calls: { limit: 100, used: 0 } });
  assert.equal(client.consume("api_calls", 60), 40);
  assert.equal(client.remaining("api_calls"), 40);
  assert.throws(() => client.consume("api_calls", 41), (e) => e instanceof QuotaError && e.code === "quota_exhausted" && e.remaining === 40);
  assert.throws(() => client.consume("sso", 1), (e) => e.code === "unknown_quota");
  assert.throws(() => client.consume("nope", 1), (e) => e.code === "not_granted");
  assert.throws(() => client.consume("api_calls", 0.5), (e) => e.code === "invalid_amount");
  const used = async () => (await server.admin("GET", `/v1/admin/licenses/${lic}/quotas/api_calls`)).quota.used;
  await client.flushConsumption();
  assert.equal(await used(), 60);
  await client.flushConsumption();
  assert.equal(await used(), 60, "nothing pending: nothing counted twice");

  // Another instance uses the rest: the blocking point is a new revision,
  // pushed to this client's stream, and its consume refuses.
  const other = new Client({ servers: [server.url], publicKeys: [server.publicKey], stateDir: join(work, "b"), watch: false }).start();
  running.unshift(() => other.close());
  await other.activate(issued.token);
  assert.equal(other.consume("api_calls", 40), 0);
  await other.flushConsumption();
  const end = Date.now() + 10_000;
  while (client.verdict.revision === 1 && Date.now() < end) await sleep(20);
  assert.equal(client.verdict.revision, 2);
  assert.throws(() => client.consume("api_calls", 1), (e) => e.code === "quota_exhausted");
  assert.equal(client.remaining("api_calls"), 0);
});

test("products and imported keys against a real authority", { skip: !BIN && "set TESSERA_BIN to the tessera binary" }, async (t) => {
  const running = [];
  t.after(async () => {
    for (const r of running) await r();
  });
  const work = mkdtempSync(join(tmpdir(), "tessera-node-"));
  const server = await startServer(join(work, "data"), await freePort());
  running.push(server.stop);
  await server.admin("POST", "/v1/admin/products", { name: "metabase-ee" });
  const issued = await server.admin("POST", "/v1/admin/licenses", { customer: "Acme", plan: "p", duration: "30d", features: ["sso"], product: "metabase-ee" });
  const client = (name, product) => new Client({ servers: [server.url], publicKeys: [server.publicKey], stateDir: join(work, name), product, watch: false }).start();

  const right = client("right", "metabase-ee");
  running.push(async () => right.close());
  assert.equal((await right.activate(issued.token)).state, "valid");
  const wrong = client("wrong", "metabase");
  running.push(async () => wrong.close());
  await assert.rejects(wrong.activate(issued.token), (e) => String(e.message).includes("metabase-ee"));
  assert.equal(wrong.hasFeature("sso"), false);

  // Offline: the file of another product's license is refused too.
  const file = join(work, "license.json");
  writeFileSync(file, JSON.stringify(await server.admin("POST", `/v1/admin/licenses/${issued.license.id}/export`, { ttl: "30d" })));
  assert.throws(
    () => new Client({ servers: [], publicKeys: [server.publicKey], token: issued.token, stateDir: join(work, "offline"), offlineFile: file, product: "metabase" }).start(),
    (e) => String(e.message).includes("metabase-ee"),
  );

  // A key imported from another system validates as it is.
  await server.admin("POST", "/v1/admin/licenses/import", {
    import: "node-test", first_row: 1, next_row: 2,
    rows: [{ row: 1, key: "KEYGEN-STYLE-KEY-0002", customer: "Initech", plan: "p", features: ["sso"] }],
  });
  const imported = client("imported", null);
  running.push(async () => imported.close());
  assert.equal((await imported.activate("KEYGEN-STYLE-KEY-0002")).state, "valid");
  assert.ok(imported.hasFeature("sso"));
});
