/**
 * The seam between the pool engine and a thread. The engine only ever talks
 * to a {@link ThreadHandle}; {@link workerThreadFactory} makes real
 * `worker_threads` ones, and unit tests pass a fake factory so queueing,
 * crash replacement and abort-terminates-thread run in milliseconds.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker, type ResourceLimits, type TransferListItem } from 'node:worker_threads';
import type { ThreadData } from './protocol.js';

/** What a thread reports to the engine. */
export interface ThreadEvents {
  /** A reply batch (see `protocol.ts`), not yet validated. */
  message(data: unknown): void;
  /** The thread threw outside a task or ran out of memory; `exit` follows. */
  error(err: Error): void;
  /** The thread is gone, after delivering every message it posted. */
  exit(code: number): void;
}

/** One pool thread, as the engine sees it. */
export interface ThreadHandle {
  /** Sends a batch (see `protocol.ts`). Throws if a value cannot be cloned. */
  post(message: unknown[], transfer: readonly TransferListItem[]): void;
  /** How many tasks the thread has started so far, in arrival order. */
  started(): number;
  /** Stops the thread now, whatever it runs; `exit` follows. */
  terminate(): void;
  /** Lets the thread keep the process alive (while it has work) or not (idle). */
  ref(): void;
  unref(): void;
}

/** Makes a thread that reports to `events`. */
export type ThreadFactory = (events: ThreadEvents) => ThreadHandle;

/** What the real factory needs to start a thread. */
export interface WorkerThreadOptions {
  /** `file:` URL of the task module. */
  readonly module: string;
  readonly resourceLimits?: ResourceLimits | undefined;
}

/** A factory of real `worker_threads` threads running `thread-entry.js`. */
export function workerThreadFactory(options: WorkerThreadOptions): ThreadFactory {
  const entry = threadEntryUrl();
  return (events) => new WorkerThread(entry, options, events);
}

class WorkerThread implements ThreadHandle {
  readonly #worker: Worker;
  readonly #started: Int32Array;

  constructor(entry: URL, options: WorkerThreadOptions, events: ThreadEvents) {
    this.#started = new Int32Array(new SharedArrayBuffer(4));
    const workerData: ThreadData = { module: options.module, started: this.#started };
    this.#worker = new Worker(entry, {
      workerData,
      ...(options.resourceLimits === undefined ? {} : { resourceLimits: options.resourceLimits }),
    });
    this.#worker.on('message', (data: unknown) => events.message(data));
    this.#worker.on('error', (err: Error) => events.error(err));
    this.#worker.on('exit', (code: number) => events.exit(code));
  }

  post(message: unknown[], transfer: readonly TransferListItem[]): void {
    if (transfer.length === 0) this.#worker.postMessage(message);
    else this.#worker.postMessage(message, transfer);
  }

  started(): number {
    return Atomics.load(this.#started, 0);
  }

  terminate(): void {
    // The returned promise settles with the exit code; the `exit` event reports it too.
    this.#worker.terminate().catch(() => undefined);
  }

  ref(): void {
    this.#worker.ref();
  }

  unref(): void {
    this.#worker.unref();
  }
}

let cachedEntry: URL | undefined;

/**
 * Where `thread-entry.js` is: next to this file when running compiled code
 * from `dist/`, else (TypeScript sources run by vitest) the compiled copy in
 * `<repo>/dist/src/pool/`, which `npm test` builds first.
 */
export function threadEntryUrl(): URL {
  if (cachedEntry !== undefined) return cachedEntry;
  const beside = new URL('./thread-entry.js', import.meta.url);
  if (existsSync(fileURLToPath(beside))) return (cachedEntry = beside);
  const built = new URL('../../dist/src/pool/thread-entry.js', import.meta.url);
  if (existsSync(fileURLToPath(built))) return (cachedEntry = built);
  throw new Error(`Cannot find the pool's thread entry: looked for ${fileURLToPath(beside)} and ${fileURLToPath(built)}; run \`npm run build\` first`);
}
