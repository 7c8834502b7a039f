/**
 * Option validation at the facades (App, Worker, ThreadPool, BrokerServer,
 * TcpTransport): a table of rules, checked once, then the resolved options
 * are frozen and the engines behind trust them.
 */
import { ValidationError } from './errors.js';

/** One rule: a predicate and what it expects, for the message. */
export interface Rule {
  readonly expect: string;
  readonly test: (value: unknown) => boolean;
}

export const rules = {
  int: (min: number, max = Number.MAX_SAFE_INTEGER): Rule => ({
    expect: max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer in ${min}..${max}`,
    test: (v) => Number.isInteger(v) && (v as number) >= min && (v as number) <= max,
  }),
  number: (min: number): Rule => ({ expect: `a finite number >= ${min}`, test: (v) => typeof v === 'number' && Number.isFinite(v) && v >= min }),
  string: { expect: 'a non-empty string', test: (v: unknown) => typeof v === 'string' && v.length > 0 } as Rule,
  boolean: { expect: 'a boolean', test: (v: unknown) => typeof v === 'boolean' } as Rule,
  stringArray: { expect: 'a non-empty array of non-empty strings', test: (v: unknown) => Array.isArray(v) && v.length > 0 && v.every((s) => typeof s === 'string' && s.length > 0) } as Rule,
  object: { expect: 'an object', test: (v: unknown) => typeof v === 'object' && v !== null } as Rule,
  fn: { expect: 'a function', test: (v: unknown) => typeof v === 'function' } as Rule,
  /** An object with these methods (an injected Transport or Clock), so a wrong one fails here, not as a TypeError later. */
  methods: (what: string, names: readonly string[]): Rule => ({
    expect: `${what} (an object with methods ${names.map((n) => `${n}()`).join(', ')})`,
    test: (v) => typeof v === 'object' && v !== null && names.every((n) => typeof (v as Record<string, unknown>)[n] === 'function'),
  }),
  /** An injected time source: every method the core calls on one. */
  get clock(): Rule {
    return rules.methods('a Clock', ['now', 'setTimer', 'clearTimer', 'track']);
  },
  oneOf: (...values: string[]): Rule => ({ expect: `one of ${values.map((v) => `"${v}"`).join(', ')}`, test: (v) => typeof v === 'string' && values.includes(v) }),
};

/**
 * Checks every present option against its rule; unknown keys are rejected too.
 * @throws ValidationError "Expected `concurrency` to be an integer >= 1, got `0` (number)"
 */
export function checkOptions(where: string, options: object, table: Readonly<Record<string, Rule>>): void {
  if (typeof options !== 'object' || options === null) throw new ValidationError(`Expected ${where} options to be an object, got ${describe(options)}`);
  for (const [key, value] of Object.entries(options)) {
    const rule = table[key];
    if (rule === undefined) throw new ValidationError(`Unknown ${where} option \`${key}\`: expected one of ${Object.keys(table).map((k) => `\`${k}\``).join(', ')}`, key);
    if (value !== undefined && !rule.test(value)) throw new ValidationError(`Expected \`${key}\` to be ${rule.expect}, got ${describe(value)}`, key);
  }
}

export function describe(value: unknown): string {
  let text: string;
  try { text = typeof value === 'string' ? value : JSON.stringify(value) ?? String(value); } catch { text = String(value); }
  if (text.length > 60) text = `${text.slice(0, 57)}...`;
  return `\`${text}\` (${value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value})`;
}

/** A finite number of ms >= 0 (a timeout, a delay). */
export function isDelay(ms: unknown): ms is number {
  return typeof ms === 'number' && Number.isFinite(ms) && ms >= 0;
}

export function badTimeout(where: string, value: unknown): ValidationError {
  return new ValidationError(`Expected the \`timeout\` of ${where} to be a finite number of ms >= 0, got ${String(value)}`, 'timeout');
}
