import { afterEach, describe, expect, it } from 'vitest';
import {
  App, currentTask, FakeClock, PermanentError, RetryLater, seededRng, signature, TaskFailedError, TimeoutError, type TaskContext,
} from '../../src/index.js';

const apps: App[] = [];
afterEach(async () => { await Promise.all(apps.splice(0).map((a) => a.close())); });

function setup(startMs = 0): { app: App; clock: FakeClock } {
  const clock = new FakeClock(startMs);
  const app = new App({ clock, rng: seededRng(1) });
  apps.push(app);
  return { app, clock };
}

/** A task that fails `failures` times, recording when each attempt started. */
function flaky(failures: number, clock: FakeClock, error: () => unknown = () => new Error('flaky')): { fn: () => string; starts: number[] } {
  const starts: number[] = [];
  return { starts, fn: () => { starts.push(clock.now()); if (starts.length <= failures) throw error(); return 'done'; } };
}

describe('retries', () => {
  it('fails 3 times with fibonacci backoff, then succeeds (1 s, 2 s, 3 s)', async () => {
    const { app, clock } = setup();
    const f = flaky(3, clock);
    const t = app.task('flaky', f.fn, { retries: 5 });
    const retries: number[] = [];
    const w = app.worker();
    w.on('task:retry', (e: { delay: number }) => retries.push(e.delay));
    await w.start();
    const r = await app.send(t.s());
    await clock.advance(999);
    expect(f.starts).toEqual([0]);
    expect((await r.state()).state).toBe('RETRY');
    await clock.advance(10_000);
    expect(await r.get()).toBe('done');
    expect(f.starts).toEqual([0, 1000, 3000, 6000]);
    expect(retries).toEqual([1000, 2000, 3000]);
    expect((await r.state()).attempts).toBe(4);
  });

  it('exponential and fixed backoff with maxDelay', async () => {
    const { app, clock } = setup();
    const e = flaky(4, clock);
    const x = flaky(2, clock);
    app.task('exp', e.fn, { retries: 4, backoff: { type: 'exponential', delay: 100, maxDelay: 300 } });
    app.task('fix', x.fn, { retries: 2, backoff: { type: 'fixed', delay: 50 } });
    await app.worker().start();
    const r1 = await app.send(signature('exp'));
    const r2 = await app.send(signature('fix'));
    await clock.advance(100_000);
    expect(await r1.get()).toBe('done');
    expect(await r2.get()).toBe('done');
    expect(e.starts).toEqual([0, 100, 300, 600, 900]);
    expect(x.starts).toEqual([0, 50, 100]);
  });

  it('exhausted retries fail the task; onError gets the message first', async () => {
    const { app, clock } = setup();
    const f = flaky(10, clock, () => new Error('still broken'));
    const t = app.task('broken', f.fn, { retries: 2, backoff: { type: 'fixed', delay: 10 } });
    const errors: unknown[][] = [];
    const handler = app.task('handler', (...args: unknown[]) => { errors.push(args); });
    await app.worker().start();
    const r = await app.send({ ...t.s(), onError: [handler.s('extra')] });
    await clock.advance(100_000);
    await expect(r.get()).rejects.toThrow(TaskFailedError);
    expect(f.starts).toHaveLength(3);
    expect(errors).toEqual([['still broken', 'extra']]);
  });

  it('RetryLater retries whatever retries says, after its own delay', async () => {
    const { app, clock } = setup();
    const f = flaky(2, clock, () => new RetryLater(7_000));
    app.task('later', f.fn);
    await app.worker().start();
    const r = await app.send(signature('later'));
    await clock.advance(100_000);
    expect(await r.get()).toBe('done');
    expect(f.starts).toEqual([0, 7000, 14000]);
  });

  it('PermanentError fails at once without retries', async () => {
    const { app, clock } = setup();
    const f = flaky(10, clock, () => new PermanentError('no such user'));
    app.task('perm', f.fn, { retries: 5 });
    await app.worker().start();
    const r = await app.send(signature('perm'));
    await clock.advance(100_000);
    await expect(r.get()).rejects.toThrow('no such user');
    expect(f.starts).toHaveLength(1);
  });

  it('non-Error throws and rejected promises count as failures', async () => {
    const { app, clock } = setup();
    app.task('str', () => { throw 'plain string'; });
    app.task('obj', async () => Promise.reject({ reason: 42 }));
    await app.worker().start();
    const a = await app.send(signature('str'));
    const b = await app.send(signature('obj'));
    await clock.advance(100_000);
    await expect(a.get()).rejects.toThrow('plain string');
    await expect(b.get()).rejects.toThrow('{"reason":42}');
  });

  it('a per-attempt timeout fires the signal, fails the attempt with ERR_TIMEOUT and retries', async () => {
    const { app, clock } = setup();
    const aborted: unknown[] = [];
    let calls = 0;
    app.task('slow', () => new Promise((resolve) => {
      const { signal } = currentTask();
      if (++calls === 2) resolve('fast enough');
      signal.addEventListener('abort', () => aborted.push(signal.reason));
    }), { timeout: 1_000, retries: 1, backoff: { type: 'fixed', delay: 10 } });
    await app.worker().start();
    const r = await app.send(signature('slow'));
    await clock.advance(1_000);
    expect(aborted).toHaveLength(1);
    expect(aborted[0]).toBeInstanceOf(TimeoutError);
    expect((await r.state()).error?.code).toBe('ERR_TIMEOUT');
    await clock.advance(100_000);
    expect(await r.get()).toBe('fast enough');
  });

  it('currentTask() gives id, name, attempt, retriesLeft, headers, signature and signal', async () => {
    const { app, clock } = setup();
    const seen: TaskContext[] = [];
    app.task('ctx', async (x: number) => {
      await Promise.resolve();
      const ctx = currentTask();
      seen.push(ctx);
      if (ctx.attempt === 1) throw new Error('again');
      return x;
    }, { retries: 2, backoff: { type: 'fixed', delay: 1 } });
    await app.worker().start();
    const sig = signature('ctx', [5], { headers: { trace: 'abc' } });
    const r = await app.send(sig);
    await clock.advance(100_000);
    expect(await r.get()).toBe(5);
    expect(seen.map((c) => [c.id, c.name, c.attempt, c.retriesLeft])).toEqual([[sig.id, 'ctx', 1, 2], [sig.id, 'ctx', 2, 1]]);
    expect(seen[0]?.headers).toEqual({ trace: 'abc' });
    expect(seen[0]?.signature['args']).toEqual([5]);
    expect(seen[0]?.signal).toBeInstanceOf(AbortSignal);
    expect(() => currentTask()).toThrow(/outside a running task/);
  });
});
