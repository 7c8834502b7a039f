import { afterEach, describe, expect, it } from 'vitest';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { LinkedSet } from '../../src/linked-set.js';
import type { Run } from '../../src/task-run.js';
import { App, ClosedError, currentTask, FakeClock, MemoryTransport, NotRegisteredError, PermanentError, signature, TaskFailedError } from '../../src/index.js';

const apps: App[] = [];
afterEach(async () => { await Promise.all(apps.splice(0).map((a) => a.close())); });

function newApp(options: ConstructorParameters<typeof App>[0] = {}): App {
  const app = new App(options);
  apps.push(app);
  return app;
}

/** A task whose calls wait until released, recording the order they started in. */
function gate(): { fn: (label: string) => Promise<string>; started: string[]; release(label: string): void; releaseAll(): void; waitFor(n: number): Promise<void> } {
  const started: string[] = [];
  const waiting = new Map<string, () => void>();
  const watchers: Array<() => void> = [];
  return {
    started,
    fn: (label) => new Promise<string>((resolve) => {
      started.push(label);
      waiting.set(label, () => resolve(label));
      for (const w of watchers.splice(0)) w();
    }),
    release: (label) => { waiting.get(label)?.(); waiting.delete(label); },
    releaseAll: () => { for (const r of waiting.values()) r(); waiting.clear(); },
    waitFor: async function waitFor(n) { while (started.length < n) await new Promise<void>((r) => watchers.push(r)); },
  };
}

describe('worker', () => {
  it('stores STARTED for a task still running once its call returned, not for one that settled in the same turn', async () => {
    const app = newApp();
    const sync = app.task('sync', () => 1);
    const slow = app.task('slow', async () => { await Promise.resolve(); return 2; });
    await app.worker().start();
    const seen: Record<string, string[]> = { a: [], b: [] };
    for (const id of ['a', 'b']) app.transport.watch(id, (e) => { if (e.type === 'state') seen[id]?.push(e.record.state); });
    const a = await app.send(sync.with({ id: 'a' }));
    const b = await app.send(slow.with({ id: 'b' }));
    expect([await a.get(), await b.get()]).toEqual([1, 2]);
    expect(seen).toEqual({ a: ['PENDING', 'SUCCESS'], b: ['PENDING', 'STARTED', 'SUCCESS'] });
  });

  it('runs at most `concurrency` tasks at once', async () => {
    const app = newApp();
    const g = gate();
    const t = app.task('g', g.fn);
    await app.worker({ concurrency: 2 }).start();
    const rs = await Promise.all(['a', 'b', 'c', 'd'].map((l) => app.send(t.s(l))));
    await g.waitFor(2);
    expect(g.started).toEqual(['a', 'b']);
    g.release('a');
    await g.waitFor(3);
    expect(g.started).toEqual(['a', 'b', 'c']);
    g.releaseAll();
    await g.waitFor(4);
    g.releaseAll();
    expect(await Promise.all(rs.map((r) => r.get()))).toEqual(['a', 'b', 'c', 'd']);
  });

  it('consumes several queues, higher priority first, FIFO within a priority', async () => {
    const app = newApp();
    const order: string[] = [];
    const t = app.task('rec', (label: string) => { order.push(label); });
    const sends = [
      app.send(t.with({ queue: 'a' }, 'a0')), app.send(t.with({ queue: 'a', priority: 5 }, 'a5')),
      app.send(t.with({ queue: 'a' }, 'a0-2')), app.send(t.with({ queue: 'b', priority: 9 }, 'b9')),
    ];
    const rs = await Promise.all(sends);
    const other = app.worker({ queues: ['c'] });
    await other.start();
    await app.worker({ queues: ['a', 'b'], concurrency: 1 }).start();
    await Promise.all(rs.map((r) => r.get()));
    expect(order.filter((l) => l.startsWith('a'))).toEqual(['a5', 'a0', 'a0-2']);
    expect(order).toContain('b9');
  });

  it('emits task:started, task:succeeded and task:failed', async () => {
    const app = newApp();
    app.task('ok', () => 1);
    app.task('bad', () => { throw new Error('bad'); });
    const events: string[] = [];
    const w = app.worker({ concurrency: 1 });
    for (const e of ['task:started', 'task:succeeded', 'task:failed']) w.on(e, (x: { name: string }) => events.push(`${e}:${x.name}`));
    await w.start();
    await (await app.send(signature('ok'))).get();
    await (await app.send(signature('bad'))).get().catch(() => undefined);
    expect(events).toEqual(['task:started:ok', 'task:succeeded:ok', 'task:started:bad', 'task:failed:bad']);
  });

  it('an unknown task fails with NotRegisteredError unless ignoreUnknown hands it back', async () => {
    const transport = new MemoryTransport();
    const app = newApp({ transport });
    app.task('known', () => 1);
    await app.worker().start();
    const r = await app.send(signature('mystery'));
    const err = await r.get().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskFailedError);
    expect((err as TaskFailedError).remoteCode).toBe(new NotRegisteredError('x').code);
    expect((err as TaskFailedError).message).toMatch(/"mystery" is not registered/);

    const picky = newApp({ transport, defaultQueue: 'other' });
    picky.task('known', () => 1);
    await picky.worker({ ignoreUnknown: true }).start();
    const r2 = await picky.send(signature('late'));
    expect((await r2.state()).state).toBe('PENDING');
    const helper = newApp({ transport, defaultQueue: 'other' });
    helper.task('late', () => 'handled elsewhere');
    await helper.worker({ ignoreUnknown: true }).start();
    expect(await r2.get()).toBe('handled elsewhere');
  });

  it('graceful stop takes nothing new and finishes what runs', async () => {
    const app = newApp();
    const g = gate();
    const t = app.task('g', g.fn);
    const w = app.worker({ concurrency: 1 });
    await w.start();
    const first = await app.send(t.s('first'));
    const second = await app.send(t.s('second'));
    await g.waitFor(1);
    const stopped = w.stop();
    g.release('first');
    await stopped;
    expect(await first.get()).toBe('first');
    expect((await second.state()).state).toBe('PENDING');
    expect(g.started).toEqual(['first']);
    const next = app.worker();
    await next.start();
    await g.waitFor(2);
    g.releaseAll();
    expect(await second.get()).toBe('second');
    await expect(w.start()).rejects.toBeInstanceOf(ClosedError);
  });

  it('a forced stop aborts running tasks (signal fires) and hands them back, not lost', async () => {
    const app = newApp();
    let attempts = 0;
    const reasons: unknown[] = [];
    let started!: () => void;
    const running = new Promise<void>((r) => { started = r; });
    const t = app.task('stuck', () => new Promise((resolve) => {
      attempts++;
      if (attempts > 1) return resolve('second try');
      const { signal } = currentTask();
      signal.addEventListener('abort', () => reasons.push(signal.reason));
      started();
    }));
    const w = app.worker();
    await w.start();
    const r = await app.send(t.s());
    await running;
    await w.stop({ graceful: false });
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toBeInstanceOf(ClosedError);
    expect((await r.state()).state).not.toBe('FAILURE');
    await app.worker().start();
    expect(await r.get()).toBe('second try');
    expect(attempts).toBe(2);
  });

  it('a graceful stop past its timeout aborts and hands back what still runs', async () => {
    const clock = new FakeClock();
    const app = newApp({ clock });
    let attempts = 0;
    const t = app.task('slow', () => new Promise((resolve) => { if (++attempts > 1) resolve('retried elsewhere'); }));
    const w = app.worker();
    await w.start();
    const r = await app.send(t.s());
    await clock.advance(0);
    expect(attempts).toBe(1);
    const stopped = w.stop({ timeout: 1_000 });
    await clock.advance(999);
    expect(w.active).toBe(1);
    await clock.advance(1);
    await stopped;
    expect(w.active).toBe(0);
    await app.worker().start();
    await clock.advance(0);
    expect(await r.get()).toBe('retried elsewhere');
  });
});

describe('rate limit', () => {
  it('starts at most `max` tasks per `per` ms in a worker', async () => {
    const clock = new FakeClock();
    const app = newApp({ clock });
    const starts: number[] = [];
    const t = app.task('limited', () => { starts.push(clock.now()); }, { rateLimit: { max: 2, per: 1_000 } });
    await app.worker({ concurrency: 10 }).start();
    const rs = await Promise.all(Array.from({ length: 5 }, () => app.send(t.s())));
    await clock.advance(0);
    expect(starts).toEqual([0, 0]);
    await clock.advance(2_500);
    await Promise.all(rs.map((r) => r.get()));
    expect(starts).toEqual([0, 0, 1000, 1000, 2000]);
  });
});

describe('diagnostics channels', () => {
  it('publishes sends and task lifecycle on millwright:* channels while subscribed', async () => {
    const clock = new FakeClock(1_000);
    const app = newApp({ clock });
    let calls = 0;
    const flaky = app.task('flaky', (x: number) => { if (++calls === 1) throw new Error('first'); return x * 2; }, { retries: 1, backoff: { type: 'fixed', delay: 10 } });
    const doomed = app.task('doomed', () => { throw new PermanentError('no'); });
    const seen: Array<[string, Record<string, unknown>]> = [];
    const names = ['millwright:app:sent', 'millwright:task:started', 'millwright:task:succeeded', 'millwright:task:failed', 'millwright:task:retry'];
    const listeners = names.map((name) => {
      const fn = (message: unknown): void => { seen.push([name.split(':').slice(1).join(':'), message as Record<string, unknown>]); };
      subscribe(name, fn);
      return () => unsubscribe(name, fn);
    });
    try {
      await app.worker().start();
      const r = await app.send(flaky.s(21));
      const d = await app.send(doomed.s());
      await clock.advance(10);
      expect(await r.get()).toBe(42);
      await expect(d.get()).rejects.toThrow('no');
    } finally {
      for (const off of listeners) off();
    }
    const about = (id: string): string[] => seen.filter(([, m]) => m['id'] === id).map(([e, m]) => `${e}#${String(m['attempt'])}`);
    const sent = seen.filter(([e]) => e === 'app:sent').map(([, m]) => m['ids']);
    expect(sent).toHaveLength(2);
    const [flakyId, doomedId] = sent.map((ids) => (ids as string[])[0] as string) as [string, string];
    expect(about(flakyId)).toEqual(['task:started#1', 'task:retry#1', 'task:started#2', 'task:succeeded#2']);
    expect(about(doomedId)).toEqual(['task:started#1', 'task:failed#1']);
    expect(seen.find(([e, m]) => e === 'task:succeeded' && m['id'] === flakyId)?.[1]['result']).toBe(42);
    expect(seen.find(([e]) => e === 'task:retry')?.[1]['delay']).toBe(10);
  });
});

describe('LinkedSet', () => {
  it('adds, deletes from any place (twice is a no-op) and lists oldest first', () => {
    const runs = ['a', 'b', 'c', 'd'].map((tag) => ({ delivery: { tag } } as unknown as Run & { delivery: { tag: string } }));
    for (const r of runs) { r.prev = null; r.next = null; }
    const list = new LinkedSet<Run>();
    for (const r of runs) list.add(r);
    const tags = (): unknown[] => list.values().map((r) => r.delivery.tag);
    expect(tags()).toEqual(['a', 'b', 'c', 'd']);
    list.delete(runs[1] as Run);
    list.delete(runs[1] as Run);
    list.delete(runs[3] as Run);
    expect(tags()).toEqual(['a', 'c']);
    expect(list.size).toBe(2);
    list.delete(runs[0] as Run);
    list.delete(runs[2] as Run);
    expect(list.size).toBe(0);
    expect(tags()).toEqual([]);
    list.add(runs[2] as Run);
    list.add(runs[3] as Run);
    expect(tags()).toEqual(['c', 'd']);
    list.clear();
    expect([list.size, tags()]).toEqual([0, []]);
    list.delete(runs[2] as Run); // no longer in it: no-op
    expect(list.size).toBe(0);
  });
});
