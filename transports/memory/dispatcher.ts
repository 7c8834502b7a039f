/**
 * The queues of the broker core and their consumers: ready tasks by
 * priority, unacked deliveries, prefetch, round-robin dispatch, and tasks
 * set aside because no consumer of their queue takes their name.
 * Synchronous, I/O-free; a dispatch pass runs once per microtask turn for
 * every queue that changed.
 */
import type { ConsumeSpec, ConsumerHandler, DeliveryTag, TaskMessage } from '../../src/transport.js';
import { ReadyQueue } from './ready-queue.js';
import { Unacked } from './unacked.js';

/** A ready or delivered task and what the broker knows about its deliveries. */
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

interface ConsumerState {
  readonly id: number;
  /** The queues it consumes (a settle marks them without a lookup by name). */
  readonly states: readonly QueueState[];
  readonly prefetch: number;
  readonly names: ReadonlySet<string> | null;
  readonly handler: ConsumerHandler;
  /** Deliveries it holds unacked (they are in `#deliveries`, `holder` set to it). */
  unacked: number;
}

interface QueueState {
  readonly ready: ReadyQueue<Entry>;
  /**
   * Ready tasks that no consumer of the queue takes (all of them filter by
   * name, `ignoreUnknown`, or the ones that do handed the task back), set
   * aside per name, oldest first, so they cannot hold up the tasks behind
   * them; back at the front of the queue when a consumer that takes the
   * name joins.
   */
  readonly parked: Map<string, Entry[]>;
  parkedCount: number;
  /**
   * Ready tasks whose consumers were all full while another consumer of the queue had room (it filters by
   * name), set aside per name in dispatch order, so they do not hold up the tasks behind them; the next one
   * goes out, before a later task of its name, once a consumer that takes it has room.
   */
  readonly held: Map<string, ReadyQueue<Entry>>;
  heldCount: number;
  consumers: ConsumerState[];
  rr: number;
}

/** Per-queue counters for `status`. */
export interface QueueStats {
  readonly name: string;
  readonly ready: number;
  readonly unacked: number;
  readonly consumers: number;
}

/** How many tasks one dispatch pass looks past (handed back by the consumers with room, wanted by a full one) before it stops. */
const MAX_SKIP = 256;

export class Dispatcher {
  readonly #isDropped: (message: TaskMessage) => boolean;
  readonly #queues = new Map<string, QueueState>();
  readonly #consumers = new Map<number, ConsumerState>();
  /** Unacked deliveries, each entry's `holder` its consumer. */
  readonly #deliveries = new Unacked<Entry>();
  #dirty = new Set<QueueState>();
  #spare = new Set<QueueState>();
  #scheduled = false;
  #nextTag = 1;
  #nextSeq = 0;
  #nextConsumer = 1;

  /** `isDropped(message)`: revoked, never to be delivered (checked when a task comes up). */
  constructor(isDropped: (message: TaskMessage) => boolean) {
    this.#isDropped = isDropped;
  }

  /** Makes a due task ready (an entry handed back with a delay keeps what it knows). */
  push(task: Entry | TaskMessage): void {
    const entry = 'message' in task ? task : { message: task, redelivered: false, rejectedBy: null, holder: null, seq: this.#nextSeq++ };
    if (this.#isDropped(entry.message)) return;
    const q = this.#queue(entry.message.queue);
    q.ready.push(entry.message.priority, entry);
    this.#markDirty(q);
  }

  consume(spec: ConsumeSpec, handler: ConsumerHandler): number {
    const consumer: ConsumerState = {
      id: this.#nextConsumer++, states: spec.queues.map((name) => this.#queue(name)), prefetch: spec.prefetch,
      names: spec.names === null ? null : new Set(spec.names), handler, unacked: 0,
    };
    this.#consumers.set(consumer.id, consumer);
    for (const q of consumer.states) {
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
    for (const q of consumer.states) q.consumers = q.consumers.filter((c) => c !== consumer);
    const back = this.#deliveries.entries().filter(([, e]) => e.holder === consumer).sort((a, b) => b[0] - a[0]);
    for (const [tag] of back) this.requeue(tag);
  }

  /** The id of the consumer holding an unacked delivery. */
  holderOf(tag: DeliveryTag): number | undefined {
    return this.#deliveries.get(tag)?.holder?.id;
  }

  /** Ends an unacked delivery (ack or hand-back); its consumer has room again. */
  take(tag: DeliveryTag): Entry | undefined {
    const entry = this.#deliveries.get(tag);
    const consumer = entry?.holder;
    if (entry === undefined || consumer == null) return undefined;
    this.#deliveries.delete(tag);
    entry.holder = null;
    consumer.unacked--;
    for (const q of consumer.states) this.#markDirty(q);
    return entry;
  }

  /** Puts a task back at the front of its queue: it keeps its place in FIFO order. */
  unshift(entry: Entry): void {
    if (this.#isDropped(entry.message)) return;
    const q = this.#queue(entry.message.queue);
    q.ready.unshiftAll(entry.message.priority, [entry]);
    this.#markDirty(q);
  }

  /**
   * Takes back an unacked delivery whose holder kept it too long (visibility
   * timeout) or went away: it goes to the front of its queue, marked
   * redelivered, for any consumer. Returns false when `tag` is not an unacked delivery.
   */
  requeue(tag: DeliveryTag): boolean {
    const entry = this.take(tag);
    if (entry === undefined) return false;
    entry.redelivered = true;
    this.unshift(entry);
    return true;
  }

  /** Tells the consumers holding a delivery of `id` that it was revoked. */
  revoked(id: string): void {
    for (const entry of this.#deliveries.values()) {
      if (entry.message.id === id) entry.holder?.handler.revoked(id);
    }
  }

  stats(): QueueStats[] {
    const out: QueueStats[] = [];
    for (const [name, q] of this.#queues) {
      let unacked = 0;
      for (const e of this.#deliveries.values()) if (e.message.queue === name) unacked++;
      out.push({ name, ready: q.ready.size + q.parkedCount + q.heldCount, unacked, consumers: q.consumers.length });
    }
    return out;
  }

  /** Every ready, parked or unacked task. */
  *tasks(): IterableIterator<TaskMessage> {
    for (const q of this.#queues.values()) {
      for (const e of q.ready) yield e.message;
      for (const held of q.held.values()) for (const e of held) yield e.message;
      for (const parked of q.parked.values()) for (const e of parked) yield e.message;
    }
    for (const e of this.#deliveries.values()) yield e.message;
  }

  /** Drops ready and parked tasks for which `keep` is false. O(n). */
  retain(keep: (message: TaskMessage) => boolean): void {
    for (const q of this.#queues.values()) {
      q.ready.retain((e) => keep(e.message));
      q.heldCount = 0;
      for (const [name, held] of q.held) {
        held.retain((e) => keep(e.message));
        if (held.size === 0) q.held.delete(name);
        q.heldCount += held.size;
      }
      q.parkedCount = 0;
      for (const [name, parked] of q.parked) {
        const kept = parked.filter((e) => keep(e.message));
        if (kept.length === 0) q.parked.delete(name);
        else q.parked.set(name, kept);
        q.parkedCount += kept.length;
      }
    }
  }

  close(): void {
    for (const id of [...this.#consumers.keys()]) this.cancel(id);
  }

  #queue(name: string): QueueState {
    let q = this.#queues.get(name);
    if (q === undefined) this.#queues.set(name, (q = { ready: new ReadyQueue(), parked: new Map(), parkedCount: 0, held: new Map(), heldCount: 0, consumers: [], rr: 0 }));
    return q;
  }

  #markDirty(q: QueueState): void {
    // Nothing to hand out, or no one to hand it to (a push marks the queue again).
    if (q.consumers.length === 0 || (q.ready.size === 0 && q.heldCount === 0)) return;
    this.#dirty.add(q);
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(this.#dispatchBound);
  }

  readonly #dispatchBound = (): void => this.#dispatch();

  #dispatch(): void {
    this.#scheduled = false;
    // Swapped, not remade: a dispatch may mark queues for the next pass.
    const dirty = this.#dirty;
    this.#dirty = this.#spare;
    try {
      for (const q of dirty) {
        dirty.delete(q);
        this.#dispatchQueue(q);
      }
    } finally {
      // A consumer's deliver threw: the queues this pass did not reach get the next one.
      for (const q of dirty) this.#markDirty(q);
      dirty.clear();
      this.#spare = dirty;
    }
  }

  #dispatchQueue(q: QueueState): void {
    let skipped: Entry[] | undefined;
    try {
      while ((skipped === undefined || skipped.length < MAX_SKIP) && this.#hasCapacity(q)) {
        const entry = this.#next(q);
        if (entry === undefined) break;
        if (this.#isDropped(entry.message)) continue;
        const consumer = this.#pick(q, entry);
        if (consumer !== null) this.#deliver(consumer, entry);
        else if (!this.#accepted(q, entry)) this.#park(q, entry);
        // Held for a full consumer: set aside (not looked past on every pass, which left a consumer with room
        // waiting behind a full one's backlog). Handed back ones stay in the queue: they differ per consumer.
        else if (entry.rejectedBy === null) this.#hold(q, entry);
        else (skipped ??= []).push(entry);
      }
    } finally {
      // Back in front, in order (also when a consumer's deliver threw: they are in no queue until then).
      for (let i = (skipped?.length ?? 0) - 1; i >= 0; i--) {
        const entry = (skipped as Entry[])[i] as Entry;
        q.ready.unshiftAll(entry.message.priority, [entry]);
      }
    }
  }

  /** The next task to hand out: the head of the queue, or a held task before it that a consumer with room takes. */
  #next(q: QueueState): Entry | undefined {
    if (q.heldCount === 0) return q.ready.shift();
    let best = q.ready.peek();
    let from = q.ready;
    for (const [name, held] of q.held) {
      const head = held.peek() as Entry;
      if ((best === undefined || precedes(head, best)) && this.#hasRoomFor(q, name)) {
        best = head;
        from = held;
      }
    }
    if (best === undefined) return undefined;
    from.shift();
    if (from !== q.ready) {
      q.heldCount--;
      if (from.size === 0) q.held.delete(best.message.name);
    }
    return best;
  }

  #hold(q: QueueState, entry: Entry): void {
    const name = entry.message.name;
    let held = q.held.get(name);
    if (held === undefined) q.held.set(name, (held = new ReadyQueue()));
    // In its place (a redelivery that came back to the front is older than the tasks held before it).
    held.insert(entry.message.priority, entry, precedes);
    q.heldCount++;
  }

  #hasRoomFor(q: QueueState, name: string): boolean {
    for (const c of q.consumers) if (c.unacked < c.prefetch && (c.names === null || c.names.has(name))) return true;
    return false;
  }

  /** Whether any consumer of the queue takes this task (full or not): takes its name and did not hand it back. */
  #accepted(q: QueueState, entry: Entry): boolean {
    const name = entry.message.name;
    for (const c of q.consumers) {
      if ((c.names === null || c.names.has(name)) && entry.rejectedBy?.has(c.id) !== true) return true;
    }
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
    // Several names: their tasks go back oldest first within each priority.
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

/** Whether `a` goes out before `b`: higher priority first, then in the order they became ready. */
function precedes(a: Entry, b: Entry): boolean {
  return a.message.priority > b.message.priority || (a.message.priority === b.message.priority && a.seq < b.seq);
}
