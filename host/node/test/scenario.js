// The scenario backends of tests/vectors/README.md (Scenarios), in JS:
// in-memory compare-and-swap storage with injected write failures, a
// manual clock, a seeded random source and a scripted HTTP backend. The
// package drives them through its own step loop.
import { MemoryStorage } from '../src/storage.js';
import { StorageFailure, TransportFailure } from '../src/errors.js';
import { PleoOAuth } from '../src/index.js';
import { body, camel, variantIn } from './support.js';

export const START_MS = 1_700_000_000_000;

/** MemoryStorage whose next writes to a prefix fail with `unavailable`. */
export class FaultyStorage extends MemoryStorage {
  /** @type {string[]} */
  failing = [];
  failWrites(prefix, times) {
    for (let i = 0; i < times; i++) this.failing.push(prefix);
  }
  #fault(key) {
    const i = this.failing.findIndex((p) => key.startsWith(p));
    if (i >= 0) {
      this.failing.splice(i, 1);
      throw new StorageFailure('unavailable', 'injected');
    }
  }
  async put(key, value, expected) {
    this.#fault(key);
    return super.put(key, value, expected);
  }
  async delete(key, expected) {
    this.#fault(key);
    return super.delete(key, expected);
  }
}

/** `sleep(n)` advances the clock by n and returns at once. */
export class ManualClock {
  ms = START_MS;
  now() {
    return this.ms;
  }
  async sleep(ms) {
    this.ms += ms;
  }
}

/** splitmix64 from a seed: deterministic bytes. */
export function seededRandom(seed = 42n) {
  let state = BigInt(seed);
  const mask = (1n << 64n) - 1n;
  return (len) => {
    const out = new Uint8Array(len);
    for (let i = 0; i < len; i += 8) {
      state = (state + 0x9e3779b97f4a7c15n) & mask;
      let z = state;
      z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & mask;
      z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & mask;
      z ^= z >> 31n;
      for (let j = 0; j < 8 && i + j < len; j++) out[i + j] = Number((z >> BigInt(8 * j)) & 0xffn);
    }
    return out;
  };
}

/** Answers requests in order from a script; with none left, `other`. */
export class ScriptedHttp {
  script = [];
  sent = [];
  /** @param {object} answer a vector input: `{ response }` or `{ "transport-error" }` */
  push(answer) {
    this.script.push(answer);
  }
  async send(request) {
    this.sent.push(request);
    const answer = this.script.shift();
    if (!answer) throw new TransportFailure('other', 'no scripted response left');
    if ('transport-error' in answer) {
      const { tag, val } = variantIn(answer['transport-error']);
      throw new TransportFailure(tag, val);
    }
    const r = answer.response;
    return { status: r.status, headers: r.headers ?? [], body: body(r.body) };
  }
}

/** Fresh backends and a package over them. */
export async function fixture({ build = 'checked' } = {}) {
  const storage = new FaultyStorage();
  const clock = new ManualClock();
  const http = new ScriptedHttp();
  const events = [];
  const oauth = await PleoOAuth.load({ storage, clock, http, random: seededRandom(42n), log: (e) => events.push(e), build });
  return { oauth, storage, clock, http, events };
}

export const DEFAULT_CONFIG = {
  environment: 'staging', 'client-id': 'client-123', 'client-type': 'confidential',
  'redirect-uri': 'https://app.example/callback', scopes: ['users:read', 'export-jobs:write'],
  issuer: null, 'require-iss': false, settings: [['ledger', '4000']],
};

/** The default configuration with a case's members merged in, as the package takes it. */
export function configWith(changes = {}) {
  const merged = { ...DEFAULT_CONFIG, ...changes };
  const out = {};
  for (const [k, v] of Object.entries(merged)) {
    if (v === null) continue;
    if (k === 'environment') {
      const e = variantIn(v);
      out.environment = e.val === undefined ? { tag: e.tag } : { tag: e.tag, val: Object.fromEntries(Object.entries(e.val).map(([a, b]) => [camel(a), b])) };
    } else out[camel(k)] = v;
  }
  return out;
}

/** The `state` of an authorisation URL. */
export const stateOf = (authorization) => new URL(authorization.url).searchParams.get('state');

/** An OAuth error code as sent on the wire: `invalid-client` → `invalid_client`, `other(x)` → x. */
export const wireCode = (code) => (code.tag === 'other' ? code.val : code.tag.replaceAll('-', '_'));
