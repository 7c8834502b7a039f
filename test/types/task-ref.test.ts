/**
 * Compile-time tests of the public generics. `npm test` type-checks this file
 * (`tsc -p test/tsconfig.json`): each @ts-expect-error must be an error.
 */
import { describe, expect, it } from 'vitest';
import { App, chain, chord, group, type AsyncResult, type GroupResult, type TaskRef } from '../../src/index.js';

describe('types', () => {
  it('TaskRef types args (any leading subset) and results', async () => {
    const app = new App();
    const add = app.task('add', (a: number, b: number) => a + b);
    const greet = app.task('greet', async (name: string, excited: boolean) => `hi ${name}${excited ? '!' : ''}`);
    const typed: TaskRef<[number, number], number> = add;
    add.s(1, 2);
    add.s(1);
    add.s();
    // @ts-expect-error wrong argument type
    add.s('1', 2);
    // @ts-expect-error too many arguments
    add.s(1, 2, 3);
    // @ts-expect-error boolean where string expected
    greet.s(true);
    await app.worker().start();
    const r: AsyncResult<number> = await app.send(add.s(1, 2));
    const n: number = await r.get();
    const g: AsyncResult<string> = await app.send(greet.s('x', true));
    // @ts-expect-error the result of greet is a string
    const wrong: number = await g.get();
    const grp: GroupResult = await app.send(group(add.s(1, 1), add.s(2, 2)));
    const all: unknown[] = await grp.get();
    const c: AsyncResult = await app.send(chord(group(add.s(1, 1)), add.s(0)));
    const ch: AsyncResult = await app.send(chain(add.s(1, 1), add.s(2)));
    expect([typed.name, n, all, String(wrong), await c.get(), await ch.get()]).toEqual(['add', 3, [2, 4], 'hi x!', 2, 4]);
    await app.close();
  });
});
