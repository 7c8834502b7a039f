/**
 * Unacked deliveries by tag: a Map with one slot kept beside it. A worker in
 * the same process runs a synchronous task inside `deliver` and settles it
 * before the next delivery, so the Map went from empty to one entry and back
 * for every task, and V8 reallocated its table each few turns (a profile put
 * ~7% of the in-memory send -> result time on that `delete`, ~150 bytes of
 * garbage per task). The newest delivery sits in the slot while it is free.
 */
export class Unacked<V> {
  #tag = 0;
  #value: V | undefined;
  readonly #map = new Map<number, V>();

  get(tag: number): V | undefined {
    return this.#value !== undefined && tag === this.#tag ? this.#value : this.#map.get(tag);
  }

  /** `tag` must be new (tags only grow). */
  set(tag: number, value: V): void {
    if (this.#value === undefined) {
      this.#tag = tag;
      this.#value = value;
    } else {
      this.#map.set(tag, value);
    }
  }

  delete(tag: number): boolean {
    if (this.#value !== undefined && tag === this.#tag) {
      this.#value = undefined;
      return true;
    }
    return this.#map.delete(tag);
  }

  /** Every entry, oldest tag first (a copy: safe to change while going through it). */
  entries(): Array<[number, V]> {
    const out = [...this.#map];
    if (this.#value !== undefined) {
      const tag = this.#tag;
      let i = out.length;
      while (i > 0 && (out[i - 1] as [number, V])[0] > tag) i--;
      out.splice(i, 0, [tag, this.#value]);
    }
    return out;
  }

  values(): V[] {
    return this.entries().map(([, v]) => v);
  }
}
