/**
 * Review 8: the public API as a BullMQ / Celery user meets it. Some checks are compile-time
 * (`npx tsc -p test/tsconfig.json --noEmit` type-checks this file too).
 */
import { describe, expect, it } from 'vitest';
import {
  type Backoff, type Clock, type TimerHandle, App, AsyncResult, chain, chord, FakeClock, group, GroupResult, MemoryTransport, signature, ValidationError,
} from '../../src/index.js';

describe('review 8', () => {
  it('a second close() resolves only once the app is closed, as the first does', async () => {
    const transport = new MemoryTransport();
    const app = new App({ clock: new FakeClock(), transport });
    let release!: () => void;
    const started = new Promise<void>((ok) => {
      app.task('slow', () => { ok(); return new Promise<void>((done) => { release = done; }); });
    });
    await app.worker().start();
    await app.send(signature('slow'));
    await started;
    const order: string[] = [];
    const first = app.close();
    // A second caller (an afterEach, a signal handler) waits for the same close.
    const second = app.close().then(() => { order.push('second close() resolved'); });
    await new Promise<void>((ok) => setImmediate(ok)); // one turn: the old second close() resolved at once
    order.push('task released');
    release();
    await Promise.all([first, second]);
    expect(order).toEqual(['task released', 'second close() resolved']);
    expect(() => transport.stats()).toThrow(/closed/);
  });

  it('app.schedule() refuses unknown or malformed options instead of ignoring them', async () => {
    const app = new App({ clock: new FakeClock() });
    const t = app.task('t', () => 1);
    // `timezone` (a typo of `tz`) was ignored: the schedule silently ran in UTC.
    // @ts-expect-error not an option
    expect(() => app.schedule('a', '0 3 * * *', t.s(), { timezone: 'Europe/Paris' })).toThrow(ValidationError);
    // @ts-expect-error not an object
    expect(() => app.schedule('b', '0 3 * * *', t.s(), null)).toThrow(ValidationError); // was a TypeError
    await app.close();
  });

  it('unschedule() disarms the schedule\'s timer (a real clock\'s timer kept the process alive until the next tick)', async () => {
    const clock = new FakeClock();
    const app = new App({ clock });
    const t = app.task('t', () => 1);
    await app.worker().start();
    const before = clock.pending;
    app.schedule('yearly', '0 0 1 1 *', t.s());
    expect(clock.pending).toBe(before + 1);
    expect(app.unschedule('yearly')).toBe(true);
    expect(clock.pending).toBe(before);
    await app.close();
  });

  it('signature() refuses options it does not know (BullMQ\'s `delay`, `attempts`, `jobId`) instead of ignoring them', () => {
    // @ts-expect-error not a signature option
    expect(() => signature('t', [], { delay: 5_000 })).toThrow(ValidationError);
    // @ts-expect-error not a signature option
    expect(() => signature('t', [], { attempts: 3 })).toThrow(ValidationError);
    const app = new App({ clock: new FakeClock() });
    const t = app.task('t', (a: number) => a);
    // @ts-expect-error not a signature option
    expect(() => t.with({ jobId: 'x' }, 1)).toThrow(ValidationError);
    // Every real option is still taken.
    const s = signature('t', [1], { id: 'i', queue: 'q', eta: 1, priority: 2, retries: 3, backoff: { type: 'fixed', delay: 1 }, timeout: 5, expires: 9, immutable: true, headers: { a: 'b' }, onSuccess: [], onError: [] });
    expect(s.queue).toBe('q');
  });

  it('.s() of a task with optional parameters takes any prefix, the empty one included (compile-time)', async () => {
    const app = new App({ clock: new FakeClock() });
    const opt = app.task('opt', (a: number, b?: number) => a + (b ?? 0));
    const rest = app.task('rest', (a: number, ...more: number[]) => a + more.length);
    opt.s();
    opt.s(1);
    opt.s(1, 2);
    rest.s();
    rest.s(1, 2, 3);
    // @ts-expect-error wrong type
    opt.s('1');
    // @ts-expect-error too many
    opt.s(1, 2, 3);
    await app.close();
  });

  it('send(chain ending in a group) and send(chord whose callback is a group) are typed as the GroupResult they return', async () => {
    const app = new App({ clock: new FakeClock() });
    const add = app.task('add', (a: number, b: number) => a + b);
    await app.worker().start();
    const g: GroupResult = await app.send(chain(add.s(1, 1), group(add.s(1), add.s(2))));
    expect(g).toBeInstanceOf(GroupResult);
    expect(await g.get()).toEqual([3, 4]);
    const h: GroupResult = await app.send(chord([add.s(1, 1)], group(add.s(1), add.s(2))));
    expect(h).toBeInstanceOf(GroupResult);
    // A chain ending in a task is still an AsyncResult, now typed by that task's result.
    const n: AsyncResult<number> = await app.send(chain(add.s(1, 1), add.s(2)));
    expect(n).toBeInstanceOf(AsyncResult);
    expect(await n.get()).toBe(4);
    // @ts-expect-error a chain ending in a group has no state()
    expect(typeof (await app.send(chain(add.s(1, 1), group(add.s(1))))).state).toBe('undefined');
    await app.close();
  });

  it('a schedule whose timer fires late (event loop blocked, laptop asleep) sends one tick, not every missed one', async () => {
    // A clock whose time jumps without firing the timers on the way, as the real one does after a pause.
    let now = 0;
    const timers = new Map<number, () => void>();
    const work: Array<Promise<unknown>> = [];
    let next = 1;
    const clock: Clock = {
      now: () => now,
      setTimer: (fn): TimerHandle => { const id = next++; timers.set(id, fn); return { id }; },
      clearTimer: (h) => { timers.delete(h.id); },
      track: (w) => { work.push(w); },
    };
    const transport = new MemoryTransport();
    const app = new App({ clock, transport });
    const t = app.task('t', () => 1);
    await app.transport.getState('x'); // connected
    app.schedule('every-minute', '* * * * *', t.s());
    now = 10 * 60_000 + 30_000; // ten minutes late
    for (const [id, fn] of [...timers]) { timers.delete(id); fn(); }
    await Promise.all(work);
    // BUG: all ten missed ticks were sent at once (cron, Celery beat and BullMQ skip missed runs).
    expect(transport.stats().find((q) => q.name === 'default')?.ready).toBe(1);
    await app.close();
  });
});

describe('task options checked at registration', () => {
  // src/app.ts TASK_RULES: backoff was only checked to be an object, so { type: 'linear' } was accepted by
  // app.task() and every send of that task then failed.
  it('a malformed backoff is refused by app.task(), not by every send', () => {
    const app = new App({ clock: new FakeClock() });
    for (const backoff of [{ type: 'linear', delay: 1000 }, { type: 'fixed' }, { type: 'fixed', delay: -1 }, { type: 'fixed', delay: 1, jitter: 'yes' }, { type: 'fixed', delay: 1, maxDelay: Number.NaN }]) {
      expect(() => app.task(`t${JSON.stringify(backoff)}`, () => 1, { backoff: backoff as Backoff })).toThrow(ValidationError);
    }
    expect(() => app.task('ok', () => 1, { backoff: { type: 'exponential', delay: 10, maxDelay: 100, jitter: true } })).not.toThrow();
    void app.close();
  });
});

