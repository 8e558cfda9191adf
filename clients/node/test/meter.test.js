// Metered quotas on the client (docs/PROTOCOL.md §22): the ceiling, the
// overage modes, a new period by the client's clock, reports settled or
// abandoned, and a policy that only warns.
import assert from "node:assert/strict";
import { test } from "node:test";

import { parseTime } from "../src/protocol.js";
import { Meters, QuotaError, periodEnd } from "../src/meter.js";

const claims = (quota, { rev = 1, iat = "2026-12-10T00:00:00Z", enforcement = "enforce" } = {}) => ({ rev, iat: parseTime(iat), enforcement, entitlements: { api: { quota } } });
const month = (used, overage = "block") => ({ limit: 100, period: "month", overage, used, period_ends_at: "2027-01-01T00:00:00Z" });
const now = parseTime("2026-12-10T00:00:00Z");

test("the ceiling and what is uncounted", () => {
  const m = new Meters();
  m.sync(claims(month(90)), now);
  assert.equal(m.remaining("api"), 10);
  assert.equal(m.consume("api", 4), 6);
  assert.throws(() => m.consume("api", 7), (e) => e instanceof QuotaError && e.code === "quota_exhausted" && e.remaining === 6);
  assert.equal(m.consume("api", 6), 0);
  const report = m.takePending();
  assert.deepEqual(report, { api: 10 });
  assert.equal(m.remaining("api"), 0, "in flight still counts");
  m.settle(report, { api: month(100) });
  assert.deepEqual(m.snapshot(), { api: { limit: 100, used: 100 } });
  assert.throws(() => m.consume("nope", 1), (e) => e.code === "unknown_quota");
  assert.throws(() => m.consume("api", -1), (e) => e.code === "invalid_amount");
});

test("overage modes and a warning policy", () => {
  let m = new Meters();
  m.sync(claims(month(100, "allow_until_percent(120)")), now);
  assert.equal(m.consume("api", 20), 0);
  assert.throws(() => m.consume("api", 1));
  m = new Meters();
  m.sync(claims(month(100, "allow")), now);
  assert.equal(m.consume("api", 1e6), 0);
  m = new Meters();
  m.sync(claims(month(100), { enforcement: "warn" }), now);
  assert.equal(m.consume("api", 5), 0, "a policy that warns refuses nothing");
});

test("a new period starts by the client's clock", () => {
  const m = new Meters();
  m.sync(claims(month(100)), parseTime("2026-12-31T23:59:59Z"));
  assert.throws(() => m.consume("api", 1));
  m.sync(claims(month(100)), parseTime("2027-01-01T00:00:00Z"));
  assert.equal(m.remaining("api"), 100);
  assert.equal(periodEnd("day", parseTime("2026-12-10T12:00:00Z")), parseTime("2026-12-11T00:00:00Z"));
  assert.equal(periodEnd("month", parseTime("2026-12-10T12:00:00Z")), parseTime("2027-01-01T00:00:00Z"));
});

test("an abandoned report is no longer counted", () => {
  const m = new Meters();
  m.sync(claims(month(0)), now);
  m.consume("api", 30);
  const report = m.takePending();
  assert.equal(m.remaining("api"), 70);
  m.abandon(report);
  assert.equal(m.remaining("api"), 100);
});
