/**
 * One attempt of a delivery on a worker: its abort state (made lazily: most
 * tasks never read their signal) and the context an inline task sees through
 * `currentTask()`.
 */
import type { TimerHandle } from './clock.js';
import { pack, unpack } from './codec.js';
import type { TaskContext } from './context.js';
import type { Delivery, TaskMessage, Transport } from './transport.js';

export interface Run {
  readonly delivery: Delivery;
  /** Made on first use (a task reading its `signal`, a module task): most tasks never need one. */
  controller: AbortController | undefined;
  /** Why the run was aborted (revoke, timeout, stop), once it was. */
  abortReason: unknown;
  /** Rejects the pending invocation at once, whatever the task function does with its signal. */
  reject: ((reason: unknown) => void) | undefined;
  timer: TimerHandle | undefined;
  done: boolean;
  revoked: boolean;
  /** The context of an inline task, once its function was called. */
  context: TaskContext | undefined;
  /** Neighbours in the worker's set of runs (a {@link LinkedSet}). */
  prev: Run | null;
  next: Run | null;
}

export function signalOf(run: Run): AbortSignal {
  if (run.controller === undefined) {
    run.controller = new AbortController();
    if (run.abortReason !== undefined) run.controller.abort(run.abortReason);
  }
  return run.controller.signal;
}

export function abortRun(run: Run, reason: unknown): void {
  if (run.abortReason !== undefined) return;
  run.abortReason = reason;
  run.controller?.abort(reason);
  run.reject?.(reason);
}

/** The context of an inline task. A class, so its getters live on the prototype, not on each instance. */
export class InlineContext implements TaskContext {
  readonly id: string;
  readonly name: string;
  readonly attempt: number;
  readonly retriesLeft: number;
  readonly #run: Run;
  readonly #transport: Transport;
  #progress: ((value: unknown) => void) | undefined;
  #headers: Record<string, string> | undefined;

  constructor(run: Run, attempt: number, transport: Transport) {
    const message = run.delivery.message;
    this.#run = run;
    this.#transport = transport;
    this.id = message.id;
    this.name = message.name;
    this.attempt = attempt;
    this.retriesLeft = message.retries;
  }

  /** A copy, made on first read: the task may change it without touching the queued message. */
  get headers(): Readonly<Record<string, string>> {
    return (this.#headers ??= { ...this.#run.delivery.message.headers });
  }

  /** Made on first use, and stays bound: `const { progress } = currentTask()` works. */
  get progress(): (value: unknown) => void {
    return (this.#progress ??= progressOf(this.#transport, this.#run));
  }

  get signal(): AbortSignal {
    return signalOf(this.#run);
  }

  get signature(): Readonly<Record<string, unknown>> {
    return signatureOf(this.#run.delivery.message);
  }
}

export function progressOf(transport: Transport, run: Run): (value: unknown) => void {
  const { tag, message } = run.delivery;
  return (value) => transport.progress(tag, message.id, pack(value, 'progress'));
}

/** The signature as plain data, args unpacked (what `currentTask().signature` shows). */
export function signatureOf(message: TaskMessage): Readonly<Record<string, unknown>> {
  const { args, onSuccess: _next, chord: _chord, attempt: _attempt, ...rest } = message;
  return { ...rest, args: unpack(args) };
}
