// FetchHttp against a local server: client authentication from the
// credentials callback (the secret stays in the host), timeout-ms through
// AbortSignal.timeout, transport failures, the body cap, no redirects.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { FetchHttp, TransportFailure } from '../src/index.js';

const failure = (kind) => (e) => e instanceof TransportFailure && e.kind === kind;

test('FetchHttp', async (t) => {
  const seen = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      seen.push({ url: req.url, authorization: req.headers.authorization, body });
      if (req.url === '/slow') return setTimeout(() => res.end('late'), 2000);
      if (req.url === '/big') return res.end('x'.repeat(5000));
      if (req.url === '/redirect') return res.writeHead(302, { Location: '/elsewhere' }).end();
      res.writeHead(200, [['Content-Type', 'application/json'], ['Set-Cookie', 'a=1'], ['Set-Cookie', 'b=2']]).end('{"ok":true}');
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const base = `http://127.0.0.1:${server.address().port}`;
  const origin = new URL(base).origin;
  const http = new FetchHttp({
    credentials: (clientId, url) => (clientId === 'client 1' && url.origin === origin ? 's3cret:&=' : undefined),
    maxBodyBytes: 1000,
  });
  const request = (path, extra = {}) => ({
    method: 'POST', url: `${base}${path}`, headers: [['Content-Type', 'application/x-www-form-urlencoded']],
    body: new TextEncoder().encode('grant_type=refresh_token'), timeoutMs: 500, ...extra,
  });

  // client_secret_basic: both parts form-urlencoded, then Base64 (RFC 6749 §2.3.1).
  const ok = await http.send(request('/token', { clientId: 'client 1' }));
  assert.equal(ok.status, 200);
  assert.equal(new TextDecoder().decode(ok.body), '{"ok":true}');
  assert.deepEqual(ok.headers.filter(([n]) => n === 'set-cookie'), [['set-cookie', 'a=1'], ['set-cookie', 'b=2']]);
  assert.equal(seen.at(-1).authorization, `Basic ${Buffer.from('client+1:s3cret%3A%26%3D').toString('base64')}`);
  assert.equal(seen.at(-1).body, 'grant_type=refresh_token');

  // client_secret_post.
  const post = new FetchHttp({ credentials: () => ({ secret: 'p', method: 'post' }) });
  await post.send(request('/token', { clientId: 'c' }));
  assert.equal(seen.at(-1).body, 'grant_type=refresh_token&client_id=c&client_secret=p');
  assert.equal(seen.at(-1).authorization, undefined);

  // No credentials for this client or origin: nothing is sent.
  const before = seen.length;
  await assert.rejects(() => http.send(request('/token', { clientId: 'other' })), failure('no-credentials'));
  await assert.rejects(() => http.send({ ...request('/token', { clientId: 'client 1' }), url: 'http://localhost:1/token' }), failure('no-credentials'));
  assert.equal(seen.length, before);

  // timeout-ms is enforced; the body cap; redirects are returned, not followed.
  const started = Date.now();
  await assert.rejects(() => http.send(request('/slow')), failure('timeout'));
  assert.ok(Date.now() - started < 1500);
  await assert.rejects(() => http.send(request('/big')), failure('body-too-large'));
  const redirect = await http.send({ ...request('/redirect'), method: 'GET', body: new Uint8Array() });
  assert.equal(redirect.status, 302);
  assert.deepEqual(redirect.headers.find(([n]) => n === 'location'), ['location', '/elsewhere']);

  // Nothing listening.
  const closed = createServer();
  await new Promise((r) => closed.listen(0, '127.0.0.1', r));
  const port = closed.address().port;
  await new Promise((r) => closed.close(r));
  await assert.rejects(() => http.send({ ...request('/'), url: `http://127.0.0.1:${port}/` }), failure('connection-refused'));
});
