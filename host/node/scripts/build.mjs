// Transpiles the component named by PLEO_OAUTH_COMPONENT with the pinned jco
// into gen/ (git-ignored), twice:
//   gen/checked: jco's default lifting, every value the component returns is
//                checked as it is lifted (development, tests);
//   gen/trusted: --valid-lifting-optimization, lifting trusts the component
//                (the values the component returns are its own, built by
//                its Rust types; the package's boundary checks on what the
//                platform passes in stay on);
//   gen/fast:    trusted, and jco's debug logging compiled out: jco 1.35
//                emits `_debugLog(...)` calls on every call, each reading
//                `process.env.JCO_DEBUG` (a lookup in the C++ environment).
//                The one line that reads it is replaced by `return;`; the
//                build fails if that line is not found exactly once, so a
//                jco upgrade cannot silently change what is patched.
//                Production default.
// Both are --instantiation async: the package supplies the imports object
// itself, so no --map is ever needed.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const component = process.env.PLEO_OAUTH_COMPONENT;
if (!component) {
  console.error(
    'PLEO_OAUTH_COMPONENT is not set: point it at the component (.wasm), for example\n' +
      '  pleo-oauth component /tmp/pleo-oauth.wasm && PLEO_OAUTH_COMPONENT=/tmp/pleo-oauth.wasm npm test',
  );
  process.exit(2);
}
if (!existsSync(component)) {
  console.error(`PLEO_OAUTH_COMPONENT=${component}: no such file`);
  process.exit(2);
}
const bytes = readFileSync(component);
const digest = createHash('sha256').update(bytes).digest('hex');
const gen = join(root, 'gen');
const stamp = join(gen, 'SOURCE');
if (existsSync(stamp) && readFileSync(stamp, 'utf8') === digest && !process.argv.includes('--force')) {
  process.exit(0); // up to date
}
rmSync(gen, { recursive: true, force: true });
const jco = realpathSync(join(root, 'node_modules', '.bin', 'jco'));
const flavours = { checked: [], trusted: ['--valid-lifting-optimization'], fast: ['--valid-lifting-optimization'] };
for (const [name, flags] of Object.entries(flavours)) {
  const out = join(gen, name);
  mkdirSync(out, { recursive: true });
  execFileSync(
    process.execPath,
    [jco, 'transpile', component, '-o', out, '--name', 'pleo-oauth', '--instantiation', 'async', '--no-nodejs-compat', '-q', ...flags],
    { stdio: 'inherit' },
  );
  if (name === 'fast') {
    const file = join(out, 'pleo-oauth.js');
    const js = readFileSync(file, 'utf8');
    const line = 'if (!globalThis?.process?.env?.JCO_DEBUG) { return; }';
    if (js.split(line).length !== 2) {
      console.error(`build: jco's debug-log guard (${line}) not found exactly once in gen/fast; check the jco version`);
      process.exit(1);
    }
    writeFileSync(file, js.replace(line, 'return; // pleo-oauth build: jco debug logging compiled out'));
  }
}
writeFileSync(stamp, digest);
console.error(`built gen/ from ${component} (${bytes.length} bytes, ${statSync(component).mtime.toISOString()})`);
