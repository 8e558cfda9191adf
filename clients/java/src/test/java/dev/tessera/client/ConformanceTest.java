package dev.tessera.client;

import dev.tessera.client.Protocol.LicenseToken;
import dev.tessera.client.Protocol.ProtocolException;
import dev.tessera.client.Protocol.TrustedKeys;
import dev.tessera.client.Verdicts.Holder;
import dev.tessera.client.Verdicts.Verdict;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * The Java client replays the language-neutral conformance suite
 * (tests/conformance/cases.json). A plain main: the build uses javac only.
 * Usage: {@code java -cp … dev.tessera.client.ConformanceTest <cases.json>}.
 */
public final class ConformanceTest {
    @SuppressWarnings("unchecked")
    public static void main(String[] args) throws Exception {
        Map<String, Object> suite = (Map<String, Object>) Json.parse(
                Files.readString(Path.of(args[0]), StandardCharsets.UTF_8));
        check(suite.get("format").equals("tessera-conformance/1"), "format");
        List<Object> cases = (List<Object>) suite.get("cases");
        check(cases.size() >= 25, "at least 25 cases");
        int failed = 0;
        for (Object o : cases) {
            Map<String, Object> c = (Map<String, Object>) o;
            String name = (String) c.get("name");
            try {
                run(suite, c);
                System.out.println("ok   " + name);
            } catch (AssertionError | Exception e) {
                failed++;
                System.out.println("FAIL " + name + ": " + e.getMessage());
            }
        }
        // A mistyped token is refused offline.
        String token = (String) suite.get("token");
        String typo = token.substring(0, token.length() - 1) + (token.endsWith("A") ? "B" : "A");
        try {
            new LicenseToken(typo);
            failed++;
            System.out.println("FAIL a mistyped token was taken");
        } catch (ProtocolException e) {
            check(e.code.equals("invalid_token"), "invalid_token");
            System.out.println("ok   a mistyped token is refused offline");
        }
        // Another system's key is kept as it is (§30); what is not a key is refused.
        try {
            String keygen = "C1B6DE-39A6E3-DE1529-8559A0-4AF593-V3";
            check(new LicenseToken(" " + keygen + "\n").secret().equals(keygen), "a foreign key kept as it is");
            for (String bad : new String[] {"short", "tsa_0123456789", "has space in it"}) {
                try {
                    new LicenseToken(bad);
                    failed++;
                    System.out.println("FAIL " + bad + " was taken as a key");
                } catch (ProtocolException e) {
                    check(e.code.equals("invalid_token"), "invalid_token for " + bad);
                }
            }
            System.out.println("ok   another system's key is kept as it is");
        } catch (ProtocolException e) {
            failed++;
            System.out.println("FAIL a foreign key was refused: " + e.getMessage());
        }
        System.out.println(cases.size() + 1 - failed + " passed, " + failed + " failed");
        if (failed > 0) System.exit(1);
    }

    private static void check(boolean ok, String what) {
        if (!ok) throw new AssertionError(what);
    }

    @SuppressWarnings("unchecked")
    private static void run(Map<String, Object> suite, Map<String, Object> c) throws Exception {
        TrustedKeys keys = new TrustedKeys();
        for (Object k : (List<Object>) suite.get("keys")) keys.pin((String) k);
        Holder holder = new Holder(keys, new LicenseToken((String) suite.get("token")),
                ((Number) suite.get("tolerance_secs")).longValue(),
                ((Number) suite.get("max_clock_drift_secs")).longValue());
        Map<String, Object> held = (Map<String, Object>) c.get("held");
        Object mark = held.get("high_water_mark");
        holder.load((String) held.get("document"), mark == null ? null : Protocol.parseTime(mark));
        Map<String, Object> offer = (Map<String, Object>) c.get("offer");
        List<Object> timeline = (List<Object>) c.get("timeline");
        long start = Protocol.parseTime(offer != null ? offer.get("at") : ((Map<String, Object>) timeline.get(0)).get("now"));
        holder.verdict(start); // a client publishes its verdict when it starts
        if (offer != null) {
            String outcome;
            try {
                outcome = holder.offer(Base64.getDecoder().decode((String) offer.get("document_b64")), start);
            } catch (ProtocolException e) {
                outcome = "refused:" + e.code;
            }
            check(outcome.equals(c.get("expect_offer")), "offer: expected " + c.get("expect_offer") + ", got " + outcome);
        }
        for (Object s : timeline) {
            Map<String, Object> step = (Map<String, Object>) s;
            Verdict v = holder.verdict(Protocol.parseTime(step.get("now")));
            boolean same = v.state.equals(step.get("state")) && Objects.equals(v.reason, step.get("reason"))
                    && Objects.equals(v.revision, step.get("revision"));
            check(same, "at " + step.get("now") + ": expected " + step + ", got " + v.state + "/" + v.reason + "/" + v.revision);
        }
    }
}
