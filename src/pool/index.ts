/** The thread pool: `ThreadPool`, `move()` and their types. */
export { ThreadPool } from './thread-pool.js';
export type { ThreadPoolOptions, RunOptions, PoolTaskContext, ThreadPoolInternals, PoolStats, LatencyStats } from './thread-pool.js';
export { move, isMoved } from './move.js';
export type { Moved } from './move.js';
export type { ThreadHandle, ThreadEvents, ThreadFactory } from './thread-handle.js';
