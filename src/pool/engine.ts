/**
 * The pool's private engine. It trusts its (validated, frozen) options.
 *
 * Dispatch: a task goes straight to a thread when one has room, else to the
 * main queue. Each thread holds up to `depth` tasks at once (pipelining), and
 * tasks given to a thread in one turn of the event loop leave in ONE
 * `postMessage` (batching); the thread answers with batched results, and each
 * answer refills that thread from the queue. `depth` adapts to how long tasks
 * take on the thread: tiny tasks get a deep pipeline, CPU-bound tasks a
 * shallow one (2: the next task is already there when one ends, and little
 * work is stuck behind a long task).
 */
import { performance } from 'node:perf_hooks';
import type { Clock } from '../clock.js';
import { AbortError, ClosedError, QueueFullError, ThreadCrashedError, TimeoutError, ValidationError, fromErrorInfo, type ErrorInfo } from '../errors.js';
import { TimerQueue } from '../timer-queue.js';
import { LatencyHistogram, type LatencyStats } from './latency.js';
import { ABORT_SIGNAL, ABORT_TIMEOUT, OP_ABORT, OP_RUN, REPLY_STRIDE, ST_ERROR, ST_OK, ST_PROGRESS } from './protocol.js';
import { RingQueue } from './ring-queue.js';
import { crashMessage, lostMessage, sortOutDeadThread } from './dead-thread.js';
import { DISPATCHED, PoolThread, QUEUED, SETTLED, Task } from './task.js';
import type { ThreadFactory } from './thread-handle.js';

/** Resolved options; see `ThreadPoolOptions` for their meaning. */
export interface EngineOptions {
  readonly size: number;
  readonly maxQueue: number;
  /** ms; Infinity = threads never exit when idle. */
  readonly idleTimeout: number;
  /** ms a running task gets, after an abort, to let go before its thread is terminated. */
  readonly abortGraceMs: number;
  readonly clock: Clock;
  readonly factory: ThreadFactory;
}

/** A snapshot of a pool's counters. */
export interface PoolStats {
  /** Live threads. */
  readonly threads: number;
  /** Threads holding at least one task. */
  readonly busy: number;
  /** Tasks waiting in the main queue. */
  readonly queued: number;
  /** Tasks that returned a value. */
  readonly completed: number;
  /** Tasks that threw, crashed, were aborted, timed out or closed. */
  readonly failed: number;
  /** Submit -> settle latency (ms) of every settled task. */
  readonly latency: LatencyStats;
}

/** Retiring idle threads is housekeeping: its timer does not keep the process alive (the threads are unref'd when idle). */
const IDLE_TIMER = Object.freeze({ keepAlive: false });

/** Sync time per task (ms) that a pipeline of `depth` should cover: a few round trips. */
const PIPELINE_MS = 0.3;
const MIN_DEPTH = 2;
const MAX_DEPTH = 64;

interface Grace { readonly thread: PoolThread; readonly slot: number; readonly task: Task; readonly reason: number; readonly told: boolean }
interface IdleMark { readonly thread: PoolThread; readonly epoch: number }

export class PoolEngine {
  readonly #o: EngineOptions;
  readonly #threads: PoolThread[] = [];
  readonly #dying = new Set<PoolThread>();
  readonly #queue = new RingQueue<Task>();
  #queued = 0;
  #depth = MIN_DEPTH;
  #avgMs = -1;
  #nextId = 0;
  #dirty: PoolThread[] = [];
  #flushQueued = false;
  readonly #timeouts: TimerQueue<Task>;
  readonly #graces: TimerQueue<Grace>;
  readonly #idle: TimerQueue<IdleMark>;
  #staleTimeouts = 0;
  /** Unsettled tasks that have a timeout: at 0 the deadline heap is cleared, so no timer stays armed for settled tasks. */
  #timed = 0;
  #completed = 0;
  #failed = 0;
  readonly #latency = new LatencyHistogram();
  #closing = false;
  #force = false;
  #closed: (() => void) | undefined;
  /** The one promise every `close()` returns (a forced close after a graceful one must settle both). */
  #done: Promise<void> | undefined;

  constructor(options: EngineOptions) {
    this.#o = options;
    this.#timeouts = new TimerQueue(options.clock, (task) => this.abort(task, ABORT_TIMEOUT));
    this.#graces = new TimerQueue(options.clock, (g) => this.#watchdog(g));
    this.#idle = new TimerQueue(options.clock, (m) => { if (m.thread.idleEpoch === m.epoch && m.thread.inFlight === 0) this.#retire(m.thread, 'it was idle'); }, IDLE_TIMER);
  }

  /** Takes a task whose promise is set up; settles it eventually, whatever happens. */
  submit(task: Task): void {
    if (this.#queued === 0) {
      const thread = this.#pick();
      if (thread !== undefined) {
        this.#assign(thread, task);
        this.#watch(task);
        return;
      }
    }
    if (this.#queued >= this.#o.maxQueue) {
      task.state = SETTLED;
      this.#failed++;
      task.reject(new QueueFullError(`The thread pool's queue is full (maxQueue: ${this.#o.maxQueue} tasks waiting): wait for tasks to finish, or raise maxQueue`));
      return;
    }
    this.#queue.push(task);
    this.#queued++;
    this.#watch(task);
  }

  /** Aborts a task (its signal fired or its timeout passed). */
  abort(task: Task, reason: number): void {
    if (task.state === SETTLED) return;
    const error = reason === ABORT_TIMEOUT
      ? new TimeoutError(`Pool task "${task.name}" timed out after ${task.timeout} ms`, task.timeout)
      : new AbortError(`Pool task "${task.name}" was aborted`);
    const wasQueued = task.state === QUEUED;
    this.#settle(task, false, error);
    if (wasQueued) { this.#queued--; return; } // left in the ring; skipped when shifted
    const thread = task.thread as PoolThread;
    if (task.seq < 0 || thread.retiring) return; // never posted: dropped at flush
    this.#watchdog({ thread, slot: task.slot, task, reason, told: false });
  }

  /**
   * Follows an aborted task that a thread holds until the thread lets go of it:
   * once it has started, the thread is told to abort it, and if it still holds
   * it a grace period later (CPU-bound code never yields), the thread is
   * terminated. A task not started yet is checked again later, as it may start
   * (and never end) behind the one running now.
   */
  #watchdog(g: Grace): void {
    const { thread, slot, task } = g;
    if (thread.slots[slot] !== task || thread.retiring) return;
    const handle = thread.handle as NonNullable<PoolThread['handle']>;
    const next = this.#o.clock.now() + this.#o.abortGraceMs;
    if (handle.started() <= task.seq) {
      this.#graces.add(next, g);
    } else if (!g.told) {
      handle.post([OP_ABORT, slot, g.reason], []);
      this.#graces.add(next, { ...g, told: true });
    } else {
      this.#retire(thread, `task "${task.name}" on the same thread was aborted and did not stop within ${this.#o.abortGraceMs} ms`);
    }
  }

  stats(): PoolStats {
    let busy = 0;
    for (const thread of this.#threads) if (thread.inFlight > 0) busy++;
    return { threads: this.#threads.length, busy, queued: this.#queued, completed: this.#completed, failed: this.#failed, latency: this.#latency.snapshot() };
  }

  /** Stops taking work; graceful waits for queued and running tasks, force rejects them. */
  close(force: boolean): Promise<void> {
    this.#closing = true;
    this.#force ||= force;
    const done = (this.#done ??= new Promise<void>((resolve) => { this.#closed = resolve; }));
    if (force) {
      for (let task = this.#queue.shift(); task !== undefined; task = this.#queue.shift()) {
        if (task.state === QUEUED) this.#settle(task, false, new ClosedError('The thread pool'));
      }
      this.#queued = 0;
      for (const thread of [...this.#threads, ...this.#dying]) {
        for (const task of thread.held()) if (task.state === DISPATCHED) this.#settle(task, false, new ClosedError('The thread pool'));
      }
    }
    this.#maybeFinishClose();
    return done;
  }

  #watch(task: Task): void {
    if (task.timeout !== Infinity) {
      this.#timed++;
      this.#timeouts.add(this.#o.clock.now() + task.timeout, task);
    }
    if (task.signal !== undefined) {
      task.onAbort = () => this.abort(task, ABORT_SIGNAL);
      task.signal.addEventListener('abort', task.onAbort, { once: true });
    }
  }

  #settle(task: Task, ok: boolean, value: unknown, now = performance.now()): void {
    task.state = SETTLED;
    if (task.onAbort !== undefined) task.signal?.removeEventListener('abort', task.onAbort);
    if (task.timeout !== Infinity && --this.#timed === 0) {
      // no task waits on a deadline: disarm, so an idle pool keeps no timer (and so the process) alive
      this.#timeouts.clear();
      this.#staleTimeouts = 0;
    } else if (task.timeout !== Infinity && ++this.#staleTimeouts > 1024 && this.#staleTimeouts * 2 > this.#timeouts.size) {
      // settled tasks wait in the deadline heap until their time; drop them before they pile up
      this.#timeouts.filter((t) => t.state !== SETTLED);
      this.#staleTimeouts = 0;
    }
    this.#latency.record(now - task.t0);
    if (ok) { this.#completed++; task.resolve(value); } else { this.#failed++; task.reject(value); }
  }

  /** An idle thread, else a new one (below `size`), else the least loaded one with room. */
  #pick(): PoolThread | undefined {
    let best: PoolThread | undefined;
    let load = this.#depth;
    for (const thread of this.#threads) {
      if (thread.inFlight === 0) return thread;
      if (thread.inFlight < load) { best = thread; load = thread.inFlight; }
    }
    if (this.#threads.length < this.#o.size && !this.#closing) return this.#spawn();
    return best;
  }

  #spawn(): PoolThread {
    const thread = new PoolThread(++this.#nextId);
    this.#threads.push(thread);
    thread.handle = this.#o.factory({
      message: (data) => this.#onReply(thread, data),
      error: (err) => { thread.crashError ??= err; },
      exit: (code) => this.#onExit(thread, code),
    });
    return thread;
  }

  #assign(thread: PoolThread, task: Task): void {
    if (thread.inFlight === 0) {
      thread.idleEpoch++;
      if (!thread.referenced) { thread.referenced = true; thread.handle?.ref(); }
    }
    if (thread.add(task)) {
      this.#dirty.push(thread);
      if (!this.#flushQueued) { this.#flushQueued = true; queueMicrotask(this.#flush); }
    }
  }

  readonly #flush = (): void => {
    this.#flushQueued = false;
    const dirty = this.#dirty;
    this.#dirty = [];
    for (const thread of dirty) this.#post(thread);
  };

  #post(thread: PoolThread): void {
    const message = thread.outbox as unknown[];
    const tasks = thread.outboxTasks;
    const transfer = thread.outTransfer;
    thread.outbox = undefined;
    thread.outboxTasks = [];
    thread.outTransfer = [];
    if (thread.retiring) return; // its exit handler requeues them
    if (tasks.some((task) => task.state !== DISPATCHED)) {
      for (const task of tasks) if (task.state !== DISPATCHED) thread.release(task.slot);
      for (const task of tasks) if (task.state === DISPATCHED) this.#postOne(thread, task);
      return;
    }
    try {
      (thread.handle as NonNullable<PoolThread['handle']>).post(message, transfer);
      for (const task of tasks) task.seq = thread.sent++;
    } catch {
      for (const task of tasks) this.#postOne(thread, task);
    }
  }

  /** Fallback when a batch could not be cloned: find and fail only the bad tasks. */
  #postOne(thread: PoolThread, task: Task): void {
    try {
      (thread.handle as NonNullable<PoolThread['handle']>).post([OP_RUN, task.slot, task.name, task.args, task.context], task.transfer ?? []);
      task.seq = thread.sent++;
    } catch (err) {
      thread.release(task.slot);
      const reason = err instanceof Error ? err.message : String(err);
      if (task.state === DISPATCHED) this.#settle(task, false, new ValidationError(`The arguments of pool task "${task.name}" could not be sent to a thread: ${reason}. Pass plain data (JSON values, Uint8Array, ArrayBuffer)`, 'args'));
    }
  }

  #onReply(thread: PoolThread, data: unknown): void {
    if (!Array.isArray(data)) return;
    const now = performance.now();
    let results = 0;
    for (let i = 1; i + 2 < data.length; i += REPLY_STRIDE) {
      const slot = data[i] as number;
      const status = data[i + 1] as number;
      if (status === ST_PROGRESS) {
        const task = thread.slots[slot];
        if (task?.state === DISPATCHED) task.onProgress?.(data[i + 2]);
        continue;
      }
      const task = thread.release(slot);
      if (task === undefined) continue;
      results++;
      if (task.state !== DISPATCHED) continue; // aborted, timed out or closed meanwhile
      if (status === ST_OK) this.#settle(task, true, data[i + 2], now);
      else if (status === ST_ERROR) this.#settle(task, false, fromErrorInfo(data[i + 2] as ErrorInfo), now);
    }
    if (results > 0 && typeof data[0] === 'number' && data[0] > 0) this.#learn(data[0] / results);
    this.#refill(thread);
    if (thread.inFlight === 0) this.#becameIdle(thread);
    if (this.#closing) this.#maybeFinishClose();
  }

  #learn(msPerTask: number): void {
    this.#avgMs = this.#avgMs < 0 ? msPerTask : this.#avgMs * 0.7 + msPerTask * 0.3;
    this.#depth = Math.max(MIN_DEPTH, Math.min(MAX_DEPTH, Math.ceil(PIPELINE_MS / this.#avgMs) + 1));
  }

  #refill(thread: PoolThread): void {
    while (this.#queued > 0 && !thread.retiring && thread.inFlight < this.#depth) {
      const task = this.#queue.shift() as Task;
      if (task.state !== QUEUED) continue;
      this.#queued--;
      this.#assign(thread, task);
    }
  }

  /** Gives queued work to threads with room, starting threads up to `size`. */
  #pump(): void {
    for (const thread of this.#threads) this.#refill(thread);
    while (this.#queued > 0 && this.#threads.length < this.#o.size) this.#refill(this.#spawn());
  }

  #becameIdle(thread: PoolThread): void {
    if (thread.referenced) { thread.referenced = false; thread.handle?.unref(); }
    if (this.#o.idleTimeout !== Infinity && !thread.retiring) {
      this.#idle.add(this.#o.clock.now() + this.#o.idleTimeout, { thread, epoch: thread.idleEpoch });
    }
  }

  #retire(thread: PoolThread, reason: string): void {
    if (thread.retiring) return;
    thread.retiring = true;
    thread.retireReason = reason;
    const index = this.#threads.indexOf(thread);
    if (index >= 0) this.#threads.splice(index, 1);
    this.#dying.add(thread);
    thread.handle?.terminate();
    this.#pump();
  }

  #onExit(thread: PoolThread, code: number): void {
    const expected = thread.retiring;
    if (!expected) {
      thread.retiring = true;
      const index = this.#threads.indexOf(thread);
      if (index >= 0) this.#threads.splice(index, 1);
    }
    this.#dying.delete(thread);
    const { crashed, lost, requeue } = sortOutDeadThread(thread, thread.handle?.started() ?? 0, expected);
    for (const task of crashed) this.#settle(task, false, new ThreadCrashedError(crashMessage(thread, task, code, expected)));
    for (const task of lost) this.#settle(task, false, new ThreadCrashedError(lostMessage(thread, task, code, expected)));
    for (let i = requeue.length - 1; i >= 0; i--) {
      const task = requeue[i] as Task;
      task.state = QUEUED;
      task.thread = undefined;
      task.seq = -1;
      this.#queue.pushFront(task);
      this.#queued++;
    }
    if (!this.#closing || this.#queued > 0) this.#pump();
    this.#maybeFinishClose();
  }

  #maybeFinishClose(): void {
    if (!this.#closing) return;
    if (!this.#force) {
      if (this.#queued > 0) return;
      for (const thread of this.#threads) if (thread.inFlight > 0) return;
    }
    for (const thread of [...this.#threads]) this.#retire(thread, 'the pool closed');
    if (this.#dying.size > 0 || this.#closed === undefined) return;
    this.#timeouts.clear();
    this.#graces.clear();
    this.#idle.clear();
    const closed = this.#closed;
    this.#closed = undefined;
    closed();
  }
}
