import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BrokerServer, TcpTransport } from '../../transports/tcp/index.js';
import { describeTransport } from './describe-transport.js';

describeTransport('tcp', async () => {
  const server = new BrokerServer({ port: 0 });
  await server.listen();
  const { port } = server.address();
  return { transport: async () => new TcpTransport({ port }), cleanup: () => server.close() };
});

describeTransport('tcp with journal', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'mw-conf-'));
  const server = new BrokerServer({ port: 0, dataDir });
  await server.listen();
  const { port } = server.address();
  return {
    transport: async () => new TcpTransport({ port }),
    cleanup: async () => { await server.close(); rmSync(dataDir, { recursive: true, force: true }); },
  };
});
