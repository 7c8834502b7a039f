/** The sent-request queue of requests.ts (an array in send order, not a map): long runs, holes, compaction, reconnects. */
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/clock.js';
import { Requests } from '../../transports/tcp/requests.js';

const getState = (sid: string) => (id: number) => ({ t: 'getState' as const, id, sid });

describe('sent requests kept in send order', () => {
  it('a long run with always one request unanswered (the head moves far and is compacted) answers each exactly once', async () => {
    const r = new Requests(new FakeClock(), 1_000, 8);
    r.connected();
    const answered: number[] = [];
    const all: Array<Promise<void>> = [];
    for (let i = 0; i < 5_000; i++) {
      all.push(r.add(getState(String(i))).then(() => { answered.push(i); }));
      const sent = r.sendable().map((x) => x.id);
      expect(sent).toEqual([i + 1]);
      // Answer the previous one: one request stays in flight all along.
      if (i > 0) r.settleThrough(i);
      expect(r.inFlight).toBe(1);
    }
    r.settleThrough(5_000);
    await Promise.all(all);
    expect(answered).toEqual(Array.from({ length: 5_000 }, (_, i) => i));
    expect(r.inFlight).toBe(0);
  });

  it('replies out of order leave holes that a later cumulative ok skips; unknown ids change nothing', async () => {
    const r = new Requests(new FakeClock(), 1_000, 10);
    const results = ['a', 'b', 'c', 'd', 'e'].map((s) => r.add<string | undefined>(getState(s)));
    r.connected();
    expect(r.sendable().map((x) => x.id)).toEqual([1, 2, 3, 4, 5]);
    expect(r.settle(3, null, 'C')).toBe(true);
    expect(r.settle(3, null, 'again')).toBe(false);
    expect(r.settle(99, null)).toBe(false);
    r.settleThrough(77);
    expect(r.inFlight).toBe(4);
    r.settleThrough(4);
    expect(r.inFlight).toBe(1);
    expect(await Promise.all(results.slice(0, 4))).toEqual([undefined, undefined, 'C', undefined]);
    r.disconnected();
    r.connected();
    expect(r.sendable().map((x) => x.id)).toEqual([5]);
    r.settle(5, null, 'E');
    expect(await results[4]).toBe('E');
  });

  it('a request refused before it was written (settled by the client) frees its place in the window', () => {
    const r = new Requests(new FakeClock(), 1_000, 2);
    for (const s of ['a', 'b', 'c']) void r.add(getState(s)).catch(() => undefined);
    r.connected();
    const [, second] = r.sendable();
    r.settle((second as { id: number }).id, new Error('too large'));
    expect(r.inFlight).toBe(1);
    expect(r.sendable().map((x) => x.id)).toEqual([3]);
    r.failAll(new Error('closed'));
    expect(r.inFlight).toBe(0);
  });
});
