/**
 * The CLI end to end, as real processes on 127.0.0.1: broker + worker +
 * send, status before and after a worker connects, tokens, and the checks
 * on a --tasks module.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { App, signature } from '../../src/index.js';
import { TcpTransport } from '../../transports/tcp/index.js';
import { cleanup, EXAMPLE_TASKS, runCli, startBroker, startWorker, tempDir, tempFile } from './cli-harness.js';

afterEach(cleanup);

interface StatusJson {
  broker: string;
  clients: number;
  workers: number;
  queues: Array<{ name: string; ready: number; unacked: number; consumers: number; readyPerSecond: number | null }>;
}

async function statusJson(address: string, extra: readonly string[] = []): Promise<StatusJson> {
  const { code, stdout, stderr } = await runCli(['status', '--connect', address, '--json', '--interval', '0', ...extra]);
  expect(stderr).toBe('');
  expect(code, stderr).toBe(0);
  return JSON.parse(stdout) as StatusJson;
}

async function sendNoWait(address: string, args: string, queue = 'default'): Promise<void> {
  const { code, stdout, stderr } = await runCli(['send', '--connect', address, 'add', args, '--no-wait', '--queue', queue]);
  expect(code, stderr).toBe(0);
  expect(stdout).toMatch(/^[0-9a-f-]{36}$/);
}

describe('millwright send', () => {
  it('runs a task of the example tasks module on a worker and prints its result as JSON', async () => {
    const { address } = await startBroker();
    await startWorker(address, ['--concurrency', '4'], EXAMPLE_TASKS);
    const sum = await runCli(['send', '--connect', address, 'add', '[1,2]']);
    expect(sum).toEqual({ code: 0, stdout: '3', stderr: '' });
    const tally = await runCli(['send', '--connect', address, 'tally', '[{"pid":1,"sum":2},{"pid":1,"sum":5}]']);
    expect(tally.code, tally.stderr).toBe(0);
    expect(JSON.parse(tally.stdout)).toMatchObject({ total: 7, byPid: { 1: 2 } });
  });

  it('a failed task prints its error message to stderr and exits 1', async () => {
    const { address } = await startBroker();
    await startWorker(address);
    const { code, stdout, stderr } = await runCli(['send', '--connect', address, 'fail', '["disk on fire"]']);
    expect(code, stderr).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/^millwright: Task `fail` \([0-9a-f-]{36}\) failed: disk on fire\n$/);
  });

  it('--timeout gives up waiting (exit 1) when no worker consumes the queue; --no-wait prints the id', async () => {
    const { address } = await startBroker();
    const waited = await runCli(['send', '--connect', address, 'add', '[1]', '--timeout', '200']);
    expect(waited.code, waited.stderr).toBe(1);
    expect(waited.stderr).toContain('Timed out after 200 ms waiting for task');
    const queued = await runCli(['send', '--connect', address, 'add', '[1]', '--no-wait', '--queue', 'other']);
    expect(queued.code, queued.stderr).toBe(0);
    expect(queued.stdout).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('millwright worker', () => {
  it('--results-expire-in sets how long the broker keeps the states of the tasks it finishes (default 24 h)', async () => {
    const { address } = await startBroker();
    const [host, port] = [address.split(':')[0] as string, Number(address.split(':')[1])];
    const app = new App({ transport: new TcpTransport({ host, port }) });
    try {
      await startWorker(address, ['--results-expire-in', '60000']);
      const r = await app.send(signature('add', [1, 2], { id: 'kept-a-minute' }));
      expect(await r.get({ timeout: 5_000 })).toBe(3);
      const record = await app.transport.getState('kept-a-minute');
      expect((record?.expiresAt ?? 0) - (record?.updatedAt ?? 0)).toBe(60_000);
    } finally {
      await app.close();
    }
    const bad = await runCli(['worker', '--connect', address, '--results-expire-in', '0']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--results-expire-in/);
  });
});

describe('millwright status', () => {
  it('shows queue depths with no worker, then the consumer once a worker connects', async () => {
    const { address } = await startBroker();
    for (let i = 0; i < 3; i++) await sendNoWait(address, `[${i},1]`);
    await sendNoWait(address, '[1]', 'emails');

    const before = await statusJson(address);
    expect(before).toMatchObject({ broker: address, clients: 0, workers: 0 });
    expect(before.queues).toEqual([
      { name: 'default', ready: 3, unacked: 0, consumers: 0, readyPerSecond: null },
      { name: 'emails', ready: 1, unacked: 0, consumers: 0, readyPerSecond: null },
    ]);
    const table = await runCli(['status', '--connect', address, '--interval', '50']);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^QUEUE\s+READY\s+IN FLIGHT\s+CONSUMERS\s+READY\/s$/m);
    expect(table.stdout).toMatch(/^default\s+3\s+0\s+0\s+0$/m);
    expect(table.stdout).toMatch(/^emails\s+1\s+0\s+0\s+0$/m);

    // The worker drains default; the sum of the three results proves they ran.
    await startWorker(address, ['--queues', 'default']);
    const after = await statusJson(address);
    expect(after).toMatchObject({ clients: 1, workers: 1 });
    const byName = Object.fromEntries(after.queues.map((q) => [q.name, q]));
    expect(byName['default']?.consumers).toBe(1);
    expect(byName['emails']).toMatchObject({ ready: 1, consumers: 0 });
  });
});

describe('tokens', () => {
  it('a wrong or missing token makes send exit 1 with an auth error; the right one works', async () => {
    const { address } = await startBroker(['--token-file', tempFile('token', 's3cret\n')]);
    const wrong = await runCli(['send', '--connect', address, 'add', '[1,2]', '--token-file', tempFile('token', 'guess')]);
    expect(wrong.code, wrong.stderr).toBe(1);
    expect(wrong.stdout).toBe('');
    expect(wrong.stderr).toMatch(/^millwright: Wrong token.*\(ERR_AUTH\)\n$/);
    const missing = await runCli(['send', '--connect', address, 'add', '[1,2]']);
    expect(missing.code, missing.stderr).toBe(1);
    expect(missing.stderr).toMatch(/requires a token.*\(ERR_AUTH\)/);
    const right = tempFile('token', 's3cret');
    await startWorker(address, ['--token-file', right]);
    expect(await runCli(['send', '--connect', address, 'add', '[1,2]', '--token-file', right])).toEqual({ code: 0, stdout: '3', stderr: '' });
  });
});

describe('TLS', () => {
  const hasOpenssl = (() => { try { execFileSync('openssl', ['version'], { stdio: 'ignore' }); return true; } catch { return false; } })();
  it.skipIf(!hasOpenssl)('broker --tls-cert/--tls-key, clients --tls-ca: tasks go over TLS; an untrusted certificate fails at once (skipped without openssl)', async () => {
    const dir = tempDir();
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
    const { broker, address } = await startBroker(['--tls-cert', cert, '--tls-key', key]);
    expect(broker.output).toContain('over TLS');
    await startWorker(address, ['--tls-ca', cert]);
    expect(await runCli(['send', '--connect', address, 'add', '[20,22]', '--tls-ca', cert])).toEqual({ code: 0, stdout: '42', stderr: '' });
    const status = await statusJson(address, ['--tls-ca', cert]);
    expect(status.workers).toBe(1);
    // Trusting only the system's CAs: the self-signed certificate is refused, and the command says so at once
    // (not after the 30 s send timeout: this test would time out).
    const untrusted = await runCli(['send', '--connect', address, 'add', '[1,2]', '--tls']);
    expect(untrusted.code, untrusted.stderr).toBe(1);
    expect(untrusted.stderr).toMatch(/TLS with the broker at 127\.0\.0\.1:\d+ failed: .*--tls-ca.*\(ERR_CONNECTION\)/);
    const halfPair = await runCli(['broker', '--port', '0', '--tls-cert', cert]);
    expect(halfPair.code, halfPair.stderr).toBe(2);
    expect(halfPair.stderr).toContain('Expected `--tls-cert` and `--tls-key` together');
  });
});

describe('the --tasks module', () => {
  it('is checked: missing file or no default function exit 2, a throwing module exits 1', async () => {
    const { address } = await startBroker();
    const missing = await runCli(['worker', '--connect', address, '--tasks', '/nonexistent/tasks.js']);
    expect(missing.code, missing.stderr).toBe(2);
    expect(missing.stderr).toContain('Expected `--tasks` to name an ES module file, got `/nonexistent/tasks.js` (not found)');
    const noDefault = await runCli(['worker', '--connect', address, '--tasks', tempFile('cli-tasks.mjs', 'export const x = 1;\n')]);
    expect(noDefault.code, noDefault.stderr).toBe(2);
    expect(noDefault.stderr).toContain('whose default export is a function (app) => void');
    const throwing = await runCli(['worker', '--connect', address, '--tasks', tempFile('cli-tasks.mjs', 'export default () => { throw new Error("bad registration"); };\n')]);
    expect(throwing.code, throwing.stderr).toBe(1);
    expect(throwing.stderr).toContain('bad registration');
  });
});
