package dev.tessera.client;

import dev.tessera.client.Protocol.Claims;
import dev.tessera.client.Protocol.LicenseToken;
import dev.tessera.client.Protocol.ProtocolException;
import dev.tessera.client.Protocol.TrustedKeys;
import dev.tessera.client.Verdicts.Holder;
import dev.tessera.client.Verdicts.Verdict;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.SecureRandom;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Consumer;

/**
 * The client a product embeds (docs/PROTOCOL.md §7–10, §13–14), JDK only.
 * {@link #start()} never waits for the network; {@link #verdict()} and
 * {@link #hasFeature} read one volatile field; {@link #refresh()} and
 * {@link #activate} are round trips with a fresh nonce (a typo is refused
 * by its checksum first); the change stream applies each pushed document
 * and acknowledges it; the state file is written atomically with mode 0600.
 * Not built yet: usage, machines and quotas.
 */
public final class Client implements AutoCloseable {
    static final String STATE_FILE = "tessera-state.json";
    static final String STATE_FORMAT = "tessera-client-state/1";
    static final int MAX_ANSWER_BYTES = 64 * 1024;
    private static final SecureRandom RANDOM = new SecureRandom();

    /** Why a round trip failed; {@code kind} as the Rust SDK's {@code last_error}. */
    public static final class ClientException extends Exception {
        private static final long serialVersionUID = 1L;
        public final String kind;

        ClientException(String kind, String message) {
            super(message);
            this.kind = kind;
        }
    }

    private final List<String> servers;
    private final TrustedKeys keys = new TrustedKeys();
    private final LicenseToken configured;
    private final Path stateDir;
    private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
    private final List<Consumer<Verdict>> listeners = new CopyOnWriteArrayList<>();
    private final Object lock = new Object();
    private volatile Verdict verdict = new Verdict("unverified", "no_document", null, List.of(), List.of(), null);
    private volatile String lastErrorKind;
    private volatile boolean connected;
    private volatile boolean stopped;
    private Holder holder;
    private String instanceId = "java-" + HexFormat.of().formatHex(randomBytes(8));
    private Thread poller;
    private Thread watcher;

    public Client(List<String> servers, List<String> publicKeys, String token, Path stateDir) throws ProtocolException {
        if (publicKeys.isEmpty()) throw new IllegalArgumentException("pin at least one public key");
        this.servers = new ArrayList<>();
        for (String s : servers) this.servers.add(s.replaceAll("/+$", ""));
        for (String k : publicKeys) keys.pin(k);
        this.configured = token == null ? null : new LicenseToken(token);
        this.stateDir = stateDir;
    }

    private static byte[] randomBytes(int n) {
        byte[] b = new byte[n];
        RANDOM.nextBytes(b);
        return b;
    }

    private static long now() {
        return Instant.now().getEpochSecond();
    }

    // ----- reading: one volatile read, no I/O -------------------------------

    public Verdict verdict() {
        return verdict;
    }

    public boolean hasFeature(String name) {
        return verdict.hasFeature(name);
    }

    public boolean isValid() {
        return verdict.isValid();
    }

    public boolean isConnected() {
        return connected;
    }

    public String lastErrorKind() {
        return lastErrorKind;
    }

    public String instanceId() {
        return instanceId;
    }

    /** {@code fn(verdict)} after every change of the verdict. */
    public void onChange(Consumer<Verdict> fn) {
        listeners.add(fn);
    }

    // ----- life -------------------------------------------------------------

    /** Load the disk state and publish its verdict; never waits for the network. */
    public Client start() {
        synchronized (lock) {
            load();
            publish();
        }
        poller = new Thread(this::pollLoop, "tessera-refresh");
        poller.setDaemon(true);
        poller.start();
        watcher = new Thread(this::watchLoop, "tessera-watch");
        watcher.setDaemon(true);
        watcher.start();
        return this;
    }

    @Override
    public void close() {
        stopped = true;
        if (poller != null) poller.interrupt();
        if (watcher != null) watcher.interrupt();
    }

    // ----- disk state ---------------------------------------------------------

    @SuppressWarnings("unchecked")
    private void load() {
        LicenseToken token = configured;
        String document = null;
        Long mark = null;
        Path path = stateDir == null ? null : stateDir.resolve(STATE_FILE);
        if (path != null && Files.exists(path)) {
            try {
                Map<String, Object> state = (Map<String, Object>) Json.parse(Files.readString(path));
                if (!STATE_FORMAT.equals(state.get("format"))) throw new IllegalArgumentException("unknown format");
                if (state.get("instance_id") instanceof String) instanceId = (String) state.get("instance_id");
                LicenseToken stored = state.get("token") instanceof String ? new LicenseToken((String) state.get("token")) : null;
                // A token changed in the configuration wins over the stored one.
                if (token == null || (stored != null && token.fingerprint().equals(state.get("configured")))) {
                    token = stored != null ? stored : token;
                    document = (String) state.get("document");
                    mark = state.get("high_water_mark") == null ? null : Protocol.parseTime(state.get("high_water_mark"));
                }
            } catch (IOException | RuntimeException | ProtocolException e) {
                lastErrorKind = "storage";
            }
        }
        if (token == null) return;
        Holder h = new Holder(keys, token, Verdicts.DEFAULT_TOLERANCE, Protocol.DEFAULT_MAX_CLOCK_DRIFT);
        try {
            h.load(document, mark);
        } catch (ProtocolException e) {
            lastErrorKind = "verification"; // a state file edited by hand proves nothing
            try {
                h.load(null, mark);
            } catch (ProtocolException impossible) {
                throw new IllegalStateException(impossible);
            }
        }
        holder = h;
    }

    private static String quote(String s) {
        if (s == null) return "null";
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') b.append('\\').append(c);
            else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
            else b.append(c);
        }
        return b.append('"').toString();
    }

    private static String json(Map<String, Object> m) {
        StringBuilder b = new StringBuilder("{");
        for (Map.Entry<String, Object> e : m.entrySet()) {
            if (b.length() > 1) b.append(',');
            Object v = e.getValue();
            b.append(quote(e.getKey())).append(':').append(v instanceof Number ? v.toString() : quote((String) v));
        }
        return b.append('}').toString();
    }

    private void store(Holder h) throws IOException {
        if (stateDir == null) return;
        Files.createDirectories(stateDir);
        Map<String, Object> state = new LinkedHashMap<>();
        state.put("format", STATE_FORMAT);
        state.put("instance_id", instanceId);
        state.put("token", h.token().secret());
        state.put("configured", configured == null ? null : configured.fingerprint());
        state.put("document", h.documentText());
        state.put("high_water_mark", h.mark() == null ? null : Instant.ofEpochSecond(h.mark()).toString());
        Path tmp = stateDir.resolve(STATE_FILE + ".tmp");
        Files.deleteIfExists(tmp);
        Files.createFile(tmp, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
        try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE)) {
            ch.write(java.nio.ByteBuffer.wrap(json(state).getBytes(StandardCharsets.UTF_8)));
            ch.force(true);
        }
        Files.move(tmp, stateDir.resolve(STATE_FILE), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        try (FileChannel dir = FileChannel.open(stateDir, StandardOpenOption.READ)) {
            dir.force(true);
        } catch (IOException e) {
            // Some file systems cannot sync a directory; the rename stands.
        }
    }

    // ----- publishing ---------------------------------------------------------

    private Verdict publish() {
        Verdict next;
        try {
            next = holder == null ? verdict : holder.verdict(now());
        } catch (ProtocolException e) {
            return verdict;
        }
        Verdict old = verdict;
        verdict = next;
        boolean changed = !next.state.equals(old.state) || !java.util.Objects.equals(next.revision, old.revision)
                || !java.util.Objects.equals(next.reason, old.reason) || !next.features.equals(old.features);
        if (changed) {
            for (Consumer<Verdict> fn : listeners) {
                try {
                    fn.accept(next);
                } catch (RuntimeException e) {
                    // a listener's failure is its own
                }
            }
        }
        return next;
    }

    // ----- round trips ----------------------------------------------------------

    /** Ask the authority now, with a fresh nonce. */
    public Verdict refresh() throws ClientException {
        Holder h = holder;
        if (h == null) throw new ClientException("no_token", "no license token: activate one first");
        return roundTrip(h.token());
    }

    /** Use {@code token}: its checksum first (a typo sends nothing), then a round trip. */
    public Verdict activate(String token) throws ClientException, ProtocolException {
        return roundTrip(new LicenseToken(token));
    }

    private HttpResponse<InputStream> post(String url, String body) throws ClientException {
        try {
            HttpRequest req = HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(15))
                    .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build();
            return http.send(req, HttpResponse.BodyHandlers.ofInputStream());
        } catch (IOException | IllegalArgumentException e) {
            throw new ClientException("network", "cannot reach the authority: " + e.getMessage());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new ClientException("network", "interrupted");
        }
    }

    private static byte[] readCapped(InputStream in) throws ClientException {
        try (in) {
            byte[] data = in.readNBytes(MAX_ANSWER_BYTES + 1);
            if (data.length > MAX_ANSWER_BYTES) throw new ClientException("invalid_answer", "the answer is over 64 KiB");
            return data;
        } catch (IOException e) {
            throw new ClientException("network", "the answer was cut: " + e.getMessage());
        }
    }

    @SuppressWarnings("unchecked")
    private Verdict roundTrip(LicenseToken token) throws ClientException {
        String nonce = Base64.getUrlEncoder().withoutPadding().encodeToString(randomBytes(16));
        Map<String, Object> req = new LinkedHashMap<>();
        req.put("token", token.secret());
        req.put("instance_id", instanceId);
        req.put("nonce", nonce);
        ClientException last = new ClientException("network", "no authority configured");
        for (String server : servers) {
            String document;
            try {
                HttpResponse<InputStream> res = post(server + "/v1/validate", json(req));
                byte[] data = readCapped(res.body());
                if (res.statusCode() != 200) {
                    last = new ClientException("http_status", "HTTP " + res.statusCode());
                    continue;
                }
                Object answer = Json.parse(new String(data, StandardCharsets.UTF_8));
                Object doc = answer instanceof Map ? ((Map<String, Object>) answer).get("document") : null;
                if (!(doc instanceof String)) throw new ClientException("invalid_answer", "the answer is not a validation answer");
                document = (String) doc;
            } catch (ClientException e) {
                last = e;
                continue;
            } catch (IllegalArgumentException e) {
                last = new ClientException("invalid_answer", "the answer is not JSON");
                continue;
            }
            synchronized (lock) {
                boolean same = holder != null && holder.token().secret().equals(token.secret());
                Holder h = same ? holder : new Holder(keys, token, Verdicts.DEFAULT_TOLERANCE, Protocol.DEFAULT_MAX_CLOCK_DRIFT);
                if (!same && holder != null) h.setMark(holder.mark());
                try {
                    Claims claims = Protocol.verify(document.getBytes(StandardCharsets.UTF_8), keys, token.fingerprint(),
                            now(), nonce, true, Protocol.DEFAULT_MAX_CLOCK_DRIFT);
                    if (h.accept(claims, document, now(), true).equals("rolled_back")) {
                        lastErrorKind = "rollback";
                        throw new ClientException("rollback", "the document is older than the one held");
                    }
                } catch (ProtocolException e) {
                    lastErrorKind = "verification";
                    throw new ClientException("verification", e.getMessage());
                }
                holder = h;
                try {
                    store(h);
                } catch (IOException e) {
                    lastErrorKind = "storage";
                }
                lastErrorKind = null;
                return publish();
            }
        }
        lastErrorKind = last.kind;
        throw last;
    }

    // ----- background ---------------------------------------------------------------

    private void pollLoop() {
        int failures = 0;
        while (!stopped) {
            long waitMs = 30_000;
            synchronized (lock) {
                publish();
            }
            Holder h = holder;
            if (h != null) {
                Long refreshAfter = h.refreshAfter();
                if (refreshAfter == null || refreshAfter <= now() || failures > 0) {
                    try {
                        roundTrip(h.token());
                        failures = 0;
                    } catch (ClientException e) {
                        failures++;
                        waitMs = (long) (RANDOM.nextDouble() * Math.min(300_000, 1000L << Math.min(failures, 8)));
                    }
                } else {
                    waitMs = Math.min(waitMs, (refreshAfter - now()) * 1000);
                }
            }
            try {
                Thread.sleep(Math.max(10, waitMs));
            } catch (InterruptedException e) {
                return;
            }
        }
    }

    private void ack(LicenseToken token, long revision) {
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("token", token.secret());
        body.put("instance_id", instanceId);
        body.put("revision", revision);
        for (String server : servers) {
            try {
                readCapped(post(server + "/v1/instances/ack", json(body)).body());
                return;
            } catch (ClientException e) {
                // the next server, or the next ack
            }
        }
    }

    private void applyPushed(LicenseToken token, String document) {
        long rev;
        synchronized (lock) {
            Holder h = holder;
            if (h == null || !h.token().secret().equals(token.secret())) return;
            try {
                Claims claims = Protocol.verify(document.getBytes(StandardCharsets.UTF_8), keys, token.fingerprint(),
                        now(), null, true, Protocol.DEFAULT_MAX_CLOCK_DRIFT);
                // A push on this client's own stream re-bases the mark (§6).
                if (h.accept(claims, document, now(), true).equals("rolled_back")) return;
                rev = claims.rev;
            } catch (ProtocolException e) {
                lastErrorKind = "verification";
                return;
            }
            try {
                store(h);
            } catch (IOException e) {
                lastErrorKind = "storage";
            }
            publish();
        }
        ack(token, rev);
    }

    private void watchLoop() {
        int failures = 0;
        while (!stopped) {
            Holder h = holder;
            if (h != null) {
                String server = servers.get(failures % servers.size());
                HttpRequest.Builder req = HttpRequest.newBuilder(URI.create(server + "/v1/watch"))
                        .header("Authorization", "Bearer " + h.token().secret()).header("Accept", "text/event-stream")
                        .header("Tessera-Instance", instanceId);
                if (h.revision() != null) req.header("Last-Event-ID", h.revision().toString());
                try {
                    HttpResponse<InputStream> res = http.send(req.build(), HttpResponse.BodyHandlers.ofInputStream());
                    if (res.statusCode() == 200) {
                        connected = true;
                        failures = 0;
                        if (h.revision() != null) ack(h.token(), h.revision());
                        readEvents(res.body(), h.token());
                    } else {
                        res.body().close();
                    }
                } catch (IOException e) {
                    // reconnect below
                } catch (InterruptedException e) {
                    return;
                }
                connected = false;
                failures++;
            }
            try {
                Thread.sleep(500 + (long) (RANDOM.nextDouble() * Math.min(300_000, 1000L << Math.min(failures, 8))));
            } catch (InterruptedException e) {
                return;
            }
        }
    }

    private void readEvents(InputStream body, LicenseToken token) throws IOException {
        try (BufferedReader r = new BufferedReader(new InputStreamReader(body, StandardCharsets.UTF_8))) {
            String event = "message";
            StringBuilder data = new StringBuilder();
            String line;
            while (!stopped && (line = r.readLine()) != null) {
                if (line.length() > MAX_ANSWER_BYTES || data.length() > MAX_ANSWER_BYTES) return;
                if (line.isEmpty()) {
                    if (event.equals("status") && data.length() > 0) applyPushed(token, data.toString());
                    // `machines` announcements: the next poll says what changed.
                    event = "message";
                    data.setLength(0);
                } else if (!line.startsWith(":")) {
                    int i = line.indexOf(':');
                    String field = i < 0 ? line : line.substring(0, i);
                    String value = i < 0 ? "" : line.substring(i + 1);
                    if (value.startsWith(" ")) value = value.substring(1);
                    if (field.equals("event")) event = value;
                    else if (field.equals("data")) data.append(data.length() > 0 ? "\n" : "").append(value);
                }
            }
        }
    }
}
