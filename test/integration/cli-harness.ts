/**
 * Helpers of the CLI integration tests: run `dist/transports/tcp/cli.js` as
 * real child processes, wait for their output lines (never sleep), and kill
 * every child by pid after each test.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const CLI = join(root, 'dist/transports/tcp/cli.js');
export const EXAMPLE_TASKS = join(root, 'dist/examples/tasks.js');
export const FIXTURE_TASKS = join(root, 'test/fixtures/cli-tasks.mjs');

/** A running CLI process with its output so far. */
export class CliProcess {
  readonly proc: ChildProcess;
  readonly lines: string[] = [];
  stderr = '';
  readonly exited: Promise<number | null>;
  readonly #waiters = new Set<{ re: RegExp; resolve: (m: RegExpMatchArray) => void }>();

  constructor(args: readonly string[]) {
    this.proc = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stderr?.setEncoding('utf8').on('data', (s: string) => { this.stderr += s; });
    createInterface({ input: this.proc.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      this.lines.push(line);
      for (const w of this.#waiters) {
        const m = line.match(w.re);
        if (m !== null) { this.#waiters.delete(w); w.resolve(m); }
      }
    });
    this.exited = new Promise((r) => this.proc.once('exit', (code) => r(code)));
  }

  /** Resolves with the first stdout line (past or future) matching `re`; rejects if the process exits first. */
  waitForLine(re: RegExp): Promise<RegExpMatchArray> {
    for (const line of this.lines) {
      const m = line.match(re);
      if (m !== null) return Promise.resolve(m);
    }
    return new Promise((resolvePromise, reject) => {
      this.#waiters.add({ re, resolve: resolvePromise });
      void this.exited.then((code) => reject(new Error(`exited (${String(code)}) before printing ${String(re)}; stdout:\n${this.lines.join('\n')}\nstderr:\n${this.stderr}`)));
    });
  }

  get output(): string {
    return this.lines.join('\n');
  }
}

const live = new Set<CliProcess>();
const dirs: string[] = [];

/** Starts a long-running CLI command (broker, worker). */
export function startCli(args: readonly string[]): CliProcess {
  const p = new CliProcess(args);
  live.add(p);
  return p;
}

/** Runs a CLI command to its end. */
export async function runCli(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = startCli(args);
  const code = await p.exited;
  await new Promise((r) => setImmediate(r));
  return { code, stdout: p.output, stderr: p.stderr };
}

/** Starts `millwright broker --port 0` and waits for its listening line. */
export async function startBroker(extra: readonly string[] = []): Promise<{ broker: CliProcess; address: string }> {
  const broker = startCli(['broker', '--port', '0', ...extra]);
  const m = await broker.waitForLine(/listening on (127\.0\.0\.1:\d+)/);
  return { broker, address: m[1] as string };
}

/** Starts `millwright worker` and waits for its ready line. */
export async function startWorker(address: string, extra: readonly string[] = [], tasks = FIXTURE_TASKS): Promise<CliProcess> {
  const worker = startCli(['worker', '--connect', address, '--tasks', tasks, ...extra]);
  await worker.waitForLine(/^millwright worker ready/);
  return worker;
}

/** A fresh temp directory, removed by {@link cleanup}. */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'millwright-cli-'));
  dirs.push(dir);
  return dir;
}

/** Writes `content` to a new temp file and returns its path. */
export function tempFile(name: string, content: string): string {
  const file = join(tempDir(), name);
  writeFileSync(file, content);
  return file;
}

/** A port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

/** Kills every child still running (by pid) and removes temp dirs: call in afterEach. */
export async function cleanup(): Promise<void> {
  const running = [...live];
  live.clear();
  for (const p of running) {
    if (p.proc.exitCode !== null || p.proc.signalCode !== null || p.proc.pid === undefined) continue;
    try { process.kill(p.proc.pid, 'SIGKILL'); } catch { /* exited meanwhile */ }
  }
  await Promise.all(running.map((p) => p.exited));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}
