/**
 * Compiles a workflow (signature, chain, group, chord, nested) into task
 * messages linked by `onSuccess` batches and chord ledgers, plus the shape of
 * the result handle. Pure: no I/O, no clock reads beyond `now`.
 *
 *   chain(a, group(b, c), d)
 *     => a.onSuccess = { tasks: [b, c], chords: [{ id: g, count: 2, callback: { tasks: [d] } }] }
 *        b.chord = { id: g, index: 0 }, c.chord = { id: g, index: 1 }
 */
import { appendArgs, packArgs, type Packed } from './codec.js';
import { ValidationError } from './errors.js';
import { isSignature, isWorkflow, type Signature, type Workflow } from './signature.js';
import type { Backoff, Batch, ChordRef, ChordSpec, TaskMessage } from './transport.js';

/** Where a workflow's result will be found. */
export type HandleShape =
  | { readonly kind: 'task'; readonly id: string; readonly name: string }
  | { readonly kind: 'group'; readonly members: readonly HandleShape[] };

/** Per-task defaults (TaskOptions) the compiler applies under a signature's own fields. */
export interface TaskDefaults {
  readonly queue?: string;
  readonly priority?: number;
  readonly retries?: number;
  readonly backoff?: Backoff;
  readonly timeout?: number;
}

export interface CompileContext {
  readonly defaultQueue: string;
  readonly now: number;
  readonly defaults: (name: string) => TaskDefaults | undefined;
}

export interface Compiled {
  readonly batch: Batch;
  readonly handle: HandleShape;
}

/** The chords of a batch that has none (shared: batches are never changed once made). */
const NO_CHORDS: readonly ChordSpec[] = Object.freeze([]);
/** The `tail` of a compiled chord member (see compileGroup). */
const NO_IDS: readonly string[] = Object.freeze([]);

/**
 * Compiles one signature that nothing follows: its message, in a batch of its own. (What `compile` does for a
 * lone signature, without the handle shape: `App.send` makes the handle from the message.)
 */
export function compileSignature(sig: Signature, ctx: CompileContext): Batch {
  const batch: Batch = { tasks: [toMessage(sig, ctx, null, undefined)], chords: NO_CHORDS };
  // Its onSuccess is a workflow too (a chord there counting one signature twice would never fire).
  if (sig.onSuccess !== undefined) checkUnique(batch);
  return batch;
}

/** Compiles `workflow` to run, then `next` with its result. */
export function compile(workflow: Workflow, ctx: CompileContext, next: Batch | null = null, chordRef?: ChordRef): Compiled {
  const compiled = build(workflow, ctx, next, chordRef);
  if (!isSignature(workflow) || workflow.onSuccess !== undefined) checkUnique(compiled.batch);
  return compiled;
}

/**
 * A task id may appear once in a workflow: the store skips an id it knows, so a signature used twice
 * (`Array(3).fill(t.s())`) runs once, and a chord counting it twice never fires.
 */
function checkUnique(batch: Batch): void {
  const seen = new Set<string>();
  for (const { id, name } of taskIds(batch)) {
    if (seen.has(id)) throw new ValidationError(`Signature "${name}" (id ${id}) appears twice in one workflow: make a fresh signature for each use (e.g. call .s() again)`, 'id');
    seen.add(id);
  }
}

function build(workflow: Workflow, ctx: CompileContext, next: Batch | null = null, chordRef?: ChordRef): Compiled {
  if (!isWorkflow(workflow)) throw new ValidationError('Expected a signature, chain, group or chord', 'workflow');
  if (isSignature(workflow)) {
    const message = toMessage(workflow, ctx, next, chordRef);
    return { batch: { tasks: [message], chords: NO_CHORDS }, handle: { kind: 'task', id: message.id, name: message.name } };
  }
  switch (workflow.kind) {
    case 'chain': return compileChain(workflow.steps, ctx, next, chordRef);
    case 'group': return compileGroup(workflow.id, workflow.members, ctx, next, chordRef);
    case 'chord': {
      if (chordRef !== undefined) throw nested();
      const callback = build(workflow.callback, ctx, next);
      const members = compileGroup(workflow.id, workflow.group.members, ctx, callback.batch);
      return { batch: members.batch, handle: callback.handle };
    }
  }
}

function compileChain(steps: readonly Workflow[], ctx: CompileContext, next: Batch | null, chordRef?: ChordRef): Compiled {
  if (!Array.isArray(steps) || steps.length === 0) throw new ValidationError('A chain needs an array of at least one step', 'steps');
  let cont = next;
  let handle: HandleShape | undefined;
  for (let i = steps.length - 1; i >= 0; i--) {
    const step = build(steps[i] as Workflow, ctx, cont, i === steps.length - 1 ? chordRef : undefined);
    handle ??= step.handle;
    cont = step.batch;
  }
  return { batch: cont as Batch, handle: handle as HandleShape };
}

function compileGroup(id: string, members: readonly Workflow[], ctx: CompileContext, next: Batch | null, chordRef?: ChordRef): Compiled {
  if (chordRef !== undefined) throw nested();
  if (!Array.isArray(members)) throw new ValidationError('Expected the members of a group or chord to be an array', 'members');
  if (next === null) {
    const parts = members.map((m) => build(m, ctx));
    return { batch: merge(parts.map((p) => p.batch)), handle: { kind: 'group', members: parts.map((p) => p.handle) } };
  }
  // A group followed by something is a chord: `next` runs once with every result.
  if (members.length === 0) return { batch: next, handle: { kind: 'group', members: [] } };
  // No tail ids: a member's final failure fails the callback from the broker's ledger (one copy of `next`), rather
  // than from ids carried by every member (n members × the callback's ids, quadratic for a chain of groups).
  const parts = members.map((m, index) => build(m, ctx, null, { id, index, tail: NO_IDS }));
  const batch = merge(parts.map((p) => p.batch));
  return {
    batch: { tasks: batch.tasks, chords: [...batch.chords, { id, count: members.length, callback: next }] },
    handle: { kind: 'group', members: parts.map((p) => p.handle) },
  };
}

function merge(batches: readonly Batch[]): Batch {
  if (batches.length === 1) return batches[0] as Batch;
  return { tasks: batches.flatMap((b) => b.tasks), chords: batches.flatMap((b) => b.chords) };
}

function nested(): ValidationError {
  return new ValidationError('A chord member must be a signature or a chain ending in a signature, not a group or chord', 'chord');
}

/**
 * Every task id a batch can start (its tasks, their links, chord callbacks), depth first. Iterative: a chain of
 * n links nests n `onSuccess` batches deep, and a recursive walk overflowed the stack at a few thousand links.
 */
export function taskIds(batch: Batch, out: Array<{ id: string; name: string }> = []): Array<{ id: string; name: string }> {
  const todo: Array<Batch | TaskMessage> = [batch];
  for (let item = todo.pop(); item !== undefined; item = todo.pop()) {
    if ('tasks' in item) {
      for (let i = item.chords.length - 1; i >= 0; i--) todo.push((item.chords[i] as ChordSpec).callback);
      for (let i = item.tasks.length - 1; i >= 0; i--) todo.push(item.tasks[i] as TaskMessage);
    } else {
      out.push({ id: item.id, name: item.name });
      if (item.onSuccess !== undefined) todo.push(item.onSuccess);
    }
  }
  return out;
}

function toMessage(sig: Signature, ctx: CompileContext, next: Batch | null, chordRef: ChordRef | undefined): TaskMessage {
  const d = ctx.defaults(sig.name) ?? NO_DEFAULTS;
  const id = sig.id ?? '';
  if (typeof id !== 'string' || id === '') throw new ValidationError(`Expected ${nameOf(sig)} to have a non-empty string id`, 'id');
  // Ids, names and queues are keys: a lone UTF-16 surrogate cannot cross a wire as UTF-8 without becoming U+FFFD
  // (two ids would then collide), so it is refused here, for every transport alike.
  check(id, isName, sig, 'id', 'a well-formed string (no lone surrogates)');
  check(sig.name, isName, sig, 'name', 'a non-empty, well-formed string (no lone surrogates)');
  if (sig.onSuccess !== undefined && !Array.isArray(sig.onSuccess)) throw new ValidationError(`Expected \`onSuccess\` of ${nameOf(sig)} to be an array of signatures`, 'onSuccess');
  if (sig.onError !== undefined && !Array.isArray(sig.onError)) throw new ValidationError(`Expected \`onError\` of ${nameOf(sig)} to be an array of signatures`, 'onError');
  const userNext = sig.onSuccess === undefined ? null : merge(sig.onSuccess.map((s) => build(s, ctx).batch));
  const onSuccess = next === null ? userNext : userNext === null ? next : merge([userNext, next]);
  const message: Record<string, unknown> = {
    id,
    name: sig.name,
    args: packArgs(sig.args ?? []),
    queue: check(sig.queue ?? d.queue ?? ctx.defaultQueue, isName, sig, 'queue', 'a non-empty, well-formed string'),
    priority: check(sig.priority ?? d.priority ?? 0, Number.isInteger, sig, 'priority', 'an integer'),
    eta: check(sig.eta ?? 0, isTime, sig, 'eta', 'epoch ms (a finite number >= 0)'),
    retries: check(sig.retries ?? d.retries ?? 0, isCount, sig, 'retries', 'an integer >= 0'),
    attempt: 0,
    createdAt: ctx.now,
  };
  const backoff = sig.backoff ?? d.backoff;
  if (backoff !== undefined) message['backoff'] = checkBackoff(backoff, sig);
  const timeout = sig.timeout ?? d.timeout;
  if (timeout !== undefined) message['timeout'] = check(timeout, isPositive, sig, 'timeout', 'a number of ms > 0');
  if (sig.expires !== undefined) message['expires'] = check(sig.expires, isTime, sig, 'expires', 'epoch ms');
  if (sig.immutable === true) message['immutable'] = true;
  if (sig.headers !== undefined) message['headers'] = checkHeaders(sig.headers, sig);
  if (onSuccess !== null) message['onSuccess'] = onSuccess;
  if (sig.onError !== undefined && sig.onError.length > 0) message['onError'] = sig.onError.flatMap((s) => build(s, ctx).batch.tasks);
  if (chordRef !== undefined) message['chord'] = chordRef;
  return message as unknown as TaskMessage;
}

/** How error messages name a signature (built only when one is thrown, not per message sent). */
function nameOf(sig: Signature): string {
  return `signature "${String(sig.name)}"`;
}

const NO_DEFAULTS: TaskDefaults = Object.freeze({});

function check<T>(value: T, ok: (v: T) => boolean, sig: Signature, field: string, expect: string): T {
  if (!ok(value)) throw new ValidationError(`Expected \`${field}\` of ${nameOf(sig)} to be ${expect}, got ${JSON.stringify(value) ?? String(value)}`, field);
  return value;
}

/** A non-empty string without lone surrogates (String#isWellFormed, Node >= 20). */
const isName = (v: unknown): boolean => typeof v === 'string' && v.length > 0 && (v as string & { isWellFormed(): boolean }).isWellFormed();
const isTime = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v) && v >= 0;
const isCount = (v: unknown): boolean => Number.isInteger(v) && (v as number) >= 0;
const isPositive = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v) && v > 0;

function checkBackoff(b: Backoff, sig: Signature): Backoff {
  if (typeof b !== 'object' || b === null || !['fixed', 'exponential', 'fibonacci'].includes(b.type)) {
    throw new ValidationError(`Expected \`backoff.type\` of ${nameOf(sig)} to be "fixed", "exponential" or "fibonacci"`, 'backoff.type');
  }
  check(b.delay, isTime, sig, 'backoff.delay', 'a number of ms >= 0');
  if (b.maxDelay !== undefined) check(b.maxDelay, isTime, sig, 'backoff.maxDelay', 'a number of ms >= 0');
  return { ...b };
}

function checkHeaders(headers: Readonly<Record<string, string>>, sig: Signature): Record<string, string> {
  if (typeof headers !== 'object' || headers === null) throw new ValidationError(`Expected \`headers\` of ${nameOf(sig)} to be an object of strings`, 'headers');
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) {
    if (typeof v !== 'string') throw new ValidationError(`Expected header \`${k}\` of ${nameOf(sig)} to be a string, got ${typeof v}`, `headers.${k}`);
    out[k] = v;
  }
  return out;
}

/** Appends `results` to each top-level task of `batch`, except immutable ones (chain links, chord callbacks). */
export function withResults(batch: Batch, results: readonly Packed[]): Batch {
  return {
    tasks: batch.tasks.map((t) => (t.immutable === true ? t : { ...t, args: appendArgs(t.args, results) })),
    chords: batch.chords,
  };
}
