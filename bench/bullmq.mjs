// BullMQ beside millwright's TCP transport, measured in the same run (SPEC section 3:
// TCP throughput ">= 5x BullMQ in the same run"). Both contenders run the workloads of
// bench/tcp.mjs in its shape: a producer process and a worker process on 127.0.0.1, with
// millwright's BrokerServer or a Redis as the third process; every case is a fresh child
// (lib/child.mjs), and the two contenders alternate which goes first in each rep, so the
// ratio millwright / BullMQ of a rep comes from runs made under the same load.
//
//   node bench/bullmq.mjs [--reps 3] [--n 50000] [--window 100] [--concurrency 100] [--only throughput,latency,delayed]
//
// Needs what ../shared/bench/peers/queue/README.md sets up; nothing is added to package.json:
//
//   apt-get install -y redis-server
//   mkdir -p /tmp/peerq && cd /tmp/peerq && npm init -y && npm install bullmq@5
//   mkdir -p /tmp/redisbench && cd /tmp/redisbench && setsid redis-server --port 6390 --bind 127.0.0.1 \
//     --save '' --appendonly no --dir /tmp/redisbench --logfile /tmp/redisbench/redis.log & echo $! > /tmp/redisbench/redis.pid
//
// PEER_DIR (default /tmp/peerq/node_modules; its parent works too) is where bullmq is loaded
// from; REDIS_PORT (default 6390) the Redis on 127.0.0.1, which is FLUSHALLed before every
// BullMQ case: point it only at a private instance. When either is missing the script prints
// these steps and the peers' recorded baselines (../shared/bench/peers/queue-baselines.md),
// and exits 0 without touching the network.
//
// Workloads (tcp.mjs's; BullMQ adds jobs with Queue.add and runs them in a Worker):
//   throughput  --n trivial add(a, b) tasks, --window sends in flight, worker concurrency
//               --concurrency (millwright prefetch 200); go -> the worker's n-th completion
//   latency     idle worker (concurrency 10, millwright prefetch 0): 2,000 tasks one at a time,
//               send -> result (millwright get(), BullMQ waitUntilFinished(QueueEvents)), after
//               500 + 8,000 (16 at a time) + 200 warm-up tasks on the same path
//   delayed     300 tasks due 200 ms after their send, one send every 3 ms: handler start - due
import { fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { bullmqDir, bullmqVersion, RECORDED } from './lib/bullmq-peer.mjs';
import { busyShare, cpuSnapshot, parseArgs, report, runInterleaved } from './lib/child.mjs';
import { median, min, max, summary } from './lib/stats.mjs';
import { fixed, int, pct, printTable } from './lib/table.mjs';

process.env.PEER_DIR ||= '/tmp/peerq/node_modules'; // the peers' harness default; children inherit it
const REDIS_PORT = Number(process.env.REDIS_PORT || 6390);
const WORKLOADS = ['throughput', 'latency', 'delayed'];
const QUEUE = 'mw-bench';
const args = parseArgs({ reps: 3, n: 50000, window: 100, concurrency: 100, only: '', case: '', role: '' });
const self = fileURLToPath(import.meta.url);
const now = () => performance.timeOrigin + performance.now(); // epoch ms, sub-ms, as tcp.mjs stamps ETAs
const hr = () => Number(process.hrtime.bigint()) / 1e6; // CLOCK_MONOTONIC: comparable across processes

/** The peers' numbers (queue-baselines.md), printed when BullMQ cannot run here and beside the measured rows. */
const BASELINE = { ...RECORDED, delayedP50: 4.9, delayedP99: 95, sigkill: '60-90 s' };

// ---------------------------------------------------------------- contenders (role processes)

/** One facade over both: producer(withResults) -> { send(i), result(handle), sendDelayed(ms) }; worker(opts). */
async function contender(lib, port) {
  if (lib === 'bullmq') {
    const require = createRequire(join(bullmqDir(), 'noop.js'));
    const { Queue, Worker, QueueEvents } = await import(pathToFileURL(require.resolve('bullmq')).href);
    const connection = { host: '127.0.0.1', port };
    return {
      async producer(withResults) {
        const q = new Queue(QUEUE, { connection });
        await q.waitUntilReady();
        // Only the latency producer listens: QueueEvents keeps a blocking XREAD on Redis.
        const qe = withResults ? new QueueEvents(QUEUE, { connection }) : null;
        await qe?.waitUntilReady();
        q.setMaxListeners(64); // each pending waitUntilFinished listens for the Queue's 'closing' (16 at once in the warm-up)
        return {
          send: (i) => q.add('add', { a: i, b: 1 }),
          result: (job) => job.waitUntilFinished(qe),
          sendDelayed: (ms) => q.add('stamp', { due: now() + ms }, { delay: ms }),
        };
      },
      async worker({ concurrency, onDone, onLate }) {
        const run = async (job) => (job.name === 'stamp' ? onLate(now() - job.data.due) : job.data.a + job.data.b);
        const w = new Worker(QUEUE, run, { connection, concurrency });
        w.on('error', (e) => console.error('[bullmq worker]', e.message));
        w.on('completed', onDone);
        await w.waitUntilReady();
      },
    };
  }
  const { App, signature } = await import('../dist/src/index.js');
  const { TcpTransport } = await import('../dist/transports/tcp/index.js');
  const transport = new TcpTransport({ port });
  const app = new App({ transport });
  return {
    async producer() {
      await transport.connect();
      return {
        send: (i) => app.send(signature('add', [i, 1])),
        result: (r) => r.get(),
        sendDelayed: (ms) => { const due = Math.round(now()) + ms; return app.send(signature('stamp', [due], { eta: due })); },
      };
    },
    async worker({ concurrency, prefetch, onDone, onLate }) {
      app.task('add', (a, b) => a + b);
      app.task('stamp', (due) => { onLate(now() - due); });
      const w = app.worker({ concurrency, prefetch });
      w.on('task:succeeded', onDone);
      await w.start();
    },
  };
}

async function role() {
  process.on('disconnect', () => process.exit(0)); // the case process is gone: so are we
  const send = (m) => process.send(m);
  if (args.role === 'broker') {
    const { BrokerServer } = await import('../dist/transports/tcp/index.js');
    const server = new BrokerServer({ port: 0, visibilityTimeout: 30_000 });
    await server.listen();
    return send({ type: 'listening', port: server.address().port });
  }
  const c = await contender(args.lib, args.port);
  if (args.role === 'worker') {
    let done = 0;
    const onDone = () => { if (++done === args.n) send({ type: 'done', at: hr() }); };
    await c.worker({ concurrency: args.concurrency, prefetch: args.prefetch, onDone, onLate: (ms) => send({ type: 'late', ms }) });
    return send({ type: 'ready' });
  }
  const p = await c.producer(args.mode === 'latency');
  process.once('message', async (m) => {
    if (m.mode === 'throughput') {
      let i = 0;
      const lane = async () => { while (i < m.n) await p.send(i++); }; // `window` lanes = window sends in flight
      await Promise.all(Array.from({ length: m.window }, lane));
    } else if (m.mode === 'latency') {
      const one = async (i, into) => { const t0 = hr(); await p.result(await p.send(i)); into?.push(hr() - t0); };
      for (let i = 0; i < 500; i++) await one(i);
      await Promise.all(Array.from({ length: 16 }, async () => { for (let i = 0; i < 8000 / 16; i++) await one(i); }));
      for (let i = 0; i < 200; i++) await one(i);
      const lat = [];
      for (let i = 0; i < m.n; i++) await one(i, lat);
      send({ type: 'latency', lat });
    } else if (m.mode === 'delayed') {
      for (let i = 0; i < m.n; i++) {
        await p.sendDelayed(m.delay);
        await new Promise((r) => setTimeout(r, m.gap));
      }
    }
  });
  send({ type: 'ready' });
}

// ---------------------------------------------------------------- one case: "<workload>:<lib>"

const children = new Set();
function start(name, extra) {
  const argv = ['--role', name];
  for (const [k, v] of Object.entries(extra)) argv.push(`--${k}`, String(v));
  const child = fork(self, argv, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(child);
  return child;
}
const next = (child, type) => new Promise((resolve, reject) => {
  child.on('message', function h(m) { if (m.type === type) { child.off('message', h); resolve(m); } });
  child.once('exit', (code) => reject(new Error(`waiting for ${type}: a child exited ${code}`)));
});

async function runCase(name) {
  process.on('exit', () => { for (const c of children) c.kill('SIGKILL'); });
  const [workload, lib] = name.split(':');
  let port = REDIS_PORT;
  if (lib === 'bullmq') {
    const ok = await redis('FLUSHALL');
    if (ok !== '+OK') throw new Error(`FLUSHALL on 127.0.0.1:${REDIS_PORT}: ${ok}`);
  } else {
    ({ port } = await next(start('broker', {}), 'listening'));
  }
  const idle = workload === 'latency';
  const w = start('worker', { lib, port, n: workload === 'throughput' ? args.n : 1e9, concurrency: idle ? 10 : args.concurrency, prefetch: idle ? 0 : 200 });
  const p = start('producer', { lib, port, mode: workload });
  await Promise.all([next(w, 'ready'), next(p, 'ready')]);
  if (workload === 'throughput') {
    const done = next(w, 'done');
    const t0 = hr();
    p.send({ mode: 'throughput', n: args.n, window: args.window });
    return { perS: args.n / (((await done).at - t0) / 1000) };
  }
  if (workload === 'latency') {
    const res = next(p, 'latency');
    p.send({ mode: 'latency', n: 2000 });
    const s = summary((await res).lat);
    return { p50: s.p50, p99: s.p99 };
  }
  const n = 300;
  const late = [];
  const all = new Promise((resolve) => w.on('message', (m) => { if (m.type === 'late' && late.push(m.ms) === n) resolve(); }));
  p.send({ mode: 'delayed', n, delay: 200, gap: 3 });
  await all;
  const s = summary(late);
  return { p50: s.p50, p99: s.p99 };
}

// ---------------------------------------------------------------- parent

/** One inline command to the Redis on 127.0.0.1:REDIS_PORT: its reply (bulk replies whole), or the error's message. */
function redis(command, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const s = net.createConnection({ host: '127.0.0.1', port: REDIS_PORT });
    let out = '';
    const finish = (v) => { clearTimeout(timer); s.destroy(); resolve(v); };
    const timer = setTimeout(() => finish(`no reply within ${timeoutMs} ms`), timeoutMs);
    s.on('error', (e) => finish(e.code ?? e.message));
    s.on('connect', () => s.write(`${command}\r\n`));
    s.on('data', (d) => {
      out += d;
      const eol = out.indexOf('\r\n');
      if (eol < 0) return;
      if (out[0] !== '$') finish(out.slice(0, eol));
      else if (out.length >= eol + 2 + Number(out.slice(1, eol))) finish(out.slice(eol + 2));
    });
  });
}

/** Why BullMQ cannot be measured here (cheapest checks first), or null. */
async function unavailable() {
  if (bullmqDir() === null) return `no bullmq under PEER_DIR=${process.env.PEER_DIR}`;
  const pong = await redis('PING');
  if (pong !== '+PONG') return `no Redis answers PING on 127.0.0.1:${REDIS_PORT} (${pong})`;
  try {
    await import(pathToFileURL(createRequire(join(bullmqDir(), 'noop.js')).resolve('bullmq')).href);
  } catch (e) {
    return `bullmq under ${bullmqDir()} cannot be imported (${e.message})`;
  }
  if (!existsSync(new URL('../dist/transports/tcp/index.js', import.meta.url))) return 'dist/ is missing: run `npm run build` first';
  return null;
}

function printNotice(why) {
  console.log(`BullMQ rows not measured: ${why}. To measure them (../shared/bench/peers/queue/README.md): \`apt-get install -y redis-server\`; ` +
    '`mkdir -p /tmp/peerq && cd /tmp/peerq && npm init -y && npm install bullmq@5`; start a private Redis with ' +
    "`mkdir -p /tmp/redisbench && cd /tmp/redisbench && setsid redis-server --port 6390 --bind 127.0.0.1 --save '' --appendonly no " +
    '--dir /tmp/redisbench --logfile /tmp/redisbench/redis.log & echo $! > /tmp/redisbench/redis.pid` (stop it with ' +
    '`kill $(cat /tmp/redisbench/redis.pid)`); then run `node bench/bullmq.mjs` from the project root. PEER_DIR (default ' +
    '/tmp/peerq/node_modules) and REDIS_PORT (default 6390) move them; that Redis is FLUSHALLed, so use a private one. ' +
    "Until then, the peers' recorded baselines (../shared/bench/peers/queue-baselines.md, same machine, not this run):\n");
  printTable(['BullMQ ' + BASELINE.version + ' + Redis 7, peers\' harness', 'recorded'], [
    ['end-to-end throughput, 20k trivial jobs, concurrency 50, worker in its own process', `${int(BASELINE.throughput)} jobs/s`],
    ['idle enqueue -> result p50 / p99 (waitUntilFinished, worker in its own process)', `${BASELINE.latencyP50} / ${BASELINE.latencyP99} ms`],
    ['sparse delayed jobs, lateness p50 / p99 (Redis hz 10)', `${BASELINE.delayedP50} / ${BASELINE.delayedP99} ms`],
    ['SIGKILLed worker: its job restarts elsewhere after (defaults)', BASELINE.sigkill],
  ]);
}

async function main() {
  const why = await unavailable();
  if (why !== null) return printNotice(why);
  const info = await redis('INFO server');
  const field = (k) => new RegExp(`^${k}:(.*)\r?$`, 'm').exec(info)?.[1] ?? '?';
  const only = args.only ? String(args.only).split(',') : WORKLOADS;
  const before = await cpuSnapshot();
  const t0 = Date.now();
  const pass = { n: args.n, window: args.window, concurrency: args.concurrency };
  const res = {};
  for (const w of WORKLOADS.filter((x) => only.includes(x))) {
    Object.assign(res, await runInterleaved(import.meta.url, [`${w}:millwright`, `${w}:bullmq`], { reps: args.reps, args: pass }));
  }
  const busy = busyShare(before, await cpuSnapshot());

  const range = (xs, f) => `${f(median(xs))} (${f(min(xs))}–${f(max(xs))})`;
  const ms = (x) => fixed(x, 3);
  const rows = [];
  const row = (label, w, key, f, target, recorded) => {
    if (res[`${w}:bullmq`] === undefined) return;
    const mw = res[`${w}:millwright`].map((r) => r[key]);
    const bull = res[`${w}:bullmq`].map((r) => r[key]);
    rows.push([label, range(bull, f), range(mw, f), range(mw.map((x, i) => x / bull[i]), (x) => fixed(x, 2)), target, recorded]);
  };
  row(`throughput, ${int(args.n)} trivial tasks, ${args.window} in flight, concurrency ${args.concurrency} (tasks/s; higher is better)`, 'throughput', 'perS', int, 'ratio >= 5x', `${int(BASELINE.throughput)}/s (20k jobs, concurrency 50)`);
  row('idle send -> result p50 (ms; lower is better)', 'latency', 'p50', ms, 'millwright <= 0.25 ms', `${BASELINE.latencyP50} ms`);
  row('idle send -> result p99 (ms)', 'latency', 'p99', ms, 'millwright <= 1 ms', `${BASELINE.latencyP99} ms`);
  row('delayed task lateness p50 (ms; 300 tasks, +200 ms, one per 3 ms)', 'delayed', 'p50', ms, '', `${BASELINE.delayedP50} ms`);
  row('delayed task lateness p99 (ms)', 'delayed', 'p99', ms, 'millwright <= 5 ms', `${BASELINE.delayedP99} ms`);

  console.log(`\nBullMQ ${bullmqVersion()} (Redis ${field('redis_version')} on 127.0.0.1:${REDIS_PORT}, hz ${field('hz')}) vs millwright TCP, ` +
    `${args.reps} reps, median (min–max), node ${process.version}\n`);
  printTable(['case', `BullMQ ${bullmqVersion()}`, 'millwright TCP', 'millwright / BullMQ, same rep (x)', 'target', "peers' recorded BullMQ"], rows);
  console.log(`\nSIGKILLed worker, BullMQ defaults: its job restarts after ${BASELINE.sigkill} (recorded; bench/tcp.mjs measures millwright's)`);
  console.log(`machine busy (all processes, both cores) during the run: ${pct(busy)}; wall ${fixed((Date.now() - t0) / 1000, 1)} s`);
}

if (args.role !== '') await role();
else if (args.case !== '') { report(await runCase(args.case)); process.exit(0); }
else await main();
