// The stateless vector files through the package's pure exports: every
// case must agree with its expected verdict.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { PleoOAuth, InvalidInputError } from '../src/index.js';
import { load, input, toSerde, normalise, tally, camel, variantIn } from './support.js';

const BUILDS = process.env.PLEO_OAUTH_BUILD ? [process.env.PLEO_OAUTH_BUILD] : ['checked', 'fast'];
let oauth;
const instances = {};
before(async () => {
  for (const build of BUILDS) instances[build] = await PleoOAuth.load({ build });
});

const common = ['name', 'spec'];
const at = (ms) => new Date(Number(ms));
const MAX_DATE_MS = 8.64e15;

function runFile(file, fields, run) {
  for (const build of BUILDS) test(`${file} (${build} build)`, () => {
    oauth = instances[build];
    const suite = load(file, [...common, ...fields]);
    const failures = [];
    for (const c of suite.cases) {
      try {
        const [got, expected] = run(c);
        assert.deepStrictEqual(normalise(got), normalise(expected));
      } catch (e) {
        failures.push(`${c.name}: ${e.message.split('\n').slice(0, 12).join('\n')}`);
      }
    }
    tally(`${file} (${build} build)`, suite.cases.length - failures.length, suite.cases.length);
    assert.equal(failures.length, 0, failures.join('\n\n'));
    assert.ok(suite.cases.length > 0);
  });
}

runFile('token-response.json', ['grant', 'now-ms', 'input', 'expect'], (c) => [
  toSerde(oauth.classify.tokenResponse(c.grant, input(c.input), at(c['now-ms']))),
  c.expect,
]);

runFile('api-response.json', ['attempt', 'now-ms', 'input', 'expect'], (c) => [
  toSerde(oauth.classify.apiResponse(input(c.input, { head: true }), c.attempt, at(c['now-ms']))),
  c.expect,
]);

runFile('www-authenticate.json', ['values', 'expect'], (c) => {
  try {
    return [{ ok: toSerde(oauth.classify.wwwAuthenticate(c.values)) }, c.expect];
  } catch (e) {
    if (!(e instanceof InvalidInputError)) throw e;
    return [{ err: toSerde(e.variant) }, c.expect];
  }
});

runFile('retry-after.json', ['value', 'now-ms', 'expect'], (c) => {
  const got = oauth.classify.retryAfter(c.value, at(c['now-ms']));
  // The package's Date saturates at the latest Date (year 275760); the
  // component's u64 is checked exactly through the raw export as well.
  const raw = oauth.engine.call((x) => x.classify.retryAfter(c.value, BigInt(c['now-ms'])));
  assert.deepStrictEqual(raw === undefined ? null : toSerde(raw), c.expect, 'raw u64');
  const expected = c.expect === null ? null : Number(c.expect) > MAX_DATE_MS ? MAX_DATE_MS : c.expect;
  return [toSerde(got), expected];
});

runFile('authorize.json', ['s256-challenge', 'build-url'], (c) => {
  const kind = ['s256-challenge', 'build-url'].filter((k) => k in c);
  assert.equal(kind.length, 1, 'exactly one of s256-challenge, build-url');
  const spec = c[kind[0]];
  const call = () => {
    if (kind[0] === 's256-challenge') {
      assert.deepEqual(Object.keys(spec).sort(), ['expect', 'verifier']);
      return oauth.s256Challenge(spec.verifier);
    }
    assert.deepEqual(Object.keys(spec).sort(), ['expect', 'params']);
    const params = Object.fromEntries(Object.entries(spec.params).map(([k, v]) => [camel(k), v]));
    return oauth.buildUrl(params);
  };
  try {
    return [{ ok: call() }, spec.expect];
  } catch (e) {
    if (!(e instanceof InvalidInputError)) throw e;
    return [{ err: toSerde(e.variant) }, spec.expect];
  }
});
