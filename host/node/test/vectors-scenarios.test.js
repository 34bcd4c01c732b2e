// callback.json and lifecycle.json through the step interface: each
// scenario on fresh scenario backends (test/scenario.js), driven by the
// package's own step loop. Every case must agree.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PleoOAuthError } from '../src/index.js';
import { load, tally, camel } from './support.js';
import { fixture, configWith, stateOf, wireCode } from './scenario.js';

const BUILDS = process.env.PLEO_OAUTH_BUILD ? [process.env.PLEO_OAUTH_BUILD] : ['checked', 'fast'];
const CONNECTION = 'c1';

/** Runs `f`; a PleoOAuthError becomes `{ error }`, anything else propagates. */
async function attempt(f) {
  try {
    return { ok: await f() };
  } catch (e) {
    if (e instanceof PleoOAuthError && e.variant !== undefined) return { error: e.variant };
    throw e;
  }
}

function completeSummary(r) {
  if ('ok' in r) return 'completed';
  const { tag, val } = r.error;
  switch (tag) {
    case 'rejected': return `rejected:${val.reason}`;
    case 'denied': return `denied:${wireCode(val.error.code)}`;
    case 'exchange-failed': return `exchange-failed:${val.failure.tag}`;
    case 'storage': return 'storage';
    default: throw new Error(`unknown complete-error ${tag}`);
  }
}

function refused({ tag, val }) {
  switch (tag) {
    case 'reauthenticate': return `reauthenticate:${val}`;
    case 'wait': return `wait:${val.why}`;
    case 'client-misconfigured': return `client-misconfigured:${val.fault.tag === 'rejected' ? wireCode(val.fault.val) : val.fault.tag}`;
    case 'not-connected': return `not-connected:${val}`;
    case 'storage': return `storage:${val.tag}`;
    default: throw new Error(`unknown refusal ${tag}`);
  }
}

const access = (r) => ('ok' in r ? `token:${r.ok.token}` : refused(r.error));
const at = (time, now) => (time === undefined ? '' : `@+${Math.max(0, time.getTime() - now)}`);

function action(r, now) {
  if ('error' in r) return refused(r.error);
  const { tag, val } = r.ok;
  switch (tag) {
    case 'retry': return `retry:${val.token}`;
    case 'insufficient-scope': return `insufficient-scope:${val.join(' ')}`;
    case 'rate-limited':
    case 'transient': return `${tag}${at(val, now)}`;
    default: return tag;
  }
}

function revocation(r) {
  if ('ok' in r) return r.ok.tag === 'failed' ? `failed:${r.ok.val}` : r.ok.tag;
  return r.error.tag === 'storage' ? `storage:${r.error.val.tag}` : r.error.tag;
}

/** The status as the vectors name its members; times relative to `now`. */
function statusView(s, now) {
  const ms = (d) => (d === undefined ? null : d.getTime());
  return {
    state: s.state,
    reason: s.reason ?? null,
    failures: s.consecutiveFailures,
    'backing-off': s.nextRetryAt !== undefined && s.nextRetryAt.getTime() > now,
    refreshing: s.refreshingUntil !== undefined,
    'missing-scopes': s.missingScopes,
    scopes: s.scopes,
    'access-expires-in-ms': s.accessExpiresAt === undefined ? null : ms(s.accessExpiresAt) - now,
    'last-refresh-ago-ms': s.lastRefreshAt === undefined ? null : now - ms(s.lastRefreshAt),
    'last-error': s.lastError ?? null,
    'outcome-unknown': s.refreshOutcomeUnknownSince !== undefined,
    failing: s.failingSince !== undefined,
    'fresh-token-rejections': s.freshTokenRejections,
  };
}

/** Writes a stored record (as the guest stores it) straight into storage. */
async function writeRecord(storage, key, json) {
  const current = await storage.get(key);
  await storage.put(key, new TextEncoder().encode(JSON.stringify(json)), current?.version);
}

const CALLBACK_FIELDS = ['name', 'spec', 'connection', 'config', 'status', 'begin', 'begin-twice', 'advance-ms', 'callback', 'expected-connection', 'token-endpoint', 'replay', 'expect'];

async function runCallback(c, build) {
  const f = await fixture({ build });
  const id = c.connection ?? CONNECTION;
  await f.oauth.connections.configure(id, configWith(c.config));
  if (c.status) await f.storage.put(`status/${id}`, new TextEncoder().encode(JSON.stringify(c.status)), undefined);
  const begin = c.begin ?? {};
  const unknown = Object.keys(begin).filter((k) => !['extra-scopes', 'return-to'].includes(k));
  assert.equal(unknown.length, 0, `unknown begin fields ${unknown}`);
  const options = Object.fromEntries(Object.entries(begin).map(([k, v]) => [camel(k), v]));
  const first = await f.oauth.authorize.begin(id, options);
  if (c['begin-twice']) await f.oauth.authorize.begin(id, options);
  f.clock.ms += c['advance-ms'] ?? 0;
  if (c['token-endpoint']) f.http.push(c['token-endpoint']);
  const callback = c.callback.replaceAll('{state}', stateOf(first));
  const result = await attempt(() => f.oauth.authorize.complete(callback, { connection: c['expected-connection'] }));
  const replay = c.replay ? completeSummary(await attempt(() => f.oauth.authorize.complete(callback))) : undefined;
  const status = await f.oauth.connections.status(id);
  const got = {
    result: completeSummary(result),
    recovered: 'ok' in result ? result.ok.recovered : false,
    state: status.state,
    reason: status.reason ?? null,
    'token-requests': f.http.sent.length,
    events: f.events.map((e) => e.kind),
  };
  if (replay !== undefined) got.replay = replay;
  const expected = { recovered: false, ...c.expect };
  assert.deepStrictEqual(got, expected);
}

async function connect(f, grant) {
  const fields = Object.keys(grant).filter((k) => !['access-token', 'refresh-token', 'expires-in'].includes(k));
  assert.equal(fields.length, 0, `unknown connect fields ${fields}`);
  const authorization = await f.oauth.authorize.begin(CONNECTION);
  const body = { access_token: grant['access-token'], token_type: 'Bearer' };
  if (grant['refresh-token'] != null) body.refresh_token = grant['refresh-token'];
  if (grant['expires-in'] != null) body.expires_in = grant['expires-in'];
  f.http.push({ response: { status: 200, headers: [['Content-Type', 'application/json']], body: { text: JSON.stringify(body) } } });
  await f.oauth.authorize.complete(`code=CODE-connect&state=${stateOf(authorization)}`, { connection: CONNECTION });
}

async function runLifecycle(c, build) {
  const f = await fixture({ build });
  await f.oauth.connections.configure(CONNECTION, configWith(c.config));
  const connectRequests = new Set();
  for (const [index, step] of c.steps.entries()) {
    const now = f.clock.ms;
    const [kind, arg] = typeof step === 'string' ? [step, undefined] : Object.entries(step)[0];
    if (typeof step !== 'string') assert.equal(Object.keys(step).length, 1, `step ${index}: one key`);
    const where = `step ${index} (${kind})`;
    let got, expected;
    switch (kind) {
      case 'connect': {
        const before = f.http.sent.length;
        await connect(f, arg);
        for (let i = before; i < f.http.sent.length; i++) connectRequests.add(i);
        continue;
      }
      case 'advance-ms': f.clock.ms = now + arg; continue;
      case 'token-endpoint': arg.forEach((a) => f.http.push(a)); continue;
      case 'hold-lease': await writeRecord(f.storage, `lease/${CONNECTION}`, { holder: 'crashed', 'until-ms': now + arg['for-ms'] }); continue;
      case 'fail-writes': f.storage.failWrites(arg.prefix, arg.times); continue;
      case 'forget': await f.oauth.connections.forget(CONNECTION); continue;
      case 'retry-now': await f.oauth.connections.retryNow(CONNECTION); continue;
      case 'access-token':
        got = access(await attempt(() => f.oauth.connections.accessToken(CONNECTION)));
        expected = arg;
        break;
      case 'report':
        got = action(await attempt(() => f.oauth.connections.report(CONNECTION, arg.token, { status: arg.status, headers: arg.headers ?? [] })), now);
        expected = arg.expect;
        break;
      case 'disconnect':
        got = revocation(await attempt(() => f.oauth.connections.disconnect(CONNECTION, { revoke: arg.revoke })));
        expected = arg.expect;
        break;
      case 'status': {
        const view = statusView(await f.oauth.connections.status(CONNECTION), now);
        for (const [key, value] of Object.entries(arg)) {
          assert.ok(key in view, `${where}: unknown status member ${key}`);
          assert.deepStrictEqual(view[key], value, `${where}: status ${key}`);
        }
        continue;
      }
      default:
        throw new Error(`${where}: unknown step`);
    }
    assert.equal(got, expected, where);
  }
  const requests = f.http.sent
    .filter((_, i) => !connectRequests.has(i))
    .map((r) => `${r.url} ${new TextDecoder().decode(r.body)}`);
  const keys = f.storage.snapshotKeys().map((k) => (k.startsWith('flow/') ? 'flow/*' : k)).sort();
  assert.deepStrictEqual({ requests, events: f.events.map((e) => e.kind), keys }, c.expect);
}

for (const [file, fields, run] of [
  ['callback.json', CALLBACK_FIELDS, runCallback],
  ['lifecycle.json', ['name', 'spec', 'config', 'steps', 'expect'], runLifecycle],
]) for (const build of BUILDS) {
  test(`${file} through the step interface (${build} build)`, async () => {
    const suite = load(file, fields);
    const failures = [];
    for (const c of suite.cases) {
      try {
        await run(c, build);
      } catch (e) {
        failures.push(`${c.name}: ${e.message.split('\n').slice(0, 14).join('\n')}`);
      }
    }
    tally(`${file} (${build} build, step interface)`, suite.cases.length - failures.length, suite.cases.length);
    assert.equal(failures.length, 0, failures.join('\n\n'));
  });
}
