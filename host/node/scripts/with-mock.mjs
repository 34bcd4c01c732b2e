// Runs a command with the project's mock of Pleo started for it:
//   node scripts/with-mock.mjs <path to pleo-oauth> <command> [args...]
// e.g. node scripts/with-mock.mjs ../../target/debug/pleo-oauth npm test
// Starts `pleo-oauth mock-server --port 0 --json --consent auto` with a
// fresh client id and secret, exports PLEO_OAUTH_MOCK_URL,
// PLEO_OAUTH_MOCK_CLIENT_ID and PLEO_OAUTH_MOCK_CLIENT_SECRET to the
// command, and stops the mock when the command ends (its exit code is ours).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';

const [bin, command, ...args] = process.argv.slice(2);
if (!bin || !command) {
  console.error('usage: node scripts/with-mock.mjs <path to pleo-oauth> <command> [args...]');
  process.exit(2);
}
const clientId = `node-e2e-${randomBytes(4).toString('hex')}`;
const secret = randomBytes(24).toString('base64url');
// `--json` prints one line, {"url", "client-id", "confidential"}; the
// secret is the one given in PLEO_OAUTH_CLIENT_SECRET, never printed.
const mockArgs = ['mock-server', '--port', '0', '--json', '--consent', 'auto', '--client-id', clientId];
const mock = spawn(bin, mockArgs, {
  env: { ...process.env, PLEO_OAUTH_CLIENT_SECRET: secret },
  stdio: ['ignore', 'pipe', 'inherit'],
});
mock.on('error', (e) => {
  console.error(`with-mock: cannot start ${bin}: ${e.message}`);
  process.exit(2);
});
const line = await new Promise((resolve, reject) => {
  createInterface({ input: mock.stdout }).once('line', resolve);
  mock.once('exit', (code) => reject(new Error(`the mock exited (${code}) before printing its address`)));
});
const info = JSON.parse(line);
if (typeof info.url !== 'string' || info['client-id'] !== clientId || info.confidential !== true) {
  throw new Error(`unexpected mock output (${Object.keys(info)})`);
}
const child = spawn(command, args, {
  stdio: 'inherit',
  env: { ...process.env, PLEO_OAUTH_MOCK_URL: info.url, PLEO_OAUTH_MOCK_CLIENT_ID: clientId, PLEO_OAUTH_MOCK_CLIENT_SECRET: secret },
});
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    child.kill(signal);
    mock.kill('SIGTERM');
  });
}
child.on('exit', (code, signal) => {
  mock.kill('SIGTERM');
  process.exit(code ?? (signal ? 1 : 0));
});
