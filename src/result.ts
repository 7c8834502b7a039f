/**
 * Result handles. Waiting is by notification: a handle watches its id in the
 * result store and checks the stored state once, never polling.
 */
import type { Clock, TimerHandle } from './clock.js';
import { unpack } from './codec.js';
import { AbortError, ChordError, RevokedError, TaskFailedError, TimeoutError, type ErrorInfo } from './errors.js';
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

/**
 * The app's close, as seen by waiting handles: a plain set of callbacks
 * (one add and one delete per get(), cheaper than EventTarget listeners on
 * the send -> result path).
 */
export class Closing {
  readonly #waiters = new Set<(reason: Error) => void>();
  #reason: Error | undefined;

  get reason(): Error | undefined {
    return this.#reason;
  }

  /** Calls `fn` when the app closes; returns the function that cancels it. */
  on(fn: (reason: Error) => void): () => void {
    this.#waiters.add(fn);
    return () => { this.#waiters.delete(fn); };
  }

  close(reason: Error): void {
    this.#reason = reason;
    for (const fn of [...this.#waiters]) fn(reason);
    this.#waiters.clear();
  }
}

const FINAL: ReadonlySet<TaskState> = new Set(['SUCCESS', 'FAILURE', 'REVOKED']);

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
  get(options: GetOptions = {}): Promise<T> {
    const { transport, clock, closing } = this.#ctx;
    return new Promise<T>((resolve, reject) => {
      let timer: TimerHandle | undefined;
      let done = false;
      const finish = (record: StateRecord | undefined, error?: Error): void => {
        if (done) return;
        if (record !== undefined && !FINAL.has(record.state)) return;
        done = true;
        unwatch();
        if (timer !== undefined) clock.clearTimer(timer);
        options.signal?.removeEventListener('abort', onAbort);
        offClose?.();
        if (error !== undefined) reject(error);
        else settleFromRecord(record as StateRecord, resolve as (v: unknown) => void, reject);
      };
      const onAbort = (): void => finish(undefined, new AbortError(`get() of task ${this.id} was aborted`));
      let offClose: (() => void) | undefined;
      const unwatch = transport.watch(this.id, (event: WatchEvent) => {
        if (event.type === 'state') finish(event.record);
      });
      if (options.signal?.aborted === true) return onAbort();
      if (closing.reason !== undefined) return finish(undefined, closing.reason);
      offClose = closing.on((reason) => finish(undefined, reason));
      options.signal?.addEventListener('abort', onAbort, { once: true });
      if (options.timeout !== undefined) {
        const ms = options.timeout;
        timer = clock.setTimer(() => finish(undefined, new TimeoutError(`Timed out after ${ms} ms waiting for task ${this.id} (${this.name}): it is still queued or running; raise the timeout or check that a worker consumes its queue`, ms)), ms);
      }
      transport.getState(this.id).then((record) => { if (record !== undefined) finish(record); }, (err: unknown) => finish(undefined, err as Error));
    });
  }

  /** The stored state; PENDING when the store does not know the id (yet). */
  async state(): Promise<TaskStateInfo<T>> {
    const record = await this.#ctx.transport.getState(this.id);
    if (record === undefined) return { id: this.id, name: this.name, state: 'PENDING', attempts: 0, createdAt: 0, updatedAt: 0 };
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

  get(options: GetOptions = {}): Promise<unknown[]> {
    return Promise.all(this.results.map((r) => r.get(options)));
  }

  async revoke(): Promise<void> {
    await Promise.all(this.results.map((r) => r.revoke()));
  }
}

function settleFromRecord(record: StateRecord, resolve: (v: unknown) => void, reject: (e: Error) => void): void {
  if (record.state === 'SUCCESS') return resolve(record.result === undefined ? undefined : unpack(record.result));
  if (record.state === 'REVOKED') return reject(new RevokedError(record.id));
  const info: ErrorInfo = record.error ?? { code: 'ERR_TASK_FAILED', name: 'Error', message: 'failed' };
  if (info.code === 'ERR_CHORD') return reject(new ChordError(info.message));
  reject(new TaskFailedError(info, record.name, record.id));
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
  const offClose = closing.on(() => { ended = true; wake?.(); });
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
        offClose();
      }
    },
  };
}
