/** Review 18: workflows at scale (long chains, big chords, chains of groups). Asserts on sizes and counts, not time. */
import { afterEach, describe, expect, it } from 'vitest';
import { App, chain, ChordError, chord, FakeClock, group, signature, TaskFailedError, ValidationError } from '../../src/index.js';
import { finalFailure } from '../../src/outcome.js';
import { compile } from '../../src/workflow.js';
import { Outbox } from '../../transports/tcp/framing.js';
import { writeMessage } from '../../transports/tcp/protocol.js';

const ctx = { defaultQueue: 'q', now: 0, defaults: () => undefined };
const sigs = (n: number, name = 'add'): ReturnType<typeof signature>[] => Array.from({ length: n }, (_, i) => signature(name, [i]));

const apps: App[] = [];
afterEach(async () => { await Promise.all(apps.splice(0).map((a) => a.close())); });

function setup(): { app: App; clock: FakeClock; callbacks: () => number } {
  const clock = new FakeClock();
  const app = new App({ clock });
  apps.push(app);
  let callbacks = 0;
  app.task('add', (...xs: number[]) => xs.reduce((a, b) => a + b, 0));
  app.task('list', (...xs: unknown[]) => { callbacks++; return xs; });
  app.task('fail', () => { throw new Error('boom'); });
  return { app, clock, callbacks: () => callbacks };
}

describe('review18: long chains', () => {
  // BUG: taskIds() (checkUnique on every compile) and cascade() (finalFailure) recursed once per link: a chain of
  // ~5,000 links threw RangeError "Maximum call stack size exceeded" at send; a failing first link of a long chain
  // threw inside the worker and the chain's handle never settled.
  it('compiles, runs and fails a chain of 10,000 links', async () => {
    expect(() => compile(chain(...sigs(10_000)), ctx)).not.toThrow();
    const { batch } = compile(chain(...sigs(10_000)), ctx);
    const out = finalFailure(batch.tasks[0]!, 1, 'FAILURE', { code: 'ERR_X', name: 'Error', message: 'x' }, { now: 0, resultsExpireIn: 1, rng: () => 0 });
    expect(out.records).toHaveLength(10_000);

    const { app } = setup();
    await app.worker({ concurrency: 50 }).start();
    expect(await (await app.send(chain(...Array.from({ length: 10_000 }, () => signature('add', [1]))))).get()).toBe(10_000);
    const err = await (await app.send(chain(signature('fail'), ...sigs(10_000)))).get().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskFailedError);
  });

  // BUG: over TCP the broker's reader refuses workflows nested deeper than 64 levels (a chain of 66+ links) by
  // closing the connection; the client resent the publish on every reconnect and rejected after sendTimeout (30 s)
  // with a ConnectionError ("check that the broker runs"). Now the writer refuses it at once with a ValidationError.
  it('a chain too deep for the TCP transport is a ValidationError when encoded', () => {
    const ok = compile(chain(...sigs(65)), ctx).batch;
    expect(() => writeMessage(new Outbox(), { t: 'publish', id: 1, batch: ok })).not.toThrow();
    const deep = compile(chain(...sigs(66)), ctx).batch;
    expect(() => writeMessage(new Outbox(), { t: 'publish', id: 1, batch: deep })).toThrow(ValidationError);
  });
});

describe('review18: chords of chains of groups', () => {
  // BUG: every chord member carried the callback's whole id list (`chord.tail`): chain(group(n), group(n)) made
  // n members × n ids. Over TCP chain(group(1000), group(1000)) was a 39 MB publish frame (over maxFrameBytes),
  // and at 10,000 a 4.8 GB encode that failed after 24 s. The broker now fails the callback from its ledger copy.
  it('members carry no copy of the callback ids: ids per compiled batch grow linearly', () => {
    const tailIds = (n: number): number => compile(chain(group(...sigs(n)), group(...sigs(n))), ctx).batch.tasks
      .reduce((sum, t) => sum + (t.chord?.tail.length ?? 0), 0);
    expect(tailIds(1000)).toBe(0);
    const chainOfGroups = compile(chain(...Array.from({ length: 100 }, () => group(...sigs(100)))), ctx).batch;
    expect(chainOfGroups.tasks.reduce((sum, t) => sum + (t.chord?.tail.length ?? 0), 0)).toBe(0);
  });

  it('a chord of 10,000: results in member order, callback once; a failing member fails the callback workflow', async () => {
    const { app, callbacks } = setup();
    await app.worker({ concurrency: 100 }).start();
    const r = await app.send(chord(sigs(10_000), signature('list')));
    const got = await r.get() as number[];
    expect(got).toHaveLength(10_000);
    expect(got.every((x, i) => x === i)).toBe(true);
    expect(callbacks()).toBe(1);

    // The callback is a chain ending in a group: every id of it fails with ChordError.
    const tailGroup = group(signature('add'), signature('add'));
    const r2 = await app.send(chord([...sigs(1000), signature('fail')], chain(signature('list'), tailGroup)));
    const errs = await Promise.all((r2 as unknown as { results: Array<{ get(): Promise<unknown> }> }).results.map((h) => h.get().catch((e: unknown) => e)));
    for (const e of errs) expect(e).toBeInstanceOf(ChordError);
    expect(callbacks()).toBe(1);
  });
});
