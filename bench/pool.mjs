// Thread pool benchmark (SPEC section 3, the five "thread pool" rows): millwright's
// ThreadPool against the hand-written worker_threads loop measured in the same
// run, plus piscina and tinypool when PEER_DIR points at them installed
// (mkdir -p /tmp/peerpool && cd /tmp/peerpool && npm init -y && npm install piscina@5 tinypool@2).
// Each measurement is a fresh child process; contenders are interleaved and
// their order rotates every rep. Prints markdown tables (median and min-max).
//
//   npm run build && node bench/pool.mjs [--suites tiny,cpu,payload,latency,startup] [--reps 3] [--quick]
//   node bench/pool.mjs --case tiny:millwright --n=200000     (one data point)
//
// Workloads (same shapes as ../shared/bench/peers/pool):
//   tiny     200,000 x inc(x), 2 threads, 1,000 in flight              tasks/s, x raw
//   cpu      400 x fib(29), 1 vs 2 threads (+ serial on the main thread) ms, speedup
//   payload  2,000 x 1 MiB ArrayBuffer in and out, transferred, 16 in flight   tasks/s, x raw
//   latency  5,000 sequential tasks on an idle pool of 2               p50/p99 us
//   startup  import + create -> first result, RSS of 2 idle threads over bare node
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { busyShare, cpuSnapshot, parseArgs, report, runCase } from './lib/child.mjs';
import { createImpl, installedPeers, loadLibrary } from './lib/pool-impls.mjs';
import { fib } from './lib/pool-tasks.mjs';
import { median, min, max } from './lib/stats.mjs';
import { fixed, int, printTable } from './lib/table.mjs';

const args = parseArgs({ reps: 3, suites: 'tiny,cpu,payload,latency,startup', quick: false });
let noisy = 0;
process.on('exit', () => { if (noisy > 0 && args.case === undefined) console.log(`(${noisy} cases started on a busy machine: read them with suspicion)`); });


// ---------------------------------------------------------------- child side

const expectSum = (n) => (n * (n + 1)) / 2;

function driveBounded(call, total, inflight) {
  return new Promise((resolve, reject) => {
    let submitted = 0;
    let done = 0;
    let sum = 0;
    const onDone = (r) => {
      sum += r;
      done++;
      if (submitted < total) submit();
      else if (done === total) resolve(sum);
    };
    const submit = () => { call(submitted++).then(onDone, reject); };
    for (let k = 0; k < Math.min(inflight, total); k++) submit();
  });
}

const WORKLOADS = {
  async tiny(impl, p) {
    const pool = await createImpl(impl, { threads: p.threads ?? 2, fn: 'inc' });
    const warm = p.warm ?? 5_000;
    if ((await driveBounded(pool.call, warm, 1000)) !== expectSum(warm)) throw new Error('bad warm-up sum');
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const sum = await driveBounded(pool.call, p.n, p.inflight ?? 1000);
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(c0);
    if (sum !== expectSum(p.n)) throw new Error(`bad sum ${sum}`);
    await pool.close();
    return { tasksPerS: (p.n / ms) * 1000, cpuUsPerTask: (cpu.user + cpu.system) / p.n };
  },

  async cpu(spec, p) {
    const [impl, threads] = spec.split('@'); // "millwright@2"
    p = { ...p, threads: Number(threads ?? 1) };
    const expect = fib(p.fib);
    if (impl === 'main') {
      for (let i = 0; i < 4; i++) fib(p.fib);
      const t0 = performance.now();
      for (let i = 0; i < p.n; i++) if (fib(p.fib) !== expect) throw new Error('bad fib');
      return { ms: performance.now() - t0 };
    }
    const pool = await createImpl(impl, { threads: p.threads, fn: 'fib' });
    await Promise.all(Array.from({ length: p.threads * 4 }, () => pool.call(p.fib)));
    const t0 = performance.now();
    const rs = await Promise.all(Array.from({ length: p.n }, () => pool.call(p.fib)));
    const ms = performance.now() - t0;
    if (rs.some((r) => r !== expect)) throw new Error('bad fib result');
    await pool.close();
    return { ms };
  },

  async payload(impl, p) {
    const size = 1 << 20;
    const inflight = 16;
    const pool = await createImpl(impl, { threads: 2, fn: 'echoT' });
    const free = Array.from({ length: inflight }, (_, i) => new Uint8Array(size).fill(i).buffer);
    const run = (count) => new Promise((resolve, reject) => {
      let submitted = 0;
      let done = 0;
      const submit = () => {
        submitted++;
        const buf = free.pop();
        const first = new Uint8Array(buf)[0];
        pool.call(buf).then((r) => {
          if (!(r instanceof ArrayBuffer) || r.byteLength !== size) return reject(new Error('bad reply'));
          if (new Uint8Array(r)[0] !== ((first + 1) & 255)) return reject(new Error('the thread did not touch the buffer'));
          if (buf.byteLength !== 0) return reject(new Error('the input buffer was not transferred'));
          free.push(r);
          if (++done === count) resolve();
          else if (submitted < count) submit();
        }, reject);
      };
      for (let k = 0; k < Math.min(inflight, count); k++) submit();
    });
    await run(100);
    const t0 = performance.now();
    await run(p.n);
    const ms = performance.now() - t0;
    await pool.close();
    return { tasksPerS: (p.n / ms) * 1000 };
  },

  async latency(impl, p) {
    const pool = await createImpl(impl, { threads: 2, fn: 'inc' });
    await Promise.all([pool.call(0), pool.call(0)]);
    for (let i = 0; i < (p.warm ?? 1_000); i++) await pool.call(i);
    const lat = new Float64Array(p.n);
    const c0 = process.cpuUsage();
    for (let i = 0; i < p.n; i++) {
      const t = performance.now();
      if ((await pool.call(i)) !== i + 1) throw new Error('bad result');
      lat[i] = performance.now() - t;
    }
    const cpu = process.cpuUsage(c0);
    await pool.close();
    lat.sort();
    const at = (q) => lat[Math.min(lat.length - 1, Math.ceil(q * lat.length) - 1)] * 1000;
    return { p50: at(0.5), p99: at(0.99), cpuUsPerTask: (cpu.user + cpu.system) / p.n };
  },

  async startup(impl) {
    const rssBefore = process.memoryUsage().rss;
    if (impl === 'none') {
      await sleep(500);
      return { rssMb: process.memoryUsage().rss / 2 ** 20, rssBeforeMb: rssBefore / 2 ** 20 };
    }
    const t0 = performance.now();
    await loadLibrary(impl);
    const t1 = performance.now();
    const rssImported = process.memoryUsage().rss;
    const pool = await createImpl(impl, { threads: 2, fn: 'inc' });
    if ((await pool.call(41)) !== 42) throw new Error('bad first result');
    const t2 = performance.now();
    await Promise.all(Array.from({ length: 8 }, (_, i) => pool.call(i)));
    await sleep(500);
    const rss = process.memoryUsage().rss;
    const threads = pool.threadCount();
    await pool.close();
    return { importMs: t1 - t0, firstMs: t2 - t1, rssMb: rss / 2 ** 20, threadsMb: (rss - rssImported) / 2 ** 20, threads };
  },
};

if (args.case !== undefined) {
  const [workload, impl] = String(args.case).split(':');
  report(await WORKLOADS[workload](impl, args));
  setTimeout(() => process.exit(0), 2000).unref(); // a peer that keeps handles open must not hang the run
} else {
  await main();
}

// --------------------------------------------------------------- parent side

async function main() {
  const quick = args.quick === true;
  const q = (n) => (quick ? Math.max(1, Math.round(n / 20)) : n);
  const peers = installedPeers();
  const reps = quick ? 1 : args.reps;
  const suites = String(args.suites).split(',');
  const script = new URL(import.meta.url);
  const run = (cases, caseArgs) => interleaved(script, cases, reps, caseArgs);
  console.log(`Node ${process.version}, ${reps} reps per cell, each a fresh process; peers: ${peers.length > 0 ? peers.join(', ') : 'none (set PEER_DIR)'}\n`);
  const range = (xs, f) => `${f(median(xs))} (${f(min(xs))}–${f(max(xs))})`;
  const ratio = (res, id, ref, key) => res[id].map((r, i) => r[key] / res[ref][i][key]);

  if (suites.includes('tiny')) {
    const ids = ['millwright', 'raw', ...peers];
    const res = await run(ids.map((id) => `tiny:${id}`), { n: q(200_000), inflight: 1000, threads: 2, warm: q(5_000) });
    console.log(`### tiny: inc(x), 2 threads, 1,000 in flight, ${int(q(200_000))} tasks each\n`);
    printTable(['contender', 'tasks/s', '× raw (per rep)', 'CPU µs/task (all threads)'], ids.map((id) => {
      const r = res[`tiny:${id}`];
      return [id, range(r.map((x) => x.tasksPerS), int), range(r.map((x, i) => x.tasksPerS / res['tiny:raw'][i].tasksPerS), (x) => fixed(x, 3)), range(r.map((x) => x.cpuUsPerTask), (x) => fixed(x, 1))];
    }));
    for (const peer of peers) {
      console.log(`\nmillwright × ${peer} (per rep): ${range(ratio(Object.fromEntries(Object.entries(res).map(([k, v]) => [k.split(':')[1], v])), 'millwright', peer, 'tasksPerS'), (x) => fixed(x, 2))}`);
    }
    console.log('');
  }

  if (suites.includes('cpu')) {
    const ids = ['millwright', 'raw-1pw', ...peers];
    const res = await run(['cpu:main', ...ids.flatMap((id) => [`cpu:${id}@1`, `cpu:${id}@2`])], { n: q(400), fib: 29 });
    printCpu(res, ids, range);
  }

  if (suites.includes('payload')) {
    const ids = ['millwright', 'raw', ...peers];
    const res = await run(ids.map((id) => `payload:${id}`), { n: q(2_000) });
    console.log('### payload: 1 MiB ArrayBuffer in and out, transferList both ways, 16 in flight, 2 threads\n');
    printTable(['contender', 'tasks/s (= MiB/s per direction)', '× raw (per rep)'], ids.map((id) => {
      const r = res[`payload:${id}`];
      return [id, range(r.map((x) => x.tasksPerS), int), range(r.map((x, i) => x.tasksPerS / res['payload:raw'][i].tasksPerS), (x) => fixed(x, 3))];
    }));
    console.log('');
  }

  if (suites.includes('latency')) {
    const ids = ['millwright', 'raw', ...peers];
    const res = await run(ids.map((id) => `latency:${id}`), { n: q(5_000), warm: q(1_000) });
    console.log('### latency: sequential submit -> result on an idle pool of 2 (µs; each cell: median over reps of that run\'s percentile)\n');
    printTable(['contender', 'p50 µs', 'p99 µs', 'CPU µs/task'], ids.map((id) => {
      const r = res[`latency:${id}`];
      return [id, range(r.map((x) => x.p50), (x) => fixed(x, 1)), range(r.map((x) => x.p99), (x) => fixed(x, 1)), range(r.map((x) => x.cpuUsPerTask), (x) => fixed(x, 1))];
    }));
    console.log('');
  }

  if (suites.includes('startup')) {
    const ids = ['none', 'millwright', 'raw', ...peers];
    const res = await run(ids.map((id) => `startup:${id}`), {});
    const bare = median(res['startup:none'].map((x) => x.rssMb));
    console.log('### startup: fresh process, pool of 2 threads (RSS after both threads ran and idled 500 ms)\n');
    printTable(['contender', 'import ms', 'create -> first result ms', 'RSS MB', 'RSS − bare node MB', 'RSS of the pool (after − before create) MB'], ids.map((id) => {
      const r = res[`startup:${id}`];
      if (id === 'none') return ['bare node', '—', '—', range(r.map((x) => x.rssMb), (x) => fixed(x, 1)), '0', '—'];
      return [id, range(r.map((x) => x.importMs), (x) => fixed(x, 1)), range(r.map((x) => x.firstMs), (x) => fixed(x, 1)), range(r.map((x) => x.rssMb), (x) => fixed(x, 1)), range(r.map((x) => x.rssMb - bare), (x) => fixed(x, 1)), range(r.map((x) => x.threadsMb), (x) => fixed(x, 1))];
    }));
    console.log('\n(millwright imports the whole package entry, dist/src/index.js; "RSS of the pool" leaves the library import out)');
    console.log('');
  }
}

function printCpu(res, ids, range) {
  console.log('### cpu: 400 × fib(29), 1 vs 2 threads (ms; speedup = T1/T2 per rep; the limit is 2.0)\n');
  const main = res['cpu:main'].map((x) => x.ms);
  const rows = [['main thread, serial', range(main, int), '—', '—']];
  for (const id of ids) {
    const t1 = res[`cpu:${id}@1`].map((x) => x.ms);
    const t2 = res[`cpu:${id}@2`].map((x) => x.ms);
    rows.push([id, range(t1, int), range(t2, int), range(t1.map((t, i) => t / t2[i]), (x) => fixed(x, 3))]);
  }
  printTable(['contender', '1 thread ms', '2 threads ms', 'speedup 1→2'], rows);
  console.log('');
}

/**
 * Runs every case `reps` times, interleaved with the order rotated each rep,
 * one child at a time; before each case waits (up to QUIET_MAX_S, default 10 s)
 * for the machine to be quiet (< 20% busy over 0.5 s twice), as the peers'
 * harness does, and counts the cases that started on a busy machine.
 */
async function interleaved(script, cases, reps, caseArgs) {
  const results = Object.fromEntries(cases.map((c) => [c, []]));
  for (let rep = 0; rep < reps; rep++) {
    for (let i = 0; i < cases.length; i++) {
      const name = cases[(i + rep) % cases.length];
      if (!(await quiet())) noisy++;
      results[name].push(await runCase(script, name, typeof caseArgs === 'function' ? caseArgs(name) : caseArgs));
    }
  }
  return results;
}


async function quiet() {
  const deadline = performance.now() + Number(process.env.QUIET_MAX_S ?? 10) * 1000;
  let calm = 0;
  while (performance.now() < deadline) {
    const a = await cpuSnapshot();
    await sleep(500);
    const share = busyShare(a, await cpuSnapshot());
    if (!(share >= 0.2)) { if (++calm === 2) return true; } else calm = 0;
  }
  return false;
}
