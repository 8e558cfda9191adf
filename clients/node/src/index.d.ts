/** A refusal, with the protocol's stable error code. */
export class ProtocolError extends Error {
  readonly code: string;
}

/** A license token `tsr_…`; a mistyped one fails its checksum. */
export class LicenseToken {
  constructor(text: string);
  secret(): string;
  /** The `tfp` claim: first 16 hex characters of SHA-256(token). */
  fingerprint(): string;
}

/** Pinned keys; `pin("k4.public…")`, or `pin("k4.public…@<RFC 3339>")` for a retired one. */
export class TrustedKeys {
  pin(text: string): this;
}

export interface Claims {
  readonly raw: Record<string, unknown>;
  readonly tfp: string;
  readonly status: string;
  readonly valid: boolean;
  readonly rev: number;
  readonly iat: number;
  readonly exp: number;
  readonly refreshAfter: number;
  readonly expiresAt: number | null;
  readonly features: readonly string[];
  readonly entitlements: Record<string, unknown>;
  readonly onExpiry: string;
  readonly enforcement: string;
  readonly kid: string;
  readonly retiredAt: number | null;
}

export interface VerifyOptions {
  /** This machine's `mfp`: a document bound to another machine is refused (`fingerprint_mismatch`). */
  machine?: string | null;
  nonce?: string | null;
  enforceFreshness?: boolean;
  maxClockDrift?: number;
}

/** Verify a status document (times in Unix seconds); throws ProtocolError. */
export function verify(bytes: Uint8Array | string, keys: TrustedKeys, tokenFingerprint: string, now: number, options?: VerifyOptions): Claims;

/** The rollback rule. */
export function checkRollback(held: Claims | null, next: Claims): "accept" | "same" | "reject";

/** RFC 3339 to Unix seconds. */
export function parseTime(text: string): number;

export interface Verdict {
  readonly state: "valid" | "expired" | "suspended" | "revoked" | "not_found" | "instance_limit" | "too_many_machines" | "not_activated" | "lease_expired" | "unverified";
  readonly reason: "no_document" | "clock_tampered" | "stale" | null;
  readonly revision: number | null;
  readonly features: readonly string[];
  readonly warnings: readonly string[];
  readonly afterExpiry: string | null;
  /** What the held document says of the license (null without one). */
  readonly plan: string | null;
  readonly customer: string | null;
  /** Unix seconds; null for a perpetual license. */
  readonly expiresAt: number | null;
  /** Days left, a started day counting as a day; past the end, whole days since. */
  readonly daysLeft: number | null;
  readonly maxUsers: number | null;
}

export function compute(claims: Claims | null, now: number, mark: number | null, options?: { tolerance?: number; maxClockDrift?: number; releasedAt?: number | null }): Verdict;

/** The held state: newest verified document and the clock mark. */
export class Holder {
  constructor(options: { keys: TrustedKeys; token: LicenseToken; tolerance?: number; maxClockDrift?: number });
  document: Claims | null;
  mark: number | null;
  load(document: string | null, mark: number | null): void;
  readonly documentText: string | null;
  offer(bytes: Uint8Array, now: number): "accepted" | "same" | "rolled_back";
  accept(claims: Claims, text: string, now: number, rebase?: boolean): "accepted" | "same" | "rolled_back";
  verdict(now: number): Verdict;
}

/** Why a round trip failed. */
export class ClientError extends Error {
  readonly kind: "no_token" | "network" | "timeout" | "http_status" | "invalid_answer" | "verification" | "rollback";
  /** The wait the authority asked for (`Retry-After`), capped at 5 minutes. */
  readonly retryAfterMs: number | null;
  /** The HTTP status of an `http_status` error. */
  readonly status: number | null;
}

/** A consumption refused and not counted. */
export class QuotaError extends Error {
  readonly code: "quota_exhausted" | "unknown_quota" | "not_granted" | "invalid_amount";
  /** What is left, for `quota_exhausted`. */
  readonly remaining: number | null;
}

/** The meters of a held license (what `Client.consume` uses). */
export class Meters {
  sync(claims: Claims | null, now: number): void;
  consume(feature: string, amount: number): number;
  remaining(feature: string): number | null;
  snapshot(): Record<string, { limit: number; used: number }>;
}

/** The wait before the next attempt after `failures` failures. */
export function backoffMs(failures: number, error?: ClientError | null): number;
/** `mfp`: the first 32 hex characters of SHA-256 of a machine fingerprint. */
export function fingerprintHash(fingerprint: string): string;

export interface ClientOptions {
  servers: string[];
  publicKeys: string[];
  token?: string | null;
  stateDir?: string | null;
  clock?: () => number;
  timeoutMs?: number;
  tickMs?: number;
  watch?: boolean;
  streamReadTimeoutMs?: number;
  /** A file of `tessera license export` (or the bare document), taken at start. */
  offlineFile?: string | null;
  /** This machine's fingerprint (default: derived from the host's machine id and the token). */
  fingerprint?: string | null;
  /** The product this client is part of: a license of another product is refused (`wrong_product`). */
  product?: string | null;
  /** How often the user count is reported (default 15 minutes). */
  usageIntervalMs?: number;
  /** How often consumption is reported (default 10 s). */
  consumptionIntervalMs?: number;
  /** How often the held revision is acknowledged again on an open stream (default 5 minutes). */
  ackIntervalMs?: number;
}

export interface Status {
  readonly verdict: Verdict;
  readonly lastVerifiedAt: number | null;
  readonly offlineSince: number | null;
  readonly lastError: { kind: string; message: string; at: number } | null;
}

/** The client a product embeds. */
export class Client {
  constructor(options: ClientOptions);
  readonly instanceId: string;
  readonly connected: boolean;
  readonly verdict: Verdict;
  readonly status: Status;
  /** The held signed document as received, or null. */
  readonly document: string | null;
  hasFeature(name: string): boolean;
  isValid(): boolean;
  onChange(fn: (verdict: Verdict) => void): void;
  /** Loads the disk state and publishes its verdict; never waits for the network. */
  start(): this;
  close(): void;
  refresh(): Promise<Verdict>;
  activate(token: string): Promise<Verdict>;
  /** Takes an exported document: verified, by the rollback rule; throws ProtocolError when refused. */
  importOffline(bytes: Uint8Array | string): Verdict;
  /** The product's user count; reported when it changes and every usage interval. */
  setUsers(users: number): void;
  /** This machine's fingerprint for the held token. */
  fingerprint(): string | null;
  /** Takes (or holds) a place for this machine. */
  activateMachine(): Promise<Verdict>;
  /** Gives this machine's place back. */
  deactivate(): Promise<Verdict>;
  /** Counts `amount` of a metered feature (no I/O); what is left. Throws QuotaError. */
  consume(feature: string, amount?: number): number;
  /** What is left of `feature`'s limit this period, or null. */
  remaining(feature: string): number | null;
  /** Each metered feature's limit and estimated use. */
  quotas(): Record<string, { limit: number; used: number }>;
  /** Reports what was consumed, now. */
  flushConsumption(): Promise<void>;
}
