"""Metered quotas on the client (docs/PROTOCOL.md §22), as the Rust SDK
keeps them.

A meter's ``used`` is the client's estimate of the period's use across
every instance: what the authority had counted (the held document's
``used`` as of ``iat``, or a later report's answer, the higher) plus what
this client consumed that the authority has not counted yet (``pending``,
not yet in a report, and ``inflight``, in the report awaiting its answer).
A consumption that would pass the blocking point is refused and not
counted. At ``period_ends_at``, by the client's clock, the next period
starts from nothing."""

from __future__ import annotations

import calendar
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Dict, Optional, Tuple

from .protocol import Claims, parse_time

MAX_QUOTA = 2**53
NEVER = float("inf")


class QuotaError(Exception):
    """A consumption refused and not counted: ``code`` is
    ``quota_exhausted`` (with ``remaining``), ``unknown_quota``,
    ``not_granted`` or ``invalid_amount``."""

    def __init__(self, code: str, message: str, remaining: Optional[int] = None):
        super().__init__(message)
        self.code = code
        self.remaining = remaining


def period_end(period: str, at: int) -> float:
    """When the calendar period (UTC) holding ``at`` ends; never for ``total``."""
    d = datetime.fromtimestamp(at, tz=timezone.utc)
    if period == "day":
        return calendar.timegm((d.year, d.month, d.day, 0, 0, 0)) + 86400
    if period == "month":
        y, m = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
        return calendar.timegm((y, m, 1, 0, 0, 0))
    return NEVER


def ceiling(limit: int, overage: str) -> float:
    """How far use may go: the blocking point."""
    if overage == "allow":
        return NEVER
    if overage.startswith("allow_until_percent("):
        return limit * int(overage[len("allow_until_percent(") : -1]) // 100
    return limit


@dataclass
class Meter:
    period: str
    limit: int
    ceiling: float
    counted: int = 0
    pending: int = 0
    inflight: int = 0
    period_end: float = NEVER

    @property
    def used(self) -> int:
        return self.counted + self.pending + self.inflight

    def learn(self, counted: int, end: float) -> None:
        """The authority counted ``counted`` in the period ending at ``end``."""
        if end == self.period_end:
            self.counted = max(self.counted, counted)
        else:
            self.period_end, self.counted = end, counted


def _end_of(q: dict) -> float:
    return parse_time(q["period_ends_at"]) if q.get("period_ends_at") else NEVER


class Meters:
    """The meters of the held license, by feature."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._table: Dict[str, Meter] = {}
        self._based_on: Optional[Tuple[int, int]] = None

    def sync(self, doc: Optional[Claims], now: int) -> None:
        """Base the meters on the held document, when it is another one than
        last time; start a period again once it is over. Under a policy that
        only warns nothing is refused (§24)."""
        with self._lock:
            key = (doc.rev, doc.iat) if doc else None
            if key != self._based_on:
                self._based_on = key
                enforced = doc is None or doc.enforcement == "enforce"
                table = {}
                for feature, e in sorted((doc.entitlements if doc else {}).items()):
                    q = (e or {}).get("quota")
                    if not q:
                        continue
                    limit, overage = int(q["limit"]), q.get("overage", "block")
                    m = self._table.get(feature)
                    if m is None or m.period != q["period"]:
                        m = Meter(q["period"], limit, NEVER)
                    m.limit = limit
                    m.ceiling = ceiling(limit, overage) if enforced else NEVER
                    m.learn(int(q.get("used") or 0), _end_of(q))
                    table[feature] = m
                self._table = table
            for m in self._table.values():
                if m.period_end <= now:
                    # A new period: the authority's count starts from nothing.
                    m.learn(0, period_end(m.period, now))

    def consume(self, feature: str, amount: int) -> int:
        """Count ``amount``; what is left of the limit after it."""
        if not isinstance(amount, int) or amount < 0 or amount > MAX_QUOTA:
            raise QuotaError("invalid_amount", f"{amount!r} is not a whole number from 0 to 2^53")
        with self._lock:
            m = self._table.get(feature)
            if m is None:
                raise QuotaError("unknown_quota", f"{feature} has no quota")
            if m.used + amount > m.ceiling:
                remaining = int(min(max(0, m.ceiling - m.used), m.limit))
                raise QuotaError("quota_exhausted", f"the quota of {feature} is exhausted", remaining)
            m.pending += amount
            return max(0, m.limit - m.used)

    def remaining(self, feature: str) -> Optional[int]:
        m = self._table.get(feature)
        return None if m is None else max(0, m.limit - m.used)

    def snapshot(self) -> Dict[str, Tuple[int, int]]:
        """Each metered feature: (limit, used as estimated now)."""
        return {f: (m.limit, m.used) for f, m in sorted(self._table.items())}

    def take_pending(self) -> Dict[str, int]:
        """Move what is pending into a report."""
        amounts = {}
        with self._lock:
            for f, m in self._table.items():
                if m.pending:
                    m.inflight += m.pending
                    amounts[f] = m.pending
                    m.pending = 0
        return amounts

    def settle(self, amounts: Dict[str, int], answer: Dict[str, dict]) -> None:
        """A report was counted: its amounts are the authority's now."""
        with self._lock:
            for f, n in amounts.items():
                m = self._table.get(f)
                if m is None:
                    continue
                m.inflight = max(0, m.inflight - n)
                q = answer.get(f)
                if q and _end_of(q) == m.period_end:
                    m.learn(int(q.get("used") or 0), m.period_end)

    def abandon(self, amounts: Dict[str, int]) -> None:
        """A report refused for good: its amounts are dropped."""
        with self._lock:
            for f, n in amounts.items():
                m = self._table.get(f)
                if m is not None:
                    m.inflight = max(0, m.inflight - n)
