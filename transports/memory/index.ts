export { MemoryTransport, type MemoryTransportOptions } from './memory-transport.js';
export { BrokerCore, isFinal, type QueueStats } from './broker-core.js';
