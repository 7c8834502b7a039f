import { MemoryTransport } from '../../src/index.js';
import { describeTransport } from './describe-transport.js';

describeTransport('memory', async () => { const shared = new MemoryTransport(); return { transport: async () => shared, cleanup: () => shared.close() }; });
