/**
 * The thread side of the pool: imports the user's module once, then runs the
 * tasks of each incoming batch in order and replies with batched results.
 * Runs inside a `worker_threads` Worker started by `thread-handle.ts`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { TransferListItem } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { pack } from '../codec.js';
import { runInContext, type TaskContext } from '../context.js';
import { AbortError, ModuleError, TimeoutError, toErrorInfo } from '../errors.js';
import { isMoved } from './move.js';
import {
  ABORT_TIMEOUT, OP_ABORT, OP_RUN, REPLY_STRIDE, RUN_STRIDE, ST_ERROR, ST_OK, ST_PROGRESS, ST_RELEASED,
  type ThreadData, type WireContext,
} from './protocol.js';

/** A batch running longer than this reports what is done so far, so the pool can refill the thread. */
const FLUSH_AFTER_MS = 0.5;

type TaskFn = (...args: unknown[]) => unknown;

const port = parentPort;
if (port === null) throw new Error('thread-entry.js must run inside a worker thread started by ThreadPool');
const data = workerData as ThreadData;
const started = data.started;
let startedCount = 0;

let exportsOf: Record<string, unknown> = {};
let loadError: ModuleError | undefined;
try {
  exportsOf = (await import(data.module)) as Record<string, unknown>;
} catch (err) {
  const reason = err instanceof Error ? err.message : String(err);
  loadError = new ModuleError(`Could not load the pool module ${data.module}: ${reason}. Check the \`module\` option of ThreadPool (an ESM file path or file: URL)`);
  if (err instanceof Error && err.stack !== undefined) loadError.stack = `${loadError.name}: ${loadError.message}\n${err.stack}`;
}

/** Async tasks still pending, by slot; the controller is there for context tasks. */
const pending = new Map<number, AbortController | null>();
/**
 * The task (its start number) each slot was last given to. A task released after an abort may still settle or report
 * progress later, when its slot already holds the next task: checked against this, it is ignored, not taken for that one.
 */
const owners: number[] = [];

let out: unknown[] = [0];
let outTransfer: TransferListItem[] = [];
let flushQueued = false;

// process.exit() in a task (or a crash) ends the thread mid-batch: send the results of the
// tasks that finished before it, so only the task that was running fails.
process.on('exit', flush);

port.on('message', (message: unknown[]) => {
  if (message[0] === OP_RUN) runBatch(message);
  else if (message[0] === OP_ABORT) abortTask(message[1] as number, message[2] as number);
});

function runBatch(message: unknown[]): void {
  const t0 = performance.now();
  let mark = t0;
  for (let i = 1; i < message.length; i += RUN_STRIDE) {
    runTask(message[i] as number, message[i + 1] as string, message[i + 2] as unknown[], message[i + 3] as WireContext | 0);
    if (i + RUN_STRIDE < message.length && out.length > 1) {
      const now = performance.now();
      if (now - mark > FLUSH_AFTER_MS) {
        out[0] = (out[0] as number) + (now - mark);
        mark = now;
        flush();
      }
    }
  }
  out[0] = (out[0] as number) + (performance.now() - mark);
  if (out.length > 1) flush();
}

function runTask(slot: number, name: string, args: unknown[], context: WireContext | 0): void {
  const run = ++startedCount;
  Atomics.store(started, 0, run);
  owners[slot] = run;
  const fn = lookup(name);
  if (typeof fn !== 'function') {
    pushError(slot, fn);
    return;
  }
  let controller: AbortController | null = null;
  let result: unknown;
  try {
    if (context === 0) {
      result = fn(...args);
    } else {
      controller = new AbortController();
      pending.set(slot, controller); // progress() may be called before fn returns
      const ctx = makeContext(slot, run, context, controller.signal);
      result = runInContext(ctx, fn as (...a: unknown[]) => unknown, args);
    }
  } catch (err) {
    pending.delete(slot);
    pushError(slot, err);
    return;
  }
  if (typeof result === 'object' && result !== null && typeof (result as PromiseLike<unknown>).then === 'function') {
    pending.set(slot, controller);
    (result as PromiseLike<unknown>).then((value) => settleAsync(slot, run, ST_OK, value), (err: unknown) => settleAsync(slot, run, ST_ERROR, err));
  } else {
    pending.delete(slot);
    pushResult(slot, result);
  }
}

function lookup(name: string): TaskFn | ModuleError {
  if (loadError !== undefined) return loadError;
  const fn = exportsOf[name];
  if (typeof fn === 'function') return fn as TaskFn;
  const names = Object.keys(exportsOf).filter((key) => typeof exportsOf[key] === 'function');
  return new ModuleError(`The pool module ${data.module} has no exported function \`${name}\` (exported functions: ${names.length > 0 ? names.join(', ') : 'none'})`);
}

function makeContext(slot: number, run: number, wire: WireContext, signal: AbortSignal): TaskContext {
  return {
    id: wire.id, name: wire.name, attempt: wire.attempt, retriesLeft: wire.retriesLeft,
    headers: wire.headers, signature: wire.signature, signal,
    progress(value: unknown): void {
      // Checked here, as an inline task's progress() does: the task gets the ValidationError. (Found on the main
      // thread instead, it was thrown out of the pool's message handler: the process crashed and the batch was lost.)
      pack(value, 'progress');
      if (!pending.has(slot) || owners[slot] !== run) return; // finished or released: late progress is dropped
      out.push(slot, ST_PROGRESS, value);
      queueFlush();
    },
  };
}

function settleAsync(slot: number, run: number, status: number, value: unknown): void {
  if (!pending.has(slot) || owners[slot] !== run) return; // released after an abort: the main side no longer waits
  pending.delete(slot);
  if (status === ST_OK) pushResult(slot, value);
  else pushError(slot, value);
  queueFlush();
}

function abortTask(slot: number, reason: number): void {
  if (!pending.has(slot)) return; // already finished: its result is on its way
  const controller = pending.get(slot);
  pending.delete(slot);
  controller?.abort(reason === ABORT_TIMEOUT ? new TimeoutError('The task timed out', 0) : new AbortError('The task was aborted'));
  out.push(slot, ST_RELEASED, 0);
  queueFlush();
}

function pushResult(slot: number, value: unknown): void {
  if (isMoved(value)) {
    out.push(slot, ST_OK, value.value);
    for (const item of value.transferList) outTransfer.push(item);
  } else {
    out.push(slot, ST_OK, value);
  }
}

function pushError(slot: number, err: unknown): void {
  out.push(slot, ST_ERROR, toErrorInfo(err));
}

function queueFlush(): void {
  if (flushQueued) return;
  flushQueued = true;
  queueMicrotask(flush);
}

function flush(): void {
  flushQueued = false;
  if (out.length <= 1) return;
  const message = out;
  const transfer = outTransfer;
  out = [0];
  outTransfer = [];
  try {
    port?.postMessage(message, transfer);
  } catch {
    postOneByOne(message, transfer);
  }
}

/** A value in the batch could not be cloned: send entries one by one, failing only the bad ones. */
function postOneByOne(message: unknown[], transfer: TransferListItem[]): void {
  for (let i = 1; i < message.length; i += REPLY_STRIDE) {
    const slot = message[i] as number;
    const status = message[i + 1] as number;
    const value = message[i + 2];
    try {
      port?.postMessage([i === 1 ? message[0] : 0, slot, status, value], transfer.filter((item) => holds(value, item)));
    } catch (err) {
      if (status === ST_PROGRESS) continue; // a progress value that cannot be sent is dropped
      const reason = err instanceof Error ? err.message : String(err);
      port?.postMessage([0, slot, ST_ERROR, toErrorInfo(new TypeError(`The task's result could not be sent to the main thread: ${reason}. Return plain data (JSON values, Uint8Array, ArrayBuffer)`))]);
    }
  }
}

function holds(value: unknown, item: TransferListItem): boolean {
  if (value === item) return true;
  return ArrayBuffer.isView(value) && value.buffer === item;
}
