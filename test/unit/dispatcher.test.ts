/**
 * The memory dispatcher when a consumer's deliver throws (a bug in a transport's consumer, or a process that
 * survives the uncaught exception): nothing may be lost or left waiting. Found by a review; each failed before.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { packArgs } from '../../src/codec.js';
import type { TaskMessage } from '../../src/transport.js';
import { Dispatcher } from '../../transports/memory/dispatcher.js';

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

