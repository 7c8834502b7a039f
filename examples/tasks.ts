/**
 * A tasks module for the CLI and the TCP demo: its default export registers
 * the tasks on an app, so producers and workers share one file.
 *
 *   millwright worker --connect 127.0.0.1:7400 --tasks ./dist/examples/tasks.js
 *   millwright send --connect 127.0.0.1:7400 add '[1,2]'     # prints 3
 */
import type { App } from '../src/app.js';
import { currentTask } from '../src/context.js';
import { PermanentError } from '../src/errors.js';

/** What `addPid` returns: the sum and the worker process that computed it. */
export interface PidSum { readonly pid: number; readonly sum: number }

const sumOf = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);

/** Registers the example tasks on `app`. */
export default function register(app: App): void {
  app.task('add', (...xs: number[]) => sumOf(xs));
  app.task('multiply', (...xs: number[]) => xs.reduce((a, b) => a * b, 1));
  /** Sum, tagged with the pid of the worker process that ran it. */
  app.task('addPid', (...xs: number[]): PidSum => ({ pid: process.pid, sum: sumOf(xs) }));
  /** Chord callback of `addPid` members: the total and how many members each worker process ran. */
  app.task('tally', (...parts: PidSum[]) => {
    const byPid: Record<string, number> = {};
    for (const p of parts) byPid[p.pid] = (byPid[p.pid] ?? 0) + 1;
    return { total: sumOf(parts.map((p) => p.sum)), byPid, callbackPid: process.pid };
  });
  /** A trivial task for throughput runs: returns the worker's pid. */
  app.task('pid', () => process.pid);
  /** Waits `ms` (default 1 000), ending early if the task is revoked or the worker is forced to stop. */
  app.task('slow', (ms: number = 1_000) => new Promise<string>((resolve, reject) => {
    const signal = currentTask().signal;
    const timer = setTimeout(() => resolve(`slept ${ms} ms in ${process.pid}`), ms);
    signal.addEventListener('abort', () => { clearTimeout(timer); reject(signal.reason); }, { once: true });
  }));
  /** Always fails, without retries: for trying out error reporting. */
  app.task('fail', (message = 'this task always fails') => { throw new PermanentError(String(message)); });
}
