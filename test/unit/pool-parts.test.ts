// The pool's small pure parts: ring buffer queue, latency histogram, move().
import { describe, expect, it } from 'vitest';
import { LatencyHistogram, bucketOf } from '../../src/pool/latency.js';
import { isMoved, move, toTransferList } from '../../src/pool/move.js';
import { RingQueue } from '../../src/pool/ring-queue.js';

describe('RingQueue', () => {
  it('is FIFO across growth and wrap-around', () => {
    const q = new RingQueue<number>(2);
    const seen: number[] = [];
    let next = 0;
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < round; i++) q.push(next++);
      for (let i = 0; i < round / 2; i++) seen.push(q.shift() as number);
    }
    seen.push(...q.drain());
    expect(seen).toEqual(Array.from({ length: next }, (_, i) => i));
    expect(q.length).toBe(0);
    expect(q.shift()).toBeUndefined();
  });

  it('puts requeued items first with pushFront', () => {
    const q = new RingQueue<string>();
    for (const s of ['c', 'd']) q.push(s);
    q.pushFront('b');
    q.pushFront('a');
    for (let i = 0; i < 20; i++) q.pushFront(`x${i}`); // forces growth while wrapped
    expect(q.drain().slice(-4)).toEqual(['a', 'b', 'c', 'd']);
  });

  it('peeks without removing', () => {
    const q = new RingQueue<number>();
    expect(q.peek()).toBeUndefined();
    q.push(7);
    expect(q.peek()).toBe(7);
    expect(q.length).toBe(1);
  });
});

describe('LatencyHistogram', () => {
  it('reports percentiles within a bucket (~12%) of the truth', () => {
    const h = new LatencyHistogram();
    for (let i = 1; i <= 1000; i++) h.record(i / 100); // 0.01 .. 10 ms
    const s = h.snapshot();
    expect(s.count).toBe(1000);
    expect(s.p50).toBeGreaterThanOrEqual(5);
    expect(s.p50).toBeLessThan(5 * 1.13);
    expect(s.p99).toBeGreaterThanOrEqual(9.9);
    expect(s.max).toBe(10);
    expect(s.mean).toBeCloseTo(5.005, 2);
  });

  it('has monotonic buckets and an empty snapshot of zeros', () => {
    let last = -1;
    for (let us = 0; us < 5_000_000; us = Math.floor(us * 1.01) + 1) {
      const b = bucketOf(us);
      expect(b).toBeGreaterThanOrEqual(last);
      last = b;
    }
    expect(new LatencyHistogram().snapshot()).toMatchObject({ count: 0, p50: 0, max: 0 });
  });
});

describe('move()', () => {
  it('infers the transfer list from buffers and views', () => {
    const ab = new ArrayBuffer(8);
    expect(move(ab).transferList).toEqual([ab]);
    const u8 = new Uint8Array(4);
    expect(move(u8).transferList).toEqual([u8.buffer]);
    expect(move({ a: 1 }).transferList).toEqual([]);
    expect(isMoved(move(1))).toBe(true);
    expect(isMoved({ value: 1, transferList: [] })).toBe(false);
  });

  it('normalises user transfer lists (views stand for their buffer, no duplicates)', () => {
    const u8 = new Uint8Array(4);
    const view = new DataView(u8.buffer);
    expect(toTransferList([u8, view, u8.buffer])).toEqual([u8.buffer]);
  });
});
