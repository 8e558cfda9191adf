package dev.tessera.client;

import dev.tessera.client.Meters.QuotaException;
import dev.tessera.client.Protocol.Claims;
import java.util.List;
import java.util.Map;

/**
 * Metered quotas on the client (docs/PROTOCOL.md §22): the ceiling, the
 * overage modes, a new period by the client's clock, reports settled or
 * abandoned, and a policy that only warns.
 */
public final class MeterTest {
    static Claims claims(Map<String, Object> quota, String enforcement) throws Exception {
        long iat = Protocol.parseTime("2026-12-10T00:00:00Z");
        return new Claims(Map.of(), "active", true, 1, iat, iat + 86400, iat, null, List.of("api"),
                Map.of("api", Map.of("quota", quota)), "lose_access", enforcement, "", null);
    }

    static Map<String, Object> month(long used, String overage) {
        return Map.of("limit", 100L, "period", "month", "overage", overage, "used", used, "period_ends_at", "2027-01-01T00:00:00Z");
    }

    static void check(boolean ok, String what) {
        if (!ok) throw new AssertionError(what);
    }

    static QuotaException refused(Meters m, String f, long n) {
        try {
            m.consume(f, n);
        } catch (QuotaException e) {
            return e;
        }
        throw new AssertionError("consumed " + n + " of " + f);
    }

    public static void main(String[] args) throws Exception {
        long now = Protocol.parseTime("2026-12-10T00:00:00Z");
        Meters m = new Meters();
        m.sync(claims(month(90, "block"), "enforce"), now);
        check(m.remaining("api") == 10, "remaining");
        check(m.consume("api", 4) == 6, "consume 4");
        QuotaException e = refused(m, "api", 7);
        check(e.code.equals("quota_exhausted") && e.remaining == 6, e.code + " " + e.remaining);
        check(m.consume("api", 6) == 0, "consume the rest");
        Map<String, Long> report = m.takePending();
        check(report.equals(Map.of("api", 10L)) && m.remaining("api") == 0, "in flight still counts");
        m.settle(report, Map.of("api", month(100, "block")));
        check(m.snapshot().get("api")[1] == 100, "settled");
        check(refused(m, "nope", 1).code.equals("unknown_quota"), "unknown");
        check(refused(m, "api", -1).code.equals("invalid_amount"), "negative");

        m = new Meters();
        m.sync(claims(month(100, "allow_until_percent(120)"), "enforce"), now);
        check(m.consume("api", 20) == 0, "overage up to 120 %");
        refused(m, "api", 1);
        m = new Meters();
        m.sync(claims(month(100, "allow"), "enforce"), now);
        check(m.consume("api", 1_000_000) == 0, "allow");
        m = new Meters();
        m.sync(claims(month(100, "block"), "warn"), now);
        check(m.consume("api", 5) == 0, "a policy that warns refuses nothing");

        m = new Meters();
        m.sync(claims(month(100, "block"), "enforce"), Protocol.parseTime("2026-12-31T23:59:59Z"));
        refused(m, "api", 1);
        m.sync(claims(month(100, "block"), "enforce"), Protocol.parseTime("2027-01-01T00:00:00Z"));
        check(m.remaining("api") == 100, "a new period by the clock");
        check(Meters.periodEnd("day", Protocol.parseTime("2026-12-10T12:00:00Z")) == Protocol.parseTime("2026-12-11T00:00:00Z"), "day");
        check(Meters.periodEnd("month", Protocol.parseTime("2026-12-10T12:00:00Z")) == Protocol.parseTime("2027-01-01T00:00:00Z"), "month");

        m = new Meters();
        m.sync(claims(month(0, "block"), "enforce"), now);
        m.consume("api", 30);
        report = m.takePending();
        check(m.remaining("api") == 70, "in flight");
        m.abandon(report);
        check(m.remaining("api") == 100, "abandoned");
        System.out.println("ok   metered quotas (ceilings, overage, periods, reports)");
    }
}
