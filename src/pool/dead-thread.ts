/**
 * What happens to the tasks of a thread that died (crashed, or terminated by
 * the pool): pure policy, no I/O.
 */
import { DISPATCHED, type PoolThread, type Task } from './task.js';

/**
 * Frees every slot of a dead thread and splits its live tasks: those it had
 * started fail (`crashed`), the others go back to the queue in their order
 * (`requeue`). A thread that died unexpectedly before starting anything (e.g.
 * while loading its module) takes its first task with it, so a broken module
 * cannot make the pool respawn threads forever. A task posted with a transfer
 * list and not started is `lost`: its buffers went to the dead thread, so it
 * cannot be re-sent (it fails; tasks stay pipelined, transfers or not).
 */
export function sortOutDeadThread(thread: PoolThread, started: number, expected: boolean): { crashed: Task[]; lost: Task[]; requeue: Task[] } {
  const crashed: Task[] = [];
  const lost: Task[] = [];
  const requeue: Task[] = [];
  let blame = !expected && started === 0;
  for (const task of thread.held()) {
    thread.release(task.slot);
    if (task.state !== DISPATCHED) continue;
    if ((task.seq >= 0 && task.seq < started) || (blame && task.seq >= 0)) {
      blame = false;
      crashed.push(task);
    } else if (task.seq >= 0 && task.transfer !== undefined) {
      lost.push(task);
    } else {
      requeue.push(task);
    }
  }
  return { crashed, lost, requeue };
}

/** The message of the `ThreadCrashedError` a task sent with a transfer list fails with when its thread died before starting it. */
export function lostMessage(thread: PoolThread, task: Task, code: number, expected: boolean): string {
  const why = expected ? `was terminated because ${thread.retireReason ?? 'the pool stopped it'}` : `exited with code ${code}`;
  return `Task "${task.name}" waited on pool thread #${thread.id}, which ${why} before starting it; its transfer list had moved its buffers to that thread, so it cannot be sent again: run it again with fresh buffers`;
}

/** The message of the `ThreadCrashedError` a task of a dead thread fails with. */
export function crashMessage(thread: PoolThread, task: Task, code: number, expected: boolean): string {
  const what = `pool thread #${thread.id}`;
  if (expected) return `The ${what} running task "${task.name}" was terminated because ${thread.retireReason ?? 'the pool stopped it'}; a new thread replaces it`;
  const err = thread.crashError;
  if (err === undefined) return `The ${what} exited with code ${code} while running task "${task.name}" (did the module call process.exit()?); a new thread replaces it`;
  const oom = (err as { code?: unknown }).code === 'ERR_WORKER_OUT_OF_MEMORY';
  const hint = oom ? ' (raise resourceLimits, e.g. maxOldGenerationSizeMb, or use less memory)' : ' (an error thrown outside the task, e.g. in a timer callback)';
  return `The ${what} crashed while running task "${task.name}": ${err.message}${hint}; a new thread replaces it`;
}
