/**
 * Review 15: time and task context as a user writing tests with FakeClock meets them.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { App, currentTask, FakeClock, SystemClock, ValidationError } from '../../src/index.js';
import { Heap } from '../../src/heap.js';
import { TimerQueue } from '../../src/timer-queue.js';
import { seededRng } from '../../src/rng.js';

const apps: App[] = [];
afterEach(async () => { await Promise.all(apps.splice(0).map((a) => a.close())); });

describe('review 15: FakeClock', () => {
  it('two advance() calls made together move time by their sum, firing what falls in the second window', async () => {
    const clock = new FakeClock();
    const log: number[] = [];
    clock.setTimer(() => log.push(clock.now()), 15);
    // BUG: both read now() = 0 at call time: time ended at 10 and the timer at 15 never fired.
    await Promise.all([clock.advance(10), clock.advance(10)]);
    expect(clock.now()).toBe(20);
    expect(log).toEqual([15]);
  });

  it('an advance() a timer callback starts is not lost: it runs after the one in progress', async () => {
    const clock = new FakeClock();
    const seen: number[] = [];
    clock.setTimer(() => { void clock.advance(1); }, 2);
    clock.setTimer(() => seen.push(clock.now()), 8);
    await clock.advance(10);
    await clock.advance(0);
    seen.push(clock.now());
    // BUG: the callback's advance(1) read now() = 2 and ended at 3, inside the outer one: it moved time by nothing.
    expect(seen).toEqual([8, 11]);
  });

  it('new FakeClock(start) refuses a start that is not a finite number', () => {
    // BUG: new FakeClock(NaN) (e.g. Date.parse of a bad string) was accepted, and advance() then failed with a TypeError.
    expect(() => new FakeClock(NaN)).toThrow(ValidationError);
    expect(() => new FakeClock(Infinity)).toThrow(ValidationError);
    expect(() => new FakeClock('1000' as unknown as number)).toThrow(ValidationError);
    expect(new FakeClock(Date.UTC(2024, 0, 1)).now()).toBe(Date.UTC(2024, 0, 1));
  });
});

describe('review 15: SystemClock', () => {
  it('a delay above 2^31-1 ms is not cut short (get({ timeout: 30 days }) timed out after 24.8 days)', () => {
    vi.useFakeTimers();
    try {
      const clock = new SystemClock();
      let fired = 0;
      clock.setTimer(() => fired++, 2 ** 31 + 5000);
      vi.advanceTimersByTime(2 ** 31 - 1);
      expect(fired).toBe(0); // BUG: fired here, 5 s early
      vi.advanceTimersByTime(5000);
      expect(fired).toBe(0);
      vi.advanceTimersByTime(1);
      expect(fired).toBe(1);
      const cleared = clock.setTimer(() => fired++, 2 ** 32);
      vi.advanceTimersByTime(2 ** 31);
      clock.clearTimer(cleared); // cleared between two legs
      vi.advanceTimersByTime(2 ** 32);
      expect(fired).toBe(1);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('review 15: TimerQueue and Heap', () => {
  it('a fire callback that throws does not strand the items due after it', async () => {
    const clock = new FakeClock();
    const fired: number[] = [];
    const q = new TimerQueue<number>(clock, (n) => { if (n === 1) throw new Error('boom'); fired.push(n); });
    q.add(1, 1);
    q.add(2, 2);
    q.add(50, 3);
    await expect(clock.advance(5)).rejects.toThrow('boom');
    // BUG: no timer was left armed: item 2 (already due) and item 3 never fired.
    await clock.advance(100);
    expect(fired).toEqual([2, 3]);
    expect(q.size).toBe(0);
  });

  it('re-arms for an earlier item, after filter() and after clear()', async () => {
    const clock = new FakeClock(100);
    const fired: string[] = [];
    const q = new TimerQueue<string>(clock, (s) => fired.push(`${s}@${clock.now()}`));
    q.add(150, 'late');
    q.add(120, 'early');
    q.add(120, 'early2');
    q.filter((s) => s !== 'early');
    await clock.advance(30);
    expect(fired).toEqual(['early2@120']);
    q.clear();
    q.add(140, 'again');
    await clock.runAll();
    expect(fired).toEqual(['early2@120', 'again@140']);
    expect(clock.pending).toBe(0);
  });

  it('Heap matches a sorted model through random pushes, pops and filters (ties in push order)', () => {
    const rng = seededRng(15);
    for (let round = 0; round < 100; round++) {
      const heap = new Heap<number>();
      let model: Array<{ key: number; seq: number }> = [];
      let seq = 0;
      for (let op = 0; op < 200; op++) {
        const r = rng();
        if (r < 0.55) {
          const key = Math.floor(rng() * 8);
          heap.push(key, seq);
          model.push({ key, seq: seq++ });
        } else if (r < 0.95) {
          model.sort((a, b) => a.key - b.key || a.seq - b.seq);
          expect(heap.peekKey()).toBe(model[0]?.key ?? Infinity);
          expect(heap.pop()).toBe(model.shift()?.seq);
        } else {
          const mod = 2 + Math.floor(rng() * 3);
          heap.filter((s) => s % mod !== 0);
          model = model.filter((e) => e.seq % mod !== 0);
        }
        expect(heap.size).toBe(model.length);
      }
      model.sort((a, b) => a.key - b.key || a.seq - b.seq);
      const out: number[] = [];
      while (heap.size > 0) out.push(heap.pop() as number);
      expect(out).toEqual(model.map((e) => e.seq));
    }
  });
});

describe('review 15: task context', () => {
  it('a lazy thenable a task returns sees the task context when it is executed', async () => {
    const app = new App({ clock: new FakeClock() });
    apps.push(app);
    const lazy = app.task('lazy', () => ({
      then(ok: (v: string) => void, ko: (e: unknown) => void) {
        try { ok(currentTask().name); } catch (err) { ko(err); }
      },
    }));
    await app.worker().start();
    // BUG: then() ran after the context was restored: NotInTaskError.
    expect(await (await app.send(lazy.s())).get()).toBe('lazy');
    expect(await (await app.send(lazy.s())).get()).toBe('lazy'); // its second call too (known async by then)
  });

  it('a task awaiting get() of another task keeps its own context; the other sees its own', async () => {
    const app = new App({ clock: new FakeClock() });
    apps.push(app);
    const inner = app.task('inner', async () => { await Promise.resolve(); return currentTask().name; });
    const outer = app.task('outer', async () => {
      const got = await (await app.send(inner.s())).get();
      return `${got}/${currentTask().name}`;
    });
    await app.worker({ concurrency: 2 }).start();
    expect(await (await app.send(outer.s())).get()).toBe('inner/outer');
  });
});
