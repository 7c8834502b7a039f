import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/clock.js';
import { Heap } from '../../src/heap.js';
import { TimerQueue } from '../../src/timer-queue.js';
import { seededRng } from '../../src/rng.js';

describe('heap', () => {
  it('pops in key order, ties in insertion order', () => {
    const heap = new Heap<string>();
    const rng = seededRng(1);
    const entries = Array.from({ length: 500 }, (_, i) => ({ key: Math.floor(rng() * 50), label: `e${i}` }));
    for (const e of entries) heap.push(e.key, e.label);
    const sorted = [...entries].sort((a, b) => a.key - b.key).map((e) => e.label);
    const out: string[] = [];
    while (heap.size > 0) out.push(heap.pop() as string);
    expect(out).toEqual(sorted);
  });
});

describe('TimerQueue', () => {
  it('arms one timer for many deadlines and fires them in due order', async () => {
    const clock = new FakeClock(1000);
    const fired: number[] = [];
    const q = new TimerQueue<number>(clock, (n) => fired.push(n));
    for (let i = 0; i < 1000; i++) q.add(1000 + ((i * 7919) % 997), i);
    expect(clock.pending).toBe(1);
    await clock.advance(500);
    expect(fired.length).toBeGreaterThan(0);
    expect(clock.pending).toBe(1);
    await clock.runAll();
    expect(fired).toHaveLength(1000);
    const dues = fired.map((i) => (i * 7919) % 997);
    expect(dues).toEqual([...dues].sort((a, b) => a - b));
    expect(clock.pending).toBe(0);
  });
});

describe('FakeClock', () => {
  it('fires due timers in order, ties in arming order, and only when advanced', async () => {
    const clock = new FakeClock();
    const log: string[] = [];
    clock.setTimer(() => log.push('b'), 20);
    clock.setTimer(() => log.push('a'), 10);
    clock.setTimer(() => log.push('a2'), 10);
    const cancelled = clock.setTimer(() => log.push('never'), 5);
    clock.clearTimer(cancelled);
    await clock.advance(9);
    expect(log).toEqual([]);
    await clock.advance(11);
    expect(log).toEqual(['a', 'a2', 'b']);
    expect(clock.now()).toBe(20);
  });

  it('awaits the work a timer triggers, including timers armed by that work', async () => {
    const clock = new FakeClock();
    const log: number[] = [];
    clock.setTimer(() => {
      clock.track((async () => { await Promise.resolve(); log.push(clock.now()); clock.setTimer(() => log.push(clock.now()), 5); })());
    }, 10);
    await clock.advance(15);
    expect(log).toEqual([10, 15]);
  });

  it('runAll stops with an error when timers re-arm forever', async () => {
    const clock = new FakeClock();
    const tick = (): void => { clock.setTimer(tick, 1); };
    tick();
    await expect(clock.runAll(100)).rejects.toThrow(/re-arming/);
  });
});
