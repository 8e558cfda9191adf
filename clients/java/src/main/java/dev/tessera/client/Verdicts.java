package dev.tessera.client;

import dev.tessera.client.Protocol.Claims;
import dev.tessera.client.Protocol.LicenseToken;
import dev.tessera.client.Protocol.ProtocolException;
import dev.tessera.client.Protocol.TrustedKeys;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * The verdict and the held state (docs/PROTOCOL.md §5–7, §20, §21, §24):
 * pure functions of the held document, the clock and the mark.
 */
public final class Verdicts {
    private Verdicts() {}

    public static final long DEFAULT_TOLERANCE = 3600;
    private static final Set<String> REFUSALS = Set.of("revoked", "suspended", "not_found", "instance_limit",
            "too_many_machines", "not_activated", "lease_expired", "expired");
    private static final Set<String> BY_RULE = Set.of("expired", "instance_limit", "too_many_machines",
            "not_activated", "lease_expired");

    /** What the product reads; {@link #hasFeature} is a plain read of an immutable list. */
    public static final class Verdict {
        public final String state;
        public final String reason;
        public final Long revision;
        public final List<String> features;
        public final List<String> warnings;
        public final String afterExpiry;
        /** What the held document says of the license (null without one). */
        public final String plan;
        public final String customer;
        /** Unix seconds; null for a perpetual license. */
        public final Long expiresAt;
        /** Days left, a started day counting as a day; past the end, whole days since. */
        public final Long daysLeft;
        public final Long maxUsers;

        Verdict(String state, String reason, Long revision, List<String> features, List<String> warnings,
                String afterExpiry) {
            this(state, reason, revision, features, warnings, afterExpiry, null, 0);
        }

        Verdict(String state, String reason, Long revision, List<String> features, List<String> warnings,
                String afterExpiry, Claims c, long now) {
            this.state = state;
            this.reason = reason;
            this.revision = revision;
            this.features = List.copyOf(features);
            this.warnings = List.copyOf(warnings);
            this.afterExpiry = afterExpiry;
            this.plan = c != null && c.raw.get("plan") instanceof String ? (String) c.raw.get("plan") : null;
            this.customer = c != null && c.raw.get("customer") instanceof String ? (String) c.raw.get("customer") : null;
            this.expiresAt = c == null ? null : c.expiresAt;
            this.daysLeft = c == null ? null : daysLeft(c.expiresAt, now);
            this.maxUsers = c != null && c.raw.get("max_users") instanceof Number ? ((Number) c.raw.get("max_users")).longValue() : null;
        }

        public boolean isValid() {
            return state.equals("valid");
        }

        public boolean hasFeature(String name) {
            return isValid() && features.contains(name);
        }
    }

    /** Days left, a started day counting as a day (20 days minus a second is 20); past the end, whole days since. */
    public static Long daysLeft(Long expiresAt, long now) {
        if (expiresAt == null) return null;
        long secs = expiresAt - now;
        return secs > 0 ? (secs + 86399) / 86400 : secs / 86400;
    }

    @SuppressWarnings("unchecked")
    private static boolean pastBlockingPoint(Map<String, Object> q) {
        long limit = ((Number) q.get("limit")).longValue();
        long used = q.get("used") instanceof Number ? ((Number) q.get("used")).longValue() : 0;
        String overage = q.get("overage") instanceof String ? (String) q.get("overage") : "block";
        if (overage.equals("allow")) return false;
        if (overage.startsWith("allow_until_percent(")) {
            long p = Long.parseLong(overage.substring("allow_until_percent(".length(), overage.length() - 1));
            return used >= limit * p / 100;
        }
        return used >= limit;
    }

    @SuppressWarnings("unchecked")
    private static List<String> granted(Claims c, long now) throws ProtocolException {
        List<String> out = new ArrayList<>();
        for (String f : c.features) {
            Object e = c.entitlements.get(f);
            Object end = e instanceof Map ? ((Map<String, Object>) e).get("expires_at") : null;
            if (end == null || Protocol.parseTime(end) > now) out.add(f);
        }
        return out;
    }

    /** The verdict in the order of §7. */
    @SuppressWarnings("unchecked")
    public static Verdict compute(Claims c, long now, Long mark, long tolerance, long maxClockDrift, Long releasedAt)
            throws ProtocolException {
        if (c == null) return new Verdict("unverified", "no_document", null, List.of(), List.of(), null);
        long floor = c.iat - maxClockDrift;
        long effective = mark == null ? floor : Math.max(mark, floor);
        if (now < effective - tolerance) return new Verdict("unverified", "clock_tampered", c.rev, List.of(), List.of(), null, c, now);
        if (now > c.exp) return new Verdict("unverified", "stale", c.rev, List.of(), List.of(), null, c, now);
        String state = REFUSALS.contains(c.status) ? c.status
                : (c.expiresAt != null && c.expiresAt <= now) ? "expired" : "valid";
        String afterExpiry = null;
        if (state.equals("expired")) {
            if (c.onExpiry.equals("keep_access")) {
                afterExpiry = "keep_access";
            } else if (c.onExpiry.equals("keep_versions_released_before_expiry") && releasedAt != null
                    && c.expiresAt != null && releasedAt < c.expiresAt) {
                afterExpiry = c.onExpiry;
            }
            if (afterExpiry != null) state = "valid";
        }
        List<String> warnings = new ArrayList<>();
        if (!c.enforcement.equals("enforce") && c.valid) {
            if (BY_RULE.contains(state)) warnings.add(state);
            for (String name : new TreeSet<>(c.entitlements.keySet())) {
                Object e = c.entitlements.get(name);
                Object q = e instanceof Map ? ((Map<String, Object>) e).get("quota") : null;
                if (q instanceof Map && pastBlockingPoint((Map<String, Object>) q)) warnings.add("quota_exhausted:" + name);
            }
        }
        if (warnings.stream().anyMatch(w -> !w.startsWith("quota_exhausted:"))) state = "valid";
        return new Verdict(state, null, c.rev, state.equals("valid") ? granted(c, now) : List.of(), warnings, afterExpiry, c, now);
    }

    /**
     * The held state: the newest verified document for the token and the
     * clock mark (§5, §6). Only verified documents change it.
     */
    public static final class Holder {
        private final TrustedKeys keys;
        private final LicenseToken token;
        private final long tolerance;
        private final long maxClockDrift;
        private Claims document;
        private String text;
        private Long mark;
        private String product;

        public Holder(TrustedKeys keys, LicenseToken token, long tolerance, long maxClockDrift) {
            this.keys = keys;
            this.token = token;
            this.tolerance = tolerance;
            this.maxClockDrift = maxClockDrift;
        }

        /** The product documents must be of (§28); null: any. */
        public Holder product(String p) {
            this.product = p;
            return this;
        }

        /** Held state from disk: re-verified (signature and token), the mark repaired to at least its iat. */
        public void load(String doc, Long storedMark) throws ProtocolException {
            document = null;
            if (doc != null) {
                document = Protocol.checkProduct(Protocol.verify(doc.getBytes(StandardCharsets.UTF_8), keys,
                        token.fingerprint(), 0, null, false, maxClockDrift), product);
                text = doc;
                storedMark = storedMark == null ? document.iat : Math.max(storedMark, document.iat);
            }
            mark = storedMark;
        }

        /** An unsolicited document: "accepted", "same" or "rolled_back"; throws when refused. */
        public String offer(byte[] data, long now) throws ProtocolException {
            Claims next = Protocol.checkProduct(Protocol.verify(data, keys, token.fingerprint(), now, null, true,
                    maxClockDrift), product);
            return accept(next, new String(data, StandardCharsets.UTF_8), now, false);
        }

        /**
         * Take a verified document by the rollback rule. {@code rebase}: it
         * answers this client's own nonce (or came on its own stream), so the
         * mark becomes the authority's time, max(iat, now) (§6).
         */
        public String accept(Claims next, String doc, long now, boolean rebase) {
            String decision = Protocol.checkRollback(document, next);
            if (decision.equals("reject")) return "rolled_back";
            if (decision.equals("accept")) {
                document = next;
                text = doc;
            }
            long m = Math.max(next.iat, now);
            mark = rebase || mark == null ? m : Math.max(mark, m);
            return decision.equals("accept") ? "accepted" : "same";
        }

        public LicenseToken token() {
            return token;
        }

        public String documentText() {
            return text;
        }

        public Long mark() {
            return mark;
        }

        void setMark(Long m) {
            mark = m;
        }

        /** The held document's claims, or null. */
        public Claims document() {
            return document;
        }

        public Long revision() {
            return document == null ? null : document.rev;
        }

        public Long refreshAfter() {
            return document == null ? null : document.refreshAfter;
        }

        /** The verdict at {@code now}; the mark advances with the clock unless it was set back. */
        public Verdict verdict(long now) throws ProtocolException {
            Verdict v = compute(document, now, mark, tolerance, maxClockDrift, null);
            if (!"clock_tampered".equals(v.reason)) mark = mark == null ? now : Math.max(mark, now);
            return v;
        }
    }
}
