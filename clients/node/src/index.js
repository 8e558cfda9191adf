// Tessera license client for Node: the core every client shares
// (docs/PROTOCOL.md §1–7): tokens, pinned keys, verification of signed status
// documents, the rollback rule, the clock mark and the verdict — held to the
// conformance suite in tests/conformance/ — and `Client`: disk state, refresh
// and activate round trips, polling, the change stream, listeners, offline
// files, usage, machines and metered quotas.
export { LicenseToken, ProtocolError, TrustedKeys, checkRollback, fingerprintHash, machineFingerprint, parseTime, verify } from "./protocol.js";
export { Holder, compute } from "./verdict.js";
export { Client, ClientError, backoffMs } from "./client.js";
export { QuotaError, Meters } from "./meter.js";
