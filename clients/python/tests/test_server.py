"""The Python client against a real `tessera server` process (the binary
in $TESSERA_BIN): issue, validate, an extension seen on refresh, revoke,
the authority stopped with the verdict kept, a restart from disk offline,
and the seed bug — the same token entered again re-checks."""

import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest

from tessera_client import Client, ClientError, ProtocolError, QuotaError

BIN = os.environ.get("TESSERA_BIN")
pytestmark = pytest.mark.skipif(not BIN, reason="set TESSERA_BIN to the tessera binary")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, data, port):
        self.proc = subprocess.Popen(
            [BIN, "server", "--listen", f"127.0.0.1:{port}", "--data-dir", data],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.public_key = None
        for line in self.proc.stdout:
            if "public key:" in line:
                self.public_key = line.split("public key:")[1].strip()
            if line.startswith("listening on "):
                self.url = line[len("listening on "):].strip()
                break
        with open(os.path.join(data, "admin.key")) as f:
            self.admin_key = f.read().strip()

    def admin(self, path, body):
        req = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.admin_key}"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=10) as res:
            return json.loads(res.read())

    def get(self, path):
        req = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {self.admin_key}"})
        with urllib.request.urlopen(req, timeout=10) as res:
            return json.loads(res.read())

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=20)


@pytest.fixture
def servers():
    """Every server started, stopped whatever the test's outcome."""
    started = []
    yield started
    for server in started:
        if server.proc.poll() is None:
            server.stop()


def test_the_client_against_a_real_authority(servers):
    work = tempfile.mkdtemp()
    data, state = os.path.join(work, "data"), os.path.join(work, "state")
    port = free_port()
    server = Server(data, port)
    servers.append(server)
    issued = server.admin("/v1/admin/licenses", {"customer": "Acme", "plan": "p", "duration": "2d", "features": ["sso"]})
    lic, token = issued["license"]["id"], issued["token"]

    client = Client(servers=[server.url], public_keys=[server.public_key], state_dir=state).start()
    assert client.verdict.state == "unverified"
    typo = token[:-1] + ("A" if token[-1] != "A" else "B")
    with pytest.raises(ProtocolError):
        client.activate(typo)
    v = client.activate(token)
    assert v.state == "valid" and client.has_feature("sso") and v.revision == 1
    assert v.plan == "p" and v.customer == "Acme" and v.days_left == 2 and v.expires_at > time.time()
    assert oct(os.stat(os.path.join(state, "tessera-state.json")).st_mode & 0o777) == "0o600"

    # An extension arrives on the change stream, with no request.
    deadline = time.time() + 5
    while not client.connected and time.time() < deadline:
        time.sleep(0.02)
    assert client.connected, "the stream is open"
    seen = []
    client.add_listener(seen.append)
    server.admin(f"/v1/admin/licenses/{lic}/extend", {"by": "30d"})
    pushed_at = time.time()
    while client.verdict.revision != 2 and time.time() < pushed_at + 5:
        time.sleep(0.005)
    took = time.time() - pushed_at
    assert client.verdict.revision == 2 and took < 1.0, f"seen after {took:.3f} s"
    # The verdict is published, then the listeners are called: wait for them.
    deadline = time.time() + 1
    while not (seen and seen[-1].revision == 2) and time.time() < deadline:
        time.sleep(0.005)
    assert seen and seen[-1].revision == 2
    # The held revision is acknowledged: the fleet view shows it.
    deadline = time.time() + 5
    held = None
    while time.time() < deadline:
        items = server.get(f"/v1/admin/licenses/{lic}/instances")["instances"]
        held = items[0].get("held_revision") if items else None
        if held == 2:
            break
        time.sleep(0.1)
    assert held == 2, items
    assert client.refresh().revision == 2

    # The authority goes away: the verdict stays, the error is reported.
    server.stop()
    with pytest.raises(ClientError):
        client.refresh()
    assert client.verdict.state == "valid" and client.status.last_error.kind == "network"
    client.close()

    # A restart from disk, offline: valid at once, no request needed.
    again = Client(servers=[server.url], public_keys=[server.public_key], state_dir=state).start()
    assert again.verdict.state == "valid" and again.verdict.revision == 2
    again.close()

    # The authority is back; the license is revoked; the same token entered
    # again re-checks at once (the seed bug).
    server = Server(data, port)
    servers.append(server)
    server.admin(f"/v1/admin/licenses/{lic}/revoke", {"reason": "test"})
    client = Client(servers=[server.url], public_keys=[server.public_key], state_dir=state).start()
    assert client.verdict.state == "valid", "from disk until asked"
    assert client.activate(token).state == "revoked"
    assert not client.has_feature("sso")
    client.close()
    server.stop()


def test_machines_usage_and_offline_files_against_a_real_authority(servers):
    work = tempfile.mkdtemp()
    data = os.path.join(work, "data")
    server = Server(data, free_port())
    servers.append(server)
    issued = server.admin(
        "/v1/admin/licenses",
        {"customer": "Acme", "plan": "p", "duration": "30d", "features": ["sso"], "max_machines": 1},
    )
    lic, token = issued["license"]["id"], issued["token"]

    def client(name, fingerprint):
        return Client(
            servers=[server.url],
            public_keys=[server.public_key],
            state_dir=os.path.join(work, name),
            fingerprint=fingerprint,
        ).start()

    # The first machine takes the one place by itself; the second is refused.
    first = client("first", "host-1")
    assert first.activate(token).state == "valid"
    second = client("second", "host-2")
    v = second.activate(token)
    assert v.state == "too_many_machines" and not second.has_feature("sso"), v
    assert server.get(f"/v1/admin/licenses/{lic}/machines")["active"] == 1

    # The first gives its place back: the second, told on its stream, takes
    # it without being asked.
    deadline = time.time() + 5
    while not second.connected and time.time() < deadline:
        time.sleep(0.02)
    assert first.deactivate().state == "not_activated"
    deadline = time.time() + 10
    while second.verdict.state != "valid" and time.time() < deadline:
        time.sleep(0.02)
    assert second.verdict.state == "valid", second.verdict
    assert first.refresh().state == "not_activated", "a released machine stays released"
    first.close()

    # Usage: the user count reaches the fleet view.
    second.set_users(7)
    deadline = time.time() + 10
    users = None
    while time.time() < deadline:
        items = server.get(f"/v1/admin/licenses/{lic}/instances")["instances"]
        users = [i.get("users") for i in items if i["instance_id"] == second._instance_id]
        if users == [7]:
            break
        time.sleep(0.1)
    assert users == [7]
    second.close()

    # An offline file from `tessera license export`, with no authority.
    plain = server.admin("/v1/admin/licenses", {"customer": "Site", "plan": "p", "duration": "30d", "features": ["sso"]})
    export = os.path.join(work, "license.json")
    with open(export, "w") as f:
        json.dump(server.admin(f"/v1/admin/licenses/{plain['license']['id']}/export", {"ttl": "365d"}), f)
    server.stop()
    offline = Client(
        servers=[],
        public_keys=[server.public_key],
        token=plain["token"],
        state_dir=os.path.join(work, "offline"),
        offline_file=export,
    ).start()
    assert offline.verdict.state == "valid" and offline.has_feature("sso")
    offline.close()


def test_metered_quotas_against_a_real_authority(servers):
    work = tempfile.mkdtemp()
    server = Server(os.path.join(work, "data"), free_port())
    servers.append(server)
    issued = server.admin(
        "/v1/admin/licenses",
        {"customer": "Acme", "plan": "p", "duration": "30d", "features": ["sso", "api_calls=100/month"]},
    )
    lic, token = issued["license"]["id"], issued["token"]
    client = Client(servers=[server.url], public_keys=[server.public_key], state_dir=os.path.join(work, "a")).start()
    client.activate(token)
    assert client.quotas() == {"api_calls": (100, 0)}
    assert client.consume("api_calls", 60) == 40
    assert client.remaining("api_calls") == 40 and client.quotas() == {"api_calls": (100, 60)}
    with pytest.raises(QuotaError) as e:
        client.consume("api_calls", 41)
    assert e.value.code == "quota_exhausted" and e.value.remaining == 40
    for feature, code in (("sso", "unknown_quota"), ("nope", "not_granted")):
        with pytest.raises(QuotaError) as e:
            client.consume(feature, 1)
        assert e.value.code == code
    with pytest.raises(QuotaError):
        client.consume("api_calls", 2**53 + 1)

    client.flush_consumption()
    assert server.get(f"/v1/admin/licenses/{lic}/quotas/api_calls")["quota"]["used"] == 60
    client.flush_consumption()  # nothing pending: nothing sent, nothing counted twice
    assert server.get(f"/v1/admin/licenses/{lic}/quotas/api_calls")["quota"]["used"] == 60

    # Another instance uses the rest: the blocking point makes a new
    # revision, pushed to this client's stream, and its consume refuses.
    other = Client(servers=[server.url], public_keys=[server.public_key], state_dir=os.path.join(work, "b"), watch=False).start()
    other.activate(token)
    assert other.consume("api_calls", 40) == 0
    other.flush_consumption()
    other.close()
    deadline = time.time() + 10
    while client.verdict.revision == 1 and time.time() < deadline:
        time.sleep(0.02)
    assert client.verdict.revision == 2
    with pytest.raises(QuotaError) as e:
        client.consume("api_calls", 1)
    assert e.value.code == "quota_exhausted"
    assert client.remaining("api_calls") == 0
    client.close()


def test_products_and_imported_keys_against_a_real_authority(servers):
    """A client configured for a product refuses another's license, online
    and from an offline file (wrong_product, §28); a key imported from
    another system validates as it is (§30)."""
    work = tempfile.mkdtemp()
    server = Server(os.path.join(work, "data"), free_port())
    servers.append(server)
    server.admin("/v1/admin/products", {"name": "metabase-ee"})
    issued = server.admin(
        "/v1/admin/licenses",
        {"customer": "Acme", "plan": "p", "duration": "30d", "features": ["sso"], "product": "metabase-ee"},
    )
    token = issued["token"]

    def client(name, product, **extra):
        return Client(
            servers=[server.url],
            public_keys=[server.public_key],
            state_dir=os.path.join(work, name),
            product=product,
            watch=False,
            **extra,
        ).start()

    right = client("right", "metabase-ee")
    assert right.activate(token).state == "valid" and right.has_feature("sso")
    right.close()
    wrong = client("wrong", "metabase")
    with pytest.raises(ClientError) as e:
        wrong.activate(token)
    assert "metabase-ee" in str(e.value), e.value
    assert not wrong.has_feature("sso")
    wrong.close()

    export = os.path.join(work, "license.json")
    with open(export, "w") as f:
        json.dump(server.admin(f"/v1/admin/licenses/{issued['license']['id']}/export", {"ttl": "30d"}), f)
    offline = Client(
        servers=[],
        public_keys=[server.public_key],
        token=token,
        state_dir=os.path.join(work, "offline"),
        offline_file=export,
        product="metabase",
    )
    with pytest.raises((ClientError, ProtocolError)) as e:
        offline.start()
    assert "metabase-ee" in str(e.value), e.value
    assert not offline.has_feature("sso")

    # A key from another system, imported as it is, validates as it is.
    server.admin(
        "/v1/admin/licenses/import",
        {"import": "py-test", "first_row": 1, "next_row": 2,
         "rows": [{"row": 1, "key": "KEYGEN-STYLE-KEY-0001", "customer": "Initech", "plan": "p", "features": ["sso"]}]},
    )
    imported = client("imported", None)
    assert imported.activate("KEYGEN-STYLE-KEY-0001").state == "valid"
    assert imported.has_feature("sso")
    imported.close()
