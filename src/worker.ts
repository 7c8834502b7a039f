/**
 * A worker: consumes deliveries from its queues, runs up to `concurrency`
 * tasks at once (inline on this event loop, module tasks on a thread pool),
 * and settles each delivery with the outcome the core decides.
 */
import { EventEmitter } from 'node:events';
import type { Clock, TimerHandle } from './clock.js';
import { unpackArgs } from './codec.js';
import { endContext, runInContext, type TaskContext } from './context.js';
import { channels } from './diagnostics.js';
import { ClosedError, ExpiredError, NotRegisteredError, RevokedError, TimeoutError, ValidationError } from './errors.js';
import { RateGates } from './rate-limit.js';
import type { Registry, TaskDef } from './registry.js';
import type { Rng } from './rng.js';
import { LinkedSet } from './linked-set.js';
import { badTimeout, isDelay } from './options.js';
import { abortRun, InlineContext, progressOf, signalOf, signatureOf, type Run } from './task-run.js';
import { DONE, type Consumer, type Delivery, type Outcome, type Transport } from './transport.js';
import { Verdicts } from './verdicts.js';

/** Runs module tasks (on a thread pool). */
export interface ModuleRunner {
  run(def: Extract<TaskDef, { kind: 'module' }>, args: unknown[], context: Omit<TaskContext, 'progress' | 'signal'>, signal: AbortSignal, onProgress: (value: unknown) => void): Promise<unknown>;
  close(): Promise<void>;
}

/** Worker options, resolved. */
export interface WorkerSettings {
  readonly queues: readonly string[];
  readonly concurrency: number;
  readonly threads: number;
  readonly prefetch: number;
  readonly ignoreUnknown: boolean;
}

/** What a worker needs from its app. */
export interface WorkerHost {
  readonly transport: Transport;
  readonly clock: Clock;
  readonly registry: Registry;
  readonly rng: Rng;
  readonly resultsExpireIn: number;
  ready(): Promise<void>;
  moduleRunner(threads: number): ModuleRunner;
}

/** Options of `worker.stop()`. */
export interface StopOptions {
  /** Finish running tasks before resolving (default true). */
  readonly graceful?: boolean;
  /** ms to wait for running tasks; past it they are aborted and handed back. Default: no limit. */
  readonly timeout?: number;
}

export interface TaskEvent { readonly id: string; readonly name: string; readonly attempt: number }

/**
 * Events: `task:started` (TaskEvent), `task:succeeded` (TaskEvent & { result }),
 * `task:failed` (TaskEvent & { error }), `task:retry` (TaskEvent & { error, delay }): the last three as the
 * outcome is decided, before the transport takes it (one refused as too large to send: task:failed follows),
 * `error` (transport errors; without a listener they go to `NODE_DEBUG=millwright`).
 */
export class Worker extends EventEmitter {
  readonly #host: WorkerHost;
  readonly #settings: WorkerSettings;
  #consumer: Consumer | undefined;
  #state: 'new' | 'running' | 'stopping' | 'stopped' = 'new';
  readonly #running = new LinkedSet<Run>();
  readonly #backlog: Delivery[] = [];
  readonly #revoked = new Set<string>();
  #idle: (() => void) | undefined;
  /** start() in progress or done: stop() waits for it, so a consumer it registers late is cancelled too. */
  #starting: Promise<void> | undefined;
  /** The stop in progress or done: a later stop() waits for the same one. */
  #stopping: Promise<void> | undefined;
  /** Ends the graceful wait of the stop in progress (a later stop({ graceful: false }) or its timeout). */
  #force: (() => void) | undefined;
  #runner: ModuleRunner | undefined;
  /** Settles sent to the transport and not yet confirmed. */
  #settling = 0;
  /** True while #next fills free slots (a task ending inside that loop leaves the filling to it). */
  #filling = false;
  /** Deliveries of tasks with a `rateLimit`, held back until their window allows a start. */
  readonly #limits: RateGates<Delivery>;
  /** Decides outcomes and tells task events. */
  readonly #verdicts: Verdicts;
  // Bound once. (A settle the transport did not complete synchronously still needs one closure, for #settleRefused.)
  readonly #onSettled = (): void => this.#settled();
  readonly #onSettleError = (err: unknown): void => { this.#verdicts.report(err); this.#settled(); };
  readonly #onError = (err: unknown): void => this.#verdicts.report(err);

  /** @internal Made by `app.worker()`. */
  constructor(host: WorkerHost, settings: WorkerSettings) {
    super();
    this.#host = host;
    this.#settings = settings;
    this.#verdicts = new Verdicts(this, host.clock, host.resultsExpireIn, host.rng);
    this.#limits = new RateGates(host.clock, (delivery) => this.#start(delivery), () => this.#running.size < settings.concurrency);
  }

  /** Tasks running now. */
  get active(): number {
    return this.#running.size;
  }

  /** Starts consuming. Resolves once the transport accepted the consumer. */
  async start(): Promise<void> {
    if (this.#state !== 'new') throw new ClosedError(this.#state === 'running' ? 'This worker is already started; it' : 'Worker');
    this.#state = 'running';
    return (this.#starting = this.#consume());
  }

  async #consume(): Promise<void> {
    await this.#host.ready();
    const s = this.#settings;
    this.#consumer = await this.#host.transport.consume(
      { queues: s.queues, prefetch: s.concurrency + s.prefetch, names: s.ignoreUnknown ? this.#host.registry.names() : null },
      { deliver: (d) => this.#onDelivery(d), revoked: (id) => this.#onRevoked(id) },
    );
  }

  /**
   * Stops taking tasks. Graceful (default): waits for running tasks, up to
   * `timeout`; then (or at once when not graceful) aborts the rest, whose
   * signals fire, and hands them back to the broker for another worker.
   * A second call resolves with the first; `graceful: false` (or a `timeout`)
   * in it cuts the first one's graceful wait short (a second Ctrl-C).
   */
  async stop(options: StopOptions = {}): Promise<void> {
    if (options.timeout !== undefined && !isDelay(options.timeout)) throw badTimeout('stop()', options.timeout);
    if (this.#state === 'new') { this.#state = 'stopped'; return; }
    if (this.#stopping === undefined) return (this.#stopping = this.#stop(options));
    if (this.#force !== undefined) {
      if (options.graceful === false) this.#force();
      else if (options.timeout !== undefined) void raceTimer(this.#stopping, this.#host.clock, options.timeout).then(() => this.#force?.());
    }
    return this.#stopping;
  }

  async #stop(options: StopOptions): Promise<void> {
    this.#state = 'stopping';
    const forced = new Promise<void>((resolve) => { this.#force = resolve; });
    const transport = this.#host.transport;
    const parked = this.#limits.close();
    // Each release goes to the front of its queue: hand back the newest first to keep FIFO order.
    const handBack = [...this.#backlog.splice(0), ...parked].reverse();
    await Promise.all(handBack.map((d) => this.#guard(transport.release(d.tag, 0))));
    if (options.graceful !== false && this.#running.size > 0) {
      const idle = Promise.race([this.#waitIdle(), forced]);
      if (options.timeout === undefined) await idle;
      else await raceTimer(idle, this.#host.clock, options.timeout);
    }
    this.#force = undefined;
    for (const run of this.#running.values()) {
      run.done = true;
      this.#running.delete(run);
      if (run.timer !== undefined) this.#host.clock.clearTimer(run.timer);
      abortRun(run, new ClosedError('The worker was stopped and'));
      await this.#guard(transport.release(run.delivery.tag, 0));
    }
    await this.#waitIdle();
    // Stopped while start() was still registering its consumer: wait for it, or it would stay registered.
    await this.#starting?.then(undefined, () => undefined);
    await this.#guard(this.#consumer?.cancel());
    await this.#runner?.close();
    this.#state = 'stopped';
  }

  #onDelivery(delivery: Delivery): void {
    if (this.#state !== 'running') {
      void this.#guard(this.#host.transport.release(delivery.tag, 0));
      return;
    }
    if (this.#running.size < this.#settings.concurrency) this.#admit(delivery);
    else this.#backlog.push(delivery);
  }

  /** Starts a delivery now, or holds it back until its task's rate limit allows a start. */
  #admit(delivery: Delivery): void {
    const limit = this.#host.registry.get(delivery.message.name)?.options.rateLimit;
    if (limit === undefined) this.#start(delivery);
    else this.#limits.admit(delivery.message.name, limit, delivery);
  }

  #onRevoked(id: string): void {
    this.#revoked.add(id);
    for (const run of this.#running.values()) {
      if (run.delivery.message.id === id && !run.done) {
        run.revoked = true;
        abortRun(run, new RevokedError(id));
      }
    }
  }

  #start(delivery: Delivery): void {
    const run: Run = { delivery, controller: undefined, abortReason: undefined, reject: undefined, timer: undefined, done: false, revoked: false, context: undefined, prev: null, next: null };
    this.#running.add(run);
    let work: Promise<void> | undefined;
    try {
      work = this.#execute(run);
    } catch (err) {
      this.#verdicts.report(err);
      // Never leave a delivery unsettled: hand it back for another attempt.
      if (!run.done) { run.done = true; void this.#guard(this.#host.transport.release(delivery.tag, 0)); }
    }
    // A synchronous task finishes here, without a promise of its own.
    if (work === undefined) return this.#next(run);
    this.#host.clock.track(work.then(() => this.#next(run), (err: unknown) => { this.#verdicts.report(err); this.#next(run); }));
  }

  #next(run: Run): void {
    // The worker no longer waits for it (also when it timed out or was revoked and its promise never settles).
    if (run.context !== undefined) endContext(run.context);
    this.#running.delete(run);
    // A synchronous task started from here ends inside #admit and calls #next again: that inner call only frees its
    // slot, and this loop fills it. (Filling from each inner call nested one call per task of the backlog: a few
    // thousand synchronous tasks in it overflowed the stack and left the worker stuck with one task "running".)
    if (this.#state === 'running' && !this.#filling) {
      this.#filling = true;
      try {
        for (;;) {
          // Held back by a rate limit, they come first: then the backlog, into every free slot (a rate-limited
          // delivery admitted from it waits in its gate without taking one).
          if (this.#limits.held > 0) this.#limits.resume();
          if (this.#state !== 'running' || this.#running.size >= this.#settings.concurrency || this.#backlog.length === 0) break;
          this.#admit(this.#backlog.shift() as Delivery);
        }
      } finally {
        this.#filling = false;
      }
    }
    if (this.#running.size === 0 && this.#settling === 0) this.#idle?.();
  }

  /** Runs one delivery. Returns a promise only when the task is asynchronous. */
  #execute(run: Run): Promise<void> | undefined {
    const { message, tag } = run.delivery;
    const { transport, clock, registry } = this.#host;
    const attempt = message.attempt + 1;
    const def = registry.get(message.name);
    if (def === undefined) {
      if (this.#settings.ignoreUnknown) return this.#guard(transport.release(tag, 0));
      return this.#settle(run, this.#verdicts.failedFinally(message, attempt, new NotRegisteredError(message.name)));
    }
    if (this.#revoked.has(message.id)) return this.#settle(run, this.#verdicts.revoked(message, attempt));
    if (message.expires !== undefined && clock.now() > message.expires) return this.#settle(run, this.#verdicts.failedFinally(message, attempt, new ExpiredError(message.id)));
    if (this.listenerCount('task:started') > 0 || channels.started.hasSubscribers) this.#verdicts.tell('task:started', channels.started, { id: message.id, name: message.name, attempt });
    if (message.timeout !== undefined) {
      const ms = message.timeout;
      run.timer = clock.setTimer(() => abortRun(run, new TimeoutError(`Task ${message.name} (${message.id}) timed out after ${ms} ms (attempt ${attempt})`, ms)), ms);
    }
    let result: unknown;
    try {
      result = this.#call(def, run, attempt);
    } catch (err) {
      return this.#settle(run, this.#verdicts.failure(message, attempt, err));
    }
    if (typeof (result as PromiseLike<unknown> | null)?.then !== 'function') return this.#settle(run, this.#verdicts.success(message, attempt, result));
    // STARTED is stored only for a task still running once its call returned: a synchronous one settles in this
    // same turn, and nothing could have read a STARTED state in between (saves a record and a store write per task).
    // Not awaited: a transport keeps the order of one client's requests, so STARTED lands before the outcome.
    const started = transport.setState({ id: message.id, name: message.name, state: 'STARTED', attempts: attempt, createdAt: message.createdAt, updatedAt: clock.now() });
    if (started !== DONE) started.then(undefined, this.#onError);
    return new Promise<unknown>((resolve, reject) => {
      run.reject = reject;
      (result as PromiseLike<unknown>).then(resolve, reject);
    }).then(
      (value) => { if (!run.done) this.#settle(run, run.revoked ? this.#verdicts.revoked(message, attempt) : this.#verdicts.success(message, attempt, value)); },
      (err: unknown) => { if (!run.done) this.#settle(run, run.revoked ? this.#verdicts.revoked(message, attempt) : this.#verdicts.failure(message, attempt, err)); },
    );
  }

  /** Calls the task function (inline, in its context) or hands it to the thread pool (module task). */
  #call(def: TaskDef, run: Run, attempt: number): unknown {
    const message = run.delivery.message;
    const args = unpackArgs(message.args);
    const transport = this.#host.transport;
    if (def.kind === 'inline') {
      const context = new InlineContext(run, attempt, transport);
      run.context = context;
      return runInContext(context, def.fn, args);
    }
    this.#runner ??= this.#host.moduleRunner(this.#settings.threads);
    const data = { id: message.id, name: message.name, attempt, retriesLeft: message.retries, headers: { ...message.headers }, signature: signatureOf(message) };
    const progress = progressOf(transport, run);
    // Called from the pool's message handler: a throw there would escape to the process and lose the reply batch.
    const onProgress = (value: unknown): void => { try { progress(value); } catch (err) { this.#verdicts.report(err); } };
    return this.#runner.run(def, args, data, signalOf(run), onProgress);
  }

  /** Applies the outcome. The run's slot frees at once; stop() waits for outstanding settles. */
  #settle(run: Run, outcome: Outcome): undefined {
    run.done = true;
    // A revocation is told to the holder of a delivery: once that delivery is settled, it is spent.
    if (this.#revoked.size > 0) this.#revoked.delete(run.delivery.message.id);
    if (run.timer !== undefined) this.#host.clock.clearTimer(run.timer);
    this.#settling++;
    const settled = this.#host.transport.settle(run.delivery.tag, outcome);
    if (settled === DONE) this.#settled();
    else settled.then(this.#onSettled, (err: unknown) => this.#settleRefused(run, outcome, err));
    return undefined;
  }

  /**
   * The transport refused the outcome. A ValidationError means it cannot carry
   * it (over TCP: a frame over the broker's maxFrameBytes, e.g. a huge result);
   * left unsettled, the task would be redelivered and refused again forever,
   * so it fails instead, with the reason. Anything else is reported.
   */
  #settleRefused(run: Run, outcome: Outcome, err: unknown): void {
    const message = run.delivery.message;
    const isFailure = outcome.records.some((r) => r.id === message.id && r.state === 'FAILURE');
    if (!(err instanceof ValidationError) || isFailure) return this.#onSettleError(err);
    const failure = this.#verdicts.failedFinally(message, message.attempt + 1, new ValidationError(`The outcome of task ${message.name} (${message.id}) could not be sent: ${err.message}`, err.path));
    this.#host.transport.settle(run.delivery.tag, failure).then(this.#onSettled, this.#onSettleError);
  }

  #settled(): void {
    this.#settling--;
    if (this.#running.size === 0 && this.#settling === 0) this.#idle?.();
  }

  #waitIdle(): Promise<void> {
    if (this.#running.size === 0 && this.#settling === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const previous = this.#idle;
      this.#idle = () => { previous?.(); this.#idle = undefined; resolve(); };
    });
  }

  async #guard(work: Promise<unknown> | undefined): Promise<void> {
    try { await work; } catch (err) { this.#verdicts.report(err); }
  }
}

function raceTimer(work: Promise<void>, clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = clock.setTimer(resolve, ms);
    const done = (): void => { clock.clearTimer(timer); resolve(); };
    void work.then(done, done);
  });
}
