import { describe, expect, it } from 'vitest';
import { nextTick, parseCron } from '../../src/cron.js';
import { ValidationError } from '../../src/errors.js';

const at = (iso: string): number => Date.parse(iso);
const iso = (ms: number): string => new Date(ms).toISOString();
function ticks(expr: string, from: string, n: number, tz?: string): string[] {
  const cron = parseCron(expr, tz);
  const out: string[] = [];
  let t = at(from);
  for (let i = 0; i < n; i++) { t = nextTick(cron, t); out.push(iso(t)); }
  return out;
}

describe('cron', () => {
  it('steps, ranges, lists and names', () => {
    expect(ticks('*/15 * * * *', '2026-01-01T00:00:00Z', 3)).toEqual(['2026-01-01T00:15:00.000Z', '2026-01-01T00:30:00.000Z', '2026-01-01T00:45:00.000Z']);
    expect(ticks('0 9-10 * * mon-fri', '2026-01-02T09:30:00Z', 3)).toEqual(['2026-01-02T10:00:00.000Z', '2026-01-05T09:00:00.000Z', '2026-01-05T10:00:00.000Z']);
    expect(ticks('30 4 1,15 jan,jul *', '2026-01-10T00:00:00Z', 3)).toEqual(['2026-01-15T04:30:00.000Z', '2026-07-01T04:30:00.000Z', '2026-07-15T04:30:00.000Z']);
    expect(ticks('0 0 * * 7', '2026-01-01T00:00:00Z', 1)).toEqual(['2026-01-04T00:00:00.000Z']);
  });
  it('a leading seconds field', () => {
    expect(ticks('*/20 * * * * *', '2026-01-01T00:00:00Z', 3)).toEqual(['2026-01-01T00:00:20.000Z', '2026-01-01T00:00:40.000Z', '2026-01-01T00:01:00.000Z']);
  });
  it('day-of-month and day-of-week both restricted match either', () => {
    expect(ticks('0 0 13 * fri', '2026-02-01T00:00:00Z', 3)).toEqual(['2026-02-06T00:00:00.000Z', '2026-02-13T00:00:00.000Z', '2026-02-20T00:00:00.000Z']);
  });
  it('time zones through Intl, across DST', () => {
    expect(ticks('0 3 * * *', '2026-01-01T00:00:00Z', 1, 'Europe/Paris')).toEqual(['2026-01-01T02:00:00.000Z']);
    expect(ticks('0 3 * * *', '2026-07-01T00:00:00Z', 1, 'Europe/Paris')).toEqual(['2026-07-01T01:00:00.000Z']);
    expect(ticks('0 12 * * *', '2026-03-28T12:00:00Z', 2, 'Europe/Paris')).toEqual(['2026-03-29T10:00:00.000Z', '2026-03-30T10:00:00.000Z']);
  });
  it('invalid expressions name the bad field', () => {
    const field = (expr: string, tz?: string): string | undefined => {
      try { parseCron(expr, tz); } catch (e) { expect(e).toBeInstanceOf(ValidationError); return (e as ValidationError).path; }
      return undefined;
    };
    expect(field('61 * * * *')).toBe('minute');
    expect(field('* 24 * * *')).toBe('hour');
    expect(field('* * 0 * *')).toBe('day-of-month');
    expect(field('* * * foo *')).toBe('month');
    expect(field('* * * * 8')).toBe('day-of-week');
    expect(field('*/0 * * * *')).toBe('minute');
    expect(field('* * *')).toBe('expression');
    expect(field('* * * * *', 'Mars/Olympus')).toBe('tz');
    expect(() => nextTick(parseCron('0 0 31 2 *'), 0)).toThrow(/never matches/);
  });
});
