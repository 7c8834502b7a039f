/**
 * `ThreadPool`: run the exported functions of an ESM module on a pool of
 * `worker_threads`. The public facade: it validates options once, freezes
 * them, and hands them to a private engine that trusts them.
 */
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import type { ResourceLimits, TransferListItem } from 'node:worker_threads';
import { systemClock, type Clock } from '../clock.js';
import { AbortError, ClosedError, ValidationError } from '../errors.js';
import { checkOptions, describe, rules, type Rule } from '../options.js';
import { PoolEngine, type EngineOptions, type PoolStats } from './engine.js';
import { toTransferList } from './move.js';
import type { WireContext } from './protocol.js';
import { Task } from './task.js';
import { workerThreadFactory, type ThreadFactory } from './thread-handle.js';

/** Options of {@link ThreadPool}. */
export interface ThreadPoolOptions {
  /**
   * The ESM module whose exported functions run on the threads: a `file:` URL
   * or a path (relative paths resolve against `process.cwd()`). Imported once
   * per thread.
   */
  readonly module: string | URL;
  /** Maximum number of threads, started as work arrives. Default `os.availableParallelism()`. */
  readonly size?: number;
  /** Tasks allowed to wait in the queue; beyond it `run()` rejects with `QueueFullError`. Default `Infinity`. */
  readonly maxQueue?: number;
  /** ms a thread may sit idle before it exits (a new one starts when work comes). Default: never. */
  readonly idleTimeout?: number;
  /** V8 limits of each thread (`worker_threads` `resourceLimits`); past them the thread dies and is replaced. */
  readonly resourceLimits?: ResourceLimits;
}

/** The plain-data part of a task context passed to a thread (see {@link RunOptions.context}). */
export type PoolTaskContext = WireContext;

/** Options of one {@link ThreadPool.run} call. */
export interface RunOptions {
  /** Buffers to transfer (not copy) to the thread; typed arrays stand for their buffer, which is detached here. */
  readonly transfer?: readonly (TransferListItem | ArrayBufferView)[];
  /** Aborts the task: a queued task is dropped; a running one is told to stop, and its thread is terminated if it does not. */
  readonly signal?: AbortSignal;
  /** ms from `run()` until the task fails with `TimeoutError` (queue time included); its thread is replaced if it was running. */
  readonly timeout?: number;
  /**
   * Internal but stable (used by millwright's `Worker` for module tasks): run
   * the function inside a task context, so `currentTask()` works on the
   * thread. Its `signal` fires when this run is aborted or times out (the
   * thread is terminated if the task has not let go within a short grace
   * period), and its `progress(value)` calls {@link RunOptions.onProgress} here.
   */
  readonly context?: PoolTaskContext;
  /** Internal but stable: receives the values the task passes to `currentTask().progress()`, in order. */
  readonly onProgress?: (value: unknown) => void;
}

/** Test seams; not part of the public API. */
export interface ThreadPoolInternals {
  /** Time source of timeouts and idle deadlines. Default: the system clock. */
  readonly clock?: Clock;
  /** Makes the threads (a fake in unit tests). Default: real `worker_threads`. */
  readonly threadFactory?: ThreadFactory;
  /** ms an aborted running task gets to let go before its thread is terminated. Default 25. */
  readonly abortGraceMs?: number;
}

const countOrInfinity = (min: number): Rule => ({
  expect: `an integer >= ${min} or Infinity`,
  test: (v) => v === Infinity || (Number.isInteger(v) && (v as number) >= min),
});

const OPTIONS: Readonly<Record<keyof ThreadPoolOptions, Rule>> = {
  module: { expect: 'a non-empty string (a path) or a file: URL', test: (v) => (typeof v === 'string' && v.length > 0) || (v instanceof URL && v.protocol === 'file:') },
  size: rules.int(1, 1024),
  maxQueue: countOrInfinity(0),
  idleTimeout: { expect: 'a number of ms >= 0 or Infinity', test: (v) => typeof v === 'number' && v >= 0 },
  resourceLimits: rules.object,
};

/**
 * A pool of `worker_threads` running the exported functions of one module.
 * Several tasks are kept in flight per thread and sent in batches, so tiny
 * tasks cost microseconds; a crashed thread fails only its running task and
 * is replaced.
 * @example
 * // tasks.js: export function hash(data) { ... }
 * const pool = new ThreadPool({ module: new URL('./tasks.js', import.meta.url), size: 4 });
 * const digest = await pool.run('hash', [bytes], { transfer: [bytes], timeout: 5_000 });
 * await pool.close();
 */
export class ThreadPool {
  readonly #engine: PoolEngine;
  #closing: Promise<void> | undefined;

  constructor(options: ThreadPoolOptions, internals: ThreadPoolInternals = {}) {
    checkOptions('ThreadPool', options, OPTIONS);
    if (options.module === undefined) throw new ValidationError('Expected `module` to be a non-empty string (a path) or a file: URL, got `undefined` (undefined)', 'module');
    const module = options.module instanceof URL ? options.module.href
      : options.module.startsWith('file:') ? new URL(options.module).href
      : pathToFileURL(options.module).href;
    const resolved: EngineOptions = Object.freeze({
      size: options.size ?? os.availableParallelism(),
      maxQueue: options.maxQueue ?? Infinity,
      idleTimeout: options.idleTimeout ?? Infinity,
      abortGraceMs: internals.abortGraceMs ?? 25,
      clock: internals.clock ?? systemClock,
      factory: internals.threadFactory ?? workerThreadFactory({ module, resourceLimits: options.resourceLimits }),
    });
    this.#engine = new PoolEngine(resolved);
  }

  /**
   * Runs the module's export `exportName` with `args` on a thread; resolves
   * with its (awaited) result. Errors thrown there are rebuilt here by code,
   * with the thread's stack.
   * @throws ValidationError (bad options, arguments that cannot be cloned), QueueFullError, AbortError, TimeoutError, ThreadCrashedError, ModuleError, ClosedError (rejections)
   */
  run<T = unknown>(exportName: string, args: readonly unknown[] = [], options?: RunOptions): Promise<T> {
    if (this.#closing !== undefined) return Promise.reject(new ClosedError('This ThreadPool'));
    if (typeof exportName !== 'string' || exportName.length === 0) return invalid('exportName', 'a non-empty string', exportName);
    if (!Array.isArray(args)) return invalid('args', 'an array of arguments', args);
    let transfer: TransferListItem[] | undefined;
    let timeout = Infinity;
    let context: WireContext | 0 = 0;
    let signal: AbortSignal | undefined;
    let onProgress: ((value: unknown) => void) | undefined;
    if (options !== undefined) {
      if (options.transfer !== undefined) {
        if (!Array.isArray(options.transfer)) return invalid('transfer', 'an array', options.transfer);
        if (options.transfer.length > 0) transfer = toTransferList(options.transfer);
      }
      if (options.timeout !== undefined) {
        if (typeof options.timeout !== 'number' || !(options.timeout > 0)) return invalid('timeout', 'a number of ms > 0', options.timeout);
        timeout = options.timeout;
      }
      if (options.signal !== undefined) {
        if (!(options.signal instanceof AbortSignal)) return invalid('signal', 'an AbortSignal', options.signal);
        if (options.signal.aborted) return Promise.reject(new AbortError(`Pool task "${exportName}" was aborted before it started`));
        signal = options.signal;
      }
      if (options.context !== undefined) context = options.context;
      if (options.onProgress !== undefined) onProgress = options.onProgress;
    }
    const task = new Task(exportName, args as unknown[], transfer, context, onProgress, signal, timeout, performance.now());
    const promise = new Promise<T>((resolve, reject) => {
      task.resolve = resolve as (value: unknown) => void;
      task.reject = reject;
    });
    this.#engine.submit(task);
    return promise;
  }

  /** Counters and the submit -> settle latency histogram (ms). */
  stats(): PoolStats {
    return this.#engine.stats();
  }

  /**
   * Closes the pool: no new tasks. By default waits for queued and running
   * tasks to finish; with `force: true` rejects them with `ClosedError` and
   * terminates the threads at once. Resolves when every thread has exited.
   */
  close(options: { readonly force?: boolean } = {}): Promise<void> {
    if (this.#closing === undefined || options.force === true) this.#closing = this.#engine.close(options.force === true);
    return this.#closing;
  }

  /** `await using pool = new ThreadPool(...)` closes it gracefully at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function invalid(name: string, expected: string, value: unknown): Promise<never> {
  return Promise.reject(new ValidationError(`Expected \`${name}\` to be ${expected}, got ${describe(value)}`, name));
}

export type { PoolStats } from './engine.js';
export type { LatencyStats } from './latency.js';
