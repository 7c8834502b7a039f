/**
 * Result handles. Waiting is by notification: a handle watches its id in the
 * result store and checks the stored state once, never polling.
 */
import type { Clock, TimerHandle } from './clock.js';
import { unpack } from './codec.js';
import { AbortError, ChordError, fromErrorInfo, RevokedError, TaskFailedError, TimeoutError, type ErrorInfo } from './errors.js';
import { badTimeout, isDelay } from './options.js';
import { LinkedSet, type Linked } from './linked-set.js';
import type { StateRecord, TaskState, Transport, WatchEvent } from './transport.js';

/** Options of `get()`. */
export interface GetOptions {
  /** Reject with TimeoutError after this many ms of the app's clock. Default: wait forever. */
  readonly timeout?: number;
  /** Reject with AbortError when it fires. */
  readonly signal?: AbortSignal;
}

/** A task's state as `state()` returns it. */
export interface TaskStateInfo<T = unknown> {
  readonly id: string;
  readonly name: string;
  readonly state: TaskState;
  readonly result?: T;
  readonly error?: ErrorInfo;
  readonly attempts: number;
  readonly createdAt: number;
  readonly updatedAt: number;
}

/** What a handle needs from its app. */
export interface HandleContext {
  readonly transport: Transport;
  readonly clock: Clock;
  /** Fires when the app closes: waiting handles reject with its reason. */
  readonly closing: Closing;
}

/** Something that waits until the app closes (a pending `get()`, a progress reader). */
export interface CloseWaiter extends Linked<CloseWaiter> {
  fail(reason: Error): void;
}

/**
 * The app's close, as seen by waiting handles: the waiters carry their own
 * links (see {@link LinkedSet}), so a get() joins and leaves it allocating nothing.
 */
export class Closing {
  readonly #waiters = new LinkedSet<CloseWaiter>();
  #reason: Error | undefined;

  get reason(): Error | undefined {
    return this.#reason;
  }

  /** `waiter.fail(reason)` is called when the app closes, unless it was deleted first. */
  add(waiter: CloseWaiter): void {
    this.#waiters.add(waiter);
  }

  delete(waiter: CloseWaiter): void {
    this.#waiters.delete(waiter);
  }

  close(reason: Error): void {
    this.#reason = reason;
    const waiters = this.#waiters.values();
    this.#waiters.clear();
    for (const waiter of waiters) waiter.fail(reason);
  }
}

const FINAL: ReadonlySet<TaskState> = new Set(['SUCCESS', 'FAILURE', 'REVOKED']);
/** The default of `get()`'s options (shared: a `{}` per call was ~50 bytes a waiting get()). */
const NO_OPTIONS: GetOptions = Object.freeze({});

/** The handle of one task (or of a chain's or chord's last task). */
export class AsyncResult<T = unknown> {
  readonly id: string;
  readonly name: string;
  readonly #ctx: HandleContext;

  constructor(ctx: HandleContext, id: string, name: string) {
    this.#ctx = ctx;
    this.id = id;
    this.name = name;
  }

  /**
   * Resolves with the result on SUCCESS; rejects with TaskFailedError on
   * FAILURE (ChordError for a chord whose member failed), RevokedError on
   * REVOKED, TimeoutError when `timeout` passes first.
   * @example const sum = await (await app.send(add.s(1, 2))).get({ timeout: 5_000 });
   */
  get(options: GetOptions = NO_OPTIONS): Promise<T> {
    const ctx = this.#ctx;
    if (options.timeout !== undefined && !isDelay(options.timeout)) return Promise.reject(badTimeout('get()', options.timeout));
    // A transport with the record at hand (in memory) answers now: a finished task settles the get() from its
    // record, with no waiter. (An aborted signal or a closed app wins: the waiter says so.)
    const atHand = options.signal?.aborted === true || ctx.closing.reason !== undefined ? null : ctx.transport.peekState(this.id);
    if (atHand !== null && atHand !== undefined && FINAL.has(atHand.state)) {
      const error = failureOf(atHand);
      return error === undefined ? Promise.resolve(resultOf(atHand) as T) : Promise.reject(error);
    }
    return new Promise<T>((resolve, reject) => {
      new Waiter(ctx, this.id, this.name, options, resolve as (value: unknown) => void, reject).start(atHand);
    });
  }

  /** The stored state; PENDING when the store does not know the id (yet). */
  async state(): Promise<TaskStateInfo<T>> {
    const record = await this.#ctx.transport.getState(this.id);
    if (record === undefined) return { id: this.id, name: this.name, state: 'PENDING', attempts: 0, createdAt: 0, updatedAt: 0 };
    const missing = withheldResult(record);
    if (missing !== undefined) throw missing;
    const info: { -readonly [K in keyof TaskStateInfo<T>]: TaskStateInfo<T>[K] } = {
      id: record.id, name: record.name, state: record.state, attempts: record.attempts, createdAt: record.createdAt, updatedAt: record.updatedAt,
    };
    if (record.result !== undefined) info.result = unpack(record.result) as T;
    if (record.error !== undefined) info.error = record.error;
    return info;
  }

  /** Not started: it never runs (REVOKED). Running: its AbortSignal fires. */
  async revoke(): Promise<void> {
    await this.#ctx.transport.revoke(this.id);
  }

  /**
   * The values the task passes to `progress()`, in order, ending when it
   * reaches a final state. Values reported before the first read of
   * `progress` are not replayed.
   */
  get progress(): AsyncIterable<unknown> {
    return progressOf(this.#ctx.transport, this.id, this.#ctx.closing);
  }
}

/** The handle of a group: `get()` resolves with every member's result, in member order. */
export class GroupResult {
  readonly results: ReadonlyArray<AsyncResult | GroupResult>;

  constructor(results: ReadonlyArray<AsyncResult | GroupResult>) {
    this.results = results;
  }

  get(options: GetOptions = NO_OPTIONS): Promise<unknown[]> {
    return Promise.all(this.results.map((r) => r.get(options)));
  }

  async revoke(): Promise<void> {
    await Promise.all(this.results.map((r) => r.revoke()));
  }
}

/**
 * One pending `get()`: watches the id, checks the stored state once, and
 * settles on the first of a final state, the timeout, the abort signal or
 * the app's close. One object with its callbacks bound once.
 */
class Waiter implements CloseWaiter {
  prev: CloseWaiter | null = null;
  next: CloseWaiter | null = null;
  readonly #ctx: HandleContext;
  readonly #id: string;
  readonly #name: string;
  readonly #options: GetOptions;
  readonly #resolve: (value: unknown) => void;
  readonly #reject: (reason: Error) => void;
  #unwatch: (() => void) | undefined;
  #timer: TimerHandle | undefined;
  #done = false;
  /**
   * One closure for all it hears: the watch listener's events, the stored state read once, and that read's
   * failure (a waiting get() costs ~600 bytes; each closure is ~56 more).
   */
  readonly #onState = (seen: unknown): void => {
    if (seen === undefined) return; // no record yet
    if (typeof seen === 'object' && seen !== null && !(seen instanceof Error)) {
      if ('type' in seen) {
        const event = seen as WatchEvent;
        return event.type === 'state' ? this.#finish(event.record) : undefined;
      }
      if (typeof (seen as { state?: unknown }).state === 'string') return this.#finish(seen as StateRecord);
    }
    this.#finish(undefined, seen instanceof Error ? seen : new Error(`Reading the state of task ${this.#id} failed: ${String(seen)}`));
  };
  /** Made only for a get() with a signal. */
  #onAbort: (() => void) | undefined;

  constructor(ctx: HandleContext, id: string, name: string, options: GetOptions, resolve: (value: unknown) => void, reject: (reason: Error) => void) {
    this.#ctx = ctx;
    this.#id = id;
    this.#name = name;
    this.#options = options;
    this.#resolve = resolve;
    this.#reject = reject;
  }

  /**
   * `atHand`: the task's record as the transport's peekState gave it in this same turn (not final), so no
   * change can fall between that read and the watch; `null`: none, the stored state is read after watching.
   */
  start(atHand: StateRecord | undefined | null): void {
    const { transport, clock, closing } = this.#ctx;
    const { signal, timeout } = this.#options;
    if (signal !== undefined) {
      this.#onAbort = () => this.#finish(undefined, new AbortError(`get() of task ${this.#id} was aborted`));
      if (signal.aborted) return this.#onAbort();
    }
    if (closing.reason !== undefined) return this.#finish(undefined, closing.reason);
    this.#unwatch = transport.watch(this.#id, this.#onState);
    closing.add(this);
    if (this.#onAbort !== undefined) signal?.addEventListener('abort', this.#onAbort, { once: true });
    if (timeout !== undefined) {
      this.#timer = clock.setTimer(() => this.#finish(undefined, new TimeoutError(`Timed out after ${timeout} ms waiting for task ${this.#id} (${this.#name}): it is still queued or running; raise the timeout or check that a worker consumes its queue`, timeout)), timeout);
    }
    if (atHand === null) transport.getState(this.#id).then(this.#onState, this.#onState);
  }

  /** The app closed. */
  fail(reason: Error): void {
    this.#finish(undefined, reason);
  }

  #finish(record: StateRecord | undefined, error?: Error): void {
    if (this.#done) return;
    if (record !== undefined && !FINAL.has(record.state)) return;
    this.#done = true;
    this.#unwatch?.();
    if (this.#timer !== undefined) this.#ctx.clock.clearTimer(this.#timer);
    if (this.#onAbort !== undefined) this.#options.signal?.removeEventListener('abort', this.#onAbort);
    this.#ctx.closing.delete(this);
    const failure = error ?? failureOf(record as StateRecord);
    if (failure === undefined) this.#resolve(resultOf(record as StateRecord));
    else this.#reject(failure);
  }
}

/**
 * Why a SUCCESS record has no result. A SUCCESS always stores one (`undefined` packs to ''): one without it comes
 * with the reason it is not here (over TCP, a result over this client's maxFrameBytes).
 */
function withheldResult(record: StateRecord): Error | undefined {
  return record.state === 'SUCCESS' && record.result === undefined && record.error !== undefined ? fromErrorInfo(record.error) : undefined;
}

/** What a get() of a task in this final state rejects with; undefined when it resolves (SUCCESS with its result). */
function failureOf(record: StateRecord): Error | undefined {
  if (record.state === 'SUCCESS') return withheldResult(record);
  if (record.state === 'REVOKED') return new RevokedError(record.id);
  const info: ErrorInfo = record.error ?? { code: 'ERR_TASK_FAILED', name: 'Error', message: 'failed' };
  if (info.code === 'ERR_CHORD') return new ChordError(info.message);
  return new TaskFailedError(info, record.name, record.id);
}

function resultOf(record: StateRecord): unknown {
  return record.result === undefined ? undefined : unpack(record.result);
}

function progressOf(transport: Transport, id: string, closing: Closing): AsyncIterable<unknown> {
  const values: unknown[] = [];
  let ended = false;
  let wake: (() => void) | undefined;
  const unwatch = transport.watch(id, (event) => {
    if (event.type === 'progress') values.push(unpack(event.value));
    else if (FINAL.has(event.record.state)) ended = true;
    else return;
    wake?.();
  });
  const onClose: CloseWaiter = { prev: null, next: null, fail: (): void => { ended = true; wake?.(); } };
  if (closing.reason !== undefined) ended = true;
  else closing.add(onClose);
  transport.getState(id).then((r) => { if (r !== undefined && FINAL.has(r.state)) { ended = true; wake?.(); } }, () => undefined);
  return {
    async *[Symbol.asyncIterator]() {
      try {
        for (;;) {
          while (values.length > 0) yield values.shift();
          if (ended) return;
          await new Promise<void>((resolve) => { wake = resolve; });
          wake = undefined;
        }
      } finally {
        unwatch();
        closing.delete(onClose);
      }
    },
  };
}
