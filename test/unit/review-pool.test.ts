// Review of the thread pool: one test per bug found (see the report).
import { afterAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { FakeClock } from '../../src/clock.js';
import { ThreadCrashedError, ValidationError } from '../../src/errors.js';
import { OP_ABORT, OP_RUN, ST_OK, ST_RELEASED } from '../../src/pool/protocol.js';
import type { ThreadEvents, ThreadHandle } from '../../src/pool/thread-handle.js';
import { ThreadPool } from '../../src/pool/thread-pool.js';

class Fake implements ThreadHandle {
  readonly posted: unknown[][] = [];
  started_ = 0;
  constructor(readonly events: ThreadEvents) {}
  post(message: unknown[]): void { this.posted.push(message); }
  started(): number { return this.started_; }
  terminate(): void { queueMicrotask(() => this.events.exit(1)); }
  ref(): void {}
  unref(): void {}
}

function fakePool(clock = new FakeClock(0)) {
  const threads: Fake[] = [];
  const pool = new ThreadPool({ module: '/nowhere/tasks.mjs', size: 1 }, {
    clock, threadFactory: (events) => { const t = new Fake(events); threads.push(t); return t; },
  });
  return { pool, threads, clock };
}

const flushMicrotasks = async (): Promise<void> => { for (let i = 0; i < 5; i++) await Promise.resolve(); };

describe('review: ThreadPool close', () => {
  it('resolves a graceful close() that a later close({ force: true }) overtook', async () => {
    const { pool, threads } = fakePool();
    const running = pool.run('inc', [1]).catch((e: unknown) => e);
    await flushMicrotasks();
    expect(threads).toHaveLength(1);
    const graceful = pool.close();
    const forced = pool.close({ force: true });
    await forced;
    await running;
    const state = await Promise.race([graceful.then(() => 'resolved'), flushMicrotasks().then(() => 'pending')]);
    expect(state).toBe('resolved');
  });
});

describe('review: ThreadPool timers', () => {
  it('disarms the timeout timer once the task settles, so an idle pool keeps no timer armed', async () => {
    const { pool, threads, clock } = fakePool();
    const p = pool.run('inc', [1], { timeout: 60_000 });
    await flushMicrotasks();
    const t = threads[0] as Fake;
    t.started_ = 1;
    const slot = (t.posted[0] as unknown[])[1] as number;
    t.events.message([0.01, slot, ST_OK, 2]);
    expect(await p).toBe(2);
    expect(clock.pending).toBe(0);
  });
});

describe('review: ThreadPool transfer lists (fake threads)', () => {
  it('fails, rather than re-sends with detached buffers, a posted transfer task whose thread died before starting it', async () => {
    const { pool, threads } = fakePool();
    const ctl = new AbortController();
    const first = pool.run('slow', [], { signal: ctl.signal }).catch((e: unknown) => e);
    await flushMicrotasks();
    const t = threads[0] as Fake;
    t.started_ = 1; // 'slow' is running (async)
    ctl.abort();
    await flushMicrotasks();
    const abort = t.posted.find((m) => m[0] === OP_ABORT) as unknown[];
    t.events.message([0, abort[1], ST_RELEASED, 0]); // the thread let go; 'slow' goes on in the background
    await first;
    const buf = new Uint8Array(8).buffer;
    const moved = pool.run('len', [buf], { transfer: [buf] }).catch((e: unknown) => e);
    await flushMicrotasks();
    expect(t.posted.filter((m) => m[0] === OP_RUN)).toHaveLength(2);
    t.events.exit(1); // 'slow' crashed the thread before 'len' started: buf went with the thread
    await flushMicrotasks();
    expect(await Promise.race([moved, flushMicrotasks().then(() => 'pending')])).toBeInstanceOf(ThreadCrashedError);
    expect(threads.slice(1).flatMap((x) => x.posted)).toEqual([]);
  });
});

const fixture = new URL('../fixtures/review-pool-tasks.mjs', import.meta.url);
const pools: ThreadPool[] = [];
afterAll(async () => { await Promise.all(pools.map((p) => p.close({ force: true }))); });

describe('review: ThreadPool crashes on real threads', () => {
  it('keeps the result of a task that finished before another task of its batch called process.exit()', async () => {
    const pool = new ThreadPool({ module: fixture, size: 1 });
    pools.push(pool);
    const ok = pool.run('inc', [1]);
    const dies = pool.run('exit', [3]).catch((e: unknown) => e);
    expect(await dies).toBeInstanceOf(ThreadCrashedError);
    expect(await ok).toBe(2);
  });

  // A task with a transfer list queued behind a crashing task on the same thread was re-sent with its buffers
  // detached and returned a wrong result (0 for len(buf), no error). It fails now, saying why; the pool goes on.
  // (Sending such tasks only to idle threads instead cost transfers their pipelining: 0.82x -> 0.28x of raw.)
  it('fails, saying why, a task with a transfer list queued behind a crashing task on the same thread', async () => {
    const pool = new ThreadPool({ module: fixture, size: 1 });
    pools.push(pool);
    const dies = pool.run('exit', [3]).catch((e: unknown) => e);
    const buf = new Uint8Array(8).buffer;
    const next = pool.run('len', [buf], { transfer: [buf] }).catch((e: unknown) => e);
    expect(await dies).toBeInstanceOf(ThreadCrashedError);
    expect(await next).toBeInstanceOf(ThreadCrashedError);
    expect((await next as Error).message).toMatch(/transfer list .* cannot be sent again/);
    const fresh = new Uint8Array(8).buffer;
    expect(await pool.run('len', [fresh], { transfer: [fresh] })).toBe(8);
  });

  it('rejects arguments that cannot be cloned with a ValidationError (spec section 4: every error has a code)', async () => {
    const pool = new ThreadPool({ module: fixture, size: 1 });
    pools.push(pool);
    const err = await pool.run('inc', [() => 1]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).code).toBe('ERR_VALIDATION');
    expect(await pool.run('inc', [1])).toBe(2);
  });
});

/** Runs a pool task in a child process (pool not closed), then lists what keeps that process alive. */
function aliveAfterTask(options: Record<string, unknown>): Promise<string[]> {
  const script = new URL('../fixtures/review-pool-alive.mjs', import.meta.url);
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [fileURLToPath(script), JSON.stringify(options)], (err, stdout) => {
      if (err !== null) reject(err);
      else resolve(JSON.parse(stdout) as string[]);
    });
  });
}

describe('review: an idle pool and process exit', () => {
  it('keeps nothing alive once its tasks are done (no idleTimeout)', async () => {
    expect(await aliveAfterTask({})).toEqual([]);
  });

  // The idle deadline was a ref'd clock timer, so a script whose pool has idleTimeout: 30_000 and is not
  // closed stayed alive 30 s after its last task. Now Clock.setTimer takes { keepAlive: false } (an unref'd
  // timer) and the pool's idle deadlines use it.
  it('keeps nothing alive once its tasks are done, with an idleTimeout', async () => {
    expect(await aliveAfterTask({ idleTimeout: 3_600_000 })).toEqual([]);
  });
});
