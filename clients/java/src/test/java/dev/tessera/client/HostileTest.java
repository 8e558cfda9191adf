package dev.tessera.client;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import dev.tessera.client.Client.ClientException;
import dev.tessera.client.Protocol.LicenseToken;
import dev.tessera.client.Protocol.ProtocolException;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.Signature;
import java.time.Instant;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;

/**
 * The hostile-server cases (docs/PROTOCOL.md §11, §13) against a fake
 * authority in this process: an answer over 64 KiB, a Retry-After in the
 * billions, an unsigned 304, a 400 MiB error page, a stream of garbage —
 * each refused with a clear error and the held state (verdict and state
 * file) unchanged — and the offline file of {@code tessera license export}.
 * The fake signs real documents with a test key for the controls.
 */
public final class HostileTest {
    static final String TOKEN = "tsr_Vut8janx99JGSaeqiffOjZFoB0Wt5J0SXF0h";
    static final KeyPair KEY;
    static final String PUBLIC_KEY;
    static final String KID;

    static {
        try {
            KEY = KeyPairGenerator.getInstance("Ed25519").generateKeyPair();
            byte[] encoded = KEY.getPublic().getEncoded();
            byte[] raw = Arrays.copyOfRange(encoded, encoded.length - 32, encoded.length);
            PUBLIC_KEY = "k4.public." + Protocol.b64urlEncode(raw);
            KID = Protocol.sha256Hex(raw).substring(0, 16);
        } catch (Exception e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    static String iso(long secs) {
        return Instant.ofEpochSecond(secs).toString();
    }

    static byte[] pae(byte[]... pieces) {
        ByteBuffer b = ByteBuffer.allocate(8 + Arrays.stream(pieces).mapToInt(p -> 8 + p.length).sum()).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(pieces.length);
        for (byte[] p : pieces) b.putLong(p.length).put(p);
        return b.array();
    }

    /** A v4.public document signed with the test key (tests only: clients never sign). */
    static String document(long rev, String nonce, String extra) throws Exception {
        long now = Instant.now().getEpochSecond();
        String tfp = new LicenseToken(TOKEN).fingerprint();
        String claims = "{\"lic\":\"lic_hostile\",\"tfp\":\"" + tfp + "\",\"status\":\"active\",\"valid\":true,\"plan\":\"p\","
                + "\"features\":[\"sso\"],\"rev\":" + rev + ",\"iat\":\"" + iso(now) + "\",\"refresh_after\":\"" + iso(now + 3600)
                + "\",\"exp\":\"" + iso(now + 7 * 86400) + "\""
                + (extra != null && extra.contains("\"expires_at\"") ? "" : ",\"expires_at\":\"" + iso(now + 30 * 86400) + "\"")
                + (nonce == null ? "" : ",\"nonce\":\"" + nonce + "\"") + (extra == null ? "" : "," + extra) + "}";
        byte[] message = claims.getBytes(StandardCharsets.UTF_8);
        byte[] footer = ("{\"kid\":\"" + KID + "\"}").getBytes(StandardCharsets.UTF_8);
        Signature sig = Signature.getInstance("Ed25519");
        sig.initSign(KEY.getPrivate());
        sig.update(pae("v4.public.".getBytes(StandardCharsets.UTF_8), message, footer, new byte[0]));
        byte[] body = Arrays.copyOf(message, message.length + 64);
        System.arraycopy(sig.sign(), 0, body, message.length, 64);
        return "v4.public." + Protocol.b64urlEncode(body) + "." + Protocol.b64urlEncode(footer);
    }

    /** A fake authority; {@code mode} says how it answers. */
    static final class Fake implements AutoCloseable {
        volatile String mode = "ok";
        volatile long rev = 1;
        final AtomicLong sent = new AtomicLong();
        final AtomicLong acks = new AtomicLong();
        volatile boolean streamClosed;
        final HttpServer server;
        final String url;

        Fake() throws IOException {
            server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
            server.setExecutor(Executors.newCachedThreadPool(r -> {
                Thread t = new Thread(r);
                t.setDaemon(true);
                return t;
            }));
            server.createContext("/", this::handle);
            server.start();
            url = "http://127.0.0.1:" + server.getAddress().getPort();
        }

        void json(HttpExchange ex, int status, String body) throws IOException {
            byte[] b = body.getBytes(StandardCharsets.UTF_8);
            ex.getResponseHeaders().set("Content-Type", "application/json");
            ex.sendResponseHeaders(status, b.length);
            ex.getResponseBody().write(b);
            ex.close();
        }

        void handle(HttpExchange ex) throws IOException {
            try {
                if (ex.getRequestMethod().equals("GET") && ex.getRequestURI().getPath().equals("/v1/watch")) {
                    stream(ex);
                    return;
                }
                String req = new String(ex.getRequestBody().readAllBytes(), StandardCharsets.UTF_8);
                if (ex.getRequestURI().getPath().equals("/v1/instances/ack")) acks.incrementAndGet();
                if (!ex.getRequestURI().getPath().equals("/v1/validate")) {
                    ex.sendResponseHeaders(204, -1);
                    ex.close();
                    return;
                }
                @SuppressWarnings("unchecked")
                Object nonce = ((Map<String, Object>) Json.parse(req)).get("nonce");
                switch (mode) {
                    case "ok", "keepalive" -> {
                        ex.getResponseHeaders().set("ETag", "\"" + rev + "-1\"");
                        json(ex, 200, "{\"document\":\"" + document(rev, (String) nonce, null) + "\"}");
                    }
                    case "big" -> json(ex, 200, "{\"document\":\"v4.public." + "A".repeat(70_000) + "\"}");
                    case "retry" -> {
                        ex.getResponseHeaders().set("Retry-After", "99999999999");
                        json(ex, 503, "{\"error\":{\"code\":\"busy\",\"message\":\"busy\"}}");
                    }
                    case "304" -> {
                        ex.sendResponseHeaders(304, -1);
                        ex.close();
                    }
                    case "down" -> json(ex, 500, "{\"error\":{\"code\":\"internal\",\"message\":\"down\"}}");
                    case "huge_error" -> {
                        ex.sendResponseHeaders(500, 400L << 20);
                        byte[] chunk = "<p>".repeat(21845).getBytes(StandardCharsets.UTF_8);
                        try (OutputStream out = ex.getResponseBody()) {
                            while (sent.get() < 400L << 20) {
                                out.write(chunk);
                                sent.addAndGet(chunk.length);
                            }
                        }
                    }
                    default -> throw new IllegalStateException(mode);
                }
            } catch (Exception e) {
                ex.close();
            }
        }

        void stream(HttpExchange ex) throws Exception {
            ex.getResponseHeaders().set("Content-Type", "text/event-stream");
            ex.sendResponseHeaders(200, 0);
            OutputStream out = ex.getResponseBody();
            try {
                switch (mode) {
                    case "garbage" -> {
                        // 64 MiB with no line end: the client must hang up long before.
                        byte[] chunk = new byte[65536];
                        new java.util.Random().nextBytes(chunk);
                        for (int i = 0; i < chunk.length; i++) if (chunk[i] == '\n' || chunk[i] == '\r') chunk[i] = 'x';
                        while (sent.get() < 64L << 20) {
                            out.write(chunk);
                            out.flush();
                            sent.addAndGet(chunk.length);
                        }
                    }
                    case "junk_events" -> {
                        out.write("event: status\ndata: v4.public.bm90IGEgZG9jdW1lbnQ\n\n".getBytes(StandardCharsets.UTF_8));
                        out.write(new byte[] {(byte) 0xff, (byte) 0xfe, 0, '\n', '\n'});
                        out.write("id: x\nretry: -1\n\n".getBytes(StandardCharsets.UTF_8));
                        out.flush();
                        Thread.sleep(1000);
                    }
                    case "keepalive" -> {
                        for (int i = 0; i < 50; i++) {
                            out.write(":\n\n".getBytes(StandardCharsets.UTF_8));
                            out.flush();
                            Thread.sleep(100);
                        }
                    }
                    case "newer" -> {
                        out.write(("event: status\nid: " + rev + "\ndata: " + document(rev, null, null) + "\n\n").getBytes(StandardCharsets.UTF_8));
                        out.flush();
                        Thread.sleep(5000);
                    }
                    default -> Thread.sleep(1000);
                }
                out.close();
            } catch (IOException e) {
                streamClosed = true;
                ex.close();
            }
        }

        @Override
        public void close() {
            server.stop(0);
        }
    }

    static void check(boolean ok, String what) {
        if (!ok) throw new AssertionError(what);
    }

    static boolean until(BooleanSupplier pred) throws InterruptedException {
        long end = System.nanoTime() + 15_000_000_000L;
        while (!pred.getAsBoolean() && System.nanoTime() < end) Thread.sleep(50);
        return pred.getAsBoolean();
    }

    record Held(Client client, Path path, byte[] before) {
        void unchanged() throws IOException {
            check(client.verdict().state.equals("valid") && Long.valueOf(1).equals(client.verdict().revision), "verdict kept");
            check(Arrays.equals(Files.readAllBytes(path), before), "the state file changed");
        }
    }

    static Held activated(Fake f, boolean watch) throws Exception {
        Path state = Files.createTempDirectory("tessera-java-hostile-");
        Client client = Client.builder().server(f.url).publicKey(PUBLIC_KEY).stateDir(state).watch(watch).build().start();
        check(client.activate(TOKEN).state.equals("valid"), "activated");
        Path path = state.resolve("tessera-state.json");
        return new Held(client, path, Files.readAllBytes(path));
    }

    static ClientException refused(Client c) {
        try {
            c.refresh();
        } catch (ClientException e) {
            return e;
        }
        throw new AssertionError("the refresh succeeded");
    }

    interface Case {
        void run(Fake f) throws Exception;
    }

    public static void main(String[] args) throws Exception {
        Map<String, Case> cases = new java.util.LinkedHashMap<>();
        cases.put("an answer over 64 KiB is refused", f -> {
            Held h = activated(f, false);
            f.mode = "big";
            ClientException e = refused(h.client);
            check(e.kind.equals("invalid_answer") && e.getMessage().contains("64 KiB"), e.getMessage());
            h.unchanged();
            h.client.close();
        });
        cases.put("a Retry-After in the billions is capped", f -> {
            Held h = activated(f, false);
            f.mode = "retry";
            ClientException e = refused(h.client);
            check(e.kind.equals("http_status") && e.getMessage().contains("503"), e.getMessage());
            check(Long.valueOf(300_000).equals(e.retryAfterMs) && Client.backoffMs(1, e) == 300_000, "capped: " + e.retryAfterMs);
            h.unchanged();
            f.mode = "ok";
            f.rev = 2;
            check(Long.valueOf(2).equals(h.client.refresh().revision), "the client lives on");
            h.client.close();
        });
        cases.put("an unsigned 304 is not contact", f -> {
            Held h = activated(f, false);
            Long verifiedAt = h.client.status().lastVerifiedAt();
            f.mode = "down";
            refused(h.client);
            Long offlineSince = h.client.status().offlineSince();
            check(offlineSince != null, "offline");
            f.mode = "304";
            ClientException e = refused(h.client);
            check(e.kind.equals("invalid_answer") && e.getMessage().contains("304"), e.getMessage());
            check(offlineSince.equals(h.client.status().offlineSince()), "still offline");
            check(verifiedAt.equals(h.client.status().lastVerifiedAt()), "no contact");
            h.unchanged();
            h.client.close();
        });
        cases.put("error bodies of any size are cut off", f -> {
            Held h = activated(f, false);
            f.mode = "huge_error";
            long started = System.nanoTime();
            ClientException e = refused(h.client);
            check(e.kind.equals("http_status") && e.getMessage().contains("500"), e.getMessage());
            check(System.nanoTime() - started < 10_000_000_000L, "took too long");
            Thread.sleep(500);
            check(f.sent.get() < 32L << 20, f.sent.get() + " bytes of a 400 MiB error page went out");
            h.unchanged();
            h.client.close();
        });
        cases.put("a stream of garbage changes nothing", f -> {
            Held h = activated(f, true);
            f.mode = "garbage";
            check(until(() -> f.streamClosed), "the client read on past 64 KiB without a line end");
            check(f.sent.get() < 64L << 20, "all 64 MiB were read");
            f.mode = "junk_events";
            check(until(() -> "verification".equals(h.client.lastErrorKind())), "the bogus event: " + h.client.status());
            h.unchanged();
            f.mode = "newer";
            f.rev = 2;
            check(until(() -> Long.valueOf(2).equals(h.client.verdict().revision)), "the control: a real newer document");
            // Written after the verdict is published: wait for it.
            check(until(() -> {
                try {
                    return !Arrays.equals(Files.readAllBytes(h.path), h.before);
                } catch (IOException e) {
                    return false;
                }
            }), "stored");
            h.client.close();
        });
        cases.put("an offline file is taken by the rules", f -> {
            Path work = Files.createTempDirectory("tessera-java-offline-");
            Path file = work.resolve("license.json");
            Files.writeString(file, "{\"format\":\"tessera-license-export/1\",\"license\":\"lic_hostile\",\"document\":\"" + document(3, null, null) + "\"}");
            Client c = Client.builder().publicKey(PUBLIC_KEY).token(TOKEN).stateDir(work).offlineFile(file).build().start();
            check(Long.valueOf(3).equals(c.verdict().revision) && c.hasFeature("sso"), "taken");
            Path state = work.resolve("tessera-state.json");
            byte[] before = Files.readAllBytes(state);
            check(Long.valueOf(3).equals(c.importOffline(document(2, null, null).getBytes(StandardCharsets.UTF_8)).revision), "older ignored");
            String doc = document(4, null, null);
            String forged = doc.substring(0, 60) + (doc.charAt(60) == 'A' ? 'B' : 'A') + doc.substring(61);
            for (byte[] bad : List.of(forged.getBytes(StandardCharsets.UTF_8), new byte[70_000])) {
                try {
                    c.importOffline(bad);
                    check(false, "a bad file was taken");
                } catch (ProtocolException e) {
                    // refused
                }
            }
            check(Arrays.equals(Files.readAllBytes(state), before), "nothing changed");
            check(Long.valueOf(4).equals(c.importOffline(doc.getBytes(StandardCharsets.UTF_8)).revision), "renewed by file");
            c.close();
            Client again = Client.builder().publicKey(PUBLIC_KEY).stateDir(work).build().start();
            check(Long.valueOf(4).equals(again.verdict().revision), "from disk");
            again.close();
        });
        cases.put("the fingerprint is per license and bound", f -> {
            Held h = activated(f, false);
            LicenseToken token = new LicenseToken(TOKEN);
            String fp = h.client.fingerprint(token);
            check(fp.length() == 32, fp);
            check(Client.builder().publicKey(PUBLIC_KEY).fingerprint("host-7").build().fingerprint(token).equals("host-7"), "explicit");
            String doc = document(2, null, "\"mfp\":\"" + Protocol.fingerprintHash("someone-else") + "\"");
            try {
                Protocol.verify(doc.getBytes(StandardCharsets.UTF_8), new Protocol.TrustedKeys().pin(PUBLIC_KEY), token.fingerprint(),
                        Instant.now().getEpochSecond(), null, true, 300, Protocol.fingerprintHash(fp));
                check(false, "another machine's document verified");
            } catch (ProtocolException e) {
                check(e.code.equals("fingerprint_mismatch"), e.code);
            }
            h.client.close();
        });
        cases.put("the verdict changes at its deadline with no request", f -> {
            // The license ends between two polls (the next an hour away):
            // the verdict says so on time, by the clock alone.
            Path work = Files.createTempDirectory("tessera-java-deadline-");
            long ends = Instant.now().getEpochSecond() + 2;
            Path file = work.resolve("license.paseto");
            Files.writeString(file, document(1, null, "\"expires_at\":\"" + iso(ends) + "\""));
            Client c = Client.builder().server(f.url).publicKey(PUBLIC_KEY).token(TOKEN).stateDir(work).offlineFile(file)
                    .watch(false).clock(() -> System.currentTimeMillis() / 1000).build().start();
            check(c.verdict().state.equals("valid"), "valid first");
            f.mode = "down";
            check(until(() -> c.verdict().state.equals("expired")), "expired: " + c.verdict().state);
            check(System.currentTimeMillis() / 1000.0 - ends < 1.5, "late");
            c.close();
        });
        cases.put("a machine-bound offline response is refused", f -> {
            // Offline activation responses answer a request's nonce: this
            // client makes none, so it takes none — not even one bound to
            // its own machine (it could be another request's).
            Path work = Files.createTempDirectory("tessera-java-bound-");
            Client c = Client.builder().publicKey(PUBLIC_KEY).token(TOKEN).stateDir(work).fingerprint("vault-1").build().start();
            String[][] refusals = {
                {document(3, "00112233445566778899", "\"mfp\":\"" + Protocol.fingerprintHash("vault-1") + "\""), "nonce_mismatch"},
                {document(3, null, "\"mfp\":\"" + Protocol.fingerprintHash("vault-2") + "\""), "fingerprint_mismatch"},
            };
            for (String[] r : refusals) {
                try {
                    c.importOffline(r[0].getBytes(StandardCharsets.UTF_8));
                    check(false, "taken: " + r[1]);
                } catch (ProtocolException e) {
                    check(e.code.equals(r[1]), e.code + " for " + r[1]);
                }
            }
            check(c.verdict().state.equals("unverified"), "nothing taken");
            check(Long.valueOf(3).equals(c.importOffline(document(3, null, null).getBytes(StandardCharsets.UTF_8)).revision), "an export is taken");
            c.close();
        });
        cases.put("the held revision is acknowledged again on an open stream", f -> {
            // §12: besides after each document and on every (re)connect, the
            // held revision is acknowledged again every ackInterval (5 minutes
            // by default) while the stream is open: a lost ack heals itself.
            f.mode = "keepalive";
            Client c = Client.builder().server(f.url).publicKey(PUBLIC_KEY).stateDir(Files.createTempDirectory("tessera-java-ack-"))
                    .ackInterval(java.time.Duration.ofMillis(300)).build().start();
            c.activate(TOKEN);
            check(until(c::isConnected), "connected");
            long before = f.acks.get();
            Thread.sleep(2000);
            check(f.acks.get() - before >= 3, (f.acks.get() - before) + " acks in 2 s");
            c.close();
        });
        int failed = 0;
        for (Map.Entry<String, Case> c : cases.entrySet()) {
            try (Fake f = new Fake()) {
                c.getValue().run(f);
                System.out.println("ok   " + c.getKey());
            } catch (AssertionError | Exception e) {
                failed++;
                System.out.println("FAIL " + c.getKey() + ": " + e);
            }
        }
        System.out.println((cases.size() - failed) + " passed, " + failed + " failed");
        if (failed > 0) System.exit(1);
    }
}
