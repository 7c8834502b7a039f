/**
 * The transport conformance suite: the hard promises every transport keeps.
 * Each transport calls `describeTransport` from a one-line test file.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pack, packArgs, unpack, unpackArgs } from '../../src/codec.js';
import type { Batch, Consumer, Delivery, Outcome, StateRecord, TaskMessage, Transport, WatchEvent } from '../../src/transport.js';
import { systemClock } from '../../src/clock.js';

export interface TransportFixture {
  /** A new transport connected to the same broker as every other one from this fixture. */
  transport(): Promise<Transport>;
  cleanup(): Promise<void>;
}

export function describeTransport(name: string, factory: () => Promise<TransportFixture>): void {
  describe(`transport conformance: ${name}`, () => {
    let fixture: TransportFixture;
    const opened: Transport[] = [];
    const open = async (): Promise<Transport> => {
      const t = await fixture.transport();
      await t.connect({ clock: systemClock, resultsExpireIn: 60_000 });
      opened.push(t);
      return t;
    };
    beforeAll(async () => { fixture = await factory(); });
    afterAll(async () => {
      for (const t of opened) await t.close().catch(() => undefined);
      await fixture.cleanup();
    });

    it('delivers FIFO within one priority', async () => {
      const t = await open();
      const queue = uniqueQueue();
      const sent = Array.from({ length: 25 }, (_, i) => message(queue, { args: [i] }));
      for (const m of sent) await t.publish(batch(m));
      const got = await take(t, queue, 25);
      expect(got.map((d) => d.message.id)).toEqual(sent.map((m) => m.id));
      expect(got.map((d) => unpackArgs(d.message.args)[0])).toEqual(sent.map((_, i) => i));
    });

    it('delivers higher priority first, FIFO among equals', async () => {
      const t = await open();
      const queue = uniqueQueue();
      const a = message(queue, { priority: 0 });
      const b = message(queue, { priority: 5 });
      const c = message(queue, { priority: 0 });
      const d = message(queue, { priority: 9 });
      await t.publish({ tasks: [a, b, c, d], chords: [] });
      const got = await take(t, queue, 4);
      expect(got.map((x) => x.message.id)).toEqual([d.id, b.id, a.id, c.id]);
    });

    it('holds delayed tasks until their ETA and delivers them in ETA order', async () => {
      const t = await open();
      const queue = uniqueQueue();
      const now = Date.now();
      const late = message(queue, { eta: now + 90 });
      const early = message(queue, { eta: now + 30 });
      const middle = message(queue, { eta: now + 60 });
      await t.publish({ tasks: [late, early, middle], chords: [] });
      const got = await take(t, queue, 3, (d) => { expect(Date.now()).toBeGreaterThanOrEqual(d.message.eta - 1); });
      expect(got.map((x) => x.message.id)).toEqual([early.id, middle.id, late.id]);
    });

    it('publishing a known id again is a no-op (idempotent send)', async () => {
      const t = await open();
      const queue = uniqueQueue();
      const m = message(queue);
      await t.publish(batch(m));
      await t.publish(batch(m));
      const marker = message(queue);
      await t.publish(batch(marker));
      const got = await take(t, queue, 2);
      expect(got.map((d) => d.message.id)).toEqual([m.id, marker.id]);
    });

    it('acks are idempotent and the outcome is stored and announced', async () => {
      const t = await open();
      const queue = uniqueQueue();
      const m = message(queue);
      const events: WatchEvent[] = [];
      const unwatch = t.watch(m.id, (e) => events.push(e));
      await t.publish(batch(m));
      const [d] = await take(t, queue, 1);
      const outcome = success(m, pack({ ok: true, bytes: new Uint8Array([0, 255, 7]) }));
      await t.settle((d as Delivery).tag, outcome);
      await t.settle((d as Delivery).tag, { ...outcome, records: [{ ...(outcome.records[0] as StateRecord), result: pack('second') }] });
      await t.settle(987654321, outcome);
      const state = await t.getState(m.id);
      expect(state?.state).toBe('SUCCESS');
      const value = unpack(state?.result as string) as { ok: boolean; bytes: Uint8Array };
      expect(value.ok).toBe(true);
      expect(value.bytes).toBeInstanceOf(Uint8Array);
      expect([...value.bytes]).toEqual([0, 255, 7]);
      await until(() => events.some((e) => e.type === 'state' && e.record.state === 'SUCCESS'));
      unwatch();
    });

    it('peekState is null (ask getState) or the record getState gives', async () => {
      const t = await open();
      const queue = uniqueQueue();
      const m = message(queue);
      const unknown = t.peekState(m.id);
      if (unknown !== null) expect(unknown).toBeUndefined();
      await t.publish(batch(m));
      const pending = t.peekState(m.id);
      if (pending !== null) expect(pending).toEqual(await t.getState(m.id));
      const [d] = await take(t, queue, 1);
      await t.settle((d as Delivery).tag, success(m, pack(7)));
      const done = t.peekState(m.id);
      if (done !== null) {
        expect(done?.state).toBe('SUCCESS');
        expect(done).toEqual(await t.getState(m.id));
      }
    });

    it('redelivers unacked deliveries when their consumer goes away', async () => {
      const t1 = await open();
      const t2 = await open();
      const queue = uniqueQueue();
      const m = message(queue);
      await t1.publish(batch(m));
      const first = await take(t1, queue, 1, undefined, false);
      expect(first.deliveries[0]?.redelivered).toBe(false);
      const second = collect(t2, queue, 10);
      await second.ready;
      await first.consumer.cancel();
      await until(() => second.deliveries.length === 1);
      expect(second.deliveries[0]?.message.id).toBe(m.id);
      expect(second.deliveries[0]?.redelivered).toBe(true);
      await second.stop();
    });

    it('tasks no consumer takes by name do not hold up the ones behind them, and go out in order once one does', async () => {
      const t1 = await open();
      const t2 = await open();
      const queue = uniqueQueue();
      // More than one dispatch pass looks past (256): the known task must still get through at once.
      const others = Array.from({ length: 300 }, (_, i) => message(queue, { name: 'other', args: [i] }));
      const mine = message(queue, { name: 'mine' });
      await t1.publish({ tasks: [...others, mine], chords: [] });
      const picky = collect(t1, queue, 5, undefined, ['mine']);
      await picky.ready;
      await until(() => picky.deliveries.length === 1);
      expect(picky.deliveries[0]?.message.id).toBe(mine.id);
      const rest = collect(t2, queue, 400, undefined, ['other']);
      await rest.ready;
      await until(() => rest.deliveries.length === others.length);
      expect(rest.deliveries.map((d) => d.message.id)).toEqual(others.map((m) => m.id));
      expect(picky.deliveries.length).toBe(1);
      await picky.stop();
      await rest.stop();
    });

    it('tasks handed back by every consumer that takes them do not hold up the ones behind them', async () => {
      const t1 = await open();
      const t2 = await open();
      const queue = uniqueQueue();
      const first = collect(t1, queue, 400);
      await first.ready;
      const back = Array.from({ length: 300 }, (_, i) => message(queue, { args: [i] }));
      await t1.publish({ tasks: back, chords: [] });
      await until(() => first.deliveries.length === back.length);
      for (const d of [...first.deliveries].reverse()) await t1.release(d.tag, 0);
      const next = message(queue);
      await t1.publish(batch(next));
      await until(() => first.deliveries.length === back.length + 1);
      expect(first.deliveries.at(-1)?.message.id).toBe(next.id);
      const other = collect(t2, queue, 400);
      await other.ready;
      await until(() => other.deliveries.length === back.length);
      expect(other.deliveries.map((d) => d.message.id)).toEqual(back.map((m) => m.id));
      await first.stop();
      await other.stop();
    });

    it('a released delivery goes to another consumer', async () => {
      const t1 = await open();
      const t2 = await open();
      const queue = uniqueQueue();
      const a = collect(t1, queue, 1);
      await a.ready;
      await t1.publish(batch(message(queue)));
      await until(() => a.deliveries.length === 1);
      const b = collect(t2, queue, 1);
      await b.ready;
      await t1.release((a.deliveries[0] as Delivery).tag, 0);
      await until(() => b.deliveries.length === 1);
      expect(b.deliveries[0]?.message.id).toBe(a.deliveries[0]?.message.id);
      expect(a.deliveries.length).toBe(1);
      await a.stop();
      await b.stop();
    });

    it('fires a chord callback exactly once, with results in member order, under duplicate completion', async () => {
      const t1 = await open();
      const t2 = await open();
      const queue = uniqueQueue();
      const cbQueue = uniqueQueue();
      const chordId = randomUUID();
      const callback = message(cbQueue, { args: ['cb'] });
      const tail = [callback.id];
      const m0 = message(queue, { chord: { id: chordId, index: 0, tail } });
      const m0dup = message(queue, { chord: { id: chordId, index: 0, tail } });
      const m1 = message(queue, { chord: { id: chordId, index: 1, tail } });
      await t1.publish({ tasks: [m0, m0dup, m1], chords: [{ id: chordId, count: 2, callback: batch(callback) }] });
      const got = await take(t1, queue, 3);
      const byId = new Map(got.map((d) => [d.message.id, d]));
      const settleMember = (t: Transport, m: TaskMessage, value: string): Promise<void> =>
        t.settle((byId.get(m.id) as Delivery).tag, { ...success(m, pack(value)), chord: { ref: m.chord as NonNullable<TaskMessage['chord']>, result: pack(value) } });
      await settleMember(t1, m0, 'r0');
      await settleMember(t1, m0dup, 'r0-again');
      const callbacks = collect(t2, cbQueue, 10);
      await callbacks.ready;
      await Promise.all([settleMember(t1, m1, 'r1'), t2.publish({ tasks: [], chords: [{ id: chordId, count: 2, callback: batch(callback) }] })]);
      await until(() => callbacks.deliveries.length >= 1);
      const marker = message(cbQueue);
      await t1.publish(batch(marker));
      await until(() => callbacks.deliveries.length >= 2);
      expect(callbacks.deliveries.map((d) => d.message.id)).toEqual([callback.id, marker.id]);
      expect(unpackArgs((callbacks.deliveries[0] as Delivery).message.args)).toEqual(['cb', 'r0', 'r1']);
      await callbacks.stop();
    });

    it('a revoked pending task is never delivered and reads REVOKED', async () => {
      const t = await open();
      const queue = uniqueQueue();
      const revoked = message(queue);
      const kept = message(queue);
      await t.publish({ tasks: [revoked, kept], chords: [] });
      await t.revoke(revoked.id);
      const got = await take(t, queue, 1);
      expect(got[0]?.message.id).toBe(kept.id);
      expect((await t.getState(revoked.id))?.state).toBe('REVOKED');
    });

    it('announces progress values and non-final states to watchers', async () => {
      const t1 = await open();
      const t2 = await open();
      const queue = uniqueQueue();
      const m = message(queue);
      const events: WatchEvent[] = [];
      const unwatch = t2.watch(m.id, (e) => events.push(e));
      await t2.getState(m.id);
      await t1.publish(batch(m));
      const [d] = await take(t1, queue, 1);
      await t1.setState({ id: m.id, name: m.name, state: 'STARTED', attempts: 1, createdAt: 1, updatedAt: 2 });
      t1.progress((d as Delivery).tag, m.id, pack(0.5));
      await until(() => events.some((e) => e.type === 'progress'));
      const progress = events.find((e) => e.type === 'progress');
      expect(progress?.type === 'progress' ? unpack(progress.value) : undefined).toBe(0.5);
      expect(events.some((e) => e.type === 'state' && e.record.state === 'STARTED')).toBe(true);
      unwatch();
    });
  });
}

function uniqueQueue(): string {
  return `q-${randomUUID().slice(0, 8)}`;
}

function message(queue: string, fields: Partial<Omit<TaskMessage, 'args'>> & { args?: unknown[] } = {}): TaskMessage {
  const { args, ...rest } = fields;
  return { id: randomUUID(), name: 'conformance', queue, priority: 0, eta: 0, retries: 0, attempt: 0, createdAt: Date.now(), ...rest, args: packArgs(args ?? []) };
}

function batch(m: TaskMessage): Batch {
  return { tasks: [m], chords: [] };
}

function success(m: TaskMessage, result: ReturnType<typeof pack>): Outcome {
  const now = Date.now();
  return { records: [{ id: m.id, name: m.name, state: 'SUCCESS', result, attempts: 1, createdAt: m.createdAt, updatedAt: now, expiresAt: now + 60_000 }], publish: null, retry: null, chord: null };
}

interface Collector {
  readonly deliveries: Delivery[];
  readonly ready: Promise<Consumer>;
  readonly consumer: Consumer;
  stop(): Promise<void>;
}

function collect(t: Transport, queue: string, prefetch: number, onDelivery?: (d: Delivery) => void, names: readonly string[] | null = null): Collector {
  const deliveries: Delivery[] = [];
  let consumer: Consumer | undefined;
  const ready = t.consume({ queues: [queue], prefetch, names }, {
    deliver: (d) => { onDelivery?.(d); deliveries.push(d); },
    revoked: () => undefined,
  }).then((c) => (consumer = c));
  return {
    deliveries, ready,
    get consumer() { return consumer as Consumer; },
    stop: async () => { await (await ready).cancel(); },
  };
}

/** Consumes `n` deliveries; the consumer is cancelled afterwards unless `keep` is false (then it is returned). */
async function take(t: Transport, queue: string, n: number, onDelivery?: (d: Delivery) => void): Promise<Delivery[]>;
async function take(t: Transport, queue: string, n: number, onDelivery: ((d: Delivery) => void) | undefined, keep: false): Promise<{ deliveries: Delivery[]; consumer: Consumer }>;
async function take(t: Transport, queue: string, n: number, onDelivery?: (d: Delivery) => void, keep = true): Promise<Delivery[] | { deliveries: Delivery[]; consumer: Consumer }> {
  const c = collect(t, queue, Math.max(n, 1), onDelivery);
  const consumer = await c.ready;
  await until(() => c.deliveries.length >= n);
  if (!keep) return { deliveries: c.deliveries, consumer };
  return c.deliveries;
}

/** Waits for `check` to hold, re-checking on each turn of the event loop (bounded: fails after 5 s). */
async function until(check: () => boolean, ms = 5_000): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > ms) throw new Error(`condition not met within ${ms} ms: ${check.toString()}`);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}
