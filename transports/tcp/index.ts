/**
 * `millwright/tcp`: the TCP broker server and the client transport.
 * Without `dataDir` the broker keeps everything in memory only: a restart
 * loses queued tasks and results. With it, every accepted change is
 * journaled (and fsynced) before it is confirmed.
 */
export { BrokerServer, type BrokerServerOptions, type TlsOptions } from './server.js';
export { TcpTransport, type TcpTransportOptions } from './client.js';
export { PROTOCOL_VERSION, MsgType, type WireQueueStats } from './protocol.js';
export { DEFAULT_MAX_FRAME_BYTES } from './framing.js';
