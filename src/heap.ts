/**
 * A binary min-heap keyed by (key, seq): equal keys come out in insertion
 * order, which keeps ETA ties FIFO.
 *
 *            [k0]              index i has children 2i+1 and 2i+2;
 *          /      \            every parent's (key, seq) <= its children's,
 *       [k1]      [k2]         so the root is always the earliest.
 *      /   \      /
 *   [k3]  [k4]  [k5]
 *
 * Entries are stored in three parallel arrays (keys, seqs, items) rather
 * than one object per entry: a million pending ETAs cost three array slots
 * each instead of a heap object.
 */
export class Heap<T> {
  #keys: number[] = [];
  #seqs: number[] = [];
  #items: T[] = [];
  #seq = 0;

  get size(): number {
    return this.#items.length;
  }

  /** The smallest key, or `Infinity` when empty. */
  peekKey(): number {
    return this.#keys.length === 0 ? Infinity : (this.#keys[0] as number);
  }

  peek(): T | undefined {
    return this.#items[0];
  }

  push(key: number, item: T): void {
    const keys = this.#keys;
    const seqs = this.#seqs;
    const items = this.#items;
    const seq = this.#seq++;
    let i = keys.length;
    keys.push(key); seqs.push(seq); items.push(item);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const pk = keys[parent] as number;
      if (pk < key || (pk === key && (seqs[parent] as number) < seq)) break;
      keys[i] = pk; seqs[i] = seqs[parent] as number; items[i] = items[parent] as T;
      i = parent;
    }
    keys[i] = key; seqs[i] = seq; items[i] = item;
  }

  pop(): T | undefined {
    const keys = this.#keys;
    const seqs = this.#seqs;
    const items = this.#items;
    const n = items.length;
    if (n === 0) return undefined;
    const top = items[0] as T;
    const lastKey = keys.pop() as number;
    const lastSeq = seqs.pop() as number;
    const lastItem = items.pop() as T;
    const size = n - 1;
    if (size === 0) return top;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= size) break;
      const right = child + 1;
      if (right < size && less(keys, seqs, right, child)) child = right;
      const ck = keys[child] as number;
      if (lastKey < ck || (lastKey === ck && lastSeq < (seqs[child] as number))) break;
      keys[i] = ck; seqs[i] = seqs[child] as number; items[i] = items[child] as T;
      i = child;
    }
    keys[i] = lastKey; seqs[i] = lastSeq; items[i] = lastItem;
    return top;
  }

  /** Removes every entry for which `drop` is true. O(n). */
  filter(keep: (item: T) => boolean): void {
    const entries: Array<[number, number, T]> = [];
    for (let i = 0; i < this.#items.length; i++) {
      const item = this.#items[i] as T;
      if (keep(item)) entries.push([this.#keys[i] as number, this.#seqs[i] as number, item]);
    }
    entries.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    this.#keys = entries.map((e) => e[0]);
    this.#seqs = entries.map((e) => e[1]);
    this.#items = entries.map((e) => e[2]);
  }

  clear(): void {
    this.#keys = []; this.#seqs = []; this.#items = [];
  }
}

function less(keys: number[], seqs: number[], a: number, b: number): boolean {
  const ka = keys[a] as number;
  const kb = keys[b] as number;
  return ka < kb || (ka === kb && (seqs[a] as number) < (seqs[b] as number));
}
