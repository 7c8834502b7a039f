import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/clock.js';
import { ConnectionError } from '../../src/errors.js';
import { Requests } from '../../transports/tcp/requests.js';

const getState = (sid: string) => (id: number) => ({ t: 'getState' as const, id, sid });
const ids = (r: Requests): number[] => [...r.sendable()].map((x) => x.id);

describe('client request window and send timeout', () => {
  it('sends at most `window` requests before replies, in order', async () => {
    const r = new Requests(new FakeClock(), 1_000, 2);
    const results = ['a', 'b', 'c', 'd'].map((s) => r.add<string>(getState(s)));
    expect(ids(r)).toEqual([]); // not connected yet
    r.connected();
    expect(ids(r)).toEqual([1, 2]);
    expect(ids(r)).toEqual([]);
    r.settle(1, null, 'A');
    expect(ids(r)).toEqual([3]);
    expect(await results[0]).toBe('A');
    expect(r.inFlight).toBe(2);
    expect(r.waiting).toBe(1);
  });

  it('re-sends unanswered requests first, in order, after a reconnect', () => {
    const r = new Requests(new FakeClock(), 1_000, 10);
    for (const s of ['a', 'b', 'c']) void r.add(getState(s));
    r.connected();
    expect(ids(r)).toEqual([1, 2, 3]);
    r.settle(2, null);
    void r.add(getState('d'));
    r.disconnected();
    r.connected();
    expect(ids(r)).toEqual([1, 3, 4]);
  });

  it('rejects with ConnectionError a request that waited sendTimeout without a connection', async () => {
    const clock = new FakeClock();
    const r = new Requests(clock, 500, 10);
    const p = r.add(getState('a'));
    const caught = p.catch((e: unknown) => e);
    await clock.advance(499);
    r.connected();
    r.disconnected(); // connected in between: the deadline still counts from the request
    await clock.advance(1);
    expect(await caught).toBeInstanceOf(ConnectionError);
  });

  it('resolves cancel-like requests instead of re-sending them when the connection drops', async () => {
    const r = new Requests(new FakeClock(), 1_000, 10);
    const cancel = r.add(getState('x'), true);
    r.connected();
    expect(ids(r)).toEqual([1]);
    r.disconnected();
    await expect(cancel).resolves.toBeUndefined();
    r.connected();
    expect(ids(r)).toEqual([]);
  });
});

describe('cumulative ok', () => {
  it('an ok for request n answers every sent request up to n, and no later one', async () => {
    const r = new Requests(new FakeClock(), 1_000, 10);
    const done: number[] = [];
    const all = [1, 2, 3, 4].map((n) => r.add(getState(String(n))).then(() => { done.push(n); }));
    r.connected();
    expect(ids(r)).toEqual([1, 2, 3, 4]);
    r.settleThrough(3);
    await Promise.all(all.slice(0, 3));
    expect(done).toEqual([1, 2, 3]);
    expect(r.inFlight).toBe(1);
    r.settleThrough(0);
    expect(r.inFlight).toBe(1);
    r.settle(4, null);
    await all[3];
    expect(done).toEqual([1, 2, 3, 4]);
  });
});

describe('request ids', () => {
  it('wrap from 2^32-1 to 1 (never 0, u32 on the wire), and a cumulative ok across the wrap answers in send order', async () => {
    const r = new Requests(new FakeClock(), 1_000, 10, 0xffff_fffe);
    const done: string[] = [];
    const all = ['a', 'b', 'c', 'd'].map((s) => r.add(getState(s)).then(() => { done.push(s); }));
    r.connected();
    expect(ids(r)).toEqual([0xffff_fffe, 0xffff_ffff, 1, 2]);
    r.settleThrough(1);
    await Promise.all(all.slice(0, 3));
    expect(done).toEqual(['a', 'b', 'c']);
    expect(r.inFlight).toBe(1);
    r.settleThrough(2);
    await all[3];
    expect(r.inFlight).toBe(0);
  });

  it('re-sends in send order across the wrap after a reconnect', () => {
    const r = new Requests(new FakeClock(), 1_000, 10, 0xffff_ffff);
    for (const s of ['a', 'b']) void r.add(getState(s));
    r.connected();
    expect(ids(r)).toEqual([0xffff_ffff, 1]);
    r.disconnected();
    r.connected();
    expect(ids(r)).toEqual([0xffff_ffff, 1]);
  });
});

describe('dropping a taken request', () => {
  it('resolves it and frees its window slot', async () => {
    const r = new Requests(new FakeClock(), 1_000, 1);
    const first = r.add(getState('a'));
    void r.add(getState('b'));
    r.connected();
    const [taken] = r.sendable();
    expect(taken?.id).toBe(1);
    r.drop(taken as NonNullable<typeof taken>);
    await expect(first).resolves.toBeUndefined();
    expect(ids(r)).toEqual([2]);
  });
});
