/** Exact bytes against a real BrokerServer: bad input gets an error frame and a closed connection; others keep working. */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pack } from '../../src/codec.js';
import { seededRng } from '../../src/rng.js';
import { BrokerServer, TcpTransport } from '../../transports/tcp/index.js';
import { brokerServes, helloFrame, messageFrame, rawClient, rawFrame, taskMessage } from './tcp-helpers.js';

const TOKEN = 's3cret-token';

describe('broker against bad input (raw sockets)', () => {
  let server: BrokerServer;
  let port: number;
  beforeAll(async () => {
    server = new BrokerServer({ port: 0, token: TOKEN, maxFrameBytes: 4096, handshakeTimeout: 150, maxWriteBuffer: 1 << 20, pauseBytes: 1 << 16 });
    await server.listen();
    port = server.address().port;
  });
  afterAll(() => server.close());

  const errorOf = async (c: Awaited<ReturnType<typeof rawClient>>): Promise<{ code: string; message: string }> => {
    const m = await c.next((f) => f.t === 'error');
    await c.closed;
    return m.t === 'error' ? { code: m.code, message: m.message } : { code: '', message: '' };
  };

  it('a partial header then close does not disturb the broker', async () => {
    const c = await rawClient(port);
    c.socket.end(Buffer.from([0x00, 0x00, 0x01]));
    await c.closed;
    expect(await brokerServes(port, TOKEN)).toBe(true);
  });

  it('an oversize length prefix gets ERR_PROTOCOL and a closed connection', async () => {
    const c = await rawClient(port);
    c.socket.write(Buffer.from([0x00, 0x10, 0x00, 0x00, 0x01]));
    const err = await errorOf(c);
    expect(err.code).toBe('ERR_PROTOCOL');
    expect(err.message).toMatch(/exceeds maxFrameBytes \(4096\)/);
    expect(await brokerServes(port, TOKEN)).toBe(true);
  });

  it('garbage (an HTTP request) is refused', async () => {
    const c = await rawClient(port);
    c.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect((await errorOf(c)).code).toBe('ERR_PROTOCOL');
  });

  it('a frame whose body is not JSON is refused after the handshake too', async () => {
    const c = await rawClient(port);
    c.socket.write(Buffer.concat([helloFrame(TOKEN), rawFrame(3, 1, '{"c": 1, "queues": [')]));
    await c.next((f) => f.t === 'welcome');
    const err = await errorOf(c);
    expect(err).toEqual({ code: 'ERR_PROTOCOL', message: 'Malformed frame: the JSON body does not parse' });
  });

  it('an unknown message type is refused with a clear message', async () => {
    const c = await rawClient(port);
    c.socket.write(Buffer.concat([helloFrame(TOKEN), rawFrame(99, 1, '{}')]));
    expect((await errorOf(c)).message).toMatch(/Unknown message type 99/);
  });

  it('a request before hello is refused', async () => {
    const c = await rawClient(port);
    c.socket.write(rawFrame(8, 1, '{"sid":"x"}'));
    expect((await errorOf(c)).message).toMatch(/Expected a hello frame first/);
  });

  it('a wrong token gets ERR_AUTH, a missing one too', async () => {
    const wrong = await rawClient(port);
    wrong.socket.write(helloFrame('s3cret-tokeN'));
    expect(await errorOf(wrong)).toEqual({ code: 'ERR_AUTH', message: expect.stringMatching(/Wrong token/) as unknown as string });
    const missing = await rawClient(port);
    missing.socket.write(helloFrame(null));
    expect((await errorOf(missing)).message).toMatch(/requires a token/);
    expect(wrong.frames.some((f) => f.t === 'welcome') || missing.frames.some((f) => f.t === 'welcome')).toBe(false);
  });

  it('TcpTransport with a wrong token rejects with AuthError and does not retry', async () => {
    const t = new TcpTransport({ port, token: 'nope' });
    await expect(t.connect()).rejects.toMatchObject({ code: 'ERR_AUTH' });
    await expect(t.publish({ tasks: [], chords: [] })).rejects.toMatchObject({ code: 'ERR_AUTH' });
  });

  it('a wrong protocol version is refused', async () => {
    const c = await rawClient(port);
    c.socket.write(rawFrame(1, 0, JSON.stringify({ v: 99, token: TOKEN })));
    expect((await errorOf(c)).message).toMatch(/Unsupported protocol version 99/);
  });

  it('a silent client is closed after the handshake timeout', async () => {
    const c = await rawClient(port);
    const err = await errorOf(c);
    expect(err.message).toMatch(/No hello within 150 ms/);
    expect(await brokerServes(port, TOKEN)).toBe(true);
  });

  it('a client that never reads is disconnected once its queued output passes maxWriteBuffer', async () => {
    const reader = await rawClient(port);
    reader.socket.write(helloFrame(TOKEN));
    await reader.next((f) => f.t === 'welcome');
    const producer = new TcpTransport({ port, token: TOKEN });
    const m = taskMessage('never-reads');
    reader.send({ t: 'watch', ids: [m.id] });
    await producer.publish({ tasks: [m], chords: [] });
    await producer.getState(m.id); // the watch frame was handled before this reply
    reader.socket.pause(); // from now on it reads nothing
    const tag = await new Promise<number>((resolve) => {
      void producer.consume({ queues: ['never-reads'], prefetch: 1, names: null }, { deliver: (d) => resolve(d.tag), revoked: () => undefined });
    });
    const before = server.stats().connections;
    const chunk = pack(new Uint8Array(3000).fill(1));
    let sent = 0;
    while (server.stats().connections === before && sent < 20_000) {
      producer.progress(tag, m.id, chunk);
      if (++sent % 50 === 0) await producer.getState(m.id); // let the progress frames go out
    }
    expect(server.stats().connections).toBe(before - 1);
    reader.socket.resume(); // a paused socket never sees the close
    await reader.closed;
    expect(sent * 3000).toBeGreaterThan(1 << 20);
    await producer.close();
    expect(await brokerServes(port, TOKEN)).toBe(true);
  }, 30_000);

  it('survives a few thousand seeded mutations of valid frame streams', async () => {
    const rng = seededRng(7);
    const valid = Buffer.concat([
      helloFrame(TOKEN),
      messageFrame({ t: 'publish', id: 1, batch: { tasks: [taskMessage('fuzz')], chords: [] } }),
      rawFrame(3, 2, JSON.stringify({ c: 1, queues: ['fuzz'], prefetch: 2, names: null })),
      messageFrame({ t: 'setState', id: 3, record: { id: 'x', name: 't', state: 'STARTED', attempts: 1, createdAt: 1, updatedAt: 2 } }),
      messageFrame({ t: 'settle', id: 4, tag: 1, mid: 'x', outcome: { records: [{ id: 'x', name: 't', state: 'SUCCESS', result: '1', attempts: 1, createdAt: 1, updatedAt: 2 }], publish: null, retry: null, chord: null } }),
      rawFrame(10, 0, JSON.stringify({ ids: ['a'] })),
      rawFrame(13, 0, JSON.stringify({ tags: [1] })),
    ]);
    const mutate = (): Buffer => {
      const b = Buffer.from(valid);
      const edits = 1 + Math.floor(rng() * 4);
      for (let e = 0; e < edits; e++) {
        const at = Math.floor(rng() * b.length);
        const kind = rng();
        if (kind < 0.6) b[at] = Math.floor(rng() * 256);
        else if (kind < 0.8) b[at] = (b[at] as number) ^ (1 << Math.floor(rng() * 8));
        else return b.subarray(0, at);
      }
      return b;
    };
    const one = (bytes: Buffer): Promise<void> => new Promise((resolve) => {
      const s = connect({ host: '127.0.0.1', port });
      s.on('error', () => undefined);
      s.on('close', () => resolve());
      s.on('data', () => undefined);
      s.once('connect', () => s.end(bytes));
    });
    for (let round = 0; round < 40; round++) await Promise.all(Array.from({ length: 50 }, () => one(mutate())));
    expect(await brokerServes(port, TOKEN)).toBe(true);
  }, 60_000);
});
