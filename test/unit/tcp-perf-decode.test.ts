/**
 * The decoder's fast paths (binary-reader.ts) give the same values as the
 * plain ones: tiny ASCII strings made in JS, a settle's id taken from the
 * broker's held message, records built as one literal per field combination.
 */
import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../../src/errors.js';
import type { Outcome, StateRecord } from '../../src/transport.js';
import { FrameDecoder, Outbox } from '../../transports/tcp/framing.js';
import { decodeClientMessage, writeMessage, type ClientMessage } from '../../transports/tcp/protocol.js';

const encode = (msg: ClientMessage): Buffer => {
  const out = new Outbox();
  writeMessage(out, msg);
  const got: Buffer[] = [];
  const d = new FrameDecoder(1 << 20, (buf, start, end) => got.push(Buffer.from(buf.subarray(start, end))));
  for (const b of out.take()) d.push(b);
  return got[0] as Buffer;
};

const ID = '0b9f3c1e-6a52-4d7e-9a0b-3f1c2d4e5f60';
const record = (over: Partial<StateRecord> = {}): StateRecord => ({ id: ID, name: 'add', state: 'SUCCESS', attempts: 1, createdAt: 1764172800000, updatedAt: 1764172800001, ...over });
const settle = (r: StateRecord, mid = r.id): ClientMessage => ({ t: 'settle', id: 7, tag: 42, mid, outcome: { records: [r], publish: null, retry: null, chord: null } });
const decodeSettle = (msg: ClientMessage, heldId?: (tag: number) => string | undefined): { mid: string; outcome: Outcome } => {
  const m = decodeClientMessage(encode(msg), 0, undefined, heldId);
  if (m.t !== 'settle') throw new Error(`expected settle, got ${m.t}`);
  return m;
};

describe('TCP decoder fast paths', () => {
  it('tiny strings (1-8 bytes) decode exactly, ASCII or not', () => {
    for (const s of ['1', '[1,2]', '"ok"', '12345678', 'ü', 'aé', '日本', '😀', 'abcdefg\u007f']) {
      const got = decodeSettle(settle(record({ result: s })));
      expect(got.outcome.records[0]?.result).toBe(s);
    }
  });

  it('a settle whose id matches the held one decodes to it; one that does not keeps its own bytes', () => {
    const same = decodeSettle(settle(record()), (tag) => (tag === 42 ? ID : undefined));
    expect(same.mid).toBe(ID);
    expect(same.outcome.records[0]?.id).toBe(ID);
    const other = `${ID.slice(0, -1)}1`;
    const differs = decodeSettle(settle(record()), () => other);
    expect(differs.mid).toBe(ID);
    expect(differs.outcome.records[0]?.id).toBe(ID);
    const unknown = decodeSettle(settle(record({ id: 'b'.repeat(30) })), () => undefined);
    expect(unknown.mid).toBe('b'.repeat(30));
  });

  it('a held id does not leak into a later string of another value', () => {
    const got = decodeSettle(settle(record({ id: 'c'.repeat(40) }), 'c'.repeat(40)), () => ID);
    expect(got.mid).toBe('c'.repeat(40));
    expect(got.outcome.records[0]?.id).toBe('c'.repeat(40));
  });

  it('records with every combination of result, error and expiresAt round-trip with exactly their fields', () => {
    const error = { code: 'ERR_TASK_FAILED', name: 'Error', message: 'boom' };
    for (let flags = 0; flags < 8; flags++) {
      const r = record({
        ...((flags & 1) !== 0 ? { result: '[3]' } : {}), ...((flags & 2) !== 0 ? { state: 'FAILURE' as const, error } : {}),
        ...((flags & 4) !== 0 ? { expiresAt: 1764259200001 } : {}),
      });
      const got = decodeSettle(settle(r)).outcome.records[0];
      expect(got).toStrictEqual(r);
      expect(Object.keys(got ?? {})).toEqual(Object.keys(r));
    }
  });

  it('invalid UTF-8 in a tiny string is still refused', () => {
    const frame = encode(settle(record({ result: 'ab' })));
    const at = frame.indexOf(Buffer.from('ab'));
    frame[at] = 0xff;
    expect(() => decodeClientMessage(frame)).toThrow(ProtocolError);
  });
});
