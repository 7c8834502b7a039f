/** Randomness, injected: the worker's jitter draws from an {@link Rng}. */

/** Returns a number in [0, 1). */
export type Rng = () => number;

/**
 * A small seeded PRNG (mulberry32): deterministic jitter in tests.
 * @example const rng = seededRng(42);
 */
export function seededRng(seed: number): Rng {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The default RNG, from `Math.random`. */
export const defaultRng: Rng = Math.random;
