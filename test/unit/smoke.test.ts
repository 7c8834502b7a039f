import { describe, expect, it } from 'vitest';
import { App, FakeClock, chain, chord, group } from '../../src/index.js';

describe('smoke', () => {
  it('add, chain, group, chord', async () => {
    const app = new App();
    const add = app.task('add', (...xs: number[]) => xs.reduce((a, b) => a + b, 0));
    const mul = app.task('multiply', (...xs: number[]) => xs.reduce((a, b) => a * b, 1));
    await app.worker().start();
    expect(await (await app.send(add.s(1, 1))).get()).toBe(2);
    expect(await (await app.send(chain(add.s(2, 2), add.s(5, 6), mul.s(4)))).get()).toBe(60);
    expect(await (await app.send(group(add.s(1, 1), add.s(2, 2), add.s(5, 6)))).get()).toEqual([2, 4, 11]);
    expect(await (await app.send(chord(group(add.s(1, 1), add.s(2, 2), add.s(5, 6)), mul.s()))).get()).toBe(88);
    await app.close();
  });
  it('retries with fibonacci under FakeClock', async () => {
    const clock = new FakeClock();
    const app = new App({ clock });
    let calls = 0;
    const times: number[] = [];
    const flaky = app.task('flaky', () => { times.push(clock.now()); if (++calls <= 3) throw new Error('nope'); return 'ok'; }, { retries: 3 });
    await app.worker().start();
    const r = await app.send(flaky.s());
    await clock.advance(20_000);
    expect(await r.get()).toBe('ok');
    expect(times).toEqual([0, 1000, 3000, 6000]);
    await app.close();
  });
});
