/** Machinery's own integration scenarios (shared/machinery.md section 3), on the in-memory transport. */
import { afterEach, describe, expect, it } from 'vitest';
import { App, chain, chord, FakeClock, group, MemoryTransport, signature, TaskFailedError } from '../../src/index.js';

const apps: App[] = [];
afterEach(async () => { await Promise.all(apps.splice(0).map((a) => a.close())); });

function machineryApp(options: ConstructorParameters<typeof App>[0] = {}): App {
  const app = new App(options);
  apps.push(app);
  app.task('add', (...xs: number[]) => xs.reduce((a, b) => a + b, 0));
  app.task('multiply', (...xs: number[]) => xs.reduce((a, b) => a * b, 1));
  app.task('sum_ints', (xs: number[]) => xs.reduce((a, b) => a + b, 0));
  app.task('return_just_error', () => { throw new Error('Test error'); });
  app.task('panic_task', () => { throw new Error('oops'); });
  return app;
}

describe('Machinery scenarios', () => {
  it('add(1,1) = 2 and sum([1,2]) = 3', async () => {
    const app = machineryApp();
    await app.worker().start();
    expect(await (await app.send(signature('add', [1, 1]))).get()).toBe(2);
    expect(await (await app.send(signature('sum_ints', [[1, 2]]))).get()).toBe(3);
  });

  it('group add(1,1), add(2,2), add(5,6) -> [2, 4, 11]', async () => {
    const app = machineryApp();
    await app.worker().start();
    const r = await app.send(group(signature('add', [1, 1]), signature('add', [2, 2]), signature('add', [5, 6])));
    expect(await r.get()).toEqual([2, 4, 11]);
  });

  it('chord of the group with multiply() -> 88', async () => {
    const app = machineryApp();
    await app.worker().start();
    const r = await app.send(chord(group(signature('add', [1, 1]), signature('add', [2, 2]), signature('add', [5, 6])), signature('multiply')));
    expect(await r.get()).toBe(88);
  });

  it('chain add(2,2) -> add(5,6) -> multiply(4) -> 60', async () => {
    const app = machineryApp();
    await app.worker().start();
    const r = await app.send(chain(signature('add', [2, 2]), signature('add', [5, 6]), signature('multiply', [4])));
    expect(await r.get()).toBe(60);
  });

  it("an error task's message reaches the caller verbatim; a thrown error fails the task", async () => {
    const app = machineryApp();
    await app.worker().start();
    const e1 = await (await app.send(signature('return_just_error'))).get().catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(TaskFailedError);
    expect((e1 as TaskFailedError).message).toBe('Test error');
    expect((e1 as TaskFailedError).taskName).toBe('return_just_error');
    expect((e1 as TaskFailedError).remoteStack).toContain('Test error');
    const r2 = await app.send(signature('panic_task'));
    await expect(r2.get()).rejects.toThrow(/^oops$/);
    expect((await r2.state()).state).toBe('FAILURE');
    expect((await r2.state()).error?.message).toBe('oops');
  });

  it('a delayed task never starts before its ETA', async () => {
    const clock = new FakeClock(1_000_000);
    const app = machineryApp({ clock });
    const starts: number[] = [];
    const worker = app.worker();
    worker.on('task:started', () => starts.push(clock.now()));
    await worker.start();
    const eta = clock.now() + 5_000;
    const r = await app.send({ ...signature('add', [1, 2]), eta });
    await clock.advance(4_999);
    expect(starts).toEqual([]);
    expect((await r.state()).state).toBe('PENDING');
    await clock.advance(1);
    expect(await r.get()).toBe(3);
    expect(starts).toEqual([eta]);
  });

  it('two apps sharing one transport each consume only their own registered tasks', async () => {
    const transport = new MemoryTransport();
    const app1 = new App({ transport, defaultQueue: 'test_queue' });
    const app2 = new App({ transport, defaultQueue: 'test_queue' });
    apps.push(app1, app2);
    app1.task('add', (...xs: number[]) => xs.reduce((a, b) => a + b, 0));
    app2.task('multiply', (...xs: number[]) => xs.reduce((a, b) => a * b, 1));
    const seen1: string[] = [];
    const seen2: string[] = [];
    const w1 = app1.worker({ ignoreUnknown: true });
    const w2 = app2.worker({ ignoreUnknown: true });
    w1.on('task:started', (e: { name: string }) => seen1.push(e.name));
    w2.on('task:started', (e: { name: string }) => seen2.push(e.name));
    await w1.start();
    await w2.start();
    const r = await app1.send(group(signature('multiply', [4, 5]), signature('add', [2, 3])));
    expect(((await r.get()) as number[]).sort((a, b) => a - b)).toEqual([5, 20]);
    expect(seen1).toEqual(['add']);
    expect(seen2).toEqual(['multiply']);
  });
});
