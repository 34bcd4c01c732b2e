// Shared by the tests: reading the vector files (integers kept exact),
// and turning jco-shaped values into the vectors' serde JSON form.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const VECTORS = resolve(process.env.PLEO_OAUTH_VECTORS ?? join(here, '..', '..', '..', 'tests', 'vectors'));

/**
 * JSON.parse keeping integers beyond 2^53 exact (as BigInt). Strings are
 * matched first, so digits inside them are left alone.
 */
export function parseExact(text) {
  const marked = text.replace(/"(?:[^"\\]|\\.)*"|-?\d{16,}(?![.eE\d])/g, (m) => (m[0] === '"' ? m : `{"$bigint":"${m}"}`));
  return JSON.parse(marked, (_k, v) => (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 1 && '$bigint' in v
    ? (Number.isSafeInteger(Number(v.$bigint)) ? Number(v.$bigint) : BigInt(v.$bigint))
    : v));
}

/** A vector file, with its cases' fields checked against `fields` (unknown fields are an error). */
export function load(file, fields) {
  const suite = parseExact(readFileSync(join(VECTORS, file), 'utf8'));
  const top = Object.keys(suite).filter((k) => !['suite', 'description', 'cases'].includes(k));
  if (top.length) throw new Error(`${file}: unknown top-level fields ${top}`);
  for (const c of suite.cases) {
    const unknown = Object.keys(c).filter((k) => !fields.includes(k));
    if (unknown.length) throw new Error(`${file}: ${c.name}: unknown fields ${unknown}`);
  }
  return suite;
}

export const camel = (k) => k.replace(/-([a-z0-9])/g, (_, c) => c.toUpperCase());
export const kebab = (k) => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** A vector body (`text`, `hex`, `repeat`) as bytes. */
export function body(spec) {
  if (spec === undefined) return new Uint8Array();
  const keys = Object.keys(spec);
  if (keys.length !== 1) throw new Error(`a body has exactly one of text, hex, repeat: ${JSON.stringify(spec)}`);
  if ('text' in spec) return new TextEncoder().encode(spec.text);
  if ('hex' in spec) return Uint8Array.from(spec.hex.match(/../g) ?? [], (h) => parseInt(h, 16));
  if ('repeat' in spec) return new TextEncoder().encode(spec.repeat.text.repeat(spec.repeat.count));
  throw new Error(`unknown body ${keys}`);
}

/** serde's externally tagged enum value → jco variant `{ tag, val }`. */
export function variantIn(v) {
  if (typeof v === 'string') return { tag: v };
  const [[tag, val]] = Object.entries(v);
  return { tag, val };
}

/** A vector `input` → the public API's argument: a response or `{ transportError }`. */
export function input(spec, { head = false } = {}) {
  const keys = Object.keys(spec);
  if (keys.length !== 1) throw new Error(`an input has exactly one of response, transport-error`);
  if ('transport-error' in spec) return { transportError: variantIn(spec['transport-error']) };
  const r = spec.response;
  const extra = Object.keys(r).filter((k) => !['status', 'headers', 'body'].includes(k));
  if (extra.length) throw new Error(`unknown response fields ${extra}`);
  if (head && 'body' in r) throw new Error('API cases have no body');
  const out = { status: r.status, headers: r.headers ?? [] };
  if (!head) out.body = body(r.body);
  return out;
}

/**
 * A jco-shaped value (times as Date) → the vectors' serde JSON:
 * variants `{ tag }` → "tag", `{ tag, val }` → { tag: val }; records with
 * kebab-case keys, `undefined` members left out; Date → Unix ms (and
 * its key gets back the `-ms` the public API drops).
 */
export function toSerde(v) {
  if (v === undefined || v === null) return null;
  if (v instanceof Date) return v.getTime();
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v;
  if (Array.isArray(v)) return v.map(toSerde);
  if (typeof v !== 'object') return v;
  if (typeof v.tag === 'string' && Object.keys(v).every((k) => k === 'tag' || k === 'val')) {
    return 'val' in v ? { [v.tag]: toSerde(v.val) } : v.tag;
  }
  const out = {};
  for (const [k, x] of Object.entries(v)) if (x !== undefined) out[kebab(k) + (x instanceof Date ? '-ms' : '')] = toSerde(x);
  return out;
}

/** Expected serde JSON with record members that are `null` left out (a `none` may be written or omitted). */
export function normalise(v) {
  if (Array.isArray(v)) return v.map(normalise);
  if (v === null || typeof v !== 'object') return v;
  const entries = Object.entries(v);
  const out = {};
  for (const [k, x] of entries) if (!(x === null && entries.length > 1)) out[k] = normalise(x);
  return out;
}

/** Per-file tallies, printed at the end of a run. */
export function tally(file, passed, total) {
  console.log(`vectors ${file}: ${passed}/${total} agree`);
}
