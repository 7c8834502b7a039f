import { describe, expect, it } from 'vitest';
import { backoffDelay, fibonacci } from '../../src/backoff.js';
import { seededRng } from '../../src/rng.js';

const never = (): number => { throw new Error('rng used without jitter'); };

describe('backoff', () => {
  it('fibonacci waits 1, 2, 3, 5, 8 units as Machinery does', () => {
    expect([1, 2, 3, 4, 5, 6].map(fibonacci)).toEqual([1, 2, 3, 5, 8, 13]);
    expect([1, 2, 3, 4, 5].map((n) => backoffDelay(n, { type: 'fibonacci', delay: 1000 }, never))).toEqual([1000, 2000, 3000, 5000, 8000]);
  });
  it('exponential doubles, fixed stays, maxDelay caps', () => {
    expect([1, 2, 3, 4].map((n) => backoffDelay(n, { type: 'exponential', delay: 100 }, never))).toEqual([100, 200, 400, 800]);
    expect([1, 2, 3].map((n) => backoffDelay(n, { type: 'fixed', delay: 250 }, never))).toEqual([250, 250, 250]);
    expect(backoffDelay(60, { type: 'exponential', delay: 100, maxDelay: 5000 }, never)).toBe(5000);
  });
  it('jitter draws from the injected rng within [delay/2, delay]', () => {
    const a = [1, 2, 3].map((n) => backoffDelay(n, { type: 'fixed', delay: 1000, jitter: true }, seededRng(7)));
    const b = [1, 2, 3].map((n) => backoffDelay(n, { type: 'fixed', delay: 1000, jitter: true }, seededRng(7)));
    expect(a).toEqual(b);
    for (const ms of a) { expect(ms).toBeGreaterThanOrEqual(500); expect(ms).toBeLessThanOrEqual(1000); }
    expect(backoffDelay(1, { type: 'fixed', delay: 1000, jitter: true }, () => 0)).toBe(500);
  });
});
