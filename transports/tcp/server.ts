/**
 * The TCP broker: one BrokerCore (queues and result store) behind sockets,
 * with an optional journal for durability. Every frame produced in one turn
 * leaves in one write per connection; with a journal, those frames wait for
 * the turn's group commit (one write + one fdatasync) so nothing is
 * confirmed before it is durable.
 */
import { createHash } from 'node:crypto';
import { createServer as createNetServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { debuglog } from 'node:util';
import { systemClock, type Clock } from '../../src/clock.js';
import { ClosedError, ConnectionError } from '../../src/errors.js';
import { checkOptions, rules } from '../../src/options.js';
import { TimerQueue } from '../../src/timer-queue.js';
import { BrokerCore } from '../memory/broker-core.js';
import { Connection, type ConnectionHost } from './connection.js';
import { DEFAULT_MAX_FRAME_BYTES } from './framing.js';
import { lockDataDir } from './dir-lock.js';
import { Journal, type JournalRecord } from './journal.js';
import type { WireQueueStats } from './protocol.js';

const log = debuglog('millwright');

/** TLS material, PEM strings or buffers (as `node:tls` takes them). */
export interface TlsOptions {
  readonly key?: string | Buffer;
  readonly cert?: string | Buffer;
  /** CA to verify the peer: on the server it also requires client certificates. */
  readonly ca?: string | Buffer;
}

/** Options of `new BrokerServer()`. */
export interface BrokerServerOptions {
  /** Interface to bind. Default `"127.0.0.1"` (loopback only). */
  readonly host?: string;
  /** Port; 0 picks a free one (read it from `address()`). Default 0. */
  readonly port?: number;
  /** Shared secret clients must present; compared in constant time. Default: none. */
  readonly token?: string;
  /** Serve TLS with this key and certificate. Default: plain TCP. */
  readonly tls?: TlsOptions;
  /** Directory of the journal and snapshots. Default: none (memory only: a restart loses everything). */
  readonly dataDir?: string;
  /** Largest accepted frame payload, bytes. Default 16 MiB. */
  readonly maxFrameBytes?: number;
  /** ms a delivery may be held without settle, progress or heartbeat before it is redelivered. Default 30 000. */
  readonly visibilityTimeout?: number;
  /** ms a new connection has to send its hello. Default 5 000. */
  readonly handshakeTimeout?: number;
  /** ms without any frame after which a connection is closed (clients heartbeat well within it). Default 60 000. */
  readonly idleTimeout?: number;
  /** Bytes queued to a socket past which the broker stops reading from it. Default 1 MiB. */
  readonly pauseBytes?: number;
  /** Bytes queued to a socket past which the peer is disconnected (it does not read). Default 16 MiB. */
  readonly maxWriteBuffer?: number;
  /** Journal bytes waiting for disk past which every connection stops being read. Default 8 MiB. */
  readonly maxJournalBacklog?: number;
  /** Log bytes past which the journal is compacted into a snapshot. Default 64 MiB. */
  readonly compactBytes?: number;
  /** fdatasync each journal group. Default true. */
  readonly fsync?: boolean;
  /** Time source for ETAs, expiry and visibility deadlines. Default: the real clock. */
  readonly clock?: Clock;
}

const RULES = {
  host: rules.string, port: rules.int(0, 65535), token: rules.string, tls: rules.object, dataDir: rules.string,
  maxFrameBytes: rules.int(64), visibilityTimeout: rules.int(1), handshakeTimeout: rules.int(1), idleTimeout: rules.int(1),
  pauseBytes: rules.int(1), maxWriteBuffer: rules.int(1), maxJournalBacklog: rules.int(1), compactBytes: rules.int(1),
  fsync: rules.boolean, clock: rules.clock,
};

interface Gate { ready: boolean; readonly batch: Array<[Connection, Buffer[]]> }

/**
 * @example
 * const server = new BrokerServer({ port: 7400, dataDir: './data', token: process.env.TOKEN });
 * await server.listen();
 * const { port } = server.address();
 */
export class BrokerServer {
  readonly #o: Required<Omit<BrokerServerOptions, 'token' | 'tls' | 'dataDir'>> & Pick<BrokerServerOptions, 'token' | 'tls' | 'dataDir'>;
  readonly #core: BrokerCore;
  readonly #host: ConnectionHost;
  readonly #conns = new Set<Connection>();
  readonly #outgoing = new Set<Connection>();
  readonly #gates: Gate[] = [];
  readonly #visibility: TimerQueue<Connection>;
  #journal: Journal | undefined;
  /** Releases the dataDir lock. */
  #unlock: (() => void) | undefined;
  #server: Server | undefined;
  #sweep: NodeJS.Timeout | undefined;
  #flushScheduled = false;
  #readingPaused = false;
  #state: 'new' | 'listening' | 'closed' = 'new';

  constructor(options: BrokerServerOptions = {}) {
    checkOptions('BrokerServer', options, RULES);
    this.#o = Object.freeze({
      host: '127.0.0.1', port: 0, maxFrameBytes: DEFAULT_MAX_FRAME_BYTES, visibilityTimeout: 30_000, handshakeTimeout: 5_000,
      idleTimeout: 60_000, pauseBytes: 1 << 20, maxWriteBuffer: 16 << 20, maxJournalBacklog: 8 << 20, compactBytes: 64 << 20,
      fsync: true, clock: systemClock, ...stripUndefined(options),
    });
    const o = this.#o;
    this.#core = new BrokerCore(o.clock);
    this.#visibility = new TimerQueue(o.clock, (conn) => conn.visibilityDue(o.clock.now()));
    const server = this;
    this.#host = {
      core: this.#core, maxFrameBytes: o.maxFrameBytes, visibilityTimeout: o.visibilityTimeout,
      heartbeat: Math.max(1, Math.floor(Math.min(o.visibilityTimeout, o.idleTimeout) / 3)),
      tokenDigest: o.token === undefined ? null : createHash('sha256').update(o.token).digest(),
      now: () => o.clock.now(),
      get journaling() { return server.#journal !== undefined; },
      journal: (record: JournalRecord) => server.#journal?.append(record),
      wantsFlush: (conn) => server.#wantsFlush(conn),
      watchVisibility: (conn, due) => server.#visibility.add(due, conn),
      stats: () => server.stats(),
      closed: (conn) => { server.#conns.delete(conn); server.#outgoing.delete(conn); },
    };
  }

  /** Opens the journal (replaying it) and starts listening. */
  async listen(): Promise<void> {
    if (this.#state !== 'new') throw new ClosedError(this.#state === 'listening' ? 'This BrokerServer already listens; it' : 'BrokerServer');
    const o = this.#o;
    if (o.dataDir !== undefined) {
      this.#unlock = lockDataDir(o.dataDir);
      try {
        this.#journal = Journal.open(o.dataDir, this.#core, { compactBytes: o.compactBytes, fsync: o.fsync });
      } catch (err) { this.#releaseDir(); throw err; }
    }
    const onSocket = (socket: Socket): void => this.#accept(socket);
    const server = o.tls === undefined
      ? createNetServer(onSocket)
      : createTlsServer({ ...o.tls, requestCert: o.tls.ca !== undefined, rejectUnauthorized: o.tls.ca !== undefined }, onSocket);
    if (o.tls !== undefined) server.on('tlsClientError', (err: Error) => log('broker: TLS handshake failed: %s', err.message));
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => { this.#releaseDir(); reject(new ConnectionError(`BrokerServer could not listen on ${o.host}:${o.port}: ${err.message}`)); });
      server.listen(o.port, o.host, () => resolve());
    });
    server.on('error', (err) => log('broker: server error: %s', err.message));
    this.#state = 'listening';
    const every = Math.max(10, Math.floor(Math.min(o.idleTimeout, o.handshakeTimeout) / 4));
    this.#sweep = setInterval(() => this.#sweepIdle(), every);
    this.#sweep.unref();
  }

  /** The bound address; `port` is the real one when 0 was asked for. */
  address(): { host: string; port: number } {
    const a = this.#server?.address() as AddressInfo | null | undefined;
    if (a === null || a === undefined) throw new ClosedError('BrokerServer is not listening: call listen() first; it');
    return { host: a.address, port: a.port };
  }

  /** Queue depths and connection count. */
  stats(): { queues: WireQueueStats[]; connections: number } {
    return { queues: this.#core.stats(), connections: this.#conns.size };
  }

  /** Stops listening, closes every connection, makes pending journal records durable and closes the journal. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    const wasListening = this.#state === 'listening';
    this.#state = 'closed';
    if (this.#sweep !== undefined) clearInterval(this.#sweep);
    this.#visibility.clear();
    if (wasListening) {
      const closing = new Promise<void>((resolve) => this.#server?.close(() => resolve()));
      for (const c of this.#conns) c.socket.destroy();
      await closing;
    }
    await this.#journal?.close();
    this.#unlock?.();
    this.#core.close();
  }

  /** A listen() that failed: the journal stays unused, and the dataDir free for another broker. */
  #releaseDir(): void {
    this.#unlock?.();
    this.#unlock = undefined;
  }

  #accept(socket: Socket): void {
    if (this.#state !== 'listening') { socket.destroy(); return; }
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    const conn = new Connection(socket, this.#host);
    this.#conns.add(conn);
    socket.on('drain', () => this.#resume(conn));
    if (this.#readingPaused) { conn.paused = true; socket.pause(); }
  }

  #sweepIdle(): void {
    const now = this.#o.clock.now();
    for (const c of this.#conns) {
      if (c.state === 'handshake' && now - c.openedAt > this.#o.handshakeTimeout) c.fail(new Error(`No hello within ${this.#o.handshakeTimeout} ms: closing`), 'ERR_PROTOCOL');
      else if (c.state === 'open' && now - c.lastSeen > this.#o.idleTimeout) c.fail(new Error(`No frame for ${this.#o.idleTimeout} ms (clients send heartbeats): closing an idle or half-open connection`), 'ERR_PROTOCOL');
    }
  }

  #wantsFlush(conn: Connection): void {
    this.#outgoing.add(conn);
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => this.#flush());
  }

  /** End of turn: every connection's frames go out in one write, after the turn's journal group is durable. */
  #flush(): void {
    this.#flushScheduled = false;
    const batch: Array<[Connection, Buffer[]]> = [];
    for (const c of this.#outgoing) batch.push([c, c.out.take()]);
    this.#outgoing.clear();
    const journal = this.#journal;
    if (journal === undefined || (!journal.dirty && this.#gates.length === 0)) { this.#write(batch); return; }
    const gate: Gate = { ready: !journal.dirty, batch };
    this.#gates.push(gate);
    if (!journal.dirty) return;
    const durable = journal.wantsCompaction ? journal.compact(this.#core) : journal.commit();
    if (journal.backlog > this.#o.maxJournalBacklog) this.#pauseAll();
    durable.then(() => {
      gate.ready = true;
      while (this.#gates[0]?.ready === true) this.#write((this.#gates.shift() as Gate).batch);
      if (this.#readingPaused && journal.backlog <= this.#o.maxJournalBacklog / 2) this.#resumeAll();
    }, (err: unknown) => {
      log('broker: journal failure, dropping every connection: %s', (err as Error).message);
      for (const c of this.#conns) c.destroy('journal failure');
    });
  }

  #write(batch: Array<[Connection, Buffer[]]>): void {
    for (const [conn, pieces] of batch) {
      const socket = conn.socket;
      if (socket.destroyed || pieces.length === 0) continue;
      if (pieces.length === 1) socket.write(pieces[0] as Buffer);
      else { socket.cork(); for (const p of pieces) socket.write(p); socket.uncork(); }
      if (conn.state === 'closing') { socket.end(); setTimeout(() => socket.destroy(), 1_000).unref(); continue; }
      const queued = socket.writableLength;
      if (queued > this.#o.maxWriteBuffer) conn.destroy(`${queued} bytes queued to a peer that does not read (maxWriteBuffer ${this.#o.maxWriteBuffer})`);
      else if (queued > this.#o.pauseBytes && !conn.paused) { conn.paused = true; socket.pause(); }
    }
  }

  #resume(conn: Connection): void {
    if (conn.paused && !this.#readingPaused && conn.isOpen) { conn.paused = false; conn.socket.resume(); }
  }

  #pauseAll(): void {
    this.#readingPaused = true;
    for (const c of this.#conns) { c.paused = true; c.socket.pause(); }
  }

  #resumeAll(): void {
    this.#readingPaused = false;
    for (const c of this.#conns) if (c.socket.writableLength <= this.#o.pauseBytes) this.#resume(c);
  }
}

function stripUndefined<T extends object>(o: T): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out as T;
}
