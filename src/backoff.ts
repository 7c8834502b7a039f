/**
 * Backoff policy: a pure function of the retry number. Machinery's default
 * waits 1, 2, 3, 5, 8 ... seconds before retries 1, 2, 3, 4, 5 ...
 */
import { isDelay } from './options.js';
import type { Backoff } from './transport.js';

/** The default backoff: fibonacci with a 1 s unit, as Machinery. */
export const DEFAULT_BACKOFF: Backoff = Object.freeze({ type: 'fibonacci', delay: 1000 });

/** A Backoff as a task option must be (checked at registration; a signature's own is checked at send time, in workflow.ts). */
export function isBackoff(value: unknown): value is Backoff {
  if (typeof value !== 'object' || value === null) return false;
  const b = value as Partial<Record<keyof Backoff, unknown>>;
  return (b.type === 'fixed' || b.type === 'exponential' || b.type === 'fibonacci') && isDelay(b.delay)
    && (b.maxDelay === undefined || isDelay(b.maxDelay)) && (b.jitter === undefined || typeof b.jitter === 'boolean');
}

/**
 * Delay in ms before retry number `retry` (1-based).
 * @param rng returns a number in [0, 1); used only when `jitter` is set.
 */
export function backoffDelay(retry: number, policy: Backoff, rng: () => number): number {
  const n = Math.max(1, Math.floor(retry));
  let ms: number;
  switch (policy.type) {
    case 'fixed': ms = policy.delay; break;
    case 'exponential': ms = policy.delay * 2 ** Math.min(n - 1, 52); break;
    case 'fibonacci': ms = policy.delay * fibonacci(n); break;
  }
  if (policy.maxDelay !== undefined) ms = Math.min(ms, policy.maxDelay);
  if (policy.jitter === true) ms = ms / 2 + rng() * (ms / 2);
  return Math.max(0, Math.round(ms));
}

/** 1, 2, 3, 5, 8, 13 ... for n = 1, 2, 3 ... (Machinery's sequence, which skips the leading 1, 1). */
export function fibonacci(n: number): number {
  let a = 1;
  let b = 2;
  for (let i = 1; i < n; i++) [a, b] = [b, a + b];
  return a;
}
