/** Reconnect, bounded waits, visibility timeouts and settle checks over real sockets. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { App, signature } from '../../src/index.js';
import type { Delivery } from '../../src/transport.js';
import { BrokerServer, TcpTransport } from '../../transports/tcp/index.js';
import { helloFrame, rawClient, taskMessage, until } from './tcp-helpers.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c(); });

async function broker(options: ConstructorParameters<typeof BrokerServer>[0] = {}): Promise<BrokerServer> {
  const s = new BrokerServer({ port: 0, ...options });
  await s.listen();
  cleanups.push(() => s.close());
  return s;
}

describe('TCP reconnect', () => {
  it('keeps consumers, watches and waiting sends across a broker restart', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'mw-rc-'));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const first = new BrokerServer({ port: 0, dataDir });
    await first.listen();
    const { port } = first.address();
    const producer = new App({ transport: new TcpTransport({ port, reconnectDelay: 10, maxReconnectDelay: 50 }) });
    const workerApp = new App({ transport: new TcpTransport({ port, reconnectDelay: 10, maxReconnectDelay: 50 }) });
    cleanups.push(() => producer.close(), () => workerApp.close());
    workerApp.task('add', (a: number, b: number) => a + b);
    await workerApp.worker().start();
    const delayed = await producer.send(signature('add', [1, 2], { eta: Date.now() + 300 }));
    const result = delayed.get({ timeout: 10_000 });
    await first.close();
    const whileDown = producer.send(signature('add', [5, 5]));
    const second = await broker({ port, dataDir });
    expect(second.address().port).toBe(port);
    expect(await result).toBe(3);
    expect(await (await whileDown).get({ timeout: 5_000 })).toBe(10);
  });

  it('a request with no broker to talk to rejects with ConnectionError after sendTimeout', async () => {
    const s = await broker();
    const { port } = s.address();
    await s.close();
    const t = new TcpTransport({ port, sendTimeout: 200, reconnectDelay: 20 });
    cleanups.push(() => t.close());
    const started = Date.now();
    await expect(t.publish({ tasks: [taskMessage('x')], chords: [] })).rejects.toMatchObject({ code: 'ERR_CONNECTION' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
  });

  it('delivers a final state missed while disconnected to the waiting handle', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'mw-rc-'));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const first = new BrokerServer({ port: 0, dataDir });
    await first.listen();
    const { port } = first.address();
    const watcher = new TcpTransport({ port, reconnectDelay: 400, maxReconnectDelay: 400 });
    const other = new TcpTransport({ port, reconnectDelay: 10 });
    cleanups.push(() => watcher.close(), () => other.close());
    const m = taskMessage('missed');
    const states: string[] = [];
    watcher.watch(m.id, (e) => { if (e.type === 'state') states.push(e.record.state); });
    await watcher.connect();
    await other.publish({ tasks: [m], chords: [] });
    await until(() => states.includes('PENDING'));
    await first.close();
    await broker({ port, dataDir });
    const d = await new Promise<Delivery>((resolve) => { void other.consume({ queues: ['missed'], prefetch: 1, names: null }, { deliver: resolve, revoked: () => undefined }); });
    await other.settle(d.tag, { records: [{ id: m.id, name: 't', state: 'SUCCESS', result: '1', attempts: 1, createdAt: 1, updatedAt: 2 }], publish: null, retry: null, chord: null });
    expect(watcher.connected).toBe(false); // the SUCCESS event happened while it was away
    await until(() => states.includes('SUCCESS'));
  });
});

describe('TCP visibility timeout and settle checks', () => {
  it('takes back a delivery held past the visibility timeout by a silent consumer', async () => {
    const s = await broker({ visibilityTimeout: 150 });
    const { port } = s.address();
    const raw = await rawClient(port);
    cleanups.push(() => { raw.socket.destroy(); });
    raw.socket.write(helloFrame());
    await raw.next((f) => f.t === 'welcome');
    const m = taskMessage('vis');
    raw.send({ t: 'publish', id: 1, batch: { tasks: [m], chords: [] } });
    raw.send({ t: 'consume', id: 2, c: 1, spec: { queues: ['vis'], prefetch: 1, names: null } });
    const first = await raw.next((f) => f.t === 'deliver');
    expect(first.t === 'deliver' && first.redelivered).toBe(false);
    const t = new TcpTransport({ port });
    cleanups.push(() => t.close());
    const took = Date.now();
    const d = await new Promise<Delivery>((resolve) => { void t.consume({ queues: ['vis'], prefetch: 1, names: null }, { deliver: resolve, revoked: () => undefined }); });
    expect(Date.now() - took).toBeGreaterThanOrEqual(100);
    expect(d.message.id).toBe(m.id);
    expect(d.redelivered).toBe(true);
    // The old holder's late settle is ignored: its tag is no longer held.
    if (first.t !== 'deliver') throw new Error('expected a delivery');
    raw.send({ t: 'settle', id: 3, tag: first.tag, mid: m.id, outcome: { records: [{ id: m.id, name: 't', state: 'FAILURE', attempts: 1, createdAt: 1, updatedAt: 2 }], publish: null, retry: null, chord: null } });
    await raw.next((f) => f.t === 'ok' && f.id === 3);
    expect((await t.getState(m.id))?.state).toBe('PENDING');
  });

  it('a client heartbeats the deliveries it holds, so a long task keeps its delivery', async () => {
    const s = await broker({ visibilityTimeout: 120 });
    const { port } = s.address();
    const holder = new TcpTransport({ port });
    const other = new TcpTransport({ port });
    cleanups.push(() => holder.close(), () => other.close());
    const m = taskMessage('hb');
    await holder.publish({ tasks: [m], chords: [] });
    const d = await new Promise<Delivery>((resolve) => { void holder.consume({ queues: ['hb'], prefetch: 1, names: null }, { deliver: resolve, revoked: () => undefined }); });
    const stolen: Delivery[] = [];
    await other.consume({ queues: ['hb'], prefetch: 1, names: null }, { deliver: (x) => stolen.push(x), revoked: () => undefined });
    await new Promise((resolve) => setTimeout(resolve, 500)); // several visibility periods: heartbeats must keep it
    expect(stolen).toEqual([]);
    await holder.settle(d.tag, { records: [{ id: m.id, name: 't', state: 'SUCCESS', result: '2', attempts: 1, createdAt: 1, updatedAt: 2 }], publish: null, retry: null, chord: null });
    expect((await other.getState(m.id))?.state).toBe('SUCCESS');
  });

  it('ignores a settle whose tag belongs to another message, or to another connection', async () => {
    const s = await broker();
    const { port } = s.address();
    const raw = await rawClient(port);
    cleanups.push(() => { raw.socket.destroy(); });
    raw.socket.write(helloFrame());
    await raw.next((f) => f.t === 'welcome');
    const a = taskMessage('mix');
    const b = taskMessage('mix');
    raw.send({ t: 'publish', id: 1, batch: { tasks: [a, b], chords: [] } });
    raw.send({ t: 'consume', id: 2, c: 1, spec: { queues: ['mix'], prefetch: 2, names: null } });
    await until(() => raw.frames.filter((f) => f.t === 'deliver').length === 2);
    const tagOf = (id: string): number => {
      const f = raw.frames.find((x) => x.t === 'deliver' && x.message.id === id);
      return f?.t === 'deliver' ? f.tag : -1;
    };
    const done = (id: string) => ({ records: [{ id, name: 't', state: 'SUCCESS' as const, attempts: 1, createdAt: 1, updatedAt: 2 }], publish: null, retry: null, chord: null });
    const t = new TcpTransport({ port });
    cleanups.push(() => t.close());
    raw.send({ t: 'settle', id: 3, tag: tagOf(a.id), mid: b.id, outcome: done(b.id) });
    await raw.next((f) => f.t === 'ok' && f.id === 3);
    expect((await t.getState(b.id))?.state).toBe('PENDING');
    await t.settle(tagOf(b.id), done(b.id)); // a tag this connection does not hold
    expect((await t.getState(b.id))?.state).toBe('PENDING');
    raw.send({ t: 'settle', id: 4, tag: tagOf(b.id), mid: b.id, outcome: done(b.id) });
    await raw.next((f) => f.t === 'ok' && f.id === 4);
    expect((await t.getState(b.id))?.state).toBe('SUCCESS');
  });
});
