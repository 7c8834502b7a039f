/**
 * maxFrameBytes is exchanged in hello/welcome: a frame the peer could not take fails with a reason instead of
 * closing connections. A request that cannot be encoded at all fails alone too.
 */
import { createServer, connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { App, TaskFailedError, ValidationError, type TaskMessage } from '../../src/index.js';
import { BrokerServer, TcpTransport } from '../../transports/tcp/index.js';
import { taskMessage } from './tcp-helpers.js';

const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => { for (const c of cleanup.splice(0).reverse()) await c(); });

async function broker(maxFrameBytes?: number): Promise<number> {
  const server = new BrokerServer(maxFrameBytes === undefined ? { port: 0 } : { port: 0, maxFrameBytes });
  await server.listen();
  cleanup.push(() => server.close());
  return server.address().port;
}

function app(port: number, maxFrameBytes?: number): App {
  const a = new App({ transport: new TcpTransport(maxFrameBytes === undefined ? { port, sendTimeout: 2_000 } : { port, maxFrameBytes, sendTimeout: 2_000 }) });
  cleanup.push(() => a.close());
  return a;
}

describe('frame limits', () => {
  it('a send over the broker\'s maxFrameBytes rejects with ValidationError at once (no reconnect storm), and the client keeps working', async () => {
    const port = await broker(64 * 1024);
    const producer = app(port);
    const echo = producer.task('echo', (s: string) => s.length);
    await producer.worker().start();
    const err = await producer.send(echo.s('x'.repeat(100_000))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect(String((err as Error).message)).toMatch(/over the broker's maxFrameBytes \(65536\)/);
    expect(await (await producer.send(echo.s('small'))).get({ timeout: 5_000 })).toBe(5);
  });

  it('a result over the broker\'s maxFrameBytes fails its task with the reason (unsettled, it would be redelivered forever)', async () => {
    const port = await broker(64 * 1024);
    const producer = app(port);
    const worker = app(port);
    const big = producer.task('big', (n: number) => 'x'.repeat(n));
    worker.task('big', (n: number) => 'x'.repeat(n));
    const w = worker.worker();
    const events: string[] = [];
    for (const e of ['task:succeeded', 'task:failed']) w.on(e, (x: { attempt: number }) => events.push(`${e}:${x.attempt}`));
    await w.start();
    const err = await (await producer.send(big.s(100_000))).get({ timeout: 5_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskFailedError);
    expect((err as TaskFailedError).message).toMatch(/could not be sent: .*over the broker's maxFrameBytes \(65536\)/);
    expect(await (await producer.send(big.s(10))).get({ timeout: 5_000 })).toBe('x'.repeat(10));
    // Events are told as the outcome is decided (before the settle, to keep their order with the next delivery):
    // the refused result was told as succeeded, then as failed.
    expect(events).toEqual(['task:succeeded:1', 'task:failed:1', 'task:succeeded:1']);
  });

  it('a task over its worker\'s maxFrameBytes ends FAILURE with the reason instead of bouncing between workers', async () => {
    const port = await broker();
    const producer = app(port);
    const worker = app(port, 64 * 1024);
    const echo = producer.task('echo', (s: string) => s.length);
    worker.task('echo', (s: string) => s.length);
    await worker.worker().start();
    const r = await producer.send(echo.s('x'.repeat(100_000)));
    const err = await r.get({ timeout: 5_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskFailedError);
    expect((err as TaskFailedError).message).toMatch(/over its worker's maxFrameBytes \(65536\)/);
    expect(await (await producer.send(echo.s('small'))).get({ timeout: 5_000 })).toBe(5);
  });
});

/** A producer whose maxFrameBytes (64 KiB) is below the broker's, and a worker for its task `big` (n -> n bytes). */
async function smallProducer(): Promise<{ producer: App; big: ReturnType<App['task']> }> {
  const port = await broker();
  const producer = app(port, 64 * 1024);
  const worker = app(port);
  const big = producer.task('big', (n: number) => 'x'.repeat(n));
  worker.task('big', (n: number) => 'x'.repeat(n));
  await worker.worker().start();
  return { producer, big };
}

describe('a result over a producer\'s own maxFrameBytes', () => {
  it('get() and state() reject with ValidationError naming the limit (the connection would have closed, again on every reconnect), and the producer keeps working', async () => {
    const { producer, big } = await smallProducer();
    const early = await producer.send(big.s(100_000)); // watched while running: the SUCCESS event is too large
    const err = await early.get({ timeout: 5_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as Error).message).toMatch(/over this client's maxFrameBytes \(65536\)/);
    // Asked after it finished: the getState reply is too large.
    const state = await early.state().catch((e: unknown) => e);
    expect(state).toBeInstanceOf(ValidationError);
    const late = await producer.result(early.id).get({ timeout: 5_000 }).catch((e: unknown) => e);
    expect(late).toBeInstanceOf(ValidationError);
    expect(await (await producer.send(big.s(10))).get({ timeout: 5_000 })).toBe('x'.repeat(10));
  });
});

/** A TCP proxy to `port` whose connections can be cut, and new ones refused, until `resume()`. */
async function proxy(port: number): Promise<{ port: number; cut(): void; resume(): void }> {
  let refusing = false;
  const open = new Set<Socket>();
  const server = createServer((client) => {
    if (refusing) { client.destroy(); return; }
    const upstream = connect(port, '127.0.0.1');
    open.add(client); open.add(upstream);
    client.pipe(upstream); upstream.pipe(client);
    const end = (): void => { client.destroy(); upstream.destroy(); open.delete(client); open.delete(upstream); };
    client.on('error', end); upstream.on('error', end); client.on('close', end); upstream.on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanup.push(() => new Promise<void>((resolve) => { for (const s of open) s.destroy(); server.close(() => resolve()); }));
  return {
    port: (server.address() as { port: number }).port,
    cut: () => { refusing = true; for (const s of open) s.destroy(); },
    resume: () => { refusing = false; },
  };
}

describe('a result over a producer\'s own maxFrameBytes, read late', () => {
  it('r.progress of a task that finished with such a result ends', async () => {
    const { producer, big } = await smallProducer();
    const r = await producer.send(big.s(100_000));
    expect(await r.get({ timeout: 5_000 }).catch((e: unknown) => e)).toBeInstanceOf(ValidationError);
    const seen: unknown[] = [];
    for await (const v of r.progress) seen.push(v); // the getState reply says final: the iteration ends
    expect(seen).toEqual([]);
  });

  it('get() waiting across a reconnect gets ValidationError when the final state came while it was away', async () => {
    const port = await broker();
    const p = await proxy(port);
    const producer = new App({ transport: new TcpTransport({ port: p.port, maxFrameBytes: 64 * 1024, reconnectDelay: 20, maxReconnectDelay: 50 }) });
    cleanup.push(() => producer.close());
    const worker = app(port);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => { release = resolve; });
    let started!: () => void;
    const running = new Promise<void>((resolve) => { started = resolve; });
    const big = producer.task('big', (n: number) => 'x'.repeat(n));
    worker.task('big', async (n: number) => { started(); await gate; return 'x'.repeat(n); });
    const w = worker.worker();
    await w.start();
    const r = await producer.send(big.s(100_000));
    const got = r.get({ timeout: 5_000 }).catch((e: unknown) => e);
    await running;
    await r.state(); // answered after get()'s own getState (replies come in request order): nothing left in flight
    p.cut(); // the producer is away when the task finishes
    const finished = new Promise((resolve) => w.once('task:succeeded', resolve));
    release();
    await finished;
    p.resume();
    // The reconnect's catch-up getState brings the final state (without its result, saying why).
    expect(await got).toBeInstanceOf(ValidationError);
  });
});

describe('encoding failures', () => {
  it('a request that cannot be encoded rejects alone with ValidationError (nothing thrown out of the flush), and the client keeps working', async () => {
    const port = await broker();
    const t = new TcpTransport({ port, sendTimeout: 2_000 });
    cleanup.push(() => t.close());
    await t.connect();
    // A hand-built message (the Transport seam is public): JSON cannot hold a BigInt header.
    const bad = taskMessage('enc', { headers: { n: 1n } as unknown as Record<string, string> });
    const good: TaskMessage = taskMessage('enc');
    const [err] = await Promise.all([
      t.publish({ tasks: [bad], chords: [] }).catch((e: unknown) => e),
      t.publish({ tasks: [good], chords: [] }),
    ]);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as Error).message).toMatch(/Could not encode the publish request/);
    expect(await t.getState(bad.id)).toBeUndefined();
    expect((await t.getState(good.id))?.state).toBe('PENDING');
  });
});

