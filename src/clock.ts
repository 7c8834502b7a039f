/**
 * Time, injected. Nothing in `src/` reads the wall clock or arms a timer
 * except through a {@link Clock}, so {@link FakeClock} makes ETAs, retries,
 * timeouts and expiry deterministic in tests.
 */
import { ValidationError } from './errors.js';
import { Heap } from './heap.js';

/** An armed timer, as returned by {@link Clock.setTimer}. */
export interface TimerHandle {
  readonly id: number;
}

/** The time source of an app, a transport and a worker. */
export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
  /**
   * Runs `fn` once after `delayMs`. The handle may be passed to `clearTimer`.
   * `keepAlive: false`: the timer alone does not keep the process running (housekeeping, e.g. retiring idle threads).
   */
  setTimer(fn: () => void, delayMs: number, options?: TimerOptions): TimerHandle;
  clearTimer(handle: TimerHandle): void;
  /**
   * Tells the clock about asynchronous work started by a timer or a delivery,
   * so that `FakeClock.advance` can wait for it. The real clock ignores it.
   */
  track(work: Promise<unknown>): void;
}

/** Options of `Clock.setTimer`. */
export interface TimerOptions {
  /** Default true (as `setTimeout`); false: as an unref'd timer. */
  readonly keepAlive?: boolean;
}

const MAX_DELAY = 2 ** 31 - 1;

interface RealHandle extends TimerHandle {
  /** The leg armed now: a delay above {@link MAX_DELAY} runs as several legs. */
  timeout: NodeJS.Timeout | undefined;
}

/**
 * The real clock: `Date.now()` and `setTimeout` (not unref'd: a pending ETA or
 * `get({ timeout })` keeps the process alive, as a user awaiting it expects).
 */
export class SystemClock implements Clock {
  #next = 1;
  now(): number {
    return Date.now();
  }
  setTimer(fn: () => void, delayMs: number, options?: TimerOptions): TimerHandle {
    const handle: RealHandle = { id: this.#next++, timeout: undefined };
    // Node fires delays above 2^31-1 ms after 1 ms: wait in legs of at most that, the last one calling `fn`.
    const arm = (ms: number): void => {
      handle.timeout = ms > MAX_DELAY ? setTimeout(() => arm(ms - MAX_DELAY), MAX_DELAY) : setTimeout(fn, ms);
      if (options?.keepAlive === false) handle.timeout.unref();
    };
    arm(delayMs > 0 ? delayMs : 0); // NaN: 0
    return handle;
  }
  clearTimer(handle: TimerHandle): void {
    clearTimeout((handle as RealHandle).timeout);
  }
  track(): void { /* the real clock does not wait for work */ }
}

/** The process-wide real clock. */
export const systemClock: Clock = new SystemClock();

interface FakeTimer {
  readonly id: number;
  readonly fn: () => void;
  cancelled: boolean;
}

/** How many settle rounds `advance` grants tracked work after each timer. */
const SETTLE_ROUNDS = 50;

/**
 * A clock that only moves when told to. `advance(ms)` fires every timer due on
 * the way, in due order (ties in arming order), and after each one waits for
 * the work it triggered (tracked promises and pending callbacks) to settle.
 *
 * @example
 * const clock = new FakeClock();
 * const app = new App({ clock });
 * await clock.advance(5_000); // fires retries and ETAs due in the next 5 s
 */
export class FakeClock implements Clock {
  #now: number;
  #timers = new Heap<FakeTimer>();
  #byId = new Map<number, FakeTimer>();
  #next = 1;
  #work = new Set<Promise<unknown>>();
  /** The advance or runAll in progress: the next one starts when it ends, from the time it left. */
  #busy: Promise<void> = Promise.resolve();

  constructor(startMs = 0) {
    if (typeof startMs !== 'number' || !Number.isFinite(startMs)) throw new ValidationError(`Expected startMs to be a finite number (epoch ms), got ${String(startMs)}`, 'startMs');
    this.#now = startMs;
  }

  now(): number {
    return this.#now;
  }

  /** Timers armed and not yet fired or cleared. */
  get pending(): number {
    return this.#byId.size;
  }

  setTimer(fn: () => void, delayMs: number): TimerHandle {
    const timer: FakeTimer = { id: this.#next++, fn, cancelled: false };
    this.#timers.push(this.#now + (delayMs > 0 ? delayMs : 0), timer); // NaN: 0, as the real clock
    this.#byId.set(timer.id, timer);
    return { id: timer.id };
  }

  clearTimer(handle: TimerHandle): void {
    const timer = this.#byId.get(handle.id);
    if (timer === undefined) return;
    timer.cancelled = true;
    this.#byId.delete(handle.id);
  }

  track(work: Promise<unknown>): void {
    this.#work.add(work);
    const done = (): void => { this.#work.delete(work); };
    work.then(done, done);
  }

  /**
   * Moves time forward by `ms`, firing due timers in order and awaiting their work. Calls made while another
   * advance or runAll is in progress (not awaited, or from a timer callback) run after it, from where it left time.
   */
  async advance(ms: number): Promise<void> {
    if (!(ms >= 0) || !Number.isFinite(ms)) throw new ValidationError(`Expected ms to be a finite number >= 0, got ${String(ms)}`, 'ms');
    return this.#serially(() => this.#advance(ms));
  }

  async #advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    await this.#settle();
    for (;;) {
      this.#dropCancelled();
      if (this.#timers.peekKey() > target) break;
      this.#now = Math.max(this.#now, this.#timers.peekKey());
      const timer = this.#timers.pop() as FakeTimer;
      this.#byId.delete(timer.id);
      timer.fn();
      await this.#settle();
    }
    this.#now = target;
    await this.#settle();
  }

  /** Advances until no timer is pending. Throws after `maxTimers` firings (timers re-arming forever). */
  async runAll(maxTimers = 100_000): Promise<void> {
    return this.#serially(() => this.#runAll(maxTimers));
  }

  async #runAll(maxTimers: number): Promise<void> {
    let fired = 0;
    await this.#settle();
    for (;;) {
      this.#dropCancelled();
      if (this.#timers.size === 0) return;
      if (fired++ >= maxTimers) throw new ValidationError(`FakeClock.runAll: still ${this.#timers.size} timers pending after ${maxTimers} firings; timers keep re-arming (a periodic schedule?): use advance(ms) instead`);
      await this.#advance(Math.max(0, this.#timers.peekKey() - this.#now));
    }
  }

  #serially(step: () => Promise<void>): Promise<void> {
    const run = this.#busy.then(step);
    this.#busy = run.catch(() => undefined);
    return run;
  }

  #dropCancelled(): void {
    while (this.#timers.size > 0 && (this.#timers.peek() as FakeTimer).cancelled) this.#timers.pop();
  }

  /** Lets microtasks and immediates run until tracked work is done (bounded). */
  async #settle(): Promise<void> {
    for (let round = 0; round < SETTLE_ROUNDS; round++) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.#work.size === 0 && round >= 1) return;
    }
  }
}
