/**
 * A half-open connection (a peer or NAT gone without a FIN; here a proxy that stops forwarding and keeps the
 * client's socket open): the client hears nothing back, asks the broker something small, and after three
 * heartbeat periods of silence drops the connection and reconnects; the requests in flight are re-sent.
 */
import { connect, createServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { BrokerServer, TcpTransport } from '../../transports/tcp/index.js';
import { taskMessage } from './tcp-helpers.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c(); });

/** A proxy to `port`; `stall()` freezes the connections open now (nothing forwarded, no close passed on). */
async function stallingProxy(port: number): Promise<{ port: number; stall(): void; connections(): number }> {
  const live: Array<{ stalled: boolean }> = [];
  const sockets = new Set<Socket>();
  let count = 0;
  const server = createServer((client) => {
    count++;
    const state = { stalled: false };
    live.push(state);
    const upstream = connect(port, '127.0.0.1');
    sockets.add(client); sockets.add(upstream);
    client.on('data', (b) => { if (!state.stalled) upstream.write(b); });
    upstream.on('data', (b) => { if (!state.stalled) client.write(b); });
    const end = (): void => { if (state.stalled) return; client.destroy(); upstream.destroy(); };
    client.on('close', () => upstream.destroy());
    upstream.on('close', end);
    client.on('error', () => undefined); upstream.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()); }));
  return { port: (server.address() as { port: number }).port, stall: () => { for (const s of live) s.stalled = true; }, connections: () => count };
}

describe('a half-open connection to the broker', () => {
  it('is dropped after three silent heartbeat periods, and a publish in flight goes through on the new one', async () => {
    const server = new BrokerServer({ port: 0, idleTimeout: 600 }); // heartbeat every 200 ms
    await server.listen();
    cleanups.push(() => server.close());
    const proxy = await stallingProxy(server.address().port);
    const t = new TcpTransport({ port: proxy.port, reconnectDelay: 10, maxReconnectDelay: 50 });
    cleanups.push(() => t.close());
    await t.publish({ tasks: [taskMessage('half-open')], chords: [] });
    expect(proxy.connections()).toBe(1);
    proxy.stall();
    const late = taskMessage('half-open');
    await t.publish({ tasks: [late], chords: [] }); // before: waited forever on the frozen connection
    expect(proxy.connections()).toBe(2);
    expect((await t.getState(late.id))?.state).toBe('PENDING');
  });
});
