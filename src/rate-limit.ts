/**
 * Rate limits (a task's `rateLimit` option): at most `max` starts in any
 * window of `per` ms. {@link RateWindow} is the policy (pure: the caller
 * passes the time); {@link RateGates} holds a worker's deliveries back by it.
 */
import type { Clock, TimerHandle } from './clock.js';

/** A task's `rateLimit` option. */
export interface RateLimit {
  readonly max: number;
  readonly per: number;
}

/** A `rateLimit` option as it must be: `max` an integer >= 1, `per` a finite number of ms > 0 (checked at registration). */
export function isRateLimit(value: unknown): value is RateLimit {
  if (typeof value !== 'object' || value === null) return false;
  const { max, per } = value as Partial<Record<keyof RateLimit, unknown>>;
  return Number.isInteger(max) && (max as number) >= 1 && typeof per === 'number' && Number.isFinite(per) && per > 0;
}

/** At most `max` starts in any window of `per` ms: a sliding window over the last `max` start times. */
export class RateWindow {
  readonly #max: number;
  readonly #per: number;
  /** Ring of the last `max` start times. */
  readonly #starts: number[] = [];
  #head = 0;

  constructor(max: number, per: number) {
    this.#max = max;
    this.#per = per;
  }

  /** Records a start at `now` and returns 0, or returns the ms to wait before one is allowed. */
  take(now: number): number {
    if (this.#starts.length < this.#max) {
      this.#starts.push(now);
      return 0;
    }
    const oldest = this.#starts[this.#head] as number;
    const wait = oldest + this.#per - now;
    if (wait > 0) return wait;
    this.#starts[this.#head] = now;
    this.#head = (this.#head + 1) % this.#max;
    return 0;
  }
}

/**
 * Holds items (a worker's deliveries) back per key (a task name) until that
 * key's {@link RateWindow} allows a start; one clock timer per key at most,
 * armed only while items wait.
 */
export class RateGates<T> {
  readonly #clock: Clock;
  readonly #start: (item: T) => void;
  readonly #canStart: () => boolean;
  readonly #gates = new Map<string, { window: RateWindow; waiting: T[]; timer: TimerHandle | undefined }>();
  #open = true;
  #held = 0;

  /**
   * `start(item)` is called for each item once its key's window allows it and `canStart()` (the worker has a
   * free slot) says yes; a start refused for want of a slot waits for {@link resume}.
   */
  constructor(clock: Clock, start: (item: T) => void, canStart: () => boolean) {
    this.#clock = clock;
    this.#start = start;
    this.#canStart = canStart;
  }

  /** Items held back now. */
  get held(): number {
    return this.#held;
  }

  /** Starts `item` now if `limit` allows, else when it does (in arrival order per key). */
  admit(key: string, limit: RateLimit, item: T): void {
    let gate = this.#gates.get(key);
    if (gate === undefined) this.#gates.set(key, (gate = { window: new RateWindow(limit.max, limit.per), waiting: [], timer: undefined }));
    gate.waiting.push(item);
    this.#held++;
    this.#drain(gate);
  }

  /** A slot freed: starts what the windows allow (gates waiting for their timer wait on). */
  resume(): void {
    for (const gate of this.#gates.values()) if (gate.timer === undefined) this.#drain(gate);
  }

  /** Stops starting anything: returns every item still held back, oldest first per key. */
  close(): T[] {
    this.#open = false;
    this.#held = 0;
    return [...this.#gates.values()].flatMap((gate) => {
      if (gate.timer !== undefined) this.#clock.clearTimer(gate.timer);
      gate.timer = undefined;
      return gate.waiting.splice(0);
    });
  }

  #drain(gate: { window: RateWindow; waiting: T[]; timer: TimerHandle | undefined }): void {
    while (gate.waiting.length > 0 && this.#open && this.#canStart()) {
      const wait = gate.window.take(this.#clock.now());
      if (wait > 0) {
        gate.timer ??= this.#clock.setTimer(() => { gate.timer = undefined; this.#drain(gate); }, wait);
        return;
      }
      this.#held--;
      this.#start(gate.waiting.shift() as T);
    }
  }
}
