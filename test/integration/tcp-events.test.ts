/**
 * Task events keep their order over TCP: the broker writes a settle's confirmation and the next delivery (a retry,
 * the next link of a chain) in one write, and the client handles both in one read; events told on a promise
 * reaction to the confirmation came after the next task:started (found by a review; these failed then).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { App, chain, RetryLater, signature, type Worker } from '../../src/index.js';
import { BrokerServer, TcpTransport } from '../../transports/tcp/index.js';

const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => { for (const c of cleanup.splice(0).reverse()) await c(); });

async function tcpApp(): Promise<App> {
  const server = new BrokerServer({ port: 0 });
  await server.listen();
  cleanup.push(() => server.close());
  const app = new App({ transport: new TcpTransport({ port: server.address().port }) });
  cleanup.push(() => app.close());
  return app;
}

/** Records `names` events of `worker` as `name#key`, and resolves `last` on the n-th task:succeeded. */
function record(worker: Worker, names: readonly string[], key: (e: { id: string; attempt: number }) => string, succeeded: number): { events: string[]; last: Promise<void> } {
  const events: string[] = [];
  let seen = 0;
  let done!: () => void;
  const last = new Promise<void>((resolve) => { done = resolve; });
  for (const name of names) {
    worker.on(name, (e: { id: string; attempt: number }) => {
      events.push(`${name}#${key(e)}`);
      if (name === 'task:succeeded' && ++seen === succeeded) done();
    });
  }
  return { events, last };
}

describe('task events over TCP', () => {
  it('task:retry of attempt 1 is told before task:started of attempt 2', async () => {
    const app = await tcpApp();
    let n = 0;
    app.task('flaky', () => { if (++n === 1) throw new RetryLater(0); return n; });
    const worker = app.worker({ concurrency: 1 });
    const { events, last } = record(worker, ['task:started', 'task:retry', 'task:succeeded'], (e) => String(e.attempt), 1);
    await worker.start();
    expect(await (await app.send(signature('flaky', []))).get({ timeout: 5_000 })).toBe(2);
    await last;
    expect(events).toEqual(['task:started#1', 'task:retry#1', 'task:started#2', 'task:succeeded#2']);
  });

  it('chain: task:succeeded of the first link is told before task:started of the next', async () => {
    const app = await tcpApp();
    app.task('add', (a: number, b: number) => a + b);
    const worker = app.worker({ concurrency: 1 });
    const { events, last } = record(worker, ['task:started', 'task:succeeded'], (e) => e.id, 2);
    await worker.start();
    const r = await app.send(chain(signature('add', [1, 2], { id: 'first' }), signature('add', [3], { id: 'second' })));
    expect(await r.get({ timeout: 5_000 })).toBe(6);
    await last;
    expect(events).toEqual(['task:started#first', 'task:succeeded#first', 'task:started#second', 'task:succeeded#second']);
  });
});
