/** Module tasks run on a worker's thread pool, end to end (real threads). */
import { afterEach, describe, expect, it } from 'vitest';
import { App, chord, group, ModuleError, RevokedError, signature, TaskFailedError } from '../../src/index.js';

const tasks = new URL('../fixtures/module-tasks.mjs', import.meta.url);
const apps: App[] = [];
afterEach(async () => { await Promise.all(apps.splice(0).map((a) => a.close())); });

function moduleApp(): App {
  const app = new App();
  apps.push(app);
  for (const name of ['fib', 'whoami', 'add', 'report', 'spin']) app.task(name, { module: tasks, export: name });
  app.task('flaky', { module: tasks.pathname, export: 'flaky' }, { retries: 3, backoff: { type: 'fixed', delay: 1 } });
  app.task('total', (...xs: number[]) => xs.reduce((a, b) => a + b, 0));
  return app;
}

describe('module tasks on the thread pool', () => {
  it('run off the main thread, the module loaded once per thread', async () => {
    const app = moduleApp();
    await app.worker({ threads: 2, concurrency: 8 }).start();
    const fib = app.task<[number], number>('fib2', { module: tasks, export: 'fib' });
    expect(await (await app.send(fib.s(20))).get()).toBe(6765);
    const who = await (await app.send(group(...Array.from({ length: 16 }, () => signature('whoami'))))).get() as Array<{ threadId: number; loads: number }>;
    expect(who.every((w) => w.threadId > 0 && w.loads === 1)).toBe(true);
    expect(new Set(who.map((w) => w.threadId)).size).toBeLessThanOrEqual(2);
  });

  it('retries and chords work for module tasks as for inline ones', async () => {
    const app = moduleApp();
    await app.worker({ threads: 2 }).start();
    expect(await (await app.send(signature('flaky', [2]))).get()).toBe(3);
    const r = await app.send(chord([signature('add', [1, 2]), signature('fib', [10]), signature('add', [4])], signature('total')));
    expect(await r.get()).toBe(3 + 55 + 4);
  });

  it('currentTask() progress reaches the producer; revoke fires the signal on the thread', async () => {
    const app = moduleApp();
    const w = app.worker({ threads: 1 });
    await w.start();
    const r = await app.send(signature('report'));
    const values: unknown[] = [];
    for await (const v of r.progress) values.push(v);
    expect(values).toEqual([0.5, { done: true }]);
    expect(await r.get()).toBe(`report:${r.id.length}`);
    const started = new Promise<void>((resolve) => w.once('task:started', () => resolve()));
    const spin = await app.send(signature('spin'));
    await started;
    await spin.revoke();
    await expect(spin.get()).rejects.toBeInstanceOf(RevokedError);
  });

  it('a missing export fails the task with a clear ERR_MODULE error', async () => {
    const app = moduleApp();
    app.task('ghost', { module: tasks, export: 'doesNotExist' });
    await app.worker({ threads: 1 }).start();
    const err = await (await app.send(signature('ghost'))).get().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskFailedError);
    expect((err as TaskFailedError).remoteCode).toBe(new ModuleError('x').code);
    expect((err as TaskFailedError).message).toMatch(/doesNotExist/);
  });
});
