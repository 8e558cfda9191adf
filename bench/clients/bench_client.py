"""The Python client, measured as bench/clients.sh measures every client:
`has_feature` (median of batches, the loop included), verification of the
authority's document (median of batches), and the propagation of an
extension to N clients of one license in this process, from the admin
API's answer to each client's listener seeing the new revision.

Environment: URL, PUBLIC_KEY, ADMIN_KEY, LICENSE, TOKEN, CLIENTS, ROUNDS."""

import json
import os
import statistics
import tempfile
import threading
import time
import urllib.request

from tessera_client import Client, LicenseToken, TrustedKeys, verify

env = os.environ
N, ROUNDS = int(env.get("CLIENTS", "100")), int(env.get("ROUNDS", "5"))


def median_ns(batches, per_batch, f):
    each = []
    for _ in range(batches):
        t = time.perf_counter_ns()
        f(per_batch)
        each.append((time.perf_counter_ns() - t) / per_batch)
    return statistics.median(each)


clients = []
for i in range(N):
    c = Client(servers=[env["URL"]], public_keys=[env["PUBLIC_KEY"]], state_dir=tempfile.mkdtemp()).start()
    c.activate(env["TOKEN"])
    clients.append(c)
deadline = time.time() + 60
while not all(c.connected for c in clients):
    if time.time() > deadline:
        raise SystemExit("not every stream open within 60 s")
    time.sleep(0.02)

first = clients[0]


def loop(n, has=first.has_feature):
    for _ in range(n):
        has("sso")


has_feature = median_ns(21, 200_000, loop)
doc = first.document.encode()
keys = TrustedKeys().pin(env["PUBLIC_KEY"])
tfp = LicenseToken(env["TOKEN"]).fingerprint()
now = int(time.time())
verify_ns = median_ns(21, 100, lambda n: [verify(doc, keys, tfp, now) for _ in range(n)])

arrivals = {}
lock = threading.Lock()
target = [None]


def listener(i):
    def heard(v):
        if target[0] is not None and v.revision is not None and v.revision >= target[0]:
            with lock:
                arrivals.setdefault(i, time.perf_counter())

    return heard


for i, c in enumerate(clients):
    c.add_listener(listener(i))

samples = []
for _ in range(ROUNDS):
    target[0] = first.verdict.revision + 1
    arrivals.clear()
    req = urllib.request.Request(
        f"{env['URL']}/v1/admin/licenses/{env['LICENSE']}/extend",
        data=json.dumps({"by": "1d"}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {env['ADMIN_KEY']}"},
        method="POST",
    )
    with urllib.request.urlopen(req) as res:
        answered = time.perf_counter()
        assert json.loads(res.read())["revision"] == target[0]
    end = time.time() + 10
    while len(arrivals) < N and time.time() < end:
        time.sleep(0.005)
    if len(arrivals) < N:
        raise SystemExit(f"{N - len(arrivals)} clients missed revision {target[0]} within 10 s")
    samples += [max(0.0, (t - answered) * 1e3) for t in arrivals.values()]
    time.sleep(0.5)

samples.sort()
q = lambda p: samples[round((len(samples) - 1) * p)]
print(
    f"RESULT language=python has_feature_ns={has_feature:.2f} verify_us={verify_ns / 1e3:.1f} clients={N} "
    f"rounds={ROUNDS} p50_ms={q(0.5):.2f} p99_ms={q(0.99):.2f} max_ms={samples[-1]:.2f}",
    flush=True,
)
for c in clients:
    c.close()
