// The boundary: checks every value the platform hands to the package
// against the WIT type it will become, and converts times. jco's own
// lowering coerces rather than rejects (a `Headers` object is "an empty
// list", a string body becomes bytes of nothing), so a wrong shape would
// silently turn into a wrong verdict; here it is a BoundaryError.
//
// Shapes are jco's mapping of WIT: records are objects with camelCase
// keys, variants `{ tag, val }`, enums strings, options `undefined` (or
// absent), lists arrays, `list<u8>` Uint8Array, tuples arrays. Times are
// `Date` on the public side and u64 Unix milliseconds inside.
import { BoundaryError } from './errors.js';

const MAX_DATE_MS = 8.64e15;

/** @typedef {(v: any, path: string) => any} Check */

/** @type {Check} */
export const str = (v, p) => {
  if (typeof v !== 'string') throw new BoundaryError(p, 'a string', v);
  return v;
};
/** @type {Check} */
export const bool = (v, p) => {
  if (typeof v !== 'boolean') throw new BoundaryError(p, 'a boolean', v);
  return v;
};
/** @param {number} max @returns {Check} */
const uint = (max) => (v, p) => {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) throw new BoundaryError(p, `an integer from 0 to ${max}`, v);
  return v;
};
export const u16 = uint(0xffff);
export const u32 = uint(0xffffffff);
/** u64 as bigint, or a safe non-negative integer number. @type {Check} */
export const u64 = (v, p) => {
  if (typeof v === 'bigint' && v >= 0n && v <= 0xffffffffffffffffn) return v;
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return BigInt(v);
  throw new BoundaryError(p, 'a u64 (bigint, or a safe non-negative integer)', v);
};
/** @type {Check} */
export const bytes = (v, p) => {
  if (v instanceof Uint8Array) return v;
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  throw new BoundaryError(p, 'bytes (a Uint8Array or an ArrayBuffer; encode text with TextEncoder)', v);
};
/** A time: a valid `Date` (or Unix ms as a number) → u64 ms. @type {Check} */
export const time = (v, p) => {
  if (v instanceof Date) {
    const ms = v.getTime();
    if (Number.isNaN(ms) || ms < 0) throw new BoundaryError(p, 'a valid Date after 1970', v);
    return BigInt(ms);
  }
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return BigInt(v);
  throw new BoundaryError(p, 'a Date (or Unix milliseconds)', v);
};
/** @param {Check} t @returns {Check} */
export const opt = (t) => (v, p) => (v === undefined || v === null ? undefined : t(v, p));
/** @param {Check} t @returns {Check} */
export const list = (t) => (v, p) => {
  if (!Array.isArray(v)) throw new BoundaryError(p, 'an array', v);
  return v.map((x, i) => t(x, `${p}[${i}]`));
};
/** @param {Check[]} ts @returns {Check} */
export const tuple = (...ts) => (v, p) => {
  if (!Array.isArray(v) || v.length !== ts.length) throw new BoundaryError(p, `an array of ${ts.length}`, v);
  return ts.map((t, i) => t(v[i], `${p}[${i}]`));
};
/** @param {string[]} cases @returns {Check} */
export const enm = (cases) => (v, p) => {
  if (typeof v !== 'string' || !cases.includes(v)) throw new BoundaryError(p, `one of ${cases.map((c) => `'${c}'`).join(', ')}`, v);
  return v;
};
/**
 * A record: known keys only (an unknown key is a typo, refused).
 * @param {Record<string, Check>} fields @returns {Check}
 */
export const rec = (fields) => (v, p) => {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || Object.getPrototypeOf(v) !== Object.prototype && Object.getPrototypeOf(v) !== null) {
    throw new BoundaryError(p, `a plain object {${Object.keys(fields).join(', ')}}`, v);
  }
  for (const k of Object.keys(v)) if (!(k in fields)) throw new BoundaryError(`${p}.${k}`, `no such field (fields: ${Object.keys(fields).join(', ')})`, v[k]);
  /** @type {Record<string, any>} */
  const out = {};
  for (const [k, t] of Object.entries(fields)) {
    const x = t(v[k], `${p}.${k}`);
    if (x !== undefined) out[k] = x;
  }
  return out;
};
/**
 * A variant `{ tag, val }`; a case mapped to `null` has no payload.
 * @param {Record<string, Check | null>} cases @returns {Check}
 */
export const variant = (cases) => (v, p) => {
  if (v === null || typeof v !== 'object' || typeof v.tag !== 'string' || !(v.tag in cases)) {
    throw new BoundaryError(p, `a variant { tag: ${Object.keys(cases).map((c) => `'${c}'`).join(' | ')}, val? }`, v);
  }
  const t = cases[v.tag];
  for (const k of Object.keys(v)) if (k !== 'tag' && k !== 'val') throw new BoundaryError(`${p}.${k}`, 'no such member of a variant', v[k]);
  if (t === null) {
    if (v.val !== undefined) throw new BoundaryError(`${p}.val`, `no payload for '${v.tag}'`, v.val);
    return { tag: v.tag };
  }
  return { tag: v.tag, val: t(v.val, `${p}.val`) };
};

// --- The WIT types the platform passes in ---------------------------------

/** A header: `{ name, value }` or `[name, value]`. */
export const header = /** @type {Check} */ ((v, p) => {
  if (Array.isArray(v)) {
    const [name, value] = tuple(str, str)(v, p);
    return { name, value };
  }
  return rec({ name: str, value: str })(v, p);
});
/** Field lines in order. A `Headers` object is refused: pass `[...headers]`. */
export const headers = /** @type {Check} */ ((v, p) => {
  if (typeof Headers !== 'undefined' && v instanceof Headers) {
    throw new BoundaryError(p, 'an array of [name, value] field lines (a Headers object: pass [...headers]; note that it joins repeated fields)', v);
  }
  return list(header)(v, p);
});
export const transportError = variant({
  timeout: null, 'connection-refused': null, dns: null, tls: null, 'body-too-large': null,
  other: str, 'connection-lost': null, 'no-credentials': null,
});
export const storageError = variant({ conflict: null, unavailable: str, 'outcome-unknown': str, corrupt: str });
export const response = rec({ status: u16, headers: opt(headers), body: opt(bytes) });
export const responseHead = rec({ status: u16, headers: opt(headers) });
export const grantKind = enm(['authorization-code', 'refresh-token']);
export const apiAttempt = enm(['first', 'after-refresh']);
const param = tuple(str, str);
export const urlParams = rec({
  authorizeUrl: str, clientId: str, redirectUri: str, scopes: list(str), state: str, codeChallenge: str,
  extraParams: opt(list(param)),
});
export const connectionConfig = rec({
  environment: variant({ production: null, staging: null, custom: rec({ authorizeUrl: str, tokenUrl: str }) }),
  clientId: str,
  clientType: enm(['confidential', 'public']),
  redirectUri: str,
  scopes: list(str),
  issuer: opt(str),
  requireIss: opt(bool),
  settings: opt(list(param)),
  revocationUrl: opt(str),
  refreshMarginSeconds: opt(u32),
  maxBackoffSeconds: opt(u32),
  stallAfterSeconds: opt(u32),
});
export const beginOptions = rec({
  extraScopes: opt(list(str)), returnTo: opt(str), extraParams: opt(list(param)), ttlSeconds: opt(u32),
});
export const entry = rec({ value: bytes, version: u64 });

/** Fills the WIT defaults the public API lets a caller leave out. */
export function fillResponse(r) {
  return { status: r.status, headers: r.headers ?? [], body: r.body ?? new Uint8Array() };
}
export function fillConfig(c) {
  return { requireIss: false, settings: [], ...c };
}

// --- What comes out: times as Date ------------------------------------------

/** u64 Unix ms → Date (clamped to the latest Date, year 275760). */
export function toDate(ms) {
  const n = Number(ms);
  return new Date(n > MAX_DATE_MS ? MAX_DATE_MS : n);
}

/**
 * Converts a value lifted from the component for the platform: every u64
 * the component returns to a platform is a Unix-ms time, so every bigint
 * becomes a `Date`, and a record key `…Ms` loses its suffix
 * (`expiresAtMs` → `expiresAt`, `untilMs` → `until`). `Uint8Array`s stay.
 */
export function datesOut(v) {
  if (typeof v === 'bigint') return toDate(v);
  if (Array.isArray(v)) return v.map(datesOut);
  if (v === null || typeof v !== 'object' || v instanceof Uint8Array) return v;
  /** @type {Record<string, any>} */
  const out = {};
  for (const [k, x] of Object.entries(v)) {
    const isTime = typeof x === 'bigint' || (x === undefined && /Ms$/.test(k));
    out[isTime && /.Ms$/.test(k) ? k.slice(0, -2) : k] = datesOut(x);
  }
  return out;
}
