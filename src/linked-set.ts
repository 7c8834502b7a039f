/**
 * A set of objects that carry their own links (`prev`, `next`): add and
 * delete touch two neighbours and allocate nothing. For the sets every task
 * enters and leaves (a worker's runs, an app's waiting `get()`s): a Map or Set
 * there, near empty while tasks settle quickly, kept reallocating its hash
 * table (measured ~200-350 bytes of garbage per task across such tables).
 */
export interface Linked<T> {
  prev: T | null;
  next: T | null;
}

export class LinkedSet<T extends Linked<T>> {
  #head: T | null = null;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  /** Adds `item`, which must not be in a LinkedSet now. */
  add(item: T): void {
    item.prev = null;
    item.next = this.#head;
    if (this.#head !== null) this.#head.prev = item;
    this.#head = item;
    this.#size++;
  }

  /** Deletes `item`; a no-op when it is not in this set. */
  delete(item: T): void {
    if (item.prev === null && this.#head !== item) return;
    if (item.prev !== null) item.prev.next = item.next;
    else this.#head = item.next;
    if (item.next !== null) item.next.prev = item.prev;
    item.prev = null;
    item.next = null;
    this.#size--;
  }

  /** A copy, oldest first (safe to change the set while going through it). */
  values(): T[] {
    const out: T[] = [];
    for (let r = this.#head; r !== null; r = r.next) out.push(r);
    return out.reverse();
  }

  clear(): void {
    for (let r = this.#head; r !== null;) {
      const next: T | null = r.next;
      r.prev = null;
      r.next = null;
      r = next;
    }
    this.#head = null;
    this.#size = 0;
  }
}
