/**
 * The millwright wire protocol, version 1 (docs/protocol.md). A frame's
 * payload is a fixed header, a JSON body and raw binary attachments:
 *
 *   offset 0  u8      type        (MsgType)
 *          1  u32 BE  id          request id (0 when the message is not a request or reply)
 *          5  u16 BE  nbins       number of binary attachments
 *          7  u32 BE  × nbins     byte length of each attachment
 *          …  UTF-8   JSON body   (may be empty), up to the attachments
 *          …  bytes   attachments, concatenated, in order
 *
 * Decoding checks every field with the narrowing readers of wire-values.ts
 * and throws ProtocolError on anything unexpected.
 */
import type { Packed } from '../../src/codec.js';
import { ProtocolError } from '../../src/errors.js';
import type { Batch, ConsumeSpec, Outcome, StateRecord, TaskMessage, WatchEvent } from '../../src/transport.js';
import type { Outbox } from './framing.js';
import {
  arr, bad, batchHasBinary, int, ints, isBinary, obj, outcomeHasBinary, readBatch, readEvent, readOutcome, readPacked,
  readRecord, readTask, str, strings, stringifyWithBins, taskHasBinary,
} from './wire-values.js';

/** Protocol version spoken by this implementation. */
export const PROTOCOL_VERSION = 1;
/** Bytes of the fixed payload header. */
export const PAYLOAD_HEADER_BYTES = 7;

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
  | { readonly t: 'hello'; readonly v: number; readonly token: string | null }
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
  | { readonly t: 'welcome'; readonly v: number; readonly visibilityTimeout: number; readonly heartbeat: number }
  | { readonly t: 'ok'; readonly id: number }
  | { readonly t: 'result'; readonly id: number; readonly record: StateRecord | null }
  | { readonly t: 'statsResult'; readonly id: number; readonly queues: readonly WireQueueStats[]; readonly connections: number }
  | { readonly t: 'error'; readonly id: number; readonly code: string; readonly message: string }
  | { readonly t: 'deliver'; readonly c: number; readonly tag: number; readonly redelivered: boolean; readonly message: TaskMessage }
  | { readonly t: 'revoked'; readonly c: number; readonly sid: string }
  | { readonly t: 'event'; readonly event: WatchEvent };

export type AnyMessage = ClientMessage | ServerMessage;

/** Writes one message as a frame into `out`. */
export function writeMessage(out: Outbox, msg: AnyMessage): void {
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
  const { buf, offset } = out.reserve(head + json.length * 3 + binBytes);
  buf[offset] = type;
  buf.writeUInt32BE(id >>> 0, offset + 1);
  buf.writeUInt16BE(bins.length, offset + 5);
  let p = offset + PAYLOAD_HEADER_BYTES;
  for (const b of bins) { buf.writeUInt32BE(b.byteLength, p); p += 4; }
  p += json.length === 0 ? 0 : buf.write(json, p, 'utf8');
  for (const b of bins) { buf.set(b, p); p += b.byteLength; }
  out.commit(p - offset);
}

function bodyOf(msg: AnyMessage): [unknown, boolean] {
  switch (msg.t) {
    case 'hello': return [msg.token === null ? { v: msg.v } : { v: msg.v, token: msg.token }, false];
    case 'publish': return [msg.batch, batchHasBinary(msg.batch)];
    case 'consume': return [{ c: msg.c, queues: msg.spec.queues, prefetch: msg.spec.prefetch, names: msg.spec.names }, false];
    case 'cancel': return [{ c: msg.c }, false];
    case 'settle': return [{ tag: msg.tag, mid: msg.mid, outcome: msg.outcome }, outcomeHasBinary(msg.outcome)];
    case 'release': return [{ tag: msg.tag, mid: msg.mid, delay: msg.delay }, false];
    case 'setState': return [msg.record, isBinary(msg.record.result)];
    case 'getState': case 'revoke': return [{ sid: msg.sid }, false];
    case 'stats': case 'ok': return [undefined, false];
    case 'watch': case 'unwatch': return [{ ids: msg.ids }, false];
    case 'progress': return [{ tag: msg.tag, mid: msg.mid, value: msg.value }, isBinary(msg.value)];
    case 'heartbeat': return [{ tags: msg.tags }, false];
    case 'welcome': return [{ v: msg.v, visibilityTimeout: msg.visibilityTimeout, heartbeat: msg.heartbeat }, false];
    case 'result': return [{ record: msg.record }, msg.record !== null && isBinary(msg.record.result)];
    case 'statsResult': return [{ queues: msg.queues, connections: msg.connections }, false];
    case 'error': return [{ code: msg.code, message: msg.message }, false];
    case 'deliver': return [{ c: msg.c, tag: msg.tag, r: msg.redelivered, m: msg.message }, taskHasBinary(msg.message)];
    case 'revoked': return [{ c: msg.c, sid: msg.sid }, false];
    case 'event': return [msg.event, msg.event.type === 'progress' ? isBinary(msg.event.value) : isBinary(msg.event.record.result)];
  }
}

/** A payload split into its parts, the body parsed but not yet narrowed. */
export interface RawMessage {
  readonly type: number;
  readonly id: number;
  readonly body: unknown;
  readonly bins: readonly Uint8Array[];
}

/** Splits a payload into header, parsed JSON body and attachments. */
export function splitPayload(payload: Uint8Array): RawMessage {
  if (payload.length < PAYLOAD_HEADER_BYTES) throw new ProtocolError(`Malformed frame: payload of ${payload.length} bytes is shorter than the ${PAYLOAD_HEADER_BYTES}-byte message header`);
  const buf = Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  const type = buf[0] as number;
  const id = buf.readUInt32BE(1);
  const nbins = buf.readUInt16BE(5);
  let p = PAYLOAD_HEADER_BYTES + 4 * nbins;
  if (p > buf.length) throw new ProtocolError(`Malformed frame: ${nbins} attachment lengths do not fit in a ${buf.length}-byte payload`);
  let binBytes = 0;
  for (let i = 0; i < nbins; i++) binBytes += buf.readUInt32BE(PAYLOAD_HEADER_BYTES + 4 * i);
  const jsonEnd = buf.length - binBytes;
  if (jsonEnd < p) throw new ProtocolError('Malformed frame: attachment lengths exceed the payload');
  let body: unknown;
  if (jsonEnd > p) {
    try { body = JSON.parse(buf.toString('utf8', p, jsonEnd)); } catch { throw new ProtocolError('Malformed frame: the JSON body does not parse'); }
  }
  const bins: Uint8Array[] = [];
  p = jsonEnd;
  for (let i = 0; i < nbins; i++) {
    const len = buf.readUInt32BE(PAYLOAD_HEADER_BYTES + 4 * i);
    bins.push(buf.subarray(p, p + len));
    p += len;
  }
  return { type, id, body, bins };
}

const CLIENT_NAMES = new Map<number, ClientMessage['t']>([
  [1, 'hello'], [2, 'publish'], [3, 'consume'], [4, 'cancel'], [5, 'settle'], [6, 'release'], [7, 'setState'], [8, 'getState'],
  [9, 'revoke'], [10, 'watch'], [11, 'unwatch'], [12, 'progress'], [13, 'heartbeat'], [14, 'stats'],
]);

/** Decodes and narrows a client -> server payload. */
export function decodeClientMessage(payload: Uint8Array): ClientMessage {
  const { type, id, body, bins } = splitPayload(payload);
  const t = CLIENT_NAMES.get(type);
  if (t === undefined) throw new ProtocolError(`Unknown message type ${type}: this broker speaks protocol version ${PROTOCOL_VERSION} (see docs/protocol.md)`);
  if (t === 'stats') return { t, id };
  const o = obj(body, t);
  switch (t) {
    case 'hello': {
      const token = o['token'];
      if (token !== undefined && typeof token !== 'string') throw bad('hello.token', 'must be a string');
      return { t, v: int(o, 'v', t), token: token ?? null };
    }
    case 'publish': return { t, id, batch: readBatch(o, bins, t) };
    case 'consume': {
      const prefetch = int(o, 'prefetch', t);
      if (prefetch < 1) throw bad('consume.prefetch', 'must be >= 1');
      const names = o['names'] === null ? null : strings(o['names'], 'consume.names');
      return { t, id, c: int(o, 'c', t), spec: { queues: strings(o['queues'], 'consume.queues'), prefetch, names } };
    }
    case 'cancel': return { t, id, c: int(o, 'c', t) };
    case 'settle': return { t, id, tag: int(o, 'tag', t), mid: str(o, 'mid', t), outcome: readOutcome(o['outcome'], bins, 'settle.outcome') };
    case 'release': return { t, id, tag: int(o, 'tag', t), mid: str(o, 'mid', t), delay: Math.max(0, int(o, 'delay', t)) };
    case 'setState': return { t, id, record: readRecord(o, bins, t) };
    case 'getState': case 'revoke': return { t, id, sid: str(o, 'sid', t) };
    case 'watch': case 'unwatch': return { t, ids: strings(o['ids'], `${t}.ids`) };
    case 'progress': return { t, tag: int(o, 'tag', t), mid: str(o, 'mid', t), value: readPacked(o['value'], bins, 'progress.value') };
    case 'heartbeat': return { t, tags: ints(o['tags'], 'heartbeat.tags') };
  }
}

/** Decodes and narrows a server -> client payload. */
export function decodeServerMessage(payload: Uint8Array): ServerMessage {
  const { type, id, body, bins } = splitPayload(payload);
  if (type === MsgType.ok) return { t: 'ok', id };
  const o = obj(body, `message type ${type}`);
  switch (type) {
    case MsgType.welcome: return { t: 'welcome', v: int(o, 'v', 'welcome'), visibilityTimeout: int(o, 'visibilityTimeout', 'welcome'), heartbeat: int(o, 'heartbeat', 'welcome') };
    case MsgType.result: return { t: 'result', id, record: o['record'] === null ? null : readRecord(o['record'], bins, 'result.record') };
    case MsgType.statsResult: return {
      t: 'statsResult', id, connections: int(o, 'connections', 'stats'),
      queues: arr(o['queues'], 'stats.queues').map((q, i) => {
        const s = obj(q, `stats.queues[${i}]`);
        const p = `stats.queues[${i}]`;
        return { name: str(s, 'name', p), ready: int(s, 'ready', p), unacked: int(s, 'unacked', p), consumers: int(s, 'consumers', p) };
      }),
    };
    case MsgType.error: return { t: 'error', id, code: str(o, 'code', 'error'), message: str(o, 'message', 'error') };
    case MsgType.deliver: {
      const r = o['r'];
      if (typeof r !== 'boolean') throw bad('deliver.r', 'must be a boolean');
      return { t: 'deliver', c: int(o, 'c', 'deliver'), tag: int(o, 'tag', 'deliver'), redelivered: r, message: readTask(o['m'], bins, 'deliver.m') };
    }
    case MsgType.revoked: return { t: 'revoked', c: int(o, 'c', 'revoked'), sid: str(o, 'sid', 'revoked') };
    case MsgType.event: return { t: 'event', event: readEvent(o, bins, 'event') };
    default: throw new ProtocolError(`Unknown message type ${type} from the broker: upgrade millwright on this client`);
  }
}
