import { describe, expect, it } from 'vitest';
import { seededRng } from '../../src/index.js';
import { ReadyQueue } from '../../transports/memory/ready-queue.js';

/** The model: every item with its priority and arrival; next = highest priority, then earliest. */
class Model {
  items: Array<{ priority: number; order: number; item: number }> = [];
  #front = 0;
  #back = 0;
  push(priority: number, item: number): void { this.items.push({ priority, order: this.#back++, item }); }
  unshift(priority: number, item: number): void { this.items.push({ priority, order: --this.#front, item }); }
  shift(): number | undefined {
    if (this.items.length === 0) return undefined;
    let best = 0;
    for (let i = 1; i < this.items.length; i++) {
      const a = this.items[i] as { priority: number; order: number };
      const b = this.items[best] as { priority: number; order: number };
      if (a.priority > b.priority || (a.priority === b.priority && a.order < b.order)) best = i;
    }
    return this.items.splice(best, 1)[0]?.item;
  }
}

describe('ReadyQueue', () => {
  it('hands out the highest priority first, FIFO within one, also with many priorities coming and going', () => {
    for (const spread of [1, 3, 50, 5_000]) {
      const rng = seededRng(spread);
      const q = new ReadyQueue<number>();
      const model = new Model();
      let next = 0;
      const got: Array<number | undefined> = [];
      const want: Array<number | undefined> = [];
      for (let step = 0; step < 4_000; step++) {
        const r = rng();
        if (r < 0.5) {
          const priority = Math.floor(rng() * spread) - Math.floor(spread / 2);
          q.push(priority, next);
          model.push(priority, next++);
        } else if (r < 0.55) {
          const priority = Math.floor(rng() * spread);
          q.unshiftAll(priority, [next]);
          model.unshift(priority, next++);
        } else {
          got.push(q.shift());
          want.push(model.shift());
        }
        expect(q.size).toBe(model.items.length);
      }
      while (q.size > 0) { got.push(q.shift()); want.push(model.shift()); }
      expect(got).toEqual(want);
      expect(q.shift()).toBeUndefined();
    }
  });

  it('keeps few levels when each task comes with a new priority, rising or falling (a deadline as priority)', () => {
    for (const sign of [1, -1]) {
      const q = new ReadyQueue<number>();
      for (let i = 0; i < 10_000; i++) {
        q.push(sign * i, i);
        expect(q.shift()).toBe(i);
      }
      expect(q.levels).toBeLessThanOrEqual(9);
    }
  });
});
