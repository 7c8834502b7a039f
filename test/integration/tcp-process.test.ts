/** Real processes, real SIGKILL: a durable broker loses no confirmed task; a killed worker's tasks run elsewhere. */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { App, chord, group, signature } from '../../src/index.js';
import { TcpTransport } from '../../transports/tcp/index.js';
import { endAfterEach, until } from './tcp-helpers.js';

const fixture = (name: string): string => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));
const { children, cleanups } = endAfterEach();

function spawn(name: string, args: string[]): { child: ChildProcess; messages: Array<Record<string, unknown>>; next(type: string): Promise<Record<string, unknown>> } {
  const child = fork(fixture(name), args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(child);
  const messages: Array<Record<string, unknown>> = [];
  child.on('message', (m) => messages.push(m as Record<string, unknown>));
  return {
    child, messages,
    next: (type) => new Promise((resolve, reject) => {
      const hit = messages.find((m) => m['type'] === type);
      if (hit !== undefined) { resolve(hit); return; }
      const on = (m: unknown): void => { if ((m as Record<string, unknown>)['type'] === type) { child.off('message', on); resolve(m as Record<string, unknown>); } };
      child.on('message', on);
      child.once('exit', (code, signal) => reject(new Error(`${name} exited (${String(code ?? signal)}) before "${type}"`)));
    }),
  };
}

const killed = (c: ChildProcess): Promise<void> => new Promise((resolve) => { if (c.exitCode !== null || c.signalCode !== null) resolve(); else { c.once('exit', () => resolve()); c.kill('SIGKILL'); } });

describe('TCP with real processes', () => {
  it('a SIGKILLed durable broker, restarted on the same dataDir and port, loses no confirmed task, delayed task, result or chord count', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'mw-crash-'));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const first = spawn('tcp-broker.mjs', ['0', dataDir]);
    const port = (await first.next('listening'))['port'] as number;
    const producer = new App({ transport: new TcpTransport({ port, reconnectDelay: 20 }) });
    cleanups.push(() => producer.close());
    producer.task('add', (a: number, b: number) => a + b);
    producer.task('sum', (...xs: number[]) => xs.reduce((s, x) => s + x, 0));
    const plain = await Promise.all(Array.from({ length: 100 }, (_, i) => producer.send(signature('add', [i, 1]))));
    const delayed = await producer.send(signature('add', [1000, 1], { eta: Date.now() + 400 }));
    // A chord with one member finished before the crash: its result must survive in the ledger.
    const chordWorker = new App({ transport: new TcpTransport({ port }) });
    chordWorker.task('add', (a: number, b: number) => a + b);
    const member0 = signature('add', [1, 1]);
    const member1 = signature('add', [2, 2], { queue: 'later' });
    const chorded = await producer.send(chord(group(member0, member1), signature('sum', [100])));
    await chordWorker.worker({ queues: ['default'] }).start();
    await expect(producer.result(member0.id).get({ timeout: 5_000 })).resolves.toBe(2);
    await chordWorker.close();
    first.child.kill('SIGKILL');
    await killed(first.child);
    const second = spawn('tcp-broker.mjs', [String(port), dataDir]);
    expect((await second.next('listening'))['port']).toBe(port);
    await producer.worker({ queues: ['default', 'later'], concurrency: 20 }).start();
    const results = await Promise.all(plain.map((r) => r.get({ timeout: 10_000 })));
    expect(results).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(await delayed.get({ timeout: 10_000 })).toBe(1001);
    expect(await chorded.get({ timeout: 10_000 })).toBe(106);
  }, 30_000);

  it('a SIGKILLed worker mid-task: every task completes, none lost, each interrupted one runs again exactly once', async () => {
    const broker = spawn('tcp-broker.mjs', ['0']);
    const port = (await broker.next('listening'))['port'] as number;
    // The victim never finishes a task: the 4 it holds (its prefetch) are surely mid-task when it is killed,
    // however slow the machine (with real sleeps, it could finish them before the kill and the count raced).
    const victim = spawn('tcp-worker.mjs', [String(port), '4', 'hang']);
    await victim.next('ready');
    const producer = new App({ transport: new TcpTransport({ port }) });
    cleanups.push(() => producer.close());
    const handles = await Promise.all(Array.from({ length: 12 }, (_, i) => producer.send(signature('sleepy', [`k${i}`, 20]))));
    await until(() => victim.messages.filter((m) => m['type'] === 'started').length >= 4);
    const survivor = spawn('tcp-worker.mjs', [String(port), '4']);
    await survivor.next('ready');
    const interrupted = victim.messages.filter((m) => m['type'] === 'started').map((m) => m['key'] as string);
    expect(interrupted).toHaveLength(4);
    await killed(victim.child);
    const results = await Promise.all(handles.map((h) => h.get({ timeout: 15_000 })));
    expect(results).toEqual(Array.from({ length: 12 }, (_, i) => `k${i}`));
    expect(victim.messages.filter((m) => m['type'] === 'finished')).toEqual([]);
    const started = survivor.messages.filter((m) => m['type'] === 'started').map((m) => m['key'] as string);
    // Every task ran to the end on the survivor exactly once; the 4 interrupted ones are the duplicates (ran twice).
    expect([...started].sort()).toEqual(Array.from({ length: 12 }, (_, i) => `k${i}`).sort());
    expect(started.filter((k) => interrupted.includes(k))).toHaveLength(4);
  }, 30_000);
});
