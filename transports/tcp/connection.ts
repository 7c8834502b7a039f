/**
 * One client connection inside the broker: handshake, then each request
 * mapped onto the shared BrokerCore, with the deliveries this connection
 * holds (tag -> message) so that a settle is applied only by the holder of
 * the tag and only for the message it was given.
 *
 *   accepted --hello ok--> open --socket end / error / fatal frame--> closed
 *       \--timeout, bad hello, wrong token--> error frame --> closed
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Socket } from 'node:net';
import { debuglog } from 'node:util';
import { MillwrightError, ProtocolError, ValidationError } from '../../src/errors.js';
import type { DeliveryTag, Outcome, TaskMessage, WatchEvent } from '../../src/transport.js';
import type { BrokerCore } from '../memory/broker-core.js';
import { DEFAULT_MAX_FRAME_BYTES, FrameDecoder, HEADER_BYTES, Outbox } from './framing.js';
import type { JournalRecord } from './journal.js';
import { decodeClientMessage, MsgType, PROBE_ID, PROTOCOL_VERSION, writeDeliver, writeMessage, writeOk, type ClientMessage, type ServerMessage, type WireQueueStats } from './protocol.js';

const log = debuglog('millwright');

/** What a connection needs from its server. */
export interface ConnectionHost {
  readonly core: BrokerCore;
  readonly maxFrameBytes: number;
  readonly visibilityTimeout: number;
  readonly heartbeat: number;
  /** sha256 of the expected token, or null when none is required. */
  readonly tokenDigest: Buffer | null;
  now(): number;
  /** True with a journal (dataDir): only then are journal records built. */
  readonly journaling: boolean;
  /** Journals a record; its confirmation waits for the group's commit. */
  journal(record: JournalRecord): void;
  /** This connection has frames to send: flush at the end of the turn. */
  wantsFlush(conn: Connection): void;
  /** Calls `conn.visibilityDue()` at `due` (one entry per connection, not per delivery). */
  watchVisibility(conn: Connection, due: number): void;
  stats(): { queues: WireQueueStats[]; connections: number };
  closed(conn: Connection): void;
}

interface Held {
  readonly message: TaskMessage;
  readonly consumer: number;
  deadline: number;
}

export class Connection {
  readonly socket: Socket;
  readonly out = new Outbox();
  readonly #host: ConnectionHost;
  readonly #decoder: FrameDecoder;
  #state: 'handshake' | 'open' | 'closing' | 'closed' = 'handshake';
  /** Client consumer id -> core consumer id. */
  readonly #consumers = new Map<number, number>();
  readonly #held = new Map<DeliveryTag, Held>();
  /** The client's maxFrameBytes, from its hello: no deliver frame is larger. */
  #clientMax = DEFAULT_MAX_FRAME_BYTES;
  readonly #watches = new Map<string, () => void>();
  lastSeen: number;
  readonly openedAt: number;
  /** Reading paused for backpressure. */
  paused = false;
  /** When visibilityDue() is armed for, or Infinity. */
  #visibilityArmed = Infinity;
  /** The id of the task held under a tag, for the decoder (made once). */
  readonly #heldId = (tag: number): string | undefined => this.#held.get(tag)?.message.id;

  constructor(socket: Socket, host: ConnectionHost) {
    this.socket = socket;
    this.#host = host;
    this.lastSeen = this.openedAt = host.now();
    this.#decoder = new FrameDecoder(host.maxFrameBytes, (buf, start, end) => this.#onFrame(buf, start, end));
    socket.on('data', (chunk: Buffer) => {
      this.lastSeen = host.now();
      try {
        this.#decoder.push(chunk);
      } catch (err) {
        this.fail(err);
      }
    });
    socket.on('error', (err) => log('broker: connection error: %s', err.message));
    socket.on('close', () => this.#closed());
  }

  get state(): string {
    return this.#state;
  }

  /** True while the connection takes requests. */
  get isOpen(): boolean {
    return this.#state === 'open' || this.#state === 'handshake';
  }

  /** Deliveries held now. */
  get held(): number {
    return this.#held.size;
  }

  send(msg: ServerMessage): void {
    if (this.#state === 'closed') return;
    const before = this.out.bytes;
    writeMessage(this.out, msg);
    // A state (getState reply or watch event) can carry a result up to the broker's maxFrameBytes, which may be
    // over this client's: sent, it would close the connection, and again after every reconnect.
    if ((msg.t === 'result' || msg.t === 'event') && this.out.bytes - before - HEADER_BYTES > this.#clientMax) {
      return this.#overClientMax(msg, this.out.dropLast());
    }
    this.#host.wantsFlush(this);
  }

  /**
   * A state (getState reply or state event) over the client's maxFrameBytes goes as its record without the
   * result, its `error` saying why: a final state still reaches every waiter (a SUCCESS without a result is
   * only ever this, and get() and state() reject with it). Should even that be too large (a client max below a
   * bare record), a reply becomes an ERR_VALIDATION error and an event is dropped; so is a progress value
   * (progress is best effort).
   */
  #overClientMax(msg: Extract<ServerMessage, { t: 'result' | 'event' }>, size: number): void {
    const record = msg.t === 'result' ? msg.record : msg.event.type === 'state' ? msg.event.record : null;
    const about = record === null ? 'A progress value' : `The state of task ${record.name} (${record.id})`;
    const message = `${about} is a ${size}-byte frame, over this client's maxFrameBytes (${this.#clientMax}): raise maxFrameBytes on this client`;
    log('broker: %s', message);
    if (record === null) return;
    const { result: _result, error: _error, ...rest } = record;
    const stripped = { ...rest, error: { code: 'ERR_VALIDATION', name: 'ValidationError', message } };
    const before = this.out.bytes;
    writeMessage(this.out, msg.t === 'result' ? { t: 'result', id: msg.id, record: stripped } : { t: 'event', event: { type: 'state', record: stripped } });
    if (this.out.bytes - before - HEADER_BYTES <= this.#clientMax) return this.#host.wantsFlush(this);
    this.out.dropLast();
    if (msg.t === 'result') this.send({ t: 'error', id: msg.id, code: 'ERR_VALIDATION', message });
  }

  /**
   * A client's liveness probe is answered at once, straight to the socket: its answer ("none") depends on nothing
   * the journal has to make durable, and held behind a slow commit or a compaction (the turn's replies wait for
   * it) it left every client hearing nothing for 3 heartbeat periods, dropping a healthy connection (its
   * deliveries requeued, run twice).
   */
  #answerProbe(id: number): void {
    if (this.#state !== 'open' || this.socket.destroyed) return;
    const out = new Outbox();
    writeMessage(out, { t: 'result', id, record: null });
    for (const piece of out.take()) this.socket.write(piece);
  }

  /** Confirms request `id` (and, merged, every earlier one: see writeOk). */
  #ok(id: number): void {
    if (this.#state === 'closed') return;
    writeOk(this.out, id);
    this.#host.wantsFlush(this);
  }

  /** Sends an error frame for the connection (request id 0) and closes it once written. */
  fail(err: unknown, code?: string): void {
    if (!this.isOpen) return;
    const e = err instanceof Error ? err : new Error(String(err));
    log('broker: closing connection: %s', e.message);
    this.#decoder.stop();
    this.send({ t: 'error', id: 0, code: code ?? (MillwrightError.is(e) ? e.code : 'ERR_PROTOCOL'), message: e.message });
    this.#state = 'closing';
    this.socket.pause();
  }

  /** Destroys the socket at once (a peer that does not read). */
  destroy(reason: string): void {
    log('broker: dropping connection: %s', reason);
    this.#decoder.stop();
    this.socket.destroy();
  }

  /**
   * The earliest visibility deadline armed for this connection came: take
   * back every delivery held past its deadline (a hung but connected
   * consumer), then re-arm for the earliest one left. O(held), and held is
   * bounded by the consumers' prefetch.
   */
  visibilityDue(now: number): void {
    this.#visibilityArmed = Infinity;
    if (this.#state === 'closed') return;
    let next = Infinity;
    for (const [tag, h] of this.#held) {
      if (h.deadline > now) { if (h.deadline < next) next = h.deadline; continue; }
      this.#held.delete(tag);
      log('broker: delivery %d (%s) passed its visibility timeout: redelivering', tag, h.message.id);
      this.#host.core.requeue(tag);
    }
    if (next !== Infinity) this.#armVisibility(next);
  }

  #armVisibility(due: number): void {
    if (due >= this.#visibilityArmed) return;
    this.#visibilityArmed = due;
    this.#host.watchVisibility(this, due);
  }

  #onFrame(buf: Buffer, start: number, end: number): void {
    if (!this.isOpen || this.#state === 'closing') return;
    // Nothing but a hello is decoded before the handshake (and the token) passed.
    if (this.#state === 'handshake' && buf[start] !== MsgType.hello) {
      throw new ProtocolError(`Expected a hello frame first, got message type ${String(buf[start])}: send hello { v: ${PROTOCOL_VERSION}, token } after connecting`);
    }
    const msg = decodeClientMessage(buf, start, end, this.#heldId);
    if (this.#state === 'handshake') return this.#hello(msg);
    if (msg.t === 'hello') throw new ProtocolError('Unexpected hello: the handshake is already done');
    this.#handle(msg);
  }

  #hello(msg: ClientMessage): void {
    if (msg.t !== 'hello') throw new ProtocolError(`Expected a hello frame first, got "${msg.t}": send hello { v: ${PROTOCOL_VERSION}, token } after connecting`);
    if (msg.v !== PROTOCOL_VERSION) throw new ProtocolError(`Unsupported protocol version ${msg.v}: this broker speaks version ${PROTOCOL_VERSION}`);
    const expected = this.#host.tokenDigest;
    if (expected !== null) {
      const given = createHash('sha256').update(msg.token ?? '').digest();
      if (msg.token === null || !timingSafeEqual(given, expected)) {
        return this.fail(new Error(msg.token === null ? 'This broker requires a token: pass { token } to TcpTransport' : 'Wrong token: check the token given to TcpTransport against the broker\'s'), 'ERR_AUTH');
      }
    }
    this.#state = 'open';
    if (msg.max !== undefined) this.#clientMax = msg.max;
    this.send({ t: 'welcome', v: PROTOCOL_VERSION, visibilityTimeout: this.#host.visibilityTimeout, heartbeat: this.#host.heartbeat, max: this.#host.maxFrameBytes });
  }

  #handle(msg: ClientMessage): void {
    const core = this.#host.core;
    switch (msg.t) {
      case 'publish':
        core.publish(msg.batch);
        if (this.#host.journaling) this.#host.journal({ t: 'publish', batch: msg.batch });
        return this.#ok(msg.id);
      case 'consume': {
        if (this.#consumers.has(msg.c)) throw new ProtocolError(`Consumer ${msg.c} is already registered on this connection`);
        const c = msg.c;
        const id = core.consume(msg.spec, {
          deliver: (d) => this.#deliver(c, d.tag, d.message, d.redelivered),
          revoked: (sid) => this.send({ t: 'revoked', c, sid }),
        });
        this.#consumers.set(c, id);
        return this.#ok(msg.id);
      }
      case 'cancel':
        this.#cancel(msg.c);
        return this.#ok(msg.id);
      case 'settle': {
        const h = this.#take(msg.tag, msg.mid);
        if (h !== undefined) {
          shareId(msg.outcome, msg.mid, h.message.id);
          if (this.#host.journaling) this.#host.journal({ t: 'settle', mid: msg.mid, attempt: h.message.attempt, outcome: msg.outcome });
          core.settle(msg.tag, msg.outcome);
        }
        return this.#ok(msg.id);
      }
      case 'release':
        if (this.#take(msg.tag, msg.mid) !== undefined) core.release(msg.tag, msg.delay);
        return this.#ok(msg.id);
      case 'setState':
        core.setState(msg.record);
        if (this.#host.journaling) this.#host.journal({ t: 'setState', record: msg.record });
        return this.#ok(msg.id);
      case 'getState':
        if (msg.sid === PROBE_ID) return this.#answerProbe(msg.id);
        return this.send({ t: 'result', id: msg.id, record: core.getState(msg.sid) ?? null });
      case 'revoke':
        core.revoke(msg.sid);
        if (this.#host.journaling) this.#host.journal({ t: 'revoke', id: msg.sid });
        return this.#ok(msg.id);
      case 'stats':
        return this.send({ t: 'statsResult', id: msg.id, ...this.#host.stats() });
      case 'watch':
        for (const sid of msg.ids) {
          if (!this.#watches.has(sid)) this.#watches.set(sid, core.watch(sid, (event: WatchEvent) => this.send({ t: 'event', event })));
        }
        return;
      case 'unwatch':
        for (const sid of msg.ids) { this.#watches.get(sid)?.(); this.#watches.delete(sid); }
        return;
      case 'progress': {
        const h = this.#held.get(msg.tag);
        if (h === undefined || h.message.id !== msg.mid) return;
        h.deadline = this.#host.now() + this.#host.visibilityTimeout;
        return core.progress(msg.mid, msg.value);
      }
      case 'heartbeat': {
        const deadline = this.#host.now() + this.#host.visibilityTimeout;
        for (const tag of msg.tags) { const h = this.#held.get(tag); if (h !== undefined) h.deadline = deadline; }
        return;
      }
      case 'hello': return;
    }
  }

  #deliver(c: number, tag: DeliveryTag, message: TaskMessage, redelivered: boolean): void {
    const deadline = this.#host.now() + this.#host.visibilityTimeout;
    this.#held.set(tag, { message, consumer: c, deadline });
    if (this.#visibilityArmed === Infinity) this.#armVisibility(deadline);
    if (this.#state === 'closed') return;
    const before = this.out.bytes;
    writeDeliver(this.out, c, tag, redelivered, message);
    if (this.out.bytes - before - HEADER_BYTES > this.#clientMax) return this.#undeliverable(tag, message, this.out.dropLast());
    this.#host.wantsFlush(this);
  }

  /**
   * A task too large for this consumer's maxFrameBytes: sent, it would close
   * the connection, be redelivered to the next worker and do the same there.
   * It fails (FAILURE, ERR_VALIDATION, its workflow failed) like a settle from
   * the worker would, journaled the same way.
   */
  #undeliverable(tag: DeliveryTag, message: TaskMessage, size: number): void {
    const error = new ValidationError(`Task ${message.name} (${message.id}) is a ${size}-byte frame, over its worker's maxFrameBytes (${this.#clientMax}): send smaller values, or raise maxFrameBytes on the broker and clients`, 'maxFrameBytes');
    const outcome = this.#host.core.finalOutcome(message, message.attempt + 1, 'FAILURE', error);
    log('broker: %s', error.message);
    this.#held.delete(tag);
    if (this.#host.journaling) this.#host.journal({ t: 'settle', mid: message.id, attempt: message.attempt, outcome });
    this.#host.core.settle(tag, outcome);
  }

  /** Removes a held delivery when `tag` is this connection's and carries message `mid`. */
  #take(tag: DeliveryTag, mid: string): Held | undefined {
    const h = this.#held.get(tag);
    if (h === undefined || h.message.id !== mid) {
      log('broker: ignoring settle/release of tag %d (%s): not held by this connection for that message', tag, mid);
      return undefined;
    }
    this.#held.delete(tag);
    return h;
  }

  #cancel(c: number): void {
    const id = this.#consumers.get(c);
    if (id === undefined) return;
    this.#consumers.delete(c);
    for (const [tag, h] of this.#held) if (h.consumer === c) this.#held.delete(tag);
    this.#host.core.cancel(id);
  }

  #closed(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#decoder.stop();
    for (const c of [...this.#consumers.keys()]) this.#cancel(c);
    for (const unwatch of this.#watches.values()) unwatch();
    this.#watches.clear();
    this.#held.clear();
    this.#host.closed(this);
  }
}

/**
 * The task's own record in a settle carries a copy of its id, decoded from
 * the frame: it takes the id string of the message the broker already holds
 * (`held`, equal to `mid` as #take checked), so the result store keeps one
 * string per task instead of two (its map key is the message's). Ids over 24
 * bytes already arrive as `held` (decodeClientMessage's heldId); this covers
 * shorter ones. The decoder hands out one string for `mid` and the record's
 * id, so the test is a pointer compare.
 */
function shareId(outcome: Outcome, mid: string, held: string): void {
  const first = outcome.records[0];
  if (first !== undefined && first.id === mid) (first as { id: string }).id = held;
}
