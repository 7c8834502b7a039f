/**
 * Reads the binary bodies of binary.ts: every read is bounds-checked, and
 * anything off is a ProtocolError naming the field's path.
 */
import { isUtf8 } from 'node:buffer';
import type { Packed } from '../../src/codec.js';
import { ProtocolError } from '../../src/errors.js';
import type { Batch, ChordRef, ChordSpec, Outcome, StateRecord, TaskMessage, WatchEvent } from '../../src/transport.js';
import { STATE_CODES } from './binary.js';
import { bad, readChordSpecs, readErrorInfo, readTaskExtras, takeAttachment } from './wire-values.js';

type Utf8Slice = (start: number, end: number) => string;
const nativeUtf8Slice = (Buffer.prototype as unknown as { utf8Slice?: Utf8Slice }).utf8Slice;
/**
 * UTF-8 decoding of a byte range. `Buffer#utf8Slice` (what `toString('utf8')`
 * calls after normalising its arguments) when this Node has it: the wrapper
 * costs as much as the decoding for the short strings of a task.
 */
const utf8: (buf: Buffer, start: number, end: number) => string = typeof nativeUtf8Slice === 'function'
  ? (buf, start, end) => (buf as unknown as { utf8Slice: Utf8Slice }).utf8Slice(start, end)
  : (buf, start, end) => buf.toString('utf8', start, end);

/**
 * Short ASCII strings recur in every frame (task names, queues): a
 * direct-mapped cache keyed by a hash of the bytes returns the string already
 * made, without allocating or calling into C++. Only for recurring fields: a
 * unique value would just churn the cache (and the GC's remembered set).
 */
const SHORT = 24;
const CACHE_SIZE = 1024;
const cache: string[] = new Array<string>(CACHE_SIZE).fill('');

function short(buf: Buffer, at: number, n: number): string {
  let h = n;
  for (let i = 0; i < n; i++) {
    const c = buf[at + i] as number;
    if (c >= 0x80) return utf8(buf, at, at + n);
    h = Math.imul(h ^ c, 0x01000193);
  }
  const slot = (h >>> 0) & (CACHE_SIZE - 1);
  const hit = cache[slot] as string;
  if (hit.length === n) {
    let i = 0;
    while (i < n && hit.charCodeAt(i) === buf[at + i]) i++;
    if (i === n) return hit;
  }
  const s = utf8(buf, at, at + n);
  cache[slot] = s;
  return s;
}

/**
 * A settle names its task twice (`mid` and the record's `id`), a task id
 * recurs in its STARTED and final records: a longer string equal to the last
 * one decoded is that same string (one allocation, one hash computation in
 * the maps it is looked up in).
 */
let lastLong = '';

function long(buf: Buffer, at: number, n: number): string {
  const last = lastLong;
  if (last.length === n) {
    let i = 0;
    while (i < n && last.charCodeAt(i) === buf[at + i] && (buf[at + i] as number) < 0x80) i++;
    if (i === n) return last;
  }
  return (lastLong = utf8(buf, at, at + n));
}

/**
 * Strings of at most TINY bytes that do not recur (a task's arguments, a
 * result): ASCII ones are made by String.fromCharCode in JS, ~3x faster than
 * a call into C++ for so few bytes (measured: 22 ns against 74 ns for 7 bytes).
 */
const TINY = 8;

function tiny(b: Buffer, a: number, n: number): string {
  let ascii = 0;
  for (let i = 0; i < n; i++) ascii |= b[a + i] as number;
  if (ascii >= 0x80) return utf8(b, a, a + n);
  switch (n) {
    case 1: return String.fromCharCode(b[a] as number);
    case 2: return String.fromCharCode(b[a] as number, b[a + 1] as number);
    case 3: return String.fromCharCode(b[a] as number, b[a + 1] as number, b[a + 2] as number);
    case 4: return String.fromCharCode(b[a] as number, b[a + 1] as number, b[a + 2] as number, b[a + 3] as number);
    case 5: return String.fromCharCode(b[a] as number, b[a + 1] as number, b[a + 2] as number, b[a + 3] as number, b[a + 4] as number);
    case 6: return String.fromCharCode(b[a] as number, b[a + 1] as number, b[a + 2] as number, b[a + 3] as number, b[a + 4] as number, b[a + 5] as number);
    case 7: return String.fromCharCode(b[a] as number, b[a + 1] as number, b[a + 2] as number, b[a + 3] as number, b[a + 4] as number, b[a + 5] as number, b[a + 6] as number);
    default: return String.fromCharCode(b[a] as number, b[a + 1] as number, b[a + 2] as number, b[a + 3] as number, b[a + 4] as number, b[a + 5] as number, b[a + 6] as number, b[a + 7] as number);
  }
}

/**
 * A number read from f64 bytes is a heap number even when it is 0 or 3; as
 * an int32 it is stored untagged in the objects it goes into (a queued
 * task's priority, retries, attempt: ~64 bytes of boxes per task otherwise,
 * measured with the bench's broker-memory row).
 */
function small(v: number): number {
  const i = v | 0;
  return i === v ? i : v;
}

/**
 * An array for `n` elements the caller fills: one element (a task's own
 * batch, a settle's record) is a literal of exactly that size, where `[]` plus
 * push would reserve 17 slots.
 */
function sized<T>(n: number): T[] {
  return n === 1 ? [undefined as unknown as T] : new Array<T>(n);
}

const EMPTY = Buffer.alloc(0);
/** The chords of a batch without any (most): one shared frozen array. */
const NO_CHORDS: readonly ChordSpec[] = Object.freeze([]);
const NO_BINS: readonly Uint8Array[] = [];

/** Bounds-checked reader over a binary body; errors name the field's path. */
export class BodyReader {
  #buf: Buffer = EMPTY;
  #bins: readonly Uint8Array[] = NO_BINS;
  #p = 0;
  #end = 0;

  /** Points the reader at the body `buf[start..end)` of a frame with attachments `bins` (one reader is reused). */
  reset(buf: Buffer, start: number, end: number, bins: readonly Uint8Array[]): this {
    this.#buf = buf;
    this.#p = start;
    this.#end = end;
    this.#bins = bins;
    return this;
  }

  #need(n: number, path: string): number {
    const at = this.#p;
    if (this.#end - at < n) throw bad(path, 'runs past the end of the frame');
    this.#p = at + n;
    return at;
  }

  /** The body was consumed exactly. Lets go of the frame (the reader is reused). */
  done(what: string): void {
    if (this.#p !== this.#end) throw bad(what, `has ${this.#end - this.#p} bytes left over after its last field`);
    this.#buf = EMPTY;
    this.#bins = NO_BINS;
  }

  u8(path: string): number {
    return this.#buf[this.#need(1, path)] as number;
  }

  u32(path: string): number {
    return this.#buf.readUInt32BE(this.#need(4, path));
  }

  num(path: string, field: string): number {
    const v = this.#buf.readDoubleBE(this.#need(8, path));
    if (!Number.isFinite(v)) throw bad(`${path}.${field}`, 'must be a finite number');
    return small(v);
  }

  int(path: string, field: string): number {
    const v = this.#buf.readDoubleBE(this.#need(8, path));
    if (!Number.isSafeInteger(v)) throw bad(`${path}.${field}`, 'must be an integer');
    return small(v);
  }

  /** A string; `recurring` for fields whose values repeat (names, queues): those go through the short-string cache. */
  str(path: string, recurring = false): string {
    const n = this.#buf.readUInt32BE(this.#need(4, path));
    const at = this.#need(n, path);
    if (n === 0) return '';
    const s = recurring && n <= SHORT ? short(this.#buf, at, n) : n > SHORT ? long(this.#buf, at, n) : n <= TINY ? tiny(this.#buf, at, n) : utf8(this.#buf, at, at + n);
    // Invalid UTF-8 decodes to U+FFFD: refuse it rather than merge distinct ids (a one-byte string is skipped at once).
    if (s.includes('\ufffd') && !isUtf8(this.#buf.subarray(at, at + n))) throw bad(path, 'is not valid UTF-8');
    return s;
  }

  /**
   * The next string longer than 24 bytes expected to equal `s` (a settle's
   * task id, which the broker holds already): when its bytes match, the
   * reader returns `s` itself instead of decoding a copy.
   */
  expect(s: string): void {
    lastLong = s;
  }

  /** A JSON text field: "" is undefined, anything else must parse. */
  json(path: string): unknown {
    const text = this.str(path);
    if (text === '') return undefined;
    try { return JSON.parse(text) as unknown; } catch { throw bad(path, 'is not valid JSON'); }
  }

  packed(path: string): Packed {
    const kind = this.u8(path);
    if (kind === 0) return this.str(path);
    if (kind !== 1) throw bad(path, `has packed kind ${kind}, expected 0 or 1`);
    const json = this.str(path);
    const n = this.u32(path);
    const bins: Uint8Array[] = [];
    for (let i = 0; i < n; i++) bins.push(takeAttachment(this.#bins, this.u32(path), `${path}.b[${i}]`));
    return { json, bins };
  }

  /** A task at `path` (`path[index]` when `index` >= 0). */
  task(path: string, index = -1, depth = 0): TaskMessage {
    try { return this.#task(depth); } catch (err) { throw rebase(err, path, index); }
  }

  batch(path: string): Batch {
    try { return this.#batch(); } catch (err) { throw rebase(err, path, -1); }
  }

  /** A state record at `path` (`path[index]` when `index` >= 0). */
  record(path: string, index = -1): StateRecord {
    try { return this.#record(); } catch (err) { throw rebase(err, path, index); }
  }

  chordRef(path: string): ChordRef {
    try { return this.#chordRef(); } catch (err) { throw rebase(err, path, -1); }
  }

  outcome(path: string): Outcome {
    try { return this.#outcome(); } catch (err) { throw rebase(err, path, -1); }
  }

  event(path: string): WatchEvent {
    try { return this.#event(); } catch (err) { throw rebase(err, path, -1); }
  }

  // The readers below name what they read relative to H (see rebase): no path string is built per value.

  #task(depth: number): TaskMessage {
    const id = this.str(H); const name = this.str(H, true); const queue = this.str(H, true);
    if (id === '' || queue === '') throw bad(H, 'must have a non-empty id and queue');
    const args = this.packed('\u0000.args');
    const m = {
      id, name, args, queue, priority: this.int(H, 'priority'), eta: this.num(H, 'eta'), retries: this.int(H, 'retries'),
      attempt: this.int(H, 'attempt'), createdAt: this.num(H, 'createdAt'),
    };
    const extras = this.json('\u0000.extras');
    return extras === undefined ? m : readTaskExtras(m, extras, this.#bins, H, depth);
  }

  #batch(): Batch {
    const n = this.u32('\u0000.tasks');
    if (n > this.#end - this.#p) throw bad('\u0000.tasks', `claims ${n} tasks, more than the frame can hold`);
    const tasks = sized<TaskMessage>(n);
    for (let i = 0; i < n; i++) tasks[i] = this.task('\u0000.tasks', i);
    const chords = this.json('\u0000.chords');
    return { tasks, chords: chords === undefined ? NO_CHORDS : readChordSpecs(chords, this.#bins, '\u0000.chords') };
  }

  #record(): StateRecord {
    const id = this.str(H); const name = this.str(H, true);
    const code = this.u8(H);
    const state = STATE_CODES[code];
    if (state === undefined) throw bad('\u0000.state', `must be a task state code 0-6, got ${code}`);
    const attempts = this.int(H, 'attempts'); const createdAt = this.num(H, 'createdAt'); const updatedAt = this.num(H, 'updatedAt');
    const flags = this.u8(H);
    if (flags > 7) throw bad('\u0000.flags', `has unknown bits (${flags})`);
    const result = (flags & 1) !== 0 ? this.packed('\u0000.result') : undefined;
    const error = (flags & 2) !== 0 ? readErrorInfo(this.json('\u0000.error'), '\u0000.error') : undefined;
    const expiresAt = (flags & 4) !== 0 ? this.num(H, 'expiresAt') : undefined;
    // One object literal per combination, all its fields in the object itself: a record added
    // to field by field gets a separate property array (one more object per stored record).
    if (expiresAt === undefined) {
      if (result !== undefined) return error === undefined ? { id, name, state, attempts, createdAt, updatedAt, result } : { id, name, state, attempts, createdAt, updatedAt, result, error };
      return error === undefined ? { id, name, state, attempts, createdAt, updatedAt } : { id, name, state, attempts, createdAt, updatedAt, error };
    }
    if (result !== undefined) return error === undefined ? { id, name, state, attempts, createdAt, updatedAt, result, expiresAt } : { id, name, state, attempts, createdAt, updatedAt, result, error, expiresAt };
    return error === undefined ? { id, name, state, attempts, createdAt, updatedAt, expiresAt } : { id, name, state, attempts, createdAt, updatedAt, error, expiresAt };
  }

  #chordRef(): ChordRef {
    const id = this.str(H);
    const index = this.int(H, 'index');
    const n = this.u32('\u0000.tail');
    if (n > this.#end - this.#p) throw bad('\u0000.tail', `claims ${n} ids, more than the frame can hold`);
    const tail: string[] = [];
    for (let i = 0; i < n; i++) tail.push(this.str('\u0000.tail'));
    return { id, index, tail };
  }

  #outcome(): Outcome {
    const n = this.u32('\u0000.records');
    if (n > this.#end - this.#p) throw bad('\u0000.records', `claims ${n} records, more than the frame can hold`);
    const records = sized<StateRecord>(n);
    for (let i = 0; i < n; i++) records[i] = this.record('\u0000.records', i);
    const flags = this.u8(H);
    if (flags > 7) throw bad('\u0000.flags', `has unknown bits (${flags})`);
    const publish = (flags & 1) !== 0 ? this.batch('\u0000.publish') : null;
    const retry = (flags & 2) !== 0 ? this.task('\u0000.retry') : null;
    let chord: Outcome['chord'] = null;
    if ((flags & 4) !== 0) {
      const ref = this.chordRef('\u0000.chord.ref');
      chord = { ref, result: this.u8('\u0000.chord') === 0 ? null : this.packed('\u0000.chord.result') };
    }
    return { records, publish, retry, chord };
  }

  #event(): WatchEvent {
    const kind = this.u8(H);
    if (kind === 0) return { type: 'state', record: this.record('\u0000.record') };
    if (kind === 1) return { type: 'progress', id: this.str('\u0000.id'), value: this.packed('\u0000.value') };
    throw bad('\u0000.type', `must be 0 (state) or 1 (progress), got ${kind}`);
  }
}

/**
 * The composite readers name fields relative to H, a placeholder for "the
 * value being read", and fill in its real path only when a read fails:
 * each level replaces H with its own path, which starts with H again until
 * the top (`settle.outcome` > `\u0000.records[0]` > `\u0000.state`).
 */
const H = '\u0000';

function rebase(err: unknown, path: string, index: number): unknown {
  if (!(err instanceof ProtocolError) || !err.message.includes(H)) return err;
  return new ProtocolError(err.message.replace(H, index < 0 ? path : `${path}[${index}]`));
}
