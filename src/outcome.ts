/**
 * What happens after an attempt: success (links published, chord slot
 * filled), retry (same task again after its backoff), or final failure
 * (the workflow's later tasks failed, onError callbacks sent). Pure
 * functions from a message and what the attempt produced to an
 * {@link Outcome} the transport applies atomically with the ack.
 */
import { backoffDelay, DEFAULT_BACKOFF } from './backoff.js';
import { prependArg, type Packed } from './codec.js';
import { PermanentError, RetryLater, toErrorInfo, type ErrorInfo } from './errors.js';
import type { Rng } from './rng.js';
import type { Batch, ChordRef, ChordSpec, Outcome, StateRecord, TaskMessage, TaskState } from './transport.js';
import { withResults } from './workflow.js';

/** A safety net for RetryLater, which ignores `retries`. */
export const MAX_ATTEMPTS = 1000;

export interface OutcomeContext {
  /** The instant of the outcome, a plain value: every record it writes carries it (the worker sets it once per outcome). */
  readonly now: number;
  /** ms a final state is kept. */
  readonly resultsExpireIn: number;
  readonly rng: Rng;
}

export function successOutcome(message: TaskMessage, attempt: number, result: Packed, ctx: OutcomeContext): Outcome {
  return {
    records: [final(message, 'SUCCESS', attempt, ctx, result)],
    publish: message.onSuccess === undefined ? null : withResults(message.onSuccess, [result]),
    retry: null,
    chord: message.chord === undefined ? null : { ref: message.chord, result },
  };
}

/** Decides between a retry and a final failure. Returns the outcome and the retry delay (null when final). */
export function failureOutcome(message: TaskMessage, attempt: number, thrown: unknown, ctx: OutcomeContext): { outcome: Outcome; retryIn: number | null; error: ErrorInfo } {
  const error = toErrorInfo(thrown);
  const retryIn = retryDelay(message, attempt, thrown, ctx.rng);
  if (retryIn === null) return { outcome: finalFailure(message, attempt, 'FAILURE', error, ctx), retryIn, error };
  const retries = thrown instanceof RetryLater ? message.retries : message.retries - 1;
  const now = ctx.now;
  const retry: TaskMessage = { ...message, retries, attempt, eta: now + retryIn };
  const record: StateRecord = {
    id: message.id, name: message.name, state: 'RETRY', error, attempts: attempt, createdAt: message.createdAt, updatedAt: now,
  };
  return { outcome: { records: [record], publish: null, retry, chord: null }, retryIn, error };
}

/** The delay before the next attempt, or null when the task fails for good. */
export function retryDelay(message: TaskMessage, attempt: number, thrown: unknown, rng: Rng): number | null {
  if (thrown instanceof PermanentError) return null;
  if (thrown instanceof RetryLater) {
    if (attempt >= MAX_ATTEMPTS) return null;
    return thrown.delayMs ?? backoffDelay(attempt, message.backoff ?? DEFAULT_BACKOFF, rng);
  }
  if (message.retries <= 0) return null;
  return backoffDelay(attempt, message.backoff ?? DEFAULT_BACKOFF, rng);
}

/**
 * A final FAILURE or REVOKED: the task's record, the same error on every
 * task of its workflow that can no longer run, ChordError on the callback of
 * any chord it (or a later link) belonged to, and its onError callbacks.
 */
export function finalFailure(message: TaskMessage, attempt: number, state: 'FAILURE' | 'REVOKED', error: ErrorInfo, ctx: OutcomeContext): Outcome {
  const records: StateRecord[] = [final(message, state, attempt, ctx, undefined, error)];
  const chords: ChordRef[] = [];
  if (message.chord !== undefined) chords.push(message.chord);
  const inner = new Set<string>();
  if (message.onSuccess !== undefined) cascade(message.onSuccess, records, chords, error, ctx, inner);
  // One record per id: a chord's callback fails with ChordError, not with the member's error.
  const byId = new Map(records.map((r) => [r.id, r]));
  for (const ref of chords) {
    if (inner.has(ref.id)) continue;
    const chordError: ErrorInfo = { code: 'ERR_CHORD', name: 'ChordError', message: `Chord ${ref.id} failed because a member (${message.name}) failed: ${error.message}` };
    for (const id of ref.tail) byId.set(id, { id, name: byId.get(id)?.name ?? '', state: 'FAILURE', error: chordError, attempts: 0, createdAt: ctx.now, updatedAt: ctx.now, expiresAt: ctx.now + ctx.resultsExpireIn });
  }
  // onError callbacks are for failures; a revoked task sends none.
  const onError = state === 'FAILURE' ? message.onError ?? [] : [];
  // The chord whose ledger entry closes: this task's, or the one a later link of its chain belongs to (an
  // earlier link of a member chain failed: left open, the entry would wait for that member forever).
  const closes = message.chord ?? chords.find((ref) => !inner.has(ref.id));
  return {
    records: [...byId.values()],
    publish: onError.length === 0 ? null : { tasks: onError.map((t) => ({ ...t, args: prependArg(t.args, error.message) })), chords: [] },
    retry: null,
    chord: closes === undefined ? null : { ref: closes, result: null },
  };
}

/**
 * Every task `batch` can start, failed, depth first. Iterative, and chords are told apart by a set: a chain of n
 * links nests n batches deep (a recursive walk overflowed the stack at a few thousand links), and a chain of n chords
 * compared each member against every chord found so far.
 */
function cascade(batch: Batch, records: StateRecord[], chords: ChordRef[], error: ErrorInfo, ctx: OutcomeContext, inner: Set<string>): void {
  const known = new Set(chords.map((c) => c.id));
  const todo: Array<Batch | TaskMessage> = [batch];
  for (let item = todo.pop(); item !== undefined; item = todo.pop()) {
    if ('tasks' in item) {
      // A chord that starts inside the failed part never starts: its callback already gets the link's own error.
      for (let i = item.chords.length - 1; i >= 0; i--) {
        const c = item.chords[i] as ChordSpec;
        inner.add(c.id);
        todo.push(c.callback);
      }
      for (let i = item.tasks.length - 1; i >= 0; i--) todo.push(item.tasks[i] as TaskMessage);
      continue;
    }
    const t = item;
    records.push({ id: t.id, name: t.name, state: 'FAILURE', error, attempts: 0, createdAt: ctx.now, updatedAt: ctx.now, expiresAt: ctx.now + ctx.resultsExpireIn });
    if (t.chord !== undefined && !known.has(t.chord.id)) { known.add(t.chord.id); chords.push(t.chord); }
    if (t.onSuccess !== undefined) todo.push(t.onSuccess);
  }
}

function final(message: TaskMessage, state: TaskState, attempt: number, ctx: OutcomeContext, result?: Packed, error?: ErrorInfo): StateRecord {
  const { id, name, createdAt } = message;
  const updatedAt = ctx.now;
  const expiresAt = updatedAt + ctx.resultsExpireIn;
  // One literal per shape: a field added after the literal goes to a separate property store (~33 bytes more per
  // record, and a record is kept resultsExpireIn).
  if (result !== undefined) return { id, name, state, result, attempts: attempt, createdAt, updatedAt, expiresAt };
  if (error !== undefined) return { id, name, state, error, attempts: attempt, createdAt, updatedAt, expiresAt };
  return { id, name, state, attempts: attempt, createdAt, updatedAt, expiresAt };
}
