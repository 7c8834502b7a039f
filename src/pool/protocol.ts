/**
 * The wire between the pool (main thread) and a pool thread. Messages are flat
 * arrays so that one `postMessage` carries many tasks and one reply carries
 * many results (batching), with no per-task envelope object.
 *
 *   main -> thread   [OP_RUN, slot, exportName, args, context | 0, slot, ...]   stride 4
 *                    [OP_ABORT, slot, reason]                                  reason: ABORT_* below
 *   thread -> main   [busyMs, slot, status, value, slot, status, value, ...]   stride 3
 *
 * `slot` names a task on its thread (reused after the task settles). Tasks run
 * in the order they arrive; the thread counts every task it starts in a shared
 * `Int32Array` (`started`), which tells the main side, after a crash, which
 * in-flight tasks had started (they fail) and which had not (they are requeued).
 * `busyMs` is the synchronous time the thread spent running the reported tasks:
 * the pool sizes its per-thread pipeline from it.
 */
import type { TaskContext } from '../context.js';

export const OP_RUN = 1;
export const OP_ABORT = 2;

export const RUN_STRIDE = 4;
export const REPLY_STRIDE = 3;

/** The task returned a value (`value` is the result). */
export const ST_OK = 0;
/** The task threw (`value` is an `ErrorInfo`). */
export const ST_ERROR = 1;
/** The task reported progress (`value` is the progress value); the task goes on. */
export const ST_PROGRESS = 2;
/** The thread let go of an aborted async task; `value` is unused. */
export const ST_RELEASED = 3;

export const ABORT_SIGNAL = 0;
export const ABORT_TIMEOUT = 1;

/** What the thread receives as `workerData`. */
export interface ThreadData {
  /** `file:` URL of the user's task module. */
  readonly module: string;
  /** One Int32 cell: how many tasks this thread has started. */
  readonly started: Int32Array;
}

/** The task context's plain-data part, as sent with a task (see `RunOptions.context`). */
export type WireContext = Omit<TaskContext, 'signal' | 'progress'>;
