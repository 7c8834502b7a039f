/** Review 17: a dataDir reached through a symlink; a broker busy journaling answers a client's liveness probe at once. */
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BrokerCore } from '../../transports/memory/broker-core.js';
import { BrokerServer } from '../../transports/tcp/index.js';
import { Journal } from '../../transports/tcp/journal.js';
import { PROBE_ID, type ServerMessage } from '../../transports/tcp/protocol.js';
import { helloFrame, rawClient, taskMessage } from './tcp-helpers.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c(); });

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mw-review17-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('one broker per dataDir, in one process', () => {
  it('a second broker on the same dataDir reached through a symlink is refused (it took the first one\'s lock over)', async () => {
    const dir = tempDir();
    const data = join(dir, 'data');
    const link = join(dir, 'link');
    const first = new BrokerServer({ port: 0, dataDir: data, fsync: false });
    await first.listen();
    cleanups.push(() => first.close());
    symlinkSync(data, link);
    const second = new BrokerServer({ port: 0, dataDir: link, fsync: false });
    cleanups.push(() => second.close());
    await expect(second.listen()).rejects.toThrow(/in use by another broker/);
  });
});

describe('a broker busy making a journal group durable (slow disk, compaction)', () => {
  it('answers a client\'s liveness probe at once, not after the commit (clients drop a connection silent for 3 heartbeat periods)', async () => {
    // A slow disk, made deterministic: commits wait for release().
    const commit = Journal.prototype.commit;
    let release!: () => void;
    const disk = new Promise<void>((resolve) => { release = resolve; });
    Journal.prototype.commit = function (this: Journal): Promise<void> { return disk.then(() => commit.call(this)); };
    cleanups.push(() => { release(); Journal.prototype.commit = commit; });
    // Before the fix, the probe's answer went through the core: the disk finishes two turns after the broker read it
    // (after its end-of-turn flush).
    const getState = BrokerCore.prototype.getState;
    BrokerCore.prototype.getState = function (this: BrokerCore, id: string) {
      if (id === PROBE_ID) setImmediate(() => setImmediate(release));
      return getState.call(this, id);
    };
    cleanups.push(() => { BrokerCore.prototype.getState = getState; });

    const server = new BrokerServer({ port: 0, dataDir: tempDir(), fsync: false });
    await server.listen();
    cleanups.push(() => server.close());
    const raw = await rawClient(server.address().port);
    cleanups.push(() => { release(); raw.socket.destroy(); });
    raw.socket.write(helloFrame());
    await raw.next((m) => m.t === 'welcome');
    raw.send({ t: 'publish', id: 1, batch: { tasks: [taskMessage('busy')], chords: [] } });
    raw.send({ t: 'getState', id: 2, sid: PROBE_ID });
    // Answered at once: the disk may finish now (before the fix the answer came only after it).
    void raw.next((m) => m.t === 'result' && m.id === 2).then(() => release());
    await raw.next((m) => m.t === 'ok' && m.id === 1);
    await raw.next((m) => m.t === 'result' && m.id === 2);
    const order = raw.frames.filter((m): m is Extract<ServerMessage, { id: number }> => m.t === 'ok' || m.t === 'result').map((m) => `${m.t} ${m.id}`);
    expect(order).toEqual(['result 2', 'ok 1']);
  });
});
