/** The binary bodies of protocol version 2 (binary.ts): round trips, exact layout, and malformed input refused with ERR_PROTOCOL. */
import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../../src/errors.js';
import { seededRng } from '../../src/rng.js';
import type { Outcome, StateRecord, TaskMessage } from '../../src/transport.js';
import { FrameDecoder, Outbox } from '../../transports/tcp/framing.js';
import {
  decodeClientMessage, decodeServerMessage, MsgType, PAYLOAD_HEADER_BYTES, writeMessage, type ClientMessage, type ServerMessage,
} from '../../transports/tcp/protocol.js';

const frames = (out: Outbox): Buffer[] => {
  const got: Buffer[] = [];
  const d = new FrameDecoder(1 << 20, (buf, start, end) => got.push(Buffer.from(buf.subarray(start, end))));
  for (const b of out.take()) d.push(b);
  return got;
};
const encode = (msg: ClientMessage | ServerMessage): Buffer => {
  const out = new Outbox();
  writeMessage(out, msg);
  const [f] = frames(out);
  return f as Buffer;
};

const plain: TaskMessage = { id: 'a1', name: 'add', args: '[1,2]', queue: 'default', priority: 0, eta: 0, retries: 0, attempt: 0, createdAt: 1764172800000 };
const rich: TaskMessage = {
  id: 'ü-ß-😀', name: 'näme', args: { json: '[{"\\u0000b":0},{"\\u0000b":1}]', bins: [new Uint8Array([1, 2]), new Uint8Array([])] }, queue: 'q',
  priority: -3, eta: 1764172800123.5, retries: 4, attempt: 2, createdAt: 1, backoff: { type: 'exponential', delay: 10, maxDelay: 100, jitter: true },
  timeout: 50, expires: 99, immutable: true, headers: { h: 'v' }, chord: { id: 'c', index: 1, tail: ['x', 'y'] },
  onSuccess: { tasks: [{ ...plain, id: 'next', args: { json: '[{"\\u0000b":0}]', bins: [new Uint8Array([7])] } }], chords: [{ id: 'c2', count: 2, callback: { tasks: [plain], chords: [] } }] },
  onError: [{ ...plain, id: 'err' }],
};
const final: StateRecord = {
  id: 'a1', name: 'add', state: 'FAILURE', attempts: 3, createdAt: 1, updatedAt: 2, expiresAt: 3,
  error: { code: 'ERR_TASK_FAILED', name: 'Error', message: 'boom "quoted"', stack: 'at x', data: { k: [1] } },
};
const outcome: Outcome = {
  records: [final, { id: 'b', name: 'n', state: 'SUCCESS', result: '', attempts: 1, createdAt: 1, updatedAt: 2 }],
  publish: { tasks: [rich, plain], chords: [{ id: 'c3', count: 1, callback: { tasks: [], chords: [] } }] }, retry: rich,
  chord: { ref: { id: 'c', index: 0, tail: [] }, result: null },
};

describe('binary message bodies', () => {
  const client: ClientMessage[] = [
    { t: 'publish', id: 1, batch: { tasks: [plain, rich], chords: [] } },
    { t: 'publish', id: 1, batch: { tasks: [], chords: [] } },
    { t: 'settle', id: 2, tag: 2 ** 40, mid: 'a1', outcome },
    { t: 'settle', id: 2, tag: 1, mid: 'a1', outcome: { records: [], publish: null, retry: null, chord: null } },
    { t: 'setState', id: 3, record: final },
  ];
  const server: ServerMessage[] = [
    { t: 'deliver', c: 3, tag: 9, redelivered: false, message: plain },
    { t: 'deliver', c: 3, tag: 9, redelivered: true, message: rich },
    { t: 'result', id: 4, record: final }, { t: 'result', id: 4, record: null },
    { t: 'event', event: { type: 'state', record: { ...final, state: 'STARTED' } } },
    { t: 'event', event: { type: 'progress', id: 'a1', value: '0.5' } },
  ];
  it.each(client.map((m, i) => [`${m.t} #${i}`, m] as const))('client %s survives encode/decode', (_n, m) => {
    expect(decodeClientMessage(encode(m))).toEqual(m);
  });
  it.each(server.map((m, i) => [`${m.t} #${i}`, m] as const))('server %s survives encode/decode', (_n, m) => {
    expect(decodeServerMessage(encode(m))).toEqual(m);
  });

  it('lays a plain deliver out as documented: numbers as f64, strings length-prefixed, args as raw JSON bytes', () => {
    const f = encode({ t: 'deliver', c: 3, tag: 9, redelivered: true, message: plain });
    expect(f[0]).toBe(MsgType.deliver);
    const body = f.subarray(PAYLOAD_HEADER_BYTES);
    expect(body.readDoubleBE(0)).toBe(3);
    expect(body.readDoubleBE(8)).toBe(9);
    expect(body[16]).toBe(1);
    expect(body.readUInt32BE(17)).toBe(2);
    expect(body.toString('utf8', 21, 23)).toBe('a1');
    expect(body.includes(Buffer.from('\x00\x00\x00\x00\x05[1,2]'))).toBe(true); // packed kind 0, then the text unescaped
    expect(body.readUInt32BE(body.length - 4)).toBe(0); // no extras
  });

  it('refuses every truncation of a valid body with ERR_PROTOCOL, never another error', () => {
    const cases: Array<[Buffer, (p: Uint8Array) => unknown]> = [
      [encode(client[0] as ClientMessage), decodeClientMessage], [encode(client[2] as ClientMessage), decodeClientMessage],
      [encode(client[4] as ClientMessage), decodeClientMessage], [encode(server[1] as ServerMessage), decodeServerMessage],
      [encode(server[2] as ServerMessage), decodeServerMessage], [encode(server[4] as ServerMessage), decodeServerMessage],
    ];
    for (const [frame, decode] of cases) {
      for (let cut = PAYLOAD_HEADER_BYTES; cut < frame.length; cut++) {
        const torn = Buffer.from(frame.subarray(0, cut));
        // Keep the attachment count consistent with what is left, so the body reader is what fails.
        if (torn.readUInt32BE(5) > 0) continue;
        let err: unknown;
        try { decode(torn); } catch (e) { err = e; }
        if (!(err instanceof ProtocolError)) expect.fail(`cut at ${cut} of a type ${frame[0]} frame: ${String(err)}`);
        expect(err.code).toBe('ERR_PROTOCOL');
      }
    }
  });

  it('refuses seeded random byte flips with ERR_PROTOCOL or decodes them, never throwing anything else', () => {
    const rng = seededRng(42);
    const valid = [encode(client[2] as ClientMessage), encode(server[1] as ServerMessage)];
    for (let round = 0; round < 2000; round++) {
      const b = Buffer.from(valid[round % 2] as Buffer);
      b[PAYLOAD_HEADER_BYTES + Math.floor(rng() * (b.length - PAYLOAD_HEADER_BYTES))] = Math.floor(rng() * 256);
      try { (round % 2 === 0 ? decodeClientMessage : decodeServerMessage)(b); } catch (e) {
        if (!(e instanceof ProtocolError)) expect.fail(`round ${round}: ${String(e)}`);
      }
    }
  });

  const patched = (msg: ClientMessage | ServerMessage, at: (body: Buffer) => number, write: (b: Buffer, i: number) => void): Buffer => {
    const f = Buffer.from(encode(msg));
    const body = f.subarray(PAYLOAD_HEADER_BYTES + 4 * f.readUInt32BE(5));
    write(body, at(body));
    return f;
  };
  const deliver = server[0] as ServerMessage;
  // deliver body: c f64 @0, tag f64 @8, r u8 @16, id str @17 (4+2), name @23 (4+3), queue @30 (4+7), args kind @41, text @42 (4+5), priority @51
  it.each([
    ['a NaN integer', patched(deliver, () => 51, (b, i) => b.writeDoubleBE(NaN, i)), /deliver\.m\.priority must be an integer/],
    ['a fractional tag', patched(deliver, () => 8, (b, i) => b.writeDoubleBE(1.5, i)), /deliver\.tag must be an integer/],
    ['a redelivered flag of 2', patched(deliver, () => 16, (b, i) => { b[i] = 2; }), /deliver\.r must be 0 or 1/],
    ['an unknown packed kind', patched(deliver, () => 41, (b, i) => { b[i] = 9; }), /deliver\.m\.args has packed kind 9/],
    ['a string running past the end', patched(deliver, () => 23, (b, i) => b.writeUInt32BE(1 << 30, i)), /runs past the end of the frame/],
    ['an empty id', encode({ t: 'deliver', c: 3, tag: 9, redelivered: false, message: { ...plain, id: '' } }), /deliver\.m must have a non-empty id and queue/],
  ])('names the field of %s', (_n, frame, message) => {
    expect(() => decodeServerMessage(frame)).toThrow(message);
    try { decodeServerMessage(frame); } catch (e) { expect((e as ProtocolError).code).toBe('ERR_PROTOCOL'); }
  });

  it('refuses a bad state code, bytes left over, bad extras JSON and a dangling attachment index', () => {
    const setState = { t: 'setState', id: 1, record: { id: 'a', name: 'n', state: 'STARTED', attempts: 1, createdAt: 1, updatedAt: 2 } } as const;
    expect(() => decodeClientMessage(patched(setState, () => 4 + 1 + 4 + 1, (b, i) => { b[i] = 7; }))).toThrow(/setState\.state must be a task state code 0-6, got 7/);
    expect(() => decodeClientMessage(Buffer.concat([encode(setState), Buffer.from([0])]))).toThrow(/setState has 1 bytes left over/);
    const withExtras = encode({ t: 'deliver', c: 1, tag: 1, redelivered: false, message: { ...plain, timeout: 55 } });
    const i = withExtras.indexOf('{"timeout":55}');
    withExtras.write('{"timeout":""}', i);
    expect(() => decodeServerMessage(withExtras)).toThrow(/deliver\.m\.timeout must be a finite number/);
    withExtras.write('{"timeout":55,', i);
    expect(() => decodeServerMessage(withExtras)).toThrow(/deliver\.m\.extras is not valid JSON/);
    const bin = Buffer.from(encode({ t: 'event', event: { type: 'progress', id: 'p', value: { json: '{"\\u0000b":0}', bins: [new Uint8Array([1])] } } }));
    bin.writeUInt32BE(3, bin.length - 1 - 4); // the only attachment index, before the 1 attachment byte
    expect(() => decodeServerMessage(bin)).toThrow(/event\.value\.b\[0\] refers to attachment 3, but the frame has 1/);
  });
});

describe('error paths through nested values', () => {
  it('name the innermost field with every index on the way', () => {
    const bad = { ...plain, id: 'b2', priority: Number.NaN };
    const nested = { t: 'settle', id: 1, tag: 1, mid: 'a1', outcome: { records: [], publish: { tasks: [plain, bad], chords: [] }, retry: null, chord: null } } as const;
    expect(() => decodeClientMessage(encode(nested))).toThrow('Malformed frame: settle.outcome.publish.tasks[1].priority must be an integer');
    const state = { id: 'a1', name: 'n', state: 'NOPE' as unknown as 'SUCCESS', attempts: 1, createdAt: 1, updatedAt: 2 };
    const records = { t: 'settle', id: 1, tag: 1, mid: 'a1', outcome: { records: [final, state], publish: null, retry: null, chord: null } } as const;
    expect(() => decodeClientMessage(encode(records))).toThrow('Malformed frame: settle.outcome.records[1].state must be a task state code 0-6, got 255');
    const extras = { t: 'deliver', c: 1, tag: 1, redelivered: false, message: { ...plain, onError: [{ ...plain, queue: 5 as unknown as string }] } } as const;
    expect(() => decodeServerMessage(encode(extras))).toThrow('Malformed frame: deliver.m.onError[0].queue must be a string');
  });
});

describe('ok replies', () => {
  const ids = (out: Outbox): Array<[number, number]> => frames(out).map((f) => [f[0] as number, f.readUInt32BE(1)]);
  it('merge into the last ok still in the outbox, keeping the larger id', () => {
    const out = new Outbox();
    for (const id of [1, 2, 3]) writeMessage(out, { t: 'ok', id });
    writeMessage(out, { t: 'result', id: 4, record: null });
    writeMessage(out, { t: 'ok', id: 5 });
    writeMessage(out, { t: 'ok', id: 0 }); // smaller: a frame of its own
    expect(ids(out)).toEqual([[MsgType.ok, 3], [MsgType.result, 4], [MsgType.ok, 5], [MsgType.ok, 0]]);
  });
  it('never change a frame already taken for the socket', () => {
    const out = new Outbox();
    writeMessage(out, { t: 'ok', id: 1 });
    const first = Buffer.concat(out.take());
    writeMessage(out, { t: 'ok', id: 2 });
    expect(first.readUInt32BE(5)).toBe(1);
    expect(ids(out)).toEqual([[MsgType.ok, 2]]);
  });
});

describe('frames written straight into the outbox slab', () => {
  it('move a frame that outgrows its slab mid-body, keeping the frames before it intact', () => {
    const out = new Outbox();
    const small: ServerMessage = { t: 'deliver', c: 1, tag: 1, redelivered: false, message: plain };
    for (let i = 0; i < 400; i++) writeMessage(out, small); // ~56 KB of a 64 KB slab
    const bigArgs = `[${'"é",'.repeat(40_000)}1]`;
    const big: ServerMessage = { t: 'deliver', c: 1, tag: 2, redelivered: false, message: { ...plain, args: { json: bigArgs, bins: [new Uint8Array(70_000).fill(5)] } } };
    writeMessage(out, big);
    writeMessage(out, small);
    const got = frames(out).map((f) => decodeServerMessage(f));
    expect(got.length).toBe(402);
    expect(got[0]).toEqual(small);
    expect(got[399]).toEqual(small);
    expect(got[400]).toEqual(big);
    expect(got[401]).toEqual(small);
  });

  it('decode short strings through the cache exactly, non-ASCII included', () => {
    for (const name of ['add', 'adc', 'ädd', 'a', 'x'.repeat(24), 'x'.repeat(25), 'add']) {
      const m: ServerMessage = { t: 'deliver', c: 1, tag: 1, redelivered: false, message: { ...plain, name } };
      expect(decodeServerMessage(encode(m))).toEqual(m);
    }
  });
});

describe('attachments (review)', () => {
  const task = (args: TaskMessage['args']): TaskMessage => ({ id: 't', name: 'n', args, queue: 'q', priority: 0, eta: 0, retries: 0, attempt: 0, createdAt: 0 });

  it('an attachment referenced twice in one frame is refused (one small frame cannot expand into many copies)', () => {
    const frame = Buffer.from(encode({ t: 'publish', id: 1, batch: { tasks: [task({ json: '[{"\\u0000b":0},{"\\u0000b":1}]', bins: [new Uint8Array(64), new Uint8Array(64)] })], chords: [] } }));
    // The packed value's references: u32 n = 2, then indexes 0 and 1; point the second at attachment 0 too.
    const refs = frame.indexOf(Buffer.from([0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1]));
    expect(refs).toBeGreaterThan(PAYLOAD_HEADER_BYTES);
    frame.writeUInt32BE(0, refs + 8);
    expect(() => decodeClientMessage(frame)).toThrow(/refers to attachment 0 a second time/);
  });

  it('more than 65,535 attachments in one frame round-trip (a chord callback can gather that many)', () => {
    const bins = Array.from({ length: 70_000 }, (_, i) => new Uint8Array([i & 255]));
    const json = JSON.stringify(bins.map((_, i) => ({ '\u0000b': i })));
    const out = new Outbox();
    writeMessage(out, { t: 'deliver', c: 1, tag: 2, redelivered: false, message: task({ json, bins }) });
    const framed = Buffer.concat(out.take());
    const msg = decodeServerMessage(framed.subarray(4)); // past the length prefix: ~1.9 MB, over the default frame limit
    if (msg.t !== 'deliver') throw new Error(msg.t);
    const args = msg.message.args;
    expect(typeof args === 'string' ? 0 : args.bins.length).toBe(70_000);
    expect(typeof args === 'string' ? -1 : args.bins[69_999]?.[0]).toBe(69_999 & 255);
  });
});

describe('strings (review)', () => {
  it('invalid UTF-8 in a string field is refused with ERR_PROTOCOL, not replaced by U+FFFD (distinct ids would merge)', () => {
    const frame = Buffer.from(encode({ t: 'publish', id: 1, batch: { tasks: [{ ...plain, id: 'zz-id' }], chords: [] } }));
    const at = frame.indexOf(Buffer.from('zz-id'));
    frame[at] = 0xff;
    expect(() => decodeClientMessage(frame)).toThrow(ProtocolError);
    expect(() => decodeClientMessage(frame)).toThrow(/is not valid UTF-8/);
  });

  it('a real U+FFFD and other non-ASCII text still pass', () => {
    const id = 'ok-\ufffd-é-漢';
    const msg = decodeClientMessage(encode({ t: 'publish', id: 1, batch: { tasks: [{ ...plain, id }], chords: [] } }));
    expect(msg.t === 'publish' ? msg.batch.tasks[0]?.id : '').toBe(id);
  });
});

describe('frame limits in the handshake (review)', () => {
  it('a hello or welcome announcing a maxFrameBytes below 64 is refused (max 0 would fail every task delivered to it)', () => {
    expect(() => decodeClientMessage(encode({ t: 'hello', v: 2, token: null, max: 0 }))).toThrow(/hello\.max must be at least 64/);
    expect(() => decodeServerMessage(encode({ t: 'welcome', v: 2, visibilityTimeout: 1, heartbeat: 1, max: -5 }))).toThrow(ProtocolError);
    const ok = decodeClientMessage(encode({ t: 'hello', v: 2, token: null, max: 64 }));
    expect(ok.t === 'hello' ? ok.max : 0).toBe(64);
  });
});

describe('JSON bodies (review)', () => {
  it('invalid UTF-8 in a JSON-bodied frame is refused with ERR_PROTOCOL too', () => {
    const frame = Buffer.from(encode({ t: 'getState', id: 3, sid: 'zz-id' }));
    frame[frame.indexOf(Buffer.from('zz-id'))] = 0xff;
    expect(() => decodeClientMessage(frame)).toThrow(/JSON body is not valid UTF-8/);
    const fine = decodeClientMessage(encode({ t: 'getState', id: 3, sid: 'é-\ufffd' }));
    expect(fine.t === 'getState' ? fine.sid : '').toBe('é-\ufffd');
  });
});
