"""The client a product embeds: the held state of `verdict.Holder`, kept on
disk and refreshed from the authority (docs/PROTOCOL.md §7–9, §13–14).

- ``Client(...).start()`` never waits for the network: the disk state is
  loaded (and verified again) and its verdict published at once; a
  background thread asks the authority at ``refresh_after`` (with
  ``If-None-Match``), and after a failure with backoff.
- ``verdict`` / ``has_feature`` read one attribute: no lock, no I/O.
- ``refresh()`` and ``activate(token)`` are real round trips with a fresh
  nonce; a mistyped token is refused by its checksum before anything is
  sent.
- Only verified documents change anything; network errors, 5xx, proxy
  pages are recorded as ``last_error`` and the verdict stays.
- The state file is written atomically (temporary file, fsync, rename,
  fsync of the directory) with mode 0600.

- ``watch=True`` (the default) keeps the change stream (``/v1/watch``)
  open in a thread: each pushed document is verified and applied at once,
  the held revision is acknowledged (``/v1/instances/ack``) after each and
  on every (re)connect; it reconnects with backoff and jitter and
  ``Last-Event-ID``, and polling goes on while it is down.

Not built yet: usage, machines and quotas."""

from __future__ import annotations

import json
import os
import random
import secrets
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Callable, List, Optional

from .protocol import LicenseToken, ProtocolError, TrustedKeys, format_time, parse_time, verify
from .verdict import Holder, Verdict

STATE_FILE = "tessera-state.json"
STATE_FORMAT = "tessera-client-state/1"
MAX_ANSWER_BYTES = 64 * 1024
MAX_BACKOFF = 300.0


class ClientError(Exception):
    """Why a round trip failed; ``kind`` as the Rust SDK's ``last_error``."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class LastError:
    kind: str
    message: str
    at: int


@dataclass(frozen=True)
class Status:
    """The verdict and what the client knows of its contact."""

    verdict: Verdict
    last_verified_at: Optional[int]
    offline_since: Optional[int]
    last_error: Optional[LastError]


class Client:
    def __init__(
        self,
        *,
        servers: List[str],
        public_keys: List[str],
        token: Optional[str] = None,
        state_dir: Optional[str] = None,
        clock: Callable[[], float] = time.time,
        timeout: float = 15.0,
        tick: float = 30.0,
        watch: bool = True,
        stream_read_timeout: float = 37.5,
    ):
        if not public_keys:
            raise ValueError("pin at least one public key")
        self.servers = [s.rstrip("/") for s in servers]
        self.keys = TrustedKeys()
        for k in public_keys:
            self.keys.pin(k)
        self.state_dir = state_dir
        self.clock = clock
        self.timeout = timeout
        self.tick = tick
        self._configured = LicenseToken(token) if token else None
        self._lock = threading.Lock()  # state changes only; readers never take it
        self._holder: Optional[Holder] = None
        self._instance_id = "py-" + secrets.token_hex(8)
        self._listeners: List[Callable[[Verdict], None]] = []
        self._status = Status(Verdict("unverified", "no_document"), None, None, None)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._etag: Optional[str] = None
        self._watch = watch
        self._stream_read_timeout = stream_read_timeout
        self._watch_thread: Optional[threading.Thread] = None
        self.connected = False

    # ----- reading: no lock, no I/O -------------------------------------

    @property
    def verdict(self) -> Verdict:
        return self._status.verdict

    @property
    def status(self) -> Status:
        return self._status

    def has_feature(self, name: str) -> bool:
        return self._status.verdict.has_feature(name)

    def is_valid(self) -> bool:
        return self._status.verdict.is_valid

    def add_listener(self, fn: Callable[[Verdict], None]) -> None:
        """``fn(verdict)`` after every change of the verdict."""
        self._listeners.append(fn)

    # ----- life ----------------------------------------------------------

    def start(self) -> "Client":
        """Load the disk state and publish its verdict, then refresh in the
        background. Never waits for the network."""
        with self._lock:
            self._load()
            self._publish()
        self._thread = threading.Thread(target=self._run, name="tessera-refresh", daemon=True)
        self._thread.start()
        if self._watch and self.servers:
            self._watch_thread = threading.Thread(target=self._watch_loop, name="tessera-watch", daemon=True)
            self._watch_thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _now(self) -> int:
        return int(self.clock())

    # ----- disk state ----------------------------------------------------

    def _path(self) -> Optional[str]:
        return os.path.join(self.state_dir, STATE_FILE) if self.state_dir else None

    def _load(self) -> None:
        token = self._configured
        document, mark = None, None
        path = self._path()
        if path and os.path.exists(path):
            try:
                with open(path, "rb") as f:
                    data = f.read(MAX_ANSWER_BYTES + 1)
                state = json.loads(data)
                if state.get("format") != STATE_FORMAT:
                    raise ValueError("unknown format")
                self._instance_id = state.get("instance_id") or self._instance_id
                stored = LicenseToken(state["token"]) if state.get("token") else None
                # A token changed in the configuration wins over the stored one.
                if token is None or (stored is not None and state.get("configured") == token.fingerprint()):
                    token = stored or token
                    document = state.get("document")
                    mark = parse_time(state["high_water_mark"]) if state.get("high_water_mark") else None
            except (OSError, ValueError, KeyError, ProtocolError) as e:
                self._record_error("storage", f"ignoring unreadable license state: {e}")
        if token is None:
            return
        holder = Holder(keys=self.keys, token=token)
        try:
            holder.load(document, mark)
        except ProtocolError as e:
            # A state file edited by hand proves nothing.
            self._record_error("verification", f"the stored document was rejected: {e}")
            holder.load(None, mark)
        self._holder = holder

    def _store(self, holder: Holder) -> None:
        path = self._path()
        if not path:
            return
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        state = {
            "format": STATE_FORMAT,
            "instance_id": self._instance_id,
            "token": holder.token.secret(),
            "configured": self._configured.fingerprint() if self._configured else None,
            "document": holder.document_text,
            "high_water_mark": format_time(holder.mark) if holder.mark is not None else None,
        }
        tmp = f"{path}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, json.dumps(state).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dirfd = os.open(self.state_dir, os.O_RDONLY)
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)

    # ----- publishing ------------------------------------------------------

    def _publish(self) -> Verdict:
        now = self._now()
        verdict = self._holder.verdict(now) if self._holder else Verdict("unverified", "no_document")
        old = self._status
        self._status = Status(verdict, old.last_verified_at, old.offline_since, old.last_error)
        if verdict != old.verdict:
            for fn in list(self._listeners):
                try:
                    fn(verdict)
                except Exception:  # a listener's failure is its own
                    pass
        return verdict

    def _record_error(self, kind: str, message: str) -> None:
        old = self._status
        now = self._now()
        self._status = Status(old.verdict, old.last_verified_at, old.offline_since or now, LastError(kind, message, now))

    def _record_contact(self) -> None:
        old = self._status
        self._status = Status(old.verdict, self._now(), None, None)

    # ----- round trips -----------------------------------------------------

    def refresh(self) -> Verdict:
        """Ask the authority now, with a fresh nonce."""
        holder = self._holder
        if holder is None:
            raise ClientError("no_token", "no license token: activate one first")
        return self._round_trip(holder.token, nonce=True)

    def activate(self, token: str) -> Verdict:
        """Use ``token`` (a new one, or the same one again): its checksum is
        checked first — a typo fails without any request — then a round
        trip; on success the token and its document are kept."""
        parsed = LicenseToken(token)
        return self._round_trip(parsed, nonce=True, activating=True)

    def _round_trip(self, token: LicenseToken, *, nonce: bool, activating: bool = False) -> Verdict:
        n = secrets.token_urlsafe(16) if nonce else None
        body = {"token": token.secret(), "instance_id": self._instance_id}
        if n:
            body["nonce"] = n
        headers = {"Content-Type": "application/json"}
        if not nonce and self._etag:
            headers["If-None-Match"] = self._etag
        last: Optional[ClientError] = None
        for server in self.servers:
            try:
                status, data, etag = self._post(server + "/v1/validate", body, headers)
            except ClientError as e:
                last = e
                continue
            if status == 304:
                with self._lock:
                    self._record_contact()
                    return self._publish()
            try:
                document = json.loads(data)["document"]
                if not isinstance(document, str):
                    raise ValueError
            except (ValueError, KeyError, TypeError):
                last = ClientError("invalid_answer", "the answer is not a validation answer")
                continue
            with self._lock:
                holder = self._holder if (self._holder and self._holder.token.secret() == token.secret()) else None
                fresh = holder or Holder(keys=self.keys, token=token)
                if holder is None and self._holder is not None:
                    fresh.mark = self._holder.mark
                try:
                    claims = verify(
                        document.encode(), self.keys, token.fingerprint(), self._now(), nonce=n
                    )
                except ProtocolError as e:
                    self._record_error("verification", str(e))
                    raise ClientError("verification", str(e)) from None
                outcome = fresh.accept(claims, document, self._now(), rebase=n is not None)
                if outcome == "rolled_back":
                    self._record_error("rollback", "the document is older than the one held")
                    raise ClientError("rollback", "the document is older than the one held")
                self._holder = fresh
                self._etag = etag
                self._store(fresh)
                self._record_contact()
                return self._publish()
        with self._lock:
            err = last or ClientError("network", "no authority configured")
            self._record_error(err.kind, str(err))
        raise err

    def _post(self, url: str, body: dict, headers: dict):
        req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as res:
                data = res.read(MAX_ANSWER_BYTES + 1)
                if len(data) > MAX_ANSWER_BYTES:
                    raise ClientError("invalid_answer", "the answer is over 64 KiB")
                return res.status, data, res.headers.get("ETag")
        except urllib.error.HTTPError as e:
            if e.code == 304:
                return 304, b"", e.headers.get("ETag")
            data = e.read(MAX_ANSWER_BYTES)
            try:
                err = json.loads(data)["error"]
                message = f"{err['message']} ({err['code']})"
            except (ValueError, KeyError, TypeError):
                message = data[:200].decode("utf-8", "replace")
            raise ClientError("http_status", f"HTTP {e.code}: {message}") from None
        except (urllib.error.URLError, OSError) as e:
            raise ClientError("network", f"cannot reach the authority: {e}") from None

    # ----- the change stream ---------------------------------------------------

    def _ack(self, token: LicenseToken, revision: int) -> None:
        body = {"token": token.secret(), "instance_id": self._instance_id, "revision": revision}
        for server in self.servers:
            try:
                self._post(server + "/v1/instances/ack", body, {"Content-Type": "application/json"})
                return
            except ClientError:
                continue

    def _apply_pushed(self, token: LicenseToken, document: str) -> None:
        with self._lock:
            holder = self._holder
            if holder is None or holder.token.secret() != token.secret():
                return  # the token changed meanwhile
            try:
                claims = verify(document.encode(), self.keys, token.fingerprint(), self._now())
            except ProtocolError as e:
                self._record_error("verification", f"a pushed document was rejected: {e}")
                return
            # A push on this client's own stream re-bases the mark (§6).
            if holder.accept(claims, document, self._now(), rebase=True) == "rolled_back":
                return
            self._store(holder)
            self._record_contact()
            self._publish()
        self._ack(token, claims.rev)

    def _watch_loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            holder = self._holder
            if holder is None:
                self._stop.wait(1.0)
                continue
            token = holder.token
            server = self.servers[failures % len(self.servers)]
            headers = {
                "Authorization": f"Bearer {token.secret()}",
                "Accept": "text/event-stream",
                "Tessera-Instance": self._instance_id,
            }
            if holder.document is not None:
                headers["Last-Event-ID"] = str(holder.document.rev)
            try:
                req = urllib.request.Request(server + "/v1/watch", headers=headers)
                with urllib.request.urlopen(req, timeout=self._stream_read_timeout) as res:
                    self.connected = True
                    failures = 0
                    if holder.document is not None:
                        self._ack(token, holder.document.rev)
                    self._read_events(res, token)
            except (urllib.error.URLError, OSError, ValueError):
                pass
            self.connected = False
            failures += 1
            # Full jitter, 1 s … 5 min.
            self._stop.wait(random.uniform(0.5, min(MAX_BACKOFF, 2 ** min(failures, 8))))

    def _read_events(self, res, token: LicenseToken) -> None:
        event, data, size = "message", [], 0
        while not self._stop.is_set():
            line = res.readline(MAX_ANSWER_BYTES + 2)
            if not line:
                return  # the stream ended
            size += len(line)
            if size > MAX_ANSWER_BYTES or not line.endswith(b"\n"):
                return  # an event over 64 KiB: dropped with the connection
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            if text == "":
                if event == "status" and data:
                    self._apply_pushed(token, "\n".join(data))
                elif event == "machines":
                    self._wake.set()  # a place changed: the poll says what
                event, data, size = "message", [], 0
            elif text.startswith(":"):
                size = 0
            else:
                field, _, value = text.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "event":
                    event = value
                elif field == "data":
                    data.append(value)

    # ----- background -------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            with self._lock:
                self._publish()
            holder = self._holder
            wait = self.tick
            if holder is not None and holder.document is not None:
                due = holder.document.refresh_after - self._now()
                if due <= 0 or failures:
                    try:
                        self._round_trip(holder.token, nonce=self._status.last_error is not None)
                        failures = 0
                    except ClientError:
                        failures += 1
                        wait = min(MAX_BACKOFF, random.uniform(0, 2 ** min(failures, 8)))
                else:
                    wait = min(self.tick, due + random.uniform(0, min(30, due / 10 + 1)))
            elif holder is not None:
                try:
                    self._round_trip(holder.token, nonce=True)
                except ClientError:
                    failures += 1
                    wait = min(MAX_BACKOFF, random.uniform(0, 2 ** min(failures, 8)))
            self._wake.wait(wait)
            self._wake.clear()
