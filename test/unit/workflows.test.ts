import { afterEach, describe, expect, it } from 'vitest';
import { App, chain, ChordError, chord, FakeClock, group, signature, TaskFailedError } from '../../src/index.js';

const apps: App[] = [];
afterEach(async () => { await Promise.all(apps.splice(0).map((a) => a.close())); });

function setup(): { app: App; clock: FakeClock; calls: Array<[string, unknown[]]> } {
  const clock = new FakeClock();
  const app = new App({ clock });
  apps.push(app);
  const calls: Array<[string, unknown[]]> = [];
  const record = (name: string, fn: (...xs: number[]) => unknown): void => {
    app.task(name, (...args: number[]) => { calls.push([name, args]); return fn(...args); });
  };
  record('add', (...xs) => xs.reduce((a, b) => a + b, 0));
  record('mul', (...xs) => xs.reduce((a, b) => a * b, 1));
  record('list', (...xs) => xs);
  record('fail', () => { throw new Error('link broke'); });
  return { app, clock, calls };
}

describe('workflows', () => {
  it('a failing chain link rejects the chain with its message; later links never run', async () => {
    const { app, calls } = setup();
    await app.worker().start();
    const r = await app.send(chain(signature('add', [1]), signature('fail'), signature('add', [2]), signature('mul', [3])));
    const err = await r.get().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskFailedError);
    expect((err as TaskFailedError).message).toBe('link broke');
    expect(calls.map((c) => c[0])).toEqual(['add', 'fail']);
  });

  it('immutable receivers do not get the parent result; onSuccess gets it appended', async () => {
    const { app, calls } = setup();
    await app.worker().start();
    const r = await app.send(chain(signature('add', [1, 2]), signature('list', [7], { immutable: true }), signature('list')));
    expect(await r.get()).toEqual([[7]]);
    const cb = signature('list', ['cb']);
    const r2 = await app.send(signature('add', [2, 3], { onSuccess: [cb] }));
    expect(await r2.get()).toBe(5);
    expect(await app.result(cb.id).get()).toEqual(['cb', 5]);
    expect(calls.filter((c) => c[0] === 'list').map((c) => c[1])).toEqual([[7], [[7]], ['cb', 5]]);
  });

  it('a group followed by a link acts as a chord; a group preceded by a link gets its result', async () => {
    const { app } = setup();
    await app.worker().start();
    const r = await app.send(chain(signature('add', [1, 1]), group(signature('add', [10]), signature('mul', [10])), signature('list')));
    expect(await r.get()).toEqual([12, 20]);
  });

  it('nested workflows: a chord whose callback is a chain, inside a chain', async () => {
    const { app } = setup();
    await app.worker().start();
    const inner = chord([signature('add', [1, 2]), signature('add', [3, 4])], chain(signature('add'), signature('mul', [2])));
    const r = await app.send(chain(signature('add', [0]), inner));
    expect(await r.get()).toBe(20);
    const g = await app.send(group(chain(signature('add', [1]), signature('mul', [5])), signature('add', [2, 2])));
    expect(await g.get()).toEqual([5, 4]);
    expect(g.results).toHaveLength(2);
  });

  it('a member final failure fails the chord with ChordError and the callback never runs', async () => {
    const { app, clock, calls } = setup();
    app.task('flaky', () => { throw new Error('member down'); }, { retries: 1, backoff: { type: 'fixed', delay: 100 } });
    await app.worker().start();
    const r = await app.send(chord([signature('add', [1]), signature('flaky'), signature('add', [2])], signature('list')));
    const settled = r.get().catch((e: unknown) => e);
    await clock.advance(100);
    const err = await settled;
    expect(err).toBeInstanceOf(ChordError);
    expect((err as ChordError).code).toBe('ERR_CHORD');
    expect((err as ChordError).message).toMatch(/member down/);
    expect(calls.some((c) => c[0] === 'list')).toBe(false);
  });

  it('the callback runs exactly once when many members finish at the same moment', async () => {
    const { app, clock } = setup();
    let callbacks = 0;
    app.task('sumAll', (...xs: number[]) => { callbacks++; return xs.reduce((a, b) => a + b, 0); });
    const w1 = app.worker({ concurrency: 50 });
    const w2 = app.worker({ concurrency: 50 });
    await w1.start();
    await w2.start();
    const members = Array.from({ length: 100 }, (_, i) => signature('add', [i], { eta: 5_000 }));
    const r = await app.send(chord(members, signature('sumAll')));
    await clock.advance(5_000);
    expect(await r.get()).toBe(4950);
    expect(callbacks).toBe(1);
  });

  it('a chord with no members runs its callback at once', async () => {
    const { app } = setup();
    await app.worker().start();
    expect(await (await app.send(chord([], signature('list', ['alone'])))).get()).toEqual(['alone']);
  });
});
