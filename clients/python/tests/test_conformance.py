"""The Python client replays the language-neutral conformance suite
(tests/conformance/cases.json at the repository's root)."""

import base64
import json
import pathlib

import pytest

from tessera_client import Holder, LicenseToken, ProtocolError, TrustedKeys
from tessera_client.protocol import parse_time

SUITE = json.loads(
    (pathlib.Path(__file__).resolve().parents[3] / "tests" / "conformance" / "cases.json").read_text()
)


def test_the_suite_is_the_one_this_runner_reads():
    assert SUITE["format"] == "tessera-conformance/1"
    assert len(SUITE["cases"]) >= 25


@pytest.mark.parametrize("case", SUITE["cases"], ids=[c["name"] for c in SUITE["cases"]])
def test_case(case):
    keys = TrustedKeys()
    for k in SUITE["keys"]:
        keys.pin(k)
    holder = Holder(
        keys=keys,
        token=LicenseToken(SUITE["token"]),
        tolerance=SUITE["tolerance_secs"],
        max_clock_drift=SUITE["max_clock_drift_secs"],
    )
    held = case["held"]
    mark = held["high_water_mark"]
    holder.load(held["document"], parse_time(mark) if mark else None)
    offer = case.get("offer")
    start = parse_time(offer["at"] if offer else case["timeline"][0]["now"])
    # The client publishes its verdict when it starts.
    holder.verdict(start)
    if offer:
        expect = case["expect_offer"]
        data = base64.b64decode(offer["document_b64"])
        try:
            outcome = holder.offer(data, start)
        except ProtocolError as e:
            outcome = f"refused:{e.code}"
        assert outcome == expect
    for step in case["timeline"]:
        v = holder.verdict(parse_time(step["now"]))
        assert (v.state, v.reason, v.revision) == (step["state"], step["reason"], step["revision"]), step


def test_a_mistyped_token_is_refused_offline():
    token = SUITE["token"]
    typo = token[:-1] + ("A" if token[-1] != "A" else "B")
    with pytest.raises(ProtocolError) as e:
        LicenseToken(typo)
    assert e.value.code == "invalid_token"
    assert LicenseToken(token).fingerprint() == LicenseToken(token).fingerprint()


def test_another_systems_key_is_kept_as_it_is():
    keygen = "C1B6DE-39A6E3-DE1529-8559A0-4AF593-V3"
    assert LicenseToken(f" {keygen}\n").secret() == keygen
    for bad in ["short", "tsa_0123456789", "has space in it", "ключ-лицензии-1"]:
        with pytest.raises(ProtocolError) as e:
            LicenseToken(bad)
        assert e.value.code == "invalid_token"
