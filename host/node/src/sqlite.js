// SQLite storage over better-sqlite3 (an optional dependency): one table of
// entries and one counter row, updated in the same transaction, so
// versions only ever increase and are never given twice, even to a key
// deleted and written anew.
import { createRequire } from 'node:module';
import { StorageFailure } from './errors.js';

const require = createRequire(import.meta.url);

/** @implements {import('./storage.js').Storage} */
export class SqliteStorage {
  /**
   * @param {string} path the database file (`:memory:` for a private one)
   * @param {{ database?: any }} [options] an open better-sqlite3 Database to use instead
   */
  constructor(path, options = {}) {
    const Database = options.database ? null : require('better-sqlite3');
    this.db = options.database ?? new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS pleo_oauth_entries (key TEXT PRIMARY KEY, value BLOB NOT NULL, version INTEGER NOT NULL) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS pleo_oauth_counter (id INTEGER PRIMARY KEY CHECK (id = 1), last INTEGER NOT NULL);
      INSERT OR IGNORE INTO pleo_oauth_counter (id, last) VALUES (1, 0);`);
    const q = (sql) => this.db.prepare(sql).safeIntegers(true);
    this.s = {
      get: q('SELECT value, version FROM pleo_oauth_entries WHERE key = ?'),
      bump: q('UPDATE pleo_oauth_counter SET last = last + 1 WHERE id = 1 RETURNING last'),
      insert: q('INSERT INTO pleo_oauth_entries (key, value, version) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING'),
      update: q('UPDATE pleo_oauth_entries SET value = ?, version = ? WHERE key = ? AND version = ?'),
      delete: q('DELETE FROM pleo_oauth_entries WHERE key = ? AND version = ?'),
      keys: q('SELECT key FROM pleo_oauth_entries WHERE key >= @prefix AND substr(key, 1, length(@prefix)) = @prefix AND key > @after ORDER BY key LIMIT @limit'),
    };
    // Writes are immediate transactions: the counter and the entry together.
    this.putTx = this.db.transaction((key, value, expected) => {
      const version = this.s.bump.get().last;
      const changes = expected === undefined
        ? this.s.insert.run(key, value, version).changes
        : this.s.update.run(value, version, key, expected).changes;
      if (changes !== 1) throw new StorageFailure('conflict');
      return version;
    });
  }

  #wrap(write, f) {
    try {
      return f();
    } catch (e) {
      if (e instanceof StorageFailure) throw e;
      // SQLite rolled back: nothing was written. Only the error code, never a value.
      throw new StorageFailure('unavailable', `sqlite ${e?.code ?? e?.name ?? 'error'}${write ? ' (rolled back)' : ''}`);
    }
  }
  async get(key) {
    return this.#wrap(false, () => {
      const row = this.s.get.get(key);
      return row && { value: new Uint8Array(row.value), version: BigInt(row.version) };
    });
  }
  async put(key, value, expectedVersion) {
    return this.#wrap(true, () => BigInt(this.putTx.immediate(key, Buffer.from(value), expectedVersion)));
  }
  async delete(key, expectedVersion) {
    return this.#wrap(true, () => {
      if (this.s.delete.run(key, expectedVersion).changes !== 1) throw new StorageFailure('conflict');
    });
  }
  async keys(prefix, after, limit) {
    return this.#wrap(false, () =>
      this.s.keys.all({ prefix, after: after ?? '', limit: BigInt(limit) }).map((r) => r.key),
    );
  }
  close() {
    this.db.close();
  }
}
