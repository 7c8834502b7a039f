import { describe, expect, it } from 'vitest';
import { appendArgs, pack, packArgs, prependArg, unpack, unpackArgs } from '../../src/codec.js';
import { ValidationError } from '../../src/errors.js';

function rejectPath(value: unknown): string | undefined {
  try { packArgs(value as unknown[]); } catch (err) { expect(err).toBeInstanceOf(ValidationError); return (err as ValidationError).path; }
  throw new Error('expected a ValidationError');
}

describe('codec', () => {
  it('round-trips JSON values into fresh objects', () => {
    const value = { a: [1, 'two', null, true, { b: -0.5 }], s: 'ü\u0000' };
    const packed = pack(value);
    const back = unpack(packed);
    expect(back).toEqual(value);
    expect(back).not.toBe(value);
    expect(unpack(packed)).not.toBe(back);
  });

  it('round-trips Uint8Array byte-exact without base64, and Buffer as Uint8Array', () => {
    const bytes = new Uint8Array(256).map((_, i) => i);
    const packed = pack({ bytes, nested: [Buffer.from('hi')] });
    expect(typeof packed).toBe('object');
    const back = unpack(packed) as { bytes: Uint8Array; nested: Uint8Array[] };
    expect(back.bytes).toBeInstanceOf(Uint8Array);
    expect([...back.bytes]).toEqual([...bytes]);
    expect([...(back.nested[0] as Uint8Array)]).toEqual([104, 105]);
    bytes[0] = 99;
    expect((unpack(packed) as { bytes: Uint8Array }).bytes[0]).toBe(0);
  });

  it('rejects non-values at send time with the path of the bad value', () => {
    expect(rejectPath([1, { user: { fn: () => 1 } }])).toBe('args[1].user.fn');
    expect(rejectPath([NaN])).toBe('args[0]');
    expect(rejectPath([1, [2, Infinity]])).toBe('args[1][1]');
    expect(rejectPath([10n])).toBe('args[0]');
    expect(rejectPath([new Map()])).toBe('args[0]');
    expect(rejectPath([new Date()])).toBe('args[0]');
    expect(rejectPath([{ x: undefined }])).toBe('args[0].x');
    expect(rejectPath([new Uint16Array(2)])).toBe('args[0]');
    const circular: Record<string, unknown> = {};
    circular['self'] = circular;
    expect(rejectPath([circular])).toMatch(/^args\[0\](\.self)+$/);
    expect(rejectPath('nope')).toBe('args');
  });

  it('packs and unpacks numbers exactly as JSON does; texts that are not JSON are refused', () => {
    for (const n of [0, -0, 7, -7, 123456789012345, -123456789012345, 2 ** 53 - 1, -(2 ** 53 - 1), 2 ** 53, 1e21, 0.1, -2.5e-7, 1e300]) {
      expect(pack(n)).toBe(JSON.stringify(n));
      expect(unpack(pack(n))).toBe(JSON.parse(JSON.stringify(n)));
    }
    // Packed text is read as JSON (whitespace allowed, leading zeros and hex not).
    for (const text of ['1e3', '-0', '1.0', ' 1', '1 ', '1234567890123456789', '"12"', '[1]', 'true', 'null']) expect(unpack(text)).toEqual(JSON.parse(text));
    for (const text of ['007', '-', '--1', '0x10', '+1', 'Infinity', '-Infinity']) expect(() => unpack(text)).toThrow(SyntaxError);
  });

  it('packs undefined as a result and appends it to args as null', () => {
    expect(unpack(pack(undefined))).toBeUndefined();
    expect(unpackArgs(appendArgs(packArgs([1]), [pack(undefined), pack(2)]))).toEqual([1, null, 2]);
  });

  it('appends and prepends args, with binary values re-indexed', () => {
    expect(unpackArgs(appendArgs(packArgs([]), [pack(1), pack('x')]))).toEqual([1, 'x']);
    const withBin = appendArgs(packArgs([new Uint8Array([1])]), [pack(new Uint8Array([2, 3]))]);
    const list = unpackArgs(withBin) as Uint8Array[];
    expect(list.map((b) => [...b])).toEqual([[1], [2, 3]]);
    expect(unpackArgs(prependArg(packArgs([1, 2]), 'boom'))).toEqual(['boom', 1, 2]);
  });
});

describe('uuid', () => {
  it('makes distinct RFC 4122 version 4 UUIDs', async () => {
    const { uuid } = await import('../../src/ids.js');
    const ids = Array.from({ length: 2000 }, () => uuid());
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});
