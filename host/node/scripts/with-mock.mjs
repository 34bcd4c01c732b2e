// Runs a command with the project's mock of Pleo started for it:
//   node scripts/with-mock.mjs <path to pleo-oauth> <command> [args...]
// e.g. node scripts/with-mock.mjs ../../target/debug/pleo-oauth npm test
// Starts `pleo-oauth mock-server --port 0 --json --consent auto` with a
// fresh client id and secret, exports PLEO_OAUTH_MOCK_URL,
// PLEO_OAUTH_MOCK_CLIENT_ID and PLEO_OAUTH_MOCK_CLIENT_SECRET to the
// command, and stops the mock when the command ends (its exit code is ours).
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';

const [bin, command, ...args] = process.argv.slice(2);
if (!bin || !command) {
  console.error('usage: node scripts/with-mock.mjs <path to pleo-oauth> <command> [args...]');
  process.exit(2);
}
const clientId = `node-e2e-${randomBytes(4).toString('hex')}`;
const secret = randomBytes(24).toString('base64url');
// `pleo-oauth mock` (newer: prints its URL and client credentials) when
// the binary has it, else `pleo-oauth mock-server --json`.
const hasMock = spawnSync(bin, ['mock', '--help'], { stdio: 'ignore' }).status === 0;
const mockArgs = hasMock ? ['mock'] : ['mock-server', '--port', '0', '--json', '--consent', 'auto', '--client-id', clientId];
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
const pick = (...keys) => keys.map((k) => info[k]).find((v) => typeof v === 'string');
const url = pick('url', 'base-url', 'base_url', 'baseUrl');
const id = pick('client-id', 'client_id', 'clientId') ?? clientId;
const key = pick('client-secret', 'client_secret', 'clientSecret') ?? secret;
if (!url || (!hasMock && (id !== clientId || info.confidential !== true))) throw new Error(`unexpected mock output (${Object.keys(info)})`);
const child = spawn(command, args, {
  stdio: 'inherit',
  env: { ...process.env, PLEO_OAUTH_MOCK_URL: url, PLEO_OAUTH_MOCK_CLIENT_ID: id, PLEO_OAUTH_MOCK_CLIENT_SECRET: key },
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
