/** The journal without killing anything: write, reopen, compare; compaction; a torn tail. */
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/clock.js';
import { pack, unpackArgs } from '../../src/codec.js';
import type { Outcome, StateRecord, TaskMessage } from '../../src/transport.js';
import { BrokerCore } from '../../transports/memory/broker-core.js';
import { Journal, type JournalRecord } from '../../transports/tcp/journal.js';
import { taskMessage } from './tcp-helpers.js';

const dirs: string[] = [];
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });
const tempDir = (): string => { const d = mkdtempSync(join(tmpdir(), 'mw-journal-')); dirs.push(d); return d; };

/** A core and its journal, fed the same changes, as the server does. */
function open(dir: string, compactBytes = 1 << 30): { core: BrokerCore; journal: Journal; clock: FakeClock; apply(r: JournalRecord): void } {
  const clock = new FakeClock(1_000);
  const core = new BrokerCore(clock);
  const journal = Journal.open(dir, core, { compactBytes, fsync: true });
  return {
    core, journal, clock,
    apply(r) {
      journal.append(r);
      if (r.t === 'publish') core.publish(r.batch);
      else if (r.t === 'settle') { core.apply(r.outcome); core.retain((m) => !(m.id === r.mid && m.attempt === r.attempt)); }
      else if (r.t === 'setState') core.setState(r.record);
      else core.revoke(r.id);
    },
  };
}

const success = (m: TaskMessage, result = '1'): Outcome => ({
  records: [{ id: m.id, name: m.name, state: 'SUCCESS', result, attempts: m.attempt + 1, createdAt: m.createdAt, updatedAt: 2_000, expiresAt: 9e12 }],
  publish: null, retry: null, chord: null,
});

function view(core: BrokerCore): { states: StateRecord[]; tasks: string[]; chords: unknown; closed: string[]; revoked: string[] } {
  const s = core.snapshot();
  return {
    states: [...s.states].sort((a, b) => a.id.localeCompare(b.id)),
    tasks: s.tasks.map((t) => `${t.id}@${t.attempt}`).sort(),
    chords: s.chords, closed: [...s.closedChords].sort(), revoked: [...s.revoked].sort(),
  };
}

/** Feeds a small history: plain tasks, a delayed one, a retried one, a chord with one of two members done, a revoke. */
function history(j: ReturnType<typeof open>): { callback: TaskMessage; members: TaskMessage[]; retried: TaskMessage } {
  const a = taskMessage('q');
  const b = taskMessage('q', { args: pack([new Uint8Array([1, 2])]) });
  const delayed = taskMessage('q', { eta: 1e13 });
  const retried = taskMessage('q');
  const revoked = taskMessage('q');
  const callback = taskMessage('cb', { args: '["cb"]' });
  const members = [0, 1].map((index) => taskMessage('q', { chord: { id: 'chord-1', index, tail: [callback.id] } }));
  j.apply({ t: 'publish', batch: { tasks: [a, b, delayed, retried, revoked], chords: [] } });
  j.apply({ t: 'publish', batch: { tasks: members, chords: [{ id: 'chord-1', count: 2, callback: { tasks: [callback], chords: [] } }] } });
  j.apply({ t: 'setState', record: { id: b.id, name: 't', state: 'STARTED', attempts: 1, createdAt: 1, updatedAt: 2 } });
  j.apply({ t: 'settle', mid: a.id, attempt: 0, outcome: success(a) });
  const retry: TaskMessage = { ...retried, attempt: 1, eta: 5_000 };
  j.apply({ t: 'settle', mid: retried.id, attempt: 0, outcome: { records: [{ id: retried.id, name: 't', state: 'RETRY', attempts: 1, createdAt: 1, updatedAt: 2 }], publish: null, retry, chord: null } });
  const m0 = members[0] as TaskMessage;
  j.apply({ t: 'settle', mid: m0.id, attempt: 0, outcome: { ...success(m0, '"r0"'), chord: { ref: m0.chord as NonNullable<TaskMessage['chord']>, result: '"r0"' } } });
  j.apply({ t: 'revoke', id: revoked.id });
  return { callback, members, retried };
}

describe('journal', () => {
  it('replays into the same states, queued tasks, chord ledger and revocations', async () => {
    const dir = tempDir();
    const first = open(dir);
    const { retried } = history(first);
    await first.journal.commit();
    const expected = view(first.core);
    await first.journal.close();
    const second = open(dir);
    expect(view(second.core)).toEqual(expected);
    expect(view(second.core).tasks).toContain(`${retried.id}@1`);
    expect(view(second.core).tasks).not.toContain(`${retried.id}@0`);
    await second.journal.close();
  });

  it('keeps a chord that fires exactly once across a restart, even when a member completes twice', async () => {
    const dir = tempDir();
    const first = open(dir);
    const { members, callback } = history(first);
    await first.journal.close();
    const second = open(dir);
    const m1 = members[1] as TaskMessage;
    const m0 = members[0] as TaskMessage;
    const done = (m: TaskMessage, r: string): JournalRecord => ({ t: 'settle', mid: m.id, attempt: 0, outcome: { ...success(m, r), chord: { ref: m.chord as NonNullable<TaskMessage['chord']>, result: r } } });
    second.apply(done(m0, '"dup"')); // a duplicate of the member completed before the restart
    second.apply(done(m1, '"r1"'));
    second.apply(done(m1, '"r1-again"'));
    await second.journal.close();
    const third = open(dir);
    const callbacks = third.core.snapshot().tasks.filter((t) => t.id === callback.id);
    expect(callbacks.length).toBe(1);
    expect(unpackArgs((callbacks[0] as TaskMessage).args)).toEqual(['cb', 'r0', 'r1']);
    expect(third.core.snapshot().closedChords).toContain('chord-1');
    await third.journal.close();
  });

  it('compacts into a snapshot past compactBytes and replays snapshot + new log to the same state', async () => {
    const dir = tempDir();
    const first = open(dir, 2_000);
    history(first);
    await first.journal.commit();
    expect(first.journal.wantsCompaction).toBe(true);
    const more = taskMessage('q');
    first.apply({ t: 'publish', batch: { tasks: [more], chords: [] } }); // folded into the snapshot, not logged
    await first.journal.compact(first.core);
    expect(readdirSync(dir).sort()).toEqual(['journal-v2-1.log', 'snapshot-v2']);
    expect(statSync(join(dir, 'journal-v2-1.log')).size).toBe(0);
    const after = taskMessage('q');
    first.apply({ t: 'publish', batch: { tasks: [after], chords: [] } });
    await first.journal.commit();
    const expected = view(first.core);
    await first.journal.close();
    const second = open(dir, 2_000);
    expect(view(second.core)).toEqual(expected);
    expect(view(second.core).tasks).toEqual(expect.arrayContaining([`${more.id}@0`, `${after.id}@0`]));
    await second.journal.close();
  });

  it('cuts a torn tail (an incomplete or unchecksummed group) and keeps every committed group', async () => {
    const dir = tempDir();
    const first = open(dir);
    const kept = taskMessage('q');
    first.apply({ t: 'publish', batch: { tasks: [kept], chords: [] } });
    await first.journal.close();
    const log = join(dir, 'journal-v2-0.log');
    const good = statSync(log).size;
    appendFileSync(log, Buffer.from([0, 0, 0, 40, 2, 0, 0, 0, 0, 0, 0, 123]));
    const second = open(dir);
    expect(view(second.core).tasks).toEqual([`${kept.id}@0`]);
    expect(statSync(log).size).toBe(good);
    await second.journal.close();
    expect(existsSync(join(dir, 'snapshot-v2'))).toBe(false);
  });

  it('refuses a dataDir holding a journal of another format, and leaves it as it was (read with the wrong layout it would look torn and be cut)', () => {
    for (const name of ['journal-0.log', 'snapshot', 'journal-v1-3.log']) {
      const dir = tempDir();
      const old = join(dir, name);
      const bytes = Buffer.from([0, 0, 0, 9, 2, 0, 0, 0, 0, 0, 0, 0, 0]);
      appendFileSync(old, bytes);
      expect(() => open(dir)).toThrow(/holds a journal of another format/);
      expect(readFileSync(old)).toEqual(bytes);
      expect(readdirSync(dir)).toEqual([name]);
    }
  });
});
