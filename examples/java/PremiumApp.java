// A tiny product with a premium feature, checked by the Tessera Java client:
// the Metabase scenario end to end. The license expires, the vendor renews
// it, and the running app shows the renewal within a second (pushed on the
// change stream); re-entering the same token re-checks at the authority
// instead of answering from a cache.
//
//   bash clients/java/build.sh        # builds clients/java/build/tessera-client.jar
//   TESSERA_SERVER=http://127.0.0.1:7400 TESSERA_PUBLIC_KEY=k4.public.… \
//   TESSERA_TOKEN=tsr_… PORT=3000 \
//     java -cp clients/java/build/tessera-client.jar examples/java/PremiumApp.java
//
// Then open http://127.0.0.1:3000/. Routes: GET / (the page), GET /status
// (JSON), POST /refresh (ask the authority now), POST /activate (form field
// `token`: enter a token, or the same one again).
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import dev.tessera.client.Client;
import dev.tessera.client.Verdicts.Verdict;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Collectors;

public final class PremiumApp {
    static Client license;

    static String env(String name, String fallback) {
        String v = System.getenv(name);
        return v == null || v.isEmpty() ? fallback : v;
    }

    static String json(Client c) {
        Verdict v = c.verdict();
        Client.Status s = c.status();
        return "{\"state\":\"" + v.state + "\",\"reason\":" + (v.reason == null ? "null" : "\"" + v.reason + "\"")
                + ",\"revision\":" + v.revision + ",\"premium\":" + c.hasFeature("premium")
                + ",\"features\":[" + v.features.stream().map(f -> "\"" + f + "\"").collect(Collectors.joining(","))
                + "],\"last_verified_at\":" + s.lastVerifiedAt() + ",\"last_error\":"
                + (s.lastError() == null ? "null" : "\"" + s.lastError().kind() + "\"") + "}";
    }

    static String page(Client c) {
        Verdict v = c.verdict();
        String premium = c.hasFeature("premium")
                ? "<section><h2>Premium report</h2><p>Revenue by region, forecast, cohorts…</p></section>"
                : "<section><h2>Premium report</h2><p>Locked: the license does not grant <code>premium</code> now.</p></section>";
        return "<!doctype html><title>Premium app</title><h1>Premium app</h1>"
                + "<p>License: <b id=state>" + v.state + "</b>" + (v.reason == null ? "" : " (" + v.reason + ")")
                + ", revision " + v.revision + "</p>" + premium
                + "<form method=post action=/refresh><button>Refresh now</button></form>"
                + "<form method=post action=/activate><input name=token size=48 placeholder=tsr_…><button>Enter license</button></form>";
    }

    static void send(HttpExchange ex, int status, String type, String body) throws IOException {
        byte[] b = body.getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().set("Content-Type", type);
        ex.sendResponseHeaders(status, b.length);
        ex.getResponseBody().write(b);
        ex.close();
    }

    static void handle(HttpExchange ex) throws IOException {
        String route = ex.getRequestMethod() + " " + ex.getRequestURI().getPath();
        try {
            switch (route) {
                case "GET /" -> send(ex, 200, "text/html; charset=utf-8", page(license));
                case "GET /status" -> send(ex, 200, "application/json", json(license));
                case "POST /refresh" -> {
                    license.refresh();
                    send(ex, 200, "application/json", json(license));
                }
                case "POST /activate" -> {
                    String form = new String(ex.getRequestBody().readAllBytes(), StandardCharsets.UTF_8);
                    String token = "";
                    for (String pair : form.split("&")) {
                        if (pair.startsWith("token=")) token = URLDecoder.decode(pair.substring(6), StandardCharsets.UTF_8).strip();
                    }
                    license.activate(token);
                    send(ex, 200, "application/json", json(license));
                }
                default -> send(ex, 404, "text/plain", "not found\n");
            }
        } catch (Exception e) {
            // A typo, the authority unreachable: said, and the verdict kept.
            send(ex, 422, "application/json", "{\"error\":\"" + e.getMessage().replace("\"", "'") + "\",\"status\":" + json(license) + "}");
        }
    }

    public static void main(String[] args) throws Exception {
        license = Client.builder()
                .server(env("TESSERA_SERVER", "http://127.0.0.1:7400"))
                .publicKey(System.getenv("TESSERA_PUBLIC_KEY"))
                .token(System.getenv("TESSERA_TOKEN"))
                .stateDir(Path.of(env("TESSERA_STATE_DIR", "tessera-state")))
                .build();
        license.onChange(v -> System.out.println("license: " + v.state + " (revision " + v.revision + ")"));
        license.start(); // never waits for the network: the last verdict from disk at once
        HttpServer http = HttpServer.create(new InetSocketAddress("127.0.0.1", Integer.parseInt(env("PORT", "3000"))), 0);
        http.createContext("/", PremiumApp::handle);
        http.start();
        System.out.println("premium app on http://127.0.0.1:" + http.getAddress().getPort() + "/");
    }
}
