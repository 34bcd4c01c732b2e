// Many operations at once, on one instance and on several sharing a store:
// single-flight refresh holds (one refresh request), as in the reference
// host's sixteen-threads test. The step loop awaits each effect, so the
// operations interleave at every storage and HTTP effect.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PleoOAuth, RefusalError } from '../src/index.js';
import { FaultyStorage, ManualClock, ScriptedHttp, seededRandom, configWith, stateOf } from './scenario.js';

const tokenJson = (body) => ({ response: { status: 200, headers: [['Content-Type', 'application/json']], body: { text: JSON.stringify(body) } } });

test('sixteen concurrent access-token calls at expiry, over four instances: exactly one refresh', async () => {
  const storage = new FaultyStorage();
  const clock = new ManualClock();
  const http = new ScriptedHttp();
  const load = () => PleoOAuth.load({ storage, clock, http, random: seededRandom(7n), build: 'fast' });
  const setup = await load();
  await setup.connections.configure('c1', configWith());
  const { url } = await setup.authorize.begin('c1');
  http.push(tokenJson({ access_token: 'AT-1', token_type: 'Bearer', expires_in: 3600, refresh_token: 'RT-1' }));
  await setup.authorize.complete(`code=CODE&state=${stateOf({ url })}`, { connection: 'c1' });
  clock.ms += 3_600_001;

  // The one refresh is held until every other call has its answer.
  const CALLS = 16;
  let answered = 0;
  let release;
  const gate = new Promise((r) => (release = r));
  const send = http.send.bind(http);
  http.send = async (request) => {
    await gate;
    return send(request);
  };
  http.push(tokenJson({ access_token: 'AT-2', token_type: 'Bearer', expires_in: 3600, refresh_token: 'RT-2' }));
  const instances = [setup, await load(), await load(), await load()];
  const results = await Promise.all(
    Array.from({ length: CALLS }, async (_, i) => {
      const r = await instances[i % instances.length].connections.accessToken('c1').then(
        (b) => `token:${b.token}`,
        (e) => (e instanceof RefusalError && e.tag === 'wait' ? `wait:${e.variant.val.why}` : Promise.reject(e)),
      );
      if (++answered === CALLS - 1) release();
      return r;
    }),
  );
  assert.equal(http.sent.length - 1, 1, 'exactly one refresh request');
  assert.deepEqual(
    [results.filter((r) => r === 'token:AT-2').length, results.filter((r) => r === 'wait:refresh-in-progress').length],
    [1, CALLS - 1],
    results.join(' '),
  );
  const after = await Promise.all(instances.map((o) => o.connections.accessToken('c1')));
  assert.ok(after.every((b) => b.token === 'AT-2'));
});
