/**
 * Rate limit policy: at most `max` starts in any window of `per` ms (a
 * sliding window over the last `max` start times). Pure: the caller passes
 * the time.
 */
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
