package dev.tessera.client;

import dev.tessera.client.Protocol.Claims;
import dev.tessera.client.Protocol.LicenseToken;
import dev.tessera.client.Protocol.ProtocolException;
import dev.tessera.client.Protocol.TrustedKeys;
import dev.tessera.client.Verdicts.Holder;
import dev.tessera.client.Verdicts.Verdict;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
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
import java.util.Objects;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import java.util.function.LongSupplier;

/**
 * The client a product embeds (docs/PROTOCOL.md §7–14, §19), JDK only.
 * <ul>
 * <li>{@link #start()} never waits for the network: the disk state is
 * loaded (and verified again) and its verdict published at once.</li>
 * <li>{@link #verdict()} and {@link #hasFeature} read one volatile field:
 * no lock, no I/O.</li>
 * <li>{@link #refresh()} and {@link #activate} are round trips with a fresh
 * nonce (a typo is refused by its checksum first); the background poll
 * sends {@code If-None-Match} while all is well, and a nonce while
 * flagged.</li>
 * <li>The change stream applies each pushed document and acknowledges it;
 * it reconnects with jitter and {@code Last-Event-ID}.</li>
 * <li>The state file is written atomically with mode 0600.</li>
 * <li>Offline files of {@code tessera license export}
 * ({@link Builder#offlineFile}, {@link #importOffline}); usage
 * ({@link #setUsers}); machines (a place taken by itself,
 * {@link #deactivate}).</li>
 * <li>Metered quotas: {@link #consume} counts against the client's estimate
 * of the period's use and refuses past the blocking point; what was consumed
 * is reported every consumption interval and on {@link #flushConsumption},
 * each report counted once.</li>
 * <li>Every body read is at most 64 KiB; {@code Retry-After} is capped at
 * 5 minutes; a {@code 304} is never proof of anything.</li>
 * </ul>
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
        /** The wait the authority asked for ({@code Retry-After}), capped at 5 minutes; or null. */
        public final Long retryAfterMs;
        /** The HTTP status of an {@code http_status} error; else 0. */
        public final int status;

        ClientException(String kind, String message) {
            this(kind, message, null, 0);
        }

        ClientException(String kind, String message, Long retryAfterMs, int status) {
            super(message);
            this.kind = kind;
            this.retryAfterMs = retryAfterMs;
            this.status = status;
        }
    }

    static final long MAX_BACKOFF_MS = 300_000;

    /** What the client knows of its contact with the authority. */
    public record LastError(String kind, String message, long at) {}

    /** The verdict and the contact: one immutable value, swapped whole. */
    public record Status(Verdict verdict, Long lastVerifiedAt, Long offlineSince, LastError lastError) {}

    /** Settings; {@link Client#builder()}. */
    public static final class Builder {
        private final List<String> servers = new ArrayList<>();
        private final List<String> publicKeys = new ArrayList<>();
        private String token;
        private Path stateDir;
        private LongSupplier clock = () -> Instant.now().getEpochSecond();
        private boolean watch = true;
        private Path offlineFile;
        private String fingerprint;
        private String product;
        private Duration usageInterval = Duration.ofMinutes(15);
        private Duration streamReadTimeout = Duration.ofMillis(37_500);
        private Duration requestTimeout = Duration.ofSeconds(15);
        private Duration consumptionInterval = Duration.ofSeconds(10);
        private Duration ackInterval = Duration.ofMinutes(5);

        /** How often the held revision is acknowledged again on an open stream (default 5 minutes). */
        public Builder ackInterval(Duration d) {
            ackInterval = d;
            return this;
        }

        /** How often consumption is reported (default 10 s). */
        public Builder consumptionInterval(Duration d) {
            consumptionInterval = d;
            return this;
        }

        public Builder server(String url) {
            servers.add(url);
            return this;
        }

        /** A pinned key, {@code k4.public…} (a retired one: {@code k4.public…@<RFC 3339 time>}). */
        public Builder publicKey(String key) {
            publicKeys.add(key);
            return this;
        }

        public Builder token(String t) {
            token = t;
            return this;
        }

        public Builder stateDir(Path dir) {
            stateDir = dir;
            return this;
        }

        /** The clock, in Unix seconds (tests). */
        public Builder clock(LongSupplier c) {
            clock = c;
            return this;
        }

        /** Keep the change stream open (default true). */
        public Builder watch(boolean w) {
            watch = w;
            return this;
        }

        /** A file of {@code tessera license export}, taken at start. */
        public Builder offlineFile(Path file) {
            offlineFile = file;
            return this;
        }

        /** This machine's fingerprint (default: derived from the host's machine id and the token). */
        public Builder fingerprint(String fp) {
            fingerprint = fp;
            return this;
        }

        /** The product this client is part of: a license of another is refused ({@code wrong_product}). */
        public Builder product(String p) {
            product = p;
            return this;
        }

        public Builder usageInterval(Duration d) {
            usageInterval = d;
            return this;
        }

        public Builder streamReadTimeout(Duration d) {
            streamReadTimeout = d;
            return this;
        }

        public Builder requestTimeout(Duration d) {
            requestTimeout = d;
            return this;
        }

        public Client build() throws ProtocolException {
            return new Client(this);
        }
    }

    private final List<String> servers;
    private final TrustedKeys keys = new TrustedKeys();
    private final LicenseToken configured;
    private final Path stateDir;
    private final LongSupplier clock;
    private final boolean watch;
    private final Path offlineFile;
    private final String configuredFingerprint;
    private final String product;
    private final Duration usageInterval;
    private final Duration streamReadTimeout;
    private final Duration requestTimeout;
    private final Duration consumptionInterval;
    private final Duration ackInterval;
    private final Meters meters = new Meters();
    private final Object reporting = new Object();
    private Map<String, Object> report;
    private long nextSeq;
    private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
    private final List<Consumer<Verdict>> listeners = new CopyOnWriteArrayList<>();
    private final Object lock = new Object();
    private final Semaphore wake = new Semaphore(0);
    private final ScheduledExecutorService background = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "tessera-background");
        t.setDaemon(true);
        return t;
    });
    private volatile Status status = new Status(
            new Verdict("unverified", "no_document", null, List.of(), List.of(), null), null, null, null);
    private volatile boolean connected;
    private volatile boolean stopped;
    private volatile boolean forced;
    private volatile boolean machineGivenUp;
    private volatile Integer users;
    private volatile InputStream stream;
    private volatile long streamReadAt;
    private Holder holder;
    private String etag;
    private String instanceId = "java-" + HexFormat.of().formatHex(randomBytes(8));
    private Thread poller;
    private Thread watcher;

    public Client(List<String> servers, List<String> publicKeys, String token, Path stateDir) throws ProtocolException {
        this(fill(new Builder(), servers, publicKeys, token, stateDir));
    }

    private static Builder fill(Builder b, List<String> servers, List<String> publicKeys, String token, Path stateDir) {
        b.servers.addAll(servers);
        b.publicKeys.addAll(publicKeys);
        return b.token(token).stateDir(stateDir);
    }

    private Client(Builder b) throws ProtocolException {
        if (b.publicKeys.isEmpty()) throw new IllegalArgumentException("pin at least one public key");
        this.servers = new ArrayList<>();
        for (String s : b.servers) this.servers.add(s.replaceAll("/+$", ""));
        for (String k : b.publicKeys) keys.pin(k);
        this.configured = b.token == null ? null : new LicenseToken(b.token);
        this.stateDir = b.stateDir;
        this.clock = b.clock;
        this.watch = b.watch;
        this.offlineFile = b.offlineFile;
        this.configuredFingerprint = b.fingerprint;
        this.product = b.product;
        this.usageInterval = b.usageInterval;
        this.streamReadTimeout = b.streamReadTimeout;
        this.requestTimeout = b.requestTimeout;
        this.consumptionInterval = b.consumptionInterval;
        this.ackInterval = b.ackInterval;
    }

    public static Builder builder() {
        return new Builder();
    }

    private static byte[] randomBytes(int n) {
        byte[] b = new byte[n];
        RANDOM.nextBytes(b);
        return b;
    }

    private long now() {
        return clock.getAsLong();
    }

    // ----- reading: one volatile read, no I/O -------------------------------

    public Verdict verdict() {
        return status.verdict();
    }

    /** The verdict, the time of the last verified contact, since when offline, the last error. */
    public Status status() {
        return status;
    }

    /** The held signed document as received, or null. */
    public String document() {
        Holder h = holder;
        return h == null ? null : h.documentText();
    }

    public boolean hasFeature(String name) {
        return status.verdict().hasFeature(name);
    }

    public boolean isValid() {
        return status.verdict().isValid();
    }

    public boolean isConnected() {
        return connected;
    }

    public String lastErrorKind() {
        LastError e = status.lastError();
        return e == null ? null : e.kind();
    }

    public String instanceId() {
        return instanceId;
    }

    /** {@code fn(verdict)} after every change of the verdict. */
    public void onChange(Consumer<Verdict> fn) {
        listeners.add(fn);
    }

    // ----- life -------------------------------------------------------------

    /**
     * Load the disk state and publish its verdict; never waits for the
     * network. An offline file that does not verify throws (held state
     * unchanged).
     */
    public Client start() throws ProtocolException, IOException {
        synchronized (lock) {
            load();
            publish();
        }
        if (offlineFile != null) {
            try (InputStream in = Files.newInputStream(offlineFile)) {
                importOffline(in.readNBytes(MAX_ANSWER_BYTES + 1));
            }
        }
        poller = new Thread(this::pollLoop, "tessera-refresh");
        poller.setDaemon(true);
        poller.start();
        if (watch && !servers.isEmpty()) {
            watcher = new Thread(this::watchLoop, "tessera-watch");
            watcher.setDaemon(true);
            watcher.start();
            background.scheduleWithFixedDelay(this::watchdog, 1, 1, TimeUnit.SECONDS);
        }
        if (!servers.isEmpty()) {
            long every = usageInterval.toMillis();
            background.scheduleWithFixedDelay(this::reportUsage, every, every, TimeUnit.MILLISECONDS);
            long c = consumptionInterval.toMillis();
            background.scheduleWithFixedDelay(() -> {
                try {
                    flushConsumption();
                } catch (ClientException e) {
                    // retried at the next interval
                }
            }, c, c, TimeUnit.MILLISECONDS);
        }
        return this;
    }

    @Override
    public void close() {
        stopped = true;
        background.shutdownNow();
        if (poller != null) poller.interrupt();
        if (watcher != null) watcher.interrupt();
        closeStream();
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
                recordError("storage", "ignoring unreadable license state: " + e.getMessage());
            }
        }
        if (token == null) return;
        Holder h = new Holder(keys, token, Verdicts.DEFAULT_TOLERANCE, Protocol.DEFAULT_MAX_CLOCK_DRIFT).product(product);
        try {
            h.load(document, mark);
        } catch (ProtocolException e) {
            // A state file edited by hand proves nothing.
            recordError("verification", "the stored document was rejected: " + e.getMessage());
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
            @SuppressWarnings("unchecked")
            String value = v instanceof Number ? v.toString()
                    : v instanceof Map ? json((Map<String, Object>) v) : quote((String) v);
            b.append(quote(e.getKey())).append(':').append(value);
        }
        return b.append('}').toString();
    }

    private final Object storeLock = new Object();

    /**
     * Write the held state as it is when written, after the verdict was
     * published (a crash in between only leaves the disk one document
     * behind, as if the push had not arrived). Each write takes the newest
     * state under the write lock, so a slower write never puts back an
     * older one. Never called with {@code lock} held.
     */
    private void persist() {
        if (stateDir == null) return;
        synchronized (storeLock) {
            Map<String, Object> state = new LinkedHashMap<>();
            synchronized (lock) {
                Holder h = holder;
                if (h == null) return;
                state.put("format", STATE_FORMAT);
                state.put("instance_id", instanceId);
                state.put("token", h.token().secret());
                state.put("configured", configured == null ? null : configured.fingerprint());
                state.put("document", h.documentText());
                state.put("high_water_mark", h.mark() == null ? null : Instant.ofEpochSecond(h.mark()).toString());
            }
            try {
                write(state);
            } catch (IOException e) {
                synchronized (lock) {
                    recordError("storage", "cannot write the license state: " + e.getMessage());
                }
            }
        }
    }

    private void write(Map<String, Object> state) throws IOException {
        Files.createDirectories(stateDir);
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
        Status old = status;
        try {
            next = holder == null ? old.verdict() : holder.verdict(now());
        } catch (ProtocolException e) {
            return old.verdict();
        }
        status = new Status(next, old.lastVerifiedAt(), old.offlineSince(), old.lastError());
        meters.sync(holder == null ? null : holder.document(), now());
        Verdict was = old.verdict();
        boolean changed = !next.state.equals(was.state) || !Objects.equals(next.revision, was.revision)
                || !Objects.equals(next.reason, was.reason) || !next.features.equals(was.features);
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

    private void recordError(String kind, String message) {
        Status old = status;
        long t = now();
        status = new Status(old.verdict(), old.lastVerifiedAt(), old.offlineSince() == null ? t : old.offlineSince(),
                new LastError(kind, message, t));
    }

    private void recordContact() {
        status = new Status(status.verdict(), now(), null, null);
    }

    // ----- offline files, usage -------------------------------------------------

    /**
     * Take a document exported for air-gapped sites ({@code tessera license
     * export}: its JSON file, or the bare document): verified with freshness
     * and the rollback rule. A refused one throws and changes nothing; an
     * older one is ignored.
     */
    @SuppressWarnings("unchecked")
    public Verdict importOffline(byte[] data) throws ProtocolException {
        if (data.length > MAX_ANSWER_BYTES) throw new ProtocolException("document_too_large", "the offline file is over 64 KiB");
        byte[] document = new String(data, StandardCharsets.ISO_8859_1).strip().getBytes(StandardCharsets.ISO_8859_1);
        try {
            Object parsed = Json.parse(new String(data, StandardCharsets.UTF_8));
            if (parsed instanceof Map && ((Map<String, Object>) parsed).get("document") instanceof String) {
                document = ((String) ((Map<String, Object>) parsed).get("document")).getBytes(StandardCharsets.UTF_8);
            }
        } catch (RuntimeException e) {
            // the bare document (or bytes the verifier refuses)
        }
        boolean taken;
        Verdict v;
        synchronized (lock) {
            if (holder == null) {
                throw new ProtocolException("no_token", "an offline file needs the license token it was exported for");
            }
            Claims claims = Protocol.checkProduct(Protocol.verify(document, keys, holder.token().fingerprint(), now(), null,
                    true, Protocol.DEFAULT_MAX_CLOCK_DRIFT, Protocol.fingerprintHash(fingerprint(holder.token()))), product);
            // A response to an offline activation request (§25) answers the
            // request's nonce; this client makes none, so it cannot tell its
            // own from another machine's request: refused.
            if (claims.raw.get("mfp") != null) {
                throw new ProtocolException("nonce_mismatch", "a response to an offline request this client did not make");
            }
            taken = holder.accept(claims, new String(document, StandardCharsets.UTF_8), now(), false).equals("accepted");
            v = publish();
        }
        if (taken) persist();
        return v;
    }

    /** How many users the product has now; reported at once when it changes, then every usage interval. */
    public void setUsers(int n) {
        if (n < 0) throw new IllegalArgumentException("users must be at least 0");
        Integer previous = users;
        users = n;
        if (!Objects.equals(previous, n) && !servers.isEmpty() && !stopped) {
            try {
                background.execute(this::reportUsage);
            } catch (java.util.concurrent.RejectedExecutionException e) {
                // closed meanwhile
            }
        }
    }

    private void reportUsage() {
        Holder h = holder;
        Integer n = users;
        if (h == null || n == null) return;
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("token", h.token().secret());
        body.put("instance_id", instanceId);
        body.put("users", n);
        for (String server : servers) {
            try {
                send(server + "/v1/usage", json(body), null);
                return;
            } catch (ClientException e) {
                // failures never touch the verdict
            }
        }
    }

    // ----- metered quotas ------------------------------------------------------------

    /**
     * Count {@code amount} of a metered feature: a local add, no I/O. Returns
     * what is left of the limit; throws (nothing counted) past the blocking
     * point, for a feature not granted now, without a quota, or for an amount
     * above 2^53.
     */
    public long consume(String feature, long amount) throws Meters.QuotaException {
        if (!hasFeature(feature)) throw new Meters.QuotaException("not_granted", feature + " is not granted now", null);
        Holder h = holder;
        meters.sync(h == null ? null : h.document(), now());
        return meters.consume(feature, amount);
    }

    /** What is left of {@code feature}'s limit this period (estimated now), or null. */
    public Long remaining(String feature) {
        return meters.remaining(feature);
    }

    /** Each metered feature: {limit, used} as estimated now. */
    public Map<String, long[]> quotas() {
        return meters.snapshot();
    }

    /** Report what was consumed and not yet reported, now (the report in flight first). */
    @SuppressWarnings("unchecked")
    public void flushConsumption() throws ClientException {
        synchronized (reporting) {
            for (;;) {
                long t = now();
                if (report != null && t - (Long) report.get("first_sent") > 30L * 86400) {
                    // Unanswered for 30 days: the authority keeps report ids
                    // 35 days, so a later retry could be counted twice.
                    meters.abandon((Map<String, Long>) report.get("amounts"));
                    report = null;
                }
                if (report == null) {
                    Map<String, Long> amounts = meters.takePending();
                    if (amounts.isEmpty()) return;
                    if (nextSeq == 0) {
                        // Never an earlier run's number: from the clock (ms ×
                        // 1024), never below the clock mark.
                        Holder h = holder;
                        long at = Math.max(t, h == null || h.mark() == null ? 0 : h.mark());
                        nextSeq = Math.max(1, Math.min(at * 1000 * 1024, Meters.MAX_QUOTA / 2));
                    }
                    report = new LinkedHashMap<>();
                    report.put("seq", nextSeq++);
                    report.put("amounts", amounts);
                    report.put("first_sent", t);
                }
                Holder h = holder;
                if (h == null) throw new ClientException("no_token", "no license token");
                Map<String, Object> body = new LinkedHashMap<>();
                body.put("token", h.token().secret());
                body.put("instance_id", instanceId);
                body.put("seq", report.get("seq"));
                body.put("amounts", new LinkedHashMap<String, Object>((Map<String, Long>) report.get("amounts")));
                Answer answer;
                try {
                    answer = sendFirst("/v1/consumption", json(body));
                } catch (ClientException e) {
                    if (e.status == 409) {
                        // Not counted: the same amounts again under a new number.
                        long seq = Math.max(nextSeq, (Long) report.get("seq")) + (1L << 20);
                        report.put("seq", seq);
                        nextSeq = seq + 1;
                        continue;
                    }
                    if (e.status == 401 || e.status == 403 || e.status == 422) {
                        // Refused for good: sending again cannot help.
                        meters.abandon((Map<String, Long>) report.get("amounts"));
                        report = null;
                    }
                    throw e;
                }
                Map<String, Object> quotas = null;
                try {
                    Object parsed = Json.parse(new String(answer.body, StandardCharsets.UTF_8));
                    if (parsed instanceof Map && ((Map<String, Object>) parsed).get("quotas") instanceof Map) {
                        quotas = (Map<String, Object>) ((Map<String, Object>) parsed).get("quotas");
                    }
                } catch (RuntimeException e) {
                    // counted all the same
                }
                meters.settle((Map<String, Long>) report.get("amounts"), quotas);
                report = null;
            }
        }
    }

    /** POST to the first authority that answers. */
    private Answer sendFirst(String path, String body) throws ClientException {
        ClientException last = new ClientException("network", "no authority configured");
        for (String server : servers) {
            try {
                return send(server + path, body, null);
            } catch (ClientException e) {
                if (e.status != 0) throw e;
                last = e;
            }
        }
        throw last;
    }

    // ----- machines -----------------------------------------------------------------

    private static String hostMachineId() {
        for (String p : List.of("/etc/machine-id", "/var/lib/dbus/machine-id")) {
            try {
                String t = Files.readString(Path.of(p)).strip();
                if (!t.isEmpty()) return t;
            } catch (IOException | RuntimeException e) {
                // the next one
            }
        }
        return null;
    }

    /** This machine's fingerprint for {@code token}. */
    public String fingerprint(LicenseToken token) {
        return Protocol.machineFingerprint(configuredFingerprint, hostMachineId(), instanceId, token);
    }

    /** Take (or hold) a place for this machine now. */
    public Verdict activateMachine() throws ClientException {
        Holder h = holder;
        if (h == null) throw new ClientException("no_token", "no license token: activate one first");
        return machineRoundTrip(h.token(), "activate");
    }

    /** Give this machine's place back; it stays without one until {@link #activateMachine()}. */
    public Verdict deactivate() throws ClientException {
        Holder h = holder;
        if (h == null) throw new ClientException("no_token", "no license token: activate one first");
        return machineRoundTrip(h.token(), "deactivate");
    }

    private Verdict machineRoundTrip(LicenseToken token, String action) throws ClientException {
        String nonce = Base64.getUrlEncoder().withoutPadding().encodeToString(randomBytes(16));
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("token", token.secret());
        body.put("fingerprint", fingerprint(token));
        String host = null;
        try {
            host = InetAddress.getLocalHost().getHostName();
        } catch (IOException e) {
            // no host name
        }
        body.put("hostname", host);
        body.put("platform", System.getProperty("os.name").toLowerCase(java.util.Locale.ROOT) + "-" + System.getProperty("os.arch"));
        body.put("nonce", nonce);
        ClientException last = new ClientException("network", "no authority configured");
        for (String server : servers) {
            Answer answer;
            try {
                answer = send(server + "/v1/machines/" + action, json(body), null);
            } catch (ClientException e) {
                last = e;
                continue;
            }
            if (answer.status == 304) {
                last = new ClientException("invalid_answer", "304 to a machine request");
                break;
            }
            Verdict v = take(token, answer, nonce);
            machineGivenUp = action.equals("deactivate");
            return v;
        }
        synchronized (lock) {
            recordError(last.kind, last.getMessage());
        }
        throw last;
    }

    /** A license that counts machines says this one has no place: take one unless it gave its place up (§19). */
    private boolean shouldActivate() {
        Claims held = holder == null ? null : holder.document();
        if (held == null || held.raw.get("machine") == null) return false;
        return held.status.equals("lease_expired") || (held.status.equals("not_activated") && !machineGivenUp);
    }

    // ----- round trips ----------------------------------------------------------

    /** Ask the authority now, with a fresh nonce. */
    public Verdict refresh() throws ClientException {
        Holder h = holder;
        if (h == null) throw new ClientException("no_token", "no license token: activate one first");
        return roundTrip(h.token(), true);
    }

    /** Use {@code token}: its checksum first (a typo sends nothing), then a round trip. */
    public Verdict activate(String token) throws ClientException, ProtocolException {
        return roundTrip(new LicenseToken(token), true);
    }

    private record Answer(int status, byte[] body, String etag) {}

    private HttpResponse<InputStream> post(String url, String body, String ifNoneMatch) throws ClientException {
        try {
            HttpRequest.Builder req = HttpRequest.newBuilder(URI.create(url)).timeout(requestTimeout)
                    .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body));
            if (ifNoneMatch != null) req.header("If-None-Match", ifNoneMatch);
            return http.send(req.build(), HttpResponse.BodyHandlers.ofInputStream());
        } catch (IOException | IllegalArgumentException e) {
            throw new ClientException("network", "cannot reach the authority: " + e.getMessage());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new ClientException("network", "interrupted");
        }
    }

    /** At most 64 KiB of a body, then the connection is dropped (§13). */
    private static byte[] readCapped(InputStream in) throws ClientException {
        try (in) {
            byte[] data = in.readNBytes(MAX_ANSWER_BYTES + 1);
            if (data.length > MAX_ANSWER_BYTES) throw new ClientException("invalid_answer", "the answer is over 64 KiB");
            return data;
        } catch (IOException e) {
            throw new ClientException("network", "the answer was cut: " + e.getMessage());
        }
    }

    /** {@code Retry-After} in ms, capped: a value in the billions must not park the client for years. */
    static Long retryAfterMs(String value) {
        if (value == null || !value.strip().matches("\\d{1,30}")) return null;
        String v = value.strip();
        return v.length() > 6 ? MAX_BACKOFF_MS : Math.min(MAX_BACKOFF_MS, Long.parseLong(v) * 1000);
    }

    /** The wait before the next attempt: what the authority asked for (capped), else full jitter up to 5 minutes. */
    static long backoffMs(int failures, ClientException e) {
        if (e != null && e.retryAfterMs != null) return e.retryAfterMs;
        return (long) (RANDOM.nextDouble() * Math.min(MAX_BACKOFF_MS, 1000L << Math.min(failures, 8)));
    }

    /** A POST and its answer: 2xx and 304 come back; any other status is an error (its body read at most 64 KiB). */
    private Answer send(String url, String body, String ifNoneMatch) throws ClientException {
        HttpResponse<InputStream> res = post(url, body, ifNoneMatch);
        int code = res.statusCode();
        if (code == 304) {
            try {
                res.body().close();
            } catch (IOException e) {
                // nothing to read
            }
            return new Answer(304, new byte[0], null);
        }
        if (code / 100 != 2) {
            byte[] data;
            try (InputStream in = res.body()) {
                data = in.readNBytes(MAX_ANSWER_BYTES);
            } catch (IOException e) {
                data = new byte[0];
            }
            String message = new String(data, 0, Math.min(200, data.length), StandardCharsets.UTF_8);
            try {
                @SuppressWarnings("unchecked")
                Map<String, Object> err = (Map<String, Object>) ((Map<String, Object>) Json.parse(new String(data, StandardCharsets.UTF_8))).get("error");
                message = err.get("message") + " (" + err.get("code") + ")";
            } catch (RuntimeException e) {
                // not a JSON error: the first bytes say what it is
            }
            throw new ClientException("http_status", "HTTP " + code + ": " + message,
                    retryAfterMs(res.headers().firstValue("Retry-After").orElse(null)), code);
        }
        return new Answer(code, readCapped(res.body()), res.headers().firstValue("ETag").orElse(null));
    }


    private Verdict roundTrip(LicenseToken token, boolean withNonce) throws ClientException {
        String nonce = withNonce ? Base64.getUrlEncoder().withoutPadding().encodeToString(randomBytes(16)) : null;
        Map<String, Object> req = new LinkedHashMap<>();
        req.put("token", token.secret());
        req.put("instance_id", instanceId);
        req.put("fingerprint", fingerprint(token));
        if (nonce != null) req.put("nonce", nonce);
        String tag = withNonce ? null : etag;
        ClientException last = new ClientException("network", "no authority configured");
        for (String server : servers) {
            Answer answer;
            try {
                answer = send(server + "/v1/validate", json(req), tag);
            } catch (ClientException e) {
                last = e;
                continue;
            }
            if (answer.status == 304) {
                // While flagged the client asks with a nonce: a 304 to that is
                // an error; otherwise it is unsigned and proves nothing (§11).
                if (tag == null) {
                    last = new ClientException("invalid_answer", "304 to a request without If-None-Match");
                    break;
                }
                synchronized (lock) {
                    return publish();
                }
            }
            Verdict v = take(token, answer, nonce);
            if (shouldActivate()) return machineRoundTrip(token, "activate");
            return v;
        }
        synchronized (lock) {
            recordError(last.kind, last.getMessage());
        }
        throw last;
    }

    /** Verify an answer ({@code {"document": …}}) and take it by the rules. */
    @SuppressWarnings("unchecked")
    private Verdict take(LicenseToken token, Answer answer, String nonce) throws ClientException {
        String document;
        try {
            Object parsed = Json.parse(new String(answer.body, StandardCharsets.UTF_8));
            Object doc = parsed instanceof Map ? ((Map<String, Object>) parsed).get("document") : null;
            if (!(doc instanceof String)) throw new IllegalArgumentException();
            document = (String) doc;
        } catch (RuntimeException e) {
            synchronized (lock) {
                recordError("invalid_answer", "the answer is not a validation answer");
            }
            throw new ClientException("invalid_answer", "the answer is not a validation answer");
        }
        Verdict v;
        synchronized (lock) {
            boolean same = holder != null && holder.token().secret().equals(token.secret());
            Holder h = same ? holder
                    : new Holder(keys, token, Verdicts.DEFAULT_TOLERANCE, Protocol.DEFAULT_MAX_CLOCK_DRIFT).product(product);
            if (!same && holder != null) h.setMark(holder.mark());
            Claims held = h.document();
            String outcome;
            try {
                Claims claims = Protocol.checkProduct(Protocol.verify(document.getBytes(StandardCharsets.UTF_8), keys,
                        token.fingerprint(), now(), nonce, true, Protocol.DEFAULT_MAX_CLOCK_DRIFT,
                        Protocol.fingerprintHash(fingerprint(token))), product);
                // A machine released while it held a place stays released.
                if (claims.status.equals("not_activated") && held != null && held.raw.get("mfp") != null && held.valid) {
                    machineGivenUp = true;
                }
                outcome = h.accept(claims, document, now(), nonce != null);
                if (outcome.equals("rolled_back")) {
                    if (held != null && held.raw.get("mfp") != null && held.rev == claims.rev) {
                        return publish(); // an activation crossing a poll (§19)
                    }
                    recordError("rollback", "the document is older than the one held");
                    throw new ClientException("rollback", "the document is older than the one held");
                }
            } catch (ProtocolException e) {
                recordError("verification", e.getMessage());
                throw new ClientException("verification", e.getMessage());
            }
            holder = h;
            if (answer.etag != null) etag = answer.etag;
            if (nonce != null || outcome.equals("accepted")) recordContact(); // a replay proves nothing (§11)
            v = publish();
        }
        persist();
        return v;
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
                boolean force = forced;
                forced = false;
                if (refreshAfter == null || refreshAfter <= now() || failures > 0 || force) {
                    try {
                        Status s = status;
                        boolean flagged = s.lastError() != null || s.offlineSince() != null;
                        roundTrip(h.token(), refreshAfter == null || flagged || force);
                        failures = 0;
                    } catch (ClientException e) {
                        failures++;
                        waitMs = backoffMs(failures, e);
                    }
                } else {
                    waitMs = Math.min(waitMs, (refreshAfter - now()) * 1000);
                }
            }
            Long deadline = nextDeadline();
            // The verdict changes at its deadlines with no request.
            if (deadline != null) waitMs = Math.min(waitMs, Math.max(10, (deadline - now()) * 1000 + 10));
            try {
                if (wake.tryAcquire(Math.max(10, waitMs), TimeUnit.MILLISECONDS)) wake.drainPermits();
            } catch (InterruptedException e) {
                return;
            }
        }
    }

    /** The next instant the held verdict changes by the clock alone: the license's end, a feature's end, the grace's end. */
    @SuppressWarnings("unchecked")
    private Long nextDeadline() {
        Holder h = holder;
        Claims doc = h == null ? null : h.document();
        if (doc == null) return null;
        List<Long> times = new ArrayList<>(List.of(doc.exp + 1));
        if (doc.expiresAt != null) times.add(doc.expiresAt);
        for (Object e : doc.entitlements.values()) {
            if (e instanceof Map && ((Map<String, Object>) e).get("expires_at") != null) {
                try {
                    times.add(Protocol.parseTime(((Map<String, Object>) e).get("expires_at")));
                } catch (ProtocolException bad) {
                    // a verified document has none
                }
            }
        }
        long t = now();
        return times.stream().filter(x -> x > t).min(Long::compare).orElse(null);
    }

    private volatile long ackedAt;

    private void ack(LicenseToken token, long revision) {
        ackedAt = System.nanoTime();
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("token", token.secret());
        body.put("instance_id", instanceId);
        body.put("revision", revision);
        for (String server : servers) {
            try {
                send(server + "/v1/instances/ack", json(body), null);
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
                Claims claims = Protocol.checkProduct(Protocol.verify(document.getBytes(StandardCharsets.UTF_8), keys,
                        token.fingerprint(), now(), null, true, Protocol.DEFAULT_MAX_CLOCK_DRIFT), product);
                // A push on this client's own stream re-bases the mark (§6).
                if (!h.accept(claims, document, now(), true).equals("accepted")) return; // older, or the one held
                rev = claims.rev;
            } catch (ProtocolException e) {
                recordError("verification", "a pushed document was rejected: " + e.getMessage());
                return;
            }
            recordContact();
            publish();
        }
        persist();
        ack(token, rev);
    }

    private void closeStream() {
        InputStream in = stream;
        if (in != null) {
            try {
                in.close();
            } catch (IOException e) {
                // already closed
            }
        }
    }

    /** A stream silent past its read timeout (no event, no keep-alive) is dropped and reopened. */
    private void watchdog() {
        if (stream != null && System.nanoTime() - streamReadAt > streamReadTimeout.toNanos()) closeStream();
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
                        streamReadAt = System.nanoTime();
                        stream = res.body();
                        readEvents(res.body(), h.token());
                    } else {
                        res.body().close();
                    }
                } catch (IOException e) {
                    // reconnect below
                } catch (InterruptedException e) {
                    return;
                } finally {
                    closeStream();
                    stream = null;
                }
                connected = false;
                failures++;
            }
            try {
                Thread.sleep(500 + (long) (RANDOM.nextDouble() * Math.min(MAX_BACKOFF_MS, 1000L << Math.min(failures, 8))));
            } catch (InterruptedException e) {
                return;
            }
        }
    }

    /** One line of at most 64 KiB (without its end), or null at the end of the stream or past the bound. */
    private String readLine(InputStream in, ByteArrayOutputStream line) throws IOException {
        line.reset();
        for (;;) {
            int b = in.read();
            streamReadAt = System.nanoTime();
            if (b < 0) return null;
            if (b == '\n') break;
            if (line.size() >= MAX_ANSWER_BYTES) return null; // dropped with the connection
            line.write(b);
        }
        String text = line.toString(StandardCharsets.UTF_8);
        return text.endsWith("\r") ? text.substring(0, text.length() - 1) : text;
    }

    private void readEvents(InputStream body, LicenseToken token) throws IOException {
        try (InputStream in = new java.io.BufferedInputStream(body)) {
            ByteArrayOutputStream buf = new ByteArrayOutputStream();
            String event = "message";
            StringBuilder data = new StringBuilder();
            String line;
            while (!stopped && (line = readLine(in, buf)) != null) {
                if (data.length() > MAX_ANSWER_BYTES) return; // an event over 64 KiB: dropped with the connection
                if (line.isEmpty()) {
                    if (event.equals("status") && data.length() > 0) {
                        applyPushed(token, data.toString());
                    } else if (event.equals("machines")) {
                        // A place was taken or freed: ask at once for this machine's own answer (§19).
                        forced = true;
                        wake.release();
                    }
                    event = "message";
                    data.setLength(0);
                } else if (line.startsWith(":")) {
                    // Every 5 minutes the held revision again, so the fleet
                    // view heals after a lost ack (§12).
                    Holder h = holder;
                    if (System.nanoTime() - ackedAt > ackInterval.toNanos() && h != null && h.revision() != null) ack(token, h.revision());
                } else {
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
