/**
 * The seam between the core and a transport: what the core needs from a
 * broker (queues, deliveries, acks) and from a result store (states,
 * notifications, chord ledger). Transports store and forward; every decision
 * (retry, callbacks, chain links, chord failure) is the core's, handed to the
 * transport as plain data to apply atomically.
 *
 * Implementations: `transports/memory` (the default) and `transports/tcp`.
 * Both pass `test/conformance`.
 */
import type { Clock } from './clock.js';
import type { Packed } from './codec.js';
import type { ErrorInfo } from './errors.js';

/** Task states, as Machinery names them. */
export type TaskState = 'PENDING' | 'RECEIVED' | 'STARTED' | 'RETRY' | 'SUCCESS' | 'FAILURE' | 'REVOKED';

/** Backoff between retries. */
export interface Backoff {
  /** `fixed`: `delay` each time; `exponential`: delay, 2*delay, 4*delay ...; `fibonacci`: 1, 2, 3, 5, 8 ... times `delay`. */
  readonly type: 'fixed' | 'exponential' | 'fibonacci';
  /** Base delay in ms. */
  readonly delay: number;
  /** Upper bound of one wait, in ms. */
  readonly maxDelay?: number;
  /** Randomise each wait to [delay/2, delay] ("equal jitter") with the worker's RNG. */
  readonly jitter?: boolean;
}

/** A task invocation as it crosses a transport: a signature with packed args. */
export interface TaskMessage {
  readonly id: string;
  readonly name: string;
  readonly args: Packed;
  readonly queue: string;
  readonly priority: number;
  /** Epoch ms before which it is not delivered; 0 for now. */
  readonly eta: number;
  /** Retries left. */
  readonly retries: number;
  /** Attempts already made (0 on first delivery). */
  readonly attempt: number;
  readonly backoff?: Backoff;
  readonly timeout?: number;
  readonly expires?: number;
  readonly immutable?: boolean;
  readonly headers?: Readonly<Record<string, string>>;
  /** Sent when this task succeeds, its result appended to each top-level task's args (unless immutable). */
  readonly onSuccess?: Batch;
  /** Sent when this task finally fails, its error message prepended to their args. */
  readonly onError?: readonly TaskMessage[];
  /** Set on the members of a chord: which ledger, which slot, and the callback's task ids (to fail them). */
  readonly chord?: ChordRef;
  readonly createdAt: number;
}

/** A chord member's place in its chord. */
export interface ChordRef {
  readonly id: string;
  readonly index: number;
  /**
   * Task ids failed with ChordError if this member finally fails, besides the callback workflow's own (the broker
   * fails those from its chord ledger). Compiled workflows leave it empty.
   */
  readonly tail: readonly string[];
}

/** A chord's ledger entry, registered when its members are published. */
export interface ChordSpec {
  readonly id: string;
  readonly count: number;
  /** Published when the last member succeeds, the members' results appended to its top-level tasks in member order. */
  readonly callback: Batch;
}

/** Tasks and chord ledgers published together. */
export interface Batch {
  readonly tasks: readonly TaskMessage[];
  readonly chords: readonly ChordSpec[];
}

/** A task's state in the result store. */
export interface StateRecord {
  readonly id: string;
  readonly name: string;
  readonly state: TaskState;
  readonly result?: Packed;
  readonly error?: ErrorInfo;
  readonly attempts: number;
  readonly createdAt: number;
  readonly updatedAt: number;
  /** Epoch ms when the store may delete this record (set on final states). */
  readonly expiresAt?: number;
}

/** Transport-local handle of one delivery. */
export type DeliveryTag = number;

export interface Delivery {
  readonly tag: DeliveryTag;
  readonly message: TaskMessage;
  /** True when this message was delivered before and not acked. */
  readonly redelivered: boolean;
}

/** What a consumer wants. */
export interface ConsumeSpec {
  readonly queues: readonly string[];
  /** Unacked deliveries held by this consumer at most. */
  readonly prefetch: number;
  /** Only these task names are delivered; `null` for every name. */
  readonly names: readonly string[] | null;
}

/** Callbacks of a consumer. Called synchronously by the transport. */
export interface ConsumerHandler {
  deliver(delivery: Delivery): void;
  /** A task was revoked: abort it if it runs here. */
  revoked(id: string): void;
}

export interface Consumer {
  /** Stops deliveries; unacked ones go back to their queue for other consumers. */
  cancel(): Promise<void>;
}

/**
 * How a delivery ended, applied atomically with its ack: state records,
 * follow-up tasks, a retry, a chord member's result.
 */
export interface Outcome {
  readonly records: readonly StateRecord[];
  /** New tasks (chain links, callbacks); ids already known are skipped. */
  readonly publish: Batch | null;
  /** The same task again (a retry), published whatever its id. */
  readonly retry: TaskMessage | null;
  /** This delivery was a chord member that succeeded with `result`, or failed (`result` null). */
  readonly chord: { readonly ref: ChordRef; readonly result: Packed | null } | null;
}

/** A state change or a progress value, as watchers see them. */
export type WatchEvent =
  | { readonly type: 'state'; readonly record: StateRecord }
  | { readonly type: 'progress'; readonly id: string; readonly value: Packed };

/** A broker and a result store behind one connection. */
export interface Transport {
  /** Called once by the App that uses it, with the app's clock. */
  connect(context: TransportContext): Promise<void>;
  close(): Promise<void>;

  /** Enqueues tasks (respecting `eta`) and registers chords; a task id already known is skipped (idempotent send). */
  publish(batch: Batch): Promise<void>;
  consume(spec: ConsumeSpec, handler: ConsumerHandler): Promise<Consumer>;
  /** Acks a delivery and applies its outcome in one step. Settling an unknown or settled tag is a no-op. */
  settle(tag: DeliveryTag, outcome: Outcome): Promise<void>;
  /** Hands a delivery back, undelivered, to its queue (after `delayMs`), preferring another consumer. */
  release(tag: DeliveryTag, delayMs: number): Promise<void>;

  /** Records a non-final state (RECEIVED, STARTED) and notifies watchers. */
  setState(record: StateRecord): Promise<void>;
  getState(id: string): Promise<StateRecord | undefined>;
  /**
   * The record of `id` when this transport has it at hand, as `getState` would give it (in memory: always);
   * `null` when it must ask a remote store (use `getState`). Lets a `get()` of a finished task skip its watch
   * and a promise, and watch a running one from the same turn as the read (nothing can fall in between).
   */
  peekState(id: string): StateRecord | undefined | null;
  /** Calls `listener` on every state change and progress value of `id`; returns the unsubscribe function. */
  watch(id: string, listener: (event: WatchEvent) => void): () => void;
  /** Reports progress of a running task; also extends its visibility deadline where there is one. */
  progress(tag: DeliveryTag, id: string, value: Packed): void;
  /** A pending task never runs (state REVOKED); a running one is aborted through its consumers. */
  revoke(id: string): Promise<void>;
}

/**
 * An already-settled promise a transport may return from a call it completed
 * synchronously (the in-memory one does). Callers may compare against it to
 * skip the bookkeeping of waiting (two promises per task on the worker's
 * path); returning a fresh promise is always correct too.
 */
export const DONE: Promise<void> = Promise.resolve();

export interface TransportContext {
  readonly clock: Clock;
  /** ms the app keeps final states: a transport that writes states itself (revoke) keeps them as long. */
  readonly resultsExpireIn: number;
}
