/** CPU-bound task module for the demo: runs on pool threads. */
export function fib(n: number): number {
  return n < 2 ? n : fib(n - 1) + fib(n - 2);
}
