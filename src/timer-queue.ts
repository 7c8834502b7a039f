/**
 * Many deadlines, one armed timer: due items wait in a {@link Heap} and a
 * single clock timer is armed for the earliest. A million delayed tasks cost
 * a million heap slots, not a million `setTimeout`s.
 */
import type { Clock, TimerHandle, TimerOptions } from './clock.js';
import { Heap } from './heap.js';

export class TimerQueue<T> {
  readonly #clock: Clock;
  readonly #fire: (item: T) => void;
  readonly #heap = new Heap<T>();
  readonly #timerOptions: TimerOptions | undefined;
  #timer: TimerHandle | undefined;
  #armedFor = Infinity;

  /** `fire` is called for each item once its due time has come, in due order; `timerOptions` go to the clock's timer. */
  constructor(clock: Clock, fire: (item: T) => void, timerOptions?: TimerOptions) {
    this.#clock = clock;
    this.#fire = fire;
    this.#timerOptions = timerOptions;
  }

  get size(): number {
    return this.#heap.size;
  }

  /** Due time of the earliest item, or Infinity. */
  get next(): number {
    return this.#heap.peekKey();
  }

  add(due: number, item: T): void {
    this.#heap.push(due, item);
    if (due < this.#armedFor) this.#arm();
  }

  /** Drops items for which `keep` is false. */
  filter(keep: (item: T) => boolean): void {
    this.#heap.filter(keep);
    this.#arm();
  }

  /** Drops every item and disarms the timer. */
  clear(): void {
    this.#heap.clear();
    this.#disarm();
  }

  #arm(): void {
    this.#disarm();
    const due = this.#heap.peekKey();
    if (due === Infinity) return;
    this.#armedFor = due;
    this.#timer = this.#clock.setTimer(() => this.#run(), due - this.#clock.now(), this.#timerOptions);
  }

  #disarm(): void {
    if (this.#timer !== undefined) this.#clock.clearTimer(this.#timer);
    this.#timer = undefined;
    this.#armedFor = Infinity;
  }

  #run(): void {
    this.#timer = undefined;
    this.#armedFor = Infinity;
    const now = this.#clock.now();
    try {
      while (this.#heap.peekKey() <= now) this.#fire(this.#heap.pop() as T);
    } finally {
      this.#arm(); // a `fire` that threw leaves the items after it armed
    }
  }
}
