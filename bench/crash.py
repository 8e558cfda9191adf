"""Driven by bench/crash.sh. Exit status 0 only if nothing was lost."""
import base64, http.client, json, os, random, re, socket, subprocess, sys, tempfile, threading, time

BIN = sys.argv[1]
RENEWALS = int(os.environ.get("RENEWALS", "10000"))
SEED = int(os.environ.get("SEED", str(int(time.time()))))
random.seed(SEED)
work = tempfile.mkdtemp(prefix="tessera-crash-")
data = os.path.join(work, "data")
state_dir = os.path.join(work, "agent")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


PORT = free_port()
URL = f"http://127.0.0.1:{PORT}"
lock = threading.Lock()
server = None
agent = None
stats = {"server_kills": 0, "agent_kills": 0, "acked": 0, "unanswered": 0, "agent_checks": 0}
problems = []


def wait_for(out_path, pattern, proc, what):
    for _ in range(400):
        try:
            text = open(out_path).read()
        except FileNotFoundError:
            text = ""
        m = re.search(pattern, text, re.M)
        if m:
            return m
        if proc.poll() is not None:
            return None
        time.sleep(0.025)
    raise SystemExit(f"{what} did not start")


def start_server():
    global server
    for attempt in range(40):
        out = os.path.join(work, "server.out")
        p = subprocess.Popen([BIN, "server", "--listen", f"127.0.0.1:{PORT}", "--data-dir", data, "--rate-limit", "0"],
                             stdout=open(out, "w"), stderr=open(os.path.join(work, "server.err"), "a"),
                             env=dict(os.environ, TESSERA_LOG="warn"))
        if wait_for(out, r"^listening on ", p, "server"):
            server = p
            return
        time.sleep(0.1)  # the port may still be held for a moment
    raise SystemExit("server would not restart")


def start_agent(public_key, token_file):
    global agent
    out = os.path.join(work, "agent.out")
    p = subprocess.Popen([BIN, "agent", "--server", URL, "--public-key", public_key, "--token-file", token_file,
                          "--state-dir", state_dir, "--listen", "127.0.0.1:0"],
                         stdout=open(out, "w"), stderr=open(os.path.join(work, "agent.err"), "a"),
                         env=dict(os.environ, TESSERA_LOG="warn"))
    wait_for(out, r"^listening on ", p, "agent")
    agent = p


def claims_of(document):
    body = document.split(".")[2]
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    return json.loads(raw[:-64])


agent_high = 0


def check_agent_state():
    """After a kill: the state file parses and never goes back."""
    global agent_high
    path = os.path.join(state_dir, "tessera-state.json")
    if not os.path.exists(path):
        return
    text = open(path, "rb").read()
    try:
        state = json.loads(text)
        assert state["format"] == "tessera-client-state/1"
        rev = claims_of(state["document"])["rev"] if state.get("document") else 0
    except Exception as e:  # a torn or corrupt file
        problems.append(f"agent state unreadable after a kill: {e!r}")
        return
    if rev < agent_high:
        problems.append(f"agent state rolled back from {agent_high} to {rev}")
    agent_high = max(agent_high, rev)
    stats["agent_checks"] += 1


def admin(method, path, body=None):
    key = open(os.path.join(data, "admin.key")).read().strip()
    for _ in range(200):
        try:
            c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
            c.request(method, path, json.dumps(body) if body is not None else None,
                      {"Authorization": "Bearer " + key, "Content-Type": "application/json"})
            r = c.getresponse()
            return r.status, json.loads(r.read() or b"null")
        except (OSError, http.client.HTTPException):
            time.sleep(0.05)
    raise SystemExit(f"{method} {path}: the server stays away")


def killer(stop):
    while not stop.is_set():
        time.sleep(random.uniform(0.05, 0.6))
        with lock:
            if random.random() < 0.25 and agent is not None:
                agent.kill()
                agent.wait()
                stats["agent_kills"] += 1
                check_agent_state()
                start_agent(PUBLIC_KEY, TOKEN_FILE)
            else:
                server.kill()
                server.wait()
                stats["server_kills"] += 1
                start_server()


start_server()
PUBLIC_KEY = re.search(r"public key:\s*(k4\.public\.\S+)", open(os.path.join(work, "server.out")).read()).group(1)
status, issued = admin("POST", "/v1/admin/licenses", {"customer": "Crash", "plan": "p", "duration": "30d"})
assert status == 201, issued
LICENSE, TOKEN = issued["license"]["id"], issued["token"]
TOKEN_FILE = os.path.join(work, "token")
open(TOKEN_FILE, "w").write(TOKEN)
start_agent(PUBLIC_KEY, TOKEN_FILE)

acked = []  # (revision, expires_at) of every answered renewal
log = open(os.path.join(work, "acked.log"), "w")
stop = threading.Event()
threading.Thread(target=killer, args=(stop,), daemon=True).start()
conn = None
started = time.time()
for i in range(RENEWALS):
    while True:
        try:
            if conn is None:
                key = open(os.path.join(data, "admin.key")).read().strip()
                conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
            conn.request("POST", f"/v1/admin/licenses/{LICENSE}/extend", json.dumps({"by": "1h"}),
                         {"Authorization": "Bearer " + key, "Content-Type": "application/json"})
            r = conn.getresponse()
            body = json.loads(r.read())
            if r.status != 200:
                problems.append(f"renewal {i}: HTTP {r.status} {body}")
                break
            acked.append((body["revision"], body["expires_at"]))
            log.write(f"{body['revision']}\t{body['expires_at']}\n")
            stats["acked"] += 1
            break
        except (OSError, http.client.HTTPException, ValueError):
            # No answer: the renewal may or may not have committed; it was not
            # acknowledged, so nothing is owed. Ask for a new one.
            stats["unanswered"] += 1
            conn = None
            time.sleep(0.02)
            break
    if (i + 1) % 1000 == 0:
        print(f"  {i + 1} renewals sent, {stats['acked']} acknowledged, "
              f"{stats['server_kills']} server kills, {stats['agent_kills']} agent kills", file=sys.stderr)
stop.set()
time.sleep(0.7)
with lock:
    log.close()
    elapsed = time.time() - started
    # Final state, after one last kill -9 and restart.
    server.kill(); server.wait(); stats["server_kills"] += 1
    start_server()
    status, lic = admin("GET", f"/v1/admin/licenses/{LICENSE}")
    revisions = []
    after = 0
    while True:
        status, page = admin("GET", f"/v1/admin/events?license={LICENSE}&after={after}&limit=1000")
        items = page["items"]
        revisions += [e["revision"] for e in items if not e["kind"].startswith("license.expir")]
        if len(items) < 1000:
            break
        after = items[-1]["seq"]
    final = lic["revision"]
    if revisions != list(range(1, final + 1)):
        problems.append(f"audit revisions not contiguous 1..{final}: {len(revisions)} events")
    acked_revs = [r for r, _ in acked]
    if len(set(acked_revs)) != len(acked_revs):
        problems.append("an acknowledged revision was acknowledged twice")
    lost = [r for r in acked_revs if r > final or r not in set(revisions)]
    if lost:
        problems.append(f"{len(lost)} acknowledged renewals lost, e.g. {lost[:5]}")
    if acked and max(acked_revs) > final:
        problems.append("the final revision is below an acknowledged one")
    # The agent ends on the final revision (pushed), and its file agrees.
    agent.kill(); agent.wait(); stats["agent_kills"] += 1
    check_agent_state()
    start_agent(PUBLIC_KEY, TOKEN_FILE)
    ok_agent = False
    for _ in range(200):
        port = re.search(r"listening on http://127\.0\.0\.1:(\d+)", open(os.path.join(work, "agent.out")).read()).group(1)
        try:
            c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=5)
            c.request("GET", "/v1/status")
            st = json.loads(c.getresponse().read())
            if st.get("revision") == final:
                ok_agent = True
                break
        except (OSError, http.client.HTTPException, ValueError):
            pass
        time.sleep(0.05)
    if not ok_agent:
        problems.append(f"the agent did not reach revision {final}")
    server.terminate(); agent.terminate()

print(f"## Crash test (seed {SEED})\n")
print(f"- renewals sent: {RENEWALS} in {elapsed:.0f} s; acknowledged: {stats['acked']}; "
      f"unanswered (cut by a kill): {stats['unanswered']}")
print(f"- server kill -9 + restart: {stats['server_kills']}; agent kill -9 + restart: {stats['agent_kills']}")
print(f"- final revision: {final}; audit events 1..{final} contiguous: {revisions == list(range(1, final + 1))}")
print(f"- acknowledged renewals missing after the crashes: {len([r for r in acked_revs if r not in set(revisions)])}")
print(f"- agent state files checked after a kill: {stats['agent_checks']}; torn or rolled back: "
      f"{len([p for p in problems if p.startswith('agent state')])}")
print(f"- agent at the final revision after its last restart: {ok_agent}")
if problems:
    print("\nPROBLEMS:\n" + "\n".join("- " + p for p in problems))
    sys.exit(1)
