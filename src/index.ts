/**
 * millwright: a distributed asynchronous task queue for Node.js.
 * In-memory by default, a worker_threads pool for CPU work, a TCP broker to connect hosts.
 */
export { App, MemoryTransport, type HandleOf, type ResultOf, type AppOptions, type WorkerOptions, type MemoryTransportOptions } from './app.js';
export { AsyncResult, GroupResult, type GetOptions, type TaskStateInfo } from './result.js';
export { Worker, type StopOptions, type TaskEvent } from './worker.js';
export { signature, chain, group, chord, type Signature, type SignatureOptions, type Chain, type Group, type Chord, type Workflow, type TaskRef, type PrefixOf } from './signature.js';
export type { TaskOptions, ModuleTaskSpec } from './registry.js';
export { currentTask, type TaskContext } from './context.js';
export { FakeClock, SystemClock, systemClock, type Clock, type TimerHandle, type TimerOptions } from './clock.js';
export { seededRng, type Rng } from './rng.js';
export { backoffDelay, fibonacci, DEFAULT_BACKOFF } from './backoff.js';
export { pack, unpack, type Packed, type Value } from './codec.js';
export * from './errors.js';
export type {
  Transport, TransportContext, TaskMessage, TaskState, Backoff, Batch, ChordSpec, ChordRef, StateRecord, Delivery, DeliveryTag,
  ConsumeSpec, ConsumerHandler, Consumer, Outcome, WatchEvent,
} from './transport.js';
export { DONE } from './transport.js';
export { ThreadPool, move, type ThreadPoolOptions, type RunOptions, type PoolStats, type LatencyStats, type Moved, type PoolTaskContext } from './pool/index.js';
export type { ScheduleOptions } from './schedules.js';
