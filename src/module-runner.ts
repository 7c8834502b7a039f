/**
 * Runs module tasks on thread pools: one `ThreadPool` per task module, of
 * `threads` threads each, started on the first task of that module (each
 * thread imports the module once).
 */
import { ThreadPool } from './pool/thread-pool.js';
import type { ModuleRunner } from './worker.js';

export function createModuleRunner(threads: number): ModuleRunner {
  const pools = new Map<string, ThreadPool>();
  return {
    run(def, args, context, signal, onProgress) {
      let pool = pools.get(def.module);
      if (pool === undefined) {
        pool = new ThreadPool({ module: def.module.startsWith('file:') ? new URL(def.module) : def.module, size: threads });
        pools.set(def.module, pool);
      }
      return pool.run(def.exportName, args, { signal, context, onProgress });
    },
    async close() {
      const all = [...pools.values()];
      pools.clear();
      await Promise.all(all.map((p) => p.close()));
    },
  };
}
