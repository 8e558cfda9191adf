package dev.tessera.client;

import dev.tessera.client.Client.ClientException;
import dev.tessera.client.Protocol.ProtocolException;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * The Java client against a real {@code tessera server} (the binary given
 * as the first argument): issue, activate (a typo refused offline), an
 * extension on the stream within 1 s, the ack, the authority stopped with
 * the verdict kept, a restart from disk, revoke, and the same token
 * re-activated re-checks (the seed bug). Whatever happens, the servers
 * started are stopped.
 */
public final class ServerTest {
    static final HttpClient HTTP = HttpClient.newHttpClient();

    static final class Server {
        final Process proc;
        String url;
        String publicKey;
        final String adminKey;

        Server(String bin, Path data, int port) throws Exception {
            proc = new ProcessBuilder(bin, "server", "--listen", "127.0.0.1:" + port, "--data-dir", data.toString())
                    .redirectError(ProcessBuilder.Redirect.DISCARD).start();
            BufferedReader out = new BufferedReader(new InputStreamReader(proc.getInputStream(), StandardCharsets.UTF_8));
            String line;
            while ((line = out.readLine()) != null) {
                if (line.contains("public key:")) publicKey = line.split("public key:")[1].trim();
                if (line.startsWith("listening on ")) {
                    url = line.substring("listening on ".length()).trim();
                    break;
                }
            }
            Thread drain = new Thread(() -> {
                try {
                    while (out.readLine() != null) { /* keep the pipe empty */ }
                } catch (Exception e) {
                    // the process ended
                }
            });
            drain.setDaemon(true);
            drain.start();
            adminKey = Files.readString(data.resolve("admin.key")).trim();
        }

        @SuppressWarnings("unchecked")
        Map<String, Object> admin(String method, String path, String body) throws Exception {
            HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(url + path)).header("Authorization", "Bearer " + adminKey)
                    .header("Content-Type", "application/json");
            b = body == null ? b.GET() : b.method(method, HttpRequest.BodyPublishers.ofString(body));
            return (Map<String, Object>) Json.parse(HTTP.send(b.build(), HttpResponse.BodyHandlers.ofString()).body());
        }

        void stop() throws Exception {
            if (proc.isAlive()) {
                proc.destroy();
                proc.waitFor();
            }
        }
    }

    /** An authority on a free port, its data in {@code work}, stopped at the end. */
    static Server start(String bin, Path work, List<Server> servers) throws Exception {
        int port;
        try (ServerSocket s = new ServerSocket(0)) {
            port = s.getLocalPort();
        }
        Server server = new Server(bin, work.resolve("data"), port);
        servers.add(server);
        return server;
    }

        static void check(boolean ok, String what) {
        if (!ok) throw new AssertionError(what);
    }

    public static void main(String[] args) throws Exception {
        List<Server> servers = new ArrayList<>();
        List<Client> clients = new ArrayList<>();
        try {
            run(args[0], servers, clients);
            System.out.println("ok   the client against a real authority");
            machines(args[0], servers, clients);
            System.out.println("ok   machines, usage and offline files against a real authority");
            quotas(args[0], servers, clients);
            System.out.println("ok   metered quotas against a real authority");
            products(args[0], servers, clients);
            System.out.println("ok   products and imported keys against a real authority");
        } finally {
            for (Client c : clients) c.close();
            for (Server s : servers) s.stop();
        }
    }

    @SuppressWarnings("unchecked")
    static void run(String bin, List<Server> servers, List<Client> clients) throws Exception {
        Path work = Files.createTempDirectory("tessera-java-");
        Path data = work.resolve("data");
        Path state = work.resolve("state");
        int port;
        try (ServerSocket s = new ServerSocket(0)) {
            port = s.getLocalPort();
        }
        Server server = new Server(bin, data, port);
        servers.add(server);
        Map<String, Object> issued = server.admin("POST", "/v1/admin/licenses",
                "{\"customer\":\"Acme\",\"plan\":\"p\",\"duration\":\"2d\",\"features\":[\"sso\"]}");
        String lic = (String) ((Map<String, Object>) issued.get("license")).get("id");
        String token = (String) issued.get("token");

        Client client = new Client(List.of(server.url), List.of(server.publicKey), null, state).start();
        clients.add(client);
        check(client.verdict().state.equals("unverified"), "no token yet");
        String typo = token.substring(0, token.length() - 1) + (token.endsWith("A") ? "B" : "A");
        try {
            client.activate(typo);
            check(false, "a typo was sent");
        } catch (ProtocolException e) {
            check(e.code.equals("invalid_token"), "invalid_token");
        }
        check(client.activate(token).state.equals("valid") && client.hasFeature("sso"), "valid after activate");
        Verdicts.Verdict first = client.verdict();
        check("p".equals(first.plan) && "Acme".equals(first.customer) && Long.valueOf(2).equals(first.daysLeft)
                && first.expiresAt > System.currentTimeMillis() / 1000, "plan, customer, days left: " + first.daysLeft);
        check(PosixFilePermissions.toString(Files.getPosixFilePermissions(state.resolve("tessera-state.json"))).equals("rw-------"), "0600");

        // An extension arrives on the change stream, with no request.
        for (int i = 0; i < 250 && !client.isConnected(); i++) Thread.sleep(20);
        check(client.isConnected(), "the stream is open");
        List<Long> seen = new java.util.concurrent.CopyOnWriteArrayList<>();
        client.onChange(v -> seen.add(v.revision));
        server.admin("POST", "/v1/admin/licenses/" + lic + "/extend", "{\"by\":\"30d\"}");
        long pushedAt = System.nanoTime();
        while (!Long.valueOf(2).equals(client.verdict().revision) && System.nanoTime() - pushedAt < 5_000_000_000L) Thread.sleep(5);
        long tookMs = (System.nanoTime() - pushedAt) / 1_000_000;
        check(Long.valueOf(2).equals(client.verdict().revision) && tookMs < 1000, "seen after " + tookMs + " ms");
        // The verdict is published, then the listeners are called: wait for them.
        for (int i = 0; i < 250 && !seen.contains(2L); i++) Thread.sleep(4);
        check(seen.contains(2L), "the listener heard it");
        Object held = null;
        for (int i = 0; i < 50; i++) {
            List<Object> instances = (List<Object>) server.admin("GET", "/v1/admin/licenses/" + lic + "/instances", null).get("instances");
            held = instances.isEmpty() ? null : ((Map<String, Object>) instances.get(0)).get("held_revision");
            if (Long.valueOf(2).equals(held)) break;
            Thread.sleep(100);
        }
        check(Long.valueOf(2).equals(held), "acknowledged: " + held);

        // The authority goes away: the verdict stays, the error is reported.
        server.stop();
        try {
            client.refresh();
            check(false, "refreshed with no authority");
        } catch (ClientException e) {
            check(e.kind.equals("network"), e.kind);
        }
        check(client.verdict().state.equals("valid") && "network".equals(client.lastErrorKind()), "kept");
        client.close();

        // A restart from disk, offline: valid at once.
        Client again = new Client(List.of(server.url), List.of(server.publicKey), null, state).start();
        clients.add(again);
        check(again.verdict().state.equals("valid") && Long.valueOf(2).equals(again.verdict().revision), "from disk");
        again.close();

        // Back; revoked; the same token entered again re-checks at once.
        server = new Server(bin, data, port);
        servers.add(server);
        server.admin("POST", "/v1/admin/licenses/" + lic + "/revoke", "{\"reason\":\"test\"}");
        Client third = new Client(List.of(server.url), List.of(server.publicKey), null, state).start();
        clients.add(third);
        check(third.verdict().state.equals("valid"), "from disk until asked");
        check(third.activate(token).state.equals("revoked") && !third.hasFeature("sso"), "revoked on re-activation");
    }

    static boolean until(java.util.function.BooleanSupplier pred) throws InterruptedException {
        long end = System.nanoTime() + 10_000_000_000L;
        while (!pred.getAsBoolean() && System.nanoTime() < end) Thread.sleep(20);
        return pred.getAsBoolean();
    }

    @SuppressWarnings("unchecked")
    static void machines(String bin, List<Server> servers, List<Client> clients) throws Exception {
        Path work = Files.createTempDirectory("tessera-java-machines-");
        Server server = start(bin, work, servers);
        Map<String, Object> issued = server.admin("POST", "/v1/admin/licenses",
                "{\"customer\":\"Acme\",\"plan\":\"p\",\"duration\":\"30d\",\"features\":[\"sso\"],\"max_machines\":1}");
        String lic = (String) ((Map<String, Object>) issued.get("license")).get("id");
        String token = (String) issued.get("token");

        // The first machine takes the one place by itself; the second is refused.
        Client first = Client.builder().server(server.url).publicKey(server.publicKey).stateDir(work.resolve("first"))
                .fingerprint("host-1").build().start();
        clients.add(first);
        check(first.activate(token).state.equals("valid"), "the first takes the place");
        Client second = Client.builder().server(server.url).publicKey(server.publicKey).stateDir(work.resolve("second"))
                .fingerprint("host-2").build().start();
        clients.add(second);
        check(second.activate(token).state.equals("too_many_machines") && !second.hasFeature("sso"), "the second is refused");

        // The first gives its place back: the second, told on its stream, takes it.
        check(until(second::isConnected), "the stream is open");
        check(first.deactivate().state.equals("not_activated"), "deactivated");
        check(until(() -> second.verdict().state.equals("valid")), "the second took the place: " + second.verdict().state);
        check(first.refresh().state.equals("not_activated"), "a released machine stays released");

        // Usage: the user count reaches the fleet view.
        second.setUsers(7);
        Object users = null;
        for (int i = 0; i < 100 && !Long.valueOf(7).equals(users); i++) {
            Thread.sleep(100);
            for (Object o : (List<Object>) server.admin("GET", "/v1/admin/licenses/" + lic + "/instances", null).get("instances")) {
                Map<String, Object> inst = (Map<String, Object>) o;
                if (second.instanceId().equals(inst.get("instance_id"))) users = inst.get("users");
            }
        }
        check(Long.valueOf(7).equals(users), "the fleet view shows 7 users: " + users);

        // An offline file from `tessera license export`, with no authority.
        Map<String, Object> plain = server.admin("POST", "/v1/admin/licenses",
                "{\"customer\":\"Site\",\"plan\":\"p\",\"duration\":\"30d\",\"features\":[\"sso\"]}");
        String plainId = (String) ((Map<String, Object>) plain.get("license")).get("id");
        HttpRequest req = HttpRequest.newBuilder(URI.create(server.url + "/v1/admin/licenses/" + plainId + "/export"))
                .header("Authorization", "Bearer " + server.adminKey).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString("{\"ttl\":\"365d\"}")).build();
        Path file = work.resolve("license.json");
        Files.writeString(file, HTTP.send(req, HttpResponse.BodyHandlers.ofString()).body());
        server.stop();
        Client offline = Client.builder().publicKey(server.publicKey).token((String) plain.get("token"))
                .stateDir(work.resolve("offline")).offlineFile(file).build().start();
        clients.add(offline);
        check(offline.verdict().state.equals("valid") && offline.hasFeature("sso"), "the offline file: " + offline.verdict().state);
    }

    @SuppressWarnings("unchecked")
    static void products(String bin, List<Server> servers, List<Client> clients) throws Exception {
        Path work = Files.createTempDirectory("tessera-java-products-");
        Server server = start(bin, work, servers);
        server.admin("POST", "/v1/admin/products", "{\"name\":\"metabase-ee\"}");
        Map<String, Object> issued = server.admin("POST", "/v1/admin/licenses",
                "{\"customer\":\"Acme\",\"plan\":\"p\",\"duration\":\"30d\",\"features\":[\"sso\"],\"product\":\"metabase-ee\"}");
        String token = (String) issued.get("token");
        Client right = Client.builder().server(server.url).publicKey(server.publicKey).stateDir(work.resolve("right"))
                .product("metabase-ee").watch(false).build().start();
        clients.add(right);
        check(right.activate(token).state.equals("valid"), "the product's own license");
        Client wrong = Client.builder().server(server.url).publicKey(server.publicKey).stateDir(work.resolve("wrong"))
                .product("metabase").watch(false).build().start();
        clients.add(wrong);
        try {
            wrong.activate(token);
            check(false, "another product's license was taken");
        } catch (Exception e) {
            check(String.valueOf(e.getMessage()).contains("metabase-ee"), "wrong_product: " + e.getMessage());
        }
        check(!wrong.hasFeature("sso"), "no feature from another product's license");
        // A key imported from another system validates as it is.
        server.admin("POST", "/v1/admin/licenses/import", "{\"import\":\"java-test\",\"first_row\":1,\"next_row\":2,"
                + "\"rows\":[{\"row\":1,\"key\":\"KEYGEN-STYLE-KEY-0003\",\"customer\":\"Initech\",\"plan\":\"p\",\"features\":[\"sso\"]}]}");
        Client imported = Client.builder().server(server.url).publicKey(server.publicKey).stateDir(work.resolve("imported"))
                .watch(false).build().start();
        clients.add(imported);
        check(imported.activate("KEYGEN-STYLE-KEY-0003").state.equals("valid") && imported.hasFeature("sso"), "an imported key");
    }

    @SuppressWarnings("unchecked")
    static void quotas(String bin, List<Server> servers, List<Client> clients) throws Exception {
        Path work = Files.createTempDirectory("tessera-java-quotas-");
        Server server = start(bin, work, servers);
        Map<String, Object> issued = server.admin("POST", "/v1/admin/licenses",
                "{\"customer\":\"Acme\",\"plan\":\"p\",\"duration\":\"30d\",\"features\":[\"sso\",\"api_calls=100/month\"]}");
        String lic = (String) ((Map<String, Object>) issued.get("license")).get("id");
        String token = (String) issued.get("token");
        Client client = Client.builder().server(server.url).publicKey(server.publicKey).stateDir(work.resolve("a")).build().start();
        clients.add(client);
        client.activate(token);
        check(client.quotas().get("api_calls")[0] == 100 && client.quotas().get("api_calls")[1] == 0, "the meter");
        check(client.consume("api_calls", 60) == 40 && client.remaining("api_calls") == 40, "consumed 60");
        for (String[] c : new String[][] {{"api_calls", "41", "quota_exhausted"}, {"sso", "1", "unknown_quota"}, {"nope", "1", "not_granted"}}) {
            try {
                client.consume(c[0], Long.parseLong(c[1]));
                check(false, "consumed " + c[1] + " of " + c[0]);
            } catch (Meters.QuotaException e) {
                check(e.code.equals(c[2]), e.code);
            }
        }
        java.util.function.Supplier<Object> used = () -> {
            try {
                return ((Map<String, Object>) server.admin("GET", "/v1/admin/licenses/" + lic + "/quotas/api_calls", null).get("quota")).get("used");
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        };
        client.flushConsumption();
        check(Long.valueOf(60).equals(used.get()), "counted: " + used.get());
        client.flushConsumption();
        check(Long.valueOf(60).equals(used.get()), "nothing counted twice");

        // Another instance uses the rest: the blocking point is a new
        // revision, pushed to this client's stream, and its consume refuses.
        Client other = Client.builder().server(server.url).publicKey(server.publicKey).stateDir(work.resolve("b")).watch(false).build().start();
        clients.add(other);
        other.activate(token);
        check(other.consume("api_calls", 40) == 0, "the rest");
        other.flushConsumption();
        check(until(() -> Long.valueOf(2).equals(client.verdict().revision)), "the blocking point pushed");
        try {
            client.consume("api_calls", 1);
            check(false, "consumed past the blocking point");
        } catch (Meters.QuotaException e) {
            check(e.code.equals("quota_exhausted"), e.code);
        }
    }
}
