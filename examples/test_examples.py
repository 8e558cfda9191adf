"""The examples, each driven through the Metabase scenario against a real
`tessera server` ($TESSERA_BIN): the license expires and the running app
locks the premium report by itself; the vendor renews it and the app shows
it within a second (pushed, no request); re-entering the same token
re-checks at the authority (the seed bug, in every language).

Run by scripts/test (`pytest examples/`); the Java example needs the jar of
`bash clients/java/build.sh` ($TESSERA_JAVA_JAR, default
clients/java/build/tessera-client.jar)."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("TESSERA_BIN")
JAR = os.environ.get("TESSERA_JAVA_JAR", os.path.join(ROOT, "clients/java/build/tessera-client.jar"))
pytestmark = pytest.mark.skipif(not BIN, reason="set TESSERA_BIN to the tessera binary")

APPS = {
    "java": lambda: ["java", "-cp", JAR, os.path.join(ROOT, "examples/java/PremiumApp.java")],
    "python": lambda: [sys.executable, os.path.join(ROOT, "examples/python/premium_app.py")],
    "node": lambda: ["node", os.path.join(ROOT, "examples/node/premium-app.mjs")],
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def started(cmd, marker, env=None):
    """A process and the first stdout line holding `marker`; the rest of
    its output is drained so it never blocks."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if marker in line:
            break
    else:
        raise AssertionError(f"{cmd[0]} exited: {''.join(lines)}")
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    return proc, line, lines


def call(url, body=None, key=None):
    headers = {"Content-Type": "application/json" if key else "application/x-www-form-urlencoded"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = None if body is None else (json.dumps(body) if key else body).encode()
    req = urllib.request.Request(url, data=data, headers=headers, method="POST" if data is not None else "GET")
    with urllib.request.urlopen(req, timeout=20) as res:
        return json.loads(res.read())


def until(pred, seconds):
    end = time.time() + seconds
    while time.time() < end:
        value = pred()
        if value:
            return value
        time.sleep(0.02)
    return pred()


@pytest.fixture
def procs():
    running = []
    yield running
    for p in running:
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()


@pytest.mark.parametrize("language", sorted(APPS))
def test_the_metabase_scenario(language, procs):
    if language == "java" and not os.path.exists(JAR):
        pytest.skip(f"no {JAR}: run bash clients/java/build.sh")
    if shutil.which({"java": "java", "python": sys.executable, "node": "node"}[language]) is None:
        pytest.skip(f"{language} is not installed")
    work = tempfile.mkdtemp()
    data = os.path.join(work, "data")
    server, line, lines = started([BIN, "server", "--listen", f"127.0.0.1:{free_port()}", "--data-dir", data], "listening on ")
    procs.append(server)
    url = line[len("listening on "):].strip()
    public_key = next(l.split("public key:")[1].strip() for l in lines if "public key:" in l)
    with open(os.path.join(data, "admin.key")) as f:
        admin = f.read().strip()
    issued = call(f"{url}/v1/admin/licenses", {"customer": "Acme", "plan": "p", "duration": "4s", "features": ["premium"]}, admin)
    lic, token = issued["license"]["id"], issued["token"]
    expires_at = time.time() + 4

    env = dict(os.environ, TESSERA_SERVER=url, TESSERA_PUBLIC_KEY=public_key, TESSERA_TOKEN=token,
               TESSERA_STATE_DIR=os.path.join(work, "state"), PORT="0")
    app, line, _ = started(APPS[language](), "premium app on ", env)
    procs.append(app)
    base = line.split("premium app on ")[1].strip().rstrip("/")
    status = lambda: call(f"{base}/status")

    # Valid, the premium report unlocked, checked in the background.
    assert until(lambda: status()["premium"], 10), status()
    page = urllib.request.urlopen(base + "/", timeout=10).read().decode()
    assert "Revenue by region" in page

    # The license expires: the app locks the report by itself.
    assert until(lambda: status()["state"] == "expired", 10), status()
    late = time.time() - expires_at
    assert late < 2.5, f"{late:.2f} s after the end"
    assert not status()["premium"]
    assert "Locked" in urllib.request.urlopen(base + "/", timeout=10).read().decode()

    # Renewed at the authority: on screen within a second, no request.
    call(f"{url}/v1/admin/licenses/{lic}/extend", {"by": "30d"}, admin)
    renewed = time.time()
    assert until(lambda: status()["state"] == "valid", 5), status()
    took = time.time() - renewed
    assert took < 1.0, f"renewal seen after {took:.3f} s"
    assert status()["premium"] and status()["revision"] == 2

    # Re-entering the same token is a real round trip, never a cached answer.
    before = status()["last_verified_at"]
    time.sleep(1.1)
    again = call(f"{base}/activate", f"token={token}")
    assert again["state"] == "valid" and again["last_verified_at"] > before, again
    # And while the authority is down it says so, keeping the verdict.
    server.terminate()
    server.wait(timeout=20)
    with pytest.raises(urllib.error.HTTPError) as e:
        call(f"{base}/activate", f"token={token}")
    assert e.value.code == 422
    assert status()["state"] == "valid"
