// The Node client replays the language-neutral conformance suite
// (tests/conformance/cases.json at the repository's root).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

import { Holder, LicenseToken, ProtocolError, TrustedKeys, parseTime } from "../src/index.js";

const suite = JSON.parse(readFileSync(fileURLToPath(new URL("../../../tests/conformance/cases.json", import.meta.url)), "utf-8"));

test("the suite is the one this runner reads", () => {
  assert.equal(suite.format, "tessera-conformance/1");
  assert.ok(suite.cases.length >= 25);
});

for (const c of suite.cases) {
  test(c.name, () => {
    const keys = new TrustedKeys();
    for (const k of suite.keys) keys.pin(k);
    const holder = new Holder({ keys, token: new LicenseToken(suite.token), tolerance: suite.tolerance_secs, maxClockDrift: suite.max_clock_drift_secs });
    const mark = c.held.high_water_mark;
    holder.load(c.held.document, mark ? parseTime(mark) : null);
    const start = parseTime(c.offer ? c.offer.at : c.timeline[0].now);
    holder.verdict(start); // a client publishes its verdict when it starts
    if (c.offer) {
      let outcome;
      try {
        outcome = holder.offer(Buffer.from(c.offer.document_b64, "base64"), start);
      } catch (e) {
        if (!(e instanceof ProtocolError)) throw e;
        outcome = `refused:${e.code}`;
      }
      assert.equal(outcome, c.expect_offer);
    }
    for (const step of c.timeline) {
      const v = holder.verdict(parseTime(step.now));
      assert.deepEqual([v.state, v.reason, v.revision], [step.state, step.reason, step.revision], step.now);
    }
  });
}

test("a mistyped token is refused offline", () => {
  const t = suite.token;
  const typo = t.slice(0, -1) + (t.endsWith("A") ? "B" : "A");
  assert.throws(() => new LicenseToken(typo), (e) => e instanceof ProtocolError && e.code === "invalid_token");
  assert.equal(String(new LicenseToken(t)).includes(t), false, "never printed whole");
});

test("another system's key is kept as it is", () => {
  const keygen = "C1B6DE-39A6E3-DE1529-8559A0-4AF593-V3";
  assert.equal(new LicenseToken(` ${keygen}\n`).secret(), keygen);
  for (const bad of ["short", "tsa_0123456789", "has space in it", "ключ-лицензии-1"]) {
    assert.throws(() => new LicenseToken(bad), (e) => e instanceof ProtocolError && e.code === "invalid_token", bad);
  }
});
