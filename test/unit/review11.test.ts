/**
 * Regression tests from an eleventh review (the in-memory broker's dispatcher): each failed before its fix.
 * No clock runs: the dispatcher hands tasks out in a microtask, so one macrotask turn (setImmediate) is enough for
 * every delivery it will make to have been made.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { App, FakeClock, MemoryTransport, signature } from '../../src/index.js';
import { packArgs } from '../../src/codec.js';
import type { Delivery, TaskMessage } from '../../src/transport.js';
import { Dispatcher } from '../../transports/memory/dispatcher.js';

const apps: App[] = [];
afterEach(async () => { await Promise.all(apps.splice(0).map((a) => a.close())); });

/** One macrotask turn: every microtask the dispatcher queued (its dispatch pass) has run. */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function message(queue: string, name: string, id: string, priority = 0): TaskMessage {
  return { id, name, args: packArgs([]), queue, priority, eta: 0, retries: 0, attempt: 0, createdAt: 0 };
}

describe('review 11: memory dispatcher', () => {
  // transports/memory/dispatcher.ts #dispatchQueue: a pass looked past at most MAX_SKIP (256) tasks held for a full
  // consumer, then stopped: two apps sharing one MemoryTransport, each with its own tasks (ignoreUnknown), and the
  // second app's task waited behind the first app's backlog until it shrank below 256 tasks.
  it('a busy consumer\'s backlog does not starve another consumer of the same queue (two apps, one transport)', async () => {
    const transport = new MemoryTransport();
    const clock = new FakeClock();
    const a = new App({ clock, transport });
    const b = new App({ clock, transport });
    apps.push(a, b);
    let open!: () => void;
    const gate = new Promise<void>((ok) => { open = ok; });
    let startedA = 0;
    a.task('a', async () => { startedA++; await gate; });
    let ranB = 0;
    b.task('b', () => { ranB++; });
    await a.worker({ concurrency: 1, ignoreUnknown: true }).start();
    await b.worker({ concurrency: 1, ignoreUnknown: true }).start();
    for (let i = 0; i < 300; i++) await a.send(signature('a'));
    try {
      await turn();
      expect(startedA).toBe(1);
      // Before the fix this get() never settled ('b' waited until 'a' had fewer than 256 tasks left): the test timed out.
      await (await b.send(signature('b'))).get();
      expect(ranB).toBe(1);
    } finally {
      open();
    }
  });

  it('dispatcher: a task for a consumer with room is delivered past any number held for a full one', async () => {
    const d = new Dispatcher(() => false);
    const x: Delivery[] = [];
    const y: Delivery[] = [];
    d.consume({ queues: ['q'], prefetch: 1, names: ['a'] }, { deliver: (del) => x.push(del), revoked: () => undefined });
    d.consume({ queues: ['q'], prefetch: 1, names: ['b'] }, { deliver: (del) => y.push(del), revoked: () => undefined });
    for (let i = 0; i < 1000; i++) d.push(message('q', 'a', `a${i}`));
    d.push(message('q', 'b', 'b0'));
    await turn();
    expect(x.map((del) => del.message.id)).toEqual(['a0']);
    expect(y.map((del) => del.message.id)).toEqual(['b0']);
    // x acks one at a time: its tasks keep FIFO order.
    const order = ['a0'];
    for (let i = 1; i < 1000; i++) {
      d.take((x.at(-1) as Delivery).tag);
      await turn();
      order.push((x.at(-1) as Delivery).message.id);
    }
    expect(order).toEqual(Array.from({ length: 1000 }, (_, i) => `a${i}`));
  });

  it('dispatcher: tasks held for a full consumer keep priority order and FIFO, redeliveries first', async () => {
    const d = new Dispatcher(() => false);
    const x: Delivery[] = [];
    const z: Delivery[] = [];
    const y: Delivery[] = [];
    d.consume({ queues: ['q'], prefetch: 1, names: ['a'] }, { deliver: (del) => x.push(del), revoked: () => undefined });
    const zId = d.consume({ queues: ['q'], prefetch: 2, names: ['a'] }, { deliver: (del) => z.push(del), revoked: () => undefined });
    d.consume({ queues: ['q'], prefetch: 1, names: ['b'] }, { deliver: (del) => y.push(del), revoked: () => undefined });
    for (let i = 0; i < 6; i++) d.push(message('q', 'a', `a${i}`));
    d.push(message('q', 'b', 'b0'));
    await turn();
    expect([...x, ...z].map((del) => del.message.id).sort()).toEqual(['a0', 'a1', 'a2']);
    expect(y.map((del) => del.message.id)).toEqual(['b0']);
    d.push(message('q', 'a', 'urgent', 5));
    d.cancel(zId); // its two deliveries go back, ahead of a3..a5
    await turn();
    const order: Array<[string, boolean]> = [];
    for (let i = 0; i < 6; i++) {
      d.take((x.at(-1) as Delivery).tag);
      await turn();
      const got = x.at(-1) as Delivery;
      order.push([got.message.id, got.redelivered]);
    }
    const zIds = z.map((del) => del.message.id);
    expect(order).toEqual([['urgent', false], [zIds[0], true], [zIds[1], true], ['a3', false], ['a4', false], ['a5', false]]);
    expect(d.stats()).toEqual([{ name: 'q', ready: 0, unacked: 2, consumers: 2 }]);
  });

  it('dispatcher: held tasks are counted in stats(), listed, dropped by retain, and a revoked one is not delivered', async () => {
    const revoked = new Set<string>();
    const d = new Dispatcher((m) => revoked.has(m.id));
    const x: Delivery[] = [];
    d.consume({ queues: ['q'], prefetch: 1, names: ['a'] }, { deliver: (del) => x.push(del), revoked: () => undefined });
    d.consume({ queues: ['q'], prefetch: 1, names: ['b'] }, { deliver: () => undefined, revoked: () => undefined });
    for (let i = 0; i < 4; i++) d.push(message('q', 'a', `a${i}`));
    await turn();
    expect(d.stats()).toEqual([{ name: 'q', ready: 3, unacked: 1, consumers: 2 }]);
    expect([...d.tasks()].map((m) => m.id).sort()).toEqual(['a0', 'a1', 'a2', 'a3']);
    d.retain((m) => m.id !== 'a2');
    revoked.add('a1');
    d.take((x.at(-1) as Delivery).tag);
    await turn();
    expect(x.map((del) => del.message.id)).toEqual(['a0', 'a3']);
    expect(d.stats()).toEqual([{ name: 'q', ready: 0, unacked: 1, consumers: 2 }]);
  });
});
