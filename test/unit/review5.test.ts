/**
 * Regression tests from a fifth review (the worker's backlog, a revocation crossing a retry): each failed before
 * its fix. Time is a FakeClock; nothing sleeps.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { App, chain, chord, FakeClock, signature, ValidationError, type Signature } from '../../src/index.js';
import { failureOutcome } from '../../src/outcome.js';
import type { Delivery } from '../../src/transport.js';
import { compile } from '../../src/workflow.js';
import { BrokerCore } from '../../transports/memory/broker-core.js';

const apps: App[] = [];
afterEach(async () => { await Promise.all(apps.splice(0).map((a) => a.close())); });

/** One macrotask turn: every microtask the memory transport and the worker queued has run. */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('review 5', () => {
  // src/worker.ts #next: each synchronous task started from the backlog ended inside #admit and called #next, which
  // admitted the next one: one nested call per task. With a few thousand in the backlog (prefetch raised, one slow
  // task ahead of them) the stack overflowed, the error vanished in a tracked promise, and the worker stayed stuck
  // with one task "running" and the rest never run.
  it('a long backlog of synchronous tasks all run once a slot frees (no nesting per task)', async () => {
    const app = new App({ clock: new FakeClock() });
    apps.push(app);
    let release!: () => void;
    const slow = new Promise<void>((resolve) => { release = resolve; });
    app.task('slow', () => slow);
    let ran = 0;
    app.task('fast', () => ++ran);
    const worker = app.worker({ concurrency: 1, prefetch: 20_000 });
    await worker.start();
    const first = await app.send(signature('slow'));
    const n = 20_000;
    for (let i = 0; i < n; i++) await app.send(signature('fast'));
    release();
    await first.get();
    await turn();
    const stuck = worker.active;
    await worker.stop({ graceful: false });
    expect({ ran, stuck }).toEqual({ ran: n, stuck: 0 });
  });

  // transports/memory/broker-core.ts apply: a task revoked while it ran whose outcome is a retry (over TCP the
  // revocation crosses the worker's settle on the wire) had its retry dropped but its RETRY record kept: nothing
  // was queued any more, and its get() and its chain's waited forever.
  it('a retry outcome of a task revoked while it ran ends it REVOKED, with its workflow', async () => {
    const clock = new FakeClock(1_000);
    const core = new BrokerCore(clock);
    const { batch } = compile(chain(signature('a', [], { retries: 2 }), signature('b')), { defaultQueue: 'q', now: 1_000, defaults: () => undefined });
    core.publish(batch);
    const got: Delivery[] = [];
    core.consume({ queues: ['q'], prefetch: 1, names: null }, { deliver: (d) => got.push(d), revoked: () => undefined });
    await Promise.resolve();
    const d = got[0] as Delivery;
    const b = d.message.onSuccess?.tasks[0];
    core.setState({ id: d.message.id, name: 'a', state: 'STARTED', attempts: 1, createdAt: 1_000, updatedAt: 1_000 });
    core.revoke(d.message.id);
    core.settle(d.tag, failureOutcome(d.message, 1, new Error('boom'), { now: 1_000, resultsExpireIn: 10_000, rng: () => 0 }).outcome);
    await clock.advance(100_000);
    expect([core.getState(d.message.id)?.state, core.getState(b?.id ?? '')?.state, got.length]).toEqual(['REVOKED', 'FAILURE', 1]);
  });

  // src/workflow.ts compileSignature: the check that one signature appears once per workflow ran for chains, groups
  // and chords but not for a lone signature's onSuccess: a chord there with one member twice was accepted, counted
  // that member twice, never fired, and its callback stayed PENDING for good.
  it('a signature used twice in the onSuccess of a lone signature is refused at send time', async () => {
    const app = new App({ clock: new FakeClock() });
    apps.push(app);
    app.task('add', (...xs: number[]) => xs.reduce((a, b) => a + b, 0));
    app.task('list', (...xs: unknown[]) => xs);
    const s = signature('add', [1]);
    // onSuccess is typed as signatures; a workflow there is compiled as one too (untyped JavaScript).
    const asSignature = (w: unknown): Signature => w as Signature;
    const parent = { ...signature('add', [1]), onSuccess: [asSignature(chord([s, s], signature('list')))] };
    await expect(app.send(parent)).rejects.toBeInstanceOf(ValidationError);
    await expect(app.send(chain(parent, signature('list')))).rejects.toBeInstanceOf(ValidationError);
    await expect(app.send({ ...signature('add', [1]), onSuccess: [s, s] })).rejects.toBeInstanceOf(ValidationError);
    // Distinct signatures in onSuccess still go.
    await app.worker().start();
    const cb = signature('list');
    await (await app.send({ ...signature('add', [1]), onSuccess: [asSignature(chord([signature('add', [1]), signature('add', [2])], cb))] })).get();
    expect(await app.result(cb.id).get()).toEqual([2, 3]);
  });
});
