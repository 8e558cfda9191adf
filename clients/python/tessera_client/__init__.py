"""Tessera license client for Python.

This first part is the core every client shares (docs/PROTOCOL.md §1–7):
license tokens and their checksum, pinned keys, verification of signed
status documents (PASETO v4.public, Ed25519), the rollback rule, the clock
mark and the verdict — held to the language-neutral conformance suite in
``tests/conformance/``. The network half (refresh, the change stream,
polling, disk state) comes next.
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
from .verdict import Holder, Verdict, compute

__all__ = [
    "Claims",
    "Holder",
    "LicenseToken",
    "ProtocolError",
    "PublicKey",
    "TrustedKeys",
    "Verdict",
    "check_rollback",
    "compute",
    "verify",
]
