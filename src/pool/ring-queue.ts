/**
 * A FIFO ring buffer: O(1) push, shift and pushFront, no `Array#shift`
 * (which is O(n) on big arrays and made tinypool collapse under a deep
 * backlog in the peers' benchmark).
 *
 *        head                 tail = (head + length) & mask
 *          v                    v
 *   [ . | a | b | c | d | e | . | . ]   capacity = mask + 1, a power of two
 *          <---- length = 5 ---->
 *
 * When full, the buffer doubles and the live items are copied to the front.
 */
export class RingQueue<T> {
  #items: (T | undefined)[];
  #mask: number;
  #head = 0;
  #length = 0;

  /** `capacity` is rounded up to a power of two (default 16). */
  constructor(capacity = 16) {
    let size = 16;
    while (size < capacity) size *= 2;
    this.#items = new Array<T | undefined>(size);
    this.#mask = size - 1;
  }

  get length(): number {
    return this.#length;
  }

  push(item: T): void {
    if (this.#length > this.#mask) this.#grow();
    this.#items[(this.#head + this.#length) & this.#mask] = item;
    this.#length++;
  }

  /** Puts `item` before every other item (used to requeue work a dead thread never started). */
  pushFront(item: T): void {
    if (this.#length > this.#mask) this.#grow();
    this.#head = (this.#head - 1) & this.#mask;
    this.#items[this.#head] = item;
    this.#length++;
  }

  /** Removes and returns the oldest item, or `undefined` when empty. */
  shift(): T | undefined {
    if (this.#length === 0) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head] = undefined;
    this.#head = (this.#head + 1) & this.#mask;
    this.#length--;
    return item;
  }

  peek(): T | undefined {
    return this.#length === 0 ? undefined : this.#items[this.#head];
  }

  /** Removes every item and returns them, oldest first. */
  drain(): T[] {
    const out: T[] = [];
    for (let item = this.shift(); item !== undefined; item = this.shift()) out.push(item);
    return out;
  }

  #grow(): void {
    const size = (this.#mask + 1) * 2;
    const items = new Array<T | undefined>(size);
    for (let i = 0; i < this.#length; i++) items[i] = this.#items[(this.#head + i) & this.#mask];
    this.#items = items;
    this.#mask = size - 1;
    this.#head = 0;
  }
}
