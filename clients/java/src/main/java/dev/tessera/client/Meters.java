package dev.tessera.client;

import dev.tessera.client.Protocol.Claims;
import dev.tessera.client.Protocol.ProtocolException;
import java.time.LocalDate;
import java.time.ZoneOffset;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Metered quotas on the client (docs/PROTOCOL.md §22), as the Rust SDK keeps
 * them. A meter's {@code used} is the client's estimate of the period's use
 * across every instance: what the authority had counted (the held document's
 * {@code used} as of {@code iat}, or a later report's answer, the higher)
 * plus what this client consumed that the authority has not counted yet
 * ({@code pending}, not yet in a report, and {@code inflight}, in the report
 * awaiting its answer). A consumption that would pass the blocking point is
 * refused and not counted. At {@code period_ends_at}, by the client's clock,
 * the next period starts from nothing.
 */
public final class Meters {
    public static final long MAX_QUOTA = 1L << 53;
    static final long NEVER = Long.MAX_VALUE;

    /** A consumption refused and not counted. */
    public static final class QuotaException extends Exception {
        private static final long serialVersionUID = 1L;
        /** {@code quota_exhausted}, {@code unknown_quota}, {@code not_granted} or {@code invalid_amount}. */
        public final String code;
        /** What is left, for {@code quota_exhausted}; else null. */
        public final Long remaining;

        QuotaException(String code, String message, Long remaining) {
            super(message);
            this.code = code;
            this.remaining = remaining;
        }
    }

    /** When the calendar period (UTC) holding {@code at} ends; {@link #NEVER} for {@code total}. */
    static long periodEnd(String period, long at) {
        LocalDate d = LocalDate.ofEpochDay(Math.floorDiv(at, 86400));
        return switch (period) {
            case "day" -> d.plusDays(1).atStartOfDay().toEpochSecond(ZoneOffset.UTC);
            case "month" -> d.withDayOfMonth(1).plusMonths(1).atStartOfDay().toEpochSecond(ZoneOffset.UTC);
            default -> NEVER;
        };
    }

    /** How far use may go: the blocking point. */
    static long ceiling(long limit, String overage) {
        if (overage.equals("allow")) return NEVER;
        if (overage.startsWith("allow_until_percent(") && overage.endsWith(")")) {
            return limit * Long.parseLong(overage.substring("allow_until_percent(".length(), overage.length() - 1)) / 100;
        }
        return limit;
    }

    private static final class Meter {
        final String period;
        long limit;
        long ceiling = NEVER;
        long counted;
        long pending;
        long inflight;
        long periodEnd = NEVER;

        Meter(String period) {
            this.period = period;
        }

        long used() {
            return counted + pending + inflight;
        }

        /** The authority counted {@code n} in the period ending at {@code end}. */
        void learn(long n, long end) {
            if (end == periodEnd) {
                counted = Math.max(counted, n);
            } else {
                periodEnd = end;
                counted = n;
            }
        }
    }

    private volatile Map<String, Meter> table = Map.of();
    private String basedOn;

    private static long number(Object o) {
        return o instanceof Number ? ((Number) o).longValue() : 0;
    }

    private static long endOf(Map<String, Object> q) throws ProtocolException {
        return q.get("period_ends_at") == null ? NEVER : Protocol.parseTime(q.get("period_ends_at"));
    }

    /**
     * Base the meters on the held document, when it is another one than last
     * time; start a period again once it is over. Under a policy that only
     * warns nothing is refused (§24).
     */
    @SuppressWarnings("unchecked")
    public synchronized void sync(Claims doc, long now) {
        String key = doc == null ? null : doc.rev + "/" + doc.iat;
        if (!java.util.Objects.equals(key, basedOn)) {
            basedOn = key;
            boolean enforced = doc == null || doc.enforcement.equals("enforce");
            Map<String, Meter> next = new ConcurrentHashMap<>();
            if (doc != null) {
                for (Map.Entry<String, Object> e : doc.entitlements.entrySet()) {
                    if (!(e.getValue() instanceof Map) || !(((Map<String, Object>) e.getValue()).get("quota") instanceof Map)) continue;
                    Map<String, Object> q = (Map<String, Object>) ((Map<String, Object>) e.getValue()).get("quota");
                    String period = String.valueOf(q.get("period"));
                    Meter m = table.get(e.getKey());
                    if (m == null || !m.period.equals(period)) m = new Meter(period);
                    m.limit = number(q.get("limit"));
                    String overage = q.get("overage") instanceof String ? (String) q.get("overage") : "block";
                    m.ceiling = enforced ? ceiling(m.limit, overage) : NEVER;
                    try {
                        m.learn(number(q.get("used")), endOf(q));
                    } catch (ProtocolException bad) {
                        continue; // a verified document never has a bad time; skip it all the same
                    }
                    next.put(e.getKey(), m);
                }
            }
            table = next;
        }
        // A new period: the authority's count starts from nothing.
        for (Meter m : table.values()) if (m.periodEnd <= now) m.learn(0, periodEnd(m.period, now));
    }

    /** Count {@code amount}; what is left of the limit after it. */
    public synchronized long consume(String feature, long amount) throws QuotaException {
        if (amount < 0 || amount > MAX_QUOTA) {
            throw new QuotaException("invalid_amount", amount + " is not a whole number from 0 to 2^53", null);
        }
        Meter m = table.get(feature);
        if (m == null) throw new QuotaException("unknown_quota", feature + " has no quota", null);
        if (m.used() + amount > m.ceiling) {
            long left = Math.min(Math.max(0, m.ceiling - m.used()), m.limit);
            throw new QuotaException("quota_exhausted", "the quota of " + feature + " is exhausted", left);
        }
        m.pending += amount;
        return Math.max(0, m.limit - m.used());
    }

    public synchronized Long remaining(String feature) {
        Meter m = table.get(feature);
        return m == null ? null : Math.max(0, m.limit - m.used());
    }

    /** Each metered feature: {limit, used as estimated now}. */
    public synchronized Map<String, long[]> snapshot() {
        Map<String, long[]> out = new TreeMap<>();
        table.forEach((f, m) -> out.put(f, new long[] {m.limit, m.used()}));
        return out;
    }

    /** Move what is pending into a report. */
    synchronized Map<String, Long> takePending() {
        Map<String, Long> amounts = new TreeMap<>();
        table.forEach((f, m) -> {
            if (m.pending > 0) {
                m.inflight += m.pending;
                amounts.put(f, m.pending);
                m.pending = 0;
            }
        });
        return amounts;
    }

    /** A report was counted: its amounts are the authority's now. */
    @SuppressWarnings("unchecked")
    synchronized void settle(Map<String, Long> amounts, Map<String, Object> answer) {
        amounts.forEach((f, n) -> {
            Meter m = table.get(f);
            if (m == null) return;
            m.inflight = Math.max(0, m.inflight - n);
            if (answer != null && answer.get(f) instanceof Map) {
                Map<String, Object> q = (Map<String, Object>) answer.get(f);
                try {
                    if (endOf(q) == m.periodEnd) m.learn(number(q.get("used")), m.periodEnd);
                } catch (ProtocolException bad) {
                    // an answer with a bad time teaches nothing
                }
            }
        });
    }

    /** A report refused for good: its amounts are dropped. */
    synchronized void abandon(Map<String, Long> amounts) {
        amounts.forEach((f, n) -> {
            Meter m = table.get(f);
            if (m != null) m.inflight = Math.max(0, m.inflight - n);
        });
    }
}
