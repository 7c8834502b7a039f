/**
 * The published package works: `npm pack`, install the tarball into an empty
 * ESM project, import the public names, run a task, and type-check a consumer.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const root = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const work = mkdtempSync(join(tmpdir(), 'millwright-pack-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('npm package', () => {
  it('packs, installs into an empty ESM project, imports with types, and runs', () => {
    const packed = execFileSync('npm', ['pack', '--silent', '--pack-destination', work], { cwd: root, encoding: 'utf8' }).trim().split('\n').pop() as string;
    const app = join(work, 'app');
    execFileSync('mkdir', ['-p', app]);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', type: 'module', private: true }));
    execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', join(work, packed)], { cwd: app, encoding: 'utf8' });
    writeFileSync(join(app, 'main.ts'), `
import { App, signature, chain, group, chord, FakeClock, currentTask, RetryLater, PermanentError, MemoryTransport, ThreadPool, type TaskRef } from 'millwright';
const app = new App({ transport: new MemoryTransport(), clock: new FakeClock() });
const add: TaskRef<[number, number], number> = app.task('add', (a: number, b: number) => a + b);
void [signature, chain, group, chord, currentTask, RetryLater, PermanentError, ThreadPool];
// @ts-expect-error add takes numbers
add.s('x');
await app.worker().start();
const r = await app.send(add.s(20, 22));
const n: number = await r.get();
console.log(JSON.stringify({ n, retryLater: new RetryLater(5).code, permanent: new PermanentError('x').code }));
await app.close();
`);
    writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, outDir: 'out', rootDir: '.', types: ['node'], skipLibCheck: false, typeRoots: [join(root, 'node_modules/@types')] },
      files: ['main.ts'],
    }));
    execFileSync(join(root, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.json'], { cwd: app, encoding: 'utf8' });
    const out = execFileSync(process.execPath, ['out/main.js'], { cwd: app, encoding: 'utf8' });
    expect(JSON.parse(out.trim())).toEqual({ n: 42, retryLater: 'ERR_RETRY_LATER', permanent: 'ERR_PERMANENT' });
  }, 120_000);
});
