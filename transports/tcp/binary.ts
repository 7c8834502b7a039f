/**
 * The compact binary bodies of the hot messages (protocol version 2): publish,
 * settle, setState, deliver, result and event. Each task costs these frames
 * on its way, so they skip JSON: fixed fields are raw numbers, strings are
 * length-prefixed UTF-8 and a packed value's JSON text is copied as bytes,
 * never escaped into an outer JSON string. Rare, nested fields (backoff,
 * headers, workflow links, error details) travel as a JSON text inside the
 * binary body and are narrowed by the readers of wire-values.ts.
 *
 *   str     u32 byteLength, UTF-8 bytes
 *   num     f64 (IEEE 754); an integer field must hold a safe integer
 *   packed  u8 0, str text                      plain JSON text ("" = undefined)
 *         | u8 1, str json, u16 n, u16 × n      JSON text + indexes of the frame's attachments
 *   task    str id, str name, str queue, packed args, num priority, num eta, num retries,
 *           num attempt, num createdAt, str extras (JSON object of the optional fields; "" = none)
 *   batch   u32 n, task × n, str chords (JSON array of chord specs; "" = none)
 *   record  str id, str name, u8 state, num attempts, num createdAt, num updatedAt,
 *           u8 flags (1 result, 2 error, 4 expiresAt), [packed result], [str error JSON], [num expiresAt]
 *
 * docs/protocol.md section 3 is the reference for other implementations.
 * Every read is bounds-checked; anything off is a ProtocolError naming the field.
 */
import type { Packed } from '../../src/codec.js';
import type { ChordRef, ChordSpec, Outcome, StateRecord, TaskMessage, TaskState, WatchEvent, Batch } from '../../src/transport.js';
import { ProtocolError } from '../../src/errors.js';
import type { Outbox } from './framing.js';
import { bad, readChordSpecs, readErrorInfo, readTaskExtras, stringifyWithBins, TASK_EXTRA_KEYS } from './wire-values.js';

/** Task states in their wire order (u8). */
export const STATE_CODES: readonly TaskState[] = ['PENDING', 'RECEIVED', 'STARTED', 'RETRY', 'SUCCESS', 'FAILURE', 'REVOKED'];
const STATE_INDEX = new Map<string, number>(STATE_CODES.map((s, i) => [s, i]));
/** Bytes of the fixed payload header (type, id, nbins); protocol.ts re-exports it. */
export const PAYLOAD_HEADER_BYTES = 7;

/**
 * Writes a frame with a binary body straight into an {@link Outbox} slab,
 * collecting binary attachments in `bins`: {@link begin}, the body's pieces,
 * {@link end}. One writer per module: encoding is synchronous.
 */
export class BodyWriter {
  buf: Buffer = Buffer.allocUnsafe(0);
  p = 0;
  bins: Uint8Array[] = [];
  #out: Outbox | undefined;
  /** Payload offset of the frame being written. */
  #at = 0;

  /** Starts a frame of `type` answering or carrying request `id`. */
  begin(out: Outbox, type: number, id: number): void {
    const { buf, offset } = out.reserve(PAYLOAD_HEADER_BYTES + 256);
    this.#out = out;
    this.buf = buf;
    this.#at = offset;
    buf[offset] = type;
    buf.writeUInt32BE(id >>> 0, offset + 1);
    this.p = offset + PAYLOAD_HEADER_BYTES;
    if (this.bins.length > 0) this.bins = [];
  }

  /** Finishes the frame: the attachment table goes before the body (moved up, rarely), the attachments after it. */
  end(): void {
    const bins = this.bins;
    if (bins.length === 0) {
      this.buf.writeUInt16BE(0, this.#at + 5);
    } else {
      let binBytes = 0;
      for (const b of bins) binBytes += b.byteLength;
      const table = 4 * bins.length;
      this.#room(table + binBytes);
      const at = this.#at;
      const body = at + PAYLOAD_HEADER_BYTES;
      this.buf.copyWithin(body + table, body, this.p);
      this.p += table;
      this.buf.writeUInt16BE(bins.length, at + 5);
      let t = body;
      for (const b of bins) { this.buf.writeUInt32BE(b.byteLength, t); t += 4; }
      for (const b of bins) { this.buf.set(b, this.p); this.p += b.byteLength; }
    }
    (this.#out as Outbox).commit(this.p - this.#at);
    this.#out = undefined;
  }

  #room(n: number): void {
    if (this.p + n <= this.buf.length) return;
    const used = this.p - this.#at;
    const { buf, offset } = (this.#out as Outbox).extend(used, n);
    this.buf = buf;
    this.#at = offset;
    this.p = offset + used;
  }

  u8(v: number): void {
    this.#room(1);
    this.buf[this.p++] = v;
  }

  u16(v: number): void {
    this.#room(2);
    this.buf.writeUInt16BE(v, this.p);
    this.p += 2;
  }

  u32(v: number): void {
    this.#room(4);
    this.buf.writeUInt32BE(v, this.p);
    this.p += 4;
  }

  num(v: number): void {
    this.#room(8);
    this.buf.writeDoubleBE(v, this.p);
    this.p += 8;
  }

  str(s: string): void {
    const len = s.length;
    this.#room(4 + 3 * len);
    const buf = this.buf;
    const start = this.p + 4;
    let n = 0;
    // Short ASCII strings (ids, names, JSON of small values) byte by byte: cheaper than a call into C++.
    if (len <= 64) {
      for (; n < len; n++) {
        const c = s.charCodeAt(n);
        if (c >= 0x80) break;
        buf[start + n] = c;
      }
    }
    if (n < len) n = buf.write(s, start, 'utf8');
    buf.writeUInt32BE(n, this.p);
    this.p = start + n;
  }

  packed(v: Packed): void {
    if (typeof v === 'string') { this.u8(0); this.str(v); return; }
    this.u8(1);
    this.str(v.json);
    this.u16(v.bins.length);
    for (const b of v.bins) { this.u16(this.bins.length); this.bins.push(b); }
  }

  task(m: TaskMessage): void {
    this.str(m.id); this.str(m.name); this.str(m.queue); this.packed(m.args);
    this.num(m.priority); this.num(m.eta); this.num(m.retries); this.num(m.attempt); this.num(m.createdAt);
    this.str(taskExtras(m, this.bins));
  }

  batch(b: Batch): void {
    this.u32(b.tasks.length);
    for (const t of b.tasks) this.task(t);
    this.str(b.chords.length === 0 ? '' : stringifyWithBins(b.chords, true, this.bins));
  }

  record(r: StateRecord): void {
    this.str(r.id); this.str(r.name);
    this.u8(STATE_INDEX.get(r.state) ?? 255);
    this.num(r.attempts); this.num(r.createdAt); this.num(r.updatedAt);
    this.u8((r.result !== undefined ? 1 : 0) | (r.error !== undefined ? 2 : 0) | (r.expiresAt !== undefined ? 4 : 0));
    if (r.result !== undefined) this.packed(r.result);
    if (r.error !== undefined) this.str(JSON.stringify(r.error));
    if (r.expiresAt !== undefined) this.num(r.expiresAt);
  }

  chordRef(c: ChordRef): void {
    this.str(c.id); this.num(c.index); this.u32(c.tail.length);
    for (const t of c.tail) this.str(t);
  }

  outcome(o: Outcome): void {
    this.u32(o.records.length);
    for (const r of o.records) this.record(r);
    this.u8((o.publish !== null ? 1 : 0) | (o.retry !== null ? 2 : 0) | (o.chord !== null ? 4 : 0));
    if (o.publish !== null) this.batch(o.publish);
    if (o.retry !== null) this.task(o.retry);
    if (o.chord !== null) {
      this.chordRef(o.chord.ref);
      this.u8(o.chord.result === null ? 0 : 1);
      if (o.chord.result !== null) this.packed(o.chord.result);
    }
  }

  event(e: WatchEvent): void {
    if (e.type === 'state') { this.u8(0); this.record(e.record); return; }
    this.u8(1); this.str(e.id); this.packed(e.value);
  }
}

/** The optional fields of a task as one JSON object text, or "" when it has none (the common case). */
function taskExtras(m: TaskMessage, bins: Uint8Array[]): string {
  if (m.backoff === undefined && m.timeout === undefined && m.expires === undefined && m.immutable === undefined
    && m.headers === undefined && m.onSuccess === undefined && m.onError === undefined && m.chord === undefined) return '';
  const o: Record<string, unknown> = {};
  for (const k of TASK_EXTRA_KEYS) { const v = (m as unknown as Record<string, unknown>)[k]; if (v !== undefined) o[k] = v; }
  return stringifyWithBins(o, true, bins);
}

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
 * A number read from f64 bytes is a heap number even when it is 0 or 3; as
 * an int32 it is stored untagged in the objects it goes into (a queued
 * task's priority, retries, attempt: ~64 bytes of boxes per task otherwise,
 * measured with the bench's broker-memory row).
 */
function small(v: number): number {
  const i = v | 0;
  return i === v ? i : v;
}

const EMPTY = Buffer.alloc(0);
/** The chords of a batch without any (most): one shared frozen array. */
const NO_CHORDS: readonly ChordSpec[] = Object.freeze([]);
const NO_BINS: readonly Uint8Array[] = [];

/** Bounds-checked reader over a binary body; errors name the field's path. */
export class BodyReader {
  #buf: Buffer = EMPTY;
  bins: readonly Uint8Array[] = NO_BINS;
  #p = 0;
  #end = 0;

  /** Points the reader at the body `buf[start..end)` of a frame with attachments `bins` (one reader is reused). */
  reset(buf: Buffer, start: number, end: number, bins: readonly Uint8Array[]): this {
    this.#buf = buf;
    this.#p = start;
    this.#end = end;
    this.bins = bins;
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
    this.bins = NO_BINS;
  }

  u8(path: string): number {
    return this.#buf[this.#need(1, path)] as number;
  }

  u16(path: string): number {
    return this.#buf.readUInt16BE(this.#need(2, path));
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
    if (recurring && n <= SHORT) return short(this.#buf, at, n);
    return n > SHORT ? long(this.#buf, at, n) : utf8(this.#buf, at, at + n);
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
    const n = this.u16(path);
    const bins: Uint8Array[] = [];
    for (let i = 0; i < n; i++) {
      const k = this.u16(path);
      const b = this.bins[k];
      if (b === undefined) throw bad(`${path}.b[${i}]`, `refers to attachment ${k}, but the frame has ${this.bins.length}`);
      bins.push(new Uint8Array(b));
    }
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
    return extras === undefined ? m : readTaskExtras(m, extras, this.bins, H, depth);
  }

  #batch(): Batch {
    const n = this.u32('\u0000.tasks');
    if (n > this.#end - this.#p) throw bad('\u0000.tasks', `claims ${n} tasks, more than the frame can hold`);
    const tasks: TaskMessage[] = [];
    for (let i = 0; i < n; i++) tasks.push(this.task('\u0000.tasks', i));
    const chords = this.json('\u0000.chords');
    return { tasks, chords: chords === undefined ? NO_CHORDS : readChordSpecs(chords, this.bins, '\u0000.chords') };
  }

  #record(): StateRecord {
    const id = this.str(H); const name = this.str(H, true);
    const code = this.u8(H);
    const state = STATE_CODES[code];
    if (state === undefined) throw bad('\u0000.state', `must be a task state code 0-6, got ${code}`);
    const r: { -readonly [K in keyof StateRecord]: StateRecord[K] } = {
      id, name, state, attempts: this.int(H, 'attempts'), createdAt: this.num(H, 'createdAt'), updatedAt: this.num(H, 'updatedAt'),
    };
    const flags = this.u8(H);
    if (flags > 7) throw bad('\u0000.flags', `has unknown bits (${flags})`);
    if ((flags & 1) !== 0) r.result = this.packed('\u0000.result');
    if ((flags & 2) !== 0) r.error = readErrorInfo(this.json('\u0000.error'), '\u0000.error');
    if ((flags & 4) !== 0) r.expiresAt = this.num(H, 'expiresAt');
    return r;
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
    const records: StateRecord[] = [];
    for (let i = 0; i < n; i++) records.push(this.record('\u0000.records', i));
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
