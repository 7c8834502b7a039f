/** Review 12: module tasks on a worker's thread pool (real threads). */
import { afterEach, describe, expect, it } from 'vitest';
import { AbortError, App, signature, ThreadPool } from '../../src/index.js';

const tasks = new URL('../fixtures/review12-tasks.mjs', import.meta.url);
const apps: App[] = [];
afterEach(async () => { await Promise.all(apps.splice(0).map((a) => a.close())); });

function moduleApp(): App {
  const app = new App();
  apps.push(app);
  for (const name of ['badProgress']) app.task(name, { module: tasks, export: name });
  return app;
}

describe('review12: module tasks', () => {
  it('progress() of a value that is not a value throws ValidationError in the thread, as inline; the task goes on', async () => {
    // Was: the value crossed to the main thread, where packing it threw out of the pool's message handler: an
    // uncaught exception in the worker's process, the rest of the reply batch (the task's result) lost, the task
    // left STARTED forever and app.close() hanging.
    const app = moduleApp();
    await app.worker({ threads: 1 }).start();
    const r = await app.send(signature('badProgress'));
    const values: unknown[] = [];
    for await (const v of r.progress) values.push(v);
    expect(values).toEqual([0.5]);
    expect(await r.get()).toEqual({ code: 'ERR_VALIDATION', path: 'progress.at' });
  });
});

describe('review12: a released (aborted) async task that ignores its signal', () => {
  it('cannot settle, nor report progress for, the task that reuses its slot on the thread', async () => {
    // Was: the thread keyed pending tasks by slot only; once an aborted task was released its slot went to the next
    // task, and the old task's late result (or progress) was taken as that task's: a module task revoked or timed out
    // while awaiting, then finishing, handed its result to whichever task ran next in its slot.
    const pool = new ThreadPool({ module: tasks, size: 1 });
    try {
      const ac = new AbortController();
      let started!: () => void;
      const running = new Promise<void>((resolve) => { started = resolve; });
      const context = { id: 'a', name: 'stale', attempt: 1, retriesLeft: 0, headers: {}, signature: {} };
      const a = pool.run('stale', [], { signal: ac.signal, context, onProgress: () => started() });
      await running; // it runs on the thread: the abort is sent to it at once
      ac.abort();
      await expect(a).rejects.toBeInstanceOf(AbortError);
      await pool.run('echo', [1]); // sent after the abort: back once the thread has released the stale task
      const progress: unknown[] = [];
      // Same batch: 'releaseX' takes the slot freed by 'echo', 'fresh' the one of the released task.
      const x = pool.run('releaseX');
      const fresh = pool.run('fresh', [], { context: { ...context, id: 'f', name: 'fresh' }, onProgress: (v) => progress.push(v) });
      expect(await x).toBe('x');
      expect(await pool.run('releaseY')).toBe('y');
      expect(await fresh).toBe('fresh');
      expect(progress).toEqual([]);
    } finally {
      await pool.close();
    }
  });
});
