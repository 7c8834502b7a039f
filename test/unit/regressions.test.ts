/**
 * Regression tests from a review of the core against the SPEC: each failed
 * before its fix. The comment above each test describes the bug as it was
 * found (file:line refer to the code before the fix). Time is a FakeClock.
 */
import { describe, expect, it, vi } from 'vitest';
import {
  App, chain, ChordError, chord, ClosedError, currentTask, FakeClock, group, MemoryTransport, MillwrightError,
  PermanentError, signature, systemClock, TaskFailedError, TimeoutError, ValidationError, type SignatureOptions,
} from '../../src/index.js';
import { packArgs } from '../../src/codec.js';
import { finalFailure } from '../../src/outcome.js';
import type { Delivery, TaskMessage } from '../../src/transport.js';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { BrokerCore } from '../../transports/memory/broker-core.js';
import { fakeApps } from '../fixtures/fake-app.js';

const setup = fakeApps();

describe('review: revoke', () => {
  // BUG 3 (src/outcome.ts:74-77, finalFailure): onError callbacks are published for state REVOKED too, but
  // only when the revoked task had already been prefetched by a worker (worker.ts #execute -> #revokedOutcome).
  // A revoke that finds it in the broker sends nothing. SPEC 1.2: onError is "sent when it finally fails";
  // a revoke is not a failure (Celery does not call errbacks on revoke). Fix: publish onError only when
  // state === 'FAILURE'.
  it('revoking a prefetched (backlogged) task does not send its onError callbacks', async () => {
    const { app, clock } = setup();
    const seen: unknown[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    app.task('block', () => gate);
    app.task('a', () => 1);
    app.task('log', (...xs: unknown[]) => { seen.push(xs); });
    await app.worker({ concurrency: 1, prefetch: 1 }).start();
    await app.send(signature('block'));
    const r = await app.send(signature('a', [], { onError: [signature('log')] }));
    await clock.advance(0);
    await r.revoke();
    release();
    await clock.advance(0);
    expect((await r.state()).state).toBe('REVOKED');
    expect(seen).toEqual([]);
  });
});

describe('review: workflows', () => {
  // BUG 4 (src/outcome.ts:86 in cascade(), and :69-73): when a chain link BEFORE a group/chord fails,
  // cascade() collects the chord refs of the downstream (never-run) members and then overwrites the chain's
  // last link with ChordError "Chord ... failed because a member (boom) failed". But no member failed: a link
  // did. SPEC 1.2: "When a link fails, the chain's handle rejects with TaskFailedError carrying that link's
  // message". Fix: only the failing message's own `chord` ref yields ChordError on the tail; chords reached
  // through cascade() should just get the link's error (and be closed in the ledger so they cannot fire).
  it('a link before a group fails: the chain rejects with TaskFailedError carrying that link\'s message', async () => {
    const { app, clock } = setup();
    app.task('boom', () => { throw new Error('link broke'); });
    app.task('a', (...xs: unknown[]) => xs);
    await app.worker().start();
    const r = await app.send(chain(signature('boom'), group(signature('a'), signature('a')), signature('a')));
    const got = r.get().catch((e: unknown) => e);
    await clock.advance(0);
    const err = await got;
    expect(err).toBeInstanceOf(TaskFailedError);
    expect((err as Error).message).toBe('link broke');
  });
});

describe('review: validation and error codes (SPEC 1.3, 4)', () => {
  // BUG 5 (src/workflow.ts:60 compileChain `steps.length`, :74/:80 compileGroup `members.map`, :112
  // `sig.onSuccess.map`): malformed workflows reach the compiler unchecked and blow up with a TypeError
  // ("Cannot read properties of undefined"), not a ValidationError (ERR_VALIDATION) naming the field.
  // Fix: isWorkflow()/compile() must check that `steps`/`members` are arrays and `onSuccess`/`onError` are
  // arrays of signatures, throwing ValidationError with the path.
  it('send() of malformed workflows rejects with ValidationError, not TypeError', async () => {
    const { app } = setup();
    const bad = [{ kind: 'chain' }, { kind: 'group' }, signature('a', [], { onSuccess: signature('b') as never })];
    for (const b of bad) {
      const err = await app.send(b as never).catch((e: unknown) => e);
      expect(err, JSON.stringify(b)).toBeInstanceOf(ValidationError);
    }
  });

  // BUG 6 (src/workflow.ts:133): `onError` that is not an array (a single signature, a common slip) is
  // silently ignored because `sig.onError.length > 0` is `undefined > 0`; the error callback is dropped
  // without a word. SPEC 4 "nothing is silently dropped". Fix: require an array (ValidationError otherwise).
  it('onError given as a single signature is rejected, not silently dropped', async () => {
    const { app } = setup();
    const err = await app.send(signature('a', [], { onError: signature('b') as never })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
  });

  // BUG 7 (src/signature.ts:86 `options.id` on null; src/signature.ts:110 `g.members.map` when chord() gets
  // neither an array nor a Group; src/clock.ts:112 RangeError and :135 plain Error in FakeClock): user-facing
  // errors that are not MillwrightErrors with a stable code (SPEC 4). Fix: validate and throw ValidationError
  // (FakeClock: ValidationError for a bad `ms`, a MillwrightError subclass for the runAll runaway).
  it('builders and FakeClock throw MillwrightErrors on bad input', async () => {
    const errs: unknown[] = [];
    try { signature('a', [], null as never); } catch (e) { errs.push(e); }
    try { chord(42 as never, signature('x')); } catch (e) { errs.push(e); }
    errs.push(await new FakeClock().advance(-1).catch((e: unknown) => e));
    expect(errs).toHaveLength(3);
    for (const e of errs) expect(MillwrightError.is(e), String(e)).toBe(true);
  });
});

describe('review: App lifecycle', () => {
  // BUG 8 (transports/memory/broker-core.ts:310-315 close() clears #watchers without telling them;
  // src/result.ts get()/progressOf have no close path): a get() pending when the app (or its transport)
  // closes never settles; it hangs forever (or until its own timeout, reported as a misleading TimeoutError
  // "check that a worker consumes its queue"). SPEC 4: errors carry ERR_CLOSED. Fix: on close, notify every
  // watcher (e.g. a { type: 'closed' } event) so get() rejects with ClosedError and progress iteration ends.
  it('a get() pending when the app closes rejects with ClosedError', async () => {
    const { app, clock } = setup();
    app.task('a', () => 1);
    const r = await app.send(signature('a'));
    const got = r.get({ timeout: 1_000 }).catch((e: unknown) => e);
    await app.close();
    await clock.advance(1_000);
    expect(await got).toBeInstanceOf(ClosedError);
  });
});

describe('review: worker', () => {
  // BUG 10 (src/worker.ts:144 stop() releases the backlog; transports/memory/broker-core.ts:178-186 release()
  // pushes a released entry to the BACK of its queue; also stop() leaves the consumer subscribed while it
  // waits, so the broker keeps delivering to the stopping worker, which bounces each task to the back too).
  // Prefetched tasks handed back on stop lose their place: a later worker runs them after tasks sent after
  // them. SPEC 2 "Ordering: within one queue and one priority, tasks are delivered in send order (FIFO)".
  // Fix: release(tag, 0) should put the entry back at the FRONT of its priority level (as cancel() and
  // requeue() already do, unshiftAll), and stop() should stop the consumer from receiving before it waits.
  it('a stopped worker hands its prefetched backlog back in order (FIFO preserved)', async () => {
    const { app, clock } = setup();
    const order: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    app.task('t', async (x: string) => { order.push(x); if (x === 't1') await gate; });
    const w = app.worker({ concurrency: 1, prefetch: 2 });
    await w.start();
    for (const x of ['t1', 't2', 't3', 't4', 't5']) await app.send(signature('t', [x]));
    await clock.advance(0);
    const stopped = w.stop();
    await clock.advance(0);
    release();
    await stopped;
    await app.worker({ concurrency: 1 }).start();
    await clock.advance(0);
    await clock.advance(0);
    expect(order).toEqual(['t1', 't2', 't3', 't4', 't5']);
  });

  // BUG 11 (src/worker.ts:287 / :293-294 emit task:succeeded / task:failed / task:retry, and :241
  // task:started, all inside the path that must settle the delivery; src/worker.ts:208-214 #start's catch
  // only reports and frees the slot): if a user's event listener throws, the delivery is never settled nor
  // released: the task stays STARTED and unacked forever (its chain/chord with it). SPEC 4 "nothing is
  // silently dropped". Fix: emit events outside the settle path (after #settle) or wrap them in try/catch ->
  // #report; and make #start's catch settle a failure (or release) for the delivery instead of dropping it.
  it('a throwing task:succeeded listener does not leave the task stuck', async () => {
    const { app, clock } = setup();
    app.task('a', () => 1);
    const w = app.worker();
    w.on('task:succeeded', () => { throw new Error('listener bug'); });
    w.on('error', () => undefined);
    await w.start();
    const r = await app.send(signature('a'));
    const got = r.get({ timeout: 1_000 }).catch((e: unknown) => e);
    await clock.advance(1_000);
    expect(await got).toBe(1);
  });

});

describe('review: schedules', () => {
  // BUG 13 (src/schedules.ts:65): each tick copies the signature with a fresh top-level id only; nested
  // onSuccess/onError signatures keep the ids they were built with, so from the 2nd tick on they are
  // "already known" and skipped by the idempotent publish: callbacks run on the first tick only. SPEC 1.7
  // "Each tick sends a fresh copy of the signature". Fix: derive ids for every nested signature from the
  // tick id too (e.g. `${tickId}:onSuccess:${i}`), recursively.
  it('each schedule tick runs the onSuccess callback of its own copy', async () => {
    const { app, clock } = setup();
    const ran: unknown[] = [];
    app.task('tick', () => 't');
    app.task('cb', (x: unknown) => { ran.push(x); });
    await app.worker().start();
    app.schedule('s', '* * * * *', signature('tick', [], { onSuccess: [signature('cb')] }));
    await clock.advance(60_000);
    await clock.advance(60_000);
    await clock.advance(60_000);
    expect(ran).toEqual(['t', 't', 't']);
  });

  // BUG 14 (src/schedules.ts:43 checks only isSignature; src/app.ts:93 sends each tick and routes a failure
  // to debuglog only): a schedule whose signature holds a non-value (a function, NaN...) is accepted, then
  // every tick fails to send and the error vanishes into NODE_DEBUG. SPEC 1.3 bad values are rejected with a
  // ValidationError naming the path; SPEC 4 nothing silently dropped. Fix: compile/validate the signature
  // once in app.schedule() (throw ValidationError there).
  it('app.schedule() rejects a signature with a bad value at once', () => {
    const { app } = setup();
    expect(() => app.schedule('x', '* * * * *', signature('a', [() => 1]))).toThrow(ValidationError);
  });
});

describe('review: clock', () => {
  // BUG 15 (src/clock.ts:38 SystemClock.setTimer): the delay is passed straight to setTimeout. Node caps
  // timers at 2^31-1 ms (~24.8 days): a longer delay fires after 1 ms (TimeoutOverflowWarning). TimerQueue
  // then finds nothing due and re-arms, again 1 ms: a busy loop for as long as a task with an ETA > 24.8
  // days is pending (or with resultsExpireIn > 24.8 days, after every result). The doc comment also says the
  // timers are unref'd but they are not (an expiry timer keeps the process alive for 24 h). Fix:
  // setTimeout(fn, Math.min(Math.max(0, delayMs), 2 ** 31 - 1)) (callers re-arm when early: TimerQueue
  // already does) and `.unref()` as documented.
  it('SystemClock never hands setTimeout a delay above 2^31-1 ms', () => {
    const spy = vi.spyOn(globalThis, 'setTimeout');
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    try {
      const h = systemClock.setTimer(() => undefined, 40 * 24 * 3_600_000);
      systemClock.clearTimer(h);
      const delay = spy.mock.calls.at(-1)?.[1] as number;
      expect(delay).toBeLessThanOrEqual(2 ** 31 - 1);
    } finally {
      spy.mockRestore();
      warn.mockRestore();
    }
  });
});

describe('task context in continuations', () => {
  it('currentTask() works in the continuation of a promise returned by a plain function', async () => {
    const app = new App({ clock: new FakeClock() });
    const seen: string[] = [];
    app.task('plainPromise', () => Promise.resolve().then(() => { seen.push(currentTask().name); return 1; }));
    await app.worker().start();
    expect(await (await app.send(signature('plainPromise'))).get()).toBe(1);
    expect(seen).toEqual(['plainPromise']);
    await app.close();
  });
});

describe('revoking queued tasks', () => {
  it('revoking the still-queued first link of a chain settles the chain handle (no hang)', async () => {
    const { app, clock } = setup();
    app.task('a', () => 1);
    app.task('b', (x: number) => x + 1);
    const first = signature('a');
    const r = await app.send(chain(first, signature('b')));
    await app.result(first.id).revoke();
    await app.worker().start();
    const got = r.get({ timeout: 1_000 }).catch((e: unknown) => e);
    await clock.advance(1_000);
    const err = await got;
    expect(err).not.toBeInstanceOf(TimeoutError);
    expect(MillwrightError.is(err) && ['ERR_REVOKED', 'ERR_TASK_FAILED'].includes(err.code)).toBe(true);
  });

  it('revoking a still-queued chord member fails the chord with ChordError (no hang)', async () => {
    const { app, clock } = setup();
    app.task('a', () => 1);
    app.task('cb', (...xs: number[]) => xs);
    const m = signature('a');
    const r = await app.send(chord([m, signature('a')], signature('cb')));
    await app.result(m.id).revoke();
    await app.worker().start();
    const got = r.get({ timeout: 1_000 }).catch((e: unknown) => e);
    await clock.advance(1_000);
    expect(await got).toBeInstanceOf(ChordError);
  });

  it('a REVOKED state expires after resultsExpireIn like any other final state', async () => {
    const { app, clock } = setup({ resultsExpireIn: 10_000 });
    app.task('a', () => 'ran');
    const r = await app.send(signature('a', [], { id: 'job-1' }));
    await r.revoke();
    expect((await r.state()).state).toBe('REVOKED');
    await clock.advance(20_000);
    expect((await r.state()).state).toBe('PENDING');
  });

});

/** A FakeClock whose every read is 1 ms later than the one before (as a busy real clock can be). */
class TickingClock extends FakeClock {
  #ticks = 0;
  override now(): number {
    return super.now() + this.#ticks++;
  }
}

describe('review of the per-task path and the broker split', () => {
  // BUG (src/worker.ts constructor, fa1a65c): the worker's outcome context reads the clock through a `now`
  // getter, and src/outcome.ts reads ctx.now once per field (updatedAt, expiresAt, each cascaded record).
  // One outcome then carries several times: expiresAt != updatedAt + resultsExpireIn, and the links a failed
  // link fails get later timestamps than it. Before, one outcome was computed at one instant.
  it('one outcome is computed at one instant, whatever the clock does meanwhile', async () => {
    const clock = new TickingClock(1_000);
    const transport = new MemoryTransport({ clock });
    const app = new App({ clock, transport, resultsExpireIn: 10_000 });
    try {
      app.task('ok', () => 1);
      app.task('boom', () => { throw new PermanentError('no'); });
      await app.worker().start();
      const ok = await app.send(signature('ok'));
      const first = signature('boom');
      const second = signature('ok');
      const third = signature('ok');
      await app.send(chain(first, second, third));
      await clock.advance(0);
      const okRecord = await transport.getState(ok.id);
      expect(okRecord?.state).toBe('SUCCESS');
      expect((okRecord?.expiresAt ?? 0) - (okRecord?.updatedAt ?? 0)).toBe(10_000);
      const records = await Promise.all([first, second, third].map((s) => transport.getState(s.id)));
      expect(records.map((r) => r?.state)).toEqual(['FAILURE', 'FAILURE', 'FAILURE']);
      expect(new Set(records.map((r) => r?.updatedAt)).size).toBe(1);
      expect(new Set(records.map((r) => (r?.expiresAt ?? 0) - (r?.updatedAt ?? 0)))).toEqual(new Set([10_000]));
    } finally {
      await app.close();
    }
  });

  // BUG (transports/memory/broker-core.ts #dropped / #isDropped, 2513d13): a task revoked while queued is
  // marked by id, and the mark is spent by whichever task with that id comes up first. When the REVOKED
  // record has expired, the id may be sent again (SPEC 1.2: only a known, unexpired id is deduplicated): the
  // new task comes up first and is silently dropped, and the revoked one runs later. The old code flagged
  // the queued entry itself.
  it('a task re-sent under the id of an expired revocation runs, and the revoked one does not', async () => {
    const { app, clock } = setup({ resultsExpireIn: 1_000 });
    const runs: string[] = [];
    app.task('a', (tag: string) => { runs.push(tag); return tag; });
    await app.worker().start();
    const revoked = await app.send(signature('a', ['revoked'], { id: 'job-1', eta: clock.now() + 5_000 }));
    await revoked.revoke();
    await clock.advance(2_000); // the REVOKED record (and the revocation) expired
    const again = await app.send(signature('a', ['again'], { id: 'job-1' }));
    await clock.advance(0);
    expect(runs).toEqual(['again']);
    expect(await again.get()).toBe('again');
    await clock.advance(5_000); // the revoked one's ETA
    expect(runs).toEqual(['again']);
  });

  // BUG (transports/memory/broker-core.ts revoke()): a task revoked while it waited for a retry got a
  // REVOKED record and its id in the revoked set, and was dropped only when the retry came up. The record
  // expires after resultsExpireIn, and with it the revocation: a retry due later ran after all. Its workflow
  // (the links after it) also stayed pending until that ETA. Now the waiting retry is taken out at once.
  it('a task revoked while it waits for a retry never runs again, even once the revocation expired', async () => {
    const { app, clock } = setup({ resultsExpireIn: 1_000 });
    let attempts = 0;
    app.task('flaky', () => { attempts++; throw new Error('not yet'); }, { retries: 1, backoff: { type: 'fixed', delay: 5_000 } });
    app.task('next', (x: unknown) => x);
    await app.worker().start();
    const link = signature('flaky');
    const r = await app.send(chain(link, signature('next')));
    await clock.advance(0);
    expect(attempts).toBe(1);
    expect((await app.result(link.id).state()).state).toBe('RETRY');
    await app.result(link.id).revoke();
    expect((await app.result(link.id).state()).state).toBe('REVOKED');
    expect((await r.state()).state).toBe('FAILURE'); // at once, not at the retry's ETA
    await expect(r.get()).rejects.toBeInstanceOf(TaskFailedError);
    await clock.advance(10_000); // past the revocation's expiry and the retry's ETA
    expect(attempts).toBe(1);
  });

  // Same mark, left behind by a journal replay: publish, revoke (delivered, not started), settle replayed
  // through apply() (no delivery to clear the mark), then retain() drops the acked task. The mark stayed
  // forever (a leak) and later dropped a task re-sent under that id.
  it('a revoke replayed from a journal leaves nothing behind that drops a later task with that id', async () => {
    const clock = new FakeClock(1_000);
    const core = new BrokerCore(clock, 1_000);
    const message = (args: unknown[]): TaskMessage => ({
      id: 'job-2', name: 'a', args: packArgs(args), queue: 'q', priority: 0, eta: 0, retries: 0, attempt: 0, createdAt: clock.now(),
    });
    const first = message([1]);
    core.publish({ tasks: [first], chords: [] });
    core.revoke('job-2');
    core.apply(finalFailure(first, 1, 'REVOKED', { code: 'ERR_REVOKED', name: 'RevokedError', message: 'revoked' }, { now: clock.now(), resultsExpireIn: 1_000, rng: () => 0 }));
    core.retain((m) => m !== first);
    await clock.advance(2_000);
    const got: Delivery[] = [];
    core.consume({ queues: ['q'], prefetch: 10, names: null }, { deliver: (d) => got.push(d), revoked: () => undefined });
    const second = message([2]);
    core.publish({ tasks: [second], chords: [] });
    await clock.advance(0);
    expect(got.map((d) => d.message)).toEqual([second]);
    core.close();
  });
});

describe('review of revocations and snapshots', () => {
  // BUG (transports/memory/broker-core.ts snapshot()): a task revoked while it ran was left out of a snapshot
  // (by its revocation) while its state was still STARTED. Should its worker die after that compaction, the
  // broker fails it REVOKED when it comes back, but that decision is not journaled: after a restart from the
  // snapshot, the task was gone, its state STARTED for good, its workflow pending. It stays in the snapshot now
  // and is failed when it comes up after the restart, as before the restart.
  it('a task revoked while running stays in a snapshot and ends REVOKED after a restart from it', async () => {
    const clock = new FakeClock(1_000);
    const core = new BrokerCore(clock, 60_000);
    const task: TaskMessage = { id: 'running', name: 'a', args: packArgs([]), queue: 'q', priority: 0, eta: 0, retries: 0, attempt: 0, createdAt: clock.now() };
    const held: Delivery[] = [];
    core.consume({ queues: ['q'], prefetch: 1, names: null }, { deliver: (d) => held.push(d), revoked: () => undefined });
    core.publish({ tasks: [task], chords: [] });
    await clock.advance(0);
    expect(held.map((d) => d.message.id)).toEqual(['running']);
    core.setState({ id: 'running', name: 'a', state: 'STARTED', attempts: 1, createdAt: 1_000, updatedAt: 1_000 });
    core.revoke('running');
    const snapshot = core.snapshot(); // a compaction while the worker still holds it
    core.close();
    const restarted = new BrokerCore(clock, 60_000);
    restarted.load(snapshot);
    const got: Delivery[] = [];
    restarted.consume({ queues: ['q'], prefetch: 1, names: null }, { deliver: (d) => got.push(d), revoked: () => undefined });
    await clock.advance(0);
    expect(got).toEqual([]);
    expect(restarted.getState('running')?.state).toBe('REVOKED');
    restarted.close();
  });

  // BUG (transports/memory/broker-core.ts snapshot(), also before the split): a snapshot leaves out revoked
  // tasks by the revocation record only. Once that record expired, a task revoked while delayed (or queued
  // with no consumer) is written into the snapshot, and after a restart from it the revoked task runs.
  it('a snapshot leaves out a task revoked while queued, even after its revocation expired', async () => {
    const clock = new FakeClock(1_000);
    const core = new BrokerCore(clock, 1_000);
    const message = (id: string, eta: number): TaskMessage => ({
      id, name: 'a', args: packArgs([]), queue: 'q', priority: 0, eta, retries: 0, attempt: 0, createdAt: clock.now(),
    });
    core.publish({ tasks: [message('delayed', 60_000), message('ready', 0), message('kept', 0)], chords: [] });
    core.revoke('delayed');
    core.revoke('ready');
    await clock.advance(2_000);
    expect(core.snapshot().tasks.map((m) => m.id)).toEqual(['kept']);
    core.close();
  });
});

describe('review: revoking tasks that already have a record', () => {
  // BUG (transports/memory/broker-core.ts revoke(), before and after the split): a task revoked while it
  // waits for a retry (state RETRY) gets only its own REVOKED record; its retry is dropped when due, and the
  // later links of its chain never get a final state: the chain's handle waits forever.
  it('revoking a chain link that waits for a retry settles the chain handle', async () => {
    const { app, clock } = setup();
    let runs = 0;
    app.task('flaky', () => { runs++; throw new Error('again'); }, { retries: 3, backoff: { type: 'fixed', delay: 10_000 } });
    app.task('b', () => 'b');
    await app.worker().start();
    const first = signature('flaky');
    const r = await app.send(chain(first, signature('b')));
    await clock.advance(0);
    expect((await app.result(first.id).state()).state).toBe('RETRY');
    await app.result(first.id).revoke();
    const got = r.get({ timeout: 60_000 }).catch((e: unknown) => e);
    await clock.advance(60_000);
    const err = await got;
    expect(runs).toBe(1);
    expect(err).not.toBeInstanceOf(TimeoutError);
    expect(MillwrightError.is(err) && ['ERR_REVOKED', 'ERR_TASK_FAILED'].includes(err.code)).toBe(true);
  });

  // Same for a task whose worker went away after STARTED (back in the queue): revoke() wrote nothing at all
  // (it took STARTED for running), the task was dropped when it came up, and stayed STARTED forever.
  it('revoking a started task that went back to the queue ends it REVOKED and fails its chain', async () => {
    const clock = new FakeClock(1_000);
    const core = new BrokerCore(clock, 60_000);
    const message = (id: string, extra: Partial<TaskMessage> = {}): TaskMessage => ({
      id, name: 'a', args: packArgs([]), queue: 'q', priority: 0, eta: 0, retries: 0, attempt: 0, createdAt: clock.now(), ...extra,
    });
    const next = message('next');
    core.publish({ tasks: [message('t', { onSuccess: { tasks: [next], chords: [] } })], chords: [] });
    const got: Delivery[] = [];
    const handler = { deliver: (d: Delivery): void => { got.push(d); }, revoked: () => undefined };
    const dead = core.consume({ queues: ['q'], prefetch: 1, names: null }, handler);
    await clock.advance(0);
    core.setState({ id: 't', name: 'a', state: 'STARTED', attempts: 1, createdAt: 1_000, updatedAt: 1_000 });
    core.cancel(dead);
    core.revoke('t');
    core.consume({ queues: ['q'], prefetch: 1, names: null }, handler);
    await clock.advance(0);
    expect(got).toHaveLength(1);
    expect(core.getState('t')?.state).toBe('REVOKED');
    expect(core.getState('next')?.state).toBe('FAILURE');
    core.close();
  });
});

describe('review of diagnostics channels', () => {
  // BUG (src/worker.ts #tell, 3f511c5): the channel is published after emit() in the same try block, so a
  // 'task:succeeded' listener that throws (reported, see 'review: worker') keeps the event from every
  // diagnostics subscriber: metrics built on the channels miss it.
  it('a throwing worker event listener does not keep the event from diagnostics subscribers', async () => {
    const { app, clock } = setup();
    app.task('a', () => 1);
    const seen: unknown[] = [];
    const onSucceeded = (m: unknown): void => { seen.push(m); };
    subscribe('millwright:task:succeeded', onSucceeded);
    try {
      const worker = app.worker();
      worker.on('task:succeeded', () => { throw new Error('listener broke'); });
      worker.on('error', () => undefined);
      await worker.start();
      const r = await app.send(signature('a'));
      await clock.advance(0);
      expect(await r.get()).toBe(1);
      expect(seen).toEqual([{ id: r.id, name: 'a', attempt: 1, result: 1 }]);
    } finally {
      unsubscribe('millwright:task:succeeded', onSucceeded);
    }
  });
});

describe('review: signature options and task headers', () => {
  it('rejects signature options with an own __proto__ key (Object.assign would set the prototype)', () => {
    const options = JSON.parse('{"__proto__": {"queue": "elsewhere"}, "retries": 1}') as SignatureOptions;
    expect(() => signature('t', [], options)).toThrow(ValidationError);
  });

  it('a task changing currentTask().headers does not change the queued message (a redelivery sees the original)', async () => {
    const { app, clock } = setup();
    const seen: string[] = [];
    const t = app.task('h', () => {
      const headers = currentTask().headers as Record<string, string>;
      seen.push(headers['trace'] ?? 'none');
      headers['trace'] = 'changed';
      throw new Error('again');
    }, { retries: 1, backoff: { type: 'fixed', delay: 5 } });
    await app.worker().start();
    const r = await app.send(t.with({ headers: { trace: 'abc' } }));
    await clock.advance(5);
    await expect(r.get()).rejects.toThrow('again');
    expect(seen).toEqual(['abc', 'abc']);
  });
});

describe('review: ids, names and queues are well-formed strings', () => {
  it('a lone surrogate in an id, a name or a queue is refused at send time (UTF-8 on a wire would turn it into U+FFFD)', async () => {
    const { app } = setup();
    const t = app.task('t', () => 1);
    await expect(app.send(t.with({ id: 'job-\ud800' }))).rejects.toThrow(/well-formed/);
    await expect(app.send(t.with({ queue: 'q\udc00' }))).rejects.toThrow(/well-formed/);
    await expect(app.send(signature('n\ud800'))).rejects.toThrow(/well-formed/);
    await expect(app.send(t.with({ id: 'job-\ud83d\ude00' }))).resolves.toBeDefined();
  });
});
