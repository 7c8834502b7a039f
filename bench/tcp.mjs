// TCP transport benchmarks (SPEC section 3, TCP rows). Broker, producer and
// worker run as separate child processes on 127.0.0.1, talking through
// dist/transports/tcp; the raw node:net length-prefixed loop (the shape of
// ../shared/bench/peers/queue/bench-tcp.mjs) is measured in the same run.
//
//   node bench/tcp.mjs [--reps 3] [--n 50000] [--window 100] [--only throughput,latency,...]
//
// The throughput producer keeps `--window` sends in flight (default 100, the shape of the
// peers' harness: "add() per job, <= 100 in flight"); the `throughput1000` row keeps 1,000.
//
// Rows: throughput (trivial tasks, send -> worker completion), idle send -> result
// latency (5,000 tasks one at a time, after 8,000 warm-up tasks on the same path; the
// first 500 after start are reported separately as "cold"), delayed-task lateness, SIGKILL redelivery, broker memory per queued task,
// journal throughput (fsync group commit), raw node:net pipelined and request/response, and
// BullMQ in the same shape when PEER_DIR has it and redis-server is installed
// (lib/bullmq-peer.mjs; otherwise the peers' recorded baselines are printed, marked as such).
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from './lib/child.mjs';
import { bullmqRole, bullmqUnavailable, bullmqVersion, RECORDED, startRedis } from './lib/bullmq-peer.mjs';
import { median, min, max, summary } from './lib/stats.mjs';
import { printTable, int, fixed } from './lib/table.mjs';

const self = fileURLToPath(import.meta.url);
const args = parseArgs({ role: '', reps: 3, n: 50000, only: '', window: 100 });
const now = () => performance.timeOrigin + performance.now();
const hr = () => Number(process.hrtime.bigint()) / 1e6;

// ---------------------------------------------------------------- child roles
if (args.role !== '') {
  process.on('disconnect', () => process.exit(0));
  process.on('SIGINT', () => process.exit(0));
  process.on('message', (m) => { if (m.type === 'cpu') { const u = process.cpuUsage(); process.send({ type: 'cpu', us: u.user + u.system, sys: u.system }); } });
  const send = (m) => process.send(m);
  const on = (type) => new Promise((r) => process.on('message', function h(m) { if (m.type === type) { process.off('message', h); r(m); } }));
  const { App, signature, currentTask } = args.role.startsWith('bullmq-') ? {} : await import('../dist/src/index.js');
  const { BrokerServer, TcpTransport } = args.role.startsWith('bullmq-') ? {} : await import('../dist/transports/tcp/index.js');

  if (args.role.startsWith('bullmq-')) {
    await bullmqRole(args.role, args, { send, on, hr });
  } else if (args.role === 'broker') {
    const server = new BrokerServer({ port: 0, ...(args.dataDir ? { dataDir: args.dataDir } : {}), visibilityTimeout: 30_000 });
    await server.listen();
    process.on('message', (m) => {
      if (m.type === 'rss') { globalThis.gc?.(); globalThis.gc?.(); send({ type: 'rss', rss: process.memoryUsage().rss, heap: process.memoryUsage().heapUsed, stats: server.stats() }); }
    });
    send({ type: 'listening', port: server.address().port });
  } else if (args.role === 'raw-server') {
    const server = net.createServer((sock) => {
      sock.setNoDelay(true);
      let buf = Buffer.alloc(0);
      sock.on('data', (d) => {
        buf = buf.length ? Buffer.concat([buf, d]) : d;
        let off = 0; const acks = [];
        while (buf.length - off >= 4) {
          const len = buf.readUInt32BE(off);
          if (buf.length - off - 4 < len) break;
          const id = JSON.parse(buf.toString('utf8', off + 4, off + 4 + len)).id;
          off += 4 + len;
          const p = Buffer.from(JSON.stringify({ id, ok: 1 })); const h = Buffer.allocUnsafe(4); h.writeUInt32BE(p.length, 0); acks.push(h, p);
        }
        buf = off === buf.length ? Buffer.alloc(0) : buf.subarray(off);
        if (acks.length) sock.write(Buffer.concat(acks));
      });
    });
    server.listen(0, '127.0.0.1', () => send({ type: 'listening', port: server.address().port }));
  } else {
    const transport = new TcpTransport({ port: args.port });
    const app = new App({ transport });
    app.task('add', (a, b) => a + b);
    app.task('sleep', (ms) => new Promise((r) => setTimeout(r, ms)));
    app.task('stamp', () => { const sig = currentTask().signature; send({ type: 'late', ms: now() - sig.eta }); });
    if (args.role === 'worker') {
      let done = 0;
      const target = args.n;
      const w = app.worker({ concurrency: args.concurrency ?? 100, prefetch: args.prefetch ?? 200 });
      w.on('task:succeeded', () => { if (++done === target) send({ type: 'done', at: hr() }); });
      w.on('task:started', (e) => { if (e.name === 'sleep') send({ type: 'started', id: e.id, at: hr() }); });
      await w.start();
      send({ type: 'ready' });
    } else if (args.role === 'producer') {
      await transport.connect();
      send({ type: 'ready' });
      const m = await on('go');
      if (m.mode === 'throughput') {
        const window = m.window; let inflight = 0; let i = 0; const t0 = hr();
        await new Promise((resolve) => {
          const pump = () => {
            while (inflight < window && i < m.n) {
              inflight++; i++;
              app.send(signature('add', [i, 1])).then(() => { inflight--; if (i === m.n && inflight === 0) resolve(); else pump(); });
            }
          };
          pump();
        });
        send({ type: 'sent', ms: hr() - t0 });
      } else if (m.mode === 'latency') {
        const lat = [];
        const pub = [];
        const cold = [];
        const one = async (i, into) => {
          const t0 = hr();
          const r = await app.send(signature('add', [i, 1]));
          const t1 = hr();
          await r.get();
          if (into !== undefined) { into.push(hr() - t0); pub.push(t1 - t0); }
        };
        // Cold: the first tasks after connecting, while V8 still compiles and deoptimises the paths of all
        // three processes (measured: ~20% of them above 1 ms, falling to ~2% after a few thousand tasks).
        for (let i = 0; i < m.cold; i++) await one(i, cold);
        pub.length = 0;
        // Warm-up on the same path (send, then get), 16 at a time so it takes a fraction of a second.
        await Promise.all(Array.from({ length: 16 }, async () => { for (let i = 0; i < m.warm / 16; i++) await one(i); }));
        for (let i = 0; i < 200; i++) await one(i);
        for (let i = 0; i < m.n; i++) await one(i, lat);
        send({ type: 'latency', lat, pub, cold });
      } else if (m.mode === 'delayed') {
        for (let i = 0; i < m.n; i++) {
          await app.send(signature('stamp', [], { eta: Math.round(now()) + m.delay }));
          await new Promise((r) => setTimeout(r, m.gap));
        }
      } else if (m.mode === 'sleep') {
        for (let i = 0; i < m.n; i++) await app.send(signature('sleep', [m.ms]));
        send({ type: 'sent' });
      } else if (m.mode === 'fill') {
        const payload = 'x'.repeat(m.payload);
        const sends = [];
        for (let i = 0; i < m.n; i++) { sends.push(app.send(signature('add', [payload, i], { queue: 'parked' }))); if (sends.length >= 1000) await Promise.all(sends.splice(0)); }
        await Promise.all(sends);
        send({ type: 'filled' });
      }
    }
  }
}

// ---------------------------------------------------------------- parent
function start(role, extra = {}, flags = []) {
  const argv = ['--role', role];
  for (const [k, v] of Object.entries(extra)) argv.push(`--${k}`, String(v));
  const prof = (process.env.BENCH_PROF ?? '').split(',').includes(role) ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROF_DIR ?? '/tmp/mwprof'}`] : [];
  const child = fork(self, argv, { execArgv: [...flags, ...prof], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}
const children = new Set();
const cpuPerTask = [];
const sysPerTask = [];
process.on('exit', () => { for (const c of children) c.kill('SIGKILL'); });
const next = (child, type) => new Promise((resolve, reject) => {
  const h = (m) => { if (m.type === type) { child.off('message', h); resolve(m); } };
  child.on('message', h);
  child.once('exit', (code) => reject(new Error(`${type}: child exited ${code}`)));
});
async function stop(...cs) { for (const c of cs) { c.kill(process.env.BENCH_PROF || process.env.BENCH_SOFT ? 'SIGINT' : 'SIGKILL'); if (c.exitCode === null) await new Promise((r) => c.once('exit', r)); } }

async function broker(extra = {}, flags = []) {
  const b = start('broker', extra, flags);
  const { port } = await next(b, 'listening');
  return { b, port };
}

async function throughput(n, dataDir, window = args.window) {
  const { b, port } = await broker(dataDir ? { dataDir } : {});
  const w = start('worker', { port, n, concurrency: args.concurrency ?? 100, prefetch: args.prefetch ?? 200 });
  const p = start('producer', { port });
  await Promise.all([next(w, 'ready'), next(p, 'ready')]);
  const cpu = async () => Promise.all([b, p, w].map((c) => { const r = next(c, 'cpu'); c.send({ type: 'cpu' }); return r.then((m) => [m.us, m.sys]); }));
  const c0 = await cpu();
  const done = next(w, 'done');
  const t0 = hr();
  p.send({ type: 'go', mode: 'throughput', n, window });
  const { at } = await done;
  const c1 = await cpu();
  const label = `${dataDir ? 'journal, ' : ''}window ${window}`;
  cpuPerTask.push([label, c1.map((v, i) => (v[0] - c0[i][0]) / n)]);
  sysPerTask.push([label, c1.map((v, i) => (v[1] - c0[i][1]) / n)]);
  await stop(p, w, b);
  return n / ((at - t0) / 1000);
}

/** BullMQ, same shape: producer and worker processes, a private redis-server as the broker. */
async function bullmqThroughput(redis, n) {
  await redis.flush();
  const w = start('bullmq-worker', { redisPort: redis.port, n, concurrency: 50 });
  const p = start('bullmq-producer', { redisPort: redis.port });
  await Promise.all([next(w, 'ready'), next(p, 'ready')]);
  const done = next(w, 'done');
  const t0 = hr();
  p.send({ type: 'go', mode: 'throughput', n, window: args.window });
  const { at } = await done;
  await stop(p, w);
  return n / ((at - t0) / 1000);
}

async function bullmqLatency(redis, n) {
  await redis.flush();
  const w = start('bullmq-worker', { redisPort: redis.port, n: 1e9, concurrency: 10 });
  const p = start('bullmq-producer', { redisPort: redis.port });
  await Promise.all([next(w, 'ready'), next(p, 'ready')]);
  const res = next(p, 'latency');
  p.send({ type: 'go', mode: 'latency', n, cold: 200, warm: 1000 });
  const { lat, cold } = await res;
  await stop(p, w);
  const s = summary(lat);
  s.cold99 = summary(cold).p99;
  return s;
}

async function latency(n, cold = 500, warm = 8000) {
  const { b, port } = await broker();
  const w = start('worker', { port, n: 1e9, concurrency: 10, prefetch: 0 });
  const p = start('producer', { port });
  await Promise.all([next(w, 'ready'), next(p, 'ready')]);
  const res = next(p, 'latency');
  p.send({ type: 'go', mode: 'latency', n, cold, warm });
  const { lat, pub, cold: coldLat } = await res;
  await stop(p, w, b);
  const s = summary(lat);
  s.pub50 = summary(pub).p50;
  const c = summary(coldLat);
  s.cold50 = c.p50;
  s.cold99 = c.p99;
  return s;
}

async function delayed(n) {
  const { b, port } = await broker();
  const w = start('worker', { port, n: 1e9 });
  const p = start('producer', { port });
  await Promise.all([next(w, 'ready'), next(p, 'ready')]);
  const late = [];
  const all = new Promise((resolve) => w.on('message', (m) => { if (m.type === 'late') { late.push(m.ms); if (late.length === n) resolve(); } }));
  p.send({ type: 'go', mode: 'delayed', n, delay: 200, gap: 3 });
  await all;
  await stop(p, w, b);
  return summary(late);
}

async function sigkill(n) {
  const { b, port } = await broker();
  const victim = start('worker', { port, n: 1e9, concurrency: n, prefetch: 0 });
  const p = start('producer', { port });
  await Promise.all([next(victim, 'ready'), next(p, 'ready')]);
  const started = new Set();
  await new Promise((resolve) => { victim.on('message', (m) => { if (m.type === 'started') { started.add(m.id); if (started.size === n) resolve(); } }); p.send({ type: 'go', mode: 'sleep', n, ms: 60_000 }); });
  const survivor = start('worker', { port, n: 1e9, concurrency: n, prefetch: 0 });
  await next(survivor, 'ready');
  const again = new Map();
  const all = new Promise((resolve) => survivor.on('message', (m) => { if (m.type === 'started' && started.has(m.id)) { again.set(m.id, m.at); if (again.size === n) resolve(); } }));
  const t0 = hr();
  victim.kill('SIGKILL');
  await all;
  await stop(p, survivor, b);
  return Math.max(...[...again.values()].map((at) => at - t0));
}

async function memoryPerTask(n, payload) {
  const { b, port } = await broker({}, ['--expose-gc']);
  const p = start('producer', { port });
  await next(p, 'ready');
  b.send({ type: 'rss' });
  const before = await next(b, 'rss');
  p.send({ type: 'go', mode: 'fill', n, payload });
  await next(p, 'filled');
  b.send({ type: 'rss' });
  const after = await next(b, 'rss');
  await stop(p, b);
  const argsBytes = JSON.stringify([ 'x'.repeat(payload), n ]).length;
  return { rss: (after.rss - before.rss) / n - argsBytes, heap: (after.heap - before.heap) / n - argsBytes };
}

async function raw(pattern, n) {
  const s = start('raw-server');
  const { port } = await next(s, 'listening');
  const sock = net.createConnection({ host: '127.0.0.1', port });
  sock.setNoDelay(true);
  await new Promise((r) => sock.on('connect', r));
  const task = (i) => ({ id: i, type: 'task', queue: 'default', name: 'math.add', args: [i, 1], attempts: 0, maxAttempts: 3, createdAt: 1764172800000 + i, ttlMs: 30000, trace: 'a1b2c3d4e5f60718', meta: { tenant: 'acme', prio: 5 } });
  const frame = (i) => { const p = Buffer.from(JSON.stringify(task(i))); const h = Buffer.allocUnsafe(4); h.writeUInt32BE(p.length, 0); return [h, p]; };
  let sent = 0; let acked = 0; let inbuf = Buffer.alloc(0); const rtt = []; const sentAt = new Float64Array(n);
  const t0 = hr();
  await new Promise((resolve) => {
    const pump = () => {
      if (pattern === 'reqres') { if (sent < n && sent === acked) { sentAt[sent] = hr(); sock.write(Buffer.concat(frame(sent++))); } return; }
      const parts = [];
      while (sent < n && sent - acked < 1000) parts.push(...frame(sent++));
      if (parts.length) sock.write(Buffer.concat(parts));
    };
    sock.on('data', (d) => {
      inbuf = inbuf.length ? Buffer.concat([inbuf, d]) : d;
      let off = 0;
      while (inbuf.length - off >= 4) {
        const len = inbuf.readUInt32BE(off);
        if (inbuf.length - off - 4 < len) break;
        const id = JSON.parse(inbuf.toString('utf8', off + 4, off + 4 + len)).id;
        off += 4 + len; acked++;
        if (pattern === 'reqres') rtt.push(hr() - sentAt[id]);
      }
      inbuf = off === inbuf.length ? Buffer.alloc(0) : inbuf.subarray(off);
      if (acked === n) resolve(); else pump();
    });
    pump();
  });
  const rate = n / ((hr() - t0) / 1000);
  sock.destroy();
  await stop(s);
  return { rate, rtt: rtt.length ? summary(rtt) : undefined };
}

async function main() {
  const reps = args.reps;
  const only = args.only ? new Set(String(args.only).split(',')) : null;
  const want = (k) => only === null || only.has(k);
  const rows = [];
  const agg = (name, values, fmt, unit, target, ref = '') => rows.push([name, `${fmt(median(values))} ${unit}`, `${fmt(min(values))}–${fmt(max(values))}`, target, ref]);
  const noBullmq = want('bullmq') ? bullmqUnavailable() : 'not asked for';
  const redis = noBullmq === null ? await startRedis() : null;
  const r = { bull: [], bullP50: [], bullP99: [], bullCold99: [], tput: [], tput1000: [], jtput: [], p50: [], p99: [], late50: [], late99: [], kill: [], memRss: [], memHeap: [], rawPipe: [], rawReq: [], rawRtt50: [], rawRtt99: [], pub50: [], cold50: [], cold99: [] };
  for (let rep = 0; rep < reps; rep++) {
    if (want('raw')) { const a = await raw('pipelined', 300000); r.rawPipe.push(a.rate); const b2 = await raw('reqres', 20000); r.rawReq.push(b2.rate); r.rawRtt50.push(b2.rtt.p50); r.rawRtt99.push(b2.rtt.p99); }
    if (want('throughput')) r.tput.push(await throughput(args.n));
    if (redis !== null) {
      r.bull.push(await bullmqThroughput(redis, args.n)); // same N as millwright's row (the peers' harness used 20,000)
      const s = await bullmqLatency(redis, 1000);
      r.bullP50.push(s.p50); r.bullP99.push(s.p99); r.bullCold99.push(s.cold99);
    }
    if (want('throughput1000')) r.tput1000.push(await throughput(args.n, undefined, 1000));
    if (want('latency')) { const s = await latency(5000); r.p50.push(s.p50); r.p99.push(s.p99); r.pub50.push(s.pub50); r.cold50.push(s.cold50); r.cold99.push(s.cold99); }
    if (want('delayed')) { const s = await delayed(300); r.late50.push(s.p50); r.late99.push(s.p99); }
    if (want('sigkill')) r.kill.push(await sigkill(5));
    if (want('memory')) { const m = await memoryPerTask(100000, 100); r.memRss.push(m.rss); r.memHeap.push(m.heap); }
    if (want('journal')) { const dir = mkdtempSync(join(tmpdir(), 'mw-bench-')); try { r.jtput.push(await throughput(Math.min(args.n, 30000), dir)); } finally { rmSync(dir, { recursive: true, force: true }); } }
    console.error(`rep ${rep + 1}/${reps} done`);
  }
  const ms = (x) => fixed(x, 3);
  if (r.tput.length) agg(`throughput, trivial tasks, 3 processes, ${args.window} sends in flight (tasks/s)`, r.tput, int, '', '>= 70,000', r.rawPipe.length ? `raw pipelined ${int(median(r.rawPipe))} msgs/s` : '');
  if (r.tput1000.length) agg('throughput, as above, 1,000 sends in flight (tasks/s)', r.tput1000, int, '', '');
  if (r.bull.length) {
    const v = bullmqVersion();
    agg(`BullMQ ${v} throughput, producer + worker + redis-server, ${args.window} adds in flight, concurrency 50 (jobs/s)`, r.bull, int, '', 'peer');
    if (r.tput.length === r.bull.length) agg('millwright / BullMQ throughput, same rep', r.tput.map((x, i) => x / r.bull[i]), (x) => fixed(x, 2), 'x', '>= 5x');
    agg(`BullMQ ${v} idle add -> result (QueueEvents) p50`, r.bullP50, ms, 'ms', 'peer');
    agg(`BullMQ ${v} idle add -> result p99`, r.bullP99, ms, 'ms', 'peer');
    agg(`BullMQ ${v} cold: first 200 jobs, p99`, r.bullCold99, ms, 'ms', 'peer');
  } else if (want('bullmq')) {
    const note = `recorded baseline, not this run (${noBullmq})`;
    rows.push([`BullMQ ${RECORDED.version} throughput (peers' harness, window 100, concurrency 50)`, `${int(RECORDED.throughput)} jobs/s`, '', '', note]);
    if (r.tput.length) rows.push(['millwright / recorded BullMQ throughput', `${fixed(median(r.tput) / RECORDED.throughput, 2)} x`, '', '>= 5x', 'different runs: indicative only']);
    rows.push([`BullMQ ${RECORDED.version} idle enqueue -> result p50 / p99`, `${RECORDED.latencyP50} / ${RECORDED.latencyP99} ms`, '', '', note]);
  }
  if (redis !== null) await redis.stop();
  if (r.p50.length) { agg('idle send -> result p50', r.p50, ms, 'ms', '<= 0.25 ms', r.rawRtt50.length ? `raw RTT p50 ${ms(median(r.rawRtt50))} ms` : ''); agg('idle send -> result p99', r.p99, ms, 'ms', '<= 1 ms'); agg('idle send() alone (publish confirmed) p50', r.pub50, ms, 'ms', ''); agg('cold: first 500 tasks after start, p50', r.cold50, ms, 'ms', '', 'JIT still warming up'); agg('cold: first 500 tasks after start, p99', r.cold99, ms, 'ms', ''); }
  if (r.late50.length) { agg('delayed task lateness p50', r.late50, ms, 'ms', ''); agg('delayed task lateness p99', r.late99, ms, 'ms', '<= 5 ms'); }
  if (r.kill.length) agg('SIGKILLed worker: kill -> restarted elsewhere (5 tasks, max)', r.kill, ms, 'ms', '<= 1000 ms');
  if (r.memRss.length) { agg('broker RSS per queued task beyond payload', r.memRss, int, 'B', '< 1024 B'); agg('broker heap per queued task beyond payload', r.memHeap, int, 'B', ''); }
  if (r.jtput.length) agg('throughput with journal (fdatasync group commit, tasks/s)', r.jtput, int, '', '');
  if (r.rawPipe.length) { agg('raw node:net pipelined json (msgs/s)', r.rawPipe, int, '', 'reference'); agg('raw node:net request/response (msgs/s)', r.rawReq, int, '', 'reference'); agg('raw node:net RTT p50', r.rawRtt50, ms, 'ms', 'reference'); agg('raw node:net RTT p99', r.rawRtt99, ms, 'ms', 'reference'); }
  const perRun = (list) => list.map(([label, a]) => `${label}: ${a.map((x) => x.toFixed(1)).join(' / ')}`).join('; ');
  if (cpuPerTask.length) console.log('CPU us per task [broker / producer / worker]:', perRun(cpuPerTask));
  if (sysPerTask.length) console.log('  of which system:', perRun(sysPerTask));
  console.log(`\nTCP transport, ${reps} reps, median [min–max], node ${process.version}\n`);
  printTable(['case', 'median', 'range', 'target', 'reference (same run)'], rows);
  process.exit(0);
}

if (args.role === '') await main();
