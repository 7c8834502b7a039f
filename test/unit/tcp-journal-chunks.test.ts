/**
 * Snapshot chunks of the TCP broker's journal (transports/tcp/journal.ts writeSnapshot): items go in chunks of up to
 * 1000, halved while a frame would pass the chunk size, so large results can neither make one JSON text over V8's
 * string limit nor a record over what the reader accepts. Here with a small chunk size; the full-size case (570 MB
 * of results) is test/integration/review7.test.ts, run with MW_HEAVY=1.
 */
import { describe, expect, it } from 'vitest';
import { packArgs } from '../../src/codec.js';
import type { StateRecord, TaskMessage } from '../../src/transport.js';
import type { CoreSnapshot } from '../../transports/memory/broker-core.js';
import { readSnapshot, writeSnapshot } from '../../transports/tcp/journal.js';

describe('journal snapshot chunks', () => {
  it('splits chunks past the chunk size and reads every item back, in order', () => {
    const result = JSON.stringify('x'.repeat(10_000));
    const states: StateRecord[] = Array.from({ length: 50 }, (_, i) => ({
      id: `s${i}`, name: 't', state: 'SUCCESS', result: i % 7 === 0 ? JSON.stringify('small') : result, attempts: 1, createdAt: 1, updatedAt: 2, expiresAt: 3,
    }));
    const tasks: TaskMessage[] = Array.from({ length: 30 }, (_, i) => ({
      id: `t${i}`, name: 't', args: packArgs([i, new Uint8Array([i, 255 - i]), 'y'.repeat(5_000)]), queue: 'q', priority: 0, eta: 0, retries: 0, attempt: 0, createdAt: 1,
    }));
    const snap: CoreSnapshot = { states, tasks, chords: [], closedChords: ['c1'], revoked: ['r1'] };
    const whole = Buffer.concat(writeSnapshot(snap, 4));
    const split = Buffer.concat(writeSnapshot(snap, 4, 32 * 1024)); // ~3 states or ~6 tasks per frame
    expect(split.length).toBeGreaterThan(whole.length); // more frames, more headers
    for (const data of [whole, split]) {
      const back = readSnapshot(data);
      expect(back.gen).toBe(4);
      expect(back.snapshot.states).toEqual(states);
      expect(back.snapshot.tasks.map((t) => t.id)).toEqual(tasks.map((t) => t.id));
      expect(back.snapshot.tasks[29]?.args).toEqual(tasks[29]?.args);
      expect(back.snapshot.closedChords).toEqual(['c1']);
      expect(back.snapshot.revoked).toEqual(['r1']);
    }
  });
});
