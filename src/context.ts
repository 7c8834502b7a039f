/**
 * The task context: what `currentTask()` returns inside a running task, on the
 * worker's event loop or on a pool thread. The AsyncLocalStorage lives on
 * `globalThis` under a registered symbol so that two copies of the package
 * (a task module importing `millwright` from elsewhere) still see one context.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { MillwrightError } from './errors.js';

/** What a running task knows about itself. */
export interface TaskContext {
  readonly id: string;
  readonly name: string;
  /** 1-based attempt number. */
  readonly attempt: number;
  readonly retriesLeft: number;
  readonly headers: Readonly<Record<string, string>>;
  /** The signature as sent (args included), as plain data. */
  readonly signature: Readonly<Record<string, unknown>>;
  /** Fires on revoke, timeout or a forced worker stop. */
  readonly signal: AbortSignal;
  /** Reports progress (a number 0..1 or a JSON object) to the producer's `r.progress`. */
  progress(value: unknown): void;
}

const KEY = Symbol.for('millwright.context');
interface Holder {
  readonly storage: AsyncLocalStorage<TaskContext>;
}
type Registry = { [KEY]?: Holder };
const registry = globalThis as Registry;
const holder: Holder = (registry[KEY] ??= { storage: new AsyncLocalStorage<TaskContext>() });
const storage = holder.storage;

/** Runs `fn` with `context` as the current task, following its async continuations. */
export function runInContext<T>(context: TaskContext, fn: () => T): T {
  return storage.run(context, fn);
}

/**
 * The context of the task running now. Throws outside a task.
 * @example
 * app.task('resize', async (url: string) => {
 *   const { signal, attempt } = currentTask();
 *   return fetchAndResize(url, { signal, attempt });
 * });
 */
export function currentTask(): TaskContext {
  const context = storage.getStore();
  if (context === undefined) throw new NotInTaskError();
  return context;
}

/** `currentTask()` was called outside a running task. */
class NotInTaskError extends MillwrightError {
  constructor() {
    super('ERR_VALIDATION', 'currentTask() was called outside a running task: call it from inside a task function (it follows async calls made by the task)');
  }
}
