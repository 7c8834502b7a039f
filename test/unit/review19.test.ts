/**
 * Review 19: configuration edge cases. Apps sharing one MemoryTransport with different clocks, a
 * MemoryTransport given its own clock, and an App given a `transport` or `clock` that is not one.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { App, MemoryTransport } from '../../src/app.js';
import { FakeClock, SystemClock } from '../../src/clock.js';
import { ValidationError } from '../../src/errors.js';

const apps: App[] = [];
afterEach(async () => { await Promise.all(apps.splice(0).map((a) => a.close())); });
const make = (options: ConstructorParameters<typeof App>[0]): App => { const app = new App(options); apps.push(app); return app; };

describe('review 19: clocks of apps sharing a MemoryTransport', () => {
  // BUG (transports/memory/memory-transport.ts connect): the transport silently kept the first app's clock.
  // A FakeClock app joining a real-clock app's transport had its ETAs (fake epoch 0 + 5 s) read by the real
  // clock: the task ran at once. The reverse (a transport given a FakeClock, an App left on the real clock)
  // never ran a task with an ETA however far the FakeClock advanced. Now the second clock is refused.
  it('an App whose clock differs from the one the transport already keeps time by is refused with a ValidationError', async () => {
    const transport = new MemoryTransport();
    make({ transport }); // the real clock: the transport adopts it
    const clock = new FakeClock(0);
    const fake = make({ transport, clock });
    const t = fake.task('t', () => 1);
    await expect(fake.send(t.with({ eta: clock.now() + 5_000 }))).rejects.toThrow(ValidationError);
    await expect(fake.worker().start()).rejects.toThrow(/same `clock`/);
  });

  it('a MemoryTransport given a FakeClock refuses an App left on the real clock', async () => {
    const clock = new FakeClock(1_000);
    const app = make({ transport: new MemoryTransport({ clock }) });
    const t = app.task('t', () => 1);
    await expect(app.send(t.with({ eta: app.clock.now() + 5_000 }))).rejects.toMatchObject({ code: 'ERR_VALIDATION', path: 'clock' });
  });

  it('apps sharing the same clock (or two real clocks) share the transport as before', async () => {
    const clock = new FakeClock(1_000);
    const transport = new MemoryTransport({ clock });
    const producer = make({ transport, clock });
    const consumer = make({ transport, clock });
    const t = producer.task('t', () => 1);
    consumer.task('t', () => 2);
    await consumer.worker().start();
    const r = await producer.send(t.with({ eta: clock.now() + 5_000 }));
    await clock.advance(4_999);
    expect((await r.state()).state).toBe('PENDING');
    await clock.advance(1);
    expect(await r.get()).toBe(2);
    const real = new MemoryTransport();
    const a = make({ transport: real });
    const b = make({ transport: real, clock: new SystemClock() });
    await a.transport.getState('x');
    await expect(b.transport.getState('x')).resolves.toBeUndefined();
    await expect(b.send(b.task('u', () => 1).s())).resolves.toBeDefined();
  });
});

describe('review 19: an injected transport or clock that is not one', () => {
  // BUG (src/app.ts APP_RULES): `transport` and `clock` were only checked to be objects. `transport: {}`
  // threw "this[#transport].connect is not a function" from the constructor; `clock: {}` passed, then the
  // first send rejected with "this[#clock].now is not a function".
  it('new App({ transport: {} }) and new App({ clock: {} }) throw a ValidationError naming the option', () => {
    expect(() => new App({ transport: {} as never })).toThrow(ValidationError);
    expect(() => new App({ transport: {} as never })).toThrow(/`transport` to be a Transport/);
    expect(() => new App({ clock: {} as never })).toThrow(/`clock` to be a Clock/);
    expect(() => new App({ clock: { now: () => 0 } as never })).toThrow(ValidationError);
  });

  it('new MemoryTransport({ clock: {} }) throws a ValidationError', () => {
    expect(() => new MemoryTransport({ clock: {} as never })).toThrow(ValidationError);
  });
});

describe('review 19: worker options', () => {
  // BUG (src/app.ts worker): `prefetch` was checked alone (an integer >= 0), but the consumer asks the
  // transport for concurrency + prefetch deliveries; with prefetch near Number.MAX_SAFE_INTEGER the sum is no
  // safe integer and the TCP broker refuses the consume frame (wire-values int()) after start() was called.
  it('a prefetch whose sum with concurrency is no safe integer is a ValidationError at app.worker()', () => {
    const app = make({ clock: new FakeClock() });
    expect(() => app.worker({ prefetch: Number.MAX_SAFE_INTEGER })).toThrow(ValidationError);
    expect(() => app.worker({ concurrency: Number.MAX_SAFE_INTEGER, prefetch: 1 })).toThrow(/`prefetch`/);
    expect(() => app.worker({ concurrency: 1, prefetch: Number.MAX_SAFE_INTEGER - 1 })).not.toThrow();
  });
});
