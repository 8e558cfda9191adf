package dev.tessera.client;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.MessageDigest;
import java.security.PublicKey;
import java.security.Signature;
import java.security.spec.X509EncodedKeySpec;
import java.time.OffsetDateTime;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32;

/**
 * The wire contract (docs/PROTOCOL.md §1–5): tokens, keys, status documents
 * and the rollback rule. Pure: no I/O, no clock (every "now" is an
 * argument, in Unix seconds). Error codes are the Rust protocol crate's.
 * JDK only: {@code java.security} Ed25519.
 */
public final class Protocol {
    private Protocol() {}

    static final String ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    static final String HEADER = "v4.public.";
    public static final int MAX_DOCUMENT_BYTES = 16 * 1024;
    public static final long DEFAULT_MAX_CLOCK_DRIFT = 300;
    static final long MAX_REVISION = 1L << 53;
    static final long MAX_SUPPORTED = 253402300799L;
    static final long MAX_DOCUMENT_LIFETIME = 400L * 86400;
    private static final byte[] ED25519_SPKI = HexFormat.of().parseHex("302a300506032b6570032100");

    /** A refusal, with the protocol's stable code. */
    public static final class ProtocolException extends Exception {
        private static final long serialVersionUID = 1L;
        public final String code;

        public ProtocolException(String code, String message) {
            super(message + " (" + code + ")");
            this.code = code;
        }
    }

    static byte[] b64urlDecode(String text) throws ProtocolException {
        if (!text.matches("[A-Za-z0-9_-]*")) throw new ProtocolException("malformed", "bad base64");
        try {
            return Base64.getUrlDecoder().decode(text);
        } catch (IllegalArgumentException e) {
            throw new ProtocolException("malformed", "bad base64");
        }
    }

    static String b64urlEncode(byte[] bytes) {
        return Base64.getUrlEncoder().withoutPadding().encodeToString(bytes);
    }

    static String sha256Hex(byte[] bytes) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException(e);
        }
    }

    /** RFC 3339 to Unix seconds. */
    public static long parseTime(Object text) throws ProtocolException {
        if (!(text instanceof String)) throw new ProtocolException("malformed", "a time is an RFC 3339 string");
        try {
            return OffsetDateTime.parse((String) text).toEpochSecond();
        } catch (DateTimeParseException e) {
            throw new ProtocolException("malformed", "bad time " + text);
        }
    }

    /**
     * A license key another system issued, imported as it is (§30): not {@code tsr_…} nor
     * {@code tsa_…}, 8–512 printable ASCII characters without spaces. It has no checksum; a
     * mistyped one is simply not found.
     */
    public static boolean isForeignKey(String t) {
        if (t.startsWith("tsr_") || t.startsWith("tsa_") || t.length() < 8 || t.length() > 512) return false;
        for (int i = 0; i < t.length(); i++) {
            char c = t.charAt(i);
            if (c < 0x21 || c > 0x7e) return false;
        }
        return true;
    }

    /** A license token {@code tsr_…} (a mistyped one fails its checksum offline), or another system's key imported as it is. */
    public static final class LicenseToken {
        private final String text;

        public LicenseToken(String text) throws ProtocolException {
            String t = text.trim();
            if (isForeignKey(t)) {
                this.text = t;
                return;
            }
            if (!t.startsWith("tsr_") || t.length() != 4 + 36) {
                throw new ProtocolException("invalid_token", "not a license token (tsr_ and 36 characters)");
            }
            String body = t.substring(4);
            for (char c : body.toCharArray()) {
                if (ALPHABET.indexOf(c) < 0) throw new ProtocolException("invalid_token", "a license token is base62");
            }
            if (!checksum(body.substring(0, 30)).equals(body.substring(30))) {
                throw new ProtocolException("invalid_token", "the token's checksum does not match: mistyped?");
            }
            this.text = t;
        }

        private static String checksum(String random) {
            CRC32 crc = new CRC32();
            crc.update(random.getBytes(StandardCharsets.US_ASCII));
            long v = crc.getValue();
            char[] out = new char[6];
            for (int k = 5; k >= 0; k--) {
                out[k] = ALPHABET.charAt((int) (v % 62));
                v /= 62;
            }
            return new String(out);
        }

        public String secret() {
            return text;
        }

        /** The {@code tfp} claim: the first 16 hex characters of SHA-256(token). */
        public String fingerprint() {
            return sha256Hex(text.getBytes(StandardCharsets.US_ASCII)).substring(0, 16);
        }

        @Override
        public String toString() {
            return "LicenseToken(…" + text.substring(text.length() - 4) + ")";
        }
    }

    /** Pinned keys by kid; a retired one ({@code k4.public…@<time>}) with its retirement. */
    public static final class TrustedKeys {
        final Map<String, PublicKey> keys = new HashMap<>();
        final Map<String, Long> retired = new HashMap<>();

        public TrustedKeys pin(String text) throws ProtocolException {
            String[] parts = text.trim().split("@", 2);
            if (!parts[0].startsWith("k4.public.")) {
                throw new ProtocolException("invalid_key", "a public key is a PASERK string starting with \"k4.public.\"");
            }
            byte[] raw = b64urlDecode(parts[0].substring("k4.public.".length()));
            if (raw.length != 32) throw new ProtocolException("invalid_key", "the public key's PASERK encoding is invalid");
            String kid = sha256Hex(raw).substring(0, 16);
            byte[] spki = new byte[ED25519_SPKI.length + 32];
            System.arraycopy(ED25519_SPKI, 0, spki, 0, ED25519_SPKI.length);
            System.arraycopy(raw, 0, spki, ED25519_SPKI.length, 32);
            try {
                keys.put(kid, KeyFactory.getInstance("Ed25519").generatePublic(new X509EncodedKeySpec(spki)));
            } catch (GeneralSecurityException e) {
                throw new ProtocolException("invalid_key", "the public key's PASERK encoding is invalid");
            }
            if (parts.length == 2) retired.put(kid, parseTime(parts[1]));
            return this;
        }
    }

    /** The claims of a verified document (what the core reads). */
    public static final class Claims {
        public final Map<String, Object> raw;
        public final String status;
        public final boolean valid;
        public final long rev;
        public final long iat;
        public final long exp;
        public final long refreshAfter;
        public final Long expiresAt;
        public final List<String> features;
        public final Map<String, Object> entitlements;
        public final String onExpiry;
        public final String enforcement;
        public final String kid;
        public final Long retiredAt;

        Claims(Map<String, Object> raw, String status, boolean valid, long rev, long iat, long exp, long refreshAfter,
                Long expiresAt,
                List<String> features, Map<String, Object> entitlements, String onExpiry, String enforcement, String kid,
                Long retiredAt) {
            this.raw = raw;
            this.status = status;
            this.valid = valid;
            this.rev = rev;
            this.iat = iat;
            this.exp = exp;
            this.refreshAfter = refreshAfter;
            this.expiresAt = expiresAt;
            this.features = features;
            this.entitlements = entitlements;
            this.onExpiry = onExpiry;
            this.enforcement = enforcement;
            this.kid = kid;
            this.retiredAt = retiredAt;
        }
    }

    static byte[] pae(byte[]... pieces) {
        int size = 8;
        for (byte[] p : pieces) size += 8 + p.length;
        ByteBuffer b = ByteBuffer.allocate(size).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(pieces.length);
        for (byte[] p : pieces) {
            b.putLong(p.length);
            b.put(p);
        }
        return b.array();
    }

    private static Long timeField(Map<String, Object> raw, String name, boolean required) throws ProtocolException {
        Object v = raw.get(name);
        if (v == null) {
            if (required) throw new ProtocolException("malformed", "claims: missing " + name);
            return null;
        }
        long t = parseTime(v);
        if (t < 0 || t > MAX_SUPPORTED) throw new ProtocolException("out_of_range", name + " outside 1970-01-01 … 9999-12-31");
        return t;
    }

    /** Verify a status document in the order of docs/PROTOCOL.md §4. */
    public static Claims verify(byte[] data, TrustedKeys keys, String tokenFingerprint, long now, String nonce,
            boolean enforceFreshness, long maxClockDrift) throws ProtocolException {
        return verify(data, keys, tokenFingerprint, now, nonce, enforceFreshness, maxClockDrift, null);
    }

    /**
     * A license of another product than {@code product} (§28) is refused
     * ({@code wrong_product}); a document naming none is the {@code default}
     * product's, and a {@code not_found} names no license. {@code product}
     * null: any product.
     */
    public static Claims checkProduct(Claims claims, String product) throws ProtocolException {
        if (product != null && claims.raw.get("lic") != null) {
            Object found = claims.raw.getOrDefault("product", "default");
            String name = String.valueOf(found == null ? "default" : found);
            if (!name.equals(product)) {
                throw new ProtocolException("wrong_product", "the license is for product \""
                        + name.substring(0, Math.min(64, name.length())) + "\", this product is \"" + product + "\"");
            }
        }
        return claims;
    }

    /** {@code mfp}: the first 32 hex characters of SHA-256 of a machine fingerprint (§19). */
    public static String fingerprintHash(String fingerprint) {
        return sha256Hex(fingerprint.getBytes(StandardCharsets.UTF_8)).substring(0, 32);
    }

    /**
     * The configured fingerprint, or one derived from the host's machine id
     * (else the persisted instance id) and the token, as the Rust SDK derives
     * it: it differs per license and is no cross-vendor tracking id.
     */
    public static String machineFingerprint(String explicit, String hostId, String instance, LicenseToken token) {
        if (explicit != null && !explicit.isEmpty()) return explicit;
        String base = hostId != null && !hostId.isEmpty() ? hostId : instance;
        return fingerprintHash("tessera-machine/1|" + base + "|" + token.fingerprint());
    }

    /**
     * Verify a status document in the order of docs/PROTOCOL.md §4;
     * {@code machine}: this machine's {@code mfp}, which a document bound to
     * a machine must name.
     */
    public static Claims verify(byte[] data, TrustedKeys keys, String tokenFingerprint, long now, String nonce,
            boolean enforceFreshness, long maxClockDrift, String machine) throws ProtocolException {
        // From the authority (§4), or from a site relay it certified (§26).
        Map<String, Object> footer = Relayed.peekFooter(data);
        if (footer != null && footer.get("bundle") != null) {
            return Relayed.verify(data, footer, keys, tokenFingerprint, now, nonce, enforceFreshness, maxClockDrift,
                    machine);
        }
        return verifyDirect(data, keys, tokenFingerprint, now, nonce, enforceFreshness, maxClockDrift, machine);
    }

    /** §4, in its order, under {@code keys}. */
    @SuppressWarnings("unchecked")
    static Claims verifyDirect(byte[] data, TrustedKeys keys, String tokenFingerprint, long now, String nonce,
            boolean enforceFreshness, long maxClockDrift, String machine) throws ProtocolException {
        if (data.length > MAX_DOCUMENT_BYTES) {
            throw new ProtocolException("document_too_large", data.length + " bytes, over " + MAX_DOCUMENT_BYTES);
        }
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(data)).toString();
        } catch (CharacterCodingException e) {
            throw new ProtocolException("malformed", "not UTF-8");
        }
        if (!text.startsWith(HEADER)) throw new ProtocolException("malformed", "not a v4.public token");
        String[] parts = text.substring(HEADER.length()).split("\\.", -1);
        if (parts.length < 1 || parts.length > 2) throw new ProtocolException("malformed", "bad PASETO encoding");
        byte[] body = b64urlDecode(parts[0]);
        byte[] footer = parts.length == 2 ? b64urlDecode(parts[1]) : new byte[0];
        if (body.length < 64) throw new ProtocolException("malformed", "bad PASETO encoding");
        String canonical = HEADER + b64urlEncode(body) + (footer.length > 0 ? "." + b64urlEncode(footer) : "");
        if (!canonical.equals(text)) throw new ProtocolException("malformed", "non-canonical encoding");
        if (footer.length == 0) throw new ProtocolException("missing_key_id", "no footer: no key named");
        String kid;
        try {
            Object f = Json.parse(new String(footer, StandardCharsets.UTF_8));
            Object k = f instanceof Map ? ((Map<String, Object>) f).get("kid") : null;
            if (!(k instanceof String)) throw new ProtocolException("missing_key_id", "the footer names no key");
            kid = (String) k;
        } catch (IllegalArgumentException e) {
            throw new ProtocolException("missing_key_id", "the footer names no key");
        }
        PublicKey key = keys.keys.get(kid);
        if (key == null) throw new ProtocolException("unknown_key_id", "key " + kid + " is not pinned");
        byte[] message = java.util.Arrays.copyOfRange(body, 0, body.length - 64);
        byte[] signature = java.util.Arrays.copyOfRange(body, body.length - 64, body.length);
        try {
            Signature v = Signature.getInstance("Ed25519");
            v.initVerify(key);
            v.update(pae(HEADER.getBytes(StandardCharsets.US_ASCII), message, footer, new byte[0]));
            if (!v.verify(signature)) throw new ProtocolException("bad_signature", "the signature does not verify");
        } catch (GeneralSecurityException e) {
            throw new ProtocolException("bad_signature", "the signature does not verify");
        }
        Map<String, Object> raw;
        try {
            Object parsed = Json.parse(new String(message, StandardCharsets.UTF_8));
            if (!(parsed instanceof Map)) throw new IllegalArgumentException("not an object");
            raw = (Map<String, Object>) parsed;
        } catch (IllegalArgumentException e) {
            throw new ProtocolException("malformed", "claims: not a JSON object");
        }
        if (!(raw.get("rev") instanceof Long) || !(raw.get("status") instanceof String)
                || !(raw.get("valid") instanceof Boolean) || !(raw.get("tfp") instanceof String)) {
            throw new ProtocolException("malformed", "claims: missing or bad fields");
        }
        long rev = (Long) raw.get("rev");
        if (rev < 0 || rev > MAX_REVISION) throw new ProtocolException("out_of_range", "rev is above 2^53");
        long iat = timeField(raw, "iat", true);
        long exp = timeField(raw, "exp", true);
        long refreshAfter = timeField(raw, "refresh_after", true);
        Long expiresAt = timeField(raw, "expires_at", false);
        timeField(raw, "valid_from", false);
        if (exp < iat) throw new ProtocolException("malformed", "exp is before iat");
        Long retiredAt = keys.retired.get(kid);
        if (retiredAt != null && (iat > retiredAt || exp > retiredAt + MAX_DOCUMENT_LIFETIME)) {
            throw new ProtocolException("key_retired", "key " + kid + " was retired before this document");
        }
        if (!raw.get("tfp").equals(tokenFingerprint)) {
            throw new ProtocolException("token_mismatch", "the document answers for another token");
        }
        if (nonce != null && !nonce.equals(raw.get("nonce"))) {
            throw new ProtocolException("nonce_mismatch", "the document does not answer this request");
        }
        // A document bound to a machine (`mfp`) is that machine's alone (§19).
        if (machine != null && raw.get("mfp") != null && !machine.equals(raw.get("mfp"))) {
            throw new ProtocolException("fingerprint_mismatch", "the document answers for another machine");
        }
        if (enforceFreshness) {
            if (now > exp) throw new ProtocolException("document_expired", "the document's exp has passed");
            if (iat > now + maxClockDrift) {
                throw new ProtocolException("issued_in_future", "the document is signed ahead of the local clock");
            }
        }
        List<String> features = new ArrayList<>();
        if (raw.get("features") instanceof List) {
            for (Object f : (List<Object>) raw.get("features")) features.add(String.valueOf(f));
        }
        Map<String, Object> entitlements = raw.get("entitlements") instanceof Map
                ? (Map<String, Object>) raw.get("entitlements") : Map.of();
        String onExpiry = raw.get("on_expiry") instanceof String ? (String) raw.get("on_expiry") : "lose_access";
        String enforcement = raw.get("enforcement") instanceof String ? (String) raw.get("enforcement") : "enforce";
        return new Claims(raw, (String) raw.get("status"), (Boolean) raw.get("valid"), rev, iat, exp, refreshAfter,
                expiresAt,
                List.copyOf(features), entitlements, onExpiry, enforcement, kid, retiredAt);
    }

    /** The rollback rule (§5): "accept", "same" or "reject". */
    public static String checkRollback(Claims held, Claims next) {
        if (held == null) return "accept";
        if (held.retiredAt != null && next.iat > held.retiredAt && !next.kid.equals(held.kid)) return "accept";
        if (next.retiredAt != null && held.iat > next.retiredAt) return "reject";
        if (next.rev != held.rev) return next.rev > held.rev ? "accept" : "reject";
        if (next.iat != held.iat) return next.iat > held.iat ? "accept" : "reject";
        return "same";
    }
}
