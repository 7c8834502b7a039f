/**
 * The value codec. Task arguments, results and progress values cross every
 * transport as {@link Packed} text: validated at send time (with the path of a
 * bad value), JSON underneath, with `Uint8Array`s carried beside the text
 * rather than inside it (no base64). The in-memory transport uses it too, so
 * producer and worker never share an object.
 */
import { ValidationError } from './errors.js';

/**
 * A packed value: JSON text, or JSON text plus binary attachments. Inside the
 * text an attachment is `{"\u0000b": index}` (a key users cannot send).
 */
export type Packed = string | PackedWithBinary;

export interface PackedWithBinary {
  readonly json: string;
  readonly bins: readonly Uint8Array[];
}

/** A value that crosses a transport: JSON, plus `Uint8Array`, plus `undefined` as a result. */
export type Value =
  | null | boolean | number | string | Uint8Array | undefined
  | readonly Value[]
  | { readonly [key: string]: Value };

const BIN_KEY = '\u0000b';
/** An attachment reference in packed JSON text (inside a JSON string, `"` is always escaped: only a reference matches). */
const BIN_REF = /\{"\\u0000b":(\d+)\}/g;
/** `undefined` as a whole value (a task result) packs to this text. */
const UNDEFINED = '';

/** Packs `value`, throwing `ValidationError` naming the path of anything that is not a {@link Value}. */
export function pack(value: unknown, path = 'value'): Packed {
  if (value === undefined) return UNDEFINED;
  // Most values are plain JSON: checked without building a path per element. Anything
  // else (bytes, or something to reject with its path) takes the walk that names paths.
  if (isPlainJson(value, 0)) return JSON.stringify(value);
  const bins = scan(value, path, 0, null);
  if (bins === null) return JSON.stringify(value);
  return packBinary(value, bins);
}

/** Unpacks a {@link Packed} into a fresh value that shares nothing with any other unpack. */
export function unpack(packed: Packed): unknown {
  if (typeof packed === 'string') return packed === UNDEFINED ? undefined : JSON.parse(packed);
  const bins = packed.bins;
  return JSON.parse(packed.json, function (this: unknown, _key, v: unknown) {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      const index = (v as Record<string, unknown>)[BIN_KEY];
      if (typeof index === 'number') return new Uint8Array(bins[index] as Uint8Array);
    }
    return v;
  });
}

/** Packs an argument list (an array), naming bad values as `args[i]...`. */
export function packArgs(args: readonly unknown[]): Packed {
  if (!Array.isArray(args)) throw new ValidationError(`Expected args to be an array, got ${typeof args}`, 'args');
  return pack(args, 'args');
}

/** Unpacks an argument list packed by {@link packArgs}. */
export function unpackArgs(packed: Packed): unknown[] {
  const v = unpack(packed);
  return Array.isArray(v) ? v : [];
}

/**
 * Appends packed values to packed args (chains and chords append results).
 * The texts are joined without parsing, attachments re-indexed: the values
 * were checked when packed, and one more level of nesting must not turn a
 * result nested at the limit into an error once its task has succeeded; nor
 * can a broker appending chord results throw on a text a client sent (a
 * malformed one fails the callback when a worker unpacks its args).
 */
export function appendArgs(args: Packed, values: readonly Packed[]): Packed {
  if (values.length === 0) return args;
  let all: Uint8Array[] | null = typeof args === 'string' ? null : [...args.bins];
  let text = (typeof args === 'string' ? args : args.json).slice(0, -1);
  let first = text === '[';
  for (const v of values) {
    let item: string;
    if (typeof v === 'string') item = v === UNDEFINED ? 'null' : v;
    else {
      all ??= [];
      const offset = all.length;
      item = offset === 0 ? v.json : v.json.replace(BIN_REF, (_m, i: string) => `{"\\u0000b":${Number(i) + offset}}`);
      for (const b of v.bins) all.push(b);
    }
    text += (first ? '' : ',') + item;
    first = false;
  }
  text += ']';
  return all === null || all.length === 0 ? text : { json: text, bins: all };
}

/** Prepends one plain value (the error message for `onError`) to packed args, without parsing them (see {@link appendArgs}). */
export function prependArg(args: Packed, value: string): Packed {
  const text = typeof args === 'string' ? args : args.json;
  const json = text === '[]' ? `[${JSON.stringify(value)}]` : `[${JSON.stringify(value)},${text.slice(1)}`;
  return typeof args === 'string' ? json : { json, bins: args.bins };
}

/** True when `value` is a Value without `Uint8Array`s; allocates nothing. */
function isPlainJson(value: unknown, depth: number): boolean {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(value);
    case 'object': {
      if (value === null) return true;
      if (depth > 100) return false;
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) if (!isPlainJson(value[i], depth + 1)) return false;
        return true;
      }
      const proto = Object.getPrototypeOf(value) as unknown;
      if (proto !== Object.prototype && proto !== null) return false;
      for (const key in value) {
        if (key === BIN_KEY || !isPlainJson((value as Record<string, unknown>)[key], depth + 1)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}

/**
 * Walks `value`; returns null when it holds no `Uint8Array`, else the list of
 * them. Throws on anything that is not a Value. `seen` catches cycles.
 */
function scan(value: unknown, path: string, depth: number, bins: Uint8Array[] | null): Uint8Array[] | null {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return bins;
    case 'number':
      if (!Number.isFinite(value)) throw bad(path, `${String(value)} is not a finite number`);
      return bins;
    case 'object': {
      if (value === null) return bins;
      if (depth > 100) throw bad(path, 'nesting deeper than 100 levels (a circular structure?)');
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) bins = scan(value[i], `${path}[${i}]`, depth + 1, bins);
        return bins;
      }
      if (value instanceof Uint8Array) {
        if (value.constructor !== Uint8Array && !(typeof Buffer !== 'undefined' && value instanceof Buffer)) {
          throw bad(path, `a ${value.constructor.name} is not a value: use a plain Uint8Array`);
        }
        (bins ??= []).push(value);
        return bins;
      }
      const proto = Object.getPrototypeOf(value) as unknown;
      if (proto !== Object.prototype && proto !== null) {
        const name = (value as { constructor?: { name?: string } }).constructor?.name ?? 'object';
        throw bad(path, `a ${name} instance is not a value: send plain objects, arrays, strings, finite numbers, booleans, null or Uint8Array`);
      }
      for (const key in value) {
        if (key === BIN_KEY) throw bad(`${path}.${key}`, 'the key "\\u0000b" is reserved');
        bins = scan((value as Record<string, unknown>)[key], `${path}.${key}`, depth + 1, bins);
      }
      return bins;
    }
    case 'undefined':
      throw bad(path, 'undefined is not a value (use null)');
    case 'bigint':
      throw bad(path, 'a BigInt is not a value: send it as a string');
    case 'function':
      throw bad(path, 'a function is not a value');
    default:
      throw bad(path, `a ${typeof value} is not a value`);
  }
}

function bad(path: string, what: string): ValidationError {
  return new ValidationError(`Invalid value at ${path}: ${what}`, path);
}

function packBinary(value: unknown, bins: Uint8Array[]): PackedWithBinary {
  const copies: Uint8Array[] = [];
  const index = new Map<Uint8Array, number>();
  for (const b of bins) {
    if (!index.has(b)) { index.set(b, copies.length); copies.push(new Uint8Array(b)); }
  }
  const json = JSON.stringify(value, function (this: unknown, key, v: unknown) {
    // Read the holder, not `v`: Buffer.toJSON has already run on `v`.
    const original = (this as Record<string, unknown>)[key];
    if (original instanceof Uint8Array) return { [BIN_KEY]: index.get(original) };
    return v;
  });
  return { json, bins: copies };
}
