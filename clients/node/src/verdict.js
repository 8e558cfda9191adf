// The verdict and the held state (docs/PROTOCOL.md §5–7, §20, §21, §24):
// pure functions of the held document, the clock and the mark.

import { checkRollback, parseTime, verify, DEFAULT_MAX_CLOCK_DRIFT } from "./protocol.js";

export const DEFAULT_TOLERANCE = 3600;
const REFUSALS = new Set([
  "revoked", "suspended", "not_found", "instance_limit", "too_many_machines",
  "not_activated", "lease_expired", "expired",
]);
const BY_RULE = new Set(["expired", "instance_limit", "too_many_machines", "not_activated", "lease_expired"]);

function pastBlockingPoint(q) {
  const limit = Number(q.limit);
  const used = Number(q.used ?? 0);
  const overage = q.overage ?? "block";
  if (overage === "allow") return false;
  const m = /^allow_until_percent\((\d+)\)$/.exec(overage);
  if (m) return used >= Math.floor((limit * Number(m[1])) / 100);
  return used >= limit;
}

function granted(c, now) {
  return c.features.filter((f) => {
    const end = c.entitlements[f]?.expires_at;
    return end === undefined || end === null || parseTime(end) > now;
  });
}

/** Days left, a started day counting as a day (20 days minus a second is 20); past the end, whole days since. */
export function daysLeft(expiresAt, now) {
  if (expiresAt === null || expiresAt === undefined) return null;
  const secs = expiresAt - now;
  return secs > 0 ? Math.floor((secs + 86399) / 86400) : Math.trunc(secs / 86400);
}

/**
 * The verdict in the order of §7: `{state, reason, revision, features,
 * warnings, afterExpiry}`, and what the held document says of the license:
 * `plan`, `customer`, `expiresAt` (Unix seconds, null for perpetual),
 * `daysLeft` and `maxUsers`.
 */
export function compute(c, now, mark, options = {}) {
  const { tolerance = DEFAULT_TOLERANCE, maxClockDrift = DEFAULT_MAX_CLOCK_DRIFT, releasedAt = null } = options;
  const info = c
    ? { plan: c.raw.plan ?? null, customer: c.raw.customer ?? null, expiresAt: c.expiresAt, daysLeft: daysLeft(c.expiresAt, now), maxUsers: c.raw.max_users ?? null }
    : { plan: null, customer: null, expiresAt: null, daysLeft: null, maxUsers: null };
  const verdict = (state, reason = null, extra = {}) =>
    Object.freeze({ state, reason, revision: c ? c.rev : null, features: [], warnings: [], afterExpiry: null, ...info, ...extra });
  if (!c) return verdict("unverified", "no_document");
  const effective = Math.max(mark ?? c.iat - maxClockDrift, c.iat - maxClockDrift);
  if (now < effective - tolerance) return verdict("unverified", "clock_tampered");
  if (now > c.exp) return verdict("unverified", "stale");
  let state = REFUSALS.has(c.status) ? c.status : c.expiresAt !== null && c.expiresAt <= now ? "expired" : "valid";
  let afterExpiry = null;
  if (state === "expired") {
    if (c.onExpiry === "keep_access") afterExpiry = "keep_access";
    else if (c.onExpiry === "keep_versions_released_before_expiry" && releasedAt !== null && c.expiresAt !== null && releasedAt < c.expiresAt) {
      afterExpiry = c.onExpiry;
    }
    if (afterExpiry) state = "valid";
  }
  const warnings = [];
  if (c.enforcement !== "enforce" && c.valid) {
    if (BY_RULE.has(state)) warnings.push(state);
    for (const name of Object.keys(c.entitlements).sort()) {
      const q = c.entitlements[name]?.quota;
      if (q && pastBlockingPoint(q)) warnings.push(`quota_exhausted:${name}`);
    }
  }
  if (warnings.some((w) => !w.startsWith("quota_exhausted:"))) state = "valid";
  return verdict(state, null, { features: state === "valid" ? granted(c, now) : [], warnings, afterExpiry });
}

/**
 * The held state: the newest verified document for the token and the clock
 * mark (§5, §6). Only verified documents change it.
 */
export class Holder {
  constructor({ keys, token, tolerance = DEFAULT_TOLERANCE, maxClockDrift = DEFAULT_MAX_CLOCK_DRIFT, product = null }) {
    this.keys = keys;
    this.token = token;
    this.product = product;
    this.tolerance = tolerance;
    this.maxClockDrift = maxClockDrift;
    this.document = null;
    this.mark = null;
  }

  /** Held state from disk: re-verified (signature and token), the mark repaired to at least its iat. */
  load(document, mark) {
    this.document = null;
    if (document !== null && document !== undefined) {
      this.document = verify(Buffer.from(document), this.keys, this.token.fingerprint(), 0, { enforceFreshness: false, product: this.product });
      this.text = document;
      mark = mark === null || mark === undefined ? this.document.iat : Math.max(mark, this.document.iat);
    }
    this.mark = mark ?? null;
  }

  /** The held document as signed (for the state file). */
  get documentText() {
    return this.text ?? null;
  }

  /** An unsolicited document: "accepted", "same" or "rolled_back"; throws ProtocolError when refused. */
  offer(bytes, now) {
    const next = verify(bytes, this.keys, this.token.fingerprint(), now, { maxClockDrift: this.maxClockDrift, product: this.product });
    return this.accept(next, Buffer.from(bytes).toString("utf-8"), now);
  }

  /**
   * Take a verified document by the rollback rule. `rebase`: it answers this
   * client's own nonce (or came on its own stream), so the mark becomes the
   * authority's time, max(iat, now) (§6).
   */
  accept(next, text, now, rebase = false) {
    const decision = checkRollback(this.document, next);
    if (decision === "reject") return "rolled_back";
    if (decision === "accept") {
      this.document = next;
      this.text = text;
    }
    this.mark = rebase ? Math.max(next.iat, now) : Math.max(...[this.mark, next.iat, now].filter((x) => x !== null));
    return decision === "accept" ? "accepted" : "same";
  }

  /** The verdict at `now`; the mark advances with the clock unless it was set back. */
  verdict(now) {
    const v = compute(this.document, now, this.mark, { tolerance: this.tolerance, maxClockDrift: this.maxClockDrift });
    if (v.reason !== "clock_tampered") this.mark = this.mark === null ? now : Math.max(this.mark, now);
    return v;
  }
}
