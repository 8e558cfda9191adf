// The client a product embeds (docs/PROTOCOL.md §7–10, §13–14): the held
// state of `Holder`, kept on disk and refreshed from the authority.
//
// - `start()` never waits for the network: the disk state is loaded (and
//   verified again) and its verdict published at once; polling and the
//   change stream run in the background.
// - `verdict` / `hasFeature` read one field: no I/O.
// - `refresh()` and `activate(token)` are real round trips with a fresh
//   nonce; a mistyped token is refused by its checksum before anything is
//   sent.
// - Only verified documents change anything; errors are `lastError`.
// - The change stream (`/v1/watch`) applies each pushed document at once,
//   acknowledges the held revision, and reconnects with jitter and
//   `Last-Event-ID`.
// - The state file is written atomically (temporary file, fsync, rename,
//   fsync of the directory) with mode 0600.
// - `offlineFile` / `importOffline`: a document from `tessera license
//   export` (its JSON file, or the bare document), verified and taken by the
//   rollback rule.
// - `setUsers(n)`: reported (`/v1/usage`) when it changes and every
//   `usageIntervalMs`.
// - Machines (§19): every request names this machine (`fingerprint`, or one
//   derived from the host's machine id and the token); a license that counts
//   machines gets a place by itself, and `deactivate()` gives it back.
// - Metered quotas (§22): `consume(feature, n)` counts against the client's
//   estimate of the period's use and refuses past the blocking point; what
//   was consumed is reported (`/v1/consumption`) every
//   `consumptionIntervalMs` and on `flushConsumption()`, each report counted
//   once.
// - Every body read is at most 64 KiB; `Retry-After` is capped at 5 minutes;
//   a `304` is never proof of anything (§11, §13).

import { randomBytes } from "node:crypto";
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { arch, hostname, platform } from "node:os";
import { mkdir, open, rename } from "node:fs/promises";
import { join } from "node:path";

import { LicenseToken, ProtocolError, TrustedKeys, fingerprintHash, machineFingerprint, parseTime, verify } from "./protocol.js";
import { MAX_QUOTA, Meters, QuotaError } from "./meter.js";
import { Holder } from "./verdict.js";

export const STATE_FILE = "tessera-state.json";
const STATE_FORMAT = "tessera-client-state/1";
const MAX_ANSWER_BYTES = 64 * 1024;
const MAX_BACKOFF_MS = 300_000;

/** Why a round trip failed; `kind` as the Rust SDK's `last_error`. */
export class ClientError extends Error {
  /** `retryAfterMs`: the wait the authority asked for, capped at 5 minutes. */
  constructor(kind, message, retryAfterMs = null, status = null) {
    super(message);
    this.kind = kind;
    this.retryAfterMs = retryAfterMs;
    this.status = status;
  }
}

/** `Retry-After` (seconds) in ms, capped: a value in the billions must not park the client for years. */
function retryAfterMs(value) {
  if (!value || !/^\s*\d+\s*$/.test(value)) return null;
  return Math.min(MAX_BACKOFF_MS, Number(value.trim()) * 1000);
}

/** The wait before the next attempt: what the authority asked for (capped), else full jitter up to 5 minutes. */
export function backoffMs(failures, error = null) {
  if (error?.retryAfterMs != null) return error.retryAfterMs;
  return jitter(failures);
}

let hostId;
/** The host's machine id (systemd's `/etc/machine-id`), read once. */
function hostMachineId() {
  if (hostId === undefined) {
    hostId = null;
    for (const path of ["/etc/machine-id", "/var/lib/dbus/machine-id"]) {
      try {
        const text = readFileSync(path, "utf-8").trim();
        if (text) {
          hostId = text;
          break;
        }
      } catch { /* the next one */ }
    }
  }
  return hostId;
}

const formatTime = (secs) => new Date(secs * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
const jitter = (failures) => Math.random() * Math.min(MAX_BACKOFF_MS, 1000 * 2 ** Math.min(failures, 8));

/** At most 64 KiB of a body, then the connection is dropped (§13). */
async function readCapped(res) {
  const reader = res.body.getReader();
  const chunks = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > MAX_ANSWER_BYTES) {
      await reader.cancel();
      throw new ClientError("invalid_answer", "the answer is over 64 KiB");
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

export class Client {
  #status = { verdict: Object.freeze({ state: "unverified", reason: "no_document", revision: null, features: [], warnings: [], afterExpiry: null, plan: null, customer: null, expiresAt: null, daysLeft: null, maxUsers: null }), lastVerifiedAt: null, offlineSince: null, lastError: null };
  #holder = null;
  #listeners = [];
  #timers = new Set();
  #stopped = false;
  #stream = null;

  #users = null;
  #usageTimer = null;
  #machineGivenUp = false;
  #forced = false;
  #meters = new Meters();
  #report = null;
  #nextSeq = 0;
  #reporting = Promise.resolve();
  #consumptionTimer = null;

  constructor({ servers, publicKeys, token = null, stateDir = null, clock = () => Date.now() / 1000, timeoutMs = 15_000, tickMs = 30_000, watch = true, streamReadTimeoutMs = 37_500, offlineFile = null, fingerprint = null, usageIntervalMs = 900_000, consumptionIntervalMs = 10_000, ackIntervalMs = 300_000, product = null }) {
    if (!publicKeys?.length) throw new Error("pin at least one public key");
    this.servers = servers.map((s) => s.replace(/\/+$/, ""));
    this.keys = new TrustedKeys();
    for (const k of publicKeys) this.keys.pin(k);
    this.configured = token ? new LicenseToken(token) : null;
    this.stateDir = stateDir;
    this.clock = clock;
    this.timeoutMs = timeoutMs;
    this.tickMs = tickMs;
    this.watch = watch;
    this.streamReadTimeoutMs = streamReadTimeoutMs;
    this.instanceId = "node-" + randomBytes(8).toString("hex");
    this.connected = false;
    this.offlineFile = offlineFile;
    this.configuredFingerprint = fingerprint;
    /** The product this client is part of: another's license is refused (§28). */
    this.product = product;
    this.usageIntervalMs = usageIntervalMs;
    this.consumptionIntervalMs = consumptionIntervalMs;
    this.ackIntervalMs = ackIntervalMs;
  }

  // ----- reading: no I/O ------------------------------------------------
  get verdict() {
    return this.#status.verdict;
  }
  get status() {
    return this.#status;
  }
  /** The held signed document as received, or null. */
  get document() {
    return this.#holder?.documentText ?? null;
  }
  hasFeature(name) {
    const v = this.#status.verdict;
    return v.state === "valid" && v.features.includes(name);
  }
  isValid() {
    return this.#status.verdict.state === "valid";
  }
  /** `fn(verdict)` after every change of the verdict. */
  onChange(fn) {
    this.#listeners.push(fn);
  }

  #now() {
    return Math.floor(this.clock());
  }

  // ----- life -------------------------------------------------------------
  /**
   * Load the disk state and publish its verdict; never waits for the network.
   * An `offlineFile` that does not verify throws `ProtocolError` (held state unchanged).
   */
  start() {
    this.#load();
    this.#publish();
    if (this.offlineFile) this.importOffline(readFileSync(this.offlineFile));
    this.#schedule(0);
    if (this.watch && this.servers.length) this.#watchLoop();
    if (this.servers.length) {
      this.#scheduleUsage(this.usageIntervalMs);
      this.#consumptionTimer = setInterval(() => this.flushConsumption().catch(() => { /* retried at the next interval */ }), this.consumptionIntervalMs);
      this.#consumptionTimer.unref?.();
    }
    return this;
  }

  close() {
    this.#stopped = true;
    for (const t of this.#timers) clearTimeout(t);
    clearTimeout(this.#usageTimer);
    clearInterval(this.#consumptionTimer);
    this.#stream?.abort();
  }

  // ----- metered quotas -------------------------------------------------------
  /**
   * Count `amount` of a metered feature: a local add, no I/O. Returns what
   * is left of the limit; throws `QuotaError` (nothing counted) past the
   * blocking point, for a feature not granted now, without a quota, or for
   * an amount above 2^53.
   */
  consume(feature, amount = 1) {
    if (!this.hasFeature(feature)) throw new QuotaError("not_granted", `${feature} is not granted now`);
    this.#meters.sync(this.#holder?.document ?? null, this.#now());
    return this.#meters.consume(feature, amount);
  }

  /** What is left of `feature`'s limit this period (estimated now), or null. */
  remaining(feature) {
    return this.#meters.remaining(feature);
  }

  /** Each metered feature: `{limit, used}` as estimated now. */
  quotas() {
    return this.#meters.snapshot();
  }

  /** Report what was consumed and not yet reported, now (the report in flight first). */
  flushConsumption() {
    const run = this.#reporting.then(() => this.#flush());
    this.#reporting = run.catch(() => {});
    return run;
  }

  async #flush() {
    for (;;) {
      const now = this.#now();
      if (this.#report && now - this.#report.firstSent > 30 * 86400) {
        // Unanswered for 30 days: the authority keeps report ids 35 days,
        // so a later retry could be counted twice.
        this.#meters.abandon(this.#report.amounts);
        this.#report = null;
      }
      if (!this.#report) {
        const amounts = this.#meters.takePending();
        if (!Object.keys(amounts).length) return;
        if (this.#nextSeq === 0) {
          // Never an earlier run's number: from the clock (ms × 1024), never below the clock mark.
          const at = Math.max(now, this.#holder?.mark ?? 0);
          this.#nextSeq = Math.max(1, Math.min(at * 1000 * 1024, MAX_QUOTA / 2));
        }
        this.#report = { seq: this.#nextSeq++, amounts, firstSent: now };
      }
      const holder = this.#holder;
      if (!holder) throw new ClientError("no_token", "no license token");
      const report = this.#report;
      const body = { token: holder.token.secret(), instance_id: this.instanceId, seq: report.seq, amounts: report.amounts };
      let answer;
      try {
        answer = await this.#postFirst("/v1/consumption", body);
      } catch (e) {
        if (e.status === 409) {
          // Not counted: the same amounts again under a new number.
          report.seq = Math.max(this.#nextSeq, report.seq) + 2 ** 20;
          this.#nextSeq = report.seq + 1;
          continue;
        }
        if ([401, 403, 422].includes(e.status)) {
          // Refused for good: sending again cannot help.
          this.#meters.abandon(report.amounts);
          this.#report = null;
        }
        throw e;
      }
      let quotas = {};
      try {
        quotas = JSON.parse(answer.data).quotas ?? {};
      } catch { /* counted all the same */ }
      this.#meters.settle(report.amounts, quotas);
      this.#report = null;
    }
  }

  /** POST to the first authority that answers. */
  async #postFirst(path, body) {
    let last = new ClientError("network", "no authority configured");
    for (const server of this.servers) {
      try {
        return await this.#post(`${server}${path}`, body);
      } catch (e) {
        if (!(e instanceof ClientError) || e.status !== null) throw e;
        last = e;
      }
    }
    throw last;
  }

  // ----- offline files, usage ------------------------------------------------
  /**
   * Take a document exported for air-gapped sites (`tessera license export`:
   * its JSON file, or the bare document): verified with freshness and the
   * rollback rule; a refused one throws `ProtocolError` and changes nothing,
   * an older one is ignored.
   */
  importOffline(bytes) {
    const data = Buffer.from(bytes);
    if (data.length > MAX_ANSWER_BYTES) throw new ProtocolError("document_too_large", "the offline file is over 64 KiB");
    let document = Buffer.from(data.toString("latin1").trim(), "latin1");
    try {
      const exported = JSON.parse(data.toString("utf-8"));
      if (typeof exported?.document === "string") document = Buffer.from(exported.document);
    } catch { /* the bare document (or bytes the verifier refuses) */ }
    if (!this.#holder) throw new ClientError("no_token", "an offline file needs the license token it was exported for");
    const holder = this.#holder;
    const claims = verify(document, this.keys, holder.token.fingerprint(), this.#now(), { maxClockDrift: holder.maxClockDrift, machine: fingerprintHash(this.fingerprint(holder.token)), product: this.product });
    // A response to an offline activation request (§25) answers the
    // request's nonce; this client makes none, so it cannot tell its own
    // from another machine's request: refused.
    if (claims.raw.mfp != null) throw new ProtocolError("nonce_mismatch", "a response to an offline request this client did not make");
    if (holder.accept(claims, document.toString("utf-8"), this.#now()) === "accepted") this.#storeSync();
    return this.#publish();
  }

  /** How many users the product has now; reported at once when it changes, then every `usageIntervalMs`. */
  setUsers(users) {
    if (!Number.isInteger(users) || users < 0) throw new RangeError("users must be a whole number ≥ 0");
    const previous = this.#users;
    this.#users = users;
    if (previous !== users && this.servers.length && !this.#stopped) this.#scheduleUsage(0);
  }

  #scheduleUsage(ms) {
    clearTimeout(this.#usageTimer);
    this.#usageTimer = setTimeout(() => this.#reportUsage().finally(() => this.#stopped || this.#scheduleUsage(this.usageIntervalMs)), ms);
    this.#usageTimer.unref?.();
  }

  async #reportUsage() {
    const holder = this.#holder;
    if (!holder || this.#users === null) return;
    const body = { token: holder.token.secret(), instance_id: this.instanceId, users: Math.min(this.#users, 2 ** 32 - 1) };
    for (const server of this.servers) {
      try {
        await this.#post(`${server}/v1/usage`, body);
        return;
      } catch { /* failures never touch the verdict */ }
    }
  }

  // ----- machines ---------------------------------------------------------------
  /** This machine's fingerprint for the held (or given) token. */
  fingerprint(token = this.#holder?.token) {
    return token ? machineFingerprint(this.configuredFingerprint, hostMachineId(), this.instanceId, token) : null;
  }

  /** Take (or hold) a place for this machine now. */
  async activateMachine() {
    if (!this.#holder) throw new ClientError("no_token", "no license token: activate one first");
    return this.#machineRoundTrip(this.#holder.token, "activate");
  }

  /** Give this machine's place back; it stays without one until `activateMachine()`. */
  async deactivate() {
    if (!this.#holder) throw new ClientError("no_token", "no license token: activate one first");
    return this.#machineRoundTrip(this.#holder.token, "deactivate");
  }

  async #machineRoundTrip(token, action) {
    const nonce = randomBytes(16).toString("base64url");
    const body = { token: token.secret(), fingerprint: this.fingerprint(token), hostname: hostname() || null, platform: `${platform()}-${arch()}`, nonce };
    let last = new ClientError("network", "no authority configured");
    for (const server of this.servers) {
      let answer;
      try {
        answer = await this.#post(`${server}/v1/machines/${action}`, body);
      } catch (e) {
        if (!(e instanceof ClientError)) throw e;
        last = e;
        continue;
      }
      if (answer.status === 304) {
        last = new ClientError("invalid_answer", "304 to a machine request");
        break;
      }
      const verdict = this.#take(token, answer, nonce);
      this.#machineGivenUp = action === "deactivate";
      await this.#writing;
      return verdict;
    }
    this.#recordError(last.kind, last.message);
    throw last;
  }

  /** A license that counts machines says this one has no place: take one, unless it gave its place up (§19). */
  #shouldActivate() {
    const held = this.#holder?.document;
    if (!held || held.raw.machine == null) return false;
    return held.status === "lease_expired" || (held.status === "not_activated" && !this.#machineGivenUp);
  }

  // ----- disk state ---------------------------------------------------------
  #path() {
    return this.stateDir ? join(this.stateDir, STATE_FILE) : null;
  }

  #load() {
    let token = this.configured;
    let document = null;
    let mark = null;
    const path = this.#path();
    if (path && existsSync(path)) {
      try {
        const state = JSON.parse(readFileSync(path, "utf-8"));
        if (state.format !== STATE_FORMAT) throw new Error("unknown format");
        this.instanceId = state.instance_id || this.instanceId;
        const stored = state.token ? new LicenseToken(state.token) : null;
        // A token changed in the configuration wins over the stored one.
        if (token === null || (stored && state.configured === token.fingerprint())) {
          token = stored ?? token;
          document = state.document ?? null;
          mark = state.high_water_mark ? parseTime(state.high_water_mark) : null;
        }
      } catch (e) {
        this.#recordError("storage", `ignoring unreadable license state: ${e.message}`);
      }
    }
    if (!token) return;
    const holder = new Holder({ keys: this.keys, token, product: this.product });
    try {
      holder.load(document, mark);
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      this.#recordError("verification", `the stored document was rejected: ${e.message}`);
      holder.load(null, mark);
    }
    this.#holder = holder;
  }

  /** The held state as the state file keeps it, or null. */
  #stateNow() {
    const holder = this.#holder;
    if (!holder) return null;
    return {
      format: STATE_FORMAT,
      instance_id: this.instanceId,
      token: holder.token.secret(),
      configured: this.configured ? this.configured.fingerprint() : null,
      document: holder.documentText,
      high_water_mark: holder.mark === null ? null : formatTime(holder.mark),
    };
  }

  #tmpCount = 0;
  #tmpPath(path) {
    return `${path}.${process.pid}.${++this.#tmpCount}.tmp`;
  }

  /** Write the held state now (temporary file, fsync, rename, fsync of the directory). */
  #storeSync() {
    const path = this.#path();
    const state = this.#stateNow();
    if (!path || !state) return;
    mkdirSync(this.stateDir, { recursive: true, mode: 0o700 });
    const tmp = this.#tmpPath(path);
    const fd = openSync(tmp, "w", 0o600);
    try {
      writeSync(fd, JSON.stringify(state));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
    const dir = openSync(this.stateDir, "r");
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
  }

  #writing = Promise.resolve();
  /**
   * Write the held state in the background, after the verdict was published
   * (a crash in between leaves the disk one document behind, as if the push
   * had not arrived). Writes run one after another and each takes the state
   * as it is when it runs, so none puts back an older one; the event loop
   * never waits for a disk.
   */
  #persist() {
    const path = this.#path();
    if (!path) return this.#writing;
    this.#writing = this.#writing
      .then(async () => {
        const state = this.#stateNow();
        if (!state) return;
        await mkdir(this.stateDir, { recursive: true, mode: 0o700 });
        const tmp = this.#tmpPath(path);
        const file = await open(tmp, "w", 0o600);
        try {
          await file.writeFile(JSON.stringify(state));
          await file.sync();
        } finally {
          await file.close();
        }
        await rename(tmp, path);
        const dir = await open(this.stateDir, "r");
        try {
          await dir.sync();
        } finally {
          await dir.close();
        }
      })
      .catch((e) => this.#recordError("storage", `cannot write the license state: ${e.message}`));
    return this.#writing;
  }

  // ----- publishing ---------------------------------------------------------
  #publish() {
    const verdict = this.#holder ? this.#holder.verdict(this.#now()) : this.#status.verdict;
    this.#meters.sync(this.#holder?.document ?? null, this.#now());
    const old = this.#status.verdict;
    this.#status = { ...this.#status, verdict };
    const changed = JSON.stringify(verdict) !== JSON.stringify(old);
    if (changed) for (const fn of this.#listeners) { try { fn(verdict); } catch { /* a listener's failure is its own */ } }
    return verdict;
  }
  #recordError(kind, message) {
    const now = this.#now();
    this.#status = { ...this.#status, offlineSince: this.#status.offlineSince ?? now, lastError: { kind, message, at: now } };
  }
  #recordContact() {
    this.#status = { ...this.#status, lastVerifiedAt: this.#now(), offlineSince: null, lastError: null };
  }

  // ----- round trips ----------------------------------------------------------
  /** Ask the authority now, with a fresh nonce. */
  async refresh() {
    if (!this.#holder) throw new ClientError("no_token", "no license token: activate one first");
    return this.#roundTrip(this.#holder.token, true);
  }

  /** Use `token` (new, or the same again): checksum first (a typo sends nothing), then a round trip. */
  async activate(token) {
    return this.#roundTrip(new LicenseToken(token), true);
  }

  async #post(url, body, headers = {}) {
    let res;
    try {
      res = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body), signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (e) {
      throw new ClientError(e.name === "TimeoutError" ? "timeout" : "network", `cannot reach the authority: ${e.message}`);
    }
    if (res.status === 304) {
      await res.body?.cancel();
      return { status: 304, data: null };
    }
    let data;
    try {
      data = await readCapped(res);
    } catch (e) {
      // An error page over 64 KiB: cut off, and still an HTTP error.
      if (res.ok) throw e;
      data = Buffer.alloc(0);
    }
    if (!res.ok) {
      let message;
      try {
        const err = JSON.parse(data).error;
        message = `${err.message} (${err.code})`;
      } catch {
        message = data.subarray(0, 200).toString("utf-8");
      }
      throw new ClientError("http_status", `HTTP ${res.status}: ${message}`, retryAfterMs(res.headers.get("retry-after")), res.status);
    }
    return { status: res.status, data, etag: res.headers.get("etag") };
  }

  async #roundTrip(token, withNonce) {
    const nonce = withNonce ? randomBytes(16).toString("base64url") : null;
    const body = { token: token.secret(), instance_id: this.instanceId, fingerprint: this.fingerprint(token), ...(nonce ? { nonce } : {}) };
    const headers = !withNonce && this.etag ? { "if-none-match": this.etag } : {};
    let last = new ClientError("network", "no authority configured");
    for (const server of this.servers) {
      let answer;
      try {
        answer = await this.#post(`${server}/v1/validate`, body, headers);
      } catch (e) {
        if (!(e instanceof ClientError)) throw e;
        last = e;
        continue;
      }
      if (answer.status === 304) {
        // While flagged the client asks with a nonce: a 304 to that is an
        // error; otherwise it is unsigned and proves nothing (§11).
        if (!headers["if-none-match"]) {
          last = new ClientError("invalid_answer", "304 to a request without If-None-Match");
          break;
        }
        return this.#publish();
      }
      const verdict = this.#take(token, answer, nonce);
      if (this.#shouldActivate()) return this.#machineRoundTrip(token, "activate");
      await this.#writing; // a round trip returns with its answer on disk
      return verdict;
    }
    this.#recordError(last.kind, last.message);
    throw last;
  }

  /** Verify an answer (`{"document": …}`) and take it by the rules. */
  #take(token, answer, nonce) {
    let document;
    try {
      document = JSON.parse(answer.data).document;
      if (typeof document !== "string") throw new Error();
    } catch {
      this.#recordError("invalid_answer", "the answer is not a validation answer");
      throw new ClientError("invalid_answer", "the answer is not a validation answer");
    }
    const same = this.#holder && this.#holder.token.secret() === token.secret();
    const holder = same ? this.#holder : new Holder({ keys: this.keys, token, product: this.product });
    if (!same && this.#holder) holder.mark = this.#holder.mark;
    let claims;
    try {
      claims = verify(Buffer.from(document), this.keys, token.fingerprint(), this.#now(), { nonce, machine: fingerprintHash(this.fingerprint(token)), product: this.product });
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      this.#recordError("verification", e.message);
      throw new ClientError("verification", e.message);
    }
    // A machine released while it held a place stays released.
    const held = holder.document;
    if (claims.status === "not_activated" && held?.raw.mfp && held.valid) this.#machineGivenUp = true;
    const outcome = holder.accept(claims, document, this.#now(), nonce !== null);
    if (outcome === "rolled_back") {
      if (held?.raw.mfp && held.rev === claims.rev) return this.#publish(); // an activation crossing a poll (§19)
      this.#recordError("rollback", "the document is older than the one held");
      throw new ClientError("rollback", "the document is older than the one held");
    }
    this.#holder = holder;
    if (answer.etag) this.etag = answer.etag;
    if (nonce !== null || outcome === "accepted") this.#recordContact(); // a replay proves nothing (§11)
    const verdict = this.#publish();
    this.#persist();
    return verdict;
  }

  // ----- background -------------------------------------------------------------
  #schedule(ms) {
    if (this.#stopped) return;
    // One pending tick at a time (a stream announcement may ask for one early).
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    const t = setTimeout(() => {
      this.#timers.delete(t);
      this.#tick().catch(() => {});
    }, ms);
    t.unref?.();
    this.#timers.add(t);
  }

  #failures = 0;
  async #tick() {
    this.#publish();
    const holder = this.#holder;
    let wait = this.tickMs;
    if (holder) {
      const due = holder.document ? holder.document.refreshAfter - this.#now() : 0;
      const forced = this.#forced;
      this.#forced = false;
      if (due <= 0 || this.#failures || forced) {
        try {
          const flagged = this.#status.lastError !== null || this.#status.offlineSince !== null;
          await this.#roundTrip(holder.token, !holder.document || flagged || forced);
          this.#failures = 0;
        } catch (e) {
          this.#failures++;
          wait = backoffMs(this.#failures, e);
        }
      } else {
        wait = Math.min(this.tickMs, due * 1000);
      }
    }
    const deadline = this.#nextDeadline();
    // The verdict changes at its deadlines with no request.
    if (deadline !== null) wait = Math.min(wait, Math.max(10, (deadline - this.clock()) * 1000 + 10));
    this.#schedule(wait);
  }

  /** The next instant the held verdict changes by the clock alone: the license's end, a feature's end, the grace's end. */
  #nextDeadline() {
    const doc = this.#holder?.document;
    if (!doc) return null;
    const times = [doc.expiresAt, doc.exp + 1];
    for (const e of Object.values(doc.entitlements)) if (e?.expires_at) times.push(parseTime(e.expires_at));
    const now = this.clock();
    const future = times.filter((t) => t !== null && t !== undefined && t > now);
    return future.length ? Math.min(...future) : null;
  }

  // ----- the change stream -----------------------------------------------------------
  #ackedAt = 0;
  async #ack(token, revision) {
    this.#ackedAt = Date.now();
    for (const server of this.servers) {
      try {
        await this.#post(`${server}/v1/instances/ack`, { token: token.secret(), instance_id: this.instanceId, revision });
        return;
      } catch { /* the next server, or the next ack */ }
    }
  }

  async #applyPushed(token, document) {
    const holder = this.#holder;
    if (!holder || holder.token.secret() !== token.secret()) return;
    let claims;
    try {
      claims = verify(Buffer.from(document), this.keys, token.fingerprint(), this.#now(), { product: this.product });
    } catch (e) {
      this.#recordError("verification", `a pushed document was rejected: ${e.message}`);
      return;
    }
    // A push on this client's own stream re-bases the mark (§6).
    if (holder.accept(claims, document, this.#now(), true) !== "accepted") return; // older, or the one held
    this.#recordContact();
    this.#publish();
    this.#persist();
    await this.#ack(token, claims.rev);
  }

  async #watchLoop() {
    let failures = 0;
    while (!this.#stopped) {
      const holder = this.#holder;
      if (!holder) {
        await new Promise((r) => setTimeout(r, 1000).unref?.());
        continue;
      }
      const server = this.servers[failures % this.servers.length];
      const controller = new AbortController();
      this.#stream = controller;
      const headers = { authorization: `Bearer ${holder.token.secret()}`, accept: "text/event-stream", "tessera-instance": this.instanceId };
      if (holder.document) headers["last-event-id"] = String(holder.document.rev);
      try {
        const res = await fetch(`${server}/v1/watch`, { headers, signal: controller.signal });
        if (res.ok) {
          this.connected = true;
          failures = 0;
          if (holder.document) this.#ack(holder.token, holder.document.rev);
          await this.#readEvents(res, holder.token, controller);
        } else {
          await res.body?.cancel();
        }
      } catch { /* reconnect below */ }
      this.connected = false;
      failures++;
      if (this.#stopped) return;
      await new Promise((r) => setTimeout(r, 500 + jitter(failures)).unref?.());
    }
  }

  async #readEvents(res, token, controller) {
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let idle;
    const arm = () => {
      clearTimeout(idle);
      idle = setTimeout(() => controller.abort(), this.streamReadTimeoutMs);
      idle.unref?.();
    };
    arm();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        arm();
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const raw = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let event = "message";
          const data = [];
          for (const line of raw.split("\n")) {
            if (line.startsWith(":")) {
              // Every 5 minutes the held revision again, so the fleet view heals after a lost ack (§12).
              const held = this.#holder?.document;
              if (Date.now() - this.#ackedAt > this.ackIntervalMs && held) this.#ack(token, held.rev);
              continue;
            }
            const i = line.indexOf(":");
            const field = i < 0 ? line : line.slice(0, i);
            const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
            if (field === "event") event = value;
            else if (field === "data") data.push(value);
          }
          if (event === "status" && data.length) await this.#applyPushed(token, data.join("\n"));
          else if (event === "machines") {
            // A place was taken or freed: ask at once for this machine's own answer (§19).
            this.#forced = true;
            this.#schedule(0);
          }
        }
        // An event over 64 KiB: dropped with the connection.
        if (buffer.length > MAX_ANSWER_BYTES) return controller.abort();
      }
    } finally {
      clearTimeout(idle);
    }
  }
}
