/** Runs module tasks on a thread pool (wired to ThreadPool). */
import { ModuleError } from './errors.js';
import type { ModuleRunner } from './worker.js';

export function createModuleRunner(_threads: number): ModuleRunner {
  return {
    run: async () => { throw new ModuleError('module tasks need the thread pool, which is not built yet'); },
    close: async () => undefined,
  };
}
