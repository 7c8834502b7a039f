/** Review 14: the TCP client across reconnects (broker restarts on the same port and dataDir). */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Delivery, Outcome } from '../../src/transport.js';
import { BrokerServer, TcpTransport } from '../../transports/tcp/index.js';
import { taskMessage, until } from './tcp-helpers.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c(); });

const success = (id: string): Outcome => ({ records: [{ id, name: 't', state: 'SUCCESS', result: '1', attempts: 1, createdAt: 1, updatedAt: 2 }], publish: null, retry: null, chord: null });

/**
 * A consumer holds task A (tag n) when its broker restarts on the same port and dataDir; the new broker numbers
 * its tags from 1 again and hands task B (higher priority) to the re-registered consumer under the same tag n.
 */
async function tagReusedAfterRestart(): Promise<{ t: TcpTransport; old: Delivery; fresh: Delivery; deliveries: Delivery[] }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'mw-r14-'));
  cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
  const first = new BrokerServer({ port: 0, dataDir });
  await first.listen();
  const { port } = first.address();
  const t = new TcpTransport({ port, reconnectDelay: 10, maxReconnectDelay: 50 });
  cleanups.push(() => t.close());
  const a = taskMessage('r14');
  const b = taskMessage('r14', { priority: 10 });
  await t.publish({ tasks: [a], chords: [] });
  const deliveries: Delivery[] = [];
  await t.consume({ queues: ['r14'], prefetch: 1, names: null }, { deliver: (d) => deliveries.push(d), revoked: () => undefined });
  await until(() => deliveries.length === 1);
  const old = deliveries[0] as Delivery;
  expect(old.message.id).toBe(a.id);
  await t.publish({ tasks: [b], chords: [] });
  await first.close();
  const second = new BrokerServer({ port, dataDir });
  await second.listen();
  cleanups.push(() => second.close());
  await until(() => deliveries.length === 2);
  const fresh = deliveries[1] as Delivery;
  expect(fresh.message.id).toBe(b.id);
  return { t, old, fresh, deliveries };
}

describe('TCP client: delivery tags across a broker restart', () => {
  it('a late settle of a delivery from before the restart does not ack another task that got its tag number', async () => {
    const { t, old, fresh } = await tagReusedAfterRestart();
    // A's run, started before the restart, finishes now: its settle names a tag of the lost connection.
    await t.settle(old.tag, success(old.message.id));
    await t.settle(fresh.tag, success(fresh.message.id));
    expect((await t.getState(fresh.message.id))?.state).toBe('SUCCESS');
  });

  it('a late release of a delivery from before the restart does not hand back another task that got its tag number', async () => {
    const { t, old, fresh, deliveries } = await tagReusedAfterRestart();
    // A worker stopping hands back A (received before the restart) while it runs B.
    await t.release(old.tag, 0);
    await t.settle(fresh.tag, success(fresh.message.id));
    expect((await t.getState(fresh.message.id))?.state).toBe('SUCCESS');
    // With B settled the consumer has room again: it gets A (requeued by the restart), not B handed back.
    await until(() => deliveries.length === 3);
    expect(deliveries[2]?.message.id).toBe(old.message.id);
  });
});
