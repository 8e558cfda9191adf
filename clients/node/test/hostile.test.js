// The hostile-server cases (docs/PROTOCOL.md §11, §13), each against a fake
// authority in this process: every one refused with a clear error and the
// held state — verdict and state file — unchanged; and the offline file of
// `tessera license export`. The fake signs real documents (with a test key)
// for the controls, so each test shows the client working before the attack
// and, where it matters, after it.
import assert from "node:assert/strict";
import { createHash, createPrivateKey, randomBytes, sign } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { Client, ClientError, LicenseToken, ProtocolError, backoffMs, fingerprintHash, verify } from "../src/index.js";

const TOKEN = "tsr_Vut8janx99JGSaeqiffOjZFoB0Wt5J0SXF0h";
const TFP = new LicenseToken(TOKEN).fingerprint();
const SEED = Buffer.from([...Array(32).keys()]);
const KEY = createPrivateKey({ key: Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), SEED]), format: "der", type: "pkcs8" });
const RAW_PUBLIC = KEY.export({ format: "jwk" }).x;
const PUBLIC_KEY = `k4.public.${RAW_PUBLIC}`;
const KID = createHash("sha256").update(Buffer.from(RAW_PUBLIC, "base64url")).digest("hex").slice(0, 16);

const iso = (secs) => new Date(secs * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
function pae(pieces) {
  const len = (n) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(n)); return b; };
  return Buffer.concat([len(pieces.length), ...pieces.flatMap((p) => [len(p.length), p])]);
}
/** A v4.public document signed with the test key (tests only: clients never sign). */
function documentFor(rev, { nonce = null, extra = {} } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const claims = { lic: "lic_hostile", tfp: TFP, status: "active", valid: true, plan: "p", features: ["sso"], rev, iat: iso(now), refresh_after: iso(now + 3600), exp: iso(now + 7 * 86400), expires_at: iso(now + 30 * 86400), ...(nonce ? { nonce } : {}), ...extra };
  const message = Buffer.from(JSON.stringify(claims));
  const footer = Buffer.from(JSON.stringify({ kid: KID }));
  const signature = sign(null, pae([Buffer.from("v4.public."), message, footer, Buffer.alloc(0)]), KEY);
  return `v4.public.${Buffer.concat([message, signature]).toString("base64url")}.${footer.toString("base64url")}`;
}

/** A fake authority; `mode` says how it answers. */
async function fake() {
  const f = { mode: "ok", rev: 1, sent: 0, acks: 0, streamClosed: false };
  f.server = createServer((req, res) => {
    if (req.method === "GET" && req.url === "/v1/watch") {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.on("close", () => { f.streamClosed = true; });
      if (f.mode === "garbage") {
        // 64 MiB with no line end: the client must drop it long before (the
        // socket buffers hold a few MiB, so the count says when it hung up).
        const chunk = Buffer.from(randomBytes(65536).map((b) => (b === 10 || b === 13 ? 120 : b)));
        const pump = () => {
          while (f.sent < 64 << 20 && !res.destroyed) {
            f.sent += chunk.length;
            if (!res.write(chunk)) return res.once("drain", pump);
          }
        };
        pump();
      } else if (f.mode === "junk_events") {
        res.write("event: status\ndata: v4.public.bm90IGEgZG9jdW1lbnQ\n\n");
        res.write(Buffer.from([0xff, 0xfe, 0, 10, 10]));
        res.write("id: x\nretry: -1\n\n");
        setTimeout(() => res.end(), 1000);
      } else if (f.mode === "keepalive") {
        const beat = setInterval(() => res.write(":\n\n"), 100);
        res.on("close", () => clearInterval(beat));
        setTimeout(() => res.end(), 5000);
      } else if (f.mode === "newer") {
        res.write(`event: status\nid: ${f.rev}\ndata: ${documentFor(f.rev)}\n\n`);
        setTimeout(() => res.end(), 5000);
      } else {
        setTimeout(() => res.end(), 1000);
      }
      return;
    }
    let text = "";
    req.on("data", (c) => { text += c; });
    req.on("end", () => {
      if (req.url === "/v1/instances/ack") f.acks++;
      if (req.url !== "/v1/validate") return res.writeHead(204).end();
      const body = JSON.parse(text);
      const json = (status, value, headers = {}) => res.writeHead(status, { "content-type": "application/json", ...headers }).end(JSON.stringify(value));
      switch (f.mode) {
        case "keepalive":
        case "ok": return json(200, { document: documentFor(f.rev, { nonce: body.nonce }) }, { etag: `"${f.rev}-1"` });
        case "big": return json(200, { document: "v4.public." + "A".repeat(70_000) });
        case "retry": return json(503, { error: { code: "busy", message: "busy" } }, { "retry-after": "99999999999" });
        case "304": return res.writeHead(304, { etag: `"${f.rev}-1"` }).end();
        case "down": return json(500, { error: { code: "internal", message: "down" } });
        case "huge_error": {
          res.writeHead(500, { "content-type": "text/html", "content-length": String(400 << 20) });
          const chunk = Buffer.alloc(65536, "<p>");
          const pump = () => {
            while (f.sent < 400 << 20 && !res.destroyed) {
              f.sent += chunk.length;
              if (!res.write(chunk)) return res.once("drain", pump);
            }
          };
          res.on("close", () => {});
          return pump();
        }
      }
    });
  });
  await new Promise((r) => f.server.listen(0, "127.0.0.1", r));
  f.url = `http://127.0.0.1:${f.server.address().port}`;
  f.close = () => { f.server.closeAllConnections(); f.server.close(); };
  return f;
}

async function activated(f, watch = false) {
  const state = mkdtempSync(join(tmpdir(), "tessera-node-hostile-"));
  const client = new Client({ servers: [f.url], publicKeys: [PUBLIC_KEY], stateDir: state, watch, tickMs: 3_600_000 }).start();
  const v = await client.activate(TOKEN);
  assert.equal(v.state, "valid");
  assert.equal(v.revision, 1);
  const path = join(state, "tessera-state.json");
  return { client, path, before: readFileSync(path) };
}

function unchanged({ client, path, before }) {
  assert.equal(client.verdict.state, "valid");
  assert.equal(client.verdict.revision, 1);
  assert.deepEqual(readFileSync(path), before, "the state file changed");
}

const until = async (pred, ms = 15_000) => {
  const end = Date.now() + ms;
  while (!pred() && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  return pred();
};

test("an answer over 64 KiB is refused", async (t) => {
  const f = await fake();
  t.after(f.close);
  const held = await activated(f);
  f.mode = "big";
  await assert.rejects(held.client.refresh(), (e) => e instanceof ClientError && e.kind === "invalid_answer" && /64 KiB/.test(e.message));
  unchanged(held);
  held.client.close();
});

test("a Retry-After in the billions is capped", async (t) => {
  const f = await fake();
  t.after(f.close);
  const held = await activated(f);
  f.mode = "retry";
  let error;
  await assert.rejects(held.client.refresh(), (e) => { error = e; return e.kind === "http_status" && /503/.test(e.message); });
  assert.equal(error.retryAfterMs, 300_000);
  assert.equal(backoffMs(1, error), 300_000);
  unchanged(held);
  f.mode = "ok";
  f.rev = 2;
  assert.equal((await held.client.refresh()).revision, 2, "the client lives on");
  held.client.close();
});

test("an unsigned 304 is not contact", async (t) => {
  const f = await fake();
  t.after(f.close);
  const held = await activated(f);
  const verifiedAt = held.client.status.lastVerifiedAt;
  f.mode = "down";
  await assert.rejects(held.client.refresh());
  const offlineSince = held.client.status.offlineSince;
  assert.notEqual(offlineSince, null);
  f.mode = "304";
  await assert.rejects(held.client.refresh(), (e) => e.kind === "invalid_answer" && /304/.test(e.message));
  assert.equal(held.client.status.offlineSince, offlineSince);
  assert.equal(held.client.status.lastVerifiedAt, verifiedAt);
  unchanged(held);
  held.client.close();
});

test("error bodies of any size are cut off", async (t) => {
  const f = await fake();
  t.after(f.close);
  const held = await activated(f);
  f.mode = "huge_error";
  const started = Date.now();
  await assert.rejects(held.client.refresh(), (e) => e.kind === "http_status" && /500/.test(e.message));
  assert.ok(Date.now() - started < 10_000);
  await new Promise((r) => setTimeout(r, 500));
  assert.ok(f.sent < 32 << 20, `${f.sent} bytes of a 400 MiB error page went out`);
  unchanged(held);
  held.client.close();
});

test("a stream of garbage changes nothing", async (t) => {
  const f = await fake();
  t.after(f.close);
  const held = await activated(f, true);
  f.mode = "garbage";
  assert.ok(await until(() => f.streamClosed), "the client read on past 64 KiB without a line end");
  assert.ok(f.sent < 64 << 20, "all 64 MiB were read");
  f.mode = "junk_events";
  assert.ok(await until(() => held.client.status.lastError?.kind === "verification"), JSON.stringify(held.client.status));
  unchanged(held);
  f.mode = "newer";
  f.rev = 2;
  assert.ok(await until(() => held.client.verdict.revision === 2), "the control: a real newer document on the stream");
  // Written after the verdict is published (in the background): wait for it.
  assert.ok(await until(() => !readFileSync(held.path).equals(held.before)), "stored");
  held.client.close();
});

test("an offline file is taken by the rules", () => {
  const work = mkdtempSync(join(tmpdir(), "tessera-node-offline-"));
  const file = join(work, "license.json");
  writeFileSync(file, JSON.stringify({ format: "tessera-license-export/1", license: "lic_hostile", document: documentFor(3) }));
  const client = new Client({ servers: [], publicKeys: [PUBLIC_KEY], token: TOKEN, stateDir: work, offlineFile: file }).start();
  assert.equal(client.verdict.revision, 3);
  assert.ok(client.hasFeature("sso"));
  const state = join(work, "tessera-state.json");
  const before = readFileSync(state);
  assert.equal(client.importOffline(Buffer.from(documentFor(2))).revision, 3, "an older file is ignored");
  const doc = documentFor(4);
  const forged = doc.slice(0, 60) + (doc[60] === "A" ? "B" : "A") + doc.slice(61);
  assert.throws(() => client.importOffline(Buffer.from(forged)), ProtocolError);
  assert.throws(() => client.importOffline(Buffer.alloc(70_000, " ")), ProtocolError);
  assert.deepEqual(readFileSync(state), before);
  assert.equal(client.importOffline(Buffer.from(documentFor(4))).revision, 4, "renewed by file, no restart");
  client.close();
  const again = new Client({ servers: [], publicKeys: [PUBLIC_KEY], stateDir: work }).start();
  assert.equal(again.verdict.revision, 4);
  again.close();
});

test("the fingerprint is per license and bound", async (t) => {
  const f = await fake();
  t.after(f.close);
  const held = await activated(f);
  const fp = held.client.fingerprint();
  assert.equal(fp.length, 32);
  const other = new Client({ servers: [], publicKeys: [PUBLIC_KEY], fingerprint: "host-7" });
  assert.equal(other.fingerprint(new LicenseToken(TOKEN)), "host-7");
  const doc = documentFor(2, { extra: { mfp: fingerprintHash("someone-else") } });
  assert.throws(
    () => verify(Buffer.from(doc), held.client.keys, TFP, Math.floor(Date.now() / 1000), { machine: fingerprintHash(fp) }),
    (e) => e.code === "fingerprint_mismatch",
  );
  held.client.close();
});

test("the verdict changes at its deadline with no request", async (t) => {
  // The license ends between two polls (the next an hour away): the verdict
  // says so on time, by the clock alone.
  const f = await fake();
  t.after(f.close);
  const work = mkdtempSync(join(tmpdir(), "tessera-node-deadline-"));
  const ends = Math.floor(Date.now() / 1000) + 2;
  const file = join(work, "license.paseto");
  writeFileSync(file, documentFor(1, { extra: { expires_at: iso(ends) } }));
  const client = new Client({ servers: [f.url], publicKeys: [PUBLIC_KEY], token: TOKEN, stateDir: work, offlineFile: file, watch: false, tickMs: 3_600_000 }).start();
  t.after(() => client.close());
  assert.equal(client.verdict.state, "valid");
  f.mode = "down";
  assert.ok(await until(() => client.verdict.state === "expired", 6000));
  assert.ok(Date.now() / 1000 - ends < 1.5);
});

test("a machine-bound offline response is refused", () => {
  // Offline activation responses answer a request's nonce: this client
  // makes no requests, so it takes none — not even one bound to its own
  // machine (it could be another request's).
  const work = mkdtempSync(join(tmpdir(), "tessera-node-bound-"));
  const client = new Client({ servers: [], publicKeys: [PUBLIC_KEY], token: TOKEN, stateDir: work, fingerprint: "vault-1" }).start();
  const bound = documentFor(3, { nonce: "00112233445566778899", extra: { mfp: fingerprintHash("vault-1") } });
  assert.throws(() => client.importOffline(Buffer.from(bound)), (e) => e.code === "nonce_mismatch");
  const other = documentFor(3, { extra: { mfp: fingerprintHash("vault-2") } });
  assert.throws(() => client.importOffline(Buffer.from(other)), (e) => e.code === "fingerprint_mismatch");
  assert.equal(client.verdict.state, "unverified");
  assert.equal(client.importOffline(Buffer.from(documentFor(3))).revision, 3, "an export is taken");
  client.close();
});

test("the held revision is acknowledged again on an open stream", async (t) => {
  // §12: besides after each document and on every (re)connect, the held
  // revision is acknowledged again every ackIntervalMs (5 minutes by
  // default) while the stream is open, so a lost ack heals by itself.
  const f = await fake();
  t.after(f.close);
  f.mode = "keepalive";
  const client = new Client({ servers: [f.url], publicKeys: [PUBLIC_KEY], stateDir: mkdtempSync(join(tmpdir(), "tessera-node-ack-")), tickMs: 3_600_000, ackIntervalMs: 300 }).start();
  t.after(() => client.close());
  await client.activate(TOKEN);
  assert.ok(await until(() => client.connected));
  const before = f.acks;
  await new Promise((r) => setTimeout(r, 2000));
  assert.ok(f.acks - before >= 3, `${f.acks - before} acks in 2 s`);
});
