/**
 * The engine's per-task and per-thread records. Plain classes with fixed
 * shapes (one allocation per task besides its promise), no closures unless
 * the caller asked for a signal.
 */
import type { TransferListItem } from 'node:worker_threads';
import { OP_RUN, type WireContext } from './protocol.js';
import type { ThreadHandle } from './thread-handle.js';

/** In the main queue. */
export const QUEUED = 0;
/** Given to a thread (in its outbox or posted), result not back yet. */
export const DISPATCHED = 1;
/** Resolved or rejected; a late result from the thread is ignored. */
export const SETTLED = 2;

export class Task {
  state = QUEUED;
  thread: PoolThread | undefined = undefined;
  /** Index in `thread.slots`. */
  slot = -1;
  /** Position in the thread's arrival order; -1 until posted. */
  seq = -1;
  resolve: (value: unknown) => void = noop;
  reject: (reason: unknown) => void = noop;
  onAbort: (() => void) | undefined = undefined;

  constructor(
    readonly name: string,
    readonly args: unknown[],
    readonly transfer: TransferListItem[] | undefined,
    readonly context: WireContext | 0,
    readonly onProgress: ((value: unknown) => void) | undefined,
    readonly signal: AbortSignal | undefined,
    readonly timeout: number,
    /** `performance.now()` at submit, for the latency histogram. */
    readonly t0: number,
  ) {}
}

function noop(): void { /* replaced by the promise's executor */ }

function order(task: Task): number {
  return task.seq < 0 ? Number.MAX_SAFE_INTEGER : task.seq;
}

/** One thread and the tasks it holds. */
export class PoolThread {
  handle: ThreadHandle | undefined = undefined;
  /** Tasks by slot; a slot is free again once its result (or release) is back. */
  readonly slots: (Task | undefined)[] = [];
  readonly free: number[] = [];
  /** Occupied slots: tasks in the outbox or posted and not answered. */
  inFlight = 0;
  /** Tasks posted so far (the next one's `seq`). */
  sent = 0;
  outbox: unknown[] | undefined = undefined;
  outboxTasks: Task[] = [];
  outTransfer: TransferListItem[] = [];
  /** No new work: being terminated (abort, crash, idle, close). */
  retiring = false;
  /** Why it was terminated on purpose, for the tasks that die with it. */
  retireReason: string | undefined = undefined;
  /** Error reported by the thread before it died (uncaught exception, OOM). */
  crashError: Error | undefined = undefined;
  /** Bumped whenever the thread gets work, so a stale idle deadline is ignored. */
  idleEpoch = 0;
  referenced = true;

  constructor(readonly id: number) {}

  /** Puts `task` in the outbox; returns true when the outbox was empty (needs a flush). */
  add(task: Task): boolean {
    const slot = this.free.length > 0 ? (this.free.pop() as number) : this.slots.length;
    this.slots[slot] = task;
    task.slot = slot;
    task.thread = this;
    task.state = DISPATCHED;
    this.inFlight++;
    let first = false;
    if (this.outbox === undefined) {
      this.outbox = [OP_RUN];
      first = true;
    }
    this.outbox.push(slot, task.name, task.args, task.context);
    this.outboxTasks.push(task);
    if (task.transfer !== undefined) for (const item of task.transfer) this.outTransfer.push(item);
    return first;
  }

  /** Frees the slot of a task whose result (or release) came back; returns the task. */
  release(slot: number): Task | undefined {
    const task = this.slots[slot];
    if (task === undefined) return undefined;
    this.slots[slot] = undefined;
    this.free.push(slot);
    this.inFlight--;
    return task;
  }

  /** Every task still holding a slot, in arrival order (unposted ones last). */
  held(): Task[] {
    const tasks = this.slots.filter((task): task is Task => task !== undefined);
    return tasks.sort((a, b) => order(a) - order(b));
  }
}
