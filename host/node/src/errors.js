// Errors of the package. Every refusal or failure of a lifecycle call is
// thrown as a PleoOAuthError subclass carrying the WIT value (`.variant`,
// jco's shape: `{ tag, val }`, with times as `Date`). Messages never hold a
// token, a secret, a code or a state: only case names and operator text
// that the component itself guarantees secret-free.

/** Base class: `operation` is the call that failed, `variant` the WIT error. */
export class PleoOAuthError extends Error {
  /**
   * @param {string} message
   * @param {{ operation?: string, variant?: unknown, cause?: unknown }} [options]
   */
  constructor(message, options = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    /** @type {string | undefined} */
    this.operation = options.operation;
    /** The WIT error value, `{ tag, val }` (times as `Date`). */
    this.variant = options.variant;
  }
  /** The WIT case name, e.g. `reauthenticate`, `unknown-connection`. */
  get tag() {
    return /** @type {any} */ (this.variant)?.tag;
  }
}

/** `connections.access-token` / `report` refused: `refusal` (reauthenticate, wait, client-misconfigured, not-connected, storage). */
export class RefusalError extends PleoOAuthError {}
/** `configure` failed: `configure-error` (invalid, storage). */
export class ConfigureError extends PleoOAuthError {}
/** `status` / `retry-now` failed: `status-error` (unknown-connection, storage). */
export class StatusError extends PleoOAuthError {}
/** `disconnect` failed: `disconnect-error`. */
export class DisconnectError extends PleoOAuthError {}
/** `get-config`, `forget` or `list` failed: `storage-error`. */
export class StorageError extends PleoOAuthError {}
/** `authorize.begin` failed: `begin-error`. */
export class BeginError extends PleoOAuthError {}
/** `authorize.complete` failed: `complete-error` (rejected, denied, exchange-failed, storage). */
export class CompleteError extends PleoOAuthError {}
/** A pure function refused its input: `verifier-error`, `url-error`, `challenge-error`. */
export class InvalidInputError extends PleoOAuthError {}

/**
 * A value passed to the package has the wrong shape (a `Headers` object
 * where a list of field lines is needed, a string body, a number out of
 * range). Thrown before the component is called: a wrong shape is an
 * error, never a verdict.
 */
export class BoundaryError extends TypeError {
  /** @param {string} path @param {string} expected @param {unknown} got */
  constructor(path, expected, got) {
    super(expected.startsWith('no ') ? `${path}: ${expected}` : `${path}: expected ${expected}, got ${describe(got)}`);
    this.name = 'BoundaryError';
    this.path = path;
  }
}

/**
 * The component trapped (a bug in it, or an import called on the step
 * path). The instance is discarded; the next call gets a fresh one.
 */
export class ComponentTrapError extends PleoOAuthError {}

/**
 * A platform backend (storage, clock, random) threw something the
 * contract has no case for, or broke the step loop's rules. The operation
 * was abandoned (storage stays consistent: every write is a
 * compare-and-swap); the instance stays usable.
 */
export class HostError extends PleoOAuthError {}

/**
 * Thrown by a storage backend to report a WIT `storage-error`:
 * `new StorageFailure('conflict')`, `new StorageFailure('unavailable', 'disk full')`.
 * Anything else a backend throws is reported as `unavailable` (reads) or
 * `outcome-unknown` (writes), naming only the error's class.
 */
export class StorageFailure extends Error {
  /** @param {'conflict'|'unavailable'|'outcome-unknown'|'corrupt'} kind @param {string} [text] */
  constructor(kind, text = kind) {
    super(`storage ${kind}: ${text}`);
    this.name = 'StorageFailure';
    if (!['conflict', 'unavailable', 'outcome-unknown', 'corrupt'].includes(kind)) {
      throw new TypeError(`StorageFailure: unknown kind ${describe(kind)}`);
    }
    this.kind = kind;
    this.text = String(text);
  }
  toWit() {
    return this.kind === 'conflict' ? { tag: 'conflict' } : { tag: this.kind, val: this.text };
  }
}

/**
 * Thrown by an HTTP backend to report a WIT `transport-error`:
 * `new TransportFailure('timeout')`, `new TransportFailure('other', 'text')`.
 * Anything else it throws is `other` with the error's class name only.
 */
export class TransportFailure extends Error {
  /** @param {'timeout'|'connection-refused'|'dns'|'tls'|'body-too-large'|'other'|'connection-lost'|'no-credentials'} kind @param {string} [text] */
  constructor(kind, text = kind) {
    super(`transport ${kind}${kind === 'other' ? `: ${text}` : ''}`);
    this.name = 'TransportFailure';
    this.kind = kind;
    this.text = String(text);
  }
  toWit() {
    return this.kind === 'other' ? { tag: 'other', val: this.text } : { tag: this.kind };
  }
}

/** @param {unknown} v */
export function describe(v) {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (typeof v === 'string') return `a string (${v.length} characters)`;
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return `${typeof v} ${String(v)}`;
  if (Array.isArray(v)) return `an array of ${v.length}`;
  const name = /** @type {any} */ (v)?.constructor?.name;
  return name && name !== 'Object' ? `a ${name}` : 'an object';
}
