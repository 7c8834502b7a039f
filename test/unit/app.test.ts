import { describe, expect, it } from 'vitest';
import {
  AbortError, App, ClosedError, currentTask, DuplicateTaskError, FakeClock, MemoryTransport, RevokedError, signature, TimeoutError, ValidationError,
} from '../../src/index.js';
import { fakeApps } from '../fixtures/fake-app.js';

const setup = fakeApps();

describe('App', () => {
  it('rejects duplicate task names and bad options with clear errors', () => {
    const { app } = setup();
    app.task('add', (a: number, b: number) => a + b);
    expect(() => app.task('add', () => 0)).toThrow(DuplicateTaskError);
    expect(() => app.worker({ concurrency: 0 })).toThrow('Expected `concurrency` to be an integer >= 1, got `0` (number)');
    expect(() => new App({ defaultQueue: '' })).toThrow(ValidationError);
    expect(() => app.worker({ bogus: 1 } as never)).toThrow(/Unknown worker option `bogus`/);
  });

  it('validates values at send time, naming the path, and enqueues nothing', async () => {
    const { app, clock } = setup();
    const seen: unknown[] = [];
    const t = app.task('t', (...args: unknown[]) => { seen.push(args); });
    await app.worker().start();
    const err = await app.send(signature('t', [1, { user: { fn: () => 1 } }])).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).path).toBe('args[1].user.fn');
    expect((err as ValidationError).code).toBe('ERR_VALIDATION');
    await expect(app.send(signature('t', [], { priority: 1.5 }))).rejects.toThrow(/`priority`/);
    await (await app.send(t.s('ok'))).get();
    await clock.advance(0);
    expect(seen).toEqual([['ok']]);
  });

  it('producer and worker share no object references', async () => {
    const { app } = setup();
    let received: { list: number[] } | undefined;
    app.task('mutate', (arg: { list: number[] }) => { received = arg; arg.list.push(99); return arg; });
    await app.worker().start();
    const arg = { list: [1] };
    const r = await app.send(signature('mutate', [arg]));
    arg.list.push(2);
    const result = await r.get();
    expect(received).toEqual({ list: [1, 99] });
    expect(result).toEqual({ list: [1, 99] });
    expect(result).not.toBe(received);
    expect(arg.list).toEqual([1, 2]);
  });

  it('Uint8Array args and results round-trip byte-exact', async () => {
    const { app } = setup();
    const rev = app.task('rev', (b: Uint8Array) => b.slice().reverse());
    await app.worker().start();
    const bytes = new Uint8Array([0, 1, 2, 250, 255]);
    const out = await (await app.send(rev.s(bytes))).get();
    expect(out).toBeInstanceOf(Uint8Array);
    expect([...out]).toEqual([255, 250, 2, 1, 0]);
  });

  it('a result that is not a value fails the task clearly', async () => {
    const { app } = setup();
    app.task('bad', () => new Map());
    await app.worker().start();
    await expect((await app.send(signature('bad'))).get()).rejects.toThrow(/returned something that is not a value/);
  });

  it('send with an existing id is idempotent', async () => {
    const { app } = setup();
    let runs = 0;
    app.task('once', () => ++runs);
    await app.worker().start();
    const sig = signature('once', [], { id: 'order-42' });
    const r1 = await app.send(sig);
    expect(await r1.get()).toBe(1);
    const r2 = await app.send(sig);
    expect(r2.id).toBe('order-42');
    expect(await r2.get()).toBe(1);
    expect(runs).toBe(1);
  });

  it('results expire after resultsExpireIn; then the id may run again', async () => {
    const { app, clock } = setup({ resultsExpireIn: 60_000 });
    let runs = 0;
    app.task('count', () => ++runs);
    await app.worker().start();
    const sig = signature('count', [], { id: 'job-1' });
    expect(await (await app.send(sig)).get()).toBe(1);
    await clock.advance(59_999);
    expect((await app.result('job-1').state()).state).toBe('SUCCESS');
    await clock.advance(1);
    expect((await app.result('job-1').state()).state).toBe('PENDING');
    expect(await (await app.send(sig)).get()).toBe(2);
  });

  it('records finished in the same millisecond expire together, each at its own time (also with resultsExpireIn 0)', async () => {
    for (const ttl of [1_000, 0]) {
      const { app, clock } = setup({ resultsExpireIn: ttl });
      app.task('t', (x: number) => x);
      await app.worker().start();
      const same = await Promise.all([1, 2, 3].map(async (i) => (await app.send(signature('t', [i]))).id));
      await clock.advance(0); // the three finish at one instant
      await clock.advance(10);
      const later = (await app.send(signature('t', [4]))).id;
      await clock.advance(0);
      const states = async (ids: string[]): Promise<string[]> => Promise.all(ids.map(async (id) => (await app.result(id).state()).state));
      if (ttl > 0) {
        expect(await states([...same, later])).toEqual(['SUCCESS', 'SUCCESS', 'SUCCESS', 'SUCCESS']);
        await clock.advance(ttl - 10);
      }
      expect(await states(same)).toEqual(['PENDING', 'PENDING', 'PENDING']); // expired (unknown reads as PENDING)
      if (ttl > 0) expect(await states([later])).toEqual(['SUCCESS']);
      await clock.advance(10);
      expect(await states([later])).toEqual(['PENDING']);
    }
  });

  it('get() honours timeout (on the app clock) and signal', async () => {
    const { app, clock } = setup();
    const r = await app.send(signature('nobody-runs-this'));
    const pending = r.get({ timeout: 5_000 });
    const settled = pending.catch((e: unknown) => e);
    await clock.advance(5_000);
    const err = await settled;
    expect(err).toBeInstanceOf(TimeoutError);
    expect((err as TimeoutError).code).toBe('ERR_TIMEOUT');
    const controller = new AbortController();
    const aborted = r.get({ signal: controller.signal }).catch((e: unknown) => e);
    controller.abort();
    expect(await aborted).toBeInstanceOf(AbortError);
  });

  it('state() reports PENDING, STARTED and SUCCESS with attempts and times', async () => {
    const { app, clock } = setup();
    let release!: () => void;
    const t = app.task('slow', () => new Promise<string>((resolve) => { release = () => resolve('ok'); }));
    const r = await app.send(t.s());
    expect((await r.state()).state).toBe('PENDING');
    await app.worker().start();
    await clock.advance(0);
    expect((await r.state()).state).toBe('STARTED');
    release();
    await r.get();
    const s = await r.state();
    expect(s).toMatchObject({ id: r.id, name: 'slow', state: 'SUCCESS', result: 'ok', attempts: 1, createdAt: 1_000 });
  });

  it('revoke: a pending task never runs; a running task sees its signal fire; get() rejects with RevokedError', async () => {
    const { app, clock } = setup();
    let ran = 0;
    const seen: unknown[] = [];
    app.task('never', () => { ran++; });
    app.task('long', () => new Promise((_, reject) => {
      const { signal } = currentTask();
      signal.addEventListener('abort', () => { seen.push(signal.reason); reject(signal.reason); });
    }));
    const pending = await app.send(signature('never'));
    await pending.revoke();
    const w = app.worker();
    await w.start();
    const running = await app.send(signature('long'));
    await clock.advance(0);
    expect((await running.state()).state).toBe('STARTED');
    await running.revoke();
    await expect(running.get()).rejects.toBeInstanceOf(RevokedError);
    await expect(pending.get()).rejects.toThrow(RevokedError);
    expect((await pending.state()).state).toBe('REVOKED');
    expect(seen[0]).toBeInstanceOf(RevokedError);
    expect(ran).toBe(0);
  });

  it('progress() values reach r.progress in order, ending at the final state', async () => {
    const { app, clock } = setup();
    let go!: () => void;
    const gate = new Promise<void>((r) => { go = r; });
    const t = app.task('steps', async () => {
      await gate;
      const { progress } = currentTask();
      progress(0.25); progress({ stage: 'half' }); progress(1);
      return 'done';
    });
    await app.worker().start();
    const r = await app.send(t.s());
    const values: unknown[] = [];
    const reading = (async () => { for await (const v of r.progress) values.push(v); })();
    await clock.advance(0);
    go();
    await reading;
    expect(values).toEqual([0.25, { stage: 'half' }, 1]);
    expect(await r.get()).toBe('done');
  });

  it('currentTask() works in plain functions and across awaits of async functions', async () => {
    const { app } = setup();
    const seen: string[] = [];
    app.task('plain', () => { seen.push(`plain:${currentTask().name}`); });
    app.task('awaits', async () => {
      await Promise.resolve();
      await new Promise<void>((r) => setImmediate(r));
      seen.push(`awaits:${currentTask().name}:${currentTask().attempt}`);
    });
    await app.worker().start();
    await (await app.send(signature('plain'))).get();
    await (await app.send(signature('awaits'))).get();
    expect(seen).toEqual(['plain:plain', 'awaits:awaits:1']);
    expect(() => currentTask()).toThrow(/outside a running task/);
  });

  it('close() stops workers and makes the app refuse new work', async () => {
    const { app } = setup();
    app.task('t', () => 1);
    await app.worker().start();
    await app.close();
    expect(() => app.task('u', () => 1)).toThrow(ClosedError);
    await expect(app.send(signature('t'))).rejects.toBeInstanceOf(ClosedError);
  });

  it('send rejects (does not throw) when a transport throws from publish instead of rejecting', async () => {
    const transport = new MemoryTransport();
    const app = new App({ transport });
    transport.publish = () => { throw new Error('publish broke'); };
    const t = app.task('t', () => 1);
    let sent: Promise<unknown> | undefined;
    expect(() => { sent = app.send(t.s()); }).not.toThrow();
    await expect(sent).rejects.toThrow(/publish broke/);
    await app.close();
  });

  it('reading r.progress of a handle after its app closed ends at once (or fails with ClosedError), never hangs', async () => {
    const app = new App();
    const t = app.task('t', () => 1);
    const r = await app.send(t.s());
    await app.close();
    const seen: unknown[] = [];
    const outcome = await (async () => {
      for await (const v of r.progress) seen.push(v);
      return 'ended';
    })().catch((err: unknown) => err);
    expect(outcome === 'ended' || outcome instanceof ClosedError).toBe(true);
    expect(seen).toEqual([]);
  });

  it('get() rejects when reading the stored state fails, whatever the transport rejects with', async () => {
    const transport = new MemoryTransport();
    const app = new App({ transport });
    const t = app.task('t', () => 1);
    const r = await app.send(t.s()); // no worker: it stays queued, only the read can settle get()
    transport.peekState = () => null; // as a remote store: get() reads the state with getState
    transport.getState = () => Promise.reject(new Error('store down'));
    await expect(r.get()).rejects.toThrow('store down');
    transport.getState = () => Promise.reject('just a string');
    await expect(r.get()).rejects.toThrow(/Reading the state of task .* failed: just a string/);
    await app.close();
  });
});
