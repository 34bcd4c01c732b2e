// The storage contract of wit/imports.wit on the provided stores:
// compare-and-swap, versions that only increase and are never given twice,
// keys pages in byte order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryStorage, StorageFailure } from '../src/index.js';
import { SqliteStorage } from '../src/sqlite.js';

const bytes = (s) => new TextEncoder().encode(s);
const conflict = (e) => e instanceof StorageFailure && e.kind === 'conflict';

async function contract(store) {
  assert.equal(await store.get('tokens/a'), undefined);
  const v1 = await store.put('tokens/a', bytes('one'), undefined);
  assert.equal(typeof v1, 'bigint');
  await assert.rejects(() => store.put('tokens/a', bytes('x'), undefined), conflict);
  await assert.rejects(() => store.put('tokens/a', bytes('x'), v1 + 100n), conflict);
  const v2 = await store.put('tokens/a', bytes('two'), v1);
  assert.ok(v2 > v1);
  const e = await store.get('tokens/a');
  assert.deepEqual([new TextDecoder().decode(e.value), e.version], ['two', v2]);
  await assert.rejects(() => store.delete('tokens/a', v1), conflict);
  await assert.rejects(() => store.delete('tokens/none', v1), conflict);
  await store.delete('tokens/a', v2);
  assert.equal(await store.get('tokens/a'), undefined);
  // Deleted and written anew: a version never given before.
  const v3 = await store.put('tokens/a', bytes('three'), undefined);
  assert.ok(v3 > v2);
  await assert.rejects(() => store.put('tokens/a', bytes('x'), v2), conflict);
  for (const k of ['config/b', 'config/a', 'config/c', 'configx', 'status/a']) await store.put(k, bytes('{}'), undefined);
  assert.deepEqual(await store.keys('config/', undefined, 10), ['config/a', 'config/b', 'config/c']);
  assert.deepEqual(await store.keys('config/', 'config/a', 1), ['config/b']);
  assert.deepEqual(await store.keys('config/', 'config/c', 10), []);
  assert.deepEqual(await store.keys('', undefined, 2), ['config/a', 'config/b']);
}

test('MemoryStorage keeps the storage contract', () => contract(new MemoryStorage()));

test('SqliteStorage keeps the storage contract, and versions survive a reopen', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pleo-oauth-sqlite-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'db.sqlite3');
  const store = new SqliteStorage(path);
  await contract(store);
  const last = (await store.get('tokens/a')).version;
  await store.delete('tokens/a', last);
  store.close();
  const reopened = new SqliteStorage(path);
  assert.ok((await reopened.put('tokens/a', bytes('again'), undefined)) > last);
  reopened.close();
});
