/**
 * The millwright demo: the three ways to use it, with results and timings.
 *   1. in memory, with a FakeClock: a chord, a chain, a retried task, an ETA;
 *   2. the worker_threads pool: a CPU-bound task on every core vs the main thread;
 *   3. a TCP broker and two worker processes on loopback: a chord across them.
 * Run: npm run demo
 */
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { App, chain, chord, FakeClock, group, ThreadPool } from '../src/index.js';
import { fib } from './cpu-tasks.js';
import { tcpDemo } from './tcp-demo.js';

const ms = (start: number): string => `${(performance.now() - start).toFixed(1)} ms`;

async function inMemory(): Promise<void> {
  console.log('\n== 1. In memory, with a FakeClock (no broker, no sleeping) ==');
  const started = performance.now();
  const clock = new FakeClock(Date.parse('2026-01-01T00:00:00Z'));
  const app = new App({ clock });
  const add = app.task('add', (...xs: number[]) => xs.reduce((a, b) => a + b, 0));
  const multiply = app.task('multiply', (...xs: number[]) => xs.reduce((a, b) => a * b, 1));
  let calls = 0;
  const attempts: string[] = [];
  const flaky = app.task('flaky', () => {
    attempts.push(`+${(clock.now() - t0) / 1000}s`);
    if (++calls <= 3) throw new Error(`upstream down (call ${calls})`);
    return 'finally ok';
  }, { retries: 5 });
  const report = app.task('report', (label: string) => `${label} ran at ${new Date(clock.now()).toISOString()}`);
  const t0 = clock.now();
  await app.worker({ concurrency: 4 }).start();

  const c = await app.send(chord(group(add.s(1, 1), add.s(2, 2), add.s(5, 6)), multiply.s()));
  console.log(`chord(add(1,1), add(2,2), add(5,6)) -> multiply  = ${String(await c.get())}`);
  const ch = await app.send(chain(add.s(2, 2), add.s(5, 6), multiply.s(4)));
  console.log(`chain add(2,2) -> add(5,6) -> multiply(4)        = ${String(await ch.get())}`);

  const f = await app.send(flaky.s());
  const eta = await app.send(report.with({ eta: clock.now() + 60 * 60 * 1000 }, 'nightly'));
  await clock.advance(10_000);
  console.log(`flaky task, fibonacci backoff: attempts at ${attempts.join(', ')} -> ${String(await f.get())}`);
  console.log(`ETA task (1 h ahead) before advancing: ${(await eta.state()).state}`);
  await clock.advance(60 * 60 * 1000);
  console.log(`ETA task after clock.advance(1 h): ${String(await eta.get())}`);
  await app.close();
  console.log(`(simulated 1 h 10 s of retries and timers in ${ms(started)} of real time)`);
}

async function threadPool(): Promise<void> {
  const threads = Math.max(2, availableParallelism());
  console.log(`\n== 2. The worker_threads pool (${threads} threads on ${availableParallelism()} cores) ==`);
  const n = 16;
  const arg = 30;
  let start = performance.now();
  let expected = 0;
  for (let i = 0; i < n; i++) expected += fib(arg);
  const main = performance.now() - start;
  console.log(`main thread: ${n} x fib(${arg}) in ${main.toFixed(1)} ms`);
  const pool = new ThreadPool({ module: new URL('./cpu-tasks.js', import.meta.url), size: threads });
  await Promise.all(Array.from({ length: threads * 2 }, () => pool.run('fib', [25]))); // start and warm every thread
  start = performance.now();
  const results = await Promise.all(Array.from({ length: n }, () => pool.run('fib', [arg]) as Promise<number>));
  const pooled = performance.now() - start;
  const sum = results.reduce((a, b) => a + b, 0);
  console.log(`pool:        ${n} x fib(${arg}) in ${pooled.toFixed(1)} ms (results ${sum === expected ? 'match' : 'DIFFER'})`);
  console.log(`speed-up: ${(main / pooled).toFixed(2)}x`);
  await pool.close();
}

await inMemory();
await threadPool();
await tcpDemo();
