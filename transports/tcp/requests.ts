/**
 * The client's requests: sent ones wait for their reply by id; the rest wait
 * in FIFO order for a connection or for room in the in-flight window. When a
 * connection drops, sent-but-unanswered requests go back to the front of the
 * line and are sent again after reconnecting (every request is idempotent on
 * the broker). A request that waits without a connection past its deadline
 * rejects with ConnectionError.
 */
import type { Clock } from '../../src/clock.js';
import { ConnectionError } from '../../src/errors.js';
import { TimerQueue } from '../../src/timer-queue.js';
import type { ClientMessage } from './protocol.js';

export interface Request {
  readonly id: number;
  readonly msg: ClientMessage;
  readonly deadline: number;
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: Error) => void;
  /** Resolve instead of re-sending when the connection drops (a consumer cancel: the broker cancels it anyway). */
  readonly doneOnLoss: boolean;
}

const NOOP = (): void => undefined;
const MAX_ID = 0xffff_ffff;

export class Requests {
  readonly #clock: Clock;
  readonly #timeout: number;
  readonly #window: number;
  /**
   * Sent requests in send order, from #sentHead; a request answered out of
   * order (a reply other than ok, or one refused before it was written)
   * leaves an `undefined` hole. Replies come in request order, so the one
   * answered is at or near the head: a scan, no map to keep (a Map set and
   * delete per request, and its rehashes, cost more).
   */
  readonly #sent: Array<Request | undefined> = [];
  #sentHead = 0;
  /** End of the used part of #sent: the array is reused, never shrunk (no reallocation per window of requests). */
  #sentTail = 0;
  #inFlight = 0;
  #waiting: Request[] = [];
  #head = 0;
  readonly #deadlines: TimerQueue<Request>;
  #nextId: number;
  #connected = false;

  /** @param firstId the first request id (tests start near the 2^32 wrap). */
  constructor(clock: Clock, sendTimeout: number, window: number, firstId = 1) {
    this.#clock = clock;
    this.#timeout = sendTimeout;
    this.#window = window;
    this.#nextId = firstId;
    this.#deadlines = new TimerQueue(clock, (r) => this.#expire(r));
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  get waiting(): number {
    return this.#waiting.length - this.#head;
  }

  /** Queues a request; `build` receives its id. */
  add<T>(build: (id: number) => ClientMessage, doneOnLoss = false): Promise<T> {
    return new Promise<T>((resolve, reject) => this.#queue(build, resolve as (v: unknown) => void, reject, doneOnLoss));
  }

  /** Queues a request nobody awaits (no promise is made): `onError` hears of its failure. */
  addUnawaited(build: (id: number) => ClientMessage, onError: (err: Error) => void): void {
    this.#queue(build, NOOP, onError, false);
  }

  #queue(build: (id: number) => ClientMessage, resolve: (v: unknown) => void, reject: (err: Error) => void, doneOnLoss: boolean): void {
    // Ids are u32 on the wire and 0 means "no request": 1 .. 2^32-1, then 1 again (a long-lived client
    // sends 2^32 requests in hours). Replies are matched by id, oks in send order (settleThrough).
    const id = this.#nextId;
    this.#nextId = id === MAX_ID ? 1 : id + 1;
    const r: Request = { id, msg: build(id), deadline: this.#clock.now() + this.#timeout, resolve, reject, doneOnLoss };
    this.#waiting.push(r);
    if (!this.#connected) this.#deadlines.add(r.deadline, r);
  }

  /** Takes the requests that may be sent now (connected, within the window), in id order, marking them sent. */
  sendable(): Request[] {
    const out: Request[] = [];
    while (this.#connected && this.#head < this.#waiting.length && this.#inFlight < this.#window) {
      const r = this.#waiting[this.#head] as Request;
      this.#waiting[this.#head++] = undefined as unknown as Request;
      this.#sent[this.#sentTail++] = r;
      this.#inFlight++;
      out.push(r);
    }
    if (this.#head > 1024 && this.#head * 2 > this.#waiting.length) { this.#waiting = this.#waiting.slice(this.#head); this.#head = 0; }
    return out;
  }

  /** A request taken by {@link sendable} that the client decided not to send after all: it resolves now. */
  drop(r: Request): void {
    this.settle(r.id, null);
  }

  /**
   * An `ok` for request `id` arrived: it answers every request sent before
   * it and not answered yet (replies come in request order, and the broker
   * merges consecutive oks). `#sent` is in send order; ids are not
   * compared for order, as they wrap.
   */
  settleThrough(id: number): void {
    const at = this.#find(id);
    if (at < 0) return;
    const sent = this.#sent;
    for (let i = this.#sentHead; i <= at; i++) {
      const r = sent[i];
      if (r === undefined) continue;
      sent[i] = undefined;
      this.#inFlight--;
      r.resolve(undefined);
    }
    this.#advance();
  }

  /** The reply to request `id` arrived. */
  settle(id: number, err: Error | null, value?: unknown): boolean {
    const at = this.#find(id);
    if (at < 0) return false;
    const r = this.#sent[at] as Request;
    this.#sent[at] = undefined;
    this.#inFlight--;
    this.#advance();
    if (err === null) r.resolve(value); else r.reject(err);
    return true;
  }

  /** Index in #sent of the unanswered request `id`, or -1. */
  #find(id: number): number {
    const sent = this.#sent;
    for (let i = this.#sentHead; i < this.#sentTail; i++) if (sent[i]?.id === id) return i;
    return -1;
  }

  /** Moves the head past answered requests; back to the start when none is left, or when the head is far in. */
  #advance(): void {
    const sent = this.#sent;
    const tail = this.#sentTail;
    let h = this.#sentHead;
    while (h < tail && sent[h] === undefined) h++;
    if (h === tail) { this.#sentHead = this.#sentTail = 0; return; }
    if (h > 1024) {
      sent.copyWithin(0, h, tail);
      sent.fill(undefined, tail - h, tail);
      this.#sentTail = tail - h;
      h = 0;
    }
    this.#sentHead = h;
  }

  /** Unanswered sent requests in send order; forgets them. */
  #takeSent(): Request[] {
    const back = this.#sent.slice(this.#sentHead, this.#sentTail).filter((r): r is Request => r !== undefined);
    this.#sent.fill(undefined);
    this.#sentHead = this.#sentTail = 0;
    this.#inFlight = 0;
    return back;
  }

  connected(): void {
    this.#connected = true;
  }

  /** The connection dropped: unanswered requests go back to the front, deadlines count again. */
  disconnected(): void {
    this.#connected = false;
    const back = this.#takeSent();
    this.#waiting = [...back, ...this.#waiting.slice(this.#head)].filter((r) => {
      if (r.doneOnLoss) r.resolve(undefined);
      return !r.doneOnLoss;
    });
    this.#head = 0;
    const now = this.#clock.now();
    for (const r of this.#waiting) {
      if (r.deadline <= now) this.#expire(r);
      else this.#deadlines.add(r.deadline, r);
    }
  }

  /** Rejects everything (close, or a fatal handshake error). */
  failAll(err: Error): void {
    const all = [...this.#takeSent(), ...this.#waiting.slice(this.#head)];
    this.#waiting = [];
    this.#head = 0;
    this.#deadlines.clear();
    for (const r of all) r.reject(err);
  }

  #expire(r: Request): void {
    if (this.#connected) return;
    const i = this.#waiting.indexOf(r, this.#head);
    if (i < 0) return;
    this.#waiting.splice(i, 1);
    r.reject(new ConnectionError(`No connection to the broker for ${this.#timeout} ms (sendTimeout): the ${r.msg.t} request was not sent; check that the broker runs and is reachable`));
  }
}
