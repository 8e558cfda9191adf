"""Driven by bench/bruteforce.sh; prints a Markdown summary."""
import http.client, json, os, random, re, statistics, string, subprocess, sys, tempfile, time, zlib

BIN = sys.argv[1]
ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
WRONG = int(os.environ.get("WRONG", "1000"))
TIMED = int(os.environ.get("TIMED", "2000"))


def fresh_token():
    body = "".join(random.choice(ALPHABET) for _ in range(30))
    crc, out = zlib.crc32(body.encode()), ""
    for _ in range(6):
        out = ALPHABET[crc % 62] + out
        crc //= 62
    return "tsr_" + body + out


def start(data, *extra):
    out = open(data + ".out", "w+")
    env = dict(os.environ, TESSERA_LOG="warn")
    p = subprocess.Popen([BIN, "server", "--listen", "127.0.0.1:0", "--data-dir", data, *extra],
                         stdout=out, stderr=subprocess.DEVNULL, env=env)
    for _ in range(200):
        out.seek(0)
        m = re.search(r"^listening on http://([\d.]+):(\d+)", out.read(), re.M)
        if m:
            return p, m.group(1), int(m.group(2))
        time.sleep(0.05)
    raise SystemExit("server did not start")


ADMIN = {}


def issue(host, port, data):
    key = open(os.path.join(data, "admin.key")).read().strip()
    c = ADMIN.setdefault((host, port), http.client.HTTPConnection(host, port))
    c.request("POST", "/v1/admin/licenses", json.dumps({"customer": "Bench", "plan": "p", "duration": "365d"}),
              {"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    return json.loads(c.getresponse().read())["token"]


RECONNECTS = 0


def validate(conn, token, nonce=None):
    """One request; a connection the server closed is reopened (counted)."""
    global RECONNECTS
    body = {"token": token}
    if nonce:
        body["nonce"] = nonce
    for attempt in range(2):
        try:
            t0 = time.perf_counter()
            conn.request("POST", "/v1/validate", json.dumps(body), {"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            return r.status, dict(r.getheaders()), time.perf_counter() - t0
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            RECONNECTS += 1
            conn.close()
            conn.connect()
    raise SystemExit("the server keeps closing the connection")


work = tempfile.mkdtemp()
procs = []
try:
    # 1. brute force against the default limit
    data = os.path.join(work, "limited")
    p, host, port = start(data)
    procs.append(p)
    conn = http.client.HTTPConnection(host, port)
    statuses, bad_headers = {}, 0
    for _ in range(WRONG):
        status, headers, _ = validate(conn, fresh_token())
        statuses[status] = statuses.get(status, 0) + 1
        h = {k.lower(): v for k, v in headers.items()}
        if status == 429 and not ("retry-after" in h and "ratelimit-limit" in h and "ratelimit-remaining" in h):
            bad_headers += 1
    print(f"## Brute force: {WRONG} wrong tokens from one address (default limit)\n")
    for s in sorted(statuses):
        print(f"- HTTP {s}: {statuses[s]}")
    print(f"- 429 answers missing Retry-After or RateLimit-* headers: {bad_headers}")
    print(f"- connections the server closed (reopened): {RECONNECTS}\n")

    # 2. timing, limiting off
    data = os.path.join(work, "open")
    p, host, port = start(data, "--rate-limit", "0")
    procs.append(p)
    known = issue(host, port, data)
    # Tokens never validated yet: their first answer takes the uncached path,
    # as a fresh unknown token's does.
    cold = [issue(host, port, data) for _ in range(TIMED)]
    # Issuing caches a license; a restart empties the caches so these first
    # requests go to the database, as a fresh unknown token's do.
    p.terminate()
    p.wait()
    p, host, port = start(data, "--rate-limit", "0")
    procs.append(p)
    unknown = fresh_token()
    conn = http.client.HTTPConnection(host, port)
    for _ in range(200):  # warm-up
        validate(conn, known, os.urandom(8).hex())
        validate(conn, unknown, os.urandom(8).hex())
    times = {"known token": [], "unknown token (repeated)": [],
             "known token, first request (never seen)": [], "unknown token (fresh each time)": []}
    for _ in range(TIMED):
        order = list(times)
        random.shuffle(order)
        for kind in order:
            token = {"known token": known, "unknown token (repeated)": unknown}.get(kind)
            if token is None:
                token = cold.pop() if kind.startswith("known") else fresh_token()
            status, _, dt = validate(conn, token, "n-" + os.urandom(8).hex())
            assert status == 200, status
            times[kind].append(dt * 1e6)
    print(f"## Answer time, {TIMED} interleaved requests each, unique nonce (µs)\n")
    print("| token | median | p90 |")
    print("|---|---|---|")
    for kind, xs in times.items():
        xs.sort()
        print(f"| {kind} | {statistics.median(xs):.0f} | {xs[int(len(xs) * 0.9)]:.0f} |")
finally:
    for p in procs:
        p.terminate()
        p.wait()
