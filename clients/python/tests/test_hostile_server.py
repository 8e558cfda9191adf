"""The hostile-server cases (docs/PROTOCOL.md §11, §13), each against a fake
authority in this process: every one refused with a clear error and the
held state — verdict and state file — unchanged; and the offline file of
`tessera license export`.

The fake authority signs real documents (with a test key) for the control
cases, so each test shows the client working before the attack and, where
it matters, after it."""

import json
import os
import socket
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tessera_client import Client, ClientError, ProtocolError
from tessera_client.client import MAX_BACKOFF, backoff
from tessera_client.protocol import LicenseToken, format_time, sign_for_tests

SEED = bytes(range(32))
TOKEN = "tsr_Vut8janx99JGSaeqiffOjZFoB0Wt5J0SXF0h"
TFP = LicenseToken(TOKEN).fingerprint()


def document(rev, nonce=None, now=None, extra=None):
    now = int(now or time.time())
    claims = {
        "lic": "lic_hostile",
        "tfp": TFP,
        "status": "active",
        "valid": True,
        "plan": "p",
        "features": ["sso"],
        "rev": rev,
        "iat": format_time(now),
        "refresh_after": format_time(now + 3600),
        "exp": format_time(now + 7 * 86400),
        "expires_at": format_time(now + 30 * 86400),
    }
    if nonce:
        claims["nonce"] = nonce
    claims.update(extra or {})
    return sign_for_tests(claims, SEED)


PUBLIC_KEY = document(1)[1]


class Fake:
    """A fake authority; `mode` says how it answers."""

    def __init__(self):
        self.mode = "ok"
        self.rev = 1
        self.sent = 0
        self.acks = 0
        self.stream_closed = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _json(self, status, body, headers=()):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/v1/instances/ack":
                    fake.acks += 1
                if self.path != "/v1/validate":
                    self.send_response(204)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                mode = fake.mode
                if mode in ("ok", "keepalive"):
                    doc = document(fake.rev, body.get("nonce"))[0]
                    self._json(200, {"document": doc}, [("ETag", f'"{fake.rev}-1"')])
                elif mode == "big":
                    self._json(200, {"document": "v4.public." + "A" * 70_000})
                elif mode == "retry":
                    self._json(503, {"error": {"code": "busy", "message": "busy"}}, [("Retry-After", "99999999999")])
                elif mode == "304":
                    self.send_response(304)
                    self.send_header("ETag", f'"{fake.rev}-1"')
                    self.end_headers()
                elif mode == "down":
                    self._json(500, {"error": {"code": "internal", "message": "down"}})
                elif mode == "huge_error":
                    self.send_response(500)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(400 << 20))
                    self.end_headers()
                    chunk = b"<p>" * 21845
                    try:
                        while fake.sent < 400 << 20:
                            self.wfile.write(chunk)
                            fake.sent += len(chunk)
                    except OSError:
                        pass
                    self.close_connection = True

            def do_GET(self):
                if self.path != "/v1/watch":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                self.close_connection = True
                try:
                    if fake.mode == "garbage":
                        # 64 MiB with no line end: the client must hang up
                        # long before (socket buffers hold a few MiB).
                        for _ in range(1024):
                            self.wfile.write(os.urandom(65536).replace(b"\n", b"x").replace(b"\r", b"x"))
                            fake.sent += 65536
                    elif fake.mode == "junk_events":
                        self.wfile.write(b"event: status\ndata: v4.public.bm90IGEgZG9jdW1lbnQ\n\n")
                        self.wfile.write(b"\xff\xfe\x00garbage\n\nid: x\nretry: -1\n\n")
                        self.wfile.flush()
                        time.sleep(1)
                    elif fake.mode == "keepalive":
                        for _ in range(50):
                            self.wfile.write(b":\n\n")
                            self.wfile.flush()
                            time.sleep(0.1)
                    elif fake.mode == "newer":
                        doc = document(fake.rev)[0]
                        self.wfile.write(f"event: status\nid: {fake.rev}\ndata: {doc}\n\n".encode())
                        self.wfile.flush()
                        time.sleep(5)
                    else:
                        time.sleep(1)
                except OSError:
                    fake.stream_closed.set()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake():
    f = Fake()
    yield f
    f.close()


def activated(fake, watch=False):
    state = tempfile.mkdtemp()
    client = Client(servers=[fake.url], public_keys=[PUBLIC_KEY], state_dir=state, watch=watch, tick=3600).start()
    v = client.activate(TOKEN)
    assert v.state == "valid" and v.revision == 1
    return client, os.path.join(state, "tessera-state.json")


def unchanged(client, path, before):
    assert client.verdict.state == "valid" and client.verdict.revision == 1
    with open(path, "rb") as f:
        assert f.read() == before, "the state file changed"


def read(path):
    with open(path, "rb") as f:
        return f.read()


def test_an_answer_over_64_kib_is_refused(fake):
    client, path = activated(fake)
    before = read(path)
    fake.mode = "big"
    with pytest.raises(ClientError) as e:
        client.refresh()
    assert e.value.kind == "invalid_answer" and "64 KiB" in str(e.value)
    unchanged(client, path, before)
    client.close()


def test_a_retry_after_in_the_billions_is_capped(fake):
    client, path = activated(fake)
    before = read(path)
    fake.mode = "retry"
    with pytest.raises(ClientError) as e:
        client.refresh()
    assert e.value.kind == "http_status" and "503" in str(e.value)
    assert e.value.retry_after == MAX_BACKOFF == 300
    assert backoff(1, e.value) == 300
    unchanged(client, path, before)
    # The client lives on: the authority answering again is taken.
    fake.mode, fake.rev = "ok", 2
    assert client.refresh().revision == 2
    client.close()


def test_an_unsigned_304_is_not_contact(fake):
    client, path = activated(fake)
    before = read(path)
    verified_at = client.status.last_verified_at
    # All well: a poll with If-None-Match answered 304 proves nothing.
    fake.mode = "304"
    time.sleep(1.1)
    client._round_trip(client._holder.token, nonce=False)
    assert client.status.last_verified_at == verified_at
    # Offline: the client asks with a nonce; a 304 to that is an error.
    fake.mode = "down"
    with pytest.raises(ClientError):
        client.refresh()
    offline_since = client.status.offline_since
    assert offline_since is not None
    fake.mode = "304"
    with pytest.raises(ClientError) as e:
        client.refresh()
    assert e.value.kind == "invalid_answer" and "304" in str(e.value)
    assert client.status.offline_since == offline_since
    assert client.status.last_verified_at == verified_at
    unchanged(client, path, before)
    client.close()


def test_error_bodies_of_any_size_are_cut_off(fake):
    client, path = activated(fake)
    before = read(path)
    fake.mode = "huge_error"
    started = time.time()
    with pytest.raises(ClientError) as e:
        client.refresh()
    took = time.time() - started
    assert e.value.kind == "http_status" and "500" in str(e.value)
    assert took < 10, f"{took:.1f} s"
    time.sleep(0.5)
    assert fake.sent < 32 << 20, f"{fake.sent} bytes of a 400 MiB error page went out"
    unchanged(client, path, before)
    client.close()


def test_a_stream_of_garbage_changes_nothing(fake):
    client, path = activated(fake, watch=True)
    before = read(path)
    fake.mode = "garbage"
    assert fake.stream_closed.wait(15), "the client read on past 64 KiB without a line end"
    assert fake.sent < 64 << 20, "all 64 MiB were read"
    fake.mode = "junk_events"
    deadline = time.time() + 15
    while (client.status.last_error is None or client.status.last_error.kind != "verification") and time.time() < deadline:
        time.sleep(0.05)
    assert client.status.last_error.kind == "verification", client.status
    unchanged(client, path, before)
    # The control: the same stream delivering a real newer document.
    fake.mode, fake.rev = "newer", 2
    deadline = time.time() + 15
    while client.verdict.revision != 2 and time.time() < deadline:
        time.sleep(0.05)
    assert client.verdict.revision == 2
    # Written after the verdict is published: wait for it.
    deadline = time.time() + 5
    while read(path) == before and time.time() < deadline:
        time.sleep(0.02)
    assert read(path) != before
    client.close()


def test_an_offline_file_is_taken_by_the_rules(fake):
    work = tempfile.mkdtemp()
    export = os.path.join(work, "license.json")
    with open(export, "w") as f:
        json.dump({"format": "tessera-license-export/1", "license": "lic_hostile", "document": document(3)[0]}, f)
    client = Client(servers=[], public_keys=[PUBLIC_KEY], token=TOKEN, state_dir=work, offline_file=export).start()
    assert client.verdict.state == "valid" and client.verdict.revision == 3 and client.has_feature("sso")
    # An older file is ignored; a forged one refused; nothing changes.
    before = read(os.path.join(work, "tessera-state.json"))
    assert client.import_offline(document(2)[0].encode()).revision == 3
    forged = document(4)[0]
    forged = forged[:60] + ("A" if forged[60] != "A" else "B") + forged[61:]
    with pytest.raises(ProtocolError):
        client.import_offline(forged.encode())
    with pytest.raises(ProtocolError):
        client.import_offline(b"{" + b" " * 70_000 + b"}")
    assert read(os.path.join(work, "tessera-state.json")) == before
    # A renewal by file, without a restart; and a restart from disk.
    assert client.import_offline(document(4)[0].encode()).revision == 4
    client.close()
    again = Client(servers=[], public_keys=[PUBLIC_KEY], state_dir=work).start()
    assert again.verdict.revision == 4
    again.close()


def test_the_fingerprint_is_per_license_and_bound(fake):
    client, path = activated(fake)
    fp = client.fingerprint()
    assert len(fp) == 32 and fp == client.fingerprint()
    other = Client(servers=[], public_keys=[PUBLIC_KEY], fingerprint="host-7")
    assert other.fingerprint(LicenseToken(TOKEN)) == "host-7"
    # A document bound to another machine is refused.
    from tessera_client.protocol import fingerprint_hash, verify

    doc = document(2, extra={"mfp": fingerprint_hash("someone-else")})[0]
    with pytest.raises(ProtocolError) as e:
        verify(doc.encode(), client.keys, TFP, int(time.time()), machine=fingerprint_hash(fp))
    assert e.value.code == "fingerprint_mismatch"
    client.close()


def test_the_verdict_changes_at_its_deadline_with_no_request(fake):
    """The license ends between two polls (the next an hour away): the
    verdict says so on time, by the clock alone."""
    state = tempfile.mkdtemp()
    now = int(time.time())
    ends = format_time(now + 2)
    fake_doc = document(1, extra={"expires_at": ends})[0]
    path = os.path.join(state, "license.paseto")
    with open(path, "w") as f:
        f.write(fake_doc)
    client = Client(
        servers=[fake.url], public_keys=[PUBLIC_KEY], token=TOKEN, state_dir=state, offline_file=path, watch=False, tick=3600
    ).start()
    assert client.verdict.state == "valid"
    fake.mode = "down"
    deadline = time.time() + 6
    while client.verdict.state == "valid" and time.time() < deadline:
        time.sleep(0.02)
    assert client.verdict.state == "expired"
    assert time.time() - (now + 2) < 1.5
    client.close()


def test_a_machine_bound_offline_response_is_refused(fake):
    """Offline activation responses answer a request's nonce: this client
    makes no requests, so it takes none — not even one bound to its own
    machine (it could be another request's)."""
    from tessera_client.protocol import fingerprint_hash

    work = tempfile.mkdtemp()
    client = Client(servers=[], public_keys=[PUBLIC_KEY], token=TOKEN, state_dir=work, fingerprint="vault-1").start()
    bound = document(3, nonce="00112233445566778899", extra={"mfp": fingerprint_hash("vault-1")})[0]
    with pytest.raises(ProtocolError) as e:
        client.import_offline(bound.encode())
    assert e.value.code == "nonce_mismatch"
    other = document(3, extra={"mfp": fingerprint_hash("vault-2")})[0]
    with pytest.raises(ProtocolError) as e:
        client.import_offline(other.encode())
    assert e.value.code == "fingerprint_mismatch"
    assert client.verdict.state == "unverified"
    assert client.import_offline(document(3)[0].encode()).revision == 3, "an export is taken"
    client.close()


def test_the_held_revision_is_acknowledged_again_on_an_open_stream(fake):
    """§12: besides after each document and on every (re)connect, the held
    revision is acknowledged again every `ack_interval` (5 minutes by
    default) while the stream is open, so a lost ack heals by itself."""
    fake.mode = "keepalive"
    client = Client(
        servers=[fake.url], public_keys=[PUBLIC_KEY], state_dir=tempfile.mkdtemp(), tick=3600, ack_interval=0.3
    ).start()
    client.activate(TOKEN)
    deadline = time.time() + 10
    while not client.connected and time.time() < deadline:
        time.sleep(0.02)
    assert client.connected
    before = fake.acks
    time.sleep(2.0)
    assert fake.acks - before >= 3, f"{fake.acks - before} acks in 2 s"
    client.close()
