// Loading the component and driving the step interface (wit/steps.wit).
//
// The component is instantiated with imports that trap: on the step path
// no import is ever called. Every effect an operation hands out is
// performed here, asynchronously, by the platform's backends.
//
// A trap poisons an instance (jco unwinds through the guest's frames and
// leaves it in an unknown state), so any error thrown out of the
// component other than a returned `result` error drops the instance; the
// next call instantiates a fresh one from the compiled core modules.
import { readFile, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ComponentTrapError, HostError, StorageFailure, TransportFailure, BoundaryError, describe } from './errors.js';
import * as W from './wit.js';

const IMPORTS = ['clock', 'http', 'log', 'random', 'storage', 'types'];

/** The generated bindings of one build flavour, and its compiled core modules. */
const loaded = new Map();

/**
 * @param {'fast' | 'checked'} build
 * @returns {Promise<{ instantiate: Function, modules: Map<string, WebAssembly.Module> }>}
 */
async function bindings(build) {
  if (!loaded.has(build)) {
    loaded.set(build, (async () => {
      const dir = new URL(`../gen/${build}/`, import.meta.url);
      if (!existsSync(fileURLToPath(new URL('pleo-oauth.js', dir)))) {
        throw new Error(`pleo-oauth: gen/${build} is missing: run \`PLEO_OAUTH_COMPONENT=/path/to/pleo-oauth.wasm npm run build\` in host/node`);
      }
      const { instantiate } = await import(new URL('pleo-oauth.js', dir).href);
      // Compile every core module once; instances are then made synchronously.
      const modules = new Map();
      for (const name of (await readdir(dir)).filter((n) => n.endsWith('.wasm'))) {
        modules.set(name, await WebAssembly.compile(await readFile(new URL(name, dir))));
      }
      return { instantiate, modules };
    })());
  }
  return loaded.get(build);
}

/** Imports that trap: the step path never calls an import. */
function trappingImports(version) {
  const trap = (name) => () => {
    throw new Error(`pleo-oauth: the component called the import ${name} on the step path`);
  };
  const stubs = {
    clock: { nowMs: trap('clock.now-ms'), sleepMs: trap('clock.sleep-ms') },
    http: { send: trap('http.send') },
    log: { emit: trap('log.emit') },
    random: { bytes: trap('random.bytes') },
    storage: { get: trap('storage.get'), put: trap('storage.put'), delete: trap('storage.delete'), keys: trap('storage.keys') },
    types: {},
  };
  // jco's code reads `pleo:oauth/clock`, its .d.ts names `pleo:oauth/clock@x.y.z`: give both.
  const imports = {};
  for (const name of IMPORTS) {
    imports[`pleo:oauth/${name}`] = stubs[name];
    if (version) imports[`pleo:oauth/${name}@${version}`] = stubs[name];
  }
  return imports;
}

/** One live instance of the component. */
class Instance {
  constructor(exports) {
    this.exports = exports;
    this.poisoned = false;
  }
}

export class Engine {
  /**
   * @param {{ build: 'fast' | 'checked', backends: Backends }} options
   * @typedef {object} Backends
   * @property {import('./storage.js').Storage} storage
   * @property {import('./http.js').Http} http
   * @property {{ now(): number, sleep(ms: number): Promise<void> }} clock
   * @property {(len: number) => Uint8Array} random
   * @property {(event: any) => void} log
   */
  constructor({ build, backends }) {
    this.build = build;
    this.version = '0.3.0';
    this.backends = backends;
    /** @type {Instance | undefined} */
    this.current = undefined;
    /** How many instances were made (a fresh one after each trap). */
    this.instantiations = 0;
  }

  /** Compiles the component's core modules (once per build, shared by engines). */
  async load() {
    this.bound = await bindings(this.build);
    this.instance();
    return this;
  }

  /** The live instance, or a fresh one (synchronous: the modules are compiled). */
  instance() {
    if (this.current && !this.current.poisoned) return this.current;
    const { instantiate, modules } = this.bound;
    const exports = instantiate(
      (name) => modules.get(name),
      trappingImports(this.version),
      (module, imports) => new WebAssembly.Instance(module, imports),
    );
    if (typeof exports?.then === 'function') throw new Error('pleo-oauth: expected a synchronous instantiation');
    this.instantiations += 1;
    this.current = new Instance(exports);
    return this.current;
  }

  /** Calls `f(exports)`; an exception thrown out of the component poisons the instance. */
  call(f) {
    const instance = this.instance();
    return this.#guard(instance, () => f(instance.exports));
  }

  #guard(instance, f) {
    if (instance.poisoned) throw new ComponentTrapError('pleo-oauth: the instance this operation ran on trapped and was discarded');
    try {
      return f();
    } catch (e) {
      // Ours (a wrong shape, a broken step-loop rule: `step-error` changes nothing).
      if (e instanceof BoundaryError || e instanceof HostError) throw e;
      // A `result` error comes back as jco's ComponentError with a payload.
      if (e && Object.prototype.hasOwnProperty.call(e, 'payload')) throw e;
      instance.poisoned = true;
      if (this.current === instance) this.current = undefined;
      throw new ComponentTrapError(`pleo-oauth: the component trapped (${e?.name ?? 'error'}: ${String(e?.message ?? e).slice(0, 200)}); the instance was discarded`, { cause: e });
    }
  }

  /**
   * Runs one operation (a WIT `steps.call`) to its outcome, performing
   * each effect with the backends.
   */
  async run(call) {
    const instance = this.instance();
    const steps = instance.exports.steps ?? instance.exports[Object.keys(instance.exports).find((k) => /^pleo:oauth\/steps@/.test(k))];
    if (!steps) throw new Error('pleo-oauth: this component has no step interface (pleo:oauth/steps, 0.3.0 or later)');
    const op = this.#guard(instance, () => new steps.Operation(call));
    try {
      let result;
      for (;;) {
        const step = this.#guard(instance, () => {
          try {
            return op.next(result);
          } catch (e) {
            if (e && Object.prototype.hasOwnProperty.call(e, 'payload')) {
              throw new HostError(`pleo-oauth: step loop broken (${e.payload?.tag ?? e.payload}); this is a bug in the host`, { variant: e.payload });
            }
            throw e;
          }
        });
        if (step.tag === 'done') return step.val;
        result = await this.perform(step.val).catch((e) => {
          if (e instanceof HostError) throw e;
          throw new HostError(`pleo-oauth: the ${step.val.tag} effect failed in the host (${e?.name ?? typeof e}); the operation was abandoned`, { cause: e });
        });
      }
    } finally {
      if (!instance.poisoned) {
        try {
          op[Symbol.dispose ?? Symbol.for('dispose')]?.();
        } catch {
          /* dropping an operation never matters */
        }
      }
    }
  }

  /** Performs one WIT `steps.effect` and returns its `effect-result`. */
  async perform(effect) {
    const b = this.backends;
    const { tag, val } = effect;
    switch (tag) {
      case 'storage-get':
        return { tag, val: await storage(false, async () => {
          const e = await b.storage.get(val);
          return e === undefined || e === null ? undefined : W.entry(e, 'storage.get() result');
        }) };
      case 'storage-put':
        return { tag, val: await storage(true, async () =>
          W.u64(await b.storage.put(val.key, val.value, val.expectedVersion), 'storage.put() result')) };
      case 'storage-delete':
        return { tag, val: await storage(true, async () => {
          await b.storage.delete(val.key, val.expectedVersion);
        }) };
      case 'storage-keys':
        return { tag, val: await storage(false, async () =>
          W.list(W.str)(await b.storage.keys(val.prefix, val.after, val.limit), 'storage.keys() result')) };
      case 'http-send':
        return { tag, val: await http(b.http, val) };
      case 'random-bytes': {
        const bytes = b.random(val);
        if (!(bytes instanceof Uint8Array) || bytes.length !== val) throw new HostError(`pleo-oauth: random(${val}) must return ${val} bytes in a Uint8Array`);
        return { tag, val: bytes };
      }
      case 'now-ms':
        return { tag, val: W.time(b.clock.now(), 'clock.now() result') };
      case 'sleep-ms':
        await b.clock.sleep(val);
        return { tag };
      case 'emit':
        try {
          b.log(W.datesOut(val));
        } catch {
          /* logging never fails an operation */
        }
        return { tag };
      default:
        throw new HostError(`pleo-oauth: unknown effect ${describe(tag)}`);
    }
  }
}

/** Runs a storage call; maps what it throws to a WIT storage-error. */
async function storage(write, f) {
  try {
    return { tag: 'ok', val: await f() };
  } catch (e) {
    if (e instanceof StorageFailure) return { tag: 'err', val: e.toWit() };
    if (e instanceof BoundaryError) throw new HostError(`pleo-oauth: the storage backend returned a wrong shape: ${e.message}`, { cause: e });
    // An unexpected exception: for a write its outcome is unknown. Only the class name crosses.
    const text = `storage backend threw ${e?.name ?? typeof e}`;
    return { tag: 'err', val: write ? { tag: 'outcome-unknown', val: text } : { tag: 'unavailable', val: text } };
  }
}

/** Sends a WIT `http.request` with the platform's client. */
async function http(client, request) {
  const req = {
    method: request.method === 'get' ? 'GET' : 'POST',
    url: request.url,
    headers: request.headers.map((h) => [h.name, h.value]),
    body: request.body,
    timeoutMs: request.timeoutMs,
    clientId: request.clientAuth?.clientId,
  };
  let response;
  try {
    response = await client.send(req);
  } catch (e) {
    if (e instanceof TransportFailure) return { tag: 'err', val: e.toWit() };
    return { tag: 'err', val: { tag: 'other', val: `http backend threw ${e?.name ?? typeof e}` } };
  }
  try {
    return { tag: 'ok', val: W.fillResponse(W.response(response, 'http.send() result')) };
  } catch (e) {
    throw new HostError(`pleo-oauth: the HTTP backend returned a wrong shape: ${e.message}`, { cause: e });
  }
}
