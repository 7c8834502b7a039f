import { describe, expect, it } from 'vitest';
import { packArgs } from '../../src/codec.js';
import { ProtocolError } from '../../src/errors.js';
import { seededRng } from '../../src/rng.js';
import type { TaskMessage } from '../../src/transport.js';
import { encodeFrame, FrameDecoder, Outbox } from '../../transports/tcp/framing.js';
import { decodeClientMessage, decodeServerMessage, writeMessage, type ClientMessage, type ServerMessage } from '../../transports/tcp/protocol.js';

function stream(payloads: Uint8Array[]): Buffer {
  return Buffer.concat(payloads.map((p) => encodeFrame(p)));
}

function decodeAll(chunks: Buffer[], max = 1 << 20): Buffer[] {
  const out: Buffer[] = [];
  const d = new FrameDecoder(max, (buf, start, end) => out.push(Buffer.from(buf.subarray(start, end))));
  for (const c of chunks) d.push(c);
  return out;
}

describe('FrameDecoder', () => {
  const rng = seededRng(20261126);
  const payloads = Array.from({ length: 12 }, (_, i) => {
    const b = Buffer.alloc(i === 3 ? 0 : Math.floor(rng() * 80) + 1);
    for (let j = 0; j < b.length; j++) b[j] = Math.floor(rng() * 256);
    return b;
  });
  const whole = stream(payloads);
  const same = (got: Buffer[]): boolean => got.length === payloads.length && got.every((g, i) => g.equals(payloads[i] as Buffer));

  it('reassembles a stream split into two at every byte boundary', () => {
    for (let cut = 0; cut <= whole.length; cut++) {
      if (!same(decodeAll([whole.subarray(0, cut), whole.subarray(cut)]))) expect.fail(`frames differ when cut at byte ${cut}`);
    }
  });

  it('reassembles a stream fed one byte at a time, and in random-sized pieces (seeded)', () => {
    const bytes: Buffer[] = [];
    for (let i = 0; i < whole.length; i++) bytes.push(whole.subarray(i, i + 1));
    expect(same(decodeAll(bytes))).toBe(true);
    for (let round = 0; round < 200; round++) {
      const pieces: Buffer[] = [];
      let at = 0;
      while (at < whole.length) {
        const n = 1 + Math.floor(rng() * 64);
        pieces.push(whole.subarray(at, at + n));
        at += n;
      }
      if (!same(decodeAll(pieces))) expect.fail(`frames differ in round ${round}`);
    }
  });

  it('rejects an oversize length as soon as the 4 header bytes are in', () => {
    const d = new FrameDecoder(1024, () => { throw new Error('no frame expected'); });
    d.push(Buffer.from([0x00, 0x00]));
    expect(() => d.push(Buffer.from([0x04, 0x01]))).toThrow(ProtocolError);
    expect(() => new FrameDecoder(1024, () => undefined).push(Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2]))).toThrow(/exceeds maxFrameBytes \(1024\)/);
  });

  it('accepts a frame of exactly maxFrameBytes and keeps an incomplete tail buffered', () => {
    const got: number[] = [];
    const d = new FrameDecoder(16, (_buf, start, end) => got.push(end - start));
    const full = encodeFrame(Buffer.alloc(16, 7));
    d.push(Buffer.concat([full, full.subarray(0, 10)]));
    expect(got).toEqual([16]);
    expect(d.buffered).toBe(10);
    d.push(full.subarray(10));
    expect(got).toEqual([16, 16]);
    expect(d.buffered).toBe(0);
  });

  it('stops delivering after stop()', () => {
    const got: Buffer[] = [];
    const d = new FrameDecoder(100, (buf, start, end) => { got.push(buf.subarray(start, end)); d.stop(); });
    d.push(stream([Buffer.from('a'), Buffer.from('b')]));
    expect(got.length).toBe(1);
  });
});

describe('Outbox', () => {
  it('hands back every frame written since the last take, never reusing taken bytes', () => {
    const out = new Outbox();
    const write = (n: number, fill: number): void => {
      const offset = out.reserve(n);
      out.slab.fill(fill, offset, offset + n);
      out.commit(n);
    };
    write(10, 1);
    const first = Buffer.concat(out.take());
    write(70_000, 2); // larger than a slab
    write(5, 3);
    const second = Buffer.concat(out.take());
    expect(first.readUInt32BE(0)).toBe(10);
    expect(first.subarray(4).every((b) => b === 1)).toBe(true);
    expect(decodeAll([second], 1 << 20).map((p) => [p.length, p[0]])).toEqual([[70_000, 2], [5, 3]]);
    expect(out.take()).toEqual([]);
  });
});

describe('protocol messages', () => {
  const task: TaskMessage = {
    id: 't1', name: 'add', args: { json: '[{"\\u0000b":0},2]', bins: [new Uint8Array([1, 2, 3])] }, queue: 'q', priority: 3, eta: 5, retries: 2,
    attempt: 1, createdAt: 9, backoff: { type: 'fixed', delay: 10 }, headers: { a: 'b' }, chord: { id: 'c', index: 0, tail: ['cb'] },
    onSuccess: { tasks: [{ id: 't2', name: 'n', args: '[]', queue: 'q', priority: 0, eta: 0, retries: 0, attempt: 0, createdAt: 1 }], chords: [] },
  };
  const client: ClientMessage[] = [
    { t: 'hello', v: 1, token: 'secret' },
    { t: 'publish', id: 1, batch: { tasks: [task], chords: [{ id: 'c', count: 1, callback: { tasks: [], chords: [] } }] } },
    { t: 'consume', id: 2, c: 1, spec: { queues: ['q'], prefetch: 4, names: null } },
    { t: 'cancel', id: 3, c: 1 },
    { t: 'settle', id: 4, tag: 7, mid: 't1', outcome: { records: [{ id: 't1', name: 'add', state: 'SUCCESS', result: { json: '{"\\u0000b":0}', bins: [new Uint8Array([9])] }, attempts: 1, createdAt: 1, updatedAt: 2 }], publish: null, retry: task, chord: { ref: { id: 'c', index: 0, tail: [] }, result: '5' } } },
    { t: 'release', id: 5, tag: 7, mid: 't1', delay: 0 },
    { t: 'setState', id: 6, record: { id: 't1', name: 'add', state: 'STARTED', attempts: 1, createdAt: 1, updatedAt: 2 } },
    { t: 'getState', id: 7, sid: 't1' }, { t: 'revoke', id: 8, sid: 't1' }, { t: 'stats', id: 9 },
    { t: 'watch', ids: ['a', 'b'] }, { t: 'unwatch', ids: ['a'] },
    { t: 'progress', tag: 7, mid: 't1', value: '0.5' }, { t: 'heartbeat', tags: [1, 2] },
  ];
  const server: ServerMessage[] = [
    { t: 'welcome', v: 1, visibilityTimeout: 100, heartbeat: 33 }, { t: 'ok', id: 4 },
    { t: 'result', id: 5, record: null }, { t: 'error', id: 0, code: 'ERR_AUTH', message: 'no' },
    { t: 'deliver', c: 1, tag: 3, redelivered: true, message: task }, { t: 'revoked', c: 1, sid: 'x' },
    { t: 'event', event: { type: 'progress', id: 'x', value: { json: '{"\\u0000b":0}', bins: [new Uint8Array([0, 255])] } } },
    { t: 'statsResult', id: 3, queues: [{ name: 'q', ready: 1, unacked: 2, consumers: 3 }], connections: 1 },
  ];
  const roundTrip = <T>(msg: ClientMessage | ServerMessage, decode: (p: Uint8Array) => T): T => {
    const out = new Outbox();
    writeMessage(out, msg);
    const frames = decodeAll(out.take());
    expect(frames.length).toBe(1);
    return decode(frames[0] as Buffer);
  };
  it.each(client.map((m) => [m.t, m] as const))('client message %s survives encode/decode, binaries as raw bytes', (_t, m) => {
    expect(roundTrip(m, decodeClientMessage)).toEqual(m);
  });
  it.each(server.map((m) => [m.t, m] as const))('server message %s survives encode/decode', (_t, m) => {
    expect(roundTrip(m, decodeServerMessage)).toEqual(m);
  });
  it('carries attachments beside the JSON, not base64 inside it', () => {
    const out = new Outbox();
    const big = new Uint8Array(10_000).fill(0xab);
    writeMessage(out, { t: 'progress', tag: 1, mid: 'm', value: { json: '{"\\u0000b":0}', bins: [big] } });
    const bytes = Buffer.concat(out.take());
    expect(bytes.length).toBeLessThan(10_000 + 100);
  });
  it('names the bad field of a malformed message', () => {
    const out = new Outbox();
    writeMessage(out, { t: 'publish', id: 1, batch: { tasks: [{ ...task, priority: 'high' as unknown as number }], chords: [] } });
    const [frame] = decodeAll(out.take());
    expect(() => decodeClientMessage(frame as Buffer)).toThrow(/publish\.tasks\[0\]\.priority must be an integer/);
  });
});
