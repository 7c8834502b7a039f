/**
 * Chord bookkeeping: each member's result is recorded against its slot, so a
 * duplicate completion is not counted twice, and the callback is released by
 * the same call that records the last result: claiming and enqueuing are one
 * step, so a worker dying in between cannot lose the callback.
 */
import type { Packed } from '../../src/codec.js';
import { withResults } from '../../src/workflow.js';
import type { Batch, ChordSpec } from '../../src/transport.js';

interface Entry {
  readonly spec: ChordSpec;
  readonly results: Array<Packed | undefined>;
  filled: number;
}

export class ChordLedger {
  #open = new Map<string, Entry>();
  /** Chords that fired or failed: later (duplicate) completions are ignored. */
  #closed = new Set<string>();

  get size(): number {
    return this.#open.size;
  }

  /** Registers a chord; a chord id seen before is ignored (idempotent publish). */
  open(spec: ChordSpec): void {
    if (this.#open.has(spec.id) || this.#closed.has(spec.id)) return;
    this.#open.set(spec.id, { spec, results: new Array<Packed | undefined>(spec.count), filled: 0 });
  }

  /**
   * Records member `index`'s result. Returns the callback batch, results
   * appended, when this was the last missing result; otherwise null.
   */
  succeed(id: string, index: number, result: Packed): Batch | null {
    const entry = this.#open.get(id);
    if (entry === undefined || index < 0 || index >= entry.spec.count || entry.results[index] !== undefined) return null;
    entry.results[index] = result;
    if (++entry.filled < entry.spec.count) return null;
    this.#close(id);
    return withResults(entry.spec.callback, entry.results as Packed[]);
  }

  /**
   * A member failed for good: the chord never fires. Returns its callback (to fail with ChordError) when this
   * closed the chord; null when it was not open.
   */
  fail(id: string): Batch | null {
    const entry = this.#open.get(id);
    if (entry === undefined) return null;
    this.#close(id);
    return entry.spec.callback;
  }

  /** Open chords, for snapshots: id, count and the results so far. */
  *entries(): IterableIterator<{ spec: ChordSpec; results: ReadonlyArray<Packed | undefined> }> {
    for (const e of this.#open.values()) yield { spec: e.spec, results: e.results };
  }

  /** Ids of chords that fired or failed, for snapshots. */
  closedIds(): IterableIterator<string> {
    return this.#closed.values();
  }

  /** Re-opens a chord from a snapshot with the results recorded so far (null: missing). */
  restore(spec: ChordSpec, results: ReadonlyArray<Packed | null>): void {
    if (this.#open.has(spec.id) || this.#closed.has(spec.id)) return;
    const entry: Entry = { spec, results: new Array<Packed | undefined>(spec.count), filled: 0 };
    results.forEach((r, i) => { if (r !== null && i < spec.count) { entry.results[i] = r; entry.filled++; } });
    this.#open.set(spec.id, entry);
  }

  markClosed(id: string): void {
    this.#close(id);
  }

  #close(id: string): void {
    this.#open.delete(id);
    this.#closed.add(id);
  }
}
