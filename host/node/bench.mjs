// Figures: a classify call, and the PKCE + state + URL step, through the
// component, side by side with oauth4webapi 3.8 doing the same work.
//
// Component builds (scripts/build.mjs): `checked` (jco's default lifting
// checks), `trusted` (--valid-lifting-optimization), `fast` (trusted, jco's
// per-call debug-log env lookups compiled out: the package's default).
// "package API" includes the package's boundary checks and Date
// conversion; "raw jco export" is the generated binding alone.
//
// Each figure is the median of ROUNDS rounds of N sequential calls, the
// rounds of all variants interleaved (the machine is shared: interleaving
// spreads its noise over every variant alike).
import { webcrypto } from 'node:crypto';
import os from 'node:os';
import * as oauth from 'oauth4webapi';
import { PleoOAuth } from './src/index.js';

const N = Number(process.env.BENCH_N ?? 10000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const NOW = new Date(1_700_000_000_000);
const BODY = '{"access_token":"AT-bench-0123456789","token_type":"Bearer","expires_in":3600,"refresh_token":"RT-bench-0123456789","scope":"users:read export-jobs:write"}';
const bytes = new TextEncoder().encode(BODY);
const response = { status: 200, headers: [['Content-Type', 'application/json']], body: bytes };
const rawResponse = { tag: 'ok', val: { status: 200, headers: [{ name: 'Content-Type', value: 'application/json' }], body: bytes } };
const AS = { issuer: 'https://auth.pleo.io', authorization_endpoint: 'https://auth.pleo.io/oauth/authorize', token_endpoint: 'https://auth.pleo.io/oauth/token' };
const CLIENT = { client_id: 'client-123' };
const REDIRECT = 'https://app.example/callback';
const SCOPES = ['users:read', 'export-jobs:write'];
const b64url = (b) => Buffer.from(b).toString('base64url');
const random32 = () => b64url(webcrypto.getRandomValues(new Uint8Array(32)));

/** @type {[string, () => unknown, boolean][]} name, function, async */
const variants = [];
for (const build of ['checked', 'trusted', 'fast']) {
  const p = await PleoOAuth.load({ build });
  const raw = () => p.engine.instance().exports;
  if (p.classify.tokenResponse('refresh-token', response, NOW).tag !== 'success') throw new Error('verdict');
  variants.push([`classify.token-response, component ${build}, package API`, () => p.classify.tokenResponse('refresh-token', response, NOW), false]);
  variants.push([`classify.token-response, component ${build}, raw jco export`, () => raw().classify.tokenResponse('refresh-token', rawResponse, 1_700_000_000_000n), false]);
  const pkce = () => p.buildUrl({
    authorizeUrl: AS.authorization_endpoint, clientId: CLIENT.client_id, redirectUri: REDIRECT, scopes: SCOPES,
    state: random32(), codeChallenge: p.s256Challenge(random32()),
  });
  if (!pkce().includes('code_challenge_method=S256')) throw new Error('url');
  variants.push([`PKCE + state + URL, component ${build}, package API`, pkce, false]);
}
// The step loop: the API gate's hot path (a valid token, read from an
// in-memory store: a few storage-get, now-ms and emit effects awaited one by one).
for (const build of ['checked', 'fast']) {
  let body = '';
  const http = { send: async () => ({ status: 200, headers: [['Content-Type', 'application/json']], body: new TextEncoder().encode(body) }) };
  const p = await PleoOAuth.load({ build, http, credentials: () => 's' });
  await p.connections.configure('c1', { environment: { tag: 'staging' }, clientId: 'client-123', clientType: 'public', redirectUri: REDIRECT, scopes: SCOPES });
  const { url } = await p.authorize.begin('c1');
  body = JSON.stringify({ access_token: 'AT-bench', token_type: 'Bearer', expires_in: 3600, refresh_token: 'RT-bench' });
  await p.authorize.complete(`code=C&state=${new URL(url).searchParams.get('state')}`, { connection: 'c1' });
  variants.push([`connections.access-token (valid token, MemoryStorage), step loop, component ${build}`, () => p.connections.accessToken('c1'), true]);
}

// oauth4webapi 3.8: the same work. Its token-response processing takes a
// fetch Response (built per call here, as fetch would give one) and is async.
variants.push(['classify: processRefreshTokenResponse, oauth4webapi', async () => {
  const r = new Response(BODY, { status: 200, headers: { 'Content-Type': 'application/json' } });
  if (!(await oauth.processRefreshTokenResponse(AS, CLIENT, r)).access_token) throw new Error('verdict');
}, true]);
variants.push(['PKCE + state + URL, oauth4webapi (awaits WebCrypto)', async () => {
  const challenge = await oauth.calculatePKCECodeChallenge(oauth.generateRandomCodeVerifier());
  const url = new URL(AS.authorization_endpoint);
  for (const [k, v] of [['response_type', 'code'], ['client_id', CLIENT.client_id], ['redirect_uri', REDIRECT], ['scope', SCOPES.join(' ')],
    ['state', oauth.generateRandomState()], ['code_challenge', challenge], ['code_challenge_method', 'S256']]) url.searchParams.set(k, v);
  return url.href;
}, true]);

async function round(f, isAsync, n) {
  const start = process.hrtime.bigint();
  if (isAsync) for (let i = 0; i < n; i++) await f();
  else for (let i = 0; i < n; i++) f();
  return Number(process.hrtime.bigint() - start) / 1e3 / n;
}
const samples = variants.map(() => []);
for (const [i, [, f, a]] of variants.entries()) await round(f, a, Math.max(1000, N / 5)); // warm-up
for (let r = 0; r < ROUNDS; r++) {
  for (const [i, [, f, a]] of variants.entries()) samples[i].push(await round(f, a, N));
}
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

console.log(`node ${process.version}, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}); median of ${ROUNDS} interleaved rounds of ${N} sequential calls\n`);
console.log('| what | µs/call (median) | min | calls/s |');
console.log('|---|---:|---:|---:|');
for (const [i, [what]] of variants.entries()) {
  const m = median(samples[i]);
  console.log(`| ${what} | ${m.toFixed(2)} | ${Math.min(...samples[i]).toFixed(2)} | ${Math.round(1e6 / m).toLocaleString('en')} |`);
}
