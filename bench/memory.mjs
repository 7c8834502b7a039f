// SPEC section 3, row "in-memory, trivial task, send -> result, one process".
//
// Contenders, each in its own child process, interleaved over --reps:
//   bare-window / bare-all : the floor, a bare array FIFO + promise hand-off
//                            (the shape of ../shared/bench/peers/queue/bench-inmem.mjs)
//   min-window / min-all   : the least code doing the work millwright must do per task (a
//                            random UUID, the args and result through JSON, a result record
//                            kept in a Map of every result with an expiry entry, a watcher
//                            for a get() whose task is not done yet: none here, as in
//                            millwright, since a trivial task finishes before its get());
//                            no retries, events, revocation or transport seam:
//                            how far the target is from what the work itself costs
//   mw-window / mw-all     : millwright, App + in-memory transport + one worker,
//                            `(await app.send(add.s(i, 1))).get()`
// Patterns:
//   window : the producer keeps --window tasks in flight (closed loop)
//   all    : the producer sends all N, then awaits all N results
// Both run --concurrency consumers (the worker's `concurrency`, the bare queue's loops).
//
//   node bench/memory.mjs [--n 200000] [--reps 5] [--window 1000] [--concurrency 1000]
//   node --cpu-prof bench/memory.mjs --case mw-window     # one case, in this process
//   --dist /abs/path/to/dist  compares another build (before/after an optimisation)
import { parseArgs, report, runInterleaved, cpuSnapshot, busyShare } from './lib/child.mjs';
import { median, min, max } from './lib/stats.mjs';
import { printTable, int, pct, fixed } from './lib/table.mjs';

const args = parseArgs({ n: 200_000, reps: 5, window: 1000, concurrency: 1000, warmup: 20_000, case: '', dist: '../dist' });
const CASES = ['bare-window', 'min-window', 'mw-window', 'bare-all', 'min-all', 'mw-all'];
const TARGET_RATE = 400_000;
const TARGET_RATIO = 0.4;

if (args.case !== '') await child(args.case);
else await parent();

async function parent() {
  const before = await cpuSnapshot();
  const t0 = Date.now();
  const results = await runInterleaved(import.meta.url, CASES, {
    reps: args.reps, args: { n: args.n, window: args.window, concurrency: args.concurrency, warmup: args.warmup, dist: args.dist },
  });
  const busy = busyShare(before, await cpuSnapshot());
  const rate = (name) => results[name].map((r) => r.tasksPerSec);
  console.log(`\n### In-memory send -> result, trivial task (N=${int(args.n)}, concurrency ${args.concurrency}, window ${args.window}, ${args.reps} reps, node ${process.version})\n`);
  const rows = [];
  for (const pattern of ['window', 'all']) {
    const bare = rate(`bare-${pattern}`);
    const least = rate(`min-${pattern}`);
    for (const who of ['bare', 'min', 'mw']) {
      const name = `${who}-${pattern}`;
      const r = rate(name);
      const ok = results[name].every((x) => x.ok);
      const m = median(r);
      const ofBare = median(r.map((x, i) => x / bare[i])); // per rep: the same rep's bare run (runInterleaved keeps rep order)
      const ofMin = median(r.map((x, i) => x / least[i]));
      const cpu = median(results[name].map((x) => x.cpuUsPerTask));
      const rss = median(results[name].map((x) => x.rssMB));
      const targets = who === 'mw'
        ? `>= ${int(TARGET_RATE)}/s: ${m >= TARGET_RATE ? 'yes' : 'NO'}; >= ${pct(TARGET_RATIO)} of bare: ${ofBare >= TARGET_RATIO ? 'yes' : 'NO'}`
        : who === 'min' ? 'reference (the work alone)' : 'reference';
      rows.push([name, int(m), `${int(min(r))} – ${int(max(r))}`, pct(ofBare), pct(ofMin), fixed(cpu, 2), int(rss), ok ? 'yes' : 'NO', targets]);
    }
  }
  printTable(['case', 'tasks/s median', 'min – max', 'of bare (same pattern)', 'of min', 'CPU us/task', 'RSS MB', 'results ok', 'target met'], rows);
  console.log(`\nmachine busy (all processes, both cores) during the run: ${pct(busy)}; wall ${fixed((Date.now() - t0) / 1000, 1)} s`);
}

async function child(name) {
  const [who, pattern] = name.split('-');
  const run = who === 'bare' ? await bareQueue(args.concurrency) : who === 'min' ? await minimalQueue(args.concurrency) : await millwright(args.concurrency);
  const drive = pattern === 'window' ? windowed : sendAll;
  if (args.warmup > 0) await drive(run.add, args.warmup);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const sum = await drive(run.add, args.n);
  const elapsed = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  // Each task i returns i + 1, so the results sum to n(n-1)/2 + n.
  const ok = sum === (args.n * (args.n - 1)) / 2 + args.n;
  report({
    case: name, n: args.n, elapsedMs: Math.round(elapsed), tasksPerSec: Math.round(args.n / (elapsed / 1000)),
    cpuUsPerTask: (cpu.user + cpu.system) / args.n, rssMB: Math.round(process.memoryUsage().rss / 1e6), ok,
  });
  await run.close();
  process.exit(0);
}

/** `window` lanes, each sending one task and awaiting its result until n are done. */
async function windowed(add, n) {
  let next = 0;
  let sum = 0;
  const lane = async () => {
    while (next < n) {
      const v = await add(next++); // not `sum += await ...`: that reads `sum` before the await
      sum += v;
    }
  };
  await Promise.all(Array.from({ length: Math.min(args.window, n) }, lane));
  return sum;
}

/** Sends all n, then awaits all n results. */
async function sendAll(add, n) {
  const ps = new Array(n);
  for (let i = 0; i < n; i++) ps[i] = add(i);
  let sum = 0;
  for (const v of await Promise.all(ps)) sum += v;
  return sum;
}

async function millwright(concurrency) {
  const { App } = await import(new URL(`${args.dist}/src/index.js`, import.meta.url).href);
  const app = new App();
  const task = app.task('add', (a, b) => a + b);
  await app.worker({ concurrency }).start();
  return {
    add: async (i) => (await app.send(task.s(i, 1))).get(),
    close: () => app.close(),
  };
}

/** The floor: array FIFO + waiting consumers + one promise per job (bench-inmem.mjs). */
async function bareQueue(concurrency) {
  class MiniQueue {
    constructor() { this.buf = []; this.head = 0; this.waiters = []; }
    push(job) {
      const w = this.waiters.pop();
      if (w) w(job); else this.buf.push(job);
    }
    pop() {
      if (this.head < this.buf.length) {
        const j = this.buf[this.head++];
        if (this.head > 4096 && this.head * 2 > this.buf.length) { this.buf = this.buf.slice(this.head); this.head = 0; }
        return j;
      }
      return new Promise((r) => this.waiters.push(r));
    }
  }
  const q = new MiniQueue();
  for (let c = 0; c < concurrency; c++) {
    (async () => {
      for (;;) {
        let job = q.pop();
        if (job instanceof Promise) job = await job;
        try { job.resolve(await job.handler(job.data)); } catch (e) { job.reject(e); }
      }
    })();
  }
  const handler = async (d) => d.a + d.b;
  return {
    add: (i) => new Promise((resolve, reject) => q.push({ data: { a: i, b: 1 }, handler, resolve, reject })),
    close: async () => {},
  };
}

/**
 * The work alone: what any in-memory transport keeping millwright's promises
 * (SPEC 1.3-1.5: ids, a codec pass, results kept until they expire, waiting
 * by notification) must do per task, written as plainly as possible.
 */
async function minimalQueue(concurrency) {
  const { uuid } = await import(new URL(`${args.dist}/src/ids.js`, import.meta.url).href);
  const DAY = 24 * 60 * 60 * 1000;
  const known = new Map(); // id -> queued message or result record, kept for a day
  const expiry = []; // ids in expiry order (one TTL)
  const watchers = new Map(); // id -> listener of its final record
  const ready = [];
  let head = 0;
  let running = 0;
  let scheduled = false;
  const fn = (a, b) => a + b;
  const drain = () => {
    scheduled = false;
    while (head < ready.length && running < concurrency) { running++; run(ready[head++]); }
    if (head > 4096 && head * 2 > ready.length) { ready.splice(0, head); head = 0; }
  };
  const run = (m) => {
    const result = JSON.stringify(fn(...JSON.parse(m.args)));
    const now = Date.now();
    const record = { id: m.id, name: m.name, state: 'SUCCESS', attempts: 1, result, createdAt: m.createdAt, updatedAt: now, expiresAt: now + DAY };
    known.set(m.id, record);
    expiry.push(m.id);
    watchers.get(m.id)?.(record);
    running--;
    if (head < ready.length && !scheduled) { scheduled = true; queueMicrotask(drain); }
  };
  const send = async (name, args) => {
    if (!Array.isArray(args) || !args.every((v) => typeof v === 'number')) throw new TypeError('args');
    const m = { id: uuid(), name, args: JSON.stringify(args), queue: 'default', priority: 0, eta: 0, retries: 0, attempt: 0, createdAt: Date.now() };
    if (!known.has(m.id)) {
      known.set(m.id, m);
      ready.push(m);
      if (!scheduled) { scheduled = true; queueMicrotask(drain); }
    }
    return m.id;
  };
  const get = (id) => new Promise((resolve) => {
    const done = (record) => { watchers.delete(id); resolve(JSON.parse(record.result)); };
    const record = known.get(id);
    if (record?.state === 'SUCCESS') done(record);
    else watchers.set(id, done);
  });
  return { add: async (i) => get(await send('add', [i, 1])), close: async () => {} };
}
