/**
 * The TCP transport: a client of a BrokerServer. One connection carries
 * requests (with ids, answered in order), pushes (deliveries, revoke notices,
 * watch events) and heartbeats. It reconnects with capped exponential
 * backoff, re-registers its consumers and watches, re-sends unanswered
 * requests, and re-reads the state of watched ids so a final state missed
 * while down still reaches its waiters.
 *
 *   idle --connect()--> connecting --welcome--> open --socket lost--> backoff --timer--> connecting
 *                           \--ERR_AUTH / bad version--> closed <--close()-- (any state)
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { debuglog } from 'node:util';
import { systemClock, type Clock, type TimerHandle } from '../../src/clock.js';
import type { Packed } from '../../src/codec.js';
import { AuthError, ClosedError, ConnectionError, fromErrorInfo, MillwrightError, ProtocolError, ValidationError } from '../../src/errors.js';
import { checkOptions, rules } from '../../src/options.js';
import {
  DONE, type Batch, type ConsumeSpec, type Consumer, type ConsumerHandler, type DeliveryTag, type Outcome, type StateRecord, type Transport,
  type TransportContext, type WatchEvent,
} from '../../src/transport.js';
import { DEFAULT_MAX_FRAME_BYTES, FrameDecoder, HEADER_BYTES, Outbox } from './framing.js';
import { decodeServerMessage, PROBE_ID, PROTOCOL_VERSION, writeMessage, type ClientMessage, type ServerMessage, type WireQueueStats } from './protocol.js';
import { Requests, type Request } from './requests.js';

const log = debuglog('millwright');

/** Options of `new TcpTransport()`. */
export interface TcpTransportOptions {
  /** Broker host. Default `"127.0.0.1"`. */
  readonly host?: string;
  /** Broker port. Required. */
  readonly port: number;
  /** The broker's token, if it requires one. */
  readonly token?: string;
  /** Connect with TLS: `ca` to trust the broker's certificate, `cert`/`key` for client authentication. */
  readonly tls?: { readonly ca?: string | Buffer; readonly cert?: string | Buffer; readonly key?: string | Buffer; readonly servername?: string };
  /** ms for one connection attempt (TCP + TLS + hello). Default 5 000. */
  readonly connectTimeout?: number;
  /** ms a request waits for a connection before rejecting with ConnectionError. Default 30 000. */
  readonly sendTimeout?: number;
  /** First reconnect delay, ms; doubles per failed attempt. Default 50. */
  readonly reconnectDelay?: number;
  /** Cap of the reconnect delay, ms. Default 2 000. */
  readonly maxReconnectDelay?: number;
  /** Requests sent and not yet answered, at most (producer backpressure). Default 1 024. */
  readonly maxInFlight?: number;
  /** Largest accepted frame payload, bytes. Default 16 MiB. */
  readonly maxFrameBytes?: number;
  /** Time source for network timers (backoff, timeouts, heartbeats). Default: the real clock. */
  readonly clock?: Clock;
}

const RULES = {
  host: rules.string, port: rules.int(1, 65535), token: rules.string, tls: rules.object, connectTimeout: rules.int(1),
  sendTimeout: rules.int(1), reconnectDelay: rules.int(1), maxReconnectDelay: rules.int(1), maxInFlight: rules.int(1),
  maxFrameBytes: rules.int(64), clock: rules.clock,
};

interface ConsumerEntry { readonly spec: ConsumeSpec; readonly handler: ConsumerHandler; registered: boolean; cancelled: boolean }

/**
 * @example
 * const app = new App({ transport: new TcpTransport({ host: 'broker.local', port: 7400, token }) });
 */
export class TcpTransport implements Transport {
  readonly #o: Required<Omit<TcpTransportOptions, 'token' | 'tls'>> & Pick<TcpTransportOptions, 'token' | 'tls'>;
  readonly #clock: Clock;
  readonly #requests: Requests;
  readonly #consumers = new Map<number, ConsumerEntry>();
  readonly #watchers = new Map<string, Set<(event: WatchEvent) => void>>();
  /** Deliveries held on the current connection: tag -> message id. */
  readonly #held = new Map<DeliveryTag, string>();
  /**
   * Tags handed to consumers are the broker's plus this base, raised past every tag handed out on earlier
   * connections: a restarted broker numbers its tags from 1 again, and a late settle or release of a delivery
   * of a lost connection must not hit another task's delivery on this one.
   */
  #tagBase = 0;
  /** When the last byte came from the broker (see #armHeartbeat). */
  #heard = 0;
  #maxTag = 0;
  #out = new Outbox();
  #socket: Socket | undefined;
  #state: 'idle' | 'connecting' | 'open' | 'backoff' | 'closed' = 'idle';
  #attempt = 0;
  #timer: TimerHandle | undefined;
  #heartbeat: TimerHandle | undefined;
  #heartbeatMs = 10_000;
  #flushScheduled = false;
  /** The broker's maxFrameBytes, from its welcome. */
  #brokerMax = DEFAULT_MAX_FRAME_BYTES;
  #nextConsumer = 1;
  #connecting: Promise<void> | undefined;
  #onFirst: { resolve: () => void; reject: (e: Error) => void } | undefined;
  /** Why the transport closed: ClosedError after close(), AuthError after a refused token. */
  #fatal: Error = new ClosedError('TcpTransport');

  constructor(options: TcpTransportOptions) {
    checkOptions('TcpTransport', options, RULES);
    const defined = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as TcpTransportOptions;
    this.#o = Object.freeze({
      host: '127.0.0.1', connectTimeout: 5_000, sendTimeout: 30_000, reconnectDelay: 50, maxReconnectDelay: 2_000,
      maxInFlight: 1024, maxFrameBytes: DEFAULT_MAX_FRAME_BYTES, clock: systemClock, ...defined,
    });
    this.#clock = this.#o.clock;
    this.#requests = new Requests(this.#clock, this.#o.sendTimeout, this.#o.maxInFlight);
  }

  /** True while a connection to the broker is open. */
  get connected(): boolean {
    return this.#state === 'open';
  }

  /** Connects; resolves after the first handshake. Rejects with AuthError, ProtocolError or (after `sendTimeout`) ConnectionError. */
  connect(_context?: TransportContext): Promise<void> {
    if (this.#state === 'closed') return Promise.reject(this.#fatal);
    if (this.#connecting !== undefined) return this.#connecting;
    let timer: TimerHandle | undefined;
    this.#connecting = new Promise<void>((resolve, reject) => {
      this.#onFirst = { resolve, reject };
      timer = this.#clock.setTimer(() => {
        if (this.#onFirst === undefined) return;
        const err = new ConnectionError(`Could not connect to the broker at ${this.#o.host}:${this.#o.port} within ${this.#o.sendTimeout} ms: check that it runs and is reachable, and that both sides use TLS or neither does (a TLS broker closes a plain connection without a word)`);
        void this.#shutdown(err);
      }, this.#o.sendTimeout);
      this.#dial();
    });
    // The deadline must not outlive the first handshake (it would keep the process alive for sendTimeout).
    const clear = (): void => { if (timer !== undefined) this.#clock.clearTimer(timer); };
    this.#connecting.then(clear, clear);
    return this.#connecting;
  }

  async close(): Promise<void> {
    await this.#shutdown(new ClosedError('TcpTransport'));
  }

  publish(batch: Batch): Promise<void> {
    return this.#request((id) => ({ t: 'publish', id, batch }));
  }

  async consume(spec: ConsumeSpec, handler: ConsumerHandler): Promise<Consumer> {
    const c = this.#nextConsumer++;
    const entry: ConsumerEntry = { spec, handler, registered: false, cancelled: false };
    this.#consumers.set(c, entry);
    try {
      await this.#request((id) => ({ t: 'consume', id, c, spec }));
    } catch (err) {
      this.#consumers.delete(c);
      throw err;
    }
    entry.registered = true;
    return {
      cancel: async () => {
        if (entry.cancelled) return;
        entry.cancelled = true;
        this.#consumers.delete(c);
        // Without a connection the broker has already cancelled it (and requeued its deliveries).
        if (this.#state === 'open') await this.#request((id) => ({ t: 'cancel', id, c }), true);
      },
    };
  }

  /** A delivery of a lost connection was already requeued by the broker: settling it is a no-op. */
  settle(tag: DeliveryTag, outcome: Outcome): Promise<void> {
    if (tag <= this.#tagBase) return Promise.resolve();
    const mid = this.#held.get(tag) ?? outcome.records[0]?.id ?? '';
    this.#held.delete(tag);
    const wire = tag - this.#tagBase;
    return this.#request((id) => ({ t: 'settle', id, tag: wire, mid, outcome }));
  }

  /** A delivery not held on the current connection was already requeued by the broker: releasing it is a no-op. */
  release(tag: DeliveryTag, delayMs: number): Promise<void> {
    const mid = this.#held.get(tag);
    if (mid === undefined) return Promise.resolve();
    this.#held.delete(tag);
    const wire = tag - this.#tagBase;
    return this.#request((id) => ({ t: 'release', id, tag: wire, mid, delay: Math.max(0, Math.round(delayMs)) }));
  }

  /**
   * Pipelined: resolves once the frame is queued, without a round trip, so a
   * worker starts the task at once. Frames on one connection are applied in
   * order, so the STARTED state is in the store before this client's later
   * settle; the broker still confirms it (after the journal) and a failure
   * is logged under NODE_DEBUG=millwright. Returns the shared settled `DONE`:
   * the caller has nothing to wait for.
   */
  setState(record: StateRecord): Promise<void> {
    if (this.#state === 'closed') { log('tcp client: state %s of %s was not recorded: %s', record.state, record.id, this.#fatal.message); return DONE; }
    if (this.#state === 'idle') void this.connect().catch(() => undefined);
    this.#requests.addUnawaited((id) => ({ t: 'setState', id, record }), (err) => {
      log('tcp client: state %s of %s was not recorded: %s', record.state, record.id, err.message);
    });
    if (this.#state === 'open') this.#scheduleFlush();
    return DONE;
  }

  async getState(id: string): Promise<StateRecord | undefined> {
    const record = await this.#request<StateRecord | null>((rid) => ({ t: 'getState', id: rid, sid: id }));
    return record ?? undefined;
  }

  /** The broker has the records: always asked for (getState). */
  peekState(_id: string): null {
    return null;
  }

  watch(id: string, listener: (event: WatchEvent) => void): () => void {
    let set = this.#watchers.get(id);
    if (set === undefined) {
      this.#watchers.set(id, (set = new Set()));
      this.#oneWay({ t: 'watch', ids: [id] });
    }
    set.add(listener);
    return () => {
      const s = this.#watchers.get(id);
      if (s === undefined || !s.delete(listener) || s.size > 0) return;
      this.#watchers.delete(id);
      this.#oneWay({ t: 'unwatch', ids: [id] });
    };
  }

  /** Progress is best effort: dropped while disconnected. It extends the delivery's visibility deadline. */
  progress(tag: DeliveryTag, id: string, value: Packed): void {
    if (this.#held.get(tag) !== id) return;
    this.#oneWay({ t: 'progress', tag: tag - this.#tagBase, mid: id, value });
  }

  revoke(id: string): Promise<void> {
    return this.#request((rid) => ({ t: 'revoke', id: rid, sid: id }));
  }

  /** Queue depths and connection count, from the broker. */
  async stats(): Promise<{ queues: readonly WireQueueStats[]; connections: number }> {
    return this.#request((id) => ({ t: 'stats', id }));
  }

  #request<T>(build: (id: number) => ClientMessage, doneOnLoss = false): Promise<T> {
    if (this.#state === 'closed') return Promise.reject(this.#fatal);
    if (this.#state === 'idle') void this.connect().catch(() => undefined);
    const p = this.#requests.add<T>(build, doneOnLoss);
    // Encoded at the end of the turn (#pump in the flush), so a STARTED state can be dropped when its outcome follows.
    if (this.#state === 'open') this.#scheduleFlush();
    return p;
  }

  #oneWay(msg: ClientMessage): void {
    if (this.#state !== 'open') return;
    this.#pump(); // requests made before this message go before it
    try { writeMessage(this.#out, msg); } catch (err) { log('client: %s', encodeError(msg.t, err).message); return; }
    this.#scheduleFlush();
  }

  /**
   * Encodes the requests that may be sent now. A STARTED state immediately
   * followed by the settle of the same task (a task that finished within the
   * turn it started in) is not sent: the outcome supersedes it in the same
   * frame batch, so watchers would see both at once anyway, and the broker
   * is spared a state write per task. Its promise resolves.
   */
  #pump(): void {
    if (this.#state !== 'open') return;
    const ready = this.#requests.sendable();
    for (let i = 0; i < ready.length; i++) {
      const r = ready[i] as Request;
      const m = r.msg;
      if (m.t === 'setState' && m.record.state === 'STARTED') {
        const next = ready[i + 1]?.msg;
        if (next !== undefined && next.t === 'settle' && next.mid === m.record.id) { this.#requests.drop(r); continue; }
      }
      // A value that cannot be encoded fails its own request, not the client (nothing reached the outbox);
      // so does a frame over the broker's maxFrameBytes (sent, it would close the connection, again on every retry).
      const before = this.#out.bytes;
      try { writeMessage(this.#out, m); } catch (err) { this.#requests.settle(r.id, encodeError(m.t, err)); continue; }
      if (this.#out.bytes - before - HEADER_BYTES > this.#brokerMax) {
        const size = this.#out.dropLast();
        this.#requests.settle(r.id, new ValidationError(`The ${m.t} request is a ${size}-byte frame, over the broker's maxFrameBytes (${this.#brokerMax}): send smaller values, or raise maxFrameBytes on the broker and clients`, m.t));
      }
    }
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => {
      this.#flushScheduled = false;
      this.#pump();
      const pieces = this.#out.take();
      const socket = this.#socket;
      if (socket === undefined || socket.destroyed || this.#state !== 'open') return;
      if (pieces.length === 1) socket.write(pieces[0] as Buffer);
      else { socket.cork(); for (const p of pieces) socket.write(p); socket.uncork(); }
    });
  }

  #dial(): void {
    if (this.#state === 'closed') return;
    this.#state = 'connecting';
    const o = this.#o;
    const socket = o.tls === undefined
      ? netConnect({ host: o.host, port: o.port })
      : tlsConnect({ host: o.host, port: o.port, ...o.tls, servername: o.tls.servername ?? (/^[\d.:]+$/.test(o.host) ? '' : o.host) });
    this.#socket = socket;
    socket.setNoDelay(true);
    const timer = this.#clock.setTimer(() => socket.destroy(new Error(`no welcome within ${o.connectTimeout} ms`)), o.connectTimeout);
    let welcomed = false;
    const decoder = new FrameDecoder(o.maxFrameBytes, (buf, start, end) => {
      const msg = decodeServerMessage(buf, start, end);
      if (!welcomed) {
        if (msg.t === 'welcome') { welcomed = true; this.#brokerMax = msg.max ?? DEFAULT_MAX_FRAME_BYTES; this.#clock.clearTimer(timer); this.#opened(msg.heartbeat); return; }
        if (msg.t !== 'error') throw new ProtocolError(`Expected welcome from the broker, got ${msg.t}`);
      }
      this.#onMessage(msg);
    });
    socket.once(o.tls === undefined ? 'connect' : 'secureConnect', () => {
      writeMessage(this.#out, { t: 'hello', v: PROTOCOL_VERSION, token: o.token ?? null, max: o.maxFrameBytes });
      const pieces = this.#out.take();
      for (const p of pieces) socket.write(p);
    });
    socket.on('data', (chunk: Buffer) => {
      this.#heard = this.#clock.now();
      try { decoder.push(chunk); } catch (err) { log('tcp client: bad frame from broker: %s', (err as Error).message); socket.destroy(); }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      log('tcp client: %s', err.message);
      // A certificate the client does not trust (or a broker without TLS) will not change on a retry: the first
      // connect() fails at once with the reason instead of after sendTimeout. (Later reconnects keep trying.)
      if (this.#onFirst !== undefined && o.tls !== undefined && isTlsSetupError(err)) {
        void this.#shutdown(new ConnectionError(`TLS with the broker at ${o.host}:${o.port} failed: ${err.message} (${String(err.code)}); ${tlsHint(String(err.code))}`));
      }
    });
    socket.on('close', () => {
      this.#clock.clearTimer(timer);
      decoder.stop();
      if (this.#socket === socket) this.#lost();
    });
  }

  #opened(heartbeat: number): void {
    this.#heard = this.#clock.now();
    this.#state = 'open';
    this.#attempt = 0;
    this.#heartbeatMs = heartbeat;
    this.#held.clear();
    // Consumers and watches first, then the requests that waited, then catch up on missed states.
    for (const [c, e] of this.#consumers) if (e.registered) writeMessage(this.#out, { t: 'consume', id: 0, c, spec: e.spec });
    if (this.#watchers.size > 0) writeMessage(this.#out, { t: 'watch', ids: [...this.#watchers.keys()] });
    this.#requests.connected();
    this.#pump();
    this.#scheduleFlush();
    this.#armHeartbeat();
    const first = this.#onFirst;
    this.#onFirst = undefined;
    first?.resolve();
    if (first === undefined) for (const id of this.#watchers.keys()) void this.#catchUp(id);
  }

  async #catchUp(id: string): Promise<void> {
    try {
      const record = await this.getState(id);
      if (record !== undefined) this.#emit(id, { type: 'state', record });
    } catch (err) { log('tcp client: state catch-up of %s failed: %s', id, (err as Error).message); }
  }

  #onMessage(msg: ServerMessage): void {
    switch (msg.t) {
      case 'ok': this.#requests.settleThrough(msg.id); break;
      case 'result': this.#requests.settle(msg.id, null, msg.record); break;
      case 'statsResult': this.#requests.settle(msg.id, null, { queues: msg.queues, connections: msg.connections }); break;
      case 'error': {
        const err = fromErrorInfo({ code: msg.code, name: 'Error', message: msg.message });
        if (msg.id !== 0) { this.#requests.settle(msg.id, err); break; }
        log('tcp client: broker closed the connection: %s %s', msg.code, msg.message);
        if (msg.code === 'ERR_AUTH' || (this.#onFirst !== undefined && msg.code === 'ERR_PROTOCOL')) void this.#shutdown(msg.code === 'ERR_AUTH' ? new AuthError(msg.message) : err);
        break;
      }
      case 'deliver': {
        const entry = this.#consumers.get(msg.c);
        if (entry === undefined || entry.cancelled) break;
        const tag = this.#tagBase + msg.tag;
        if (tag > this.#maxTag) this.#maxTag = tag;
        this.#held.set(tag, msg.message.id);
        entry.handler.deliver({ tag, message: msg.message, redelivered: msg.redelivered });
        break;
      }
      case 'revoked': this.#consumers.get(msg.c)?.handler.revoked(msg.sid); break;
      case 'event': this.#emit(msg.event.type === 'state' ? msg.event.record.id : msg.event.id, msg.event); break;
      case 'welcome': break;
    }
    if (this.#requests.waiting > 0) this.#scheduleFlush();
  }

  #emit(id: string, event: WatchEvent): void {
    const set = this.#watchers.get(id);
    if (set !== undefined) for (const listener of [...set]) listener(event);
  }

  /**
   * Every heartbeat period: tells the broker which deliveries it holds, and checks the broker is still there. A
   * connection that went half-open (a peer or a NAT gone without a FIN, a stalled proxy) carries nothing back:
   * after a period without a byte from the broker the client asks it something small (its answer is the proof),
   * and after HALF_OPEN_PERIODS of silence it drops the connection and reconnects; requests in flight are re-sent.
   */
  #armHeartbeat(): void {
    if (this.#heartbeat !== undefined) this.#clock.clearTimer(this.#heartbeat);
    this.#heartbeat = this.#clock.setTimer(() => {
      this.#heartbeat = undefined;
      if (this.#state !== 'open') return;
      const quiet = this.#clock.now() - this.#heard;
      if (quiet >= HALF_OPEN_PERIODS * this.#heartbeatMs) {
        log('tcp client: no word from the broker at %s:%d for %d ms: reconnecting', this.#o.host, this.#o.port, quiet);
        this.#socket?.destroy();
        return;
      }
      const base = this.#tagBase;
      this.#oneWay({ t: 'heartbeat', tags: Array.from(this.#held.keys(), (tag) => tag - base) });
      if (quiet >= this.#heartbeatMs) this.#request((id) => ({ t: 'getState', id, sid: PROBE_ID }), true).catch(() => undefined);
      this.#armHeartbeat();
    }, this.#heartbeatMs);
  }

  #lost(): void {
    this.#socket = undefined;
    this.#out.take();
    this.#held.clear();
    this.#tagBase = this.#maxTag;
    if (this.#state === 'closed') return;
    this.#requests.disconnected();
    this.#state = 'backoff';
    const delay = Math.min(this.#o.maxReconnectDelay, this.#o.reconnectDelay * 2 ** Math.min(this.#attempt++, 20));
    log('tcp client: connection to %s:%d lost; reconnecting in %d ms', this.#o.host, this.#o.port, delay);
    this.#timer = this.#clock.setTimer(() => { this.#timer = undefined; this.#dial(); }, delay);
  }

  async #shutdown(err: Error): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#fatal = err;
    if (this.#timer !== undefined) this.#clock.clearTimer(this.#timer);
    if (this.#heartbeat !== undefined) this.#clock.clearTimer(this.#heartbeat);
    this.#requests.failAll(err);
    this.#onFirst?.reject(err);
    this.#onFirst = undefined;
    const socket = this.#socket;
    this.#socket = undefined;
    if (socket !== undefined && !socket.destroyed) {
      const pieces = this.#out.take();
      for (const p of pieces) socket.write(p);
      await new Promise<void>((resolve) => { socket.once('close', () => resolve()); socket.end(); setTimeout(() => socket.destroy(), 1_000).unref(); });
    }
  }
}

/** Heartbeat periods without a byte from the broker (a probe asked after the first) before the connection is dropped as half-open. */
const HALF_OPEN_PERIODS = 3;

/** What a request that could not be encoded rejects with. */
function encodeError(type: string, err: unknown): Error {
  if (err instanceof MillwrightError) return err;
  return new ValidationError(`Could not encode the ${type} request for the wire: ${err instanceof Error ? err.message : String(err)}`, type);
}

/**
 * A TLS error that retrying cannot fix: an untrusted, expired or misnamed certificate, a broker that does not speak
 * TLS, or a broker that requires a client certificate (its alert: CERTIFICATE_REQUIRED).
 */
function isTlsSetupError(err: NodeJS.ErrnoException): boolean {
  const code = err.code ?? '';
  return /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/.test(code) || code === 'ERR_SSL_WRONG_VERSION_NUMBER';
}

/** What to check after a TLS setup error: an alert (CERTIFICATE_REQUIRED, BAD_CERTIFICATE) is the broker refusing this client's certificate. */
function tlsHint(code: string): string {
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER') return 'does the broker serve TLS?';
  if (code.includes('_ALERT_')) return 'the broker refused this client\'s certificate: pass one signed by the CA it trusts with tls.cert and tls.key (CLI: --tls-cert, --tls-key)';
  return 'trust its certificate with tls.ca (CLI: --tls-ca), and check tls.servername (CLI: --tls-servername)';
}
