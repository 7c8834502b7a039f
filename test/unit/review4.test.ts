/**
 * Regression tests from a fourth review (cron and DST, revoking before publish, one signature used twice,
 * rate limits and concurrency): each failed before its fix. Time is a FakeClock.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { App, chain, chord, FakeClock, group, RevokedError, signature, ValidationError } from '../../src/index.js';
import { nextTick, parseCron } from '../../src/cron.js';
import { finalFailure } from '../../src/outcome.js';
import type { TaskMessage } from '../../src/transport.js';
import { compile } from '../../src/workflow.js';
import { BrokerCore } from '../../transports/memory/broker-core.js';

const apps: App[] = [];
afterEach(async () => { await Promise.all(apps.splice(0).map((a) => a.close())); });

function setup(): { app: App; clock: FakeClock; calls: string[] } {
  const clock = new FakeClock();
  const app = new App({ clock });
  apps.push(app);
  const calls: string[] = [];
  app.task('add', (...xs: number[]) => { calls.push('add'); return xs.reduce((a, b) => a + b, 0); });
  app.task('list', (...xs: unknown[]) => { calls.push('list'); return xs; });
  return { app, clock, calls };
}

const iso = (ms: number): string => new Date(ms).toISOString();
function ticks(expr: string, tz: string, from: string, n: number): string[] {
  const cron = parseCron(expr, tz);
  const out: string[] = [];
  let t = Date.parse(from);
  for (let i = 0; i < n; i++) { t = nextTick(cron, t); out.push(iso(t)); }
  return out;
}

describe('review 4', () => {
  // src/cron.ts nextTick: a non-matching day was skipped by 24 h less the wall time since midnight; on a day DST
  // shortens (23 h) that lands at 01:00 of the next day, so its 00:00 tick was skipped (a week late for weekly jobs).
  it('cron: the midnight after a spring-forward day is not skipped', () => {
    // Europe/Paris moves to CEST on Sunday 2025-03-30; Monday 00:00 CEST is 2025-03-30T22:00Z.
    expect(ticks('0 0 * * 1', 'Europe/Paris', '2025-03-28T12:00:00Z', 1)).toEqual(['2025-03-30T22:00:00.000Z']);
    expect(ticks('0 0 * * *', 'America/New_York', '2025-03-09T10:00:00Z', 2)).toEqual(['2025-03-10T04:00:00.000Z', '2025-03-11T04:00:00.000Z']);
  });

  // src/cron.ts nextTick: on the fall-back night 02:00-02:59 happens twice in Europe/Paris, and "30 2 * * *" fired
  // twice; Vixie cron runs a fixed-time job once then (wildcard jobs still run in both passes).
  it('cron: a fixed-time job runs once in an hour that DST repeats; a wildcard job runs in both passes', () => {
    expect(ticks('30 2 * * *', 'Europe/Paris', '2025-10-25T12:00:00Z', 2)).toEqual(['2025-10-26T00:30:00.000Z', '2025-10-27T01:30:00.000Z']);
    expect(ticks('*/30 * * * *', 'Europe/Paris', '2025-10-25T23:50:00Z', 4))
      .toEqual(['2025-10-26T00:00:00.000Z', '2025-10-26T00:30:00.000Z', '2025-10-26T01:00:00.000Z', '2025-10-26T01:30:00.000Z']);
  });

  // transports/memory/broker-core.ts publish: a task revoked before it was published (a later chain link, a chord
  // callback) was skipped silently, and nothing after it ever settled: the chain's handle stayed PENDING forever.
  it('revoking a later chain link before it is published settles the chain handle', async () => {
    const { app, clock, calls } = setup();
    await app.worker().start();
    const b = signature('add', [1]);
    await app.result(b.id).revoke();
    const r = await app.send(chain(signature('add', [1], { eta: 100 }), b, signature('add', [2])));
    const settled = r.get().catch((e: unknown) => e);
    await clock.advance(100);
    expect((await r.state()).state).toBe('FAILURE');
    expect(await settled).toBeInstanceOf(Error);
    await expect(app.result(b.id).get()).rejects.toBeInstanceOf(RevokedError);
    expect(calls).toEqual(['add']);
  });

  it('revoking a chord callback before the chord fires fails the links after it', async () => {
    const { app, clock, calls } = setup();
    await app.worker().start();
    const cb = signature('list');
    await app.result(cb.id).revoke();
    const r = await app.send(chain(chord([signature('add', [1], { eta: 100 }), signature('add', [2])], cb), signature('list', ['after'])));
    const settled = r.get().catch((e: unknown) => e);
    await clock.advance(100);
    expect((await r.state()).state).toBe('FAILURE');
    expect(await settled).toBeInstanceOf(Error);
    expect(calls).toEqual(['add', 'add']);
  });

  // src/workflow.ts compile: one signature object used twice in a workflow has one id; the store skips the id it
  // already knows, so the chord counted a member that never ran and its handle stayed PENDING forever.
  it('a signature used twice in one workflow is refused at send time', async () => {
    const { app } = setup();
    await app.worker().start();
    const s = signature('add', [1]);
    await expect(app.send(chord([s, s], signature('list')))).rejects.toBeInstanceOf(ValidationError);
    await expect(app.send(group(...Array<typeof s>(3).fill(s)))).rejects.toThrow(/appears twice/);
    await expect(app.send(chain(s, s))).rejects.toBeInstanceOf(ValidationError);
    // Distinct signatures still work.
    expect(await (await app.send(chord([signature('add', [1]), signature('add', [1])], signature('list')))).get()).toEqual([1, 1]);
  });

  // src/worker.ts #onDelivery/#admit: a delivery of a rate-limited task held back by RateGates was not counted in
  // #running, so deliveries (up to concurrency + prefetch) went into the gate and each started when the window
  // allowed, whatever ran: with concurrency 2 and prefetch 3, five ran at once. Now a gate starts one only into a
  // free slot, and a finished task resumes the gates.
  it('a rate-limited task never runs more than `concurrency` at once', async () => {
    const clock = new FakeClock();
    const app = new App({ clock });
    apps.push(app);
    let running = 0;
    let peak = 0;
    const release: Array<() => void> = [];
    app.task('limited', async () => {
      running++;
      peak = Math.max(peak, running);
      await new Promise<void>((resolve) => release.push(resolve));
      running--;
    }, { rateLimit: { max: 1, per: 1000 } });
    await app.worker({ concurrency: 2, prefetch: 3 }).start();
    const handles = await Promise.all([1, 2, 3, 4, 5].map(() => app.send(signature('limited'))));
    await clock.advance(5000);
    while (release.length > 0) { release.shift()?.(); await clock.advance(1000); }
    await Promise.all(handles.map((h) => h.get()));
    expect(peak).toBe(2);
  });

  it('deliveries held back by a rate limit take no slot: other tasks run meanwhile', async () => {
    const { app, clock } = setup();
    const ran: string[] = [];
    app.task('limited', (i: number) => { ran.push(`limited ${i}`); }, { rateLimit: { max: 1, per: 1000 } });
    app.task('free', () => { ran.push('free'); });
    await app.worker({ concurrency: 1, prefetch: 4 }).start();
    for (const i of [1, 2, 3]) await app.send(signature('limited', [i]));
    const free = await app.send(signature('free'));
    await free.get();
    expect(ran).toEqual(['limited 1', 'free']);
    await clock.advance(2000);
    expect(ran).toEqual(['limited 1', 'free', 'limited 2', 'limited 3']);
  });

  // src/app.ts TASK_RULES: rateLimit was only checked to be an object: { max: 0 } made the window compute NaN and
  // the limit silently did nothing. src/result.ts get() and worker.stop() took any timeout: NaN armed a FakeClock
  // timer at NaN, and now() read NaN while it fired.
  it('a bad rateLimit or timeout is refused with ValidationError; a NaN timer delay counts as 0', async () => {
    const { app, clock } = setup();
    for (const rateLimit of [{ max: 0, per: 1000 }, { max: 1.5, per: 1000 }, { max: 1, per: 0 }, { max: 1 }, { max: 1, per: Number.NaN }]) {
      expect(() => app.task(`t${JSON.stringify(rateLimit)}`, () => 1, { rateLimit: rateLimit as { max: number; per: number } })).toThrow(ValidationError);
    }
    const r = await app.send(signature('add', [1]));
    for (const timeout of [Number.NaN, -1, Number.POSITIVE_INFINITY]) await expect(r.get({ timeout })).rejects.toBeInstanceOf(ValidationError);
    const worker = app.worker();
    await worker.start();
    await expect(worker.stop({ timeout: Number.NaN })).rejects.toBeInstanceOf(ValidationError);
    let seen = -1;
    clock.setTimer(() => { seen = clock.now(); }, Number.NaN);
    await clock.advance(0);
    expect(seen).toBe(clock.now());
  });

  // src/outcome.ts finalFailure: when an earlier link of a chord member's chain failed, the outcome carried no chord
  // (only the failing task's own), so the chord's ledger entry stayed open for good: a leak, kept in TCP snapshots.
  it('an earlier link of a member chain failing closes the chord in the ledger', () => {
    const ctx = { defaultQueue: 'q', now: 1_000, defaults: () => undefined };
    const member = chain(signature('first'), signature('last'));
    const { batch } = compile(chord([member, signature('other')], signature('cb')), ctx);
    const first = batch.tasks.find((t) => t.name === 'first') as TaskMessage;
    const last = first.onSuccess?.tasks[0] as TaskMessage;
    expect(first.chord).toBeUndefined();
    const outcome = finalFailure(first, 1, 'FAILURE', { code: 'ERR_TASK_FAILED', name: 'Error', message: 'boom' }, { now: 2_000, resultsExpireIn: 1_000, rng: () => 0 });
    expect(outcome.chord).toEqual({ ref: last.chord, result: null });
    const core = new BrokerCore(new FakeClock(1_000));
    core.publish(batch);
    core.apply(outcome);
    expect(core.snapshot().chords).toEqual([]);
  });
});
