"""Tessera license client for Python.

The core every client shares (docs/PROTOCOL.md §1–7): license tokens and
their checksum, pinned keys, verification of signed status documents
(PASETO v4.public, Ed25519), the rollback rule, the clock mark and the
verdict — held to the language-neutral conformance suite in
``tests/conformance/`` — and ``Client``: disk state, refresh and activate
round trips, polling, the change stream, listeners, offline files, usage,
machines and metered quotas.
"""

from .protocol import (
    Claims,
    LicenseToken,
    ProtocolError,
    PublicKey,
    TrustedKeys,
    check_rollback,
    verify,
)
from .client import Client, ClientError
from .meter import QuotaError
from .verdict import Holder, Verdict, compute

__all__ = [
    "Claims",
    "Client",
    "ClientError",
    "Holder",
    "LicenseToken",
    "ProtocolError",
    "QuotaError",
    "PublicKey",
    "TrustedKeys",
    "Verdict",
    "check_rollback",
    "compute",
    "verify",
]
