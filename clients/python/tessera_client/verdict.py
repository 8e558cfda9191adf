"""The verdict and the held state (docs/PROTOCOL.md §5–7, §20, §21, §24):
pure functions of the held document, the clock and the mark."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from .protocol import Claims, LicenseToken, TrustedKeys, check_rollback, verify

DEFAULT_TOLERANCE = 3600
DEFAULT_MAX_CLOCK_DRIFT = 300

_REFUSALS = {
    "revoked": "revoked",
    "suspended": "suspended",
    "not_found": "not_found",
    "instance_limit": "instance_limit",
    "too_many_machines": "too_many_machines",
    "not_activated": "not_activated",
    "lease_expired": "lease_expired",
    "expired": "expired",
}
_BY_RULE = {"expired", "instance_limit", "too_many_machines", "not_activated", "lease_expired"}


@dataclass(frozen=True)
class Verdict:
    """What the product reads: `state` (`valid`, `expired`, `suspended`,
    `revoked`, `not_found`, `instance_limit`, `too_many_machines`,
    `not_activated`, `lease_expired`, `unverified`), `reason` for
    `unverified` (`no_document`, `clock_tampered`, `stale`), the features
    granted now, the held revision, and `warnings` under a policy that only
    warns."""

    state: str
    reason: Optional[str] = None
    revision: Optional[int] = None
    features: tuple = ()
    warnings: tuple = ()
    after_expiry: Optional[str] = None
    # What the held document says of the license (None without one):
    # `expires_at` in Unix seconds (None for perpetual), `days_left` with a
    # started day counting as a day.
    plan: Optional[str] = None
    customer: Optional[str] = None
    expires_at: Optional[int] = None
    days_left: Optional[int] = None
    max_users: Optional[int] = None

    @property
    def is_valid(self) -> bool:
        return self.state == "valid"

    def has_feature(self, name: str) -> bool:
        return self.state == "valid" and name in self.features


def _granted(c: Claims, now: int) -> tuple:
    from .protocol import parse_time

    out = []
    for f in c.features:
        end = (c.entitlements.get(f) or {}).get("expires_at")
        if end is None or parse_time(end) > now:
            out.append(f)
    return tuple(out)


def days_left(expires_at: Optional[int], now: int) -> Optional[int]:
    """Days left, a started day counting as a day: 20 days minus a second
    is 20; past the end, whole days since (as the Rust SDK counts them)."""
    if expires_at is None:
        return None
    secs = expires_at - now
    return (secs + 86399) // 86400 if secs > 0 else -((-secs) // 86400)


def _info(c: Claims, now: int) -> dict:
    raw = c.raw
    return {
        "plan": raw.get("plan"),
        "customer": raw.get("customer"),
        "expires_at": c.expires_at,
        "days_left": days_left(c.expires_at, now),
        "max_users": raw.get("max_users"),
    }


def compute(
    c: Optional[Claims],
    now: int,
    mark: Optional[int],
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    max_clock_drift: int = DEFAULT_MAX_CLOCK_DRIFT,
    released_at: Optional[int] = None,
) -> Verdict:
    """The verdict in the order of §7."""
    if c is None:
        return Verdict("unverified", "no_document")
    effective = max(mark if mark is not None else c.iat - max_clock_drift, c.iat - max_clock_drift)
    if now < effective - tolerance:
        return Verdict("unverified", "clock_tampered", c.rev, **_info(c, now))
    if now > c.exp:
        return Verdict("unverified", "stale", c.rev, **_info(c, now))
    state = _REFUSALS.get(c.status)
    if state is None:
        state = "expired" if c.expires_at is not None and c.expires_at <= now else "valid"
    after_expiry = None
    if state == "expired":
        if c.on_expiry == "keep_access":
            after_expiry = "keep_access"
        elif c.on_expiry == "keep_versions_released_before_expiry" and released_at is not None:
            if c.expires_at is not None and released_at < c.expires_at:
                after_expiry = c.on_expiry
        if after_expiry:
            state = "valid"
    warnings: List[str] = []
    if c.enforcement != "enforce" and c.valid:
        if state in _BY_RULE:
            warnings.append(state)
        for name, e in sorted(c.entitlements.items()):
            q = (e or {}).get("quota")
            if q and _past_blocking_point(q):
                warnings.append(f"quota_exhausted:{name}")
    if any(not w.startswith("quota_exhausted:") for w in warnings):
        state = "valid"
    features = _granted(c, now) if state == "valid" else ()
    return Verdict(state, None, c.rev, features, tuple(warnings), after_expiry, **_info(c, now))


def _past_blocking_point(q: dict) -> bool:
    limit, used = int(q["limit"]), int(q.get("used") or 0)
    overage = q.get("overage", "block")
    if overage == "allow":
        return False
    if overage.startswith("allow_until_percent("):
        return used >= limit * int(overage[len("allow_until_percent("):-1]) // 100
    return used >= limit


@dataclass
class Holder:
    """The held state: the newest verified document for the token and the
    clock mark (§5, §6). Only verified documents change it."""

    keys: TrustedKeys
    token: LicenseToken
    document: Optional[Claims] = None
    mark: Optional[int] = None
    tolerance: int = DEFAULT_TOLERANCE
    max_clock_drift: int = DEFAULT_MAX_CLOCK_DRIFT
    product: Optional[str] = None
    _text: Optional[str] = field(default=None, repr=False)

    def load(self, document: Optional[str], mark: Optional[int]) -> None:
        """Held state from disk: the document is verified again (signature
        and token; freshness is the verdict's to judge), and a mark below
        its `iat` is repaired to it."""
        self.document = None
        if document is not None:
            self.document = verify(
                document.encode(),
                self.keys,
                self.token.fingerprint(),
                0,
                enforce_freshness=False,
                product=self.product,
            )
            self._text = document
            mark = self.document.iat if mark is None else max(mark, self.document.iat)
        self.mark = mark

    @property
    def document_text(self) -> Optional[str]:
        """The held document as signed (for the state file)."""
        return self._text

    def offer(self, data: bytes, now: int) -> str:
        """An unsolicited document (an offline file; a poll): verified with
        freshness, then the rollback rule. `accepted`, `same` or
        `rolled_back`; raises `ProtocolError` when refused."""
        new = verify(
            data,
            self.keys,
            self.token.fingerprint(),
            now,
            max_clock_drift=self.max_clock_drift,
            product=self.product,
        )
        return self.accept(new, data.decode(), now)

    def accept(self, new: Claims, text: str, now: int, rebase: bool = False) -> str:
        """Take a verified document by the rollback rule. `rebase`: it
        answers this client's own nonce, so the mark becomes the
        authority's time, max(iat, now) (§6)."""
        decision = check_rollback(self.document, new)
        if decision == "reject":
            return "rolled_back"
        if decision == "accept":
            self.document = new
            self._text = text
        if rebase:
            self.mark = max(new.iat, now)
        else:
            self.mark = max(x for x in (self.mark, new.iat, now) if x is not None)
        return "accepted" if decision == "accept" else "same"

    def verdict(self, now: int) -> Verdict:
        """The verdict at `now`; the mark advances with the clock unless
        the clock was set back."""
        v = compute(
            self.document,
            now,
            self.mark,
            tolerance=self.tolerance,
            max_clock_drift=self.max_clock_drift,
        )
        if v.reason != "clock_tampered":
            self.mark = now if self.mark is None else max(self.mark, now)
        return v
