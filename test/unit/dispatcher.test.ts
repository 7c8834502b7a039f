/**
 * The memory dispatcher when a consumer's deliver throws (a bug in a transport's consumer, or a process that
 * survives the uncaught exception): nothing may be lost or left waiting. Found by a review; each failed before.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { packArgs } from '../../src/codec.js';
import type { TaskMessage } from '../../src/transport.js';
import { Dispatcher } from '../../transports/memory/dispatcher.js';
import { Unacked } from '../../transports/memory/unacked.js';

const cleanup: Array<() => void> = [];
afterEach(() => { for (const c of cleanup.splice(0)) c(); });

describe('Dispatcher pass interrupted by a consumer whose deliver throws', () => {
  /** Runs the dispatcher's microtasks by hand, so a throw from a pass can be caught here (not an uncaught exception). */
  function manualMicrotasks(): { run(): unknown[] } {
    const pending: Array<() => void> = [];
    vi.stubGlobal('queueMicrotask', (fn: () => void) => { pending.push(fn); });
    cleanup.push(() => { vi.unstubAllGlobals(); });
    return {
      run() {
        const thrown: unknown[] = [];
        while (pending.length > 0) { try { (pending.shift() as () => void)(); } catch (err) { thrown.push(err); } }
        return thrown;
      },
    };
  }

  function message(queue: string, name: string, id: string): TaskMessage {
    return { id, name, args: packArgs([]), queue, priority: 0, eta: 0, retries: 0, attempt: 0, createdAt: 0 };
  }

  it('the other queues marked for that pass are still dispatched', () => {
    const micro = manualMicrotasks();
    const d = new Dispatcher(() => false);
    const got: string[] = [];
    d.consume({ queues: ['a'], prefetch: 10, names: null }, { deliver: () => { throw new Error('consumer broke'); }, revoked: () => undefined });
    d.consume({ queues: ['b'], prefetch: 10, names: null }, { deliver: (x) => got.push(x.message.id), revoked: () => undefined });
    d.push(message('a', 't', 'a1'));
    d.push(message('b', 't', 'b1'));
    expect(micro.run()).toHaveLength(1); // the pass threw (as the broken consumer did)
    expect(got).toEqual(['b1']); // main: [] and nothing scheduled: b1 waits until something else touches queue b
  });

  it('tasks the pass had looked past (held for a full consumer) are not lost', () => {
    const micro = manualMicrotasks();
    const d = new Dispatcher(() => false);
    const tags: number[] = [];
    // x takes only 'n1', one at a time; y takes only 'n2' and throws.
    d.consume({ queues: ['q'], prefetch: 1, names: ['n1'] }, { deliver: (x) => tags.push(x.tag), revoked: () => undefined });
    d.consume({ queues: ['q'], prefetch: 1, names: ['n2'] }, { deliver: () => { throw new Error('consumer broke'); }, revoked: () => undefined });
    d.push(message('q', 'n1', 'first'));
    d.push(message('q', 'n1', 'second')); // x is full: looked past, held in the pass's own list
    d.push(message('q', 'n2', 'third')); // y's deliver throws
    expect(micro.run()).toHaveLength(1);
    const known = [...d.tasks()].map((m) => m.id).sort();
    expect(known).toEqual(['first', 'second', 'third']); // main: 'second' is gone from every queue
  });
});


describe('Unacked (the dispatcher\'s deliveries by tag)', () => {
  it('agrees with a Map under random sets and deletes, and lists entries oldest tag first', () => {
    let seed = 7;
    const random = (): number => { seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31; return seed / 2 ** 31; };
    const model = new Map<number, string>();
    const unacked = new Unacked<string>();
    let next = 1;
    for (let step = 0; step < 5_000; step++) {
      const live = [...model.keys()];
      if (live.length === 0 || random() < 0.5) {
        const tag = next++;
        model.set(tag, `v${tag}`);
        unacked.set(tag, `v${tag}`);
      } else {
        // Mostly the newest (a synchronous task settling at once), sometimes any, sometimes one already gone.
        const r = random();
        const tag = r < 0.6 ? (live.at(-1) as number) : r < 0.9 ? (live[Math.floor(random() * live.length)] as number) : next + 5;
        expect(unacked.delete(tag)).toBe(model.delete(tag));
      }
      const probe = 1 + Math.floor(random() * next);
      expect(unacked.get(probe)).toBe(model.get(probe));
    }
    expect(unacked.entries()).toEqual([...model].sort((a, b) => a[0] - b[0]));
    expect(unacked.values()).toEqual([...model].sort((a, b) => a[0] - b[0]).map(([, v]) => v));
  });
});
