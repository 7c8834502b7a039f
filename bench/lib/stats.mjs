// Small statistics helpers for the benchmark scripts. Zero dependencies.

/** Sorted copy (ascending) of a numeric array or typed array. */
export function sorted(values) {
  return Float64Array.from(values).sort();
}

/** Nearest-rank percentile (p in 0..100) of an ascending array. */
export function percentile(asc, p) {
  if (asc.length === 0) return NaN;
  const i = Math.min(asc.length - 1, Math.max(0, Math.ceil((p / 100) * asc.length) - 1));
  return asc[i];
}

export function median(values) {
  const s = sorted(values);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export const min = (values) => values.reduce((a, b) => Math.min(a, b), Infinity);
export const max = (values) => values.reduce((a, b) => Math.max(a, b), -Infinity);

/** { n, min, p50, p90, p99, max, mean } of a sample. */
export function summary(values) {
  const s = sorted(values);
  let total = 0;
  for (const v of s) total += v;
  return {
    n: s.length, min: s[0] ?? NaN, p50: percentile(s, 50), p90: percentile(s, 90),
    p99: percentile(s, 99), max: s[s.length - 1] ?? NaN, mean: s.length ? total / s.length : NaN,
  };
}
