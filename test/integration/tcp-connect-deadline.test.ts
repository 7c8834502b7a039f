import { afterAll, describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/index.js';
import { BrokerServer, TcpTransport } from '../../transports/tcp/index.js';

const server = new BrokerServer({});
afterAll(() => server.close());

describe('TcpTransport connect deadline', () => {
  it('is disarmed once connected, so it cannot keep the process alive for sendTimeout', async () => {
    await server.listen();
    const clock = new FakeClock();
    const transport = new TcpTransport({ host: '127.0.0.1', port: server.address().port, clock, sendTimeout: 30_000 });
    const connecting = transport.connect();
    const whileConnecting = clock.pending;
    await connecting;
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(whileConnecting).toBeGreaterThan(0);
    expect(clock.pending).toBe(whileConnecting - 1);
    await transport.close();
  });
});
