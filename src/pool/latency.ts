/**
 * A small log-linear latency histogram (HDR-style, ~12% resolution): O(1)
 * record with no allocation, percentiles on demand. Values are microseconds.
 *
 *   0..15 us      one bucket per microsecond
 *   16 us and up  8 buckets per power of two: [16,18) [18,20) ... [28,32) [32,36) ...
 */

/** Submit -> settle latency of a pool's tasks, in milliseconds. */
export interface LatencyStats {
  /** Tasks measured. */
  readonly count: number;
  readonly mean: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
}

const LINEAR = 16;
const SUB = 8;
const BUCKETS = LINEAR + (31 - 4) * SUB;

export class LatencyHistogram {
  readonly #counts = new Float64Array(BUCKETS);
  #count = 0;
  #sumUs = 0;
  #maxUs = 0;

  /** Records one latency given in milliseconds. */
  record(ms: number): void {
    const us = ms > 2_000_000 ? 2_000_000_000 : Math.max(0, Math.round(ms * 1000));
    this.#counts[bucketOf(us)]!++;
    this.#count++;
    this.#sumUs += us;
    if (us > this.#maxUs) this.#maxUs = us;
  }

  snapshot(): LatencyStats {
    const n = this.#count;
    if (n === 0) return { count: 0, mean: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0 };
    return {
      count: n,
      mean: this.#sumUs / n / 1000,
      p50: this.#percentile(0.5),
      p90: this.#percentile(0.9),
      p99: this.#percentile(0.99),
      p999: this.#percentile(0.999),
      max: this.#maxUs / 1000,
    };
  }

  /** Upper edge of the bucket holding the q-quantile, in ms, capped at the max seen. */
  #percentile(q: number): number {
    const rank = Math.ceil(q * this.#count);
    let seen = 0;
    for (let b = 0; b < BUCKETS; b++) {
      seen += this.#counts[b]!;
      if (seen >= rank) return Math.min(upperEdge(b), this.#maxUs) / 1000;
    }
    return this.#maxUs / 1000;
  }
}

export function bucketOf(us: number): number {
  if (us < LINEAR) return us;
  const exp = 31 - Math.clz32(us); // floor(log2(us)), >= 4
  const sub = (us >>> (exp - 3)) & (SUB - 1);
  return Math.min(BUCKETS - 1, LINEAR + (exp - 4) * SUB + sub);
}

function upperEdge(bucket: number): number {
  if (bucket < LINEAR) return bucket;
  const exp = 4 + Math.floor((bucket - LINEAR) / SUB);
  const sub = (bucket - LINEAR) % SUB;
  return (2 ** exp) + ((sub + 1) * 2 ** (exp - 3)) - 1;
}
