import { afterEach, describe, expect, it } from 'vitest';
import { App, FakeClock, MemoryTransport, ValidationError } from '../../src/index.js';

const apps: App[] = [];
afterEach(async () => { await Promise.all(apps.splice(0).map((a) => a.close())); });

describe('periodic schedules', () => {
  it('ticks fire as the FakeClock advances, each a fresh copy of the signature', async () => {
    const clock = new FakeClock(Date.parse('2026-01-01T00:00:00Z'));
    const app = new App({ clock });
    apps.push(app);
    const runs: Array<[string, string]> = [];
    const report = app.task('report', (kind: string) => { runs.push([kind, new Date(clock.now()).toISOString()]); });
    await app.worker().start();
    app.schedule('quarterly', '*/15 * * * *', report.s('q'));
    await clock.advance(60 * 60 * 1000);
    expect(runs.map((r) => r[1])).toEqual(['2026-01-01T00:15:00.000Z', '2026-01-01T00:30:00.000Z', '2026-01-01T00:45:00.000Z', '2026-01-01T01:00:00.000Z']);
    expect(app.unschedule('quarterly')).toBe(true);
    await clock.advance(60 * 60 * 1000);
    expect(runs).toHaveLength(4);
  });

  it('many apps registering one schedule on one transport: each tick runs once', async () => {
    const clock = new FakeClock(Date.parse('2026-01-01T00:00:00Z'));
    const transport = new MemoryTransport({ clock });
    let runs = 0;
    for (let i = 0; i < 3; i++) {
      const app = new App({ clock, transport });
      apps.push(app);
      const tick = app.task('tick', () => { runs++; });
      app.schedule('every-minute', '* * * * *', tick.s());
      await app.worker().start();
    }
    await clock.advance(10 * 60 * 1000);
    expect(runs).toBe(10);
  });

  it('an invalid expression is a ValidationError naming the field', () => {
    const app = new App({ clock: new FakeClock() });
    apps.push(app);
    const t = app.task('t', () => undefined);
    expect(() => app.schedule('bad', '0 25 * * *', t.s())).toThrow(ValidationError);
    expect(() => app.schedule('bad', '0 25 * * *', t.s())).toThrow(/`hour`/);
  });
});
