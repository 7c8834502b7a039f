/**
 * The CLI's flag parser: each command declares its flags in a table (kind,
 * bounds, placeholder, help); one function parses argv against it and one
 * renders the help from the same table, so the two never disagree.
 * `node:util` parseArgs is not used: its messages ("Unknown option '--x'")
 * do not say what was expected, and every message here must.
 */
import { ValidationError } from '../../src/errors.js';

/** What a flag takes. `address` is `host:port`; `list` is comma-separated. */
export type FlagKind = 'int' | 'string' | 'list' | 'boolean' | 'address';

/** One flag of a command. */
export interface FlagSpec {
  readonly kind: FlagKind;
  /** Placeholder in the help, e.g. `N`. */
  readonly value?: string;
  readonly help: string;
  readonly required?: boolean;
  /** Bounds of an `int` flag (inclusive). */
  readonly min?: number;
  readonly max?: number;
}

/** One command: its positionals and its flag table. */
export interface CommandSpec {
  readonly name: string;
  /** One line for the top-level command list. */
  readonly brief: string;
  readonly summary: string;
  /** Positionals in the usage line, e.g. `NAME [ARGS_JSON]`. */
  readonly usage?: string;
  readonly positionals?: { readonly min: number; readonly max: number };
  readonly flags: Readonly<Record<string, FlagSpec>>;
  /** Example lines shown at the end of the help. */
  readonly examples?: readonly string[];
}

/** Bad command line: the CLI prints the message and a hint to `--help`, and exits 2. */
export class UsageError extends ValidationError {
  /** The command whose help the hint names; undefined for the top level. */
  readonly command: string | undefined;
  constructor(message: string, command?: string) {
    super(message);
    this.command = command;
  }
}

/** A `host:port` pair. */
export interface Address { readonly host: string; readonly port: number }

type FlagValue = number | string | readonly string[] | boolean | Address;

/** The parsed command line of one command, read through typed getters. */
export class ParsedArgs {
  readonly #values: ReadonlyMap<string, FlagValue>;
  readonly positionals: readonly string[];
  readonly help: boolean;

  constructor(values: ReadonlyMap<string, FlagValue>, positionals: readonly string[], help: boolean) {
    this.#values = values;
    this.positionals = positionals;
    this.help = help;
  }

  int(name: string): number | undefined { return this.#values.get(name) as number | undefined; }
  string(name: string): string | undefined { return this.#values.get(name) as string | undefined; }
  list(name: string): readonly string[] | undefined { return this.#values.get(name) as readonly string[] | undefined; }
  flag(name: string): boolean { return this.#values.get(name) === true; }
  address(name: string): Address {
    const a = this.#values.get(name) as Address | undefined;
    if (a === undefined) throw new UsageError(`Missing required flag \`--${name}\`: expected host:port`);
    return a;
  }
}

/**
 * Parses `argv` (after the command name) against `spec`. `--flag value` and
 * `--flag=value` both work; `--` ends the flags; `-h`/`--help` anywhere asks
 * for help (and skips the required-flag checks).
 * @throws UsageError naming the flag and what it expects
 */
export function parseArgs(spec: CommandSpec, argv: readonly string[]): ParsedArgs {
  const values = new Map<string, FlagValue>();
  const positionals: string[] = [];
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') { positionals.push(...argv.slice(i + 1)); break; }
    if (arg === '-h' || arg === '--help') { help = true; continue; }
    if (!arg.startsWith('-') || arg === '-' || /^-\d/.test(arg)) { positionals.push(arg); continue; }
    const eq = arg.indexOf('=');
    const name = (eq === -1 ? arg : arg.slice(0, eq)).replace(/^--?/, '');
    const flag = spec.flags[name];
    if (flag === undefined) {
      throw new UsageError(`Unknown flag \`${arg.slice(0, eq === -1 ? undefined : eq)}\` for \`millwright ${spec.name}\`: expected one of ${Object.keys(spec.flags).map((f) => `\`--${f}\``).join(', ')}`, spec.name);
    }
    if (flag.kind === 'boolean') {
      if (eq !== -1) throw new UsageError(`Expected \`--${name}\` to take no value, got \`${arg.slice(eq + 1)}\``, spec.name);
      values.set(name, true);
      continue;
    }
    let raw: string | undefined = eq === -1 ? argv[++i] : arg.slice(eq + 1);
    if (raw === undefined || (eq === -1 && raw.startsWith('--'))) {
      throw new UsageError(`Expected \`--${name}\` to be followed by ${expectation(flag)}, got nothing`, spec.name);
    }
    raw = raw.trim();
    values.set(name, convert(spec.name, name, flag, raw));
  }
  if (!help) checkComplete(spec, values, positionals);
  return new ParsedArgs(values, positionals, help);
}

function checkComplete(spec: CommandSpec, values: ReadonlyMap<string, FlagValue>, positionals: readonly string[]): void {
  for (const [name, flag] of Object.entries(spec.flags)) {
    if (flag.required === true && !values.has(name)) {
      throw new UsageError(`Missing required flag \`--${name}\`: expected ${expectation(flag)} (${flag.help})`, spec.name);
    }
  }
  const { min, max } = spec.positionals ?? { min: 0, max: 0 };
  if (positionals.length > max) {
    throw new UsageError(`Unexpected argument \`${positionals[max] ?? ''}\` for \`millwright ${spec.name}\`: it takes ${max === 0 ? 'no arguments, only flags' : `at most ${max}: ${spec.usage ?? ''}`}`, spec.name);
  }
  if (positionals.length < min) {
    throw new UsageError(`Missing argument for \`millwright ${spec.name}\`: expected ${spec.usage ?? `${min} arguments`}`, spec.name);
  }
}

function expectation(flag: FlagSpec): string {
  switch (flag.kind) {
    case 'int': {
      const min = flag.min ?? 0;
      return flag.max === undefined ? `an integer >= ${min}` : `an integer in ${min}..${flag.max}`;
    }
    case 'address': return 'host:port (e.g. `127.0.0.1:7400`)';
    case 'list': return 'a comma-separated list of names (e.g. `a,b`)';
    case 'string': return `a non-empty value (${flag.value ?? 'text'})`;
    case 'boolean': return 'no value';
  }
}

function convert(command: string, name: string, flag: FlagSpec, raw: string): FlagValue {
  const bad = (): UsageError => new UsageError(`Expected \`--${name}\` to be ${expectation(flag)}, got \`${raw}\``, command);
  switch (flag.kind) {
    case 'int': {
      const n = /^[+-]?\d+$/.test(raw) ? Number(raw) : Number.NaN;
      if (!Number.isSafeInteger(n) || n < (flag.min ?? 0) || (flag.max !== undefined && n > flag.max)) throw bad();
      return n;
    }
    case 'address': {
      const m = /^(.*):(\d{1,5})$/.exec(raw);
      const host = m?.[1]?.replace(/^\[(.*)\]$/, '$1') ?? '';
      const port = Number(m?.[2]);
      if (m === null || host === '' || port < 1 || port > 65535) throw bad();
      return { host, port };
    }
    case 'list': {
      const items = raw.split(',').map((s) => s.trim());
      if (items.some((s) => s === '')) throw bad();
      return items;
    }
    case 'string':
      if (raw === '') throw bad();
      return raw;
    case 'boolean':
      return true;
  }
}

/** The help text of one command, rendered from its table. */
export function commandHelp(spec: CommandSpec): string {
  const flags = Object.entries(spec.flags);
  const width = Math.max(...flags.map(([n, f]) => flagLabel(n, f).length), 10);
  const lines = [
    `Usage: millwright ${spec.name}${spec.usage === undefined ? '' : ` ${spec.usage}`} [flags]`,
    '',
    spec.summary,
    '',
    'Flags:',
    ...flags.map(([n, f]) => `  ${flagLabel(n, f).padEnd(width)}  ${f.help}${f.required === true ? ' (required)' : ''}`),
    `  ${'-h, --help'.padEnd(width)}  show this help`,
  ];
  if (spec.examples !== undefined) lines.push('', 'Examples:', ...spec.examples.map((e) => `  ${e}`));
  return `${lines.join('\n')}\n`;
}

function flagLabel(name: string, flag: FlagSpec): string {
  return flag.kind === 'boolean' ? `--${name}` : `--${name} ${flag.value ?? 'VALUE'}`;
}
