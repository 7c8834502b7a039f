/**
 * Regression tests from a ninth review (worker.stop() called twice or during start(), errors of another realm):
 * each failed before its fix. Time is a FakeClock; nothing sleeps.
 */
import * as vm from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import { App, currentTask, FakeClock, MemoryTransport, RetryLater, signature, TaskFailedError, ValidationError } from '../../src/index.js';

const apps: App[] = [];
afterEach(async () => { await Promise.all(apps.splice(0).map((a) => a.close())); });

/** One macrotask turn: every microtask the memory transport and the worker queued has run. */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const consumers = (transport: MemoryTransport): number => transport.stats().reduce((n, q) => n + q.consumers, 0);

describe('review 9', () => {
  // src/worker.ts stop(): a second call while the first waited returned #waitIdle(), which resolved as soon as the
  // tasks ended, before the first stop had cancelled the consumer (and closed the thread pool): the second caller
  // (app.close() after a user's stop(), a second signal handler) went on with the worker still consuming.
  it('a second stop() resolves only once the worker is stopped, as the first does', async () => {
    const transport = new MemoryTransport();
    const app = new App({ clock: new FakeClock(), transport });
    apps.push(app);
    let release!: () => void;
    const started = new Promise<void>((ok) => {
      app.task('slow', () => { ok(); return new Promise<void>((done) => { release = done; }); });
    });
    const worker = app.worker();
    await worker.start();
    await app.send(signature('slow'));
    await started;
    const order: string[] = [];
    const first = worker.stop().then(() => { order.push('first'); });
    const second = worker.stop().then(() => { order.push(`second (consumers left: ${consumers(transport)})`); });
    release();
    await Promise.all([first, second]);
    expect(order).toEqual(['first', 'second (consumers left: 0)']);
  });

  // src/worker.ts stop(): the second call only waited for the running tasks: stop({ graceful: false }) during a
  // graceful stop (the usual second Ctrl-C) neither aborted a hung task nor resolved, ever.
  it('stop({ graceful: false }) during a graceful stop aborts the running tasks and hands them back', async () => {
    const clock = new FakeClock();
    const app = new App({ clock });
    apps.push(app);
    let aborted = false;
    let runs = 0;
    let started!: () => void;
    const running = new Promise<void>((ok) => { started = ok; });
    app.task('hung', () => {
      if (++runs > 1) return 'second run';
      currentTask().signal.addEventListener('abort', () => { aborted = true; });
      started();
      return new Promise<never>(() => { /* ignores its signal */ });
    });
    const worker = app.worker();
    await worker.start();
    const r = await app.send(signature('hung'));
    await running;
    const graceful = worker.stop();
    await turn();
    await worker.stop({ graceful: false });
    await graceful;
    expect(aborted).toBe(true);
    // Handed back, not lost: another worker runs it.
    await app.worker().start();
    expect(await r.get()).toBe('second run');
  });

  it('a timeout given to a second stop() cuts the first one\'s graceful wait short', async () => {
    const clock = new FakeClock();
    const app = new App({ clock });
    apps.push(app);
    let started!: () => void;
    const running = new Promise<void>((ok) => { started = ok; });
    app.task('hung', () => { started(); return new Promise<never>(() => { /* never ends */ }); });
    const worker = app.worker();
    await worker.start();
    await app.send(signature('hung'));
    await running;
    let stopped = false;
    const graceful = worker.stop().then(() => { stopped = true; });
    const second = worker.stop({ timeout: 1_000 });
    await clock.advance(999);
    expect(stopped).toBe(false);
    await clock.advance(1);
    await Promise.all([graceful, second]);
    expect(stopped).toBe(true);
  });

  // src/worker.ts stop(): called while start() waited for the transport, it found no consumer to cancel and
  // resolved; start() then registered one, which stayed registered on a stopped worker (every task sent to the
  // queue went to it first, to be handed back).
  it('stop() during start() leaves no consumer registered', async () => {
    const transport = new MemoryTransport();
    const app = new App({ clock: new FakeClock(), transport });
    apps.push(app);
    app.task('t', () => 1);
    const worker = app.worker();
    const starting = worker.start();
    await worker.stop();
    await starting;
    await app.send(signature('t'));
    expect(consumers(transport)).toBe(0);
  });

  // src/errors.ts toErrorInfo(): an Error made in another realm (node:vm, a jsdom window) fails `instanceof Error`
  // and was described by JSON.stringify: get() rejected with the message "{}".
  it('an Error from another realm reaches get() with its message', async () => {
    const clock = new FakeClock();
    const app = new App({ clock });
    apps.push(app);
    app.task('script', () => vm.runInNewContext('throw new TypeError("x is not a function")'));
    await app.worker().start();
    const r = await app.send(signature('script'));
    const err = await r.get().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskFailedError);
    expect((err as TaskFailedError).message).toBe('x is not a function');
    expect((err as TaskFailedError).remoteName).toBe('TypeError');
  });
});

describe('failures a worker decides without starting the task', () => {
  // src/worker.ts #execute: a task not registered on the worker, or past its `expires`, ended FAILURE with no
  // task:failed event, so monitoring through events missed them.
  it('a task not registered here, or expired, is told as task:failed', async () => {
    const clock = new FakeClock(1_000);
    const app = new App({ clock });
    app.task('known', () => 1);
    const failed: Array<{ name: string; code: string }> = [];
    const worker = app.worker();
    worker.on('task:failed', (e: { name: string; error: { code: string } }) => failed.push({ name: e.name, code: e.error.code }));
    await worker.start();
    const unknown = await app.send(signature('nobody-registered-this'));
    const late = await app.send(signature('known', [], { eta: 2_000, expires: 1_500 }));
    await clock.advance(1_000);
    await expect(unknown.get()).rejects.toBeInstanceOf(TaskFailedError);
    await expect(late.get()).rejects.toBeInstanceOf(TaskFailedError);
    expect(failed).toEqual([{ name: 'nobody-registered-this', code: 'ERR_NOT_REGISTERED' }, { name: 'known', code: 'ERR_EXPIRED' }]);
    await app.close();
  });

  // src/errors.ts RetryLater: any delay was taken: NaN retried at once, Infinity parked the task for good.
  it('RetryLater refuses a delay that is not a finite number >= 0', () => {
    for (const ms of [Number.NaN, Number.POSITIVE_INFINITY, -1]) expect(() => new RetryLater(ms)).toThrow(ValidationError);
    expect(new RetryLater(0).delayMs).toBe(0);
    expect(new RetryLater().delayMs).toBeUndefined();
  });
});

