/**
 * The ready tasks of one queue: higher priority first, FIFO within a
 * priority. One array-backed deque per priority level, levels kept sorted.
 *
 *   levels: [ 5 ] -> [e7, e9]          take() scans levels high to low and
 *           [ 0 ] -> [e1, e2, e3, ...] takes from the head of the first
 *                     ^head            non-empty one.
 */

export class Deque<T> {
  #items: Array<T | undefined> = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(item: T): void {
    this.#items.push(item);
  }

  /** Puts `items` back at the front, in their order. */
  unshiftAll(items: readonly T[]): void {
    if (items.length === 0) return;
    if (this.#head >= items.length) {
      this.#head -= items.length;
      for (let i = 0; i < items.length; i++) this.#items[this.#head + i] = items[i];
    } else {
      this.#items = [...items, ...this.#items.slice(this.#head)];
      this.#head = 0;
    }
  }

  /** The item `shift` would return, left in place. */
  peek(): T | undefined {
    return this.#items[this.#head];
  }

  /** The last item. */
  last(): T | undefined {
    return this.length === 0 ? undefined : this.#items[this.#items.length - 1];
  }

  shift(): T | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head++] = undefined;
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = this.#head; i < this.#items.length; i++) yield this.#items[i] as T;
  }

  /** Keeps only the items for which `keep` is true. */
  retain(keep: (item: T) => boolean): void {
    this.#items = [...this].filter(keep);
    this.#head = 0;
  }
}

/** Priority levels kept even when empty (see ReadyQueue.shift). */
const KEPT_LEVELS = 8;

export class ReadyQueue<T> {
  /** One deque per priority, highest first (for shift), and by priority (for push: many priorities stay O(1)). */
  #levels: Array<{ readonly priority: number; readonly deque: Deque<T> }> = [];
  readonly #byPriority = new Map<number, Deque<T>>();
  #size = 0;

  get size(): number {
    return this.#size;
  }

  /** Priority levels held now, empty ones included (for tests and stats). */
  get levels(): number {
    return this.#levels.length;
  }

  push(priority: number, item: T): void {
    this.#level(priority).push(item);
    this.#size++;
  }

  /** Puts items back at the front of their level. */
  unshiftAll(priority: number, items: readonly T[]): void {
    this.#level(priority).unshiftAll(items);
    this.#size += items.length;
  }

  /**
   * Adds an item in its place in its level by `before` (the items there are in that order): at the back or the
   * front in O(1), between them (rare) in O(level).
   */
  insert(priority: number, item: T, before: (a: T, b: T) => boolean): void {
    const deque = this.#level(priority);
    const last = deque.last();
    if (last === undefined || !before(item, last)) deque.push(item);
    else if (before(item, deque.peek() as T)) deque.unshiftAll([item]);
    else {
      const items = [...deque];
      items.splice(items.findIndex((x) => before(item, x)), 0, item);
      deque.retain(() => false);
      for (const x of items) deque.push(x);
    }
    this.#size++;
  }

  /** The item `shift` would return, left in place. */
  peek(): T | undefined {
    if (this.#size === 0) return undefined;
    for (const { deque } of this.#levels) if (deque.length > 0) return deque.peek();
    return undefined;
  }

  /** Removes and returns the next item: highest priority, oldest first. */
  shift(): T | undefined {
    if (this.#size === 0) return undefined;
    const levels = this.#levels;
    for (let i = 0; i < levels.length; i++) {
      const { deque } = levels[i] as { deque: Deque<T> };
      if (deque.length === 0) continue;
      this.#size--;
      const item = deque.shift();
      // Many priorities (say, a deadline as priority): levels left empty go, the one just emptied and those
      // passed over, so scans stay short. A few are kept, to spare the common case a level made and dropped per task.
      if (levels.length > KEPT_LEVELS) {
        const end = deque.length === 0 ? i + 1 : i;
        if (end > 0) for (const gone of levels.splice(0, end)) this.#byPriority.delete(gone.priority);
      }
      return item;
    }
    return undefined;
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (const { deque } of this.#levels) yield* deque;
  }

  retain(keep: (item: T) => boolean): void {
    this.#size = 0;
    for (const { deque } of this.#levels) {
      deque.retain(keep);
      this.#size += deque.length;
    }
  }

  #level(priority: number): Deque<T> {
    let deque = this.#byPriority.get(priority);
    if (deque === undefined) {
      deque = new Deque<T>();
      this.#byPriority.set(priority, deque);
      // Binary search for its place (highest first), not a sort per new level.
      const levels = this.#levels;
      let lo = 0;
      let hi = levels.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if ((levels[mid] as { priority: number }).priority > priority) lo = mid + 1;
        else hi = mid;
      }
      levels.splice(lo, 0, { priority, deque });
    }
    return deque;
  }
}
