"""The wire contract (docs/PROTOCOL.md §1–5): tokens, keys, status
documents and the rollback rule. Pure: no I/O, no clock (every "now" is an
argument, in Unix seconds). Error codes are the Rust protocol crate's, so
the conformance suite can name them."""

from __future__ import annotations

import base64
import binascii
import calendar
import hashlib
import json
import struct
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Dict, List, Optional, Tuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
TOKEN_PREFIX = "tsr_"
RANDOM_LEN = 30
CHECKSUM_LEN = 6
HEADER = "v4.public."
MAX_DOCUMENT_BYTES = 16 * 1024
MAX_REVISION = 1 << 53
# 1970-01-01 … 9999-12-31T23:59:59Z
MIN_SUPPORTED, MAX_SUPPORTED = 0, 253402300799
DEFAULT_MAX_CLOCK_DRIFT = 300


class ProtocolError(Exception):
    """A refusal, with the protocol's stable ``code``."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{message} ({code})")
        self.code = code


def _b64url_decode(text: str) -> bytes:
    if "=" in text:
        raise ProtocolError("malformed", "padded base64")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as e:
        raise ProtocolError("malformed", f"bad base64: {e}") from None


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def parse_time(text: str) -> int:
    """RFC 3339 (as the authority writes it: `…Z`) to Unix seconds."""
    if not isinstance(text, str):
        raise ProtocolError("malformed", "a time is an RFC 3339 string")
    t = text.strip()
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(t)
    except ValueError:
        raise ProtocolError("malformed", f"bad time {text!r}") from None
    if dt.tzinfo is None:
        raise ProtocolError("malformed", f"time without offset {text!r}")
    return calendar.timegm(dt.utctimetuple())


def format_time(secs: int) -> str:
    return datetime.utcfromtimestamp(secs).strftime("%Y-%m-%dT%H:%M:%SZ")


def _checksum(random: str) -> str:
    """CRC32 of the random part in six base62 digits, most significant first."""
    crc = zlib.crc32(random.encode())
    out = []
    for _ in range(CHECKSUM_LEN):
        out.append(ALPHABET[crc % 62])
        crc //= 62
    return "".join(reversed(out))


def is_foreign_key(text: str) -> bool:
    """A license key another system issued, imported as it is (§30): not
    `tsr_…` nor `tsa_…`, 8–512 printable ASCII characters without spaces.
    It has no checksum; a mistyped one is simply not found."""
    return (
        not text.startswith(TOKEN_PREFIX)
        and not text.startswith("tsa_")
        and 8 <= len(text) <= 512
        and all(33 <= ord(c) <= 126 for c in text)
    )


class LicenseToken:
    """A license token `tsr_…` (a mistyped one fails its checksum offline),
    or another system's key imported as it is."""

    def __init__(self, text: str):
        text = text.strip()
        if is_foreign_key(text):
            self._text = text
            return
        body = text[len(TOKEN_PREFIX):]
        if not text.startswith(TOKEN_PREFIX) or len(body) != RANDOM_LEN + CHECKSUM_LEN:
            raise ProtocolError("invalid_token", "not a license token (tsr_ and 36 characters)")
        if any(c not in ALPHABET for c in body):
            raise ProtocolError("invalid_token", "a license token is base62")
        if _checksum(body[:RANDOM_LEN]) != body[RANDOM_LEN:]:
            raise ProtocolError("invalid_token", "the token's checksum does not match: mistyped?")
        self._text = text

    def secret(self) -> str:
        return self._text

    def fingerprint(self) -> str:
        """The `tfp` claim: the first 16 hex characters of SHA-256(token)."""
        return hashlib.sha256(self._text.encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        # Never the whole token: it is a secret.
        return "LicenseToken(…" + getattr(self, "_text", "")[-4:] + ")"


class PublicKey:
    """An Ed25519 public key as PASERK `k4.public.…`; `kid` is the first 16
    hex characters of SHA-256 of the raw key."""

    def __init__(self, paserk: str):
        text = paserk.strip()
        if not text.startswith("k4.public."):
            raise ProtocolError("invalid_key", 'a public key is a PASERK string starting with "k4.public."')
        raw = _b64url_decode(text[len("k4.public."):])
        if len(raw) != 32:
            raise ProtocolError("invalid_key", "the public key's PASERK encoding is invalid")
        self.raw = raw
        self.key = Ed25519PublicKey.from_public_bytes(raw)
        self.kid = hashlib.sha256(raw).hexdigest()[:16]


@dataclass
class TrustedKeys:
    """Pinned keys by kid; a retired one (`k4.public…@<time>`) with its
    retirement time."""

    keys: Dict[str, PublicKey] = field(default_factory=dict)
    retired: Dict[str, int] = field(default_factory=dict)

    def pin(self, text: str) -> "TrustedKeys":
        key_text, _, retired = text.partition("@")
        key = PublicKey(key_text)
        self.keys[key.kid] = key
        if retired:
            self.retired[key.kid] = parse_time(retired)
        return self


@dataclass
class Claims:
    """The claims of a verified document (only what the core reads)."""

    raw: Dict[str, Any]
    tfp: str
    status: str
    valid: bool
    rev: int
    iat: int
    exp: int
    refresh_after: int
    expires_at: Optional[int]
    features: List[str]
    entitlements: Dict[str, Any]
    on_expiry: str
    enforcement: str
    kid: str
    retired_at: Optional[int]


def _pae(pieces: List[bytes]) -> bytes:
    out = struct.pack("<Q", len(pieces))
    for p in pieces:
        out += struct.pack("<Q", len(p)) + p
    return out


def _time_field(raw: Dict[str, Any], name: str, required: bool) -> Optional[int]:
    value = raw.get(name)
    if value is None:
        if required:
            raise ProtocolError("malformed", f"claims: missing {name}")
        return None
    t = parse_time(value)
    if not MIN_SUPPORTED <= t <= MAX_SUPPORTED:
        raise ProtocolError("out_of_range", f"{name} outside 1970-01-01 … 9999-12-31")
    return t


def verify(data: bytes, keys: TrustedKeys, token_fingerprint: str, now: int, **options: Any) -> Claims:
    """Verify a status document from the authority (docs/PROTOCOL.md §4)
    or from a site relay it certified (§26); the only way to get `Claims`.
    Options (keywords): `nonce` the document must echo, `enforce_freshness`
    (False only for state this holder stored), `max_clock_drift` (seconds),
    `machine` (this machine's `mfp`), `product` (the product this client
    is part of: a license of another is `wrong_product`, §28)."""
    footer = _peek_footer(data)
    if isinstance(footer, dict) and footer.get("bundle") is not None:
        return _verify_relayed(data, footer, keys, token_fingerprint, now, **options)
    return _verify_direct(data, keys, token_fingerprint, now, **options)


def _verify_direct(
    data: bytes,
    keys: TrustedKeys,
    token_fingerprint: str,
    now: int,
    *,
    nonce: Optional[str] = None,
    enforce_freshness: bool = True,
    max_clock_drift: int = DEFAULT_MAX_CLOCK_DRIFT,
    machine: Optional[str] = None,
    product: Optional[str] = None,
) -> Claims:
    """§4, in its order, under `keys`."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise ProtocolError("document_too_large", f"{len(data)} bytes, over {MAX_DOCUMENT_BYTES}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("malformed", "not UTF-8") from None
    if not text.startswith(HEADER):
        raise ProtocolError("malformed", "not a v4.public token")
    parts = text[len(HEADER):].split(".")
    if len(parts) not in (1, 2):
        raise ProtocolError("malformed", "bad PASETO encoding")
    body = _b64url_decode(parts[0])
    footer = _b64url_decode(parts[1]) if len(parts) == 2 else b""
    if len(body) < 64:
        raise ProtocolError("malformed", "bad PASETO encoding")
    # Only the canonical text of these bytes is accepted: no bit flip of a
    # valid document verifies.
    canonical = HEADER + _b64url_encode(body) + ("." + _b64url_encode(footer) if footer else "")
    if canonical != text:
        raise ProtocolError("malformed", "non-canonical encoding")
    if not footer:
        raise ProtocolError("missing_key_id", "no footer: no key named")
    try:
        kid = json.loads(footer)["kid"]
        if not isinstance(kid, str):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise ProtocolError("missing_key_id", "the footer names no key") from None
    key = keys.keys.get(kid)
    if key is None:
        raise ProtocolError("unknown_key_id", f"key {kid[:32]!r} is not pinned")
    message, signature = body[:-64], body[-64:]
    try:
        key.key.verify(signature, _pae([HEADER.encode(), message, footer, b""]))
    except InvalidSignature:
        raise ProtocolError("bad_signature", "the signature does not verify") from None
    try:
        raw = json.loads(message)
        if not isinstance(raw, dict):
            raise ValueError
    except ValueError:
        raise ProtocolError("malformed", "claims: not a JSON object") from None
    try:
        rev = int(raw["rev"])
        status = str(raw["status"])
        valid = bool(raw["valid"])
        tfp = str(raw["tfp"])
    except (KeyError, TypeError, ValueError):
        raise ProtocolError("malformed", "claims: missing or bad fields") from None
    if not 0 <= rev <= MAX_REVISION:
        raise ProtocolError("out_of_range", "rev is above 2^53")
    iat = _time_field(raw, "iat", True)
    exp = _time_field(raw, "exp", True)
    refresh_after = _time_field(raw, "refresh_after", True)
    expires_at = _time_field(raw, "expires_at", False)
    _time_field(raw, "valid_from", False)
    if exp < iat:
        raise ProtocolError("malformed", "exp is before iat")
    retired_at = keys.retired.get(kid)
    if retired_at is not None:
        if iat > retired_at or exp > retired_at + 400 * 86400:
            raise ProtocolError("key_retired", f"key {kid} was retired before this document")
    if tfp != token_fingerprint:
        raise ProtocolError("token_mismatch", "the document answers for another token")
    if nonce is not None and raw.get("nonce") != nonce:
        raise ProtocolError("nonce_mismatch", "the document does not answer this request")
    # A document bound to a machine (`mfp`) is that machine's alone (§19).
    if machine is not None and raw.get("mfp") is not None and raw.get("mfp") != machine:
        raise ProtocolError("fingerprint_mismatch", "the document answers for another machine")
    # A license of another product (§28); no product named means `default`.
    if product is not None and raw.get("lic") is not None:
        found = raw.get("product") or "default"
        if found != product:
            raise ProtocolError("wrong_product", f'the license is for product "{str(found)[:64]}", this product is "{product}"')
    if enforce_freshness:
        if now > exp:
            raise ProtocolError("document_expired", "the document's exp has passed")
        if iat > now + max_clock_drift:
            raise ProtocolError("issued_in_future", "the document is signed ahead of the local clock")
    return Claims(
        raw=raw,
        tfp=tfp,
        status=status,
        valid=valid,
        rev=rev,
        iat=iat,
        exp=exp,
        refresh_after=refresh_after,
        expires_at=expires_at,
        features=[str(f) for f in raw.get("features") or []],
        entitlements=raw.get("entitlements") or {},
        on_expiry=raw.get("on_expiry") or "lose_access",
        enforcement=raw.get("enforcement") or "enforce",
        kid=kid,
        retired_at=retired_at,
    )


BUNDLE_TYPE = "tessera-site-bundle/1"
MAX_BUNDLE_BYTES = 8 * 1024
MAX_CHAIN = 3


def _relay_refused(reason: str) -> ProtocolError:
    return ProtocolError("malformed", f"relayed document: {reason}")


def _peek_footer(data: bytes) -> Any:
    """The footer's JSON, unverified (which way to verify), or None."""
    try:
        text = data.decode("utf-8")
        if not text.startswith(HEADER):
            return None
        parts = text[len(HEADER):].split(".")
        return json.loads(_b64url_decode(parts[1])) if len(parts) == 2 else None
    except (UnicodeDecodeError, ValueError, ProtocolError):
        return None


def _verify_bundle(text: Any, keys: TrustedKeys, now: Optional[int], depth: int) -> Dict[str, Any]:
    """A site bundle and the chain above it (§26); `now` None skips expiry."""
    if not isinstance(text, str) or not text.startswith(HEADER):
        raise _relay_refused("the bundle is not a v4.public token")
    parts = text[len(HEADER):].split(".")
    if len(parts) != 2:
        raise _relay_refused("the bundle names no key")
    body, footer_bytes = _b64url_decode(parts[0]), _b64url_decode(parts[1])
    if len(body) < 64 or HEADER + _b64url_encode(body) + "." + _b64url_encode(footer_bytes) != text:
        raise _relay_refused("the bundle's encoding is not canonical")
    try:
        footer = json.loads(footer_bytes)
        kid, typ = footer["kid"], footer["typ"]
    except (ValueError, KeyError, TypeError):
        raise _relay_refused("the bundle names no key") from None
    if typ != BUNDLE_TYPE:
        raise _relay_refused("not a site bundle")
    parent = None
    if footer.get("parent") is not None:
        if depth >= MAX_CHAIN:
            raise _relay_refused(f"more than {MAX_CHAIN} relays in the chain")
        parent = _verify_bundle(footer["parent"], keys, now, depth + 1)
    if parent is None:
        key = keys.keys.get(kid)
        if key is None:
            raise ProtocolError("unknown_key_id", f"key {str(kid)[:32]!r} is not pinned")
    else:
        key = PublicKey(parent["relay_key"])
        if key.kid != kid:
            raise _relay_refused("a bundle signed by another key than its parent's relay")
    message, signature = body[:-64], body[-64:]
    try:
        key.key.verify(signature, _pae([HEADER.encode(), message, footer_bytes, b""]))
    except InvalidSignature:
        raise ProtocolError("bad_signature", "the bundle's signature does not verify") from None
    try:
        bundle = json.loads(message)
        bundle["exp_secs"] = parse_time(bundle["exp"])
        licenses = bundle["licenses"]
        if not isinstance(licenses, list):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise _relay_refused("bundle: missing or bad fields") from None
    if now is not None and now > bundle["exp_secs"]:
        raise ProtocolError("document_expired", "the relay's bundle has ended")
    if parent is not None:
        _check_child(bundle, parent)
    return bundle


def _end(license: Dict[str, Any]) -> Optional[int]:
    value = license.get("expires_at")
    return None if value is None else parse_time(value)


def _within_end(end: Optional[int], bound: Optional[int]) -> bool:
    return bound is None or (end is not None and end <= bound)


def _bundle_license(bundle: Dict[str, Any], tfp: Any) -> Optional[Dict[str, Any]]:
    return next((l for l in bundle["licenses"] if isinstance(l, dict) and l.get("tfp") == tfp), None)


def _check_child(child: Dict[str, Any], parent: Dict[str, Any]) -> None:
    """A relay's bundle for a relay below grants no more than its own."""
    if child["exp_secs"] > parent["exp_secs"]:
        raise _relay_refused("a bundle outlives its parent")
    for l in child["licenses"]:
        p = _bundle_license(parent, l.get("tfp"))
        if p is None:
            raise _relay_refused("a bundle names a license its parent does not")
        cm, pm = l.get("max_machines"), p.get("max_machines")
        same = (
            l.get("license") == p.get("license")
            and l.get("rev") == p.get("rev")
            and l.get("status") == p.get("status")
            and (not l.get("valid") or p.get("valid"))
            and l.get("machine_mode") == p.get("machine_mode")
            and all(f in (p.get("features") or []) for f in (l.get("features") or []))
            and _within_end(_end(l), _end(p))
            and (pm is None or (cm is not None and cm <= pm))
        )
        if not same:
            raise _relay_refused(f"a bundle grants more for {l.get('license')} than its parent")


def _verify_relayed(data: bytes, footer: Dict[str, Any], keys: TrustedKeys, token_fingerprint: str, now: int, **options: Any) -> Claims:
    """§26: the bundle chain by the pinned keys, the document by the relay
    key it certifies (all of §4), then the bundle's bounds."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise ProtocolError("document_too_large", f"{len(data)} bytes, over {MAX_DOCUMENT_BYTES}")
    text = footer.get("bundle")
    if not isinstance(text, str) or len(text) > MAX_BUNDLE_BYTES:
        raise _relay_refused("the bundle is over 8 KiB")
    bundle = _verify_bundle(text, keys, now if options.get("enforce_freshness", True) else None, 1)
    relay = PublicKey(str(bundle.get("relay_key")))
    if relay.kid != footer.get("kid"):
        raise _relay_refused("signed by another key than the bundle's relay")
    claims = _verify_direct(data, TrustedKeys(keys={relay.kid: relay}), token_fingerprint, now, **options)
    _check_bounds(claims, bundle)
    return claims


def _check_bounds(c: Claims, bundle: Dict[str, Any]) -> None:
    raw = c.raw
    if c.exp > bundle["exp_secs"]:
        raise _relay_refused("it outlives its bundle")
    # "No such license" grants nothing: a relay may say it of any token.
    if c.status == "not_found" and raw.get("lic") is None and not c.valid and not c.features:
        return
    license = _bundle_license(bundle, c.tfp)
    if license is None:
        raise _relay_refused("the bundle does not name this license")
    if raw.get("lic") != license.get("license") or c.rev != license.get("rev"):
        raise _relay_refused("it names another license or revision than the bundle")
    if c.valid and not license.get("valid"):
        raise _relay_refused(f"it grants a license the bundle says is {license.get('status')}")
    granted = license.get("features") or []
    extra = next((f for f in c.features if f not in granted), None)
    if extra is not None:
        raise _relay_refused(f"it grants {extra!r}, which the bundle does not")
    if not _within_end(c.expires_at, _end(license)):
        raise _relay_refused("it extends the license past the bundle's end")
    most = license.get("max_machines")
    if most is not None:
        m = raw.get("machine")
        if not isinstance(m, dict):
            raise _relay_refused("it answers with no machine for a license that counts them")
        if m.get("max") is None or m["max"] > most or int(m.get("used", 0)) > most:
            raise _relay_refused(f"it counts more than the bundle's {most} machines")


def fingerprint_hash(fingerprint: str) -> str:
    """`mfp`: the first 32 hex characters of SHA-256 of a machine
    fingerprint (§19)."""
    return hashlib.sha256(fingerprint.encode()).hexdigest()[:32]


def machine_fingerprint(explicit: Optional[str], host_id: Optional[str], instance: str, token: "LicenseToken") -> str:
    """The configured fingerprint, or one derived from the host's machine id
    (else the persisted instance id) and the token — as the Rust SDK derives
    it, so it differs per license and is no cross-vendor tracking id."""
    if explicit:
        return explicit
    base = host_id or instance
    return fingerprint_hash(f"tessera-machine/1|{base}|{token.fingerprint()}")


def check_rollback(held: Optional[Claims], new: Claims) -> str:
    """The rollback rule (§5): `accept`, `same` or `reject`."""
    if held is None:
        return "accept"
    if held.retired_at is not None and new.iat > held.retired_at and new.kid != held.kid:
        return "accept"
    if new.retired_at is not None and held.iat > new.retired_at:
        return "reject"
    if new.rev != held.rev:
        return "accept" if new.rev > held.rev else "reject"
    if new.iat != held.iat:
        return "accept" if new.iat > held.iat else "reject"
    return "same"


def sign_for_tests(claims: Dict[str, Any], seed: bytes) -> Tuple[str, str]:
    """A v4.public document of `claims` signed with the Ed25519 `seed` (for
    tests only: the authority signs, clients never do). Returns (document,
    PASERK public key)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    key = Ed25519PrivateKey.from_private_bytes(seed)
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    kid = hashlib.sha256(raw).hexdigest()[:16]
    message = json.dumps(claims, separators=(",", ":")).encode()
    footer = json.dumps({"kid": kid}, separators=(",", ":")).encode()
    signature = key.sign(_pae([HEADER.encode(), message, footer, b""]))
    doc = HEADER + _b64url_encode(message + signature) + "." + _b64url_encode(footer)
    return doc, "k4.public." + _b64url_encode(raw)
