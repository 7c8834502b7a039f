/**
 * The in-memory transport: the default, for tests and single-process apps.
 * Every task crosses it as a {@link TaskMessage} whose values were packed by
 * the core's codec, exactly as over TCP, so producer and worker share no
 * object and serialisation bugs fail in the fast tests.
 */
import { SystemClock, systemClock, type Clock } from '../../src/clock.js';
import type { Packed } from '../../src/codec.js';
import { ClosedError, ValidationError } from '../../src/errors.js';
import { checkOptions, rules } from '../../src/options.js';
import {
  DONE, type Batch, type ConsumeSpec, type Consumer, type ConsumerHandler, type DeliveryTag, type Outcome, type StateRecord, type Transport, type TransportContext, type WatchEvent,
} from '../../src/transport.js';
import { BrokerCore } from './broker-core.js';

export interface MemoryTransportOptions {
  /**
   * The clock for ETAs and expiry. Default: the clock of the first App that connects, else the real clock.
   * Every App connecting must use the same clock (ETAs are compared across them): another one is refused.
   */
  readonly clock?: Clock;
}

/**
 * A broker and result store in this process.
 * @example
 * const transport = new MemoryTransport();
 * const producer = new App({ transport });
 * const consumer = new App({ transport }); // two apps, one set of queues
 */
export class MemoryTransport implements Transport {
  #core: BrokerCore | undefined;
  #clock: Clock | undefined;
  #closed = false;

  constructor(options: MemoryTransportOptions = {}) {
    checkOptions('MemoryTransport', options, { clock: rules.clock });
    this.#clock = options.clock;
  }

  /** Adopts the app's clock, unless it already keeps time by another one (an ETA set by one clock is read by the other: refused). */
  async connect(context: TransportContext): Promise<void> {
    if (this.#clock !== undefined && !sameClock(this.#clock, context.clock)) {
      throw new ValidationError('This MemoryTransport keeps time by another clock than the App connecting to it, so ETAs, retries and expiry would be off: pass the same `clock` to every App sharing the transport (and to the transport, if given one)', 'clock');
    }
    this.#engine(context.clock, context.resultsExpireIn);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#core?.close();
  }

  publish(batch: Batch): Promise<void> {
    try { this.#live().publish(batch); } catch (err) { return Promise.reject(err); }
    return DONE;
  }

  async consume(spec: ConsumeSpec, handler: ConsumerHandler): Promise<Consumer> {
    const core = this.#live();
    const id = core.consume(spec, handler);
    return { cancel: async () => core.cancel(id) };
  }

  settle(tag: DeliveryTag, outcome: Outcome): Promise<void> {
    try { this.#live().settle(tag, outcome); } catch (err) { return Promise.reject(err); }
    return DONE;
  }

  release(tag: DeliveryTag, delayMs: number): Promise<void> {
    try { this.#live().release(tag, delayMs); } catch (err) { return Promise.reject(err); }
    return DONE;
  }

  setState(record: StateRecord): Promise<void> {
    try { this.#live().setState(record); } catch (err) { return Promise.reject(err); }
    return DONE;
  }

  getState(id: string): Promise<StateRecord | undefined> {
    try {
      return Promise.resolve(this.#live().getState(id));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  peekState(id: string): StateRecord | undefined | null {
    return this.#closed ? null : this.#engine().getState(id); // closed: getState says so
  }

  watch(id: string, listener: (event: WatchEvent) => void): () => void {
    return this.#live().watch(id, listener);
  }

  progress(_tag: DeliveryTag, id: string, value: Packed): void {
    this.#live().progress(id, value);
  }

  revoke(id: string): Promise<void> {
    try { this.#live().revoke(id); } catch (err) { return Promise.reject(err); }
    return DONE;
  }

  /** Queue depths, for tests and `status`. */
  stats(): ReturnType<BrokerCore['stats']> {
    return this.#live().stats();
  }

  #engine(clock?: Clock, resultsExpireIn?: number): BrokerCore {
    if (this.#core !== undefined) return this.#core;
    this.#clock ??= clock ?? systemClock; // the core's clock, from now on
    return (this.#core = new BrokerCore(this.#clock, resultsExpireIn));
  }

  #live(): BrokerCore {
    if (this.#closed) throw new ClosedError('MemoryTransport');
    return this.#engine();
  }
}

/** One time source: the same clock, or two real ones. */
function sameClock(a: Clock, b: Clock): boolean {
  return a === b || (a instanceof SystemClock && b instanceof SystemClock);
}
