package dev.tessera.client;

import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.PublicKey;
import java.security.Signature;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import dev.tessera.client.Protocol.Claims;
import dev.tessera.client.Protocol.ProtocolException;
import dev.tessera.client.Protocol.TrustedKeys;

/**
 * Documents from a site relay (docs/PROTOCOL.md §26): the bundle chain by the
 * pinned authority keys, the document by the relay key it certifies (all of
 * §4), then the bundle's bounds — so a relay cannot grant more than its
 * bundle allows, and a stolen relay key dies with its bundle.
 */
final class Relayed {
    private Relayed() {}

    static final String BUNDLE_TYPE = "tessera-site-bundle/1";
    static final int MAX_BUNDLE_BYTES = 8 * 1024;
    static final int MAX_CHAIN = 3;

    private static ProtocolException refused(String reason) {
        return new ProtocolException("malformed", "relayed document: " + reason);
    }

    /** The footer's JSON, unverified (which way to verify), or null. */
    @SuppressWarnings("unchecked")
    static Map<String, Object> peekFooter(byte[] data) {
        try {
            String text = new String(data, StandardCharsets.UTF_8);
            if (!text.startsWith(Protocol.HEADER)) return null;
            String[] parts = text.substring(Protocol.HEADER.length()).split("\\.", -1);
            if (parts.length != 2) return null;
            Object f = Json.parse(new String(Protocol.b64urlDecode(parts[1]), StandardCharsets.UTF_8));
            return f instanceof Map ? (Map<String, Object>) f : null;
        } catch (ProtocolException | IllegalArgumentException e) {
            return null;
        }
    }

    static Claims verify(byte[] data, Map<String, Object> footer, TrustedKeys keys, String tokenFingerprint, long now,
            String nonce, boolean enforceFreshness, long maxClockDrift, String machine) throws ProtocolException {
        if (data.length > Protocol.MAX_DOCUMENT_BYTES) {
            throw new ProtocolException("document_too_large",
                    data.length + " bytes, over " + Protocol.MAX_DOCUMENT_BYTES);
        }
        if (!(footer.get("bundle") instanceof String text) || text.length() > MAX_BUNDLE_BYTES) {
            throw refused("the bundle is over 8 KiB");
        }
        Map<String, Object> bundle = verifyBundle(text, keys, enforceFreshness ? now : null, 1);
        TrustedKeys relay = new TrustedKeys().pin(String.valueOf(bundle.get("relay_key")));
        if (!relay.keys.containsKey(footer.get("kid"))) {
            throw refused("signed by another key than the bundle's relay");
        }
        Claims c = Protocol.verifyDirect(data, relay, tokenFingerprint, now, nonce, enforceFreshness, maxClockDrift,
                machine);
        checkBounds(c, bundle);
        return c;
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> verifyBundle(Object input, TrustedKeys keys, Long now, int depth)
            throws ProtocolException {
        if (!(input instanceof String text) || !text.startsWith(Protocol.HEADER)) {
            throw refused("the bundle is not a v4.public token");
        }
        String[] parts = text.substring(Protocol.HEADER.length()).split("\\.", -1);
        if (parts.length != 2) throw refused("the bundle names no key");
        byte[] body = Protocol.b64urlDecode(parts[0]);
        byte[] footerBytes = Protocol.b64urlDecode(parts[1]);
        String canonical = Protocol.HEADER + Protocol.b64urlEncode(body) + "." + Protocol.b64urlEncode(footerBytes);
        if (body.length < 64 || !canonical.equals(text)) throw refused("the bundle's encoding is not canonical");
        Map<String, Object> footer;
        try {
            Object f = Json.parse(new String(footerBytes, StandardCharsets.UTF_8));
            if (!(f instanceof Map)) throw new IllegalArgumentException("not an object");
            footer = (Map<String, Object>) f;
        } catch (IllegalArgumentException e) {
            throw refused("the bundle names no key");
        }
        if (!(footer.get("kid") instanceof String kid) || !(footer.get("typ") instanceof String typ)) {
            throw refused("the bundle names no key");
        }
        if (!typ.equals(BUNDLE_TYPE)) throw refused("not a site bundle");
        Map<String, Object> parent = null;
        if (footer.get("parent") != null) {
            if (depth >= MAX_CHAIN) throw refused("more than " + MAX_CHAIN + " relays in the chain");
            parent = verifyBundle(footer.get("parent"), keys, now, depth + 1);
        }
        PublicKey key;
        if (parent == null) {
            key = keys.keys.get(kid);
            if (key == null) throw new ProtocolException("unknown_key_id", "key " + kid + " is not pinned");
        } else {
            key = new TrustedKeys().pin(String.valueOf(parent.get("relay_key"))).keys.get(kid);
            if (key == null) throw refused("a bundle signed by another key than its parent's relay");
        }
        byte[] message = Arrays.copyOfRange(body, 0, body.length - 64);
        byte[] signature = Arrays.copyOfRange(body, body.length - 64, body.length);
        try {
            Signature v = Signature.getInstance("Ed25519");
            v.initVerify(key);
            v.update(Protocol.pae(Protocol.HEADER.getBytes(StandardCharsets.US_ASCII), message, footerBytes,
                    new byte[0]));
            if (!v.verify(signature)) {
                throw new ProtocolException("bad_signature", "the bundle's signature does not verify");
            }
        } catch (GeneralSecurityException e) {
            throw new ProtocolException("bad_signature", "the bundle's signature does not verify");
        }
        Map<String, Object> bundle;
        try {
            Object parsed = Json.parse(new String(message, StandardCharsets.UTF_8));
            if (!(parsed instanceof Map) || !(((Map<String, Object>) parsed).get("licenses") instanceof List)) {
                throw new IllegalArgumentException("not a bundle");
            }
            bundle = (Map<String, Object>) parsed;
            bundle.put("exp_secs", Protocol.parseTime(bundle.get("exp")));
        } catch (IllegalArgumentException e) {
            throw refused("bundle: missing or bad fields");
        }
        if (now != null && now > (Long) bundle.get("exp_secs")) {
            throw new ProtocolException("document_expired", "the relay's bundle has ended");
        }
        if (parent != null) checkChild(bundle, parent);
        return bundle;
    }

    private static Long end(Map<String, Object> license) throws ProtocolException {
        Object v = license.get("expires_at");
        return v == null ? null : Protocol.parseTime(v);
    }

    private static boolean withinEnd(Long end, Long bound) {
        return bound == null || (end != null && end <= bound);
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> license(Map<String, Object> bundle, Object tfp) {
        for (Object l : (List<Object>) bundle.get("licenses")) {
            if (l instanceof Map && tfp != null && tfp.equals(((Map<String, Object>) l).get("tfp"))) {
                return (Map<String, Object>) l;
            }
        }
        return null;
    }

    @SuppressWarnings("unchecked")
    private static List<Object> features(Map<String, Object> m) {
        return m.get("features") instanceof List ? (List<Object>) m.get("features") : List.of();
    }

    private static boolean truthy(Object v) {
        return Boolean.TRUE.equals(v);
    }

    /** A relay's bundle for a relay below grants no more than its own. */
    @SuppressWarnings("unchecked")
    private static void checkChild(Map<String, Object> child, Map<String, Object> parent) throws ProtocolException {
        if ((Long) child.get("exp_secs") > (Long) parent.get("exp_secs")) {
            throw refused("a bundle outlives its parent");
        }
        for (Object o : (List<Object>) child.get("licenses")) {
            if (!(o instanceof Map)) throw refused("bundle: missing or bad fields");
            Map<String, Object> l = (Map<String, Object>) o;
            Map<String, Object> p = license(parent, l.get("tfp"));
            if (p == null) throw refused("a bundle names a license its parent does not");
            Object cm = l.get("max_machines");
            Object pm = p.get("max_machines");
            boolean same = java.util.Objects.equals(l.get("license"), p.get("license"))
                    && java.util.Objects.equals(l.get("rev"), p.get("rev"))
                    && java.util.Objects.equals(l.get("status"), p.get("status"))
                    && (!truthy(l.get("valid")) || truthy(p.get("valid")))
                    && java.util.Objects.equals(l.get("machine_mode"), p.get("machine_mode"))
                    && features(p).containsAll(features(l))
                    && withinEnd(end(l), end(p))
                    && (pm == null || (cm instanceof Long c && pm instanceof Long q && c <= q));
            if (!same) throw refused("a bundle grants more for " + l.get("license") + " than its parent");
        }
    }

    @SuppressWarnings("unchecked")
    private static void checkBounds(Claims c, Map<String, Object> bundle) throws ProtocolException {
        Map<String, Object> raw = c.raw;
        if (c.exp > (Long) bundle.get("exp_secs")) throw refused("it outlives its bundle");
        // "No such license" grants nothing: a relay may say it of any token.
        if ("not_found".equals(c.status) && raw.get("lic") == null && !c.valid && c.features.isEmpty()) return;
        Map<String, Object> license = license(bundle, raw.get("tfp"));
        if (license == null) throw refused("the bundle does not name this license");
        if (!java.util.Objects.equals(raw.get("lic"), license.get("license"))
                || !(license.get("rev") instanceof Long rev) || rev != c.rev) {
            throw refused("it names another license or revision than the bundle");
        }
        if (c.valid && !truthy(license.get("valid"))) {
            throw refused("it grants a license the bundle says is " + license.get("status"));
        }
        List<Object> granted = features(license);
        for (String f : c.features) {
            if (!granted.contains(f)) throw refused("it grants \"" + f + "\", which the bundle does not");
        }
        if (!withinEnd(c.expiresAt, end(license))) throw refused("it extends the license past the bundle's end");
        if (license.get("max_machines") instanceof Long most) {
            if (!(raw.get("machine") instanceof Map)) {
                throw refused("it answers with no machine for a license that counts them");
            }
            Map<String, Object> m = (Map<String, Object>) raw.get("machine");
            Object max = m.get("max");
            Object used = m.get("used");
            if (!(max instanceof Long mx) || mx > most || (used instanceof Long u && u > most)) {
                throw refused("it counts more than the bundle's " + most + " machines");
            }
        }
    }
}
