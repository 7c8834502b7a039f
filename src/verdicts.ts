/**
 * What a worker decides once an attempt is over, and what it tells: the
 * {@link Outcome} to settle (success with its result packed, a retry, a final
 * failure, a revocation) and the task events and diagnostics channels, told
 * as the outcome is decided. The worker (src/worker.ts) runs tasks and
 * settles; this module judges and tells.
 */
import type { Channel } from 'node:diagnostics_channel';
import type { EventEmitter } from 'node:events';
import { debuglog } from 'node:util';
import type { Clock } from './clock.js';
import { pack } from './codec.js';
import { channels } from './diagnostics.js';
import { RevokedError, toErrorInfo, ValidationError, type ErrorInfo, type MillwrightError } from './errors.js';
import { failureOutcome, finalFailure, successOutcome, type OutcomeContext } from './outcome.js';
import type { Rng } from './rng.js';
import type { Outcome, TaskMessage } from './transport.js';

const log = debuglog('millwright');

export class Verdicts {
  /** The worker whose listeners hear the events. */
  readonly #emitter: EventEmitter;
  readonly #clock: Clock;
  /** What outcomes are computed with: one object, its `now` set before each use (see #context()). */
  readonly #outcome: { now: number; readonly resultsExpireIn: number; readonly rng: Rng };

  constructor(emitter: EventEmitter, clock: Clock, resultsExpireIn: number, rng: Rng) {
    this.#emitter = emitter;
    this.#clock = clock;
    this.#outcome = { now: 0, resultsExpireIn, rng };
  }

  /** The task returned `result`: its success, or its failure when the result is not a value. */
  success(message: TaskMessage, attempt: number, result: unknown): Outcome {
    let packed;
    try {
      packed = pack(result, 'result');
    } catch (err) {
      const why = err instanceof ValidationError ? err.message : String(err);
      return this.failure(message, attempt, new ValidationError(`Task ${message.name} returned something that is not a value: ${why}`, 'result'));
    }
    // Told now, before the settle: over TCP the next delivery (a retry, the next link) can arrive in the same read as
    // the settle's confirmation and start before a promise reaction to it would run, so waiting for the transport to
    // take the outcome told events out of order. Should the transport refuse it (too large), task:failed follows.
    if (this.#emitter.listenerCount('task:succeeded') > 0 || channels.succeeded.hasSubscribers) this.tell('task:succeeded', channels.succeeded, { id: message.id, name: message.name, attempt, result });
    return successOutcome(message, attempt, packed, this.#context());
  }

  /** The task threw `err`: a retry after its backoff, or its final failure. */
  failure(message: TaskMessage, attempt: number, err: unknown): Outcome {
    const { outcome, retryIn, error } = failureOutcome(message, attempt, err, this.#context());
    const event = { id: message.id, name: message.name, attempt, error };
    if (retryIn === null) this.tell('task:failed', channels.failed, event);
    else this.tell('task:retry', channels.retry, { ...event, delay: retryIn });
    return outcome;
  }

  /** A final failure without retries, told as failed: a task that cannot start (not registered, expired) or whose outcome could not be sent. */
  failedFinally(message: TaskMessage, attempt: number, err: MillwrightError): Outcome {
    const error: ErrorInfo = toErrorInfo(err);
    this.tell('task:failed', channels.failed, { id: message.id, name: message.name, attempt, error });
    return finalFailure(message, attempt, 'FAILURE', error, this.#context());
  }

  revoked(message: TaskMessage, attempt: number): Outcome {
    return finalFailure(message, attempt, 'REVOKED', toErrorInfo(new RevokedError(message.id)), this.#context());
  }

  /**
   * Emits a task event and publishes it on its diagnostics channel; a
   * listener that throws is reported, and cannot leave the task unsettled.
   */
  tell(name: string, channel: Channel, event: object): void {
    try {
      this.#emitter.emit(name, event);
    } catch (err) {
      this.report(err);
    }
    // After, not in, the try: a throwing listener must not keep the event from subscribers (whose own
    // throws never reach here: diagnostics_channel rethrows them on process.nextTick).
    if (channel.hasSubscribers) channel.publish(event);
  }

  /** An error of the worker's own (a transport's, a listener's): its `error` event, else NODE_DEBUG=millwright. */
  report(err: unknown): void {
    if (this.#emitter.listenerCount('error') > 0) this.#emitter.emit('error', err);
    else log('worker error: %s', err instanceof Error ? err.stack : String(err));
  }

  /** The outcome context, its `now` read once for the outcome about to be computed. */
  #context(): OutcomeContext {
    this.#outcome.now = this.#clock.now();
    return this.#outcome;
  }
}
