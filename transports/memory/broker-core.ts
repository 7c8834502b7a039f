/**
 * The broker and result store engine, synchronous and I/O-free: queues and
 * consumers ({@link Dispatcher}), states and watchers ({@link StateStore}),
 * delayed tasks, revocations and the chord ledger. `MemoryTransport` wraps
 * it for one process; the TCP broker server wraps it behind sockets (and a
 * journal). It stores and forwards: every decision arrives from the core as
 * an {@link Outcome}.
 */
import type { Clock } from '../../src/clock.js';
import type { Packed } from '../../src/codec.js';
import { RevokedError, toErrorInfo, type MillwrightError } from '../../src/errors.js';
import { finalFailure } from '../../src/outcome.js';
import { TimerQueue } from '../../src/timer-queue.js';
import { taskIds } from '../../src/workflow.js';
import type {
  Batch, ChordSpec, ConsumeSpec, ConsumerHandler, DeliveryTag, Outcome, StateRecord, TaskMessage, WatchEvent,
} from '../../src/transport.js';
import { ChordLedger } from './chord-ledger.js';
import { Dispatcher, type Entry, type QueueStats } from './dispatcher.js';
import { isFinal, StateStore } from './state-store.js';

export { isFinal, type QueueStats };

/**
 * A delayed task: its bare message (48 bytes less per pending ETA than an
 * entry), or its entry when it was handed back with a delay.
 */
type Waiting = Entry | TaskMessage;

function messageOf(task: Waiting): TaskMessage {
  return 'message' in task ? task.message : task;
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

export class BrokerCore {
  readonly #clock: Clock;
  readonly #revokedRetention: number;
  readonly #queues: Dispatcher;
  readonly #states: StateStore;
  readonly #revoked = new Set<string>();
  /**
   * Tasks revoked while queued, by id: that very message (not another one sent later under the same id,
   * once the revocation expired) is dropped when it comes up, even after the revocation record expired.
   */
  readonly #dropped = new Map<string, TaskMessage>();
  readonly #chords = new ChordLedger();
  readonly #delayed: TimerQueue<Waiting>;
  /** In load(): nothing is dropped yet. */
  #loading = false;

  /**
   * @param revokedRetention ms a REVOKED record written by `revoke()` is kept (the core's
   *   `resultsExpireIn` is not known here). Default 24 h.
   */
  constructor(clock: Clock, revokedRetention = 24 * 60 * 60 * 1000) {
    this.#clock = clock;
    this.#revokedRetention = revokedRetention;
    this.#queues = new Dispatcher((message) => this.#isDropped(message));
    this.#states = new StateStore(clock, (id) => this.#revoked.delete(id));
    this.#delayed = new TimerQueue(clock, (task) => this.#queues.push(task));
  }

  publish(batch: Batch): void {
    for (const spec of batch.chords) this.#chords.open(spec);
    for (const message of batch.tasks) {
      if (this.#revoked.size > 0 && this.#revoked.has(message.id)) {
        // Revoked before it was ever published (a later chain link, a chord callback): it never runs, and the rest
        // of its workflow fails with it, as for a task revoked while queued, so no handle waits forever.
        if (this.#states.get(message.id)?.state === 'REVOKED') this.#fail(message);
        continue;
      }
      if (this.#states.has(message.id)) continue;
      this.#states.queued(message);
      this.#enqueue(message);
    }
  }

  consume(spec: ConsumeSpec, handler: ConsumerHandler): number {
    return this.#queues.consume(spec, handler);
  }

  /** Stops a consumer; its unacked deliveries go back to the front of their queues, marked redelivered. */
  cancel(consumerId: number): void {
    this.#queues.cancel(consumerId);
  }

  settle(tag: DeliveryTag, outcome: Outcome): void {
    const entry = this.#queues.take(tag);
    if (entry === undefined) return;
    // Revoked between delivery and start: nothing is queued to drop any more.
    if (this.#dropped.size > 0 && this.#dropped.get(entry.message.id) === entry.message) this.#dropped.delete(entry.message.id);
    this.apply(outcome);
  }

  /** Applies an outcome (also used when replaying a journal, where there is no delivery). */
  apply(outcome: Outcome): void {
    // A final state is sticky: a duplicate run cannot undo a SUCCESS.
    for (const record of outcome.records) this.#states.putUnlessFinal(record);
    const retry = outcome.retry;
    const retryState = retry === null ? undefined : this.#states.get(retry.id)?.state;
    if (retry !== null) {
      if (!this.#revoked.has(retry.id)) {
        if (retryState === undefined || !isFinal(retryState)) this.#enqueue(retry);
      } else if (retryState !== 'SUCCESS' && retryState !== 'FAILURE') {
        // Revoked while that attempt ran, its outcome a retry (over TCP the revocation crosses the settle on the
        // wire): it is not retried, and it ends REVOKED with the rest of its workflow, not RETRY for good.
        this.#fail(retry);
      }
    }
    if (outcome.publish !== null) this.publish(outcome.publish);
    const chord = outcome.chord;
    if (chord !== null) {
      if (chord.result === null) {
        const callback = this.#chords.fail(chord.ref.id);
        if (callback !== null) this.#failCallback(chord.ref.id, callback, outcome.records[0]);
      } else {
        const callback = this.#chords.succeed(chord.ref.id, chord.ref.index, chord.result);
        if (callback !== null) this.publish(callback);
      }
    }
  }

  /** Hands a delivery back undelivered; another consumer gets it first if there is one. */
  release(tag: DeliveryTag, delayMs: number): void {
    const holder = this.#queues.holderOf(tag);
    const entry = this.#queues.take(tag);
    if (entry === undefined || holder === undefined) return;
    (entry.rejectedBy ??= new Set()).add(holder);
    if (delayMs > 0) this.#delayed.add(this.#clock.now() + delayMs, entry);
    else this.#queues.unshift(entry);
  }

  /** Records a non-final state; a final state is never replaced by a non-final one. */
  setState(record: StateRecord): void {
    this.#states.putUnlessFinal(record);
  }

  getState(id: string): StateRecord | undefined {
    return this.#states.get(id);
  }

  watch(id: string, listener: (event: WatchEvent) => void): () => void {
    return this.#states.watch(id, listener);
  }

  progress(id: string, value: Packed): void {
    this.#states.progress(id, value);
  }

  revoke(id: string): void {
    this.#revoked.add(id);
    let queued = this.#states.queuedMessage(id);
    const current = this.#states.get(id);
    const now = this.#clock.now();
    let retry: TaskMessage | undefined;
    if (queued === undefined && current !== undefined && !isFinal(current.state) && current.state !== 'STARTED') {
      // Waiting for a retry (or handed back with a delay): taken out now.
      retry = this.#takeDelayed(id);
      // Queued or delivered with a record (RECEIVED; a retry already due, or replayed past its ETA after a restart):
      // as a queued task, dropped when it comes up, its workflow failed now. Given only a REVOKED record, a snapshot
      // left it out (revoked and final), and the rest of its workflow never failed.
      if (retry === undefined) queued = this.#queuedCopy(id);
    }
    if (queued !== undefined) {
      // Queued and not started: the core's REVOKED outcome fails the rest of its workflow (chain links,
      // chord callbacks) so no handle waits forever.
      this.#dropped.set(id, queued);
      this.#fail(queued);
    } else if (retry !== undefined) {
      // Waiting for a retry or a delayed hand-back: taken out now, not dropped when it comes up (by then the
      // revocation may have expired with its record), and its workflow fails now rather than at the retry's ETA.
      this.#fail(retry);
    } else if (current === undefined || (!isFinal(current.state) && current.state !== 'STARTED')) {
      this.#states.put({
        id, name: current?.name ?? '', state: 'REVOKED', attempts: current?.attempts ?? 0,
        createdAt: current?.createdAt ?? now, updatedAt: now, expiresAt: now + this.#revokedRetention,
      });
    }
    this.#queues.revoked(id);
  }

  stats(): QueueStats[] {
    return this.#queues.stats();
  }

  /** Every task the broker holds (ready, parked or unacked; delayed ones are in snapshots). */
  tasks(): IterableIterator<TaskMessage> {
    return this.#queues.tasks();
  }

  /** Takes back an unacked delivery kept past its visibility timeout. False when `tag` is not one. */
  requeue(tag: DeliveryTag): boolean {
    return this.#queues.requeue(tag);
  }

  /** Drops queued (ready or delayed) tasks for which `keep` is false. O(n); for journal replay. */
  retain(keep: (message: TaskMessage) => boolean): void {
    this.#queues.retain(keep);
    this.#delayed.filter((e) => keep(messageOf(e)));
    // A dropped task no longer waits to be dropped (journal replay: revoked after delivery, then acked).
    for (const [id, message] of this.#dropped) if (!keep(message)) this.#dropped.delete(id);
  }

  /**
   * A consistent copy of everything a restart needs. O(n). Revoked tasks already failed (revoked while queued, or
   * final) are left out; one revoked while it ran and not final yet stays: should it come back (its worker gone),
   * it is failed REVOKED then, after a restart as before one (that decision is not journaled).
   */
  snapshot(): CoreSnapshot {
    const tasks = [...this.#queues.tasks()];
    // TimerQueue has no iterator: a filter that keeps everything visits every delayed entry.
    this.#delayed.filter((e) => { tasks.push(messageOf(e)); return true; });
    const done = (m: TaskMessage): boolean => this.#dropped.get(m.id) === m || (this.#revoked.has(m.id) && isFinal(this.#states.get(m.id)?.state ?? 'PENDING'));
    return {
      states: this.#states.records(), tasks: tasks.filter((m) => !done(m)),
      chords: [...this.#chords.entries()].map((c) => ({ spec: c.spec, results: c.results.map((r) => r ?? null) })),
      closedChords: [...this.#chords.closedIds()], revoked: [...this.#revoked],
    };
  }

  /** Loads a snapshot into an empty core (before any consumer or watcher). */
  load(snapshot: CoreSnapshot): void {
    // A task revoked while it ran comes back queued: it is dropped (and failed REVOKED) when it comes up, not as it
    // is loaded, before the journal replays the outcome its worker settled after the snapshot.
    this.#loading = true;
    try { this.#load(snapshot); } finally { this.#loading = false; }
  }

  #load(snapshot: CoreSnapshot): void {
    for (const record of snapshot.states) this.#states.put(record);
    for (const id of snapshot.revoked) this.#revoked.add(id);
    for (const id of snapshot.closedChords) this.#chords.markClosed(id);
    for (const c of snapshot.chords) this.#chords.restore(c.spec, c.results);
    for (const message of snapshot.tasks) {
      if (!this.#states.has(message.id)) this.#states.queued(message);
      this.#enqueue(message);
    }
  }

  close(): void {
    this.#delayed.clear();
    this.#states.close();
    this.#queues.close();
  }

  /** Takes a task's message out of the delayed tasks (a retry waiting for its ETA). O(delayed tasks); for revoke. */
  #takeDelayed(id: string): TaskMessage | undefined {
    let found: TaskMessage | undefined;
    this.#delayed.filter((e) => {
      const message = messageOf(e);
      if (message.id !== id) return true;
      found = message;
      return false;
    });
    return found;
  }

  /**
   * The latest copy of `id` held in a queue, ready or unacked (during a journal replay, copies a later settle acked
   * are still there, with lower attempts). O(queued tasks); for revoke.
   */
  #queuedCopy(id: string): TaskMessage | undefined {
    let found: TaskMessage | undefined;
    for (const message of this.#queues.tasks()) if (message.id === id && (found === undefined || message.attempt > found.attempt)) found = message;
    return found;
  }

  #enqueue(message: TaskMessage): void {
    if (message.eta > 0 && message.eta > this.#clock.now()) this.#delayed.add(message.eta, message);
    else this.#queues.push(message);
  }

  /** Revoked (a task revoked while queued is dropped once, when it comes up). */
  #isDropped(message: TaskMessage): boolean {
    if (this.#loading) return false;
    const id = message.id;
    if (this.#dropped.size > 0 && this.#dropped.get(id) === message) return this.#dropped.delete(id);
    if (!this.#revoked.has(id)) return false;
    // Revoked while it waited for a retry, or while back in the queue after its worker went away (STARTED):
    // revoke() could not reach its message then. It ends REVOKED now, and so does the rest of its workflow.
    this.#fail(message);
    return true;
  }

  /**
   * A chord closed by a member's final failure: every task of its callback workflow fails with ChordError. Done here,
   * from the ledger's one copy of the callback, not from ids carried by each member (a chain of two groups of n made
   * each of n members carry n ids: n² on the wire). Timestamps come from the member's record, so a journal replay
   * writes the same records.
   */
  #failCallback(chordId: string, callback: Batch, member: StateRecord | undefined): void {
    const at = member?.updatedAt ?? this.#clock.now();
    const expiresAt = member?.expiresAt ?? at + this.#revokedRetention;
    const error = { code: 'ERR_CHORD', name: 'ChordError', message: `Chord ${chordId} failed because a member (${member?.name ?? '?'}) failed: ${member?.error?.message ?? 'unknown error'}` };
    for (const { id, name } of taskIds(callback)) {
      this.#states.putUnlessFinal({ id, name, state: 'FAILURE', error, attempts: 0, createdAt: at, updatedAt: at, expiresAt });
    }
  }

  /** Applies the REVOKED outcome of a task that will not run. */
  #fail(message: TaskMessage): void {
    this.apply(this.finalOutcome(message, message.attempt, 'REVOKED', new RevokedError(message.id)));
  }

  /**
   * The final outcome the broker itself decides for a task that will not run (revoked; too large for its
   * worker): its workflow fails too, so no handle waits forever. Its records are kept `revokedRetention` ms.
   */
  finalOutcome(message: TaskMessage, attempt: number, state: 'FAILURE' | 'REVOKED', error: MillwrightError): Outcome {
    const ctx = { now: this.#clock.now(), resultsExpireIn: this.#revokedRetention, rng: () => 0 };
    const { stack: _stack, ...info } = toErrorInfo(error); // a broker-side stack says nothing useful
    return finalFailure(message, attempt, state, info, ctx);
  }
}
