// Task bodies of bench/pool.mjs, shared by every contender (millwright, the raw
// loop, piscina, tinypool) so the work per task is identical; only the pool
// differs. Same bodies as ../shared/bench/peers/pool/workers/tasks.mjs.

/** tiny + latency: one round trip of almost no work. */
export function inc(x) {
  return x + 1;
}

/** cpu: fib(29) is ~5-9 ms here. */
export function fib(n) {
  return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

/** payload: touches one byte so the thread really has the data, returns the same buffer. */
export function echo(buf) {
  const u = new Uint8Array(buf);
  u[0] = (u[0] + 1) & 255;
  return buf;
}
