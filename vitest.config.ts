import { defineConfig } from 'vitest/config';

// One config for the whole suite: unit, conformance, integration and type tests.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    pool: 'forks',
    maxWorkers: 2,
  },
});
