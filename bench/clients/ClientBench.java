import dev.tessera.client.Client;
import dev.tessera.client.Protocol;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.LongConsumer;

/**
 * The Java client, measured as bench/clients.sh measures every client:
 * {@code hasFeature} (a warmed loop: median of batches of ten million calls
 * after a million-call warm-up, the loop included), verification of the
 * authority's document (median of batches), and the propagation of an
 * extension to N clients of one license in this JVM, from the admin API's
 * answer to each client's listener seeing the new revision.
 * Environment: URL, PUBLIC_KEY, ADMIN_KEY, LICENSE, TOKEN, CLIENTS, ROUNDS.
 */
public final class ClientBench {
    static volatile long sink;

    static double medianNs(int batches, int perBatch, LongConsumer f) {
        double[] each = new double[batches];
        for (int b = 0; b < batches; b++) {
            long t = System.nanoTime();
            f.accept(perBatch);
            each[b] = (System.nanoTime() - t) / (double) perBatch;
        }
        Arrays.sort(each);
        return each[batches / 2];
    }

    public static void main(String[] args) throws Exception {
        Map<String, String> env = System.getenv();
        int n = Integer.parseInt(env.getOrDefault("CLIENTS", "100"));
        int rounds = Integer.parseInt(env.getOrDefault("ROUNDS", "5"));
        List<Client> clients = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            Client c = Client.builder().server(env.get("URL")).publicKey(env.get("PUBLIC_KEY"))
                    .stateDir(Files.createTempDirectory("tessera-bench-")).build().start();
            c.activate(env.get("TOKEN"));
            clients.add(c);
        }
        long deadline = System.nanoTime() + 60_000_000_000L;
        while (!clients.stream().allMatch(Client::isConnected)) {
            if (System.nanoTime() > deadline) throw new IllegalStateException("not every stream open within 60 s");
            Thread.sleep(20);
        }
        Client first = clients.get(0);
        LongConsumer loop = k -> {
            long hits = 0;
            for (long i = 0; i < k; i++) if (first.hasFeature("sso")) hits++;
            sink += hits;
        };
        loop.accept(1_000_000); // warm-up: compiled before it is measured
        double hasFeature = medianNs(21, 10_000_000, loop);
        byte[] doc = first.document().getBytes(StandardCharsets.UTF_8);
        Protocol.TrustedKeys keys = new Protocol.TrustedKeys().pin(env.get("PUBLIC_KEY"));
        String tfp = new Protocol.LicenseToken(env.get("TOKEN")).fingerprint();
        long now = System.currentTimeMillis() / 1000;
        LongConsumer verify = k -> {
            for (long i = 0; i < k; i++) {
                try {
                    sink += Protocol.verify(doc, keys, tfp, now, null, true, 300).rev;
                } catch (Protocol.ProtocolException e) {
                    throw new IllegalStateException(e);
                }
            }
        };
        verify.accept(2_000);
        double verifyNs = medianNs(21, 200, verify);

        Map<Integer, Long> arrivals = new ConcurrentHashMap<>();
        long[] target = {Long.MAX_VALUE};
        for (int i = 0; i < n; i++) {
            int id = i;
            clients.get(i).onChange(v -> {
                if (v.revision != null && v.revision >= target[0]) arrivals.putIfAbsent(id, System.nanoTime());
            });
        }
        HttpClient http = HttpClient.newHttpClient();
        List<Double> samples = new ArrayList<>();
        for (int r = 0; r < rounds; r++) {
            arrivals.clear();
            target[0] = first.verdict().revision + 1;
            HttpRequest req = HttpRequest.newBuilder(URI.create(env.get("URL") + "/v1/admin/licenses/" + env.get("LICENSE") + "/extend"))
                    .header("Authorization", "Bearer " + env.get("ADMIN_KEY")).header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString("{\"by\":\"1d\"}")).build();
            HttpResponse<String> res = http.send(req, HttpResponse.BodyHandlers.ofString());
            long answered = System.nanoTime();
            if (res.statusCode() != 200) throw new IllegalStateException(res.body());
            long end = System.nanoTime() + 10_000_000_000L;
            while (arrivals.size() < n && System.nanoTime() < end) Thread.sleep(2);
            if (arrivals.size() < n) throw new IllegalStateException((n - arrivals.size()) + " clients missed the revision");
            for (long t : arrivals.values()) samples.add(Math.max(0, (t - answered) / 1e6));
            Thread.sleep(500);
        }
        samples.sort(Double::compare);
        java.util.function.DoubleFunction<Double> q = p -> samples.get((int) Math.round((samples.size() - 1) * p));
        System.out.printf("RESULT language=java has_feature_ns=%.2f verify_us=%.1f clients=%d rounds=%d p50_ms=%.2f p99_ms=%.2f max_ms=%.2f%n",
                hasFeature, verifyNs / 1e3, n, rounds, q.apply(0.5), q.apply(0.99), samples.get(samples.size() - 1));
        for (Client c : clients) c.close();
        System.exit(0);
    }
}
