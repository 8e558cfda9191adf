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
- ``offline_file`` / ``import_offline``: a document from ``tessera license
  export`` (the JSON file, or the bare document), verified like any other
  and taken by the rollback rule.
- ``set_users(n)``: the product's user count, reported (``/v1/usage``) when
  it changes and every ``usage_interval``.
- Machines (§19): every request names this machine (``fingerprint``, or one
  derived from the host's machine id and the token); a license that counts
  machines gets a place by itself (``/v1/machines/activate``), and
  ``deactivate()`` gives it back.
- Metered quotas (§22): ``consume(feature, n)`` counts against the
  client's estimate of the period's use and refuses past the blocking
  point; what was consumed is reported (``/v1/consumption``) every
  ``consumption_interval`` and on ``flush_consumption()``, each report
  counted once.
- Every body read is at most 64 KiB; ``Retry-After`` is capped at 5
  minutes; a ``304`` is never proof of anything (§11, §13)."""

from __future__ import annotations

import json
import os
import platform
import random
import secrets
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Callable, List, Optional

from .protocol import (
    LicenseToken,
    ProtocolError,
    TrustedKeys,
    fingerprint_hash,
    format_time,
    machine_fingerprint,
    parse_time,
    verify,
)
from .meter import MAX_QUOTA, Meters, QuotaError
from .verdict import Holder, Verdict

STATE_FILE = "tessera-state.json"
STATE_FORMAT = "tessera-client-state/1"
MAX_ANSWER_BYTES = 64 * 1024
MAX_BACKOFF = 300.0
ACK_EVERY = 300.0


class ClientError(Exception):
    """Why a round trip failed; ``kind`` as the Rust SDK's ``last_error``;
    ``retry_after``: the wait the authority asked for, capped at 5 minutes."""

    def __init__(self, kind: str, message: str, retry_after: Optional[float] = None, status: Optional[int] = None):
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after
        self.status = status


def _retry_after(value: Optional[str]) -> Optional[float]:
    """`Retry-After` in seconds, capped at the longest backoff (a value in
    the billions must not park the client for years)."""
    try:
        return min(MAX_BACKOFF, max(0.0, float(int((value or "").strip()))))
    except ValueError:
        return None


def backoff(failures: int, error: Optional[ClientError] = None) -> float:
    """The wait before the next attempt: what the authority asked for
    (capped), else full jitter growing to 5 minutes."""
    if error is not None and error.retry_after is not None:
        return error.retry_after
    return min(MAX_BACKOFF, random.uniform(0, 2 ** min(failures, 8)))


def host_machine_id() -> Optional[str]:
    """The host's machine id (systemd's `/etc/machine-id`)."""
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            with open(path) as f:
                text = f.read().strip()
            if text:
                return text
        except OSError:
            continue
    return None


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
        offline_file: Optional[str] = None,
        fingerprint: Optional[str] = None,
        usage_interval: float = 900.0,
        consumption_interval: float = 10.0,
        ack_interval: float = ACK_EVERY,
        product: Optional[str] = None,
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
        self._store_lock = threading.Lock()  # one state file write at a time
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
        self._offline_file = offline_file
        self._fingerprint = fingerprint
        # The product this client is part of: another's license is refused (§28).
        self._product = product
        self._machine_given_up = False
        self._usage_interval = usage_interval
        self._users: Optional[int] = None
        self._usage_wake = threading.Event()
        self._usage_thread: Optional[threading.Thread] = None
        self._force = False
        self._acked_at = 0.0
        self._ack_interval = ack_interval
        self._meters = Meters()
        self._consumption_interval = consumption_interval
        self._report_lock = threading.Lock()
        self._report: Optional[dict] = None
        self._next_seq = 0

    # ----- reading: no lock, no I/O -------------------------------------

    @property
    def verdict(self) -> Verdict:
        return self._status.verdict

    @property
    def status(self) -> Status:
        return self._status

    @property
    def document(self) -> Optional[str]:
        """The held signed document as received (to hand to another process,
        or to keep as evidence), or ``None``."""
        holder = self._holder
        return holder.document_text if holder else None

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
        background. Never waits for the network. An ``offline_file`` that
        does not verify raises ``ProtocolError`` (held state unchanged)."""
        with self._lock:
            self._load()
            self._publish()
        if self._offline_file:
            with open(self._offline_file, "rb") as f:
                self.import_offline(f.read(MAX_ANSWER_BYTES + 1))
        self._thread = threading.Thread(target=self._run, name="tessera-refresh", daemon=True)
        self._thread.start()
        if self._watch and self.servers:
            self._watch_thread = threading.Thread(target=self._watch_loop, name="tessera-watch", daemon=True)
            self._watch_thread.start()
        if self.servers:
            self._usage_thread = threading.Thread(target=self._usage_loop, name="tessera-usage", daemon=True)
            self._usage_thread.start()
            threading.Thread(target=self._consumption_loop, name="tessera-consumption", daemon=True).start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._usage_wake.set()
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
        holder = Holder(keys=self.keys, token=token, product=self._product)
        try:
            holder.load(document, mark)
        except ProtocolError as e:
            # A state file edited by hand proves nothing.
            self._record_error("verification", f"the stored document was rejected: {e}")
            holder.load(None, mark)
        self._holder = holder

    def _persist(self) -> None:
        """Write the held state as it is when written, after the verdict was
        published (a crash in between only leaves the disk one document
        behind, as if the push had not arrived). Each write takes the newest
        state under the write lock, so a slower write never puts back an
        older one. Never called with ``_lock`` held."""
        path = self._path()
        if not path:
            return
        with self._store_lock:
            with self._lock:
                holder = self._holder
                if holder is None:
                    return
                state = {
                    "format": STATE_FORMAT,
                    "instance_id": self._instance_id,
                    "token": holder.token.secret(),
                    "configured": self._configured.fingerprint() if self._configured else None,
                    "document": holder.document_text,
                    "high_water_mark": format_time(holder.mark) if holder.mark is not None else None,
                }
            self._write_state(path, state)

    def _write_state(self, path: str, state: dict) -> None:
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
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
        self._meters.sync(self._holder.document if self._holder else None, now)
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

    # ----- offline files, usage --------------------------------------------

    def import_offline(self, data: bytes) -> Verdict:
        """Take a document exported for air-gapped sites (``tessera license
        export``: its JSON file, or the bare document). It is verified with
        freshness and the rollback rule: a refused one raises
        ``ProtocolError`` and changes nothing; an older one is ignored.
        Responses to offline activation requests (bound to a machine) are
        the Rust SDK's and the agent's: refused here (``nonce_mismatch``)."""
        if len(data) > MAX_ANSWER_BYTES:
            raise ProtocolError("document_too_large", "the offline file is over 64 KiB")
        document = data.strip()
        try:
            export = json.loads(data)
            if isinstance(export, dict) and isinstance(export.get("document"), str):
                document = export["document"].encode()
        except ValueError:
            pass  # the bare document (or bytes the verifier refuses)
        with self._lock:
            holder = self._holder
            if holder is None:
                raise ClientError("no_token", "an offline file needs the license token it was exported for")
            claims = verify(
                document,
                self.keys,
                holder.token.fingerprint(),
                self._now(),
                max_clock_drift=holder.max_clock_drift,
                machine=fingerprint_hash(self.fingerprint(holder.token)),
                product=self._product,
            )
            if claims.raw.get("mfp") is not None:
                # A response to an offline activation request (§25) answers
                # the request's nonce; this client makes none, so it cannot
                # tell its own from another machine's request: refused.
                raise ProtocolError("nonce_mismatch", "a response to an offline request this client did not make")
            taken = holder.accept(claims, document.decode(), self._now()) == "accepted"
            verdict = self._publish()
        if taken:
            self._persist()
        return verdict

    def set_users(self, users: int) -> None:
        """How many users the product has now; reported at once when it
        changes, then every ``usage_interval``. No network call here."""
        if users < 0:
            raise ValueError("users must be at least 0")
        previous, self._users = self._users, users
        if previous != users:
            self._usage_wake.set()

    def _usage_loop(self) -> None:
        while not self._stop.is_set():
            self._usage_wake.wait(self._usage_interval)
            self._usage_wake.clear()
            holder, users = self._holder, self._users
            if self._stop.is_set() or holder is None or users is None:
                continue
            body = {"token": holder.token.secret(), "instance_id": self._instance_id, "users": min(users, 2**32 - 1)}
            for server in self.servers:
                try:
                    self._post(server + "/v1/usage", body, {"Content-Type": "application/json"})
                    break
                except ClientError:
                    continue  # failures never touch the verdict

    # ----- metered quotas ------------------------------------------------------

    def consume(self, feature: str, amount: int = 1) -> int:
        """Count ``amount`` of a metered feature: a local add, no I/O. Returns
        what is left of the limit; raises ``QuotaError`` (nothing counted)
        past the blocking point, for a feature not granted now, without a
        quota, or for an amount above 2^53."""
        if not self.has_feature(feature):
            raise QuotaError("not_granted", f"{feature} is not granted now")
        holder = self._holder
        self._meters.sync(holder.document if holder else None, self._now())
        return self._meters.consume(feature, amount)

    def remaining(self, feature: str) -> Optional[int]:
        """What is left of ``feature``'s limit this period (estimated now)."""
        return self._meters.remaining(feature)

    def quotas(self) -> dict:
        """Each metered feature: ``(limit, used)`` as estimated now."""
        return self._meters.snapshot()

    def flush_consumption(self) -> None:
        """Report what was consumed and not yet reported, now (the report in
        flight first). Raises ``ClientError`` when it could not."""
        with self._report_lock:
            while True:
                now = self._now()
                report = self._report
                if report is not None and now - report["first_sent"] > 30 * 86400:
                    # Unanswered for 30 days: the authority keeps report ids
                    # 35 days, so a later retry could be counted twice.
                    self._meters.abandon(report["amounts"])
                    self._report = report = None
                if report is None:
                    amounts = self._meters.take_pending()
                    if not amounts:
                        return
                    if self._next_seq == 0:
                        # Never an earlier run's number: from the clock (ms ×
                        # 1024), never below the clock mark.
                        holder = self._holder
                        at = max(now, holder.mark or 0) if holder else now
                        self._next_seq = max(1, min(at * 1000 * 1024, MAX_QUOTA // 2))
                    report = {"seq": self._next_seq, "amounts": amounts, "first_sent": now}
                    self._next_seq += 1
                    self._report = report
                holder = self._holder
                if holder is None:
                    raise ClientError("no_token", "no license token")
                body = {
                    "token": holder.token.secret(),
                    "instance_id": self._instance_id,
                    "seq": report["seq"],
                    "amounts": report["amounts"],
                }
                try:
                    data = self._post_first("/v1/consumption", body)
                except ClientError as e:
                    if e.status == 409:
                        # Not counted: the same amounts again under a new number.
                        report["seq"] = self._next_seq = max(self._next_seq, report["seq"]) + (1 << 20)
                        self._next_seq += 1
                        continue
                    if e.status in (401, 403, 422):
                        # Refused for good: sending again cannot help.
                        self._meters.abandon(report["amounts"])
                        self._report = None
                    raise
                try:
                    quotas = json.loads(data).get("quotas") or {}
                except (ValueError, AttributeError):
                    quotas = {}
                self._meters.settle(report["amounts"], quotas)
                self._report = None

    def _post_first(self, path: str, body: dict) -> bytes:
        """POST to the first authority that answers; its body."""
        last = ClientError("network", "no authority configured")
        for server in self.servers:
            try:
                return self._post(server + path, body, {"Content-Type": "application/json"})[1]
            except ClientError as e:
                if e.status is not None:
                    raise
                last = e
        raise last

    def _consumption_loop(self) -> None:
        while not self._stop.wait(self._consumption_interval):
            try:
                self.flush_consumption()
            except ClientError:
                pass  # retried at the next interval

    # ----- machines ----------------------------------------------------------

    def fingerprint(self, token: Optional[LicenseToken] = None) -> Optional[str]:
        """This machine's fingerprint for the held (or given) token."""
        token = token or (self._holder.token if self._holder else None)
        if token is None:
            return None
        return machine_fingerprint(self._fingerprint, host_machine_id(), self._instance_id, token)

    def activate_machine(self) -> Verdict:
        """Take (or hold) a place for this machine now."""
        holder = self._holder
        if holder is None:
            raise ClientError("no_token", "no license token: activate one first")
        return self._machine_round_trip(holder.token, "activate")

    def deactivate(self) -> Verdict:
        """Give this machine's place back; it stays without one until
        ``activate_machine()``."""
        holder = self._holder
        if holder is None:
            raise ClientError("no_token", "no license token: activate one first")
        return self._machine_round_trip(holder.token, "deactivate")

    def _machine_round_trip(self, token: LicenseToken, action: str, activating: bool = False) -> Verdict:
        n = secrets.token_urlsafe(16)
        body = {
            "token": token.secret(),
            "fingerprint": self.fingerprint(token),
            "hostname": platform.node() or None,
            "platform": f"{platform.system().lower()}-{platform.machine()}",
            "nonce": n,
        }
        last: ClientError = ClientError("network", "no authority configured")
        for server in self.servers:
            try:
                status, data, _ = self._post(server + f"/v1/machines/{action}", body, {"Content-Type": "application/json"})
            except ClientError as e:
                last = e
                continue
            if status == 304:
                last = ClientError("invalid_answer", "304 to a machine request")
                break
            verdict = self._take(token, data, n, activating=activating)
            self._machine_given_up = action == "deactivate"
            return verdict
        with self._lock:
            self._record_error(last.kind, str(last))
        raise last

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
        body = {"token": token.secret(), "instance_id": self._instance_id, "fingerprint": self.fingerprint(token)}
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
                if "If-None-Match" not in headers:
                    # While flagged the client asks with a nonce: a 304 to
                    # that is an error, never contact (§11).
                    last = ClientError("invalid_answer", "304 to a request without If-None-Match")
                    break
                # Unsigned: it proves nothing; it only spares a download.
                with self._lock:
                    return self._publish()
            verdict = self._take(token, data, n, activating=activating, etag=etag)
            if self._should_activate():
                return self._machine_round_trip(token, "activate", activating=activating)
            return verdict
        with self._lock:
            err = last or ClientError("network", "no authority configured")
            self._record_error(err.kind, str(err))
        raise err

    def _should_activate(self) -> bool:
        """A license that counts machines says this one has no place: take
        one, unless it gave its place up (§19)."""
        held = self._holder.document if self._holder else None
        if held is None or held.raw.get("machine") is None:
            return False
        return held.status == "lease_expired" or (held.status == "not_activated" and not self._machine_given_up)

    def _take(self, token: LicenseToken, data: bytes, n: Optional[str], *, activating: bool, etag: Optional[str] = None) -> Verdict:
        """Verify an answer (`{"document": …}`) and take it by the rules."""
        try:
            document = json.loads(data)["document"]
            if not isinstance(document, str):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            with self._lock:
                self._record_error("invalid_answer", "the answer is not a validation answer")
            raise ClientError("invalid_answer", "the answer is not a validation answer") from None
        with self._lock:
            holder = self._holder if (self._holder and self._holder.token.secret() == token.secret()) else None
            fresh = holder or Holder(keys=self.keys, token=token, product=self._product)
            if holder is None and self._holder is not None:
                fresh.mark = self._holder.mark
            try:
                claims = verify(
                    document.encode(),
                    self.keys,
                    token.fingerprint(),
                    self._now(),
                    nonce=n,
                    machine=fingerprint_hash(self.fingerprint(token)),
                    product=self._product,
                )
            except ProtocolError as e:
                self._record_error("verification", str(e))
                raise ClientError("verification", str(e)) from None
            # A machine released while it held a place stays released.
            held = fresh.document
            if claims.status == "not_activated" and held is not None and held.raw.get("mfp") and held.valid:
                self._machine_given_up = True
            outcome = fresh.accept(claims, document, self._now(), rebase=n is not None)
            if outcome == "rolled_back":
                if held is not None and held.raw.get("mfp") and held.rev == claims.rev:
                    return self._publish()  # an activation crossing a poll (§19)
                self._record_error("rollback", "the document is older than the one held")
                raise ClientError("rollback", "the document is older than the one held")
            self._holder = fresh
            if etag is not None:
                self._etag = etag
            if n is not None or outcome == "accepted":
                self._record_contact()  # a replayed document proves nothing (§11)
            verdict = self._publish()
        self._persist()
        return verdict

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
            try:
                # At most 64 KiB of an error page, whatever its size (§13).
                data = e.read(MAX_ANSWER_BYTES)
            except OSError:
                data = b""
            finally:
                e.close()
            try:
                err = json.loads(data)["error"]
                message = f"{err['message']} ({err['code']})"
            except (ValueError, KeyError, TypeError):
                message = data[:200].decode("utf-8", "replace")
            raise ClientError(
                "http_status", f"HTTP {e.code}: {message}", _retry_after(e.headers.get("Retry-After")), e.code
            ) from None
        except (urllib.error.URLError, OSError) as e:
            raise ClientError("network", f"cannot reach the authority: {e}") from None

    # ----- the change stream ---------------------------------------------------

    def _ack(self, token: LicenseToken, revision: int) -> None:
        self._acked_at = time.monotonic()
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
                claims = verify(document.encode(), self.keys, token.fingerprint(), self._now(), product=self._product)
            except ProtocolError as e:
                self._record_error("verification", f"a pushed document was rejected: {e}")
                return
            # A push on this client's own stream re-bases the mark (§6).
            if holder.accept(claims, document, self._now(), rebase=True) != "accepted":
                return  # older, or the one held: nothing new
            self._record_contact()
            self._publish()
        self._persist()
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
                    # A place was taken or freed: ask at once for this
                    # machine's own answer (§19).
                    self._force = True
                    self._wake.set()
                event, data, size = "message", [], 0
            elif text.startswith(":"):
                size = 0
                # Every 5 minutes the held revision again, so the fleet view
                # heals by itself after an ack was lost (§12).
                holder = self._holder
                if time.monotonic() - self._acked_at > self._ack_interval and holder and holder.document:
                    self._ack(token, holder.document.rev)
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
                forced, self._force = self._force, False
                if due <= 0 or failures or forced:
                    try:
                        flagged = self._status.last_error is not None or self._status.offline_since is not None
                        self._round_trip(holder.token, nonce=flagged or forced)
                        failures = 0
                    except ClientError as e:
                        failures += 1
                        wait = backoff(failures, e)
                else:
                    wait = min(self.tick, due + random.uniform(0, min(30, due / 10 + 1)))
            elif holder is not None:
                try:
                    self._round_trip(holder.token, nonce=True)
                except ClientError as e:
                    failures += 1
                    wait = backoff(failures, e)
            deadline = self._next_deadline()
            if deadline is not None:
                # The verdict changes at its deadlines with no request.
                wait = min(wait, max(0.01, deadline - self.clock() + 0.01))
            self._wake.wait(wait)
            self._wake.clear()

    def _next_deadline(self) -> Optional[float]:
        """The next instant the held document's verdict changes by the clock
        alone: the license's end, a feature's end, the end of the grace."""
        holder = self._holder
        doc = holder.document if holder else None
        if doc is None:
            return None
        times = [doc.expires_at, doc.exp + 1]
        for e in doc.entitlements.values():
            if isinstance(e, dict) and e.get("expires_at"):
                times.append(parse_time(e["expires_at"]))
        now = self.clock()
        future = [t for t in times if t is not None and t > now]
        return min(future) if future else None
