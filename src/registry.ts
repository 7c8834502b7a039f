/** The task registry of an app: names to inline functions or module exports. */
import { DuplicateTaskError, ValidationError } from './errors.js';
import type { RateLimit } from './rate-limit.js';
import type { TaskDefaults } from './workflow.js';

/** Per-task defaults; a signature's own fields win. */
export interface TaskOptions extends TaskDefaults {
  /** At most `max` starts of this task per `per` ms, per worker. */
  readonly rateLimit?: RateLimit;
}

/** A task that runs on a worker's thread pool: an export of an ESM module. */
export interface ModuleTaskSpec {
  /** The module: a `file:` URL or a path. */
  readonly module: string | URL;
  /** The export to call. Default: the task's name. */
  readonly export?: string;
}

export type TaskFn = (...args: never[]) => unknown;

export type TaskDef =
  | { readonly kind: 'inline'; readonly name: string; readonly fn: (...args: unknown[]) => unknown; readonly options: TaskOptions }
  | { readonly kind: 'module'; readonly name: string; readonly module: string; readonly exportName: string; readonly options: TaskOptions };

export class Registry {
  readonly #tasks = new Map<string, TaskDef>();

  add(name: string, impl: TaskFn | ModuleTaskSpec, options: TaskOptions): TaskDef {
    if (typeof name !== 'string' || name === '') throw new ValidationError(`Expected a task name (a non-empty string), got ${String(name)}`, 'name');
    if (this.#tasks.has(name)) throw new DuplicateTaskError(name);
    let def: TaskDef;
    if (typeof impl === 'function') def = { kind: 'inline', name, fn: impl as (...args: unknown[]) => unknown, options };
    else if (typeof impl === 'object' && impl !== null && (typeof impl.module === 'string' || impl.module instanceof URL)) {
      def = { kind: 'module', name, module: String(impl.module), exportName: impl.export ?? name, options };
    } else throw new ValidationError(`Expected task "${name}" to be a function or { module, export }, got ${typeof impl}`, 'task');
    this.#tasks.set(name, def);
    return def;
  }

  get(name: string): TaskDef | undefined {
    return this.#tasks.get(name);
  }

  names(): string[] {
    return [...this.#tasks.keys()];
  }
}
