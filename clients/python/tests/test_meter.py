"""Metered quotas on the client (docs/PROTOCOL.md §22): the ceiling, the
overage modes, a new period by the client's clock, reports settled or
abandoned, and a policy that only warns."""

import pytest

from tessera_client.meter import Meters, QuotaError, period_end
from tessera_client.protocol import Claims, parse_time


def claims(quota, rev=1, iat="2026-12-10T00:00:00Z", enforcement="enforce"):
    t = parse_time(iat)
    return Claims(
        raw={}, tfp="", status="active", valid=True, rev=rev, iat=t, exp=t + 86400, refresh_after=t,
        expires_at=None, features=["api"], entitlements={"api": {"quota": quota}}, on_expiry="lose_access",
        enforcement=enforcement, kid="", retired_at=None,
    )


def month(used, overage="block"):
    return {"limit": 100, "period": "month", "overage": overage, "used": used, "period_ends_at": "2027-01-01T00:00:00Z"}


def test_the_ceiling_and_what_is_uncounted():
    m = Meters()
    now = parse_time("2026-12-10T00:00:00Z")
    m.sync(claims(month(90)), now)
    assert m.remaining("api") == 10
    assert m.consume("api", 4) == 6
    with pytest.raises(QuotaError) as e:
        m.consume("api", 7)
    assert e.value.code == "quota_exhausted" and e.value.remaining == 6
    assert m.consume("api", 6) == 0
    report = m.take_pending()
    assert report == {"api": 10} and m.remaining("api") == 0, "in flight still counts"
    m.settle(report, {"api": month(100)})
    assert m.snapshot() == {"api": (100, 100)}
    with pytest.raises(QuotaError):
        m.consume("nope", 1)
    with pytest.raises(QuotaError):
        m.consume("api", -1)


def test_overage_modes_and_a_warning_policy():
    now = parse_time("2026-12-10T00:00:00Z")
    m = Meters()
    m.sync(claims(month(100, "allow_until_percent(120)")), now)
    assert m.consume("api", 20) == 0
    with pytest.raises(QuotaError):
        m.consume("api", 1)
    m = Meters()
    m.sync(claims(month(100, "allow")), now)
    assert m.consume("api", 10**6) == 0
    m = Meters()
    m.sync(claims(month(100), enforcement="warn"), now)
    assert m.consume("api", 5) == 0, "a policy that warns refuses nothing"


def test_a_new_period_starts_by_the_clients_clock():
    m = Meters()
    m.sync(claims(month(100)), parse_time("2026-12-31T23:59:59Z"))
    with pytest.raises(QuotaError):
        m.consume("api", 1)
    m.sync(claims(month(100)), parse_time("2027-01-01T00:00:00Z"))
    assert m.remaining("api") == 100 and m.consume("api", 1) == 99
    assert period_end("day", parse_time("2026-12-10T12:00:00Z")) == parse_time("2026-12-11T00:00:00Z")
    assert period_end("month", parse_time("2026-12-10T12:00:00Z")) == parse_time("2027-01-01T00:00:00Z")


def test_an_abandoned_report_is_no_longer_counted():
    m = Meters()
    m.sync(claims(month(0)), parse_time("2026-12-10T00:00:00Z"))
    m.consume("api", 30)
    report = m.take_pending()
    assert m.remaining("api") == 70
    m.abandon(report)
    assert m.remaining("api") == 100
