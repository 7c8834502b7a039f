/** Helpers for the TCP tests: raw sockets that speak exact bytes, a quick health check of a broker, per-test cleanup. */
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { packArgs } from '../../src/codec.js';
import type { TaskMessage } from '../../src/transport.js';
import { FrameDecoder, Outbox } from '../../transports/tcp/framing.js';
import { decodeServerMessage, PROTOCOL_VERSION, writeFrame, writeMessage, type ClientMessage, type ServerMessage } from '../../transports/tcp/protocol.js';
import { afterEach } from 'vitest';
import { TcpTransport } from '../../transports/tcp/index.js';

export interface RawClient {
  readonly socket: Socket;
  readonly frames: ServerMessage[];
  readonly closed: Promise<void>;
  send(msg: ClientMessage): void;
  /** Resolves with the first received frame matching `pred`. */
  next(pred: (m: ServerMessage) => boolean): Promise<ServerMessage>;
}

export async function rawClient(port: number): Promise<RawClient> {
  const socket = connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject); });
  socket.on('error', () => undefined);
  const frames: ServerMessage[] = [];
  const waiters: Array<{ pred: (m: ServerMessage) => boolean; resolve: (m: ServerMessage) => void }> = [];
  const decoder = new FrameDecoder(1 << 24, (buf, start, end) => {
    const m = decodeServerMessage(buf, start, end);
    frames.push(m);
    for (const w of [...waiters]) if (w.pred(m)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(m); }
  });
  socket.on('data', (d: Buffer) => decoder.push(d));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return {
    socket, frames, closed,
    send: (msg) => { const out = new Outbox(); writeMessage(out, msg); for (const b of out.take()) socket.write(b); },
    next: (pred) => {
      const hit = frames.find(pred);
      if (hit !== undefined) return Promise.resolve(hit);
      return new Promise((resolve) => waiters.push({ pred, resolve }));
    },
  };
}

/** Bytes of one frame with an arbitrary type and body (for bad input). */
export function rawFrame(type: number, id: number, json: string): Buffer {
  const out = new Outbox();
  writeFrame(out, type, id, json, []);
  return Buffer.concat(out.take());
}

/** Bytes of one well-formed message frame. */
export function messageFrame(msg: ClientMessage): Buffer {
  const out = new Outbox();
  writeMessage(out, msg);
  return Buffer.concat(out.take());
}

export function helloFrame(token: string | null = null): Buffer {
  const out = new Outbox();
  writeMessage(out, { t: 'hello', v: PROTOCOL_VERSION, token });
  return Buffer.concat(out.take());
}

export function taskMessage(queue: string, fields: Partial<TaskMessage> = {}): TaskMessage {
  return { id: randomUUID(), name: 't', args: packArgs([1]), queue, priority: 0, eta: 0, retries: 0, attempt: 0, createdAt: Date.now(), ...fields };
}

/** A normal client publishes, consumes and settles one task: the broker still serves. */
export async function brokerServes(port: number, token?: string): Promise<boolean> {
  const t = new TcpTransport(token === undefined ? { port } : { port, token });
  try {
    await t.connect();
    const queue = `health-${randomUUID().slice(0, 8)}`;
    const m = taskMessage(queue);
    await t.publish({ tasks: [m], chords: [] });
    const tag = await new Promise<number>((resolve) => {
      void t.consume({ queues: [queue], prefetch: 1, names: null }, { deliver: (d) => resolve(d.tag), revoked: () => undefined });
    });
    await t.settle(tag, { records: [{ id: m.id, name: 't', state: 'SUCCESS', result: '1', attempts: 1, createdAt: 1, updatedAt: 2 }], publish: null, retry: null, chord: null });
    return (await t.getState(m.id))?.state === 'SUCCESS';
  } finally {
    await t.close();
  }
}

/** Waits for `check`, re-checking each turn; fails after `ms`. */
export async function until(check: () => boolean, ms = 5_000): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > ms) throw new Error(`condition not met within ${ms} ms: ${check.toString()}`);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/**
 * Child processes and cleanups of the tests of one file, ended after each test (every child still running is
 * SIGKILLed, then the cleanups run newest first). Call once at the top level of a test file.
 */
export function endAfterEach(): { children: Set<ChildProcess>; cleanups: Array<() => Promise<void> | void> } {
  const children = new Set<ChildProcess>();
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    children.clear();
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  return { children, cleanups };
}

