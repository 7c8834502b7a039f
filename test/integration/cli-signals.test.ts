/**
 * SIGTERM handling of the CLI's long-running commands: a worker lets its
 * running task finish (or, past --stop-timeout, hands it back) and exits 0;
 * a broker with --data-dir flushes its journal, exits 0, and a broker
 * restarted on the same directory still holds the queued task.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { App } from '../../src/index.js';
import { TcpTransport } from '../../transports/tcp/index.js';
import { cleanup, runCli, startBroker, startWorker, tempDir } from './cli-harness.js';

afterEach(cleanup);

/** An in-process App on the broker at `address`, closed after `use`. */
async function withApp<T>(address: string, use: (app: App) => Promise<T>): Promise<T> {
  const port = Number(address.split(':')[1]);
  const app = new App({ transport: new TcpTransport({ host: '127.0.0.1', port, sendTimeout: 5_000 }) });
  try {
    return await use(app);
  } finally {
    await app.close();
  }
}

async function sendNoWait(address: string, name: string, args: string): Promise<string> {
  const { code, stdout, stderr } = await runCli(['send', '--connect', address, name, args, '--no-wait']);
  expect(stderr).toBe('');
  expect(code, stderr).toBe(0);
  return stdout;
}

async function depth(address: string, queue: string): Promise<{ ready: number; unacked: number; consumers: number } | undefined> {
  const { stdout } = await runCli(['status', '--connect', address, '--json', '--interval', '0']);
  const status = JSON.parse(stdout) as { queues: Array<{ name: string; ready: number; unacked: number; consumers: number }> };
  return status.queues.find((q) => q.name === queue);
}

describe('SIGTERM to a worker', () => {
  it('lets the running task finish, records SUCCESS and exits 0', async () => {
    const { address } = await startBroker();
    const worker = await startWorker(address, ['--stop-timeout', '10000']);
    const id = await sendNoWait(address, 'slow', '[400]');
    await worker.waitForLine(new RegExp(`^slow started ${id}$`));
    worker.proc.kill('SIGTERM');
    expect(await worker.exited, worker.stderr).toBe(0);
    expect(worker.output).toContain('SIGTERM, stopping: 1 running task(s) get up to 10000 ms to finish');
    expect(worker.lines.at(-1)).toBe('millwright worker stopped');
    const state = await withApp(address, (app) => app.result(id).state());
    expect(state).toMatchObject({ id, name: 'slow', state: 'SUCCESS', result: 'slept 400 ms' });
  });

  it('past --stop-timeout hands the task back, exits 0, and another worker takes it', async () => {
    const { address } = await startBroker();
    const first = await startWorker(address, ['--stop-timeout', '50']);
    const id = await sendNoWait(address, 'slow', '[60000]');
    await first.waitForLine(new RegExp(`^slow started ${id}$`));
    first.proc.kill('SIGTERM');
    expect(await first.exited, first.stderr).toBe(0);
    expect(first.output).toContain('1 running task(s) get up to 50 ms to finish');
    expect(await depth(address, 'default')).toMatchObject({ ready: 1, unacked: 0, consumers: 0 });
    const second = await startWorker(address);
    await second.waitForLine(new RegExp(`^slow started ${id}$`));
    const state = await withApp(address, (app) => app.result(id).state());
    expect(state.state).not.toBe('SUCCESS');
  });
});

describe('SIGTERM to a broker with --data-dir', () => {
  it('exits 0, and a broker restarted on the same directory still has the queued task', async () => {
    const dir = tempDir();
    const { broker, address } = await startBroker(['--data-dir', dir]);
    expect(broker.output).toContain(`(journal in ${dir})`);
    const id = await sendNoWait(address, 'add', '[2,3]');
    broker.proc.kill('SIGTERM');
    expect(await broker.exited, broker.stderr).toBe(0);
    expect(broker.lines.slice(-2)).toEqual(['millwright broker: SIGTERM, closing', 'millwright broker closed']);

    const restarted = await startBroker(['--data-dir', dir]);
    expect(await depth(restarted.address, 'default')).toMatchObject({ ready: 1, unacked: 0 });
    await startWorker(restarted.address);
    expect(await withApp(restarted.address, (app) => app.result(id).get({ timeout: 10_000 }))).toBe(5);
  });

  it('without --data-dir, SIGINT also exits 0', async () => {
    const { broker } = await startBroker();
    expect(broker.output).toContain('(in memory only)');
    broker.proc.kill('SIGINT');
    expect(await broker.exited, broker.stderr).toBe(0);
  });
});
