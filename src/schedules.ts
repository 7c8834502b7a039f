/**
 * Periodic schedules: each tick sends a fresh copy of a signature. The copy's
 * id is derived from the schedule name and the tick time, and sending a known
 * id is a no-op in the result store, so however many apps register the same
 * schedule against one transport, each tick runs once (the tick is claimed
 * atomically by the store, as Machinery's periodic tasks take a lock).
 */
import type { Clock } from './clock.js';
import { nextTick, parseCron, type Cron } from './cron.js';
import { ValidationError } from './errors.js';
import { isSignature, type Signature } from './signature.js';
import { TimerQueue } from './timer-queue.js';

/** Options of `app.schedule()`. */
export interface ScheduleOptions {
  /** IANA time zone the expression is read in. Default `"UTC"`. */
  readonly tz?: string;
}

interface Entry {
  readonly name: string;
  readonly cron: Cron;
  readonly signature: Signature;
}

export class Schedules {
  readonly #clock: Clock;
  readonly #send: (sig: Signature) => Promise<unknown>;
  readonly #onError: (err: unknown) => void;
  readonly #entries = new Map<string, Entry>();
  readonly #timers: TimerQueue<{ entry: Entry; tick: number }>;

  constructor(clock: Clock, send: (sig: Signature) => Promise<unknown>, onError: (err: unknown) => void) {
    this.#clock = clock;
    this.#send = send;
    this.#onError = onError;
    this.#timers = new TimerQueue(clock, ({ entry, tick }) => this.#fire(entry, tick));
  }

  /** `validate` checks the signature once, so a bad value fails here rather than on every tick. */
  add(name: string, expression: string, sig: Signature, options: ScheduleOptions, validate: (sig: Signature) => void): void {
    if (typeof name !== 'string' || name === '') throw new ValidationError('Expected a schedule name (a non-empty string)', 'name');
    if (this.#entries.has(name)) throw new ValidationError(`A schedule named "${name}" exists: unschedule it first`, 'name');
    if (!isSignature(sig)) throw new ValidationError('Expected a signature to send on each tick', 'signature');
    validate(sig);
    const entry: Entry = { name, cron: parseCron(expression, options.tz ?? 'UTC'), signature: sig };
    this.#entries.set(name, entry);
    this.#arm(entry, this.#clock.now());
  }

  remove(name: string): boolean {
    const entry = this.#entries.get(name);
    if (entry === undefined) return false;
    this.#entries.delete(name);
    // Its next tick goes too: an armed real timer would keep the process alive until then.
    this.#timers.filter((item) => item.entry !== entry);
    return true;
  }

  close(): void {
    this.#entries.clear();
    this.#timers.clear();
  }

  #arm(entry: Entry, after: number): void {
    const tick = nextTick(entry.cron, after);
    this.#timers.add(tick, { entry, tick });
  }

  #fire(entry: Entry, tick: number): void {
    if (this.#entries.get(entry.name) !== entry) return;
    const copy = stampIds(entry.signature, `schedule:${entry.name}:${tick}`);
    this.#clock.track(this.#send(copy).catch(this.#onError));
    // From now, not from `tick`: a timer that fired late (a blocked event loop, a machine asleep) skips the ticks
    // it missed, as cron and Celery beat do, rather than sending them all at once.
    this.#arm(entry, Math.max(tick, this.#clock.now()));
  }
}

/** A copy of `sig` whose id, and the ids of its callbacks, derive from `id`: each tick's copy is new, and claimed once. */
function stampIds(sig: Signature, id: string): Signature {
  const copy: { -readonly [K in keyof Signature]: Signature[K] } = { ...sig, id };
  if (sig.onSuccess !== undefined) copy.onSuccess = sig.onSuccess.map((s, i) => stampIds(s, `${id}:ok${i}`));
  if (sig.onError !== undefined) copy.onError = sig.onError.map((s, i) => stampIds(s, `${id}:err${i}`));
  return copy;
}
