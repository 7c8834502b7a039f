/**
 * Cron expressions: standard 5 fields (minute hour day-of-month month
 * day-of-week) with `*`, lists, ranges, steps and names, an optional leading
 * seconds field, evaluated in a time zone through `Intl` (UTC by default).
 * As in Vixie cron, when both day fields are restricted a day matching
 * either one matches.
 */
import { ValidationError } from './errors.js';

interface FieldSpec {
  readonly name: string;
  readonly min: number;
  readonly max: number;
  readonly names?: readonly string[];
}

const SECOND: FieldSpec = { name: 'second', min: 0, max: 59 };
const FIELDS: readonly FieldSpec[] = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day-of-month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12, names: ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'] },
  { name: 'day-of-week', min: 0, max: 7, names: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] },
];

/** A parsed expression: the allowed values of each field. */
export interface Cron {
  readonly seconds: ReadonlySet<number>;
  readonly minutes: ReadonlySet<number>;
  readonly hours: ReadonlySet<number>;
  readonly days: ReadonlySet<number>;
  readonly months: ReadonlySet<number>;
  readonly weekdays: ReadonlySet<number>;
  readonly anyDay: boolean;
  readonly anyWeekday: boolean;
  readonly hasSeconds: boolean;
  /** Minute and hour both fixed (no leading `*`): such a job runs once in an hour that DST repeats, as in Vixie cron. */
  readonly fixedTime: boolean;
  readonly tz: string;
}

/** Parses `expression`; throws ValidationError naming the bad field. */
export function parseCron(expression: string, tz = 'UTC'): Cron {
  if (typeof expression !== 'string') throw new ValidationError('Expected a cron expression string', 'expression');
  const parts = expression.trim().split(/\s+/);
  if (parts.length !== 5 && parts.length !== 6) {
    throw new ValidationError(`Invalid cron expression "${expression}": expected 5 fields (minute hour day-of-month month day-of-week) or 6 with leading seconds, got ${parts.length}`, 'expression');
  }
  const hasSeconds = parts.length === 6;
  const specs = hasSeconds ? [SECOND, ...FIELDS] : FIELDS;
  const sets = parts.map((text, i) => parseField(text, specs[i] as FieldSpec, expression));
  const [minutes, hours, days, months, weekdaysRaw] = (hasSeconds ? sets.slice(1) : sets) as Set<number>[];
  const weekdays = new Set([...(weekdaysRaw as Set<number>)].map((d) => d % 7));
  checkZone(tz);
  const dayText = parts[hasSeconds ? 3 : 2] as string;
  const weekdayText = parts[hasSeconds ? 5 : 4] as string;
  const fixedTime = !(parts[hasSeconds ? 1 : 0] as string).startsWith('*') && !(parts[hasSeconds ? 2 : 1] as string).startsWith('*');
  return {
    seconds: hasSeconds ? (sets[0] as Set<number>) : new Set([0]),
    minutes: minutes as Set<number>, hours: hours as Set<number>, days: days as Set<number>, months: months as Set<number>, weekdays,
    anyDay: dayText === '*' || dayText === '?', anyWeekday: weekdayText === '*' || weekdayText === '?', hasSeconds, fixedTime, tz,
  };
}

function parseField(text: string, spec: FieldSpec, expression: string): Set<number> {
  const fail = (why: string): ValidationError => new ValidationError(`Invalid cron expression "${expression}": field \`${spec.name}\` ("${text}"): ${why}`, spec.name);
  const values = new Set<number>();
  for (const item of text.toLowerCase().split(',')) {
    const [range, stepText] = item.split('/') as [string, string | undefined];
    const step = stepText === undefined ? 1 : Number(stepText);
    if (!Number.isInteger(step) || step < 1) throw fail(`step "${stepText ?? ''}" must be an integer >= 1`);
    let lo: number;
    let hi: number;
    if (range === '*' || range === '?') { lo = spec.min; hi = spec.max; } else {
      const [a, b] = range.split('-') as [string, string | undefined];
      lo = value(a, spec, fail);
      hi = b === undefined ? (stepText === undefined ? lo : spec.max) : value(b, spec, fail);
      if (hi < lo) throw fail(`range ${lo}-${hi} runs backwards`);
    }
    for (let v = lo; v <= hi; v += step) values.add(v);
  }
  return values;
}

function value(text: string, spec: FieldSpec, fail: (why: string) => ValidationError): number {
  const named = spec.names?.indexOf(text) ?? -1;
  const v = named >= 0 ? named + (spec.min === 1 ? 1 : 0) : /^\d+$/.test(text) ? Number(text) : NaN;
  if (Number.isNaN(v)) throw fail(`"${text}" is not a number${spec.names === undefined ? '' : ' or a name'}`);
  if (v < spec.min || v > spec.max) throw fail(`${v} is out of range ${spec.min}-${spec.max}`);
  return v;
}

function checkZone(tz: string): void {
  try { new Intl.DateTimeFormat('en-US', { timeZone: tz }); } catch {
    throw new ValidationError(`Unknown time zone "${tz}": use an IANA name such as "Europe/Paris" or "UTC"`, 'tz');
  }
}

interface Wall { month: number; day: number; weekday: number; hour: number; minute: number; second: number }

const formats = new Map<string, Intl.DateTimeFormat>();
const WEEKDAYS: Record<string, number> = { Sun: 0, Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6 };

function wall(ms: number, tz: string): Wall {
  if (tz === 'UTC') {
    const d = new Date(ms);
    return { month: d.getUTCMonth() + 1, day: d.getUTCDate(), weekday: d.getUTCDay(), hour: d.getUTCHours(), minute: d.getUTCMinutes(), second: d.getUTCSeconds() };
  }
  let f = formats.get(tz);
  if (f === undefined) {
    f = new Intl.DateTimeFormat('en-US', { timeZone: tz, hourCycle: 'h23', month: 'numeric', day: 'numeric', weekday: 'short', hour: 'numeric', minute: 'numeric', second: 'numeric' });
    formats.set(tz, f);
  }
  const out: Wall = { month: 0, day: 0, weekday: 0, hour: 0, minute: 0, second: 0 };
  for (const p of f.formatToParts(ms)) {
    if (p.type === 'weekday') out.weekday = WEEKDAYS[p.value] ?? 0;
    else if (p.type === 'month' || p.type === 'day' || p.type === 'hour' || p.type === 'minute' || p.type === 'second') out[p.type] = Number(p.value);
  }
  return out;
}

/** The first time strictly after `afterMs` (epoch ms) that matches, or throws after ~5 years of search. */
export function nextTick(cron: Cron, afterMs: number): number {
  const unit = cron.hasSeconds ? 1000 : 60_000;
  let t = Math.floor(afterMs / unit) * unit + unit;
  for (let i = 0; i < 200_000; i++) {
    const w = wall(t, cron.tz);
    const sinceMidnight = ((w.hour * 60 + w.minute) * 60 + w.second) * 1000;
    if (!cron.months.has(w.month) || !dayMatches(cron, w)) {
      // Towards the next local midnight, stopping short of it by DST_MARGIN first: on a day that DST shortens,
      // 24 h less the wall time since midnight overshoots midnight (and skipped a tick at 00:00 of the next day).
      const toMidnight = 86_400_000 - sinceMidnight;
      t += toMidnight > DST_MARGIN ? toMidnight - DST_MARGIN : toMidnight;
      continue;
    }
    if (!cron.hours.has(w.hour)) { t += 3_600_000 - (w.minute * 60 + w.second) * 1000; continue; }
    if (!cron.minutes.has(w.minute)) { t += 60_000 - w.second * 1000; continue; }
    if (!cron.seconds.has(w.second)) { t += 1000; continue; }
    if (cron.fixedTime && repeated(t, w, cron.tz)) { t += unit; continue; }
    return t;
  }
  throw new ValidationError('This cron expression never matches (e.g. 31 February)', 'expression');
}

/** More than any DST shift (at most 2 h, Antarctica/Troll). */
const DST_MARGIN = 3 * 3_600_000;
/** The DST shifts in use (30 min: Lord Howe Island; 2 h: Antarctica/Troll). */
const DST_SHIFTS = [1_800_000, 3_600_000, 7_200_000] as const;

/** True when wall time `w` (at `t`) already came earlier that night: the second pass of an hour DST repeats. */
function repeated(t: number, w: Wall, tz: string): boolean {
  if (tz === 'UTC') return false;
  for (const shift of DST_SHIFTS) {
    const e = wall(t - shift, tz);
    if (e.day === w.day && e.hour === w.hour && e.minute === w.minute && e.second === w.second) return true;
  }
  return false;
}

function dayMatches(cron: Cron, w: Wall): boolean {
  const dom = cron.days.has(w.day);
  const dow = cron.weekdays.has(w.weekday);
  if (cron.anyDay) return dow;
  if (cron.anyWeekday) return dom;
  return dom || dow;
}
