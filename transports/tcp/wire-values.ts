/**
 * Narrowing readers for the values inside frames: every field of a task,
 * batch, state record and outcome is checked, and a fresh object with only
 * the known fields is built. Anything else is a `ProtocolError` naming the
 * path of the bad field (e.g. `publish.tasks[3].priority`).
 *
 * Packed values travel as a JSON string, or as `{"j": json, "b": [i, ...]}`
 * where each `i` indexes a raw binary attachment of the frame.
 */
import type { Packed } from '../../src/codec.js';
import { ProtocolError, type ErrorInfo } from '../../src/errors.js';
import type {
  Backoff, Batch, ChordRef, ChordSpec, Outcome, StateRecord, TaskMessage,
} from '../../src/transport.js';

type Obj = Record<string, unknown>;
type Mutable<T> = { -readonly [K in keyof T]: T[K] };

const STATES: ReadonlySet<string> = new Set(['PENDING', 'RECEIVED', 'STARTED', 'RETRY', 'SUCCESS', 'FAILURE', 'REVOKED']);
const BACKOFFS: ReadonlySet<string> = new Set(['fixed', 'exponential', 'fibonacci']);

export function bad(path: string, what: string): ProtocolError {
  return new ProtocolError(`Malformed frame: ${path} ${what}`);
}

export function obj(v: unknown, path: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(path, 'must be an object');
  return v as Obj;
}

export function arr(v: unknown, path: string): unknown[] {
  if (!Array.isArray(v)) throw bad(path, 'must be an array');
  return v;
}

export function str(o: Obj, k: string, path: string): string {
  const v = o[k];
  if (typeof v !== 'string') throw bad(`${path}.${k}`, 'must be a string');
  return v;
}

export function num(o: Obj, k: string, path: string): number {
  const v = o[k];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(`${path}.${k}`, 'must be a finite number');
  return v;
}

export function int(o: Obj, k: string, path: string): number {
  const v = o[k];
  if (!Number.isSafeInteger(v)) throw bad(`${path}.${k}`, 'must be an integer');
  return v as number;
}

export function strings(v: unknown, path: string): string[] {
  const a = arr(v, path);
  for (let i = 0; i < a.length; i++) if (typeof a[i] !== 'string') throw bad(`${path}[${i}]`, 'must be a string');
  return a as string[];
}

export function ints(v: unknown, path: string): number[] {
  const a = arr(v, path);
  for (let i = 0; i < a.length; i++) if (!Number.isSafeInteger(a[i])) throw bad(`${path}[${i}]`, 'must be an integer');
  return a as number[];
}

/** Reads a packed value; binary attachments are copied out of the frame. */
export function readPacked(v: unknown, bins: readonly Uint8Array[], path: string): Packed {
  if (typeof v === 'string') return v;
  const o = obj(v, path);
  const json = str(o, 'j', path);
  const refs = ints(o['b'], `${path}.b`);
  return { json, bins: refs.map((k, n) => takeAttachment(bins, k, `${path}.b[${n}]`)) };
}

/**
 * Copies attachment `k` out of a frame's attachments and marks it used: each
 * attachment may be referenced once per frame (a writer never repeats one),
 * so a small frame cannot expand into many copies of one large attachment.
 */
export function takeAttachment(bins: readonly Uint8Array[], k: number, path: string): Uint8Array {
  const b = bins[k];
  if (b === undefined) {
    throw bad(path, k >= 0 && k < bins.length ? `refers to attachment ${k} a second time (each is used once per frame)` : `refers to attachment ${k}, but the frame has ${bins.length}`);
  }
  (bins as Array<Uint8Array | undefined>)[k] = undefined;
  return new Uint8Array(b);
}

function readBackoff(v: unknown, path: string): Backoff {
  const o = obj(v, path);
  const type = str(o, 'type', path);
  if (!BACKOFFS.has(type)) throw bad(`${path}.type`, 'must be fixed, exponential or fibonacci');
  const b: Mutable<Backoff> = { type: type as Backoff['type'], delay: num(o, 'delay', path) };
  if (o['maxDelay'] !== undefined) b.maxDelay = num(o, 'maxDelay', path);
  if (o['jitter'] !== undefined) {
    if (typeof o['jitter'] !== 'boolean') throw bad(`${path}.jitter`, 'must be a boolean');
    b.jitter = o['jitter'];
  }
  return b;
}

function readHeaders(v: unknown, path: string): Record<string, string> {
  const o = obj(v, path);
  const out: Record<string, string> = {};
  for (const k of Object.keys(o)) out[k] = str(o, k, path);
  return out;
}

function readChordRef(v: unknown, path: string): ChordRef {
  const o = obj(v, path);
  return { id: str(o, 'id', path), index: int(o, 'index', path), tail: strings(o['tail'], `${path}.tail`) };
}

const TASK_KEYS: ReadonlySet<string> = new Set([
  'id', 'name', 'args', 'queue', 'priority', 'eta', 'retries', 'attempt', 'createdAt', 'backoff', 'timeout', 'expires',
  'immutable', 'headers', 'onSuccess', 'onError', 'chord',
]);

/**
 * Narrows a parsed task in place (it is our own fresh JSON.parse output, so
 * no copy is needed: the broker keeps it as is). An object with keys beyond
 * a TaskMessage's is copied down to the known ones.
 */
export function readTask(v: unknown, bins: readonly Uint8Array[], path: string, depth = 0): TaskMessage {
  if (depth > MAX_WORKFLOW_DEPTH) throw bad(path, `nests workflows deeper than ${MAX_WORKFLOW_DEPTH} levels`);
  const o = obj(v, path);
  if (str(o, 'id', path) === '' || str(o, 'queue', path) === '') throw bad(path, 'must have a non-empty id and queue');
  str(o, 'name', path); int(o, 'priority', path); num(o, 'eta', path); int(o, 'retries', path); int(o, 'attempt', path); num(o, 'createdAt', path);
  if (typeof o['args'] !== 'string') o['args'] = readPacked(o['args'], bins, `${path}.args`);
  if (o['backoff'] !== undefined) o['backoff'] = readBackoff(o['backoff'], `${path}.backoff`);
  if (o['timeout'] !== undefined) num(o, 'timeout', path);
  if (o['expires'] !== undefined) num(o, 'expires', path);
  if (o['immutable'] !== undefined && typeof o['immutable'] !== 'boolean') throw bad(`${path}.immutable`, 'must be a boolean');
  if (o['headers'] !== undefined) o['headers'] = readHeaders(o['headers'], `${path}.headers`);
  if (o['onSuccess'] !== undefined) o['onSuccess'] = readBatch(o['onSuccess'], bins, `${path}.onSuccess`, depth + 1);
  if (o['onError'] !== undefined) o['onError'] = arr(o['onError'], `${path}.onError`).map((t, i) => readTask(t, bins, `${path}.onError[${i}]`, depth + 1));
  if (o['chord'] !== undefined) o['chord'] = readChordRef(o['chord'], `${path}.chord`);
  return (onlyKnown(o, TASK_KEYS) ? o : pick(o, TASK_KEYS)) as unknown as TaskMessage;
}

/** How deep the readers follow onSuccess / onError / chord callback links (a chain of n links is n - 1 deep). */
export const MAX_WORKFLOW_DEPTH = 64;

/**
 * The deepest level at which `b` holds a task, its own tasks at 0, as the readers count it. Iterative (a chain is
 * as deep as it is long).
 */
export function workflowDepth(b: Batch): number {
  let max = 0;
  const todo: Array<[Batch, number]> = [[b, 0]];
  for (let e = todo.pop(); e !== undefined; e = todo.pop()) {
    const [batch, d] = e;
    if (batch.tasks.length > 0 && d > max) max = d;
    for (const t of batch.tasks) {
      if (t.onSuccess !== undefined) todo.push([t.onSuccess, d + 1]);
      if (t.onError !== undefined && t.onError.length > 0) todo.push([{ tasks: t.onError, chords: [] }, d + 1]);
    }
    for (const c of batch.chords) todo.push([c.callback, d + 1]);
  }
  return max;
}

/** The optional fields of a task, in the order they are copied. */
export const TASK_EXTRA_KEYS = ['backoff', 'timeout', 'expires', 'immutable', 'headers', 'onSuccess', 'onError', 'chord'] as const;

/**
 * Adds the optional fields found in `extras` (a parsed JSON object, from a
 * binary task body) to the fresh task `m`, each narrowed; unknown keys are
 * dropped.
 */
export function readTaskExtras(m: Obj, extras: unknown, bins: readonly Uint8Array[], path: string, depth: number): TaskMessage {
  const o = obj(extras, `${path}.extras`);
  if (o['backoff'] !== undefined) m['backoff'] = readBackoff(o['backoff'], `${path}.backoff`);
  if (o['timeout'] !== undefined) m['timeout'] = num(o, 'timeout', path);
  if (o['expires'] !== undefined) m['expires'] = num(o, 'expires', path);
  if (o['immutable'] !== undefined) {
    if (typeof o['immutable'] !== 'boolean') throw bad(`${path}.immutable`, 'must be a boolean');
    m['immutable'] = o['immutable'];
  }
  if (o['headers'] !== undefined) m['headers'] = readHeaders(o['headers'], `${path}.headers`);
  if (depth > MAX_WORKFLOW_DEPTH) throw bad(path, `nests workflows deeper than ${MAX_WORKFLOW_DEPTH} levels`);
  if (o['onSuccess'] !== undefined) m['onSuccess'] = readBatch(o['onSuccess'], bins, `${path}.onSuccess`, depth + 1);
  if (o['onError'] !== undefined) m['onError'] = arr(o['onError'], `${path}.onError`).map((t, i) => readTask(t, bins, `${path}.onError[${i}]`, depth + 1));
  if (o['chord'] !== undefined) m['chord'] = readChordRef(o['chord'], `${path}.chord`);
  return m as unknown as TaskMessage;
}

function onlyKnown(o: Obj, keys: ReadonlySet<string>): boolean {
  for (const k in o) if (!keys.has(k)) return false;
  return true;
}

function pick(o: Obj, keys: ReadonlySet<string>): Obj {
  const out: Obj = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

function readChordSpec(v: unknown, bins: readonly Uint8Array[], path: string, depth: number): ChordSpec {
  const o = obj(v, path);
  return { id: str(o, 'id', path), count: int(o, 'count', path), callback: readBatch(o['callback'], bins, `${path}.callback`, depth + 1) };
}

/** A JSON array of chord specs (the `chords` of a binary batch). */
export function readChordSpecs(v: unknown, bins: readonly Uint8Array[], path: string, depth = 0): ChordSpec[] {
  return arr(v, path).map((c, i) => readChordSpec(c, bins, `${path}[${i}]`, depth));
}

export function readBatch(v: unknown, bins: readonly Uint8Array[], path: string, depth = 0): Batch {
  const o = obj(v, path);
  return {
    tasks: arr(o['tasks'], `${path}.tasks`).map((t, i) => readTask(t, bins, `${path}.tasks[${i}]`, depth)),
    chords: arr(o['chords'], `${path}.chords`).map((c, i) => readChordSpec(c, bins, `${path}.chords[${i}]`, depth)),
  };
}

export function readErrorInfo(v: unknown, path: string): ErrorInfo {
  const o = obj(v, path);
  const e: Mutable<ErrorInfo> = { code: str(o, 'code', path), name: str(o, 'name', path), message: str(o, 'message', path) };
  if (o['stack'] !== undefined) e.stack = str(o, 'stack', path);
  if (o['data'] !== undefined) e.data = obj(o['data'], `${path}.data`);
  return e;
}

const RECORD_KEYS: ReadonlySet<string> = new Set(['id', 'name', 'state', 'result', 'error', 'attempts', 'createdAt', 'updatedAt', 'expiresAt']);

/** Narrows a parsed state record in place (see {@link readTask}). */
export function readRecord(v: unknown, bins: readonly Uint8Array[], path: string): StateRecord {
  const o = obj(v, path);
  const state = str(o, 'state', path);
  if (!STATES.has(state)) throw bad(`${path}.state`, `must be a task state, got "${state.slice(0, 20)}"`);
  str(o, 'id', path); str(o, 'name', path); int(o, 'attempts', path); num(o, 'createdAt', path); num(o, 'updatedAt', path);
  if (o['result'] !== undefined && typeof o['result'] !== 'string') o['result'] = readPacked(o['result'], bins, `${path}.result`);
  if (o['error'] !== undefined) o['error'] = readErrorInfo(o['error'], `${path}.error`);
  if (o['expiresAt'] !== undefined) num(o, 'expiresAt', path);
  return (onlyKnown(o, RECORD_KEYS) ? o : pick(o, RECORD_KEYS)) as unknown as StateRecord;
}

export function readOutcome(v: unknown, bins: readonly Uint8Array[], path: string): Outcome {
  const o = obj(v, path);
  let chord: Outcome['chord'] = null;
  if (o['chord'] !== null && o['chord'] !== undefined) {
    const c = obj(o['chord'], `${path}.chord`);
    chord = { ref: readChordRef(c['ref'], `${path}.chord.ref`), result: c['result'] === null ? null : readPacked(c['result'], bins, `${path}.chord.result`) };
  }
  return {
    records: arr(o['records'], `${path}.records`).map((r, i) => readRecord(r, bins, `${path}.records[${i}]`)),
    publish: o['publish'] === null || o['publish'] === undefined ? null : readBatch(o['publish'], bins, `${path}.publish`),
    retry: o['retry'] === null || o['retry'] === undefined ? null : readTask(o['retry'], bins, `${path}.retry`),
    chord,
  };
}

/**
 * JSON.stringify that moves binary attachments out of packed values. The
 * replacer (slow) runs only when `hasBinary` found one.
 */
export function stringifyWithBins(body: unknown, hasBinary: boolean, bins: Uint8Array[]): string {
  if (!hasBinary) return JSON.stringify(body);
  return JSON.stringify(body, (_key, value: unknown) => {
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
      const o = value as Obj;
      if (typeof o['json'] === 'string' && Array.isArray(o['bins'])) {
        const refs: number[] = [];
        for (const b of o['bins'] as Uint8Array[]) { refs.push(bins.length); bins.push(b); }
        return { j: o['json'], b: refs };
      }
    }
    return value;
  });
}

/** True when a packed value carries attachments. */
export const isBinary = (p: Packed | null | undefined): boolean => p !== null && p !== undefined && typeof p !== 'string';

export function taskHasBinary(m: TaskMessage): boolean {
  return isBinary(m.args) || (m.onSuccess !== undefined && batchHasBinary(m.onSuccess)) || (m.onError?.some(taskHasBinary) ?? false);
}

export function batchHasBinary(b: Batch): boolean {
  return b.tasks.some(taskHasBinary) || b.chords.some((c) => batchHasBinary(c.callback));
}

export function outcomeHasBinary(o: Outcome): boolean {
  return o.records.some((r) => isBinary(r.result)) || (o.publish !== null && batchHasBinary(o.publish))
    || (o.retry !== null && taskHasBinary(o.retry)) || isBinary(o.chord?.result);
}
