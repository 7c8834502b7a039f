// BullMQ as a contender in bench/tcp.mjs, in the shape of ../shared/bench/peers/queue
// (bench-throughput.mjs --mode proc, bench-latency.mjs): a private redis-server started
// for the run on 127.0.0.1, a worker process and a producer process. Used only when
// PEER_DIR points at a folder with bullmq installed (PEER_DIR/node_modules/bullmq or
// PEER_DIR/bullmq) and `redis-server` is on the PATH; never installed into the project:
//
//   apt-get install -y redis-server
//   mkdir -p /tmp/peerq && cd /tmp/peerq && npm init -y && npm install bullmq@5
//   PEER_DIR=/tmp/peerq node bench/tcp.mjs
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

/** The peers' recorded baselines (../shared/bench/peers/queue-baselines.md), shown when BullMQ cannot run here. */
export const RECORDED = { version: '5.81.5', throughput: 13_600, latencyP50: 0.72, latencyP99: 4.3 };

/** The folder bullmq resolves from, or null when PEER_DIR is unset or has no bullmq. */
export function bullmqDir() {
  const dir = process.env.PEER_DIR;
  if (!dir) return null;
  for (const base of [join(dir, 'node_modules'), dir]) if (existsSync(join(base, 'bullmq', 'package.json'))) return base;
  return null;
}

/** Why BullMQ rows cannot be measured in this run, or null when they can. */
export function bullmqUnavailable() {
  if (!process.env.PEER_DIR) return 'PEER_DIR is not set';
  if (bullmqDir() === null) return `no bullmq under PEER_DIR=${process.env.PEER_DIR}`;
  try { execFileSync('redis-server', ['--version'], { stdio: 'ignore' }); } catch { return 'redis-server is not on the PATH'; }
  return null;
}

export function bullmqVersion() {
  return JSON.parse(readFileSync(join(bullmqDir(), 'bullmq', 'package.json'), 'utf8')).version;
}

async function loadBullmq() {
  const require = createRequire(join(bullmqDir(), 'noop.js'));
  return import(pathToFileURL(require.resolve('bullmq')).href);
}

const freePort = () => new Promise((resolve, reject) => {
  const s = net.createServer();
  s.once('error', reject);
  s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
});

/** Starts a private redis-server (no persistence) and resolves once it answers PING. */
export async function startRedis() {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'mw-bench-redis-'));
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  process.on('exit', () => child.kill('SIGKILL')); // a crashed run must not leave it behind
  for (let i = 0; i < 200; i++) {
    if (await ping(port)) {
      return {
        port,
        flush: () => command(port, 'FLUSHALL'),
        stop: async () => { child.kill('SIGTERM'); await exited; rmSync(dir, { recursive: true, force: true }); },
      };
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  child.kill('SIGKILL');
  throw new Error('redis-server did not answer PING within 5 s');
}

function command(port, name) {
  return new Promise((resolve) => {
    const s = net.createConnection({ host: '127.0.0.1', port });
    s.on('error', () => resolve(false));
    s.on('data', (d) => { s.destroy(); resolve(d.toString().startsWith('+')); });
    s.on('connect', () => s.write(`*1\r\n$${name.length}\r\n${name}\r\n`));
  });
}
const ping = (port) => command(port, 'PING');

/**
 * The child roles. `send` reports to the parent, `on(type)` waits for a parent message.
 * Worker: concurrency 50 (the peers' harness), add(a, b) -> a + b, 'done' after `n` completions.
 * Producer: 'throughput' keeps `window` add() calls in flight; 'latency' adds one job, awaits
 * its result through QueueEvents (BullMQ's idiomatic way), and repeats.
 */
export async function bullmqRole(role, args, { send, on, hr }) {
  const { Queue, Worker, QueueEvents } = await loadBullmq();
  const connection = { host: '127.0.0.1', port: args.redisPort };
  const name = 'mw-bench';
  if (role === 'bullmq-worker') {
    let done = 0;
    const w = new Worker(name, async (job) => job.data.a + job.data.b, { connection, concurrency: args.concurrency ?? 50 });
    w.on('error', (e) => console.error('[bullmq worker]', e.message));
    w.on('completed', () => { if (++done === args.n) send({ type: 'done', at: hr() }); });
    await w.waitUntilReady();
    send({ type: 'ready' });
    return;
  }
  const q = new Queue(name, { connection });
  q.setMaxListeners(0); // each in-flight add() listens for 'closing': 100 in flight is not a leak
  await q.waitUntilReady();
  const qe = new QueueEvents(name, { connection });
  await qe.waitUntilReady();
  send({ type: 'ready' });
  const m = await on('go');
  if (m.mode === 'throughput') {
    let i = 0;
    const lane = async () => { while (i < m.n) { const k = i++; await q.add('j', { a: k, b: 1 }); } };
    await Promise.all(Array.from({ length: m.window }, lane));
  } else if (m.mode === 'latency') {
    const one = async (k, into) => {
      const t0 = hr();
      const job = await q.add('j', { a: k, b: 1 });
      await job.waitUntilFinished(qe);
      into?.push(hr() - t0);
    };
    const cold = [];
    const lat = [];
    for (let k = 0; k < m.cold; k++) await one(k, cold);
    await Promise.all(Array.from({ length: 16 }, async () => { for (let k = 0; k < m.warm / 16; k++) await one(k); }));
    for (let k = 0; k < 100; k++) await one(k);
    for (let k = 0; k < m.n; k++) await one(k, lat);
    send({ type: 'latency', lat, cold });
  }
}
