// pleo-oauth for Node.js: the component's lifecycle through its step
// interface, with the platform's own asynchronous storage and HTTP.
//
//   const oauth = await PleoOAuth.load({ storage, credentials });
//   const { token } = await oauth.connections.accessToken('tenant-1');
//
// Success values are returned; refusals and failures are thrown as
// PleoOAuthError subclasses whose `variant` is the WIT error (`{ tag, val }`).
// Values are jco's mapping of the WIT types (records with camelCase keys,
// variants `{ tag, val }`, enums strings, options `undefined`), except that
// every time is a `Date` and its key loses the `Ms` suffix
// (`expiresAtMs: bigint` → `expiresAt: Date`), and that a value holding a
// token or an authorisation URL prints it as `[redacted]` in `console.log`
// and `util.inspect` (the value itself is unchanged).
import { webcrypto } from 'node:crypto';
import { inspect } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { Engine } from './engine.js';
import { FetchHttp } from './http.js';
import { MemoryStorage } from './storage.js';
import * as W from './wit.js';
import {
  BeginError, BoundaryError, CompleteError, ConfigureError, DisconnectError, InvalidInputError,
  PleoOAuthError, RefusalError, StatusError, StorageError,
} from './errors.js';

export {
  PleoOAuthError, RefusalError, ConfigureError, StatusError, DisconnectError, StorageError,
  BeginError, CompleteError, InvalidInputError, BoundaryError, ComponentTrapError, HostError,
  StorageFailure, TransportFailure,
} from './errors.js';
export { FetchHttp } from './http.js';
export { MemoryStorage } from './storage.js';
export { Engine } from './engine.js';

/** The error class of each operation's failure. */
const ERRORS = {
  configure: ConfigureError, 'get-config': StorageError, status: StatusError, 'access-token': RefusalError,
  report: RefusalError, disconnect: DisconnectError, 'retry-now': StatusError, forget: StorageError,
  list: StorageError, begin: BeginError, complete: CompleteError,
};

/**
 * Marks the `keys` of `value` as secret for `console.log` and `util.inspect`,
 * which then show `[redacted]` for them, so a result that is logged shows no
 * token (RFC 6750 §5.3). The values, the object's keys, `JSON.stringify` and
 * equality are unchanged: the marker is a non-enumerable symbol property.
 * @template T
 * @param {T} value
 * @param {string[]} keys
 * @returns {T}
 */
function redactedInLogs(value, keys) {
  if (value === null || typeof value !== 'object') return value;
  Object.defineProperty(value, inspect.custom, {
    enumerable: false,
    value(_depth, options, show) {
      const shown = { ...this };
      for (const key of keys) if (typeof shown[key] === 'string') shown[key] = '[redacted]';
      return show(shown, options);
    },
  });
  return value;
}

/** `reauthenticate (refresh-token-rejected)`: case names only, never a value that could be secret. */
function describeVariant(v) {
  if (v === undefined || v === null) return '';
  if (typeof v === 'string') return v;
  if (typeof v !== 'object' || !('tag' in v)) return '';
  const inner = v.val && typeof v.val === 'object' && !Array.isArray(v.val)
    ? 'tag' in v.val ? describeVariant(v.val) : Object.values(v.val).map(describeVariant).filter(Boolean).join(', ')
    : typeof v.val === 'string' && /^(unavailable|outcome-unknown|corrupt|failed|other|invalid-scope)$/.test(v.tag) ? v.val : '';
  return inner ? `${v.tag} (${inner})` : v.tag;
}

const connectionId = (v) => W.str(v, 'connection');

export class PleoOAuth {
  /**
   * @param {object} [options]
   * @param {import('./storage.js').Storage} [options.storage] default: a new MemoryStorage
   * @param {import('./http.js').Http} [options.http] default: FetchHttp with `credentials`
   * @param {import('./http.js').Credentials} [options.credentials] client secrets, for the default HTTP
   * @param {(event: object) => void} [options.log] each structured event (no secret in any)
   * @param {{ now(): number, sleep(ms: number): Promise<void> }} [options.clock] default: Date.now, setTimeout
   * @param {(len: number) => Uint8Array} [options.random] default: crypto.getRandomValues
   * @param {'fast' | 'trusted' | 'checked'} [options.build] `fast` (default): jco's lifting trusts the component and its debug logging is compiled out; `trusted`: lifting trusts the component;
   *   `checked`: every lifted value is checked as well (development)
   */
  static async load(options = {}) {
    const backends = {
      storage: options.storage ?? new MemoryStorage(),
      http: options.http ?? new FetchHttp({ credentials: options.credentials }),
      clock: options.clock ?? { now: () => Date.now(), sleep: (ms) => sleep(ms) },
      random: options.random ?? ((len) => webcrypto.getRandomValues(new Uint8Array(len))),
      log: options.log ?? (() => {}),
    };
    for (const [name, f] of [['get', 'get'], ['put', 'put'], ['delete', 'delete'], ['keys', 'keys']]) {
      if (typeof backends.storage[f] !== 'function') throw new BoundaryError(`storage.${name}`, 'a function', backends.storage[f]);
    }
    if (typeof backends.http.send !== 'function') throw new BoundaryError('http.send', 'a function', backends.http.send);
    const engine = await new Engine({ build: options.build ?? 'fast', backends }).load();
    return new PleoOAuth(engine);
  }

  /** @param {Engine} engine */
  constructor(engine) {
    this.engine = engine;
    const op = (tag, val) => this.#run(tag, val);
    this.connections = {
      /** Saves a connection's configuration (WIT `connection-config`, camelCase). */
      configure: async (connection, config) =>
        op('configure', { connection: connectionId(connection), config: W.fillConfig(W.connectionConfig(config, 'config')) }),
      getConfig: async (connection) => op('get-config', connectionId(connection)),
      status: async (connection) => op('status', connectionId(connection)),
      /** A bearer `{ token, expiresAt, scopes }`; a refusal is thrown as RefusalError. */
      accessToken: async (connection) => redactedInLogs(await op('access-token', connectionId(connection)), ['token']),
      /** What an API response means: `{ tag: 'proceed' | 'retry' | ... }`. `response`: `{ status, headers }`. */
      report: async (connection, accessToken, response) => {
        const head = W.responseHead(response, 'response');
        const action = await op('report', { connection: connectionId(connection), accessToken: W.str(accessToken, 'accessToken'), status: head.status, headers: head.headers ?? [] });
        if (action.tag === 'retry') redactedInLogs(action.val, ['token']);
        return action;
      },
      disconnect: async (connection, { revoke = false } = {}) =>
        op('disconnect', { connection: connectionId(connection), revoke: W.bool(revoke, 'revoke') }),
      retryNow: async (connection) => op('retry-now', connectionId(connection)),
      forget: async (connection) => op('forget', connectionId(connection)),
      list: async ({ after, limit = 100 } = {}) => op('list', { after: W.opt(W.str)(after, 'after'), limit: W.u32(limit, 'limit') }),
    };
    this.authorize = {
      /** `{ url, expiresAt, scopes }`: redirect the user to `url` (never log it). */
      begin: async (connection, options = {}) => {
        const o = W.beginOptions(options, 'options');
        const authorization = await op('begin', {
          connection: connectionId(connection),
          options: { extraScopes: o.extraScopes ?? [], returnTo: o.returnTo, extraParams: o.extraParams ?? [], ttlSeconds: o.ttlSeconds },
        });
        return redactedInLogs(authorization, ['url']);
      },
      /** From the redirect back: the full URL or its query string. */
      complete: async (callback, { connection } = {}) =>
        op('complete', { callback: W.str(callback, 'callback'), connection: W.opt(W.str)(connection, 'connection') }),
    };
    const pure = (name, f) => {
      try {
        return this.engine.call(f);
      } catch (e) {
        if (e && Object.prototype.hasOwnProperty.call(e, 'payload')) {
          throw new InvalidInputError(`${name}: ${describeVariant(e.payload) || e.payload?.kind || 'invalid'}`, { operation: name, variant: W.datesOut(e.payload) });
        }
        throw e;
      }
    };
    const now = (v) => W.time(v ?? new Date(), 'now');
    const outcome = (v, path) => {
      if (v && typeof v === 'object' && 'transportError' in v) {
        if (Object.keys(v).length !== 1) throw new BoundaryError(path, '{ transportError } alone', v);
        return { tag: 'err', val: W.transportError(v.transportError, `${path}.transportError`) };
      }
      return null;
    };
    /** Pure verdicts on responses the platform's own client received (WIT `classify`). */
    this.classify = {
      /** `response`: `{ status, headers: [name, value][], body: Uint8Array }` or `{ transportError }`. */
      tokenResponse: (grant, response, at) => {
        const g = W.grantKind(grant, 'grant');
        const r = outcome(response, 'response') ?? { tag: 'ok', val: W.fillResponse(W.response(response, 'response')) };
        const t = now(at);
        const verdict = W.datesOut(pure('classify.token-response', (x) => x.classify.tokenResponse(g, r, t)));
        if (verdict.tag === 'success') redactedInLogs(verdict.val, ['accessToken', 'refreshToken']);
        return verdict;
      },
      /** `response`: `{ status, headers }` or `{ transportError }`. */
      apiResponse: (response, attempt = 'first', at) => {
        const r = outcome(response, 'response') ?? (() => {
          const h = W.responseHead(response, 'response');
          return { tag: 'ok', val: { status: h.status, headers: h.headers ?? [] } };
        })();
        const a = W.apiAttempt(attempt, 'attempt');
        const t = now(at);
        return W.datesOut(pure('classify.api-response', (x) => x.classify.apiResponse(r, a, t)));
      },
      /** Every `WWW-Authenticate` field value, in order. */
      wwwAuthenticate: (values) => {
        const v = W.list(W.str)(values, 'values');
        return pure('classify.www-authenticate', (x) => x.classify.wwwAuthenticate(v));
      },
      /** The retry time of a `Retry-After` value, as a Date; `undefined` when invalid. */
      retryAfter: (value, at) => {
        const v = W.str(value, 'value');
        const t = now(at);
        return W.datesOut(pure('classify.retry-after', (x) => x.classify.retryAfter(v, t)));
      },
    };
    /** The S256 challenge of a PKCE verifier (RFC 7636 §4.2). */
    this.s256Challenge = (verifier) => {
      const v = W.str(verifier, 'verifier');
      return pure('authorize.s256-challenge', (x) => x.authorize.s256Challenge(v));
    };
    /** An authorisation URL from explicit inputs (WIT `url-params`, camelCase). */
    this.buildUrl = (params) => {
      const p = W.urlParams(params, 'params');
      return pure('authorize.build-url', (x) => x.authorize.buildUrl({ ...p, extraParams: p.extraParams ?? [] }));
    };
  }

  async #run(tag, val) {
    const outcome = await this.engine.run({ tag, val });
    if (outcome.tag !== tag) throw new PleoOAuthError(`pleo-oauth: ${tag} answered ${outcome.tag}`);
    const result = outcome.val;
    if (result.tag === 'ok') return W.datesOut(result.val);
    const variant = W.datesOut(result.val);
    const subject = typeof val === 'string' ? val : val?.connection;
    throw new ERRORS[tag](`${tag}${subject ? ` ${subject}` : ''}: ${describeVariant(variant)}`, { operation: tag, variant });
  }
}
