// End to end against the project's mock of Pleo, over real HTTP, with
// SQLite storage: connect, refresh with rotation (after a 401 and ahead of
// expiry), revocation detected and re-authentication, and no secret in
// anything logged or thrown.
//
// Start the mock first, then run with its URL and credentials:
//   PLEO_OAUTH_CLIENT_SECRET=<secret> pleo-oauth mock-server --port 0 --json --consent auto --client-id <id>
//   PLEO_OAUTH_MOCK_URL=<url> PLEO_OAUTH_MOCK_CLIENT_ID=<id> PLEO_OAUTH_MOCK_CLIENT_SECRET=<secret> npm test
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { inspect } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PleoOAuth, RefusalError } from '../src/index.js';
import { SqliteStorage } from '../src/sqlite.js';

const { PLEO_OAUTH_MOCK_URL: BASE, PLEO_OAUTH_MOCK_CLIENT_ID: CLIENT_ID, PLEO_OAUTH_MOCK_CLIENT_SECRET: SECRET } = process.env;
const CONNECTION = 'tenant-1';

test('end to end against the mock of Pleo, SQLite storage', async (t) => {
  if (!BASE || !CLIENT_ID || !SECRET) {
    assert.fail(
      'PLEO_OAUTH_MOCK_URL, PLEO_OAUTH_MOCK_CLIENT_ID and PLEO_OAUTH_MOCK_CLIENT_SECRET must be set. Start the mock with\n' +
        '  PLEO_OAUTH_CLIENT_SECRET=<secret> pleo-oauth mock-server --port 0 --json --consent auto --client-id <id>\n' +
        'and pass the url it prints (or run `node scripts/with-mock.mjs <path to pleo-oauth> npm test`).',
    );
  }
  const origin = new URL(BASE).origin;
  const dir = mkdtempSync(join(tmpdir(), 'pleo-oauth-e2e-'));
  const storage = new SqliteStorage(join(dir, 'pleo-oauth.sqlite3'));
  t.after(() => {
    storage.close();
    rmSync(dir, { recursive: true, force: true });
  });

  // Everything the package hands to the platform's log, and every error
  // message, is kept and scanned for secrets at the end.
  const logged = [];
  // What a platform would write if it logged the results it is given
  // (`console.log` formats with `util.inspect`): scanned the same way.
  const printed = [];
  const secrets = new Set([SECRET]);
  let offsetMs = 0; // a clock the test moves ahead, for proactive refreshes
  const oauth = await PleoOAuth.load({
    storage,
    credentials: (clientId, url) => (clientId === CLIENT_ID && url.origin === origin ? SECRET : undefined),
    clock: { now: () => Date.now() + offsetMs, sleep: (ms) => new Promise((r) => setTimeout(r, ms)) },
    log: (event) => logged.push(JSON.stringify(event)),
  });
  const control = async (what) => {
    const r = await fetch(`${BASE}/_mock/${what}`, { method: 'POST' });
    assert.ok(r.ok, `mock control ${what}: ${r.status}`);
  };
  const stats = async () => (await fetch(`${BASE}/_mock/stats`)).json();
  const api = (token) => fetch(`${BASE}/v2/users`, { headers: { Authorization: `Bearer ${token}` } });
  const head = (r) => ({ status: r.status, headers: [...r.headers] });
  const connect = async () => {
    const authorization = await oauth.authorize.begin(CONNECTION, { returnTo: '/settings' });
    // What a platform that logs the result would write: no state in it.
    printed.push(inspect(authorization));
    const { url } = authorization;
    secrets.add(new URL(url).searchParams.get('state'));
    const redirect = await fetch(url, { redirect: 'manual' });
    assert.equal(redirect.status, 302, 'the mock consents and redirects');
    const location = redirect.headers.get('location');
    secrets.add(new URL(location).searchParams.get('code'));
    return oauth.authorize.complete(location, { connection: CONNECTION });
  };
  // The refresh tokens never leave the component and the store: read them
  // from the store, to scan for them too.
  const storedSecrets = async () => {
    const entry = await storage.get(`tokens/${CONNECTION}`);
    if (!entry) return;
    const walk = (v, key = '') => {
      if (typeof v === 'string' && /token/.test(key) && v.length >= 8) secrets.add(v);
      else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, k);
    };
    walk(JSON.parse(new TextDecoder().decode(entry.value)));
  };
  const token = async () => {
    const bearer = await oauth.connections.accessToken(CONNECTION);
    secrets.add(bearer.token);
    printed.push(inspect(bearer));
    await storedSecrets();
    return bearer;
  };

  const config = {
    environment: { tag: 'custom', val: { authorizeUrl: `${BASE}/oauth/authorize`, tokenUrl: `${BASE}/oauth/token` } },
    clientId: CLIENT_ID,
    clientType: 'confidential',
    redirectUri: 'http://127.0.0.1:8765/callback',
    scopes: ['users:read'],
    settings: [['ledger', '4000']],
    revocationUrl: `${BASE}/oauth/revoke`,
  };
  await oauth.connections.configure(CONNECTION, config);
  const stored = await oauth.connections.getConfig(CONNECTION);

  // Connect.
  const completed = await connect();
  assert.deepEqual([completed.connection, completed.returnTo, completed.recovered], [CONNECTION, '/settings', false]);
  const first = await token();
  assert.ok(first.expiresAt instanceof Date && first.expiresAt > new Date());
  let response = await api(first.token);
  assert.equal(response.status, 200);
  assert.deepEqual(await oauth.connections.report(CONNECTION, first.token, head(response)), { tag: 'proceed' });

  // The server expires the access token: a 401, reported, refreshes with rotation.
  await control('expire-access-tokens');
  response = await api(first.token);
  assert.equal(response.status, 401);
  const action = await oauth.connections.report(CONNECTION, first.token, head(response));
  assert.equal(action.tag, 'retry');
  secrets.add(action.val.token);
  printed.push(inspect(action));
  assert.notEqual(action.val.token, first.token, 'a new access token');
  await storedSecrets();
  assert.equal((await api(action.val.token)).status, 200);
  assert.equal((await token()).token, action.val.token, 'the rotated token is stored');
  assert.equal((await stats()).refreshes, 1);

  // Ahead of expiry (the clock moved an hour on): a proactive refresh, rotated again.
  offsetMs += 3_600_000;
  const third = await token();
  assert.notEqual(third.token, action.val.token);
  assert.equal((await stats()).refreshes, 2);
  assert.equal((await oauth.connections.status(CONNECTION)).state, 'connected');

  // The user revokes access at Pleo: the next refresh is refused, re-authenticate.
  await control('revoke-grants');
  await control('expire-access-tokens');
  offsetMs += 3_600_000;
  const refusal = await oauth.connections.accessToken(CONNECTION).then(
    () => assert.fail('a token after revocation'),
    (e) => e,
  );
  assert.ok(refusal instanceof RefusalError, String(refusal));
  assert.deepEqual(refusal.variant, { tag: 'reauthenticate', val: 'refresh-token-rejected' });
  logged.push(refusal.message, refusal.stack);
  const status = await oauth.connections.status(CONNECTION);
  assert.equal(status.state, 'reauth-required');
  assert.equal(status.reason, 'refresh-token-rejected');
  assert.deepEqual(await oauth.connections.getConfig(CONNECTION), stored, 'the configuration is kept');

  // Reconnect: the same configuration, recovered.
  const again = await connect();
  assert.equal(again.recovered, true);
  const fresh = await token();
  assert.equal((await api(fresh.token)).status, 200);
  assert.equal((await oauth.connections.status(CONNECTION)).state, 'connected');

  // Disconnect with revocation at the server.
  assert.deepEqual(await oauth.connections.disconnect(CONNECTION, { revoke: true }), { tag: 'revoked' });
  const page = await oauth.connections.list();
  assert.deepEqual(page.connections.map((c) => [c.connection, c.state]), [[CONNECTION, 'disconnected']]);

  // No token, code, state or client secret in anything logged or thrown.
  const kinds = logged.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l).kind);
  assert.ok(kinds.includes('tokens-rotated') || kinds.includes('refresh-succeeded'), kinds.join(' '));
  assert.ok(printed.length >= 3 && printed.every((p) => p.includes('[redacted]')), printed.join('\n'));
  const text = [...logged, ...printed].join('\n');
  for (const secret of secrets) {
    assert.ok(secret && secret.length >= 8, 'a secret worth scanning for');
    assert.ok(!text.includes(secret), `a secret (${secret.length} characters) appears in the log`);
  }
  console.log(`e2e: ${logged.length} log lines and ${printed.length} printed results scanned for ${secrets.size} secrets; events: ${kinds.join(' ')}`);
});
