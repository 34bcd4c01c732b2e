// Storage backends: the platform's own store plugs in by implementing
// `Storage` (async get/put/delete/keys with compare-and-swap on versions,
// the rules of `wit/imports.wit` `storage`).
import { StorageFailure } from './errors.js';

/**
 * @typedef {{ value: Uint8Array, version: bigint }} Entry
 * @typedef {object} Storage
 * @property {(key: string) => Promise<Entry | undefined>} get
 * @property {(key: string, value: Uint8Array, expectedVersion: bigint | undefined) => Promise<bigint>} put
 *   Writes when the key's version is `expectedVersion` (absent: when the key
 *   does not exist); returns the new version. Throws `StorageFailure('conflict')` otherwise.
 * @property {(key: string, expectedVersion: bigint) => Promise<void>} delete
 * @property {(prefix: string, after: string | undefined, limit: number) => Promise<string[]>} keys
 *   Keys starting with `prefix`, ascending bytewise, after `after`, at most `limit`.
 */

/** Bytewise comparison of two ASCII keys (the guest's keys are ASCII). */
export const byteOrder = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * In memory, for tests and single-process use. Versions come from one
 * counter for the whole store, so a version is never given twice.
 * @implements {Storage}
 */
export class MemoryStorage {
  /** @type {Map<string, Entry>} */
  #map = new Map();
  #counter = 0n;

  async get(key) {
    const e = this.#map.get(key);
    return e && { value: e.value.slice(), version: e.version };
  }
  async put(key, value, expectedVersion) {
    const current = this.#map.get(key);
    if ((current?.version) !== (expectedVersion ?? undefined)) throw new StorageFailure('conflict');
    const version = ++this.#counter;
    this.#map.set(key, { value: value.slice(), version });
    return version;
  }
  async delete(key, expectedVersion) {
    const current = this.#map.get(key);
    if (!current || current.version !== expectedVersion) throw new StorageFailure('conflict');
    this.#map.delete(key);
  }
  async keys(prefix, after, limit) {
    return [...this.#map.keys()]
      .filter((k) => k.startsWith(prefix) && (after === undefined || k > after))
      .sort(byteOrder)
      .slice(0, limit);
  }
  /** Every key, sorted (for tests). */
  snapshotKeys() {
    return [...this.#map.keys()].sort(byteOrder);
  }
}
