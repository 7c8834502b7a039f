/**
 * The App: task registry, producer and worker factory over one transport.
 * The composition root: the only `src/` file that imports a transport (the
 * in-memory default).
 */
import { availableParallelism } from 'node:os';
import { debuglog } from 'node:util';
import { MemoryTransport } from '../transports/memory/memory-transport.js';
import { isBackoff } from './backoff.js';
import { systemClock, type Clock } from './clock.js';
import { channels } from './diagnostics.js';
import { ClosedError, ValidationError } from './errors.js';
import { createModuleRunner } from './module-runner.js';
import { checkOptions, rules } from './options.js';
import { Registry, type ModuleTaskSpec, type TaskOptions } from './registry.js';
import { isRateLimit } from './rate-limit.js';
import { AsyncResult, Closing, GroupResult, type HandleContext } from './result.js';
import { Schedules, type ScheduleOptions } from './schedules.js';
import { defaultRng, type Rng } from './rng.js';
import { isSignature, signature, withOptions, type Chain, type Chord, type Group, type PrefixOf, type Signature, type SignatureOptions, type TaskRef, type Workflow } from './signature.js';
import { DONE, type Batch, type TaskMessage, type Transport } from './transport.js';
import { Worker, type ModuleRunner, type WorkerHost } from './worker.js';
import { compile, compileSignature, taskIds, type CompileContext, type Compiled, type HandleShape } from './workflow.js';

const log = debuglog('millwright');

/** Options of `new App()`. */
export interface AppOptions {
  /** Broker and result store. Default: a new `MemoryTransport`. */
  readonly transport?: Transport;
  /** Queue of signatures that name none. Default `"default"`. */
  readonly defaultQueue?: string;
  /** Time source. Default: the real clock; pass a `FakeClock` in tests. */
  readonly clock?: Clock;
  /** ms a finished task's state and result are kept. Default 24 h. */
  readonly resultsExpireIn?: number;
  /** Random source for backoff jitter, in [0, 1). Default `Math.random`. */
  readonly rng?: Rng;
}

/** Options of `app.worker()`. */
export interface WorkerOptions {
  /** Queues to consume. Default: `[defaultQueue]`. */
  readonly queues?: readonly string[];
  /** Tasks in flight at once. Default 10. */
  readonly concurrency?: number;
  /** Threads of the pool that runs module tasks, started on the first one. Default `os.availableParallelism()`. */
  readonly threads?: number;
  /** Deliveries held beyond `concurrency`, ahead of execution. Default 0 in memory; raise it over TCP. */
  readonly prefetch?: number;
  /** Take only the tasks this worker's app registered, instead of failing the others (they wait, set aside, for a worker that registers them). Default false. */
  readonly ignoreUnknown?: boolean;
}

const APP_RULES = {
  transport: rules.methods('a Transport', [
    'connect', 'close', 'publish', 'consume', 'settle', 'release', 'setState', 'getState', 'peekState', 'watch', 'progress', 'revoke',
  ]),
  defaultQueue: rules.string, clock: rules.clock, resultsExpireIn: rules.number(0), rng: rules.fn,
};
const WORKER_RULES = {
  queues: rules.stringArray, concurrency: rules.int(1), threads: rules.int(1, 1024), prefetch: rules.int(0), ignoreUnknown: rules.boolean,
};
const SCHEDULE_RULES = { tz: rules.string };
const TASK_RULES = {
  queue: rules.string, priority: rules.int(Number.MIN_SAFE_INTEGER), retries: rules.int(0),
  backoff: { expect: 'an object { type: "fixed" | "exponential" | "fibonacci", delay: ms >= 0, maxDelay?: ms >= 0, jitter?: boolean }', test: isBackoff },
  timeout: rules.number(1),
  rateLimit: { expect: 'an object { max: an integer >= 1, per: a finite number of ms > 0 }', test: isRateLimit },
};

/**
 * @example
 * const app = new App();
 * const add = app.task('add', (a: number, b: number) => a + b);
 * await app.worker().start();
 * const sum = await (await app.send(add.s(1, 2))).get(); // 3
 */
export class App {
  readonly #transport: Transport;
  readonly #clock: Clock;
  readonly #defaultQueue: string;
  readonly #resultsExpireIn: number;
  readonly #rng: Rng;
  readonly #registry = new Registry();
  readonly #workers = new Set<Worker>();
  readonly #connecting: Promise<void>;
  readonly #host: WorkerHost;
  readonly #schedules: Schedules;
  /** Aborted by close(): pending get() calls reject with ClosedError. */
  readonly #closing = new Closing();
  readonly #handles: HandleContext;
  #connected = false;
  #closed = false;
  /** The close in progress or done: a second close() waits for the same one. */
  #shutdown: Promise<void> | undefined;

  constructor(options: AppOptions = {}) {
    checkOptions('App', options, APP_RULES);
    this.#clock = options.clock ?? systemClock;
    this.#transport = options.transport ?? new MemoryTransport({ clock: this.#clock });
    this.#defaultQueue = options.defaultQueue ?? 'default';
    this.#compiling.defaultQueue = this.#defaultQueue;
    this.#resultsExpireIn = options.resultsExpireIn ?? 24 * 60 * 60 * 1000;
    this.#rng = options.rng ?? defaultRng;
    this.#connecting = this.#transport.connect({ clock: this.#clock, resultsExpireIn: this.#resultsExpireIn }).then(() => { this.#connected = true; });
    this.#connecting.catch(() => undefined);
    this.#handles = { transport: this.#transport, clock: this.#clock, closing: this.#closing };
    this.#schedules = new Schedules(this.#clock, (sig) => this.send(sig), (err) => log('schedule tick failed: %s', String(err)));
    const app = this;
    this.#host = {
      transport: this.#transport, clock: this.#clock, registry: this.#registry, rng: this.#rng, resultsExpireIn: this.#resultsExpireIn,
      ready: () => app.#ready(),
      moduleRunner: (threads: number): ModuleRunner => createModuleRunner(threads),
    };
  }

  /** The app's clock. */
  get clock(): Clock {
    return this.#clock;
  }

  /** The app's transport. */
  get transport(): Transport {
    return this.#transport;
  }

  /**
   * Registers a task: an inline function, or `{ module, export }` to run on the worker's thread pool.
   * Names are unique per app.
   */
  task<A extends unknown[], R>(name: string, fn: (...args: A) => R, options?: TaskOptions): TaskRef<A, Awaited<R>>;
  task<A extends unknown[] = unknown[], R = unknown>(name: string, spec: ModuleTaskSpec, options?: TaskOptions): TaskRef<A, R>;
  task(name: string, impl: ((...args: never[]) => unknown) | ModuleTaskSpec, options: TaskOptions = {}): TaskRef<unknown[], unknown> {
    this.#live();
    checkOptions(`task "${String(name)}"`, options, TASK_RULES);
    this.#registry.add(name, impl, Object.freeze({ ...options }));
    return {
      name,
      s: (...args: unknown[]) => withOptions(name, args, EMPTY_OPTIONS),
      with: (opts: SignatureOptions, ...args: unknown[]) => signature(name, args, opts),
    } as TaskRef<unknown[], unknown>;
  }

  /**
   * Sends a signature, chain, group or chord. Resolves once the transport
   * accepted it, with its result handle. A signature whose explicit `id` the
   * result store already knows is not enqueued again.
   */
  send<S extends Signature>(sig: S): Promise<AsyncResult<ResultOf<S>>>;
  send(group: Group): Promise<GroupResult>;
  send<W extends Chain | Chord>(workflow: W): Promise<HandleOf<W>>;
  send(workflow: Workflow): Promise<AsyncResult | GroupResult>;
  send(workflow: Workflow): Promise<AsyncResult | GroupResult> {
    // Not an async function: a transport that accepted the batch synchronously (returning DONE) costs no await.
    let batch: Batch;
    let shape: HandleShape | undefined; // undefined: a lone signature, whose handle is made from its message
    try {
      this.#live();
      if (!this.#connected) return this.#ready().then(() => this.send(workflow));
      if (isSignature(workflow)) batch = compileSignature(workflow, this.#compileContext());
      else ({ batch, handle: shape } = this.#compile(workflow));
    } catch (err) {
      return Promise.reject(err);
    }
    let published: Promise<void>;
    try {
      published = this.#transport.publish(batch);
    } catch (err) {
      return Promise.reject(err); // a transport that throws instead of rejecting
    }
    if (published === DONE) return Promise.resolve(this.#sent(batch, shape));
    return published.then(() => this.#sent(batch, shape));
  }

  #sent(batch: Batch, shape: HandleShape | undefined): AsyncResult | GroupResult {
    if (channels.sent.hasSubscribers) channels.sent.publish({ ids: taskIds(batch).map((t) => t.id) });
    if (shape !== undefined) return this.#handle(shape);
    const message = batch.tasks[0] as TaskMessage;
    return new AsyncResult(this.#handles, message.id, message.name);
  }

  /** A handle for a task id sent elsewhere (another process, an earlier run). */
  result<R = unknown>(id: string, name = ''): AsyncResult<R> {
    if (typeof id !== 'string' || id === '') throw new ValidationError('Expected a task id (a non-empty string)', 'id');
    return new AsyncResult<R>(this.#handles, id, name);
  }

  /**
   * Sends a fresh copy of `sig` on every tick of a cron expression (5 fields,
   * or 6 with leading seconds; UTC unless `tz`). However many apps register
   * the same name against one transport, each tick runs once.
   * @example app.schedule('nightly-report', '0 3 * * *', report.s('daily'), { tz: 'Europe/Paris' });
   */
  schedule(name: string, expression: string, sig: Signature, options: ScheduleOptions = {}): void {
    this.#live();
    checkOptions('schedule', options, SCHEDULE_RULES);
    this.#schedules.add(name, expression, sig, options, (s) => { this.#compile(s); });
  }

  /** Stops a schedule. Returns false if there was none by that name. */
  unschedule(name: string): boolean {
    return this.#schedules.remove(name);
  }

  /** Makes a worker (call `start()` on it). `app.close()` stops it. */
  worker(options: WorkerOptions = {}): Worker {
    this.#live();
    checkOptions('worker', options, WORKER_RULES);
    // The transport is asked for concurrency + prefetch deliveries: past 2^53 the TCP broker refuses the consume frame.
    if (!Number.isSafeInteger((options.concurrency ?? 10) + (options.prefetch ?? 0))) {
      throw new ValidationError('Expected `concurrency` + `prefetch` to be at most Number.MAX_SAFE_INTEGER: pass a smaller `prefetch`', 'prefetch');
    }
    const worker = new Worker(this.#host, Object.freeze({
      queues: options.queues ?? [this.#defaultQueue],
      concurrency: options.concurrency ?? 10,
      threads: options.threads ?? availableParallelism(),
      prefetch: options.prefetch ?? 0,
      ignoreUnknown: options.ignoreUnknown ?? false,
    }));
    this.#workers.add(worker);
    return worker;
  }

  /** Stops the workers it made (gracefully), closes the transport and clears its timers. A second call resolves with the first. */
  close(): Promise<void> {
    return (this.#shutdown ??= this.#close());
  }

  async #close(): Promise<void> {
    this.#closed = true;
    this.#schedules.close();
    this.#closing.close(new ClosedError('The App'));
    await Promise.all([...this.#workers].map((w) => w.stop()));
    await this.#transport.close();
  }

  #compile(workflow: Workflow): Compiled {
    return compile(workflow, this.#compileContext());
  }

  /** The compile context, its `now` read for the send about to be compiled (one object, see #compiling). */
  #compileContext(): CompileContext {
    this.#compiling.now = this.#clock.now();
    return this.#compiling;
  }

  /** Per-task defaults for the compiler, bound once. */
  readonly #defaults = (name: string): TaskOptions | undefined => this.#registry.get(name)?.options;
  /** What sends are compiled with: one object, its `now` set before each use (see #compileContext()). */
  readonly #compiling: { -readonly [K in keyof CompileContext]: CompileContext[K] } = { defaultQueue: 'default', now: 0, defaults: this.#defaults };

  async #ready(): Promise<void> {
    await this.#connecting;
  }

  #live(): void {
    if (this.#closed) throw new ClosedError('This App');
  }

  #handle(shape: HandleShape): AsyncResult | GroupResult {
    if (shape.kind === 'task') return new AsyncResult(this.#handles, shape.id, shape.name);
    return new GroupResult(shape.members.map((m) => this.#handle(m)));
  }
}

export type { PrefixOf };

const EMPTY_OPTIONS: SignatureOptions = Object.freeze({});

/**
 * The handle `app.send(w)` resolves with: a GroupResult for a group, and for a chain or a chord whose last
 * step is one; else an AsyncResult typed by the last task's result.
 */
export type HandleOf<W> = unknown extends W ? AsyncResult
  : W extends Group ? GroupResult
  : W extends Chain<infer L> | Chord<infer L> ? HandleOf<L>
  : W extends Signature ? AsyncResult<ResultOf<W>>
  : AsyncResult | GroupResult;

/** The result type a TaskRef's signature carries (`unknown` for a plain signature). */
export type ResultOf<S> = S extends { readonly __result?: infer R } ? unknown extends R ? unknown : R : unknown;
export { MemoryTransport, type MemoryTransportOptions } from '../transports/memory/memory-transport.js';
