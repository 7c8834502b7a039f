/**
 * Signatures and workflows as plain data. `signature()` makes one task
 * invocation; `chain`, `group` and `chord` compose them. Nothing here has
 * behaviour: the core compiles a workflow into task messages when it is sent.
 */
import { uuid } from './ids.js';
import { ValidationError } from './errors.js';
import type { Backoff } from './transport.js';

/** A task invocation (Machinery's Signature). JSON-serialisable. */
export interface Signature {
  readonly id: string;
  readonly name: string;
  readonly args: readonly unknown[];
  readonly queue?: string;
  /** Epoch ms; not delivered before then. */
  readonly eta?: number;
  /** Higher first within a queue; default 0. */
  readonly priority?: number;
  /** Retries left after this attempt. */
  readonly retries?: number;
  readonly backoff?: Backoff;
  /** Hard limit per attempt, in ms. */
  readonly timeout?: number;
  /** Epoch ms after which it is not run (FAILURE, "expired"). */
  readonly expires?: number;
  /** When true, a parent's result is not appended to its args. */
  readonly immutable?: boolean;
  readonly headers?: Readonly<Record<string, string>>;
  /** Sent when it succeeds, its result appended to their args (unless immutable). */
  readonly onSuccess?: readonly Signature[];
  /** Sent when it finally fails, the error message prepended to their args. */
  readonly onError?: readonly Signature[];
  readonly groupId?: string;
  readonly groupTaskCount?: number;
  readonly chordCallback?: Signature;
}

/** Fields a caller may set on a signature. */
export type SignatureOptions = Partial<Omit<Signature, 'name' | 'args' | 'groupId' | 'groupTaskCount' | 'chordCallback'>>;

/**
 * Run in order; each result is appended to the next one's args (unless it is immutable).
 * `Last`: the type of the last step, which decides the handle `app.send` returns (`unknown`: an AsyncResult).
 */
export interface Chain<Last = unknown> {
  readonly kind: 'chain';
  readonly steps: readonly Workflow[];
  /** Type only: never set. */
  readonly __last?: Last;
}

/** Run in parallel. */
export interface Group {
  readonly kind: 'group';
  readonly id: string;
  readonly members: readonly Workflow[];
}

/**
 * A group, then `callback` once with every member's result appended in member order.
 * `Callback`: the callback's type, which decides the handle `app.send` returns (`unknown`: an AsyncResult).
 */
export interface Chord<Callback = unknown> {
  readonly kind: 'chord';
  readonly id: string;
  readonly group: Group;
  readonly callback: Workflow;
  /** Type only: never set. */
  readonly __last?: Callback;
}

/** Anything `app.send` takes. */
export type Workflow = Signature | Chain | Group | Chord;

/** A registered task, typed by its parameters and result. */
export interface TaskRef<Args extends unknown[] = unknown[], Result = unknown> {
  readonly name: string;
  /** A signature with the given arguments (a leading subset of the parameters; the rest may come from a parent). */
  s<P extends PrefixOf<Args>>(...args: P): Signature & { readonly __result?: Result };
  /** A signature with arguments and options. */
  with(options: SignatureOptions, ...args: PrefixOf<Args>): Signature & { readonly __result?: Result };
}

/** The tuple of any leading subset of `T`'s elements (optional and rest parameters included). */
export type PrefixOf<T extends unknown[]> = T extends [...infer Head, unknown] ? T | PrefixOf<Head>
  : T extends [infer First, ...infer Rest] ? [] | [First, ...PrefixOf<Rest>] // a required parameter before optional or rest ones
  : T;

/**
 * Makes a signature with a fresh id.
 * @example signature('add', [1, 2], { queue: 'math', retries: 3 })
 */
export function signature(task: string | { readonly name: string }, args: readonly unknown[] = [], options: SignatureOptions = {}): Signature {
  const name = typeof task === 'string' ? task : task.name;
  if (typeof name !== 'string' || name === '') throw new ValidationError(`Expected a task name (a non-empty string), got ${String(name)}`, 'name');
  if (!Array.isArray(args)) throw new ValidationError(`Expected args to be an array, got ${typeof args}`, 'args');
  if (typeof options !== 'object' || options === null) throw new ValidationError(`Expected signature options to be an object, got ${String(options)}`, 'options');
  // Object.assign below would run the __proto__ setter for an own "__proto__" key (JSON.parse makes them).
  if (Object.hasOwn(options, '__proto__')) throw new ValidationError('Signature options must not have an own "__proto__" key', 'options.__proto__');
  // An unknown key (BullMQ's `delay`, `attempts`, `jobId`; a typo) would be carried along and never read.
  for (const key in options) {
    if (!SIGNATURE_FIELDS.has(key)) throw new ValidationError(`Unknown signature option \`${key}\`: expected one of ${OPTION_KEYS.map((k) => `\`${k}\``).join(', ')}`, `options.${key}`);
  }
  return withOptions(name, [...args], options);
}

/** The keys of SignatureOptions. */
const OPTION_KEYS = ['id', 'queue', 'eta', 'priority', 'retries', 'backoff', 'timeout', 'expires', 'immutable', 'headers', 'onSuccess', 'onError'];
/** Every field of a Signature: options may carry the others too (a copied signature does). */
const SIGNATURE_FIELDS: ReadonlySet<string> = new Set([...OPTION_KEYS, 'name', 'args', 'groupId', 'groupTaskCount', 'chordCallback']);

/**
 * A signature of `name` with `args` (owned by the signature from now on).
 * @internal For `TaskRef.s()`/`.with()`, whose rest arguments are already a fresh array.
 */
export function withOptions(name: string, args: unknown[], options: SignatureOptions): Signature {
  // Object.assign, not `{ ...options }`: V8 pretenures spread clones, and a million signatures
  // sent with ETAs then left ~400 MB of dead clones in old space (RSS 809 MB vs 438 MB; bench/delayed.mjs).
  if (isEmpty(options)) return { id: uuid(), name, args };
  return Object.assign({}, options, { id: options.id ?? uuid(), name, args });
}

function isEmpty(o: object): boolean {
  for (const _ in o) return false;
  return true;
}

/** Runs `steps` in order; each result is appended to the next step's args. */
export function chain<L extends Workflow>(...steps: [...Workflow[], L]): Chain<L>;
export function chain(...steps: Workflow[]): Chain;
export function chain(...steps: Workflow[]): Chain {
  if (steps.length === 0) throw new ValidationError('chain() needs at least one step', 'chain');
  return { kind: 'chain', steps };
}

/** Runs `members` in parallel; the handle resolves with all results in member order. */
export function group(...members: Workflow[]): Group {
  const id = uuid();
  const stamped = members.map((m) => (isSignature(m) ? { ...m, groupId: id, groupTaskCount: members.length } : m));
  return { kind: 'group', id, members: stamped };
}

/**
 * Runs a group, then `callback` once with all results appended in member order.
 * If a member finally fails, the callback never runs and the chord fails with ChordError.
 */
export function chord<C extends Workflow>(members: Group | readonly Workflow[], callback: C): Chord<C>;
export function chord(members: Group | readonly Workflow[], callback: Workflow): Chord {
  const g = Array.isArray(members) ? group(...(members as Workflow[])) : (members as Group);
  if (typeof g !== 'object' || g === null || g.kind !== 'group') throw new ValidationError('chord() needs a group or an array of members', 'members');
  if (!isWorkflow(callback)) throw new ValidationError('chord() needs a callback signature or workflow', 'callback');
  const cb = isSignature(callback) ? callback : undefined;
  const stamped: Group = cb === undefined ? g : { ...g, members: g.members.map((m) => (isSignature(m) ? { ...m, chordCallback: cb } : m)) };
  return { kind: 'chord', id: g.id, group: stamped, callback };
}

export function isSignature(value: unknown): value is Signature {
  return typeof value === 'object' && value !== null && !('kind' in value) && typeof (value as { name?: unknown }).name === 'string';
}

export function isWorkflow(value: unknown): value is Workflow {
  if (isSignature(value)) return true;
  if (typeof value !== 'object' || value === null) return false;
  const kind = (value as { kind?: unknown }).kind;
  return kind === 'chain' || kind === 'group' || kind === 'chord';
}
