/**
 * The millwright wire protocol, version 2 (docs/protocol.md). A frame's
 * payload is a fixed header, a body and raw binary attachments:
 *
 *   offset 0  u8      type        (MsgType)
 *          1  u32 BE  id          request id (0 when the message is not a request or reply)
 *          5  u32 BE  nbins       number of binary attachments
 *          9  u32 BE  × nbins     byte length of each attachment
 *          …  body    (may be empty), up to the attachments: UTF-8 JSON, or for
 *                     the hot types (publish, settle, setState, result, deliver, event)
 *                     the binary layout of binary.ts
 *          …  bytes   attachments, concatenated, in order
 *
 * Decoding checks every field with the narrowing readers of wire-values.ts
 * and binary-reader.ts and throws ProtocolError on anything unexpected.
 */
import { isUtf8 } from 'node:buffer';
import type { Packed } from '../../src/codec.js';
import { ProtocolError } from '../../src/errors.js';
import type { Batch, ConsumeSpec, Outcome, StateRecord, TaskMessage, WatchEvent } from '../../src/transport.js';
import { PAYLOAD_HEADER_BYTES } from './binary.js';
import { BodyReader } from './binary-reader.js';
import { BodyWriter } from './binary-writer.js';
import type { Outbox } from './framing.js';
import { arr, bad, int, ints, isBinary, obj, readPacked, str, strings, stringifyWithBins } from './wire-values.js';

/** Protocol version spoken by this implementation. */
export const PROTOCOL_VERSION = 2;
/**
 * The id a client's liveness probe asks the state of (no task has it: the broker answers "none", at once, ahead of
 * replies waiting for the journal: a broker busy with a slow commit is alive).
 */
export const PROBE_ID = '\u0000probe';
/** Bytes of the fixed payload header. */
export { PAYLOAD_HEADER_BYTES };

/** Message type codes. Client -> server below 64, server -> client from 64. */
export const MsgType = {
  hello: 1, publish: 2, consume: 3, cancel: 4, settle: 5, release: 6, setState: 7, getState: 8, revoke: 9,
  watch: 10, unwatch: 11, progress: 12, heartbeat: 13, stats: 14,
  welcome: 64, ok: 65, result: 66, error: 67, deliver: 68, revoked: 69, event: 70, statsResult: 71,
} as const;

/** Queue counters in a `stats` reply. */
export interface WireQueueStats { readonly name: string; readonly ready: number; readonly unacked: number; readonly consumers: number }

/** Messages a client sends. `id` is the request id, echoed by the reply. */
export type ClientMessage =
  | { readonly t: 'hello'; readonly v: number; readonly token: string | null; /** The client's maxFrameBytes (absent: the default). */ readonly max?: number }
  | { readonly t: 'publish'; readonly id: number; readonly batch: Batch }
  | { readonly t: 'consume'; readonly id: number; readonly c: number; readonly spec: ConsumeSpec }
  | { readonly t: 'cancel'; readonly id: number; readonly c: number }
  | { readonly t: 'settle'; readonly id: number; readonly tag: number; readonly mid: string; readonly outcome: Outcome }
  | { readonly t: 'release'; readonly id: number; readonly tag: number; readonly mid: string; readonly delay: number }
  | { readonly t: 'setState'; readonly id: number; readonly record: StateRecord }
  | { readonly t: 'getState'; readonly id: number; readonly sid: string }
  | { readonly t: 'revoke'; readonly id: number; readonly sid: string }
  | { readonly t: 'stats'; readonly id: number }
  | { readonly t: 'watch' | 'unwatch'; readonly ids: readonly string[] }
  | { readonly t: 'progress'; readonly tag: number; readonly mid: string; readonly value: Packed }
  | { readonly t: 'heartbeat'; readonly tags: readonly number[] };

/** Messages the broker sends. */
export type ServerMessage =
  | { readonly t: 'welcome'; readonly v: number; readonly visibilityTimeout: number; readonly heartbeat: number; /** The broker's maxFrameBytes (absent: the default). */ readonly max?: number }
  | { readonly t: 'ok'; readonly id: number }
  | { readonly t: 'result'; readonly id: number; readonly record: StateRecord | null }
  | { readonly t: 'statsResult'; readonly id: number; readonly queues: readonly WireQueueStats[]; readonly connections: number }
  | { readonly t: 'error'; readonly id: number; readonly code: string; readonly message: string }
  | { readonly t: 'deliver'; readonly c: number; readonly tag: number; readonly redelivered: boolean; readonly message: TaskMessage }
  | { readonly t: 'revoked'; readonly c: number; readonly sid: string }
  | { readonly t: 'event'; readonly event: WatchEvent };

export type AnyMessage = ClientMessage | ServerMessage;

const writer = new BodyWriter();

/**
 * Writes one message as a frame into `out`. An `ok` right after another `ok`
 * still in `out` replaces it (its id becomes the larger one): an `ok` answers
 * every earlier request too, since replies come in request order.
 */
export function writeMessage(out: Outbox, msg: AnyMessage): void {
  const w = writer;
  switch (msg.t) {
    case 'ok': return writeOk(out, msg.id);
    case 'publish': w.begin(out, MsgType.publish, msg.id); w.batch(msg.batch); return w.end();
    case 'settle': w.begin(out, MsgType.settle, msg.id); w.num(msg.tag); w.str(msg.mid); w.outcome(msg.outcome); return w.end();
    case 'setState': w.begin(out, MsgType.setState, msg.id); w.record(msg.record); return w.end();
    case 'result':
      w.begin(out, MsgType.result, msg.id); w.u8(msg.record === null ? 0 : 1);
      if (msg.record !== null) w.record(msg.record);
      return w.end();
    case 'deliver': return writeDeliver(out, msg.c, msg.tag, msg.redelivered, msg.message);
    case 'event': w.begin(out, MsgType.event, 0); w.event(msg.event); return w.end();
    default: return writeJson(out, msg);
  }
}

/** Writes a deliver frame (the broker's hot path: no message object). */
export function writeDeliver(out: Outbox, c: number, tag: number, redelivered: boolean, message: TaskMessage): void {
  const w = writer;
  w.begin(out, MsgType.deliver, 0); w.num(c); w.num(tag); w.u8(redelivered ? 1 : 0); w.task(message);
  w.end();
}

/** The smallest maxFrameBytes a peer may announce (the options' own minimum): below it nothing useful fits. */
const MIN_FRAME_LIMIT = 64;

/** A peer's announced maxFrameBytes (`max` of hello / welcome). */
function frameLimit(o: Record<string, unknown>, t: string): number {
  const max = int(o, 'max', t);
  if (max < MIN_FRAME_LIMIT) throw bad(`${t}.max`, `must be at least ${MIN_FRAME_LIMIT} (bytes)`);
  return max;
}

/** Writes an `ok` for request `id`, merged into an `ok` written just before it and not taken yet. */
export function writeOk(out: Outbox, id: number): void {
  const at = out.lastOffset;
  if (at >= 0) {
    const slab = out.slab;
    if (slab[at] === MsgType.ok && slab.readUInt32BE(at - 4) === PAYLOAD_HEADER_BYTES && slab.readUInt32BE(at + 1) <= id) {
      slab.writeUInt32BE(id, at + 1);
      return;
    }
  }
  writeFrame(out, MsgType.ok, id, '', []);
}

function writeJson(out: Outbox, msg: AnyMessage): void {
  const bins: Uint8Array[] = [];
  const [body, binary] = bodyOf(msg);
  const json = body === undefined ? '' : stringifyWithBins(body, binary, bins);
  writeFrame(out, MsgType[msg.t], 'id' in msg ? msg.id : 0, json, bins);
}

/** Writes a frame from its parts (also used by the journal). */
export function writeFrame(out: Outbox, type: number, id: number, json: string, bins: readonly Uint8Array[]): void {
  let binBytes = 0;
  for (const b of bins) binBytes += b.byteLength;
  const head = PAYLOAD_HEADER_BYTES + 4 * bins.length;
  const offset = out.reserve(head + json.length * 3 + binBytes);
  const buf = out.slab;
  buf[offset] = type;
  buf.writeUInt32BE(id >>> 0, offset + 1);
  buf.writeUInt32BE(bins.length, offset + 5);
  let p = offset + PAYLOAD_HEADER_BYTES;
  for (const b of bins) { buf.writeUInt32BE(b.byteLength, p); p += 4; }
  p += json.length === 0 ? 0 : buf.write(json, p, 'utf8');
  for (const b of bins) { buf.set(b, p); p += b.byteLength; }
  out.commit(p - offset);
}

/** The JSON body of the messages that are not binary. */
function bodyOf(msg: AnyMessage): [unknown, boolean] {
  switch (msg.t) {
    case 'hello': return [{ v: msg.v, ...(msg.token === null ? {} : { token: msg.token }), ...(msg.max === undefined ? {} : { max: msg.max }) }, false];
    case 'consume': return [{ c: msg.c, queues: msg.spec.queues, prefetch: msg.spec.prefetch, names: msg.spec.names }, false];
    case 'cancel': return [{ c: msg.c }, false];
    case 'release': return [{ tag: msg.tag, mid: msg.mid, delay: msg.delay }, false];
    case 'getState': case 'revoke': return [{ sid: msg.sid }, false];
    case 'stats': return [undefined, false];
    case 'watch': case 'unwatch': return [{ ids: msg.ids }, false];
    case 'progress': return [{ tag: msg.tag, mid: msg.mid, value: msg.value }, isBinary(msg.value)];
    case 'heartbeat': return [{ tags: msg.tags }, false];
    case 'welcome': return [{ v: msg.v, visibilityTimeout: msg.visibilityTimeout, heartbeat: msg.heartbeat, ...(msg.max === undefined ? {} : { max: msg.max }) }, false];
    case 'statsResult': return [{ queues: msg.queues, connections: msg.connections }, false];
    case 'error': return [{ code: msg.code, message: msg.message }, false];
    case 'revoked': return [{ c: msg.c, sid: msg.sid }, false];
    default: throw new Error(`${msg.t} has a binary body`);
  }
}

/** A payload split into its parts, the body parsed but not yet narrowed. */
export interface RawMessage {
  readonly type: number;
  readonly id: number;
  readonly body: unknown;
  readonly bins: readonly Uint8Array[];
}

/** A payload split into header, body bytes (`buf[start..end)`) and attachments. */
interface FrameParts {
  readonly type: number;
  readonly id: number;
  readonly buf: Buffer;
  readonly start: number;
  readonly end: number;
  readonly bins: readonly Uint8Array[];
}

const NO_BINS: readonly Uint8Array[] = [];

/**
 * Splits the payload `payload[from..to)` into its header fields, the body's
 * byte range and the attachments. The result is reused by the next call:
 * read it before splitting another frame.
 */
function splitFrame(payload: Uint8Array, from = 0, to = payload.length): FrameParts {
  const size = to - from;
  if (size < PAYLOAD_HEADER_BYTES) throw new ProtocolError(`Malformed frame: payload of ${size} bytes is shorter than the ${PAYLOAD_HEADER_BYTES}-byte message header`);
  const buf = Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  const type = buf[from] as number;
  const id = buf.readUInt32BE(from + 1);
  const nbins = buf.readUInt32BE(from + 5);
  const table = from + PAYLOAD_HEADER_BYTES;
  const start = table + 4 * nbins;
  if (start > to) throw new ProtocolError(`Malformed frame: ${nbins} attachment lengths do not fit in a ${size}-byte payload`);
  if (nbins === 0) return parts(type, id, buf, start, to, NO_BINS);
  let binBytes = 0;
  for (let i = 0; i < nbins; i++) binBytes += buf.readUInt32BE(table + 4 * i);
  const end = to - binBytes;
  if (end < start) throw new ProtocolError('Malformed frame: attachment lengths exceed the payload');
  const bins: Uint8Array[] = [];
  let p = end;
  for (let i = 0; i < nbins; i++) {
    const len = buf.readUInt32BE(table + 4 * i);
    bins.push(buf.subarray(p, p + len));
    p += len;
  }
  return parts(type, id, buf, start, end, bins);
}

/** One FrameParts, refilled per frame: decoding is synchronous and uses it before the next frame. */
const current: { -readonly [K in keyof FrameParts]: FrameParts[K] } = { type: 0, id: 0, buf: Buffer.alloc(0), start: 0, end: 0, bins: NO_BINS };

function parts(type: number, id: number, buf: Buffer, start: number, end: number, bins: readonly Uint8Array[]): FrameParts {
  current.type = type; current.id = id; current.buf = buf; current.start = start; current.end = end; current.bins = bins;
  return current;
}

function parseJson(f: FrameParts): unknown {
  if (f.end === f.start) return undefined;
  const text = f.buf.toString('utf8', f.start, f.end);
  // Invalid UTF-8 decodes to U+FFFD: refused, as in binary bodies (an id would silently change).
  if (text.includes('\ufffd') && !isUtf8(f.buf.subarray(f.start, f.end))) throw new ProtocolError('Malformed frame: the JSON body is not valid UTF-8');
  try { return JSON.parse(text); } catch { throw new ProtocolError('Malformed frame: the JSON body does not parse'); }
}

/** Splits a payload into header, parsed JSON body and attachments (JSON-bodied frames: the journal's). */
export function splitPayload(payload: Uint8Array): RawMessage {
  const f = splitFrame(payload);
  return { type: f.type, id: f.id, body: parseJson(f), bins: f.bins };
}

const reader = new BodyReader();
const readerOf = (f: FrameParts): BodyReader => reader.reset(f.buf, f.start, f.end, f.bins);

const CLIENT_NAMES = new Map<number, ClientMessage['t']>([
  [1, 'hello'], [2, 'publish'], [3, 'consume'], [4, 'cancel'], [5, 'settle'], [6, 'release'], [7, 'setState'], [8, 'getState'],
  [9, 'revoke'], [10, 'watch'], [11, 'unwatch'], [12, 'progress'], [13, 'heartbeat'], [14, 'stats'],
]);

/**
 * Decodes and narrows a client -> server payload, `payload[from..to)`.
 * `heldId` names the task id the broker holds for a delivery tag: a settle
 * of that tag reuses that string for its `mid` and its record's id when the
 * bytes match (no copy decoded; the result store keeps one string per task).
 */
export function decodeClientMessage(payload: Uint8Array, from = 0, to = payload.length, heldId?: (tag: number) => string | undefined): ClientMessage {
  const f = splitFrame(payload, from, to);
  const { type, id, bins } = f;
  const t = CLIENT_NAMES.get(type);
  if (t === undefined) throw new ProtocolError(`Unknown message type ${type}: this broker speaks protocol version ${PROTOCOL_VERSION} (see docs/protocol.md)`);
  if (t === 'stats') return { t, id };
  switch (t) {
    case 'publish': { const r = readerOf(f); const batch = r.batch(t); r.done(t); return { t, id, batch }; }
    case 'settle': {
      const r = readerOf(f);
      const tag = r.int(t, 'tag');
      const held = heldId?.(tag);
      if (held !== undefined) r.expect(held);
      const mid = r.str('settle.mid'); const outcome = r.outcome('settle.outcome');
      r.done(t);
      return { t, id, tag, mid, outcome };
    }
    case 'setState': { const r = readerOf(f); const record = r.record(t); r.done(t); return { t, id, record }; }
    default: break;
  }
  const o = obj(parseJson(f), t);
  switch (t) {
    case 'hello': {
      const token = o['token'];
      if (token !== undefined && typeof token !== 'string') throw bad('hello.token', 'must be a string');
      return o['max'] === undefined ? { t, v: int(o, 'v', t), token: token ?? null } : { t, v: int(o, 'v', t), token: token ?? null, max: frameLimit(o, t) };
    }
    case 'consume': {
      const prefetch = int(o, 'prefetch', t);
      if (prefetch < 1) throw bad('consume.prefetch', 'must be >= 1');
      const names = o['names'] === null ? null : strings(o['names'], 'consume.names');
      return { t, id, c: int(o, 'c', t), spec: { queues: strings(o['queues'], 'consume.queues'), prefetch, names } };
    }
    case 'cancel': return { t, id, c: int(o, 'c', t) };
    case 'release': return { t, id, tag: int(o, 'tag', t), mid: str(o, 'mid', t), delay: Math.max(0, int(o, 'delay', t)) };
    case 'getState': case 'revoke': return { t, id, sid: str(o, 'sid', t) };
    case 'watch': case 'unwatch': return { t, ids: strings(o['ids'], `${t}.ids`) };
    case 'progress': return { t, tag: int(o, 'tag', t), mid: str(o, 'mid', t), value: readPacked(o['value'], bins, 'progress.value') };
    case 'heartbeat': return { t, tags: ints(o['tags'], 'heartbeat.tags') };
  }
}

/** Decodes and narrows a server -> client payload, `payload[from..to)`. */
export function decodeServerMessage(payload: Uint8Array, from = 0, to = payload.length): ServerMessage {
  const f = splitFrame(payload, from, to);
  const { type, id } = f;
  switch (type) {
    case MsgType.ok: return { t: 'ok', id };
    case MsgType.deliver: {
      const r = readerOf(f);
      const c = r.int('deliver', 'c'); const tag = r.int('deliver', 'tag'); const flag = r.u8('deliver.r');
      if (flag > 1) throw bad('deliver.r', 'must be 0 or 1');
      const message = r.task('deliver.m');
      r.done('deliver');
      return { t: 'deliver', c, tag, redelivered: flag === 1, message };
    }
    case MsgType.event: { const r = readerOf(f); const event = r.event('event'); r.done('event'); return { t: 'event', event }; }
    case MsgType.result: {
      const r = readerOf(f);
      const record = r.u8('result') === 0 ? null : r.record('result.record');
      r.done('result');
      return { t: 'result', id, record };
    }
    default: break;
  }
  const o = obj(parseJson(f), `message type ${type}`);
  switch (type) {
    case MsgType.welcome: {
      const welcome = { t: 'welcome' as const, v: int(o, 'v', 'welcome'), visibilityTimeout: int(o, 'visibilityTimeout', 'welcome'), heartbeat: int(o, 'heartbeat', 'welcome') };
      return o['max'] === undefined ? welcome : { ...welcome, max: frameLimit(o, 'welcome') };
    }
    case MsgType.statsResult: return {
      t: 'statsResult', id, connections: int(o, 'connections', 'stats'),
      queues: arr(o['queues'], 'stats.queues').map((q, i) => {
        const s = obj(q, `stats.queues[${i}]`);
        const p = `stats.queues[${i}]`;
        return { name: str(s, 'name', p), ready: int(s, 'ready', p), unacked: int(s, 'unacked', p), consumers: int(s, 'consumers', p) };
      }),
    };
    case MsgType.error: return { t: 'error', id, code: str(o, 'code', 'error'), message: str(o, 'message', 'error') };
    case MsgType.revoked: return { t: 'revoked', c: int(o, 'c', 'revoked'), sid: str(o, 'sid', 'revoked') };
    default: throw new ProtocolError(`Unknown message type ${type} from the broker: upgrade millwright on this client`);
  }
}
