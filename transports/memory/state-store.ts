/**
 * The result store of the broker core: what is known of each task id (a
 * state record, or the message of a task still queued, read as PENDING),
 * who watches it, and when finished states expire. Synchronous, I/O-free.
 */
import type { Clock } from '../../src/clock.js';
import type { Packed } from '../../src/codec.js';
import { TimerQueue } from '../../src/timer-queue.js';
import type { StateRecord, TaskMessage, WatchEvent } from '../../src/transport.js';

type Listener = (event: WatchEvent) => void;

const FINAL = new Set(['SUCCESS', 'FAILURE', 'REVOKED']);

export function isFinal(state: string): boolean {
  return FINAL.has(state);
}

/** A queued task's message, as the store keeps it until the task has a record. */
function isQueued(known: StateRecord | TaskMessage): known is TaskMessage {
  return 'args' in known;
}

/** How the store reads a queued task that has no record yet. */
function pendingRecord(message: TaskMessage): StateRecord {
  return { id: message.id, name: message.name, state: 'PENDING', attempts: message.attempt, createdAt: message.createdAt, updatedAt: message.createdAt };
}

/** Calls the watchers of an id (the event is only made when there are some). */
function tell(watching: Listener | Set<Listener>, event: WatchEvent): void {
  if (typeof watching === 'function') return watching(event);
  for (const listener of [...watching]) listener(event);
}

export class StateStore {
  readonly #clock: Clock;
  readonly #onExpired: (id: string) => void;
  /**
   * A state record, or, for a task that is queued and has no record yet, its
   * message (read as PENDING). Keeping the message instead of a PENDING
   * record saves ~100 bytes per pending task.
   */
  readonly #known = new Map<string, StateRecord | TaskMessage>();
  /** Per id, its one listener (the common case: one `get()`), or a set of them. */
  readonly #watchers = new Map<string, Listener | Set<Listener>>();
  /**
   * Ids by expiry time, one entry per distinct time: records finished in the same millisecond (hundreds at full
   * speed) share one array. An entry per record cost ~0.5 us per task (three growing arrays in the heap, a
   * boxed key): ~10% of in-memory send -> result, measured by leaving it out.
   */
  readonly #expiry: TimerQueue<string[]>;
  #lastDue = Number.NaN;
  #lastIds: string[] = [];

  /** `onExpired` hears of each id whose record expired (and was dropped). */
  constructor(clock: Clock, onExpired: (id: string) => void) {
    this.#clock = clock;
    this.#onExpired = onExpired;
    this.#expiry = new TimerQueue(clock, (ids) => {
      if (ids === this.#lastIds) this.#lastDue = Number.NaN; // gone: a record due at that same time starts a new entry
      for (const id of ids) this.#expire(id);
    });
  }

  has(id: string): boolean {
    return this.#known.has(id);
  }

  /** The record of `id`; PENDING for a queued task without one. */
  get(id: string): StateRecord | undefined {
    const known = this.#known.get(id);
    return known === undefined || !isQueued(known) ? known : pendingRecord(known);
  }

  /** The message of a task that is queued and has no record yet. */
  queuedMessage(id: string): TaskMessage | undefined {
    const known = this.#known.get(id);
    return known !== undefined && isQueued(known) ? known : undefined;
  }

  /** Notes a newly queued task (PENDING until it gets a record). */
  queued(message: TaskMessage): void {
    this.#known.set(message.id, message);
    const watching = this.#watchers.get(message.id);
    if (watching !== undefined) tell(watching, { type: 'state', record: pendingRecord(message) });
  }

  /** Stores a record, arms its expiry and tells the watchers. */
  put(record: StateRecord): void {
    this.#known.set(record.id, record);
    const due = record.expiresAt;
    if (due !== undefined) {
      if (due === this.#lastDue) this.#lastIds.push(record.id);
      else this.#expiry.add((this.#lastDue = due), (this.#lastIds = [record.id]));
    }
    const watching = this.#watchers.get(record.id);
    if (watching !== undefined) tell(watching, { type: 'state', record });
  }

  /** Stores a record unless the current one is final (a final state is sticky). */
  putUnlessFinal(record: StateRecord): void {
    const known = this.#known.get(record.id);
    if (known === undefined || isQueued(known) || !FINAL.has(known.state)) this.put(record);
  }

  watch(id: string, listener: Listener): () => void {
    const known = this.#watchers.get(id);
    if (known === undefined) this.#watchers.set(id, listener);
    else if (typeof known === 'function') this.#watchers.set(id, new Set([known, listener]));
    else known.add(listener);
    return () => {
      const now = this.#watchers.get(id);
      if (now === listener) this.#watchers.delete(id);
      else if (typeof now === 'object' && now.delete(listener) && now.size === 0) this.#watchers.delete(id);
    };
  }

  progress(id: string, value: Packed): void {
    const watching = this.#watchers.get(id);
    if (watching !== undefined) tell(watching, { type: 'progress', id, value });
  }

  /** Every stored record (queued tasks without one left out), for snapshots. */
  records(): StateRecord[] {
    return [...this.#known.values()].filter((v): v is StateRecord => !isQueued(v));
  }

  close(): void {
    this.#expiry.clear();
    this.#lastDue = Number.NaN;
    this.#watchers.clear();
  }

  #expire(id: string): void {
    const record = this.get(id);
    if (record?.expiresAt === undefined || record.expiresAt > this.#clock.now()) return;
    this.#known.delete(id);
    this.#onExpired(id);
  }
}
