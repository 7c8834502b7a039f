/**
 * The broker and result store engine, synchronous and I/O-free: queues,
 * consumers, unacked deliveries, delayed tasks, states, watchers, chord
 * ledger. `MemoryTransport` wraps it for one process; the TCP broker server
 * wraps it behind sockets (and a journal). It stores and forwards: every
 * decision arrives from the core as an {@link Outcome}.
 */
import type { Clock } from '../../src/clock.js';
import type { Packed } from '../../src/codec.js';
import { RevokedError, toErrorInfo } from '../../src/errors.js';
import { finalFailure } from '../../src/outcome.js';
import { TimerQueue } from '../../src/timer-queue.js';
import type {
  Batch, ChordSpec, ConsumeSpec, ConsumerHandler, DeliveryTag, Outcome, StateRecord, TaskMessage, WatchEvent,
} from '../../src/transport.js';
import { ChordLedger } from './chord-ledger.js';
import { ReadyQueue } from './ready-queue.js';

/**
 * A ready or delivered task and what the broker knows about its deliveries.
 * A delayed task waits as its bare message (48 bytes less per pending ETA)
 * and gets an entry when it comes due.
 */
export interface Entry {
  readonly message: TaskMessage;
  redelivered: boolean;
  /** Consumers that handed it back: it goes to another one if it can. */
  rejectedBy: Set<number> | null;
  /** The consumer holding it unacked, while delivered. */
  holder: ConsumerState | null;
  /** Order of becoming ready (restores FIFO order when parked tasks come back). */
  readonly seq: number;
}

/** A delayed task: its message, or its entry when it was handed back with a delay. */
type Waiting = Entry | TaskMessage;

function messageOf(task: Waiting): TaskMessage {
  return 'message' in task ? task.message : task;
}

/** A queued task's message, as the store keeps it until the task has a record (read as PENDING). */
function isQueued(known: StateRecord | TaskMessage): known is TaskMessage {
  return 'args' in known;
}

interface ConsumerState {
  readonly id: number;
  readonly queues: readonly string[];
  readonly prefetch: number;
  readonly names: ReadonlySet<string> | null;
  readonly handler: ConsumerHandler;
  /** Deliveries it holds unacked (they are in `#deliveries`, `holder` set to it). */
  unacked: number;
}

interface QueueState {
  readonly ready: ReadyQueue<Entry>;
  /**
   * Ready tasks whose name no consumer of the queue accepts (all of them
   * filter by name, `ignoreUnknown`), set aside per name, oldest first, so
   * they cannot hold up the tasks behind them; back at the front of the
   * queue when a consumer that takes the name joins.
   */
  readonly parked: Map<string, Entry[]>;
  parkedCount: number;
  consumers: ConsumerState[];
  rr: number;
}

const FINAL = new Set(['SUCCESS', 'FAILURE', 'REVOKED']);
/** How many tasks one dispatch pass looks past (held back for a consumer that is full or handed them back) before it stops. */
const MAX_SKIP = 256;

/** How the store reads a queued task that has no record yet. */
function pendingRecord(message: TaskMessage): StateRecord {
  return { id: message.id, name: message.name, state: 'PENDING', attempts: message.attempt, createdAt: message.createdAt, updatedAt: message.createdAt };
}

export function isFinal(state: string): boolean {
  return FINAL.has(state);
}

/** Per-queue counters for `status`. */
export interface QueueStats {
  readonly name: string;
  readonly ready: number;
  readonly unacked: number;
  readonly consumers: number;
}

/** Everything a durable broker must keep across a restart (see transports/tcp/journal.ts). */
export interface CoreSnapshot {
  readonly states: readonly StateRecord[];
  /** Ready, delayed and unacked tasks; unacked ones come back ready. */
  readonly tasks: readonly TaskMessage[];
  readonly chords: ReadonlyArray<{ readonly spec: ChordSpec; readonly results: ReadonlyArray<Packed | null> }>;
  readonly closedChords: readonly string[];
  readonly revoked: readonly string[];
}

type Listener = (event: WatchEvent) => void;

export class BrokerCore {
  readonly #clock: Clock;
  readonly #revokedRetention: number;
  readonly #queues = new Map<string, QueueState>();
  readonly #consumers = new Map<number, ConsumerState>();
  /** Unacked deliveries, each entry's `holder` its consumer. */
  readonly #deliveries = new Map<DeliveryTag, Entry>();
  /**
   * What the store knows of each id: a state record, or, for a task that is
   * queued and has no record yet, its message (read as PENDING). Keeping
   * the message instead of a PENDING record saves ~100 bytes per pending task.
   */
  readonly #states = new Map<string, StateRecord | TaskMessage>();
  /** Per id, its one listener (the common case: one `get()`), or a set of them. */
  readonly #watchers = new Map<string, Listener | Set<Listener>>();
  readonly #revoked = new Set<string>();
  /** Ids revoked while queued: dropped when they come up, even after the revocation record expired. */
  readonly #dropped = new Set<string>();
  readonly #chords = new ChordLedger();
  readonly #delayed: TimerQueue<Waiting>;
  readonly #expiry: TimerQueue<string>;
  #dirty = new Set<QueueState>();
  #scheduled = false;
  #nextTag = 1;
  #nextSeq = 0;
  #nextConsumer = 1;

  /**
   * @param revokedRetention ms a REVOKED record written by `revoke()` is kept (the core's
   *   `resultsExpireIn` is not known here). Default 24 h.
   */
  constructor(clock: Clock, revokedRetention = 24 * 60 * 60 * 1000) {
    this.#clock = clock;
    this.#revokedRetention = revokedRetention;
    this.#delayed = new TimerQueue(clock, (entry) => this.#ready(entry));
    this.#expiry = new TimerQueue(clock, (id) => this.#expire(id));
  }

  publish(batch: Batch): void {
    for (const spec of batch.chords) this.#chords.open(spec);
    for (const message of batch.tasks) {
      if (this.#states.has(message.id) || this.#revoked.has(message.id)) continue;
      this.#states.set(message.id, message);
      if (this.#watchers.has(message.id)) this.#notify(message.id, { type: 'state', record: pendingRecord(message) });
      this.#enqueue(message);
    }
  }

  consume(spec: ConsumeSpec, handler: ConsumerHandler): number {
    const consumer: ConsumerState = {
      id: this.#nextConsumer++, queues: [...spec.queues], prefetch: spec.prefetch,
      names: spec.names === null ? null : new Set(spec.names), handler, unacked: 0,
    };
    this.#consumers.set(consumer.id, consumer);
    for (const name of consumer.queues) {
      const q = this.#queue(name);
      q.consumers.push(consumer);
      this.#unpark(q, consumer);
      this.#markDirty(q);
    }
    return consumer.id;
  }

  /** Stops a consumer; its unacked deliveries go back to the front of their queues, marked redelivered. */
  cancel(consumerId: number): void {
    const consumer = this.#consumers.get(consumerId);
    if (consumer === undefined) return;
    this.#consumers.delete(consumerId);
    for (const name of consumer.queues) {
      const q = this.#queue(name);
      q.consumers = q.consumers.filter((c) => c !== consumer);
    }
    const back = [...this.#deliveries].filter(([, e]) => e.holder === consumer).sort((a, b) => b[0] - a[0]);
    for (const [tag, entry] of back) {
      this.#deliveries.delete(tag);
      entry.holder = null;
      entry.redelivered = true;
      const q = this.#queue(entry.message.queue);
      q.ready.unshiftAll(entry.message.priority, [entry]);
      this.#markDirty(q);
    }
    consumer.unacked = 0;
  }

  settle(tag: DeliveryTag, outcome: Outcome): void {
    const entry = this.#take(tag);
    if (entry === undefined) return;
    // Revoked between delivery and start: nothing is queued to drop any more.
    if (this.#dropped.size > 0) this.#dropped.delete(entry.message.id);
    this.apply(outcome);
  }

  /** Applies an outcome (also used when replaying a journal, where there is no delivery). */
  apply(outcome: Outcome): void {
    // A final state is sticky: a duplicate run cannot undo a SUCCESS.
    for (const record of outcome.records) {
      const current = this.#record(record.id);
      if (current === undefined || !FINAL.has(current.state)) this.#putState(record);
    }
    const retry = outcome.retry;
    const retryState = retry === null ? undefined : this.#record(retry.id)?.state;
    if (retry !== null && !this.#revoked.has(retry.id) && (retryState === undefined || !FINAL.has(retryState))) this.#enqueue(retry);
    if (outcome.publish !== null) this.publish(outcome.publish);
    const chord = outcome.chord;
    if (chord !== null) {
      if (chord.result === null) this.#chords.fail(chord.ref.id);
      else {
        const callback = this.#chords.succeed(chord.ref.id, chord.ref.index, chord.result);
        if (callback !== null) this.publish(callback);
      }
    }
  }

  /** Hands a delivery back undelivered; another consumer gets it first if there is one. */
  release(tag: DeliveryTag, delayMs: number): void {
    const holder = this.#deliveries.get(tag)?.holder;
    const entry = this.#take(tag);
    if (entry === undefined || holder == null) return;
    (entry.rejectedBy ??= new Set()).add(holder.id);
    if (delayMs > 0) return this.#delayed.add(this.#clock.now() + delayMs, entry);
    // Back to the front: a handed-back task keeps its place in FIFO order.
    if (this.#isDropped(entry.message.id)) return;
    const q = this.#queue(entry.message.queue);
    q.ready.unshiftAll(entry.message.priority, [entry]);
    this.#markDirty(q);
  }

  /** Records a non-final state; a final state is never replaced by a non-final one. */
  setState(record: StateRecord): void {
    const current = this.#record(record.id);
    if (current !== undefined && FINAL.has(current.state)) return;
    this.#putState(record);
  }

  getState(id: string): StateRecord | undefined {
    return this.#record(id);
  }

  #record(id: string): StateRecord | undefined {
    const known = this.#states.get(id);
    return known === undefined || !isQueued(known) ? known : pendingRecord(known);
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
    this.#notify(id, { type: 'progress', id, value });
  }


  revoke(id: string): void {
    this.#revoked.add(id);
    const known = this.#states.get(id);
    const current = this.#record(id);
    const now = this.#clock.now();
    if (known !== undefined && isQueued(known)) {
      // Queued and not started: the core's REVOKED outcome fails the rest of its workflow (chain links,
      // chord callbacks) so no handle waits forever.
      this.#dropped.add(id);
      const ctx = { now, resultsExpireIn: this.#revokedRetention, rng: () => 0 };
      const { stack: _stack, ...info } = toErrorInfo(new RevokedError(id)); // a broker-side stack says nothing useful
      this.apply(finalFailure(known, known.attempt, 'REVOKED', info, ctx));
    } else if (current === undefined || (!FINAL.has(current.state) && current.state !== 'STARTED')) {
      this.#putState({
        id, name: current?.name ?? '', state: 'REVOKED', attempts: current?.attempts ?? 0,
        createdAt: current?.createdAt ?? now, updatedAt: now, expiresAt: now + this.#revokedRetention,
      });
    }
    for (const entry of this.#deliveries.values()) {
      if (entry.message.id === id) entry.holder?.handler.revoked(id);
    }
  }

  stats(): QueueStats[] {
    const out: QueueStats[] = [];
    for (const [name, q] of this.#queues) {
      let unacked = 0;
      for (const e of this.#deliveries.values()) if (e.message.queue === name) unacked++;
      out.push({ name, ready: q.ready.size + q.parkedCount, unacked, consumers: q.consumers.length });
    }
    return out;
  }

  /** Every task the broker holds (ready, delayed or unacked), for snapshots. */
  *tasks(): IterableIterator<TaskMessage> {
    for (const q of this.#queues.values()) {
      for (const e of q.ready) yield e.message;
      for (const parked of q.parked.values()) for (const e of parked) yield e.message;
    }
    for (const e of this.#deliveries.values()) yield e.message;
  }

  /**
   * Takes back an unacked delivery whose holder kept it too long (visibility
   * timeout): it goes to the front of its queue, marked redelivered, for any
   * consumer. Returns false when `tag` is not an unacked delivery.
   */
  requeue(tag: DeliveryTag): boolean {
    const entry = this.#deliveries.get(tag);
    if (entry === undefined || entry.holder === null) return false;
    this.#deliveries.delete(tag);
    entry.holder.unacked--;
    entry.holder = null;
    entry.redelivered = true;
    const q = this.#queue(entry.message.queue);
    q.ready.unshiftAll(entry.message.priority, [entry]);
    this.#markDirty(q);
    return true;
  }

  /** Drops queued (ready or delayed) tasks for which `keep` is false. O(n); for journal replay. */
  retain(keep: (message: TaskMessage) => boolean): void {
    for (const q of this.#queues.values()) {
      q.ready.retain((e) => keep(e.message));
      q.parkedCount = 0;
      for (const [name, parked] of q.parked) {
        const kept = parked.filter((e) => keep(e.message));
        if (kept.length === 0) q.parked.delete(name);
        else q.parked.set(name, kept);
        q.parkedCount += kept.length;
      }
    }
    this.#delayed.filter((e) => keep(messageOf(e)));
  }

  /** A consistent copy of everything a restart needs (revoked tasks, never to be delivered, left out). O(n). */
  snapshot(): CoreSnapshot {
    const tasks = [...this.tasks()];
    // TimerQueue has no iterator: a filter that keeps everything visits every delayed entry.
    this.#delayed.filter((e) => { tasks.push(messageOf(e)); return true; });
    return {
      states: [...this.#states.values()].filter((v): v is StateRecord => !isQueued(v)), tasks: tasks.filter((m) => !this.#revoked.has(m.id)),
      chords: [...this.#chords.entries()].map((c) => ({ spec: c.spec, results: c.results.map((r) => r ?? null) })),
      closedChords: [...this.#chords.closedIds()], revoked: [...this.#revoked],
    };
  }

  /** Loads a snapshot into an empty core (before any consumer or watcher). */
  load(snapshot: CoreSnapshot): void {
    for (const record of snapshot.states) this.#putState(record);
    for (const id of snapshot.revoked) this.#revoked.add(id);
    for (const id of snapshot.closedChords) this.#chords.markClosed(id);
    for (const c of snapshot.chords) this.#chords.restore(c.spec, c.results);
    for (const message of snapshot.tasks) {
      if (!this.#states.has(message.id)) this.#states.set(message.id, message);
      this.#enqueue(message);
    }
  }

  close(): void {
    this.#delayed.clear();
    this.#expiry.clear();
    for (const id of [...this.#consumers.keys()]) this.cancel(id);
    this.#watchers.clear();
  }

  /** Ends an unacked delivery; its consumer has room again, so every queue it reads may dispatch. */
  #take(tag: DeliveryTag): Entry | undefined {
    const entry = this.#deliveries.get(tag);
    const consumer = entry?.holder;
    if (entry === undefined || consumer == null) return undefined;
    this.#deliveries.delete(tag);
    entry.holder = null;
    consumer.unacked--;
    for (const name of consumer.queues) this.#markDirty(this.#queue(name));
    return entry;
  }

  #enqueue(message: TaskMessage): void {
    if (message.eta > this.#clock.now()) this.#delayed.add(message.eta, message);
    else this.#ready(message);
  }

  #ready(task: Waiting): void {
    const entry = 'message' in task ? task : { message: task, redelivered: false, rejectedBy: null, holder: null, seq: this.#nextSeq++ };
    if (this.#isDropped(entry.message.id)) return;
    const q = this.#queue(entry.message.queue);
    q.ready.push(entry.message.priority, entry);
    this.#markDirty(q);
  }

  #putState(record: StateRecord): void {
    this.#states.set(record.id, record);
    if (record.expiresAt !== undefined) this.#expiry.add(record.expiresAt, record.id);
    this.#notify(record.id, { type: 'state', record });
  }

  #notify(id: string, event: WatchEvent): void {
    const known = this.#watchers.get(id);
    if (known === undefined) return;
    if (typeof known === 'function') return known(event);
    for (const listener of [...known]) listener(event);
  }

  #expire(id: string): void {
    const record = this.#record(id);
    if (record?.expiresAt === undefined || record.expiresAt > this.#clock.now()) return;
    this.#states.delete(id);
    this.#revoked.delete(id);
  }

  #queue(name: string): QueueState {
    let q = this.#queues.get(name);
    if (q === undefined) this.#queues.set(name, (q = { ready: new ReadyQueue(), parked: new Map(), parkedCount: 0, consumers: [], rr: 0 }));
    return q;
  }

  #markDirty(q: QueueState): void {
    if (q.consumers.length === 0) return;
    this.#dirty.add(q);
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => this.#dispatch());
  }

  #dispatch(): void {
    this.#scheduled = false;
    const dirty = this.#dirty;
    this.#dirty = new Set();
    for (const q of dirty) this.#dispatchQueue(q);
  }

  #dispatchQueue(q: QueueState): void {
    const skipped: Array<{ priority: number; item: Entry }> = [];
    while (q.ready.size > 0 && skipped.length < MAX_SKIP && this.#hasCapacity(q)) {
      const next = q.ready.shift() as { priority: number; item: Entry };
      if (this.#isDropped(next.item.message.id)) continue;
      const consumer = this.#pick(q, next.item);
      if (consumer !== null) this.#deliver(consumer, next.item);
      else if (this.#accepted(q, next.item.message.name)) skipped.push(next);
      else this.#park(q, next.item);
    }
    for (let i = skipped.length - 1; i >= 0; i--) {
      const s = skipped[i] as { priority: number; item: Entry };
      q.ready.unshiftAll(s.priority, [s.item]);
    }
  }

  /** Revoked (a queued task revoked is dropped once, when it comes up). */
  #isDropped(id: string): boolean {
    if (this.#dropped.size > 0 && this.#dropped.delete(id)) return true;
    return this.#revoked.has(id);
  }

  /** Whether any consumer of the queue takes tasks of this name (full or not). */
  #accepted(q: QueueState, name: string): boolean {
    for (const c of q.consumers) if (c.names === null || c.names.has(name)) return true;
    return false;
  }

  #park(q: QueueState, entry: Entry): void {
    const name = entry.message.name;
    const parked = q.parked.get(name);
    if (parked === undefined) q.parked.set(name, [entry]);
    else parked.push(entry);
    q.parkedCount++;
  }

  /** A consumer joined: the parked tasks it takes go back to the front of the queue, in their order. */
  #unpark(q: QueueState, consumer: ConsumerState): void {
    if (q.parkedCount === 0) return;
    const byPriority = new Map<number, Entry[]>();
    for (const [name, parked] of q.parked) {
      if (consumer.names !== null && !consumer.names.has(name)) continue;
      q.parked.delete(name);
      q.parkedCount -= parked.length;
      for (const e of parked) {
        const level = byPriority.get(e.message.priority);
        if (level === undefined) byPriority.set(e.message.priority, [e]);
        else level.push(e);
      }
    }
    // Several names: their tasks go back oldest first by publish order within each priority.
    for (const [priority, entries] of byPriority) q.ready.unshiftAll(priority, entries.sort((a, b) => a.seq - b.seq));
  }

  #hasCapacity(q: QueueState): boolean {
    for (const c of q.consumers) if (c.unacked < c.prefetch) return true;
    return false;
  }

  /** Round-robin over the queue's consumers with room that accept the task and did not hand it back. */
  #pick(q: QueueState, entry: Entry): ConsumerState | null {
    const n = q.consumers.length;
    for (let i = 0; i < n; i++) {
      const c = q.consumers[(q.rr + i) % n] as ConsumerState;
      if (c.unacked >= c.prefetch) continue;
      if (c.names !== null && !c.names.has(entry.message.name)) continue;
      if (entry.rejectedBy?.has(c.id) === true) continue;
      q.rr = (q.rr + i + 1) % n;
      return c;
    }
    return null;
  }

  #deliver(consumer: ConsumerState, entry: Entry): void {
    const tag = this.#nextTag++;
    consumer.unacked++;
    entry.holder = consumer;
    this.#deliveries.set(tag, entry);
    const redelivered = entry.redelivered;
    entry.redelivered = true;
    consumer.handler.deliver({ tag, message: entry.message, redelivered });
  }
}
