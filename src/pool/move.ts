/**
 * `move()`: hand a result back from a pool thread by transfer instead of by
 * copy, as Piscina's `move()` does.
 */
import type { TransferListItem } from 'node:worker_threads';

const MOVED = Symbol.for('millwright.move');

/** A value wrapped by {@link move}: sent with a transfer list, then unwrapped. */
export interface Moved<T = unknown> {
  readonly [MOVED]: true;
  readonly value: T;
  readonly transferList: readonly TransferListItem[];
}

/**
 * Marks a thread function's result to be transferred (not copied) to the main
 * thread. Without `transferList`, an `ArrayBuffer` is transferred itself and a
 * typed array or `DataView` transfers its underlying buffer. The source is
 * detached in the thread afterwards.
 * @example
 * export function resize(input: Uint8Array) {
 *   const out = doResize(input);  // a fresh Uint8Array
 *   return move(out);             // 1 MiB crosses without a copy
 * }
 */
export function move<T>(value: T, transferList?: readonly TransferListItem[]): Moved<T> {
  return { [MOVED]: true, value, transferList: transferList ?? inferTransferList(value) };
}

/** True when `value` came from {@link move}. */
export function isMoved(value: unknown): value is Moved {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[MOVED] === true;
}

function inferTransferList(value: unknown): TransferListItem[] {
  if (value instanceof ArrayBuffer) return [value];
  if (ArrayBuffer.isView(value) && value.buffer instanceof ArrayBuffer) return [value.buffer];
  return [];
}

/**
 * Normalises a user transfer list: typed arrays and DataViews stand for their
 * buffer (postMessage itself only accepts the buffer).
 */
export function toTransferList(items: readonly unknown[]): TransferListItem[] {
  const out: TransferListItem[] = [];
  for (const item of items) {
    if (ArrayBuffer.isView(item)) {
      if (item.buffer instanceof ArrayBuffer && !out.includes(item.buffer)) out.push(item.buffer);
    } else if (!out.includes(item as TransferListItem)) {
      out.push(item as TransferListItem);
    }
  }
  return out;
}
