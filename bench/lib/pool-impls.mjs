// The contenders of bench/pool.mjs behind one tiny interface:
//
//   const impl = await createImpl(id, { threads, fn });
//   await impl.call(arg);  // fn 'echoT': arg is an ArrayBuffer, transferred both ways
//   await impl.close();
//
// 'millwright' is our ThreadPool (from dist/); 'raw' and 'raw-1pw' are the
// hand-written worker_threads references of the peers' harness; 'piscina' and
// 'tinypool' are loaded from $PEER_DIR/node_modules when it exists.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { MessageChannel, Worker } from 'node:worker_threads';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const PEER_DIR = process.env.PEER_DIR || '';
const here = (name) => path.join(HERE, name);

/** Peers that are installed in PEER_DIR (none when PEER_DIR is unset). */
export function installedPeers() {
  if (PEER_DIR === '') return [];
  return ['piscina', 'tinypool'].filter((name) => existsSync(path.join(PEER_DIR, 'node_modules', name, 'package.json')));
}

/** Imports the library under test (timed by the startup workload). */
export async function loadLibrary(id) {
  if (id === 'millwright') {
    const root = path.join(HERE, '..', '..', 'dist', 'src');
    try {
      return await import(pathToFileURL(path.join(root, 'index.js')).href);
    } catch {
      return await import(pathToFileURL(path.join(root, 'pool', 'index.js')).href); // the core may be mid-edit
    }
  }
  if (id === 'piscina' || id === 'tinypool') {
    const require = createRequire(path.join(PEER_DIR, 'package.json'));
    const mod = await import(pathToFileURL(require.resolve(id)).href);
    return mod.default ?? mod;
  }
  return null;
}

export async function createImpl(id, { threads, fn }) {
  const transfer = fn === 'echoT';
  switch (id) {
    case 'millwright': {
      const { ThreadPool } = await loadLibrary(id);
      const pool = new ThreadPool({ module: here('pool-mw-worker.mjs'), size: threads });
      return {
        call: transfer ? (b) => pool.run(fn, [b], { transfer: [b] }) : (x) => pool.run(fn, [x]),
        close: () => pool.close(),
        threadCount: () => pool.stats().threads,
      };
    }
    case 'raw': return new RawPool(threads, fn, false);
    case 'raw-1pw': return new RawPool(threads, fn, true);
    case 'piscina': {
      const Piscina = await loadLibrary(id);
      const pool = new Piscina({ filename: here('pool-piscina-worker.mjs'), name: fn, minThreads: threads, maxThreads: threads });
      return {
        call: transfer ? (b) => pool.run(b, { transferList: [b] }) : (x) => pool.run(x),
        close: () => pool.destroy(),
        threadCount: () => pool.threads.length,
      };
    }
    case 'tinypool': {
      const Tinypool = await loadLibrary(id);
      const pool = new Tinypool({ filename: here('pool-tinypool-worker.mjs'), name: fn, minThreads: threads, maxThreads: threads });
      return {
        call: transfer ? (b) => pool.run(b, { transferList: [b] }) : (x) => pool.run(x),
        close: () => pool.destroy(),
        threadCount: () => pool.threads.length,
      };
    }
    default:
      throw new Error(`unknown contender ${id}`);
  }
}

/** FIFO with a head index and periodic compaction (cheaper than Array#shift). */
class Fifo {
  constructor() { this.a = []; this.h = 0; }
  get size() { return this.a.length - this.h; }
  push(v) { this.a.push(v); }
  shift() {
    const v = this.a[this.h];
    this.a[this.h++] = undefined;
    if (this.h > 1024 && this.h * 2 > this.a.length) { this.a = this.a.slice(this.h); this.h = 0; }
    return v;
  }
}

/**
 * The hand-written reference (copied from the peers' harness): one port per
 * worker, bare values, replies matched by FIFO order. Pipelined round-robin,
 * or at most one task per worker (`onePerWorker`, the pools' default discipline).
 */
class RawPool {
  constructor(threads, fn, onePerWorker) {
    this.transfer = fn === 'echoT';
    this.ws = [];
    this.rr = 0;
    this.pending = new Fifo();
    for (let i = 0; i < threads; i++) {
      const { port1, port2 } = new MessageChannel();
      const worker = new Worker(here('pool-raw-worker.mjs'), { workerData: { port: port2, fn }, transferList: [port2] });
      const w = { worker, port: port1, q: new Fifo(), busy: false };
      port1.on('message', onePerWorker ? (r) => this.#on1pw(w, r) : (r) => w.q.shift()(r));
      this.ws.push(w);
    }
    const n = this.ws.length;
    if (!onePerWorker) {
      this.call = (x) => {
        const w = this.ws[this.rr];
        this.rr = (this.rr + 1) % n;
        this.#post(w, x);
        return new Promise((res) => w.q.push(res));
      };
    } else {
      this.call = (x) => new Promise((res) => {
        for (const w of this.ws) {
          if (!w.busy) { w.busy = true; this.#post(w, x); w.q.push(res); return; }
        }
        this.pending.push({ x, res });
      });
    }
  }

  #post(w, x) {
    if (this.transfer) w.port.postMessage(x, [x]); else w.port.postMessage(x);
  }

  #on1pw(w, r) {
    const res = w.q.shift();
    if (this.pending.size > 0) { const p = this.pending.shift(); this.#post(w, p.x); w.q.push(p.res); }
    else w.busy = false;
    res(r);
  }

  threadCount() { return this.ws.length; }

  async close() {
    await Promise.all(this.ws.map((w) => { w.port.close(); return w.worker.terminate(); }));
  }
}
