// Wrong shapes are errors, never verdicts; a trap never leaves a poisoned
// instance in use.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { format, inspect } from 'node:util';
import { PleoOAuth, BoundaryError, ComponentTrapError, HostError, MemoryStorage, RefusalError } from '../src/index.js';

const json = (s) => new TextEncoder().encode(s);
const ok = { status: 400, headers: [['Content-Type', 'application/json']], body: json('{"error":"invalid_grant"}') };

test('wrong shapes at the boundary are rejected with a clear error', async () => {
  const oauth = await PleoOAuth.load({ build: 'checked' });
  // The right shape gives the right verdict...
  assert.equal(oauth.classify.tokenResponse('refresh-token', ok).tag, 'reauthenticate');
  // ...and each wrong one is an error that says what was expected.
  const cases = [
    [() => oauth.classify.tokenResponse('refresh-token', { ...ok, body: '{"error":"invalid_grant"}' }), /response\.body: expected bytes/],
    [() => oauth.classify.tokenResponse('refresh-token', { ...ok, headers: new Headers(ok.headers) }), /response\.headers: .*Headers object/],
    [() => oauth.classify.apiResponse({ status: 401, headers: new Headers() }), /response\.headers: .*Headers object/],
    [() => oauth.classify.apiResponse({ status: '401', headers: [] }), /response\.status: expected an integer from 0 to 65535, got a string/],
    [() => oauth.classify.apiResponse({ status: 401, header: [] }), /response\.header: no such field/],
    [() => oauth.classify.apiResponse({ status: 401, headers: { 'www-authenticate': 'Bearer' } }), /response\.headers: expected an array/],
    [() => oauth.classify.apiResponse({ status: 401, headers: [['a']] }), /response\.headers\[0\]: expected an array of 2/],
    [() => oauth.classify.apiResponse({ status: 200 }, 'second'), /attempt: expected one of 'first', 'after-refresh'/],
    [() => oauth.classify.tokenResponse('refresh_token', ok), /grant: expected one of/],
    [() => oauth.classify.tokenResponse('refresh-token', { transportError: 'timeout' }), /transportError: expected a variant/],
    [() => oauth.classify.retryAfter(120), /value: expected a string/],
    [() => oauth.classify.retryAfter('120', new Date(NaN)), /now: expected a valid Date/],
    [() => oauth.classify.wwwAuthenticate('Bearer'), /values: expected an array/],
    [() => oauth.s256Challenge(undefined), /verifier: expected a string/],
    [() => oauth.buildUrl({ authorizeUrl: 'https://a.example/', clientId: 'c', redirectUri: 'https://b.example/', scopes: 'users:read', state: 'x'.repeat(43), codeChallenge: 'y'.repeat(43) }), /params\.scopes: expected an array/],
  ];
  for (const [f, message] of cases) assert.throws(f, (e) => e instanceof BoundaryError && message.test(e.message), String(message));
  // Lifecycle calls check before anything runs.
  await assert.rejects(() => oauth.connections.report('c1', 'AT', { status: 401, headers: new Headers() }), BoundaryError);
  await assert.rejects(() => oauth.connections.accessToken(42), /connection: expected a string/);
  await assert.rejects(
    () => oauth.connections.configure('c1', { environment: 'staging', clientId: 'c', clientType: 'public', redirectUri: 'https://a.example/cb', scopes: ['users:read'] }),
    /config\.environment: expected a variant/,
  );
  await assert.rejects(() => oauth.authorize.begin('c1', { returnto: '/x' }), /options\.returnto: no such field/);
});

test('a logged token-response verdict shows no token (RFC 6750 §5.3); the values are unchanged', async () => {
  const oauth = await PleoOAuth.load({ build: 'checked' });
  const body = json('{"access_token":"AT-not-for-logs","token_type":"Bearer","refresh_token":"RT-not-for-logs"}');
  const verdict = oauth.classify.tokenResponse('refresh-token', { status: 200, headers: [], body });
  assert.equal(verdict.tag, 'success');
  assert.equal(verdict.val.accessToken, 'AT-not-for-logs');
  assert.equal(`Bearer ${verdict.val.accessToken}`, 'Bearer AT-not-for-logs');
  assert.equal(JSON.parse(JSON.stringify(verdict)).val.refreshToken, 'RT-not-for-logs');
  assert.deepEqual({ ...verdict.val }, { accessToken: 'AT-not-for-logs', expiresIn: undefined, refreshToken: 'RT-not-for-logs', scope: undefined });
  for (const shown of [inspect(verdict), inspect(verdict.val), format('%o', verdict), format('%s', verdict.val)]) {
    assert.ok(!shown.includes('not-for-logs') && shown.includes('[redacted]'), shown);
  }
});

test('a storage backend that returns a wrong shape fails the call, not the verdict', async () => {
  const storage = new MemoryStorage();
  storage.get = async () => ({ value: 'not bytes', version: 1 });
  const oauth = await PleoOAuth.load({ storage, build: 'checked' });
  await assert.rejects(() => oauth.connections.accessToken('c1'), (e) => e instanceof HostError && /storage\.get\(\) result\.value: expected bytes/.test(e.message));
});

test('an import that throws poisons the instance: it is dropped and a fresh one serves the next call', async () => {
  const oauth = await PleoOAuth.load({ build: 'checked' });
  const before = oauth.engine.instantiations;
  const poisoned = oauth.engine.current;
  // The import-calling export of the 0.2 functions reaches a trapping import
  // (this host supplies nothing but traps): a real Error thrown from an import.
  assert.throws(() => oauth.engine.call((x) => x.connections.accessToken('c1')), ComponentTrapError);
  assert.equal(poisoned.poisoned, true);
  assert.equal(oauth.engine.current, undefined, 'the poisoned instance is no longer in use');
  // The next call instantiates afresh and works.
  assert.equal(oauth.s256Challenge('dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk'), 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM');
  assert.equal(oauth.engine.instantiations, before + 1);
  assert.notEqual(oauth.engine.current, poisoned);
});

test('effect handlers that throw: mapped to the contract, or the operation is abandoned; the instance stays usable', async () => {
  const storage = new MemoryStorage();
  let throwing = true;
  const get = storage.get.bind(storage);
  storage.get = async (key) => {
    if (throwing) throw new Error('socket closed; value was {"access_token":"AT-secret"}');
    return get(key);
  };
  let randomThrows = false;
  const oauth = await PleoOAuth.load({
    storage,
    build: 'checked',
    random: (n) => {
      if (randomThrows) throw new Error('entropy source down');
      return crypto.getRandomValues(new Uint8Array(n));
    },
  });
  const instance = oauth.engine.current;
  // A storage backend's unexpected exception is `unavailable` (a read), named by class only.
  const refusal = await oauth.connections.accessToken('c1').catch((e) => e);
  assert.ok(refusal instanceof RefusalError);
  assert.deepEqual(refusal.variant, { tag: 'storage', val: { tag: 'unavailable', val: 'storage backend threw Error' } });
  assert.ok(!refusal.message.includes('AT-secret'));
  throwing = false;
  await oauth.connections.configure('c1', { environment: { tag: 'staging' }, clientId: 'client-1', clientType: 'public', redirectUri: 'https://app.example/cb', scopes: ['users:read'] });
  // A backend with no contract case (random) abandons the operation.
  randomThrows = true;
  await assert.rejects(() => oauth.authorize.begin('c1'), (e) => e instanceof HostError && e.cause.message === 'entropy source down' && !e.message.includes('entropy'));
  randomThrows = false;
  const { url } = await oauth.authorize.begin('c1');
  assert.match(url, /^https:\/\/auth\.staging\.pleo\.io\//);
  assert.equal(oauth.engine.current, instance, 'no trap: the same instance');
});

test('a broken step-loop rule is a HostError and does not poison the instance', async () => {
  const oauth = await PleoOAuth.load({ build: 'checked' });
  const instance = oauth.engine.current;
  // Answer the first effect of an operation with the wrong case.
  const perform = oauth.engine.perform.bind(oauth.engine);
  oauth.engine.perform = async () => ({ tag: 'sleep-ms' });
  await assert.rejects(() => oauth.connections.status('c1'), (e) => e instanceof HostError && /mismatched-result/.test(e.message));
  oauth.engine.perform = perform;
  assert.equal(oauth.engine.current, instance, 'the same instance');
  await assert.rejects(() => oauth.connections.status('c1'), (e) => e.tag === 'unknown-connection');
});
