// ThreadPool with a fake thread handle: queueing, batching, crash replacement,
// abort and timeout (terminate after grace), idle exit, close and stats, in
// milliseconds and without real threads. Time is a FakeClock; waits are on
// events of the fake, never sleeps.
import { describe, expect, it } from 'vitest';
import type { TransferListItem } from 'node:worker_threads';
import { FakeClock } from '../../src/clock.js';
import { AbortError, ClosedError, ModuleError, QueueFullError, ThreadCrashedError, TimeoutError, ValidationError, toErrorInfo } from '../../src/errors.js';
import { OP_ABORT, OP_RUN, ST_ERROR, ST_OK, ST_PROGRESS, ST_RELEASED } from '../../src/pool/protocol.js';
import type { ThreadEvents, ThreadHandle } from '../../src/pool/thread-handle.js';
import { ThreadPool, type ThreadPoolOptions } from '../../src/pool/thread-pool.js';

interface Sent { slot: number; name: string; args: unknown[]; context: unknown }

class FakeThread implements ThreadHandle {
  readonly messages: unknown[][] = [];
  startedCount = 0;
  terminated = false;
  referenced = true;
  exited = false;
  rejectPost: ((message: unknown[]) => boolean) | undefined;

  constructor(readonly id: number, readonly events: ThreadEvents, readonly onChange: () => void) {}

  post(message: unknown[], _transfer: readonly TransferListItem[]): void {
    if (this.rejectPost?.(message) === true) throw new Error('could not be cloned');
    this.messages.push(message);
    this.onChange();
  }
  started(): number { return this.startedCount; }
  terminate(): void {
    this.terminated = true;
    queueMicrotask(() => this.exit(1));
    this.onChange();
  }
  ref(): void { this.referenced = true; }
  unref(): void { this.referenced = false; }

  /** Every task posted to this thread, in arrival order. */
  tasks(): Sent[] {
    const out: Sent[] = [];
    for (const m of this.messages) {
      if (m[0] !== OP_RUN) continue;
      for (let i = 1; i < m.length; i += 4) out.push({ slot: m[i] as number, name: m[i + 1] as string, args: m[i + 2] as unknown[], context: m[i + 3] });
    }
    return out;
  }
  aborts(): number[] {
    return this.messages.filter((m) => m[0] === OP_ABORT).map((m) => m[1] as number);
  }
  reply(...entries: [slot: number, status: number, value: unknown][]): void {
    this.events.message([0.001, ...entries.flat()]);
  }
  ok(task: Sent, value: unknown): void { this.reply([task.slot, ST_OK, value]); }
  crash(err?: Error, code = 1): void {
    if (err !== undefined) this.events.error(err);
    this.exit(code);
  }
  exit(code: number): void {
    if (this.exited) return;
    this.exited = true;
    this.events.exit(code);
    this.onChange();
  }
}

function setup(options: Partial<ThreadPoolOptions> = {}, abortGraceMs = 10, onCreate: (t: FakeThread) => void = () => {}) {
  const clock = new FakeClock(1_000);
  const threads: FakeThread[] = [];
  const waiters: { cond: () => boolean; resolve: () => void }[] = [];
  const onChange = (): void => {
    for (const w of [...waiters]) if (w.cond()) { waiters.splice(waiters.indexOf(w), 1); w.resolve(); }
  };
  const pool = new ThreadPool({ module: '/nowhere/tasks.mjs', size: 2, ...options }, {
    clock,
    abortGraceMs,
    threadFactory: (events) => {
      const t = new FakeThread(threads.length, events, onChange);
      threads.push(t);
      onCreate(t);
      onChange();
      return t;
    },
  });
  /** Resolves once `cond` holds (checked now and after every event of a fake thread). */
  const until = (cond: () => boolean): Promise<void> => cond() ? Promise.resolve() : new Promise((resolve) => { waiters.push({ cond, resolve }); });
  const thread = (i: number): FakeThread => {
    const t = threads[i];
    if (t === undefined) throw new Error(`no thread #${i}`);
    return t;
  };
  const sent = (i: number, k: number): Sent => {
    const s = thread(i).tasks()[k];
    if (s === undefined) throw new Error(`thread #${i} has no task #${k}`);
    return s;
  };
  return { pool, clock, threads, until, thread, sent };
}

describe('ThreadPool dispatch (fake threads)', () => {
  it('starts threads as work arrives and batches the tasks of one turn into one message per thread', async () => {
    const { pool, threads, until, thread, sent } = setup();
    const ps = [1, 2, 3, 4, 5].map((x) => pool.run('inc', [x]));
    expect(threads).toHaveLength(2);
    await until(() => thread(0).messages.length === 1 && thread(1).messages.length === 1);
    expect(thread(0).tasks().map((t) => t.args)).toEqual([[1], [3]]);
    expect(thread(1).tasks().map((t) => t.args)).toEqual([[2], [4]]);
    expect(pool.stats()).toMatchObject({ threads: 2, busy: 2, queued: 1 });
    thread(0).reply([sent(0, 0).slot, ST_OK, 2], [sent(0, 1).slot, ST_OK, 4]);
    await until(() => thread(0).tasks().length === 3);
    expect(sent(0, 2).args).toEqual([5]);
    thread(1).reply([sent(1, 0).slot, ST_OK, 3], [sent(1, 1).slot, ST_OK, 5]);
    thread(0).ok(sent(0, 2), 6);
    expect(await Promise.all(ps)).toEqual([2, 3, 4, 5, 6]);
    expect(pool.stats()).toMatchObject({ busy: 0, queued: 0, completed: 5, failed: 0 });
    expect(pool.stats().latency.count).toBe(5);
  });

  it('deepens the pipeline for short tasks', async () => {
    const { pool, until, thread, sent } = setup({ size: 1 });
    const ps = Array.from({ length: 20 }, (_, i) => pool.run('inc', [i]));
    await until(() => thread(0).tasks().length === 2);
    thread(0).reply([sent(0, 0).slot, ST_OK, 1], [sent(0, 1).slot, ST_OK, 2]); // 0.001 ms of work for 2 tasks
    await until(() => thread(0).tasks().length === 20);
    expect(thread(0).messages).toHaveLength(2); // the other 18 went in ONE message
    thread(0).reply(...thread(0).tasks().slice(2).map((t): [number, number, unknown] => [t.slot, ST_OK, 0]));
    await Promise.all(ps);
  });

  it('rebuilds thread errors by code, with the thread stack', async () => {
    const { pool, until, thread, sent } = setup();
    const p = pool.run('load', []);
    await until(() => thread(0).tasks().length === 1);
    const info = toErrorInfo(new ModuleError('no export `load`'));
    thread(0).reply([sent(0, 0).slot, ST_ERROR, { ...info, stack: 'ModuleError: no export\n    at thread (thread.js:1:1)' }]);
    const err = await p.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModuleError);
    expect((err as ModuleError).code).toBe('ERR_MODULE');
    expect((err as Error).stack).toContain('at thread (thread.js:1:1)');
    expect(pool.stats().failed).toBe(1);
  });

  it('rejects with QueueFullError beyond maxQueue', async () => {
    const { pool } = setup({ size: 1, maxQueue: 1 });
    const held = [pool.run('a'), pool.run('b'), pool.run('c')]; // 2 on the thread, 1 queued
    await expect(pool.run('d')).rejects.toBeInstanceOf(QueueFullError);
    expect(pool.stats().queued).toBe(1);
    void pool.close({ force: true });
    await Promise.allSettled(held);
  });

  it('fails only a crashed thread\'s running task, requeues the rest and replaces the thread', async () => {
    const { pool, until, thread, sent } = setup({ size: 1 });
    const running = pool.run('crash', []);
    const waiting = pool.run('inc', [1]);
    const queued = pool.run('inc', [2]);
    await until(() => thread(0).tasks().length === 2);
    thread(0).startedCount = 1;
    const caught = running.catch((e: unknown) => e);
    thread(0).crash(new Error('boom in a timer'));
    const err = await caught;
    expect(err).toBeInstanceOf(ThreadCrashedError);
    expect((err as Error).message).toMatch(/crashed while running task "crash": boom in a timer/);
    await until(() => thread(1)?.tasks().length === 2);
    expect(thread(1).tasks().map((t) => t.args)).toEqual([[1], [2]]); // order kept
    thread(1).reply([sent(1, 0).slot, ST_OK, 2], [sent(1, 1).slot, ST_OK, 3]);
    expect(await Promise.all([waiting, queued])).toEqual([2, 3]);
    expect(pool.stats()).toMatchObject({ threads: 1, completed: 2, failed: 1 });
  });

  it('names the exit code when a thread exits (process.exit) mid-task', async () => {
    const { pool, until, thread } = setup();
    const p = pool.run('exit', [3]);
    await until(() => thread(0).tasks().length === 1);
    thread(0).startedCount = 1;
    const caught = p.catch((e: unknown) => e);
    thread(0).crash(undefined, 3);
    expect(String(await caught)).toMatch(/exited with code 3 while running task "exit"/);
  });

  it('fails one task when a thread dies before starting any, so a broken module cannot loop', async () => {
    const { pool, until, thread, threads } = setup({ size: 1 });
    const a = pool.run('x');
    const b = pool.run('y');
    await until(() => thread(0).tasks().length === 2);
    const caught = a.catch((e: unknown) => e);
    thread(0).crash(undefined, 7);
    expect(await caught).toBeInstanceOf(ThreadCrashedError);
    await until(() => threads.length === 2 && thread(1).tasks().length === 1);
    thread(1).ok(thread(1).tasks()[0] as Sent, 'y');
    await expect(b).resolves.toBe('y');
  });
});

describe('ThreadPool abort and timeout (fake threads)', () => {
  it('drops an aborted queued task without sending it', async () => {
    const { pool, until, thread, sent } = setup({ size: 1 });
    const a = pool.run('a');
    const b = pool.run('b');
    const ac = new AbortController();
    const c = pool.run('c', [], { signal: ac.signal });
    expect(pool.stats().queued).toBe(1);
    ac.abort();
    await expect(c).rejects.toBeInstanceOf(AbortError);
    expect(pool.stats().queued).toBe(0);
    await until(() => thread(0).tasks().length === 2);
    thread(0).reply([sent(0, 0).slot, ST_OK, 1], [sent(0, 1).slot, ST_OK, 2]);
    await Promise.all([a, b]);
    expect(thread(0).tasks().map((t) => t.name)).toEqual(['a', 'b']);
  });

  it('rejects an aborted signal up front', async () => {
    const { pool, threads } = setup();
    await expect(pool.run('a', [], { signal: AbortSignal.abort() })).rejects.toBeInstanceOf(AbortError);
    expect(threads).toHaveLength(0);
  });

  it('terminates and replaces a thread whose running task ignores the abort', async () => {
    const { pool, clock, until, thread, threads } = setup({ size: 1 });
    const ac = new AbortController();
    const spin = pool.run('spin', [], { signal: ac.signal });
    const next = pool.run('inc', [1]);
    await until(() => thread(0).tasks().length === 2);
    thread(0).startedCount = 1;
    ac.abort();
    await expect(spin).rejects.toBeInstanceOf(AbortError); // at once, not after the grace period
    expect(thread(0).aborts()).toEqual([thread(0).tasks()[0]?.slot]);
    expect(thread(0).terminated).toBe(false);
    await clock.advance(10);
    expect(thread(0).terminated).toBe(true);
    await until(() => threads.length === 2 && thread(1).tasks().length === 1);
    expect(thread(1).tasks()[0]?.args).toEqual([1]); // the task behind it was not lost
    thread(1).ok(thread(1).tasks()[0] as Sent, 2);
    await expect(next).resolves.toBe(2);
  });

  it('keeps the thread when the aborted task lets go within the grace period', async () => {
    const { pool, clock, until, thread, sent } = setup({ size: 1 });
    const ac = new AbortController();
    const p = pool.run('cooperative', [], { signal: ac.signal, context: { id: 't1', name: 'n', attempt: 1, retriesLeft: 0, headers: {}, signature: {} } });
    await until(() => thread(0).tasks().length === 1);
    thread(0).startedCount = 1;
    ac.abort();
    await expect(p).rejects.toBeInstanceOf(AbortError);
    thread(0).reply([sent(0, 0).slot, ST_RELEASED, 0]);
    await clock.advance(50);
    expect(thread(0).terminated).toBe(false);
    expect(pool.stats().busy).toBe(0);
  });

  it('waits for an aborted task stuck behind another until it starts, then stops it', async () => {
    const { pool, clock, until, thread, sent } = setup({ size: 1 });
    const first = pool.run('long');
    const ac = new AbortController();
    const second = pool.run('spin', [], { signal: ac.signal });
    await until(() => thread(0).tasks().length === 2);
    thread(0).startedCount = 1;
    ac.abort();
    await expect(second).rejects.toBeInstanceOf(AbortError);
    await clock.advance(30);
    expect(thread(0).terminated).toBe(false); // not started: nothing to stop yet
    thread(0).ok(sent(0, 0), 'done');
    await expect(first).resolves.toBe('done');
    thread(0).startedCount = 2; // now the aborted one runs, and never yields
    await clock.advance(10);
    expect(thread(0).aborts()).toEqual([sent(0, 1).slot]);
    await clock.advance(10);
    expect(thread(0).terminated).toBe(true);
  });

  it('times out by the clock, and replaces the thread of a task that was running', async () => {
    const { pool, clock, until, thread } = setup();
    const p = pool.run('spin', [], { timeout: 100 });
    const caught = p.catch((e: unknown) => e);
    await until(() => thread(0).tasks().length === 1);
    thread(0).startedCount = 1;
    await clock.advance(99);
    expect(pool.stats().failed).toBe(0);
    await clock.advance(1);
    const err = await caught;
    expect(err).toBeInstanceOf(TimeoutError);
    expect((err as TimeoutError).timeoutMs).toBe(100);
    await clock.advance(20);
    expect(thread(0).terminated).toBe(true);
  });
});

describe('ThreadPool lifecycle (fake threads)', () => {
  it('lets idle threads exit after idleTimeout and starts new ones lazily', async () => {
    const { pool, clock, until, thread, threads } = setup({ size: 1, idleTimeout: 500 });
    const p = pool.run('a');
    await until(() => thread(0).tasks().length === 1);
    thread(0).ok(thread(0).tasks()[0] as Sent, 1);
    await p;
    expect(thread(0).referenced).toBe(false); // an idle pool does not hold the process open
    await clock.advance(499);
    expect(thread(0).terminated).toBe(false);
    await clock.advance(1);
    expect(thread(0).terminated).toBe(true);
    expect(pool.stats().threads).toBe(0);
    const q = pool.run('b');
    await until(() => threads.length === 2 && thread(1).tasks().length === 1);
    expect(thread(1).referenced).toBe(true);
    thread(1).ok(thread(1).tasks()[0] as Sent, 2);
    await expect(q).resolves.toBe(2);
  });

  it('closes gracefully: finishes queued and running tasks, refuses new ones', async () => {
    const { pool, until, thread, sent } = setup({ size: 1 });
    const ps = [pool.run('a'), pool.run('b'), pool.run('c')];
    let closed = false;
    const closing = pool.close().then(() => { closed = true; });
    await expect(pool.run('late')).rejects.toBeInstanceOf(ClosedError);
    await until(() => thread(0).tasks().length === 2);
    thread(0).reply([sent(0, 0).slot, ST_OK, 1], [sent(0, 1).slot, ST_OK, 2]);
    await until(() => thread(0).tasks().length === 3);
    expect(closed).toBe(false);
    thread(0).ok(sent(0, 2), 3);
    await closing;
    expect(await Promise.all(ps)).toEqual([1, 2, 3]);
    expect(thread(0).terminated).toBe(true);
  });

  it('closes with force: rejects queued and running tasks with ClosedError', async () => {
    const { pool, until, thread } = setup({ size: 1 });
    const ps = [pool.run('a'), pool.run('b'), pool.run('c')];
    await until(() => thread(0).tasks().length === 2);
    await pool.close({ force: true });
    for (const r of await Promise.allSettled(ps)) expect(r.status === 'rejected' && r.reason instanceof ClosedError).toBe(true);
    expect(thread(0).terminated).toBe(true);
    expect(pool.stats()).toMatchObject({ failed: 3, queued: 0 });
  });

  it('sends the task context and delivers progress in order', async () => {
    const { pool, until, thread, sent } = setup();
    const seen: unknown[] = [];
    const context = { id: 'id-1', name: 'resize', attempt: 2, retriesLeft: 1, headers: { h: 'v' }, signature: { id: 'id-1' } };
    const p = pool.run('resize', [1], { context, onProgress: (v) => seen.push(v) });
    await until(() => thread(0).tasks().length === 1);
    expect(sent(0, 0).context).toEqual(context);
    thread(0).reply([sent(0, 0).slot, ST_PROGRESS, 0.5], [sent(0, 0).slot, ST_PROGRESS, { step: 2 }], [sent(0, 0).slot, ST_OK, 'done']);
    await expect(p).resolves.toBe('done');
    expect(seen).toEqual([0.5, { step: 2 }]);
  });

  it('fails only the task whose arguments cannot be sent', async () => {
    const { pool, until, thread } = setup({ size: 1 }, 10, (t) => {
      t.rejectPost = (m) => JSON.stringify(m).includes('pretend-not-cloneable');
    });
    const bad = pool.run('f', [{ fn: 'pretend-not-cloneable' }]);
    const good = pool.run('f', [1]);
    await expect(bad).rejects.toThrow(/arguments of pool task "f" could not be sent to a thread/);
    await until(() => thread(0).tasks().length === 1);
    thread(0).ok(thread(0).tasks()[0] as Sent, 'ok');
    await expect(good).resolves.toBe('ok');
  });

  it('validates options with clear messages', () => {
    const make = (o: Record<string, unknown>): ThreadPool => new ThreadPool(o as unknown as ThreadPoolOptions);
    expect(() => make({ module: 'x.mjs', size: 0 })).toThrow('Expected `size` to be an integer in 1..1024, got `0` (number)');
    expect(() => make({ module: '' })).toThrow(ValidationError);
    expect(() => make({})).toThrow(/Expected `module`/);
    expect(() => make({ module: 'x.mjs', idleTimeout: -1 })).toThrow(/`idleTimeout`/);
    expect(() => make({ module: 'x.mjs', maxQueue: 1.5 })).toThrow(/`maxQueue`/);
    expect(() => make({ module: 'x.mjs', bogus: 1 })).toThrow(/Unknown ThreadPool option `bogus`/);
    expect(() => make({ module: new URL('https://example.com/x.mjs') })).toThrow(/file: URL/);
  });

  it('validates run() arguments', async () => {
    const { pool } = setup();
    await expect(pool.run('', [])).rejects.toThrow('Expected `exportName` to be a non-empty string, got `` (string)');
    await expect(pool.run('f', 1 as unknown as unknown[])).rejects.toThrow(/`args` to be an array/);
    await expect(pool.run('f', [], { timeout: 0 })).rejects.toThrow(/`timeout`/);
  });
});
