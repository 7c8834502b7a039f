/**
 * The error catalog. Every error millwright throws to a user is a
 * `MillwrightError` with a stable `code`; `docs/errors.md` lists them and a
 * test keeps the two in sync. Errors cross threads and TCP as plain
 * {@link ErrorInfo} and are rebuilt by code with {@link fromErrorInfo}.
 */
import { types } from 'node:util';

/** Every stable error code; `docs/errors.md` documents each (a test keeps them in sync). */
export const ERROR_CODES = [
  'ERR_VALIDATION',
  'ERR_NOT_REGISTERED',
  'ERR_TIMEOUT',
  'ERR_TASK_FAILED',
  'ERR_CHORD',
  'ERR_QUEUE_FULL',
  'ERR_AUTH',
  'ERR_PROTOCOL',
  'ERR_CLOSED',
  'ERR_REVOKED',
  'ERR_ABORTED',
  'ERR_THREAD_CRASHED',
  'ERR_EXPIRED',
  'ERR_RETRY_LATER',
  'ERR_PERMANENT',
  'ERR_DUPLICATE_TASK',
  'ERR_MODULE',
  'ERR_CONNECTION',
] as const;

/** A stable error code. */
export type ErrorCode = (typeof ERROR_CODES)[number];

/** An error as plain data: what crosses threads and sockets. */
export interface ErrorInfo {
  readonly code: string;
  readonly name: string;
  readonly message: string;
  readonly stack?: string;
  readonly data?: Readonly<Record<string, unknown>>;
}

const BRAND = Symbol.for('millwright.error');

/** Base class of every millwright error. `code` is stable across versions. */
export class MillwrightError extends Error {
  readonly code: ErrorCode;
  readonly [BRAND] = true;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }

  /** True for any millwright error, even from a duplicate install of the package. */
  static is(value: unknown): value is MillwrightError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }
}

/** A value, option or signature is invalid; `path` names the bad value (e.g. `args[1].user.fn`). */
export class ValidationError extends MillwrightError {
  readonly path: string | undefined;
  constructor(message: string, path?: string) {
    super('ERR_VALIDATION', message);
    this.path = path;
  }
}

/** A worker received a task whose name nobody registered in its app. */
export class NotRegisteredError extends MillwrightError {
  readonly taskName: string;
  constructor(taskName: string) {
    super('ERR_NOT_REGISTERED', `Task "${taskName}" is not registered in this worker's app: register it with app.task("${taskName}", fn) before starting the worker, or start the worker with ignoreUnknown: true to leave it for a worker that registers it`);
    this.taskName = taskName;
  }
}

/** A deadline passed: `get({ timeout })`, a task's per-attempt `timeout`, or a pool task's `timeout`. */
export class TimeoutError extends MillwrightError {
  readonly timeoutMs: number;
  constructor(message: string, timeoutMs: number) {
    super('ERR_TIMEOUT', message);
    this.timeoutMs = timeoutMs;
  }
}

/** A task finished in FAILURE. `message` is the task's own error message, verbatim. */
export class TaskFailedError extends MillwrightError {
  readonly taskName: string;
  readonly taskId: string;
  readonly remoteStack: string | undefined;
  /** The code of the error the task threw (`ERR_TASK_FAILED` for a plain `Error`). */
  readonly remoteCode: string;
  readonly remoteName: string;
  constructor(info: ErrorInfo, taskName: string, taskId: string) {
    super('ERR_TASK_FAILED', info.message);
    this.taskName = taskName;
    this.taskId = taskId;
    this.remoteStack = info.stack;
    this.remoteCode = info.code;
    this.remoteName = info.name;
  }
}

/** A chord member failed for good, so the chord's callback never runs. */
export class ChordError extends MillwrightError {
  readonly memberId: string | undefined;
  constructor(message: string, memberId?: string) {
    super('ERR_CHORD', message);
    this.memberId = memberId;
  }
}

/** A bounded queue is full (`ThreadPool` `maxQueue`). */
export class QueueFullError extends MillwrightError {
  constructor(message: string) {
    super('ERR_QUEUE_FULL', message);
  }
}

/** The broker refused the client's token. */
export class AuthError extends MillwrightError {
  constructor(message: string) {
    super('ERR_AUTH', message);
  }
}

/** A peer broke the wire protocol (bad frame, unknown type, oversize length, wrong version). */
export class ProtocolError extends MillwrightError {
  constructor(message: string) {
    super('ERR_PROTOCOL', message);
  }
}

/** The object was closed: no new work is accepted. */
export class ClosedError extends MillwrightError {
  constructor(what: string) {
    super('ERR_CLOSED', `${what} is closed: create a new one to go on`);
  }
}

/** The task was revoked before it finished. */
export class RevokedError extends MillwrightError {
  readonly taskId: string;
  constructor(taskId: string) {
    super('ERR_REVOKED', `Task ${taskId} was revoked`);
    this.taskId = taskId;
  }
}

/** An operation was aborted through its `AbortSignal`. */
export class AbortError extends MillwrightError {
  constructor(message = 'The operation was aborted') {
    super('ERR_ABORTED', message);
  }
}

/** A pool thread died (uncaught error, `process.exit`, out of memory) while running the task. */
export class ThreadCrashedError extends MillwrightError {
  constructor(message: string) {
    super('ERR_THREAD_CRASHED', message);
  }
}

/** A task's `expires` time passed before it could start. */
export class ExpiredError extends MillwrightError {
  constructor(taskId: string) {
    super('ERR_EXPIRED', `expired: task ${taskId} was not started before its expires time`);
  }
}

/**
 * Throw from a task to retry it later whatever `retries` says (Machinery's
 * ErrRetryTaskLater). `delayMs` defaults to the task's backoff.
 * @example throw new RetryLater(5_000)
 */
export class RetryLater extends MillwrightError {
  readonly delayMs: number | undefined;
  /** @throws ValidationError when `delayMs` is given and is not a finite number >= 0 (NaN retried at once; Infinity never). */
  constructor(delayMs?: number, message = 'retry later') {
    if (delayMs !== undefined && !(typeof delayMs === 'number' && Number.isFinite(delayMs) && delayMs >= 0)) {
      throw new ValidationError(`Expected the delay of RetryLater to be a finite number of ms >= 0, got ${String(delayMs)}`, 'delayMs');
    }
    super('ERR_RETRY_LATER', message);
    this.delayMs = delayMs;
  }
}

/**
 * Throw from a task to fail it at once, without retries.
 * @example throw new PermanentError('user 42 does not exist')
 */
export class PermanentError extends MillwrightError {
  constructor(message: string) {
    super('ERR_PERMANENT', message);
  }
}

/** `app.task(name)` was called twice with the same name. */
export class DuplicateTaskError extends MillwrightError {
  constructor(name: string) {
    super('ERR_DUPLICATE_TASK', `A task named "${name}" is already registered: task names must be unique within an app`);
  }
}

/** A task module or one of its exports could not be loaded. */
export class ModuleError extends MillwrightError {
  constructor(message: string) {
    super('ERR_MODULE', message);
  }
}

/** A connection to the broker failed or was lost and could not be re-established in time. */
export class ConnectionError extends MillwrightError {
  constructor(message: string) {
    super('ERR_CONNECTION', message);
  }
}

/**
 * Turns any thrown value into plain {@link ErrorInfo}. Non-Error values become their string form. An Error of
 * another realm (`node:vm`, a jsdom window) fails `instanceof Error`, and JSON.stringify of it says only "{}".
 */
export function toErrorInfo(err: unknown): ErrorInfo {
  if (err instanceof Error || types.isNativeError(err)) {
    const code = MillwrightError.is(err) ? err.code : typeof (err as { code?: unknown }).code === 'string' ? String((err as { code?: unknown }).code) : 'ERR_TASK_FAILED';
    const info: { code: string; name: string; message: string; stack?: string; data?: Record<string, unknown> } = {
      code, name: err.name, message: err.message,
    };
    if (err.stack !== undefined) info.stack = err.stack;
    const data = errorData(err);
    if (data !== undefined) info.data = data;
    return info;
  }
  return { code: 'ERR_TASK_FAILED', name: 'Error', message: describeThrown(err) };
}

function errorData(err: Error): Record<string, unknown> | undefined {
  if (err instanceof RetryLater && err.delayMs !== undefined) return { delayMs: err.delayMs };
  if (err instanceof TimeoutError) return { timeoutMs: err.timeoutMs };
  if (err instanceof ValidationError && err.path !== undefined) return { path: err.path };
  return undefined;
}

function describeThrown(value: unknown): string {
  if (typeof value === 'string') return value;
  try {
    const json = JSON.stringify(value);
    if (json !== undefined) return json;
  } catch { /* fall through to String() */ }
  return String(value);
}

/** Rebuilds an error from {@link ErrorInfo}: the matching subclass by code, with the remote stack. */
export function fromErrorInfo(info: ErrorInfo): Error {
  const err = rebuild(info);
  if (info.stack !== undefined) err.stack = info.stack;
  return err;
}

function rebuild(info: ErrorInfo): Error {
  const data = info.data ?? {};
  switch (info.code) {
    case 'ERR_VALIDATION': return new ValidationError(info.message, typeof data['path'] === 'string' ? data['path'] : undefined);
    case 'ERR_TIMEOUT': return new TimeoutError(info.message, typeof data['timeoutMs'] === 'number' ? data['timeoutMs'] : 0);
    case 'ERR_CHORD': return new ChordError(info.message);
    case 'ERR_QUEUE_FULL': return new QueueFullError(info.message);
    case 'ERR_AUTH': return new AuthError(info.message);
    case 'ERR_PROTOCOL': return new ProtocolError(info.message);
    case 'ERR_ABORTED': return new AbortError(info.message);
    case 'ERR_THREAD_CRASHED': return new ThreadCrashedError(info.message);
    case 'ERR_RETRY_LATER': return new RetryLater(typeof data['delayMs'] === 'number' ? data['delayMs'] : undefined, info.message);
    case 'ERR_PERMANENT': return new PermanentError(info.message);
    case 'ERR_MODULE': return new ModuleError(info.message);
    case 'ERR_CONNECTION': return new ConnectionError(info.message);
    default: {
      const err = new Error(info.message);
      err.name = info.name;
      if (info.code !== 'ERR_TASK_FAILED') (err as Error & { code: string }).code = info.code;
      return err;
    }
  }
}
