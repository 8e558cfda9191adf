// The wire contract (docs/PROTOCOL.md §1–5): tokens, keys, status documents
// and the rollback rule. Pure: no I/O, no clock (every "now" is an argument,
// in Unix seconds). Error codes are the Rust protocol crate's, so the
// conformance suite can name them. Zero dependencies: node:crypto.

import { createHash, createPublicKey, verify as edVerify } from "node:crypto";
import { crc32 } from "node:zlib";

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const TOKEN_PREFIX = "tsr_";
const RANDOM_LEN = 30;
const CHECKSUM_LEN = 6;
const HEADER = "v4.public.";
export const MAX_DOCUMENT_BYTES = 16 * 1024;
const MAX_REVISION = 2 ** 53;
const MIN_SUPPORTED = 0;
const MAX_SUPPORTED = 253402300799;
const MAX_DOCUMENT_LIFETIME = 400 * 86400;
export const DEFAULT_MAX_CLOCK_DRIFT = 300;

/** A refusal, with the protocol's stable `code`. */
export class ProtocolError extends Error {
  constructor(code, message) {
    super(`${message} (${code})`);
    this.code = code;
  }
}

function b64urlDecode(text) {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) throw new ProtocolError("malformed", "bad base64");
  return Buffer.from(text, "base64url");
}

const b64urlEncode = (bytes) => Buffer.from(bytes).toString("base64url");

/** RFC 3339 (as the authority writes it) to Unix seconds. */
export function parseTime(text) {
  if (typeof text !== "string" || !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(text)) {
    throw new ProtocolError("malformed", `bad time ${JSON.stringify(text)}`);
  }
  const ms = Date.parse(text);
  if (Number.isNaN(ms)) throw new ProtocolError("malformed", `bad time ${text}`);
  return Math.floor(ms / 1000);
}

function checksum(random) {
  // CRC32 in six base62 digits, most significant first.
  let crc = crc32(Buffer.from(random));
  const out = [];
  for (let i = 0; i < CHECKSUM_LEN; i++) {
    out.push(ALPHABET[crc % 62]);
    crc = Math.floor(crc / 62);
  }
  return out.reverse().join("");
}

/**
 * A license key another system issued, imported as it is (§30): not `tsr_…`
 * nor `tsa_…`, 8–512 printable ASCII characters without spaces. It has no
 * checksum; a mistyped one is simply not found.
 */
export function isForeignKey(t) {
  return !t.startsWith(TOKEN_PREFIX) && !t.startsWith("tsa_") && t.length >= 8 && t.length <= 512 && /^[\x21-\x7e]+$/.test(t);
}

/** A license token `tsr_…` (a mistyped one fails its checksum offline), or another system's key imported as it is. */
export class LicenseToken {
  #text;
  constructor(text) {
    const t = String(text).trim();
    if (isForeignKey(t)) {
      this.#text = t;
      return;
    }
    const body = t.slice(TOKEN_PREFIX.length);
    if (!t.startsWith(TOKEN_PREFIX) || body.length !== RANDOM_LEN + CHECKSUM_LEN) {
      throw new ProtocolError("invalid_token", "not a license token (tsr_ and 36 characters)");
    }
    if ([...body].some((c) => !ALPHABET.includes(c))) {
      throw new ProtocolError("invalid_token", "a license token is base62");
    }
    if (checksum(body.slice(0, RANDOM_LEN)) !== body.slice(RANDOM_LEN)) {
      throw new ProtocolError("invalid_token", "the token's checksum does not match: mistyped?");
    }
    this.#text = t;
  }
  secret() {
    return this.#text;
  }
  /** The `tfp` claim: the first 16 hex characters of SHA-256(token). */
  fingerprint() {
    return createHash("sha256").update(this.#text).digest("hex").slice(0, 16);
  }
  toString() {
    // Never the whole token: it is a secret.
    return `LicenseToken(…${this.#text.slice(-4)})`;
  }
}

const ED25519_SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

/** Pinned keys by kid; a retired one (`k4.public…@<time>`) with its retirement. */
export class TrustedKeys {
  constructor() {
    this.keys = new Map();
    this.retired = new Map();
  }
  pin(text) {
    const [keyText, retired] = String(text).trim().split("@");
    if (!keyText.startsWith("k4.public.")) {
      throw new ProtocolError("invalid_key", 'a public key is a PASERK string starting with "k4.public."');
    }
    const raw = b64urlDecode(keyText.slice("k4.public.".length));
    if (raw.length !== 32) throw new ProtocolError("invalid_key", "the public key's PASERK encoding is invalid");
    const kid = createHash("sha256").update(raw).digest("hex").slice(0, 16);
    const key = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: "der", type: "spki" });
    this.keys.set(kid, key);
    if (retired) this.retired.set(kid, parseTime(retired));
    return this;
  }
}

function pae(pieces) {
  const le64 = (n) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(n));
    return b;
  };
  return Buffer.concat([le64(pieces.length), ...pieces.flatMap((p) => [le64(p.length), p])]);
}

function timeField(raw, name, required) {
  const value = raw[name];
  if (value === undefined || value === null) {
    if (required) throw new ProtocolError("malformed", `claims: missing ${name}`);
    return null;
  }
  const t = parseTime(value);
  if (t < MIN_SUPPORTED || t > MAX_SUPPORTED) {
    throw new ProtocolError("out_of_range", `${name} outside 1970-01-01 … 9999-12-31`);
  }
  return t;
}

/**
 * Verify a status document in the order of docs/PROTOCOL.md §4; the only way
 * to get claims.
 */
export function verify(bytes, keys, tokenFingerprint, now, options = {}) {
  // From the authority (§4), or from a site relay it certified (§26).
  const footer = peekFooter(bytes);
  if (footer && typeof footer === "object" && footer.bundle != null) {
    return verifyRelayed(bytes, footer, keys, tokenFingerprint, now, options);
  }
  return verifyDirect(bytes, keys, tokenFingerprint, now, options);
}

function verifyDirect(bytes, keys, tokenFingerprint, now, options = {}) {
  const { nonce = null, enforceFreshness = true, maxClockDrift = DEFAULT_MAX_CLOCK_DRIFT, machine = null, product = null } = options;
  const data = Buffer.from(bytes);
  if (data.length > MAX_DOCUMENT_BYTES) {
    throw new ProtocolError("document_too_large", `${data.length} bytes, over ${MAX_DOCUMENT_BYTES}`);
  }
  let text;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(data);
  } catch {
    throw new ProtocolError("malformed", "not UTF-8");
  }
  if (!text.startsWith(HEADER)) throw new ProtocolError("malformed", "not a v4.public token");
  const parts = text.slice(HEADER.length).split(".");
  if (parts.length < 1 || parts.length > 2) throw new ProtocolError("malformed", "bad PASETO encoding");
  const body = b64urlDecode(parts[0]);
  const footer = parts.length === 2 ? b64urlDecode(parts[1]) : Buffer.alloc(0);
  if (body.length < 64) throw new ProtocolError("malformed", "bad PASETO encoding");
  // Only the canonical text of these bytes is accepted.
  const canonical = HEADER + b64urlEncode(body) + (footer.length ? "." + b64urlEncode(footer) : "");
  if (canonical !== text) throw new ProtocolError("malformed", "non-canonical encoding");
  if (!footer.length) throw new ProtocolError("missing_key_id", "no footer: no key named");
  let kid;
  try {
    kid = JSON.parse(footer.toString("utf-8")).kid;
  } catch {
    kid = undefined;
  }
  if (typeof kid !== "string") throw new ProtocolError("missing_key_id", "the footer names no key");
  const key = keys.keys.get(kid);
  if (!key) throw new ProtocolError("unknown_key_id", `key ${kid.slice(0, 32)} is not pinned`);
  const message = body.subarray(0, body.length - 64);
  const signature = body.subarray(body.length - 64);
  if (!edVerify(null, pae([Buffer.from(HEADER), message, footer, Buffer.alloc(0)]), key, signature)) {
    throw new ProtocolError("bad_signature", "the signature does not verify");
  }
  let raw;
  try {
    raw = JSON.parse(message.toString("utf-8"));
  } catch {
    raw = null;
  }
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) {
    throw new ProtocolError("malformed", "claims: not a JSON object");
  }
  if (!Number.isInteger(raw.rev) || typeof raw.status !== "string" || typeof raw.valid !== "boolean" || typeof raw.tfp !== "string") {
    throw new ProtocolError("malformed", "claims: missing or bad fields");
  }
  if (raw.rev < 0 || raw.rev > MAX_REVISION) throw new ProtocolError("out_of_range", "rev is above 2^53");
  const iat = timeField(raw, "iat", true);
  const exp = timeField(raw, "exp", true);
  const refreshAfter = timeField(raw, "refresh_after", true);
  const expiresAt = timeField(raw, "expires_at", false);
  timeField(raw, "valid_from", false);
  if (exp < iat) throw new ProtocolError("malformed", "exp is before iat");
  const retiredAt = keys.retired.get(kid) ?? null;
  if (retiredAt !== null && (iat > retiredAt || exp > retiredAt + MAX_DOCUMENT_LIFETIME)) {
    throw new ProtocolError("key_retired", `key ${kid} was retired before this document`);
  }
  if (raw.tfp !== tokenFingerprint) throw new ProtocolError("token_mismatch", "the document answers for another token");
  if (nonce !== null && raw.nonce !== nonce) throw new ProtocolError("nonce_mismatch", "the document does not answer this request");
  // A document bound to a machine (`mfp`) is that machine's alone (§19).
  if (machine !== null && raw.mfp != null && raw.mfp !== machine) {
    throw new ProtocolError("fingerprint_mismatch", "the document answers for another machine");
  }
  // A license of another product (§28); no product named means `default`.
  if (product !== null && raw.lic != null) {
    const found = raw.product ?? "default";
    if (found !== product) {
      throw new ProtocolError("wrong_product", `the license is for product "${String(found).slice(0, 64)}", this product is "${product}"`);
    }
  }
  if (enforceFreshness) {
    if (now > exp) throw new ProtocolError("document_expired", "the document's exp has passed");
    if (iat > now + maxClockDrift) throw new ProtocolError("issued_in_future", "the document is signed ahead of the local clock");
  }
  return Object.freeze({
    raw,
    tfp: raw.tfp,
    status: raw.status,
    valid: raw.valid,
    rev: raw.rev,
    iat,
    exp,
    refreshAfter,
    expiresAt,
    features: (raw.features ?? []).map(String),
    entitlements: raw.entitlements ?? {},
    onExpiry: raw.on_expiry ?? "lose_access",
    enforcement: raw.enforcement ?? "enforce",
    kid,
    retiredAt,
  });
}

/** The rollback rule (§5): "accept", "same" or "reject". */
const BUNDLE_TYPE = "tessera-site-bundle/1";
const MAX_BUNDLE_BYTES = 8 * 1024;
const MAX_CHAIN = 3;

const relayRefused = (reason) => new ProtocolError("malformed", `relayed document: ${reason}`);

/** The footer's JSON, unverified (which way to verify), or null. */
function peekFooter(bytes) {
  try {
    const text = new TextDecoder("utf-8", { fatal: true }).decode(Buffer.from(bytes));
    if (!text.startsWith(HEADER)) return null;
    const parts = text.slice(HEADER.length).split(".");
    return parts.length === 2 ? JSON.parse(b64urlDecode(parts[1]).toString("utf-8")) : null;
  } catch {
    return null;
  }
}

/** A site bundle and the chain above it (§26); `now` null skips expiry. */
function verifyBundle(text, keys, now, depth) {
  if (typeof text !== "string" || !text.startsWith(HEADER)) throw relayRefused("the bundle is not a v4.public token");
  const parts = text.slice(HEADER.length).split(".");
  if (parts.length !== 2) throw relayRefused("the bundle names no key");
  const body = b64urlDecode(parts[0]);
  const footerBytes = b64urlDecode(parts[1]);
  if (body.length < 64 || HEADER + b64urlEncode(body) + "." + b64urlEncode(footerBytes) !== text) {
    throw relayRefused("the bundle's encoding is not canonical");
  }
  let footer;
  try {
    footer = JSON.parse(footerBytes.toString("utf-8"));
  } catch {
    footer = null;
  }
  if (!footer || typeof footer.kid !== "string" || typeof footer.typ !== "string") throw relayRefused("the bundle names no key");
  if (footer.typ !== BUNDLE_TYPE) throw relayRefused("not a site bundle");
  let parent = null;
  if (footer.parent != null) {
    if (depth >= MAX_CHAIN) throw relayRefused(`more than ${MAX_CHAIN} relays in the chain`);
    parent = verifyBundle(footer.parent, keys, now, depth + 1);
  }
  let key;
  if (parent === null) {
    key = keys.keys.get(footer.kid);
    if (!key) throw new ProtocolError("unknown_key_id", `key ${footer.kid.slice(0, 32)} is not pinned`);
  } else {
    const relay = new TrustedKeys().pin(String(parent.relay_key));
    key = relay.keys.get(footer.kid);
    if (!key) throw relayRefused("a bundle signed by another key than its parent's relay");
  }
  const message = body.subarray(0, body.length - 64);
  const signature = body.subarray(body.length - 64);
  if (!edVerify(null, pae([Buffer.from(HEADER), message, footerBytes, Buffer.alloc(0)]), key, signature)) {
    throw new ProtocolError("bad_signature", "the bundle's signature does not verify");
  }
  let bundle;
  try {
    bundle = JSON.parse(message.toString("utf-8"));
    bundle.expSecs = parseTime(bundle.exp);
    if (!Array.isArray(bundle.licenses)) throw new Error("licenses");
  } catch {
    throw relayRefused("bundle: missing or bad fields");
  }
  if (now !== null && now > bundle.expSecs) throw new ProtocolError("document_expired", "the relay's bundle has ended");
  if (parent !== null) checkChild(bundle, parent);
  return bundle;
}

const endOf = (l) => (l.expires_at == null ? null : parseTime(l.expires_at));
const withinEnd = (end, bound) => bound === null || (end !== null && end <= bound);
const bundleLicense = (bundle, tfp) => bundle.licenses.find((l) => l && l.tfp === tfp) ?? null;

/** A relay's bundle for a relay below grants no more than its own. */
function checkChild(child, parent) {
  if (child.expSecs > parent.expSecs) throw relayRefused("a bundle outlives its parent");
  for (const l of child.licenses) {
    const p = bundleLicense(parent, l.tfp);
    if (p === null) throw relayRefused("a bundle names a license its parent does not");
    const cm = l.max_machines ?? null;
    const pm = p.max_machines ?? null;
    const same =
      l.license === p.license &&
      l.rev === p.rev &&
      l.status === p.status &&
      (!l.valid || p.valid) &&
      (l.machine_mode ?? null) === (p.machine_mode ?? null) &&
      (l.features ?? []).every((f) => (p.features ?? []).includes(f)) &&
      withinEnd(endOf(l), endOf(p)) &&
      (pm === null || (cm !== null && cm <= pm));
    if (!same) throw relayRefused(`a bundle grants more for ${l.license} than its parent`);
  }
}

/** §26: the bundle chain by the pinned keys, the document by the relay key
 * it certifies (all of §4), then the bundle's bounds. */
function verifyRelayed(bytes, footer, keys, tokenFingerprint, now, options) {
  const data = Buffer.from(bytes);
  if (data.length > MAX_DOCUMENT_BYTES) {
    throw new ProtocolError("document_too_large", `${data.length} bytes, over ${MAX_DOCUMENT_BYTES}`);
  }
  if (typeof footer.bundle !== "string" || footer.bundle.length > MAX_BUNDLE_BYTES) throw relayRefused("the bundle is over 8 KiB");
  const enforce = options.enforceFreshness ?? true;
  const bundle = verifyBundle(footer.bundle, keys, enforce ? now : null, 1);
  const relay = new TrustedKeys().pin(String(bundle.relay_key));
  if (!relay.keys.has(footer.kid)) throw relayRefused("signed by another key than the bundle's relay");
  const claims = verifyDirect(bytes, relay, tokenFingerprint, now, options);
  checkBounds(claims, bundle);
  return claims;
}

function checkBounds(c, bundle) {
  const raw = c.raw;
  if (c.exp > bundle.expSecs) throw relayRefused("it outlives its bundle");
  // "No such license" grants nothing: a relay may say it of any token.
  if (c.status === "not_found" && raw.lic == null && !c.valid && c.features.length === 0) return;
  const license = bundleLicense(bundle, c.tfp);
  if (license === null) throw relayRefused("the bundle does not name this license");
  if (raw.lic !== license.license || c.rev !== license.rev) {
    throw relayRefused("it names another license or revision than the bundle");
  }
  if (c.valid && !license.valid) throw relayRefused(`it grants a license the bundle says is ${license.status}`);
  const extra = c.features.find((f) => !(license.features ?? []).includes(f));
  if (extra !== undefined) throw relayRefused(`it grants "${extra}", which the bundle does not`);
  if (!withinEnd(c.expiresAt, endOf(license))) throw relayRefused("it extends the license past the bundle's end");
  const most = license.max_machines ?? null;
  if (most !== null) {
    const m = raw.machine;
    if (!m || typeof m !== "object") throw relayRefused("it answers with no machine for a license that counts them");
    if (m.max == null || m.max > most || (m.used ?? 0) > most) {
      throw relayRefused(`it counts more than the bundle's ${most} machines`);
    }
  }
}

/** `mfp`: the first 32 hex characters of SHA-256 of a machine fingerprint (§19). */
export function fingerprintHash(fingerprint) {
  return createHash("sha256").update(fingerprint, "utf-8").digest("hex").slice(0, 32);
}

/**
 * The configured fingerprint, or one derived from the host's machine id
 * (else the persisted instance id) and the token — as the Rust SDK derives
 * it, so it differs per license and is no cross-vendor tracking id.
 */
export function machineFingerprint(explicit, hostId, instance, token) {
  if (explicit) return explicit;
  return fingerprintHash(`tessera-machine/1|${hostId || instance}|${token.fingerprint()}`);
}

export function checkRollback(held, next) {
  if (!held) return "accept";
  if (held.retiredAt !== null && next.iat > held.retiredAt && next.kid !== held.kid) return "accept";
  if (next.retiredAt !== null && held.iat > next.retiredAt) return "reject";
  if (next.rev !== held.rev) return next.rev > held.rev ? "accept" : "reject";
  if (next.iat !== held.iat) return next.iat > held.iat ? "accept" : "reject";
  return "same";
}
