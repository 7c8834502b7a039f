/**
 * The task context: what `currentTask()` returns inside a running task, on the
 * worker's event loop or on a pool thread. The AsyncLocalStorage lives on
 * `globalThis` under a registered symbol so that two copies of the package
 * (a task module importing `millwright` from elsewhere) still see one context.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { MillwrightError } from './errors.js';

/** What a running task knows about itself. */
export interface TaskContext {
  readonly id: string;
  readonly name: string;
  /** 1-based attempt number. */
  readonly attempt: number;
  readonly retriesLeft: number;
  readonly headers: Readonly<Record<string, string>>;
  /** The signature as sent (args included), as plain data. */
  readonly signature: Readonly<Record<string, unknown>>;
  /** Fires on revoke, timeout or a forced worker stop. */
  readonly signal: AbortSignal;
  /** Reports progress (a number 0..1 or a JSON object) to the producer's `r.progress`. */
  progress(value: unknown): void;
}

/**
 * Versioned: the holder's shape is part of the contract between copies. A copy whose holder has another shape
 * keeps its own storage (sharing one would let it run tasks under a storage this copy switches off).
 */
const KEY = Symbol.for('millwright.context.v2');
/** Shared by every copy of the package (of this holder version) in the process. */
interface Holder {
  readonly storage: AsyncLocalStorage<TaskContext>;
  /** The context of a task whose function is running synchronously right now. */
  current: TaskContext | undefined;
  /** Contexts of calls run under the storage and not ended yet (see {@link endContext}), and their count. */
  readonly live: WeakSet<TaskContext>;
  tracked: number;
  /**
   * How each task function is called, learnt on its first call: `async` (it returned a promise)
   * or `sync` (it returned a value). Absent: not called yet.
   */
  readonly modes: WeakMap<object, 'sync' | 'async'>;
}
type Registry = { [KEY]?: Holder };
const registry = globalThis as Registry;
const holder: Holder = (registry[KEY] ??= {
  storage: new AsyncLocalStorage<TaskContext>(), current: undefined, live: new WeakSet(), tracked: 0, modes: new WeakMap(),
});
const storage = holder.storage;

/**
 * Calls `fn(...args)` with `context` as the current task. Returns what it
 * returned; a thenable comes back as a native promise that settled with it
 * (its `then` called once: a lazy thenable, like a query builder, runs once).
 *
 * Why not always `storage.run()`: on Node 20 an enabled AsyncLocalStorage
 * installs promise hooks that every promise in the process pays for, task or
 * not (measured: ~2 us of ~9 us CPU per trivial task on bench/memory.mjs; a
 * minimal queue doing the same work drops from ~420k to ~250k tasks/s once a
 * storage is enabled). So the storage is entered for a function's first call
 * and for functions that returned a promise, and it is disabled whenever no
 * such call is in flight: a process running synchronous tasks pays nothing.
 * A function that returned a value on its first call is called with its
 * context in a plain variable while the storage is off (under the storage
 * while it is on, which costs nothing more then).
 *
 * Should such a function return a promise later, its later calls run under the
 * storage, but in that one call `currentTask()` fails after its first await
 * (documented: a task that awaits should be an `async` function, or return a
 * promise from its first call). Callbacks a task leaves behind (a timer, a
 * listener) see its context only while it runs, as the task is over after.
 */
export function runInContext(context: TaskContext, fn: (...args: unknown[]) => unknown, args: readonly unknown[]): unknown {
  const mode = holder.modes.get(fn);
  const prev = holder.current;
  holder.current = context;
  if (mode === 'sync' && holder.tracked === 0) {
    let result: unknown;
    try {
      result = callSettled(fn, args);
    } finally {
      holder.current = prev;
    }
    if (!isThenable(result)) return result;
    holder.modes.set(fn, 'async');
    return result;
  }
  holder.live.add(context);
  holder.tracked++;
  let result: unknown;
  try {
    result = storage.run(context, callSettled, fn, args);
  } catch (err) {
    endContext(context); // a call that threw taught nothing about what the function returns
    throw err;
  } finally {
    holder.current = prev;
  }
  if (!isThenable(result)) {
    if (mode === undefined) holder.modes.set(fn, 'sync');
    endContext(context);
    return result;
  }
  holder.modes.set(fn, 'async');
  const settled = result as Promise<unknown>;
  settled.then(() => endContext(context), () => endContext(context));
  return settled;
}

/** `fn(...args)`, a thenable it returns executed here, in the caller's context (a lazy one runs its work in `then`). */
function callSettled(fn: (...args: unknown[]) => unknown, args: readonly unknown[]): unknown {
  const result = fn(...args);
  return isThenable(result) ? settledWith(result) : result;
}

/**
 * The call made with `context` is over for its caller (settled, or given up
 * on: timed out, revoked, stopped, though its promise may never settle).
 * Once no call under the storage is left, its promise hooks go off (the next
 * such call turns them on). Idempotent.
 */
export function endContext(context: TaskContext): void {
  if (holder.tracked === 0 || !holder.live.delete(context)) return;
  if (--holder.tracked === 0) storage.disable();
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function';
}

/** A native promise as is; any other thenable through one call of its `then` (which may throw). */
function settledWith(thenable: PromiseLike<unknown>): Promise<unknown> {
  if (Object.getPrototypeOf(thenable) === Promise.prototype) return thenable as Promise<unknown>;
  return new Promise((resolve, reject) => { thenable.then(resolve, reject); });
}

/**
 * The context of the task running now. Throws outside a task.
 * @example
 * app.task('resize', async (url: string) => {
 *   const { signal, attempt } = currentTask();
 *   return fetchAndResize(url, { signal, attempt });
 * });
 */
export function currentTask(): TaskContext {
  const context = holder.current ?? storage.getStore();
  if (context === undefined) throw new NotInTaskError();
  return context;
}

/** `currentTask()` was called outside a running task. */
class NotInTaskError extends MillwrightError {
  constructor() {
    super('ERR_VALIDATION', 'currentTask() was called outside a running task: call it from inside a task function (in an async task, also after its awaits; not from callbacks that outlive the task)');
  }
}
