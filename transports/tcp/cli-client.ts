/**
 * The client commands: `send` (one task, prints its result as JSON) and
 * `status` (queues, depths, in flight, consumers, and rates from two samples).
 */
import { App } from '../../src/app.js';
import { pack } from '../../src/codec.js';
import { signature } from '../../src/signature.js';
import { TaskFailedError } from '../../src/errors.js';
import { UsageError, type ParsedArgs } from './cli-args.js';
import { CliFailure, clientTls, loadTasks, openTransport, readToken, say } from './cli-common.js';
import type { WireQueueStats } from './protocol.js';

/** `millwright send NAME [ARGS_JSON]`. */
export async function send(args: ParsedArgs): Promise<void> {
  const [name, json = '[]'] = args.positionals as [string, string?];
  if (name === '') throw new UsageError('Expected `NAME` to be a task name (a non-empty string), got ``', 'send');
  const taskArgs = parseArgsJson(json);
  const token = readToken(args.string('token-file'), 'send');
  const transport = await openTransport(args.address('connect'), token, clientTls(args, 'send'));
  const app = new App({ transport });
  try {
    const tasks = args.string('tasks');
    if (tasks !== undefined) await loadTasks(tasks, app, 'send');
    const queue = args.string('queue');
    const handle = await app.send(signature(name, taskArgs, queue === undefined ? {} : { queue }));
    if (args.flag('no-wait')) { say(handle.id); return; }
    const timeout = args.int('timeout');
    try {
      const result = await handle.get(timeout === undefined ? {} : { timeout });
      if (result !== undefined) say(JSON.stringify(result, binaryAsBase64));
    } catch (err) {
      if (err instanceof TaskFailedError) throw new CliFailure(`Task \`${name}\` (${handle.id}) failed: ${err.message}`);
      throw err;
    }
  } finally {
    await app.close();
  }
}

function parseArgsJson(json: string): unknown[] {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (err) {
    throw new UsageError(`Expected \`ARGS_JSON\` to be a JSON array of arguments (e.g. '[1,2]'), got \`${json}\` (${(err as Error).message})`, 'send');
  }
  if (!Array.isArray(value)) throw new UsageError(`Expected \`ARGS_JSON\` to be a JSON array of arguments (e.g. '[1,2]'), got \`${json}\``, 'send');
  // What app.send would refuse later (1e400 parses to Infinity; a reserved key) is a bad command line too.
  try {
    pack(value, 'ARGS_JSON');
  } catch (err) {
    throw new UsageError(`Expected \`ARGS_JSON\` to hold values a task can take, got \`${json}\` (${(err as Error).message})`, 'send');
  }
  return value;
}

function binaryAsBase64(_key: string, value: unknown): unknown {
  return value instanceof Uint8Array ? { $base64: Buffer.from(value).toString('base64') } : value;
}

/** One queue's line in `status`. */
export interface QueueStatus extends WireQueueStats {
  /** Change of `ready` per second between the two samples (null with a single sample). */
  readonly readyPerSecond: number | null;
}

/** `millwright status`. */
export async function status(args: ParsedArgs): Promise<void> {
  const address = args.address('connect');
  const transport = await openTransport(address, readToken(args.string('token-file'), 'status'), clientTls(args, 'status'));
  try {
    const interval = args.int('interval') ?? 1_000;
    const first = await transport.stats();
    const startedAt = performance.now();
    let second = first;
    if (interval > 0) {
      await new Promise((r) => setTimeout(r, interval));
      second = await transport.stats();
    }
    const seconds = (performance.now() - startedAt) / 1000;
    const before = new Map(first.queues.map((q) => [q.name, q.ready]));
    const queues: QueueStatus[] = [...second.queues].sort((a, b) => a.name.localeCompare(b.name)).map((q) => ({
      ...q,
      readyPerSecond: interval > 0 ? round((q.ready - (before.get(q.name) ?? 0)) / seconds) : null,
    }));
    // The broker counts this status connection too.
    const clients = Math.max(0, second.connections - 1);
    const workers = queues.reduce((n, q) => Math.max(n, q.consumers), 0);
    if (args.flag('json')) {
      say(JSON.stringify({ broker: `${address.host}:${address.port}`, clients, workers, sampledMs: interval > 0 ? Math.round(seconds * 1000) : 0, queues }));
      return;
    }
    say(`broker ${address.host}:${address.port}: ${clients} client connection(s) besides this one; consumers on the busiest queue: ${workers}`);
    say(formatTable(queues, interval > 0));
  } finally {
    await transport.close();
  }
}

function formatTable(queues: readonly QueueStatus[], withRates: boolean): string {
  if (queues.length === 0) return '(no queues yet: a queue appears when a task is sent to it or a worker consumes it)';
  const head = ['QUEUE', 'READY', 'IN FLIGHT', 'CONSUMERS', ...(withRates ? ['READY/s'] : [])];
  const rows = queues.map((q) => [q.name, String(q.ready), String(q.unacked), String(q.consumers),
    ...(withRates ? [`${(q.readyPerSecond ?? 0) > 0 ? '+' : ''}${String(q.readyPerSecond ?? 0)}`] : [])]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  return [head, ...rows].map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ')).join('\n');
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
