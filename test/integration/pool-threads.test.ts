// ThreadPool with real worker_threads: results, errors, transfer, crashes
// (throw outside a task, process.exit, out of memory), abort and timeout of
// CPU-bound code, the task context on the thread, module errors. The fixture is
// test/fixtures/pool-tasks.mjs; the thread entry is the compiled one in dist/.
import { afterAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { AbortError, ModuleError, ThreadCrashedError, TimeoutError } from '../../src/errors.js';
import { ThreadPool } from '../../src/pool/thread-pool.js';

const fixtureUrl = new URL('../fixtures/pool-tasks.mjs', import.meta.url);
const fixturePath = fileURLToPath(fixtureUrl);
const pools: ThreadPool[] = [];
const make = (options: Partial<ConstructorParameters<typeof ThreadPool>[0]> = {}): ThreadPool => {
  const pool = new ThreadPool({ module: fixtureUrl, size: 2, ...options });
  pools.push(pool);
  return pool;
};
afterAll(async () => { await Promise.all(pools.map((p) => p.close({ force: true }))); });

/** Resolves when the thread has set flag[0] (the task started), without sleeping. */
type WaitAsync = (a: Int32Array, index: number, value: number) => { async: boolean; value: Promise<string> | string };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync; // Node 20 has it; lib ES2023 does not type it
async function startedOn(flag: Int32Array): Promise<void> {
  const wait = waitAsync(flag, 0, 0);
  if (wait.async) await wait.value;
}
const newFlag = (): Int32Array => new Int32Array(new SharedArrayBuffer(4));

describe('ThreadPool on real threads', () => {
  const pool = make();

  it('runs exports with positional args, sync and async, many at once', async () => {
    expect(await pool.run('inc', [41])).toBe(42);
    expect(await pool.run('add', [2, 3])).toBe(5);
    expect(await pool.run('later', ['x'])).toBe('x');
    const results = await Promise.all(Array.from({ length: 2_000 }, (_, i) => pool.run<number>('inc', [i])));
    expect(results.reduce((a, b) => a + b, 0)).toBe((2_000 * 2_001) / 2);
    expect(pool.stats()).toMatchObject({ threads: 2, queued: 0 });
  });

  it('rebuilds thrown errors with their code, name and the thread stack', async () => {
    const err = await pool.run('fail', ['Test error']).catch((e: unknown) => e) as Error & { code: string };
    expect(err.message).toBe('Test error');
    expect(err.code).toBe('E_FIXTURE');
    expect(err.stack).toContain('pool-tasks.mjs');
    const range = await pool.run('failTyped').catch((e: unknown) => e) as Error;
    expect(range.name).toBe('RangeError');
  });

  it('transfers buffers both ways, detaching the source', async () => {
    const input = new Uint8Array(1 << 20).fill(1);
    const out = await pool.run<Uint8Array>('echoMove', [input], { transfer: [input] });
    expect(input.byteLength).toBe(0);
    expect(out).toBeInstanceOf(Uint8Array);
    expect(out.byteLength).toBe(1 << 20);
    expect(out[0]).toBe(2);
    const ab = new ArrayBuffer(16);
    const back = await pool.run<ArrayBuffer>('echoMove', [ab], { transfer: [ab] });
    expect(ab.byteLength).toBe(0);
    expect(new Uint8Array(back)[0]).toBe(1);
    const made = await pool.run<Uint8Array>('bytes', [1024]);
    expect(made.byteLength).toBe(1024);
  });

  it('imports the module once per thread', async () => {
    const one = make({ size: 1 });
    const counts: number[] = [];
    for (let i = 0; i < 20; i++) counts.push(await one.run<number>('count'));
    expect(counts).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
  });

  it('fails with ThreadCrashedError on a throw outside the task, keeps queued work, and replaces the thread', async () => {
    const one = make({ size: 1 });
    const crash = one.run('crashLater');
    const behind = one.run('inc', [1]);
    const err = await crash.catch((e: unknown) => e) as Error;
    expect(err).toBeInstanceOf(ThreadCrashedError);
    expect(err.message).toMatch(/crashed while running task "crashLater": boom outside the task/);
    expect(await behind).toBe(2);
    expect(await one.run('inc', [2])).toBe(3);
  });

  it('fails with ThreadCrashedError when the module calls process.exit()', async () => {
    const err = await pool.run('exit', [3]).catch((e: unknown) => e) as Error;
    expect(err).toBeInstanceOf(ThreadCrashedError);
    expect(err.message).toMatch(/exited with code 3 while running task "exit"/);
    expect(await pool.run('inc', [0])).toBe(1);
  });

  it('fails with ThreadCrashedError when a thread runs out of memory under resourceLimits', async () => {
    const small = make({ size: 1, resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 4 } });
    const err = await small.run('hog').catch((e: unknown) => e) as Error;
    expect(err).toBeInstanceOf(ThreadCrashedError);
    expect(err.message).toMatch(/memory/i);
    expect(await small.run('inc', [9])).toBe(10);
  });

  it('aborts a CPU-bound task at once and replaces its thread', async () => {
    const one = make({ size: 1 });
    const first = await one.run<number>('whichThread');
    const flag = newFlag();
    const ac = new AbortController();
    const p = one.run('spinFlag', [flag], { signal: ac.signal });
    await startedOn(flag);
    const t0 = performance.now();
    ac.abort();
    await expect(p).rejects.toBeInstanceOf(AbortError);
    expect(performance.now() - t0).toBeLessThan(50);
    expect(await one.run('inc', [1])).toBe(2);
    expect(await one.run<number>('whichThread')).not.toBe(first);
  });

  it('times out a CPU-bound task and replaces its thread', async () => {
    const one = make({ size: 1 });
    const t0 = performance.now();
    const err = await one.run('spin', [], { timeout: 50 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    expect(performance.now() - t0).toBeLessThan(1_000);
    expect(await one.run('inc', [1])).toBe(2);
  });

  it('gives the thread a task context: currentTask(), progress, and a signal that fires on abort', async () => {
    const context = { id: 'task-1', name: 'resize', attempt: 2, retriesLeft: 3, headers: { tenant: 'a' }, signature: { id: 'task-1' } };
    const progress: unknown[] = [];
    const result = await pool.run('withContext', [], { context, onProgress: (v) => progress.push(v) });
    expect(result).toEqual({ id: 'task-1', name: 'resize', attempt: 2, headers: { tenant: 'a' } });
    expect(progress).toEqual([0.5, { step: 2 }]);

    const one = make({ size: 1 });
    const before = await one.run<number>('whichThread');
    const flag = newFlag();
    const ac = new AbortController();
    const p = one.run('cooperative', [flag], { signal: ac.signal, context });
    await startedOn(flag);
    ac.abort();
    await expect(p).rejects.toBeInstanceOf(AbortError);
    expect(await one.run<number>('whichThread')).toBe(before); // it let go: the thread was kept
  });

  it('reports a missing module or export as ModuleError', async () => {
    const missing = make({ module: path.join(path.dirname(fixturePath), 'pool-no-such-module.mjs'), size: 1 });
    const err = await missing.run('inc', [1]).catch((e: unknown) => e) as Error;
    expect(err).toBeInstanceOf(ModuleError);
    expect(err.message).toMatch(/Could not load the pool module .*pool-no-such-module\.mjs/);
    const noExport = await pool.run('nope').catch((e: unknown) => e) as Error;
    expect(noExport).toBeInstanceOf(ModuleError);
    expect(noExport.message).toMatch(/no exported function `nope` \(exported functions: .*inc/);
  });

  it('accepts a plain path as well as a file: URL, and fails a result that cannot be cloned', async () => {
    const byPath = make({ module: fixturePath, size: 1 });
    expect(await byPath.run('inc', [1])).toBe(2);
    await expect(byPath.run('notCloneable')).rejects.toThrow(/result could not be sent to the main thread/);
    expect(await byPath.run('inc', [2])).toBe(3);
  });

  it('closes gracefully after the queued work is done', async () => {
    const one = make({ size: 1 });
    const ps = Array.from({ length: 50 }, (_, i) => one.run('later', [i]));
    await one.close();
    expect(await Promise.all(ps)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(one.stats().threads).toBe(0);
  });
});
