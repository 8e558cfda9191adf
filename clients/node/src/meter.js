// Metered quotas on the client (docs/PROTOCOL.md §22), as the Rust SDK
// keeps them. A meter's `used` is the client's estimate of the period's use
// across every instance: what the authority had counted (the held
// document's `used` as of `iat`, or a later report's answer, the higher)
// plus what this client consumed that the authority has not counted yet
// (`pending`, not yet in a report, and `inflight`, in the report awaiting
// its answer). A consumption that would pass the blocking point is refused
// and not counted. At `period_ends_at`, by the client's clock, the next
// period starts from nothing.
import { parseTime } from "./protocol.js";

export const MAX_QUOTA = 2 ** 53;

/**
 * A consumption refused and not counted: `code` is `quota_exhausted` (with
 * `remaining`), `unknown_quota`, `not_granted` or `invalid_amount`.
 */
export class QuotaError extends Error {
  constructor(code, message, remaining = null) {
    super(message);
    this.code = code;
    this.remaining = remaining;
  }
}

/** When the calendar period (UTC) holding `at` (Unix seconds) ends; Infinity for `total`. */
export function periodEnd(period, at) {
  const d = new Date(at * 1000);
  if (period === "day") return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1) / 1000;
  if (period === "month") return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) / 1000;
  return Infinity;
}

/** How far use may go: the blocking point. */
export function ceiling(limit, overage) {
  if (overage === "allow") return Infinity;
  const m = /^allow_until_percent\((\d+)\)$/.exec(overage);
  return m ? Math.floor((limit * Number(m[1])) / 100) : limit;
}

const endOf = (q) => (q.period_ends_at ? parseTime(q.period_ends_at) : Infinity);

class Meter {
  constructor(period) {
    this.period = period;
    this.limit = 0;
    this.ceiling = Infinity;
    this.counted = 0;
    this.pending = 0;
    this.inflight = 0;
    this.periodEnd = Infinity;
  }
  get used() {
    return this.counted + this.pending + this.inflight;
  }
  /** The authority counted `counted` in the period ending at `end`. */
  learn(counted, end) {
    if (end === this.periodEnd) this.counted = Math.max(this.counted, counted);
    else {
      this.periodEnd = end;
      this.counted = counted;
    }
  }
}

/** The meters of the held license, by feature. */
export class Meters {
  #table = new Map();
  #basedOn = null;

  /**
   * Base the meters on the held document (its claims), when it is another
   * one than last time; start a period again once it is over. Under a
   * policy that only warns nothing is refused (§24).
   */
  sync(doc, now) {
    const key = doc ? `${doc.rev}/${doc.iat}` : null;
    if (key !== this.#basedOn) {
      this.#basedOn = key;
      const enforced = !doc || doc.enforcement === "enforce";
      const table = new Map();
      for (const [feature, e] of Object.entries(doc?.entitlements ?? {}).sort()) {
        const q = e?.quota;
        if (!q) continue;
        let m = this.#table.get(feature);
        if (!m || m.period !== q.period) m = new Meter(q.period);
        m.limit = Number(q.limit);
        m.ceiling = enforced ? ceiling(m.limit, q.overage ?? "block") : Infinity;
        m.learn(Number(q.used ?? 0), endOf(q));
        table.set(feature, m);
      }
      this.#table = table;
    }
    // A new period: the authority's count starts from nothing.
    for (const m of this.#table.values()) if (m.periodEnd <= now) m.learn(0, periodEnd(m.period, now));
  }

  /** Count `amount`; what is left of the limit after it. */
  consume(feature, amount) {
    if (!Number.isSafeInteger(amount) || amount < 0 || amount > MAX_QUOTA) {
      throw new QuotaError("invalid_amount", `${amount} is not a whole number from 0 to 2^53`);
    }
    const m = this.#table.get(feature);
    if (!m) throw new QuotaError("unknown_quota", `${feature} has no quota`);
    if (m.used + amount > m.ceiling) {
      throw new QuotaError("quota_exhausted", `the quota of ${feature} is exhausted`, Math.min(Math.max(0, m.ceiling - m.used), m.limit));
    }
    m.pending += amount;
    return Math.max(0, m.limit - m.used);
  }

  remaining(feature) {
    const m = this.#table.get(feature);
    return m ? Math.max(0, m.limit - m.used) : null;
  }

  /** Each metered feature: `{limit, used}` as estimated now. */
  snapshot() {
    return Object.fromEntries([...this.#table].sort().map(([f, m]) => [f, { limit: m.limit, used: m.used }]));
  }

  /** Move what is pending into a report. */
  takePending() {
    const amounts = {};
    for (const [f, m] of this.#table) {
      if (m.pending) {
        m.inflight += m.pending;
        amounts[f] = m.pending;
        m.pending = 0;
      }
    }
    return amounts;
  }

  /** A report was counted: its amounts are the authority's now. */
  settle(amounts, answer) {
    for (const [f, n] of Object.entries(amounts)) {
      const m = this.#table.get(f);
      if (!m) continue;
      m.inflight = Math.max(0, m.inflight - n);
      const q = answer?.[f];
      if (q && endOf(q) === m.periodEnd) m.learn(Number(q.used ?? 0), m.periodEnd);
    }
  }

  /** A report refused for good: its amounts are dropped. */
  abandon(amounts) {
    for (const [f, n] of Object.entries(amounts)) {
      const m = this.#table.get(f);
      if (m) m.inflight = Math.max(0, m.inflight - n);
    }
  }
}
