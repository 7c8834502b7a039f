// SPEC section 3, row "1,000,000 pending delayed tasks in memory": one armed
// timer, < 400 MB RSS, due tasks fire <= 2 ms late at p99.
//
// Cases, each in its own child process (run with --expose-gc), interleaved over --reps:
//   *-pending : --pending (1M) tasks with ETAs --ahead + [0, --spread) ms from
//               their send, no worker: armed timers, RSS and heap after enqueue, enqueue rate.
//   *-due     : --due (20k) tasks with ETAs spread over [--due-ahead, +--due-spread) ms,
//               consumed as they come due: lateness = start of the task - its ETA.
// Contenders:
//   mw      : millwright App + in-memory transport, a counting Clock passed as `new App({ clock })`,
//             and for *-due a worker (concurrency --concurrency) whose task records its lateness
//   heap    : the floor: a bare binary heap (parallel arrays) + one setTimeout for the earliest
//   timeout : the naive floor: one raw setTimeout per task
//
//   node bench/delayed.mjs [--reps 3] [--pending 1000000] [--due 20000]
//   node --expose-gc --heap-prof bench/delayed.mjs --case mw-pending
import { parseArgs, report, runInterleaved, cpuSnapshot, busyShare } from './lib/child.mjs';
import { median, min, max, summary } from './lib/stats.mjs';
import { printTable, int, fixed, pct } from './lib/table.mjs';

const args = parseArgs({
  reps: 3, pending: 1_000_000, ahead: 30_000, spread: 8_000,
  due: 20_000, 'due-ahead': 1500, 'due-spread': 2_000, concurrency: 1000, case: '', dist: '../dist',
});
const PENDING = ['mw-pending', 'heap-pending', 'timeout-pending'];
const DUE = ['mw-due', 'heap-due', 'timeout-due'];

async function parent() {
  const before = await cpuSnapshot();
  const t0 = Date.now();
  const { case: _c, reps, ...pass } = args;
  const results = await runInterleaved(import.meta.url, [...PENDING, ...DUE], { reps, args: pass, nodeFlags: ['--expose-gc'] });
  const busy = busyShare(before, await cpuSnapshot());
  const pick = (name, key) => results[name].map((r) => r[key]);
  const range = (v, f) => `${f(median(v))} (${f(min(v))} – ${f(max(v))})`;

  console.log(`\n### ${int(args.pending)} pending delayed tasks (ETA +${args.ahead / 1000}..${(args.ahead + args.spread) / 1000} s, no worker; ${reps} reps, node ${process.version}); median (min – max)\n`);
  printTable(['case', 'timers armed now', 'max armed at once', 'setTimer calls', 'RSS after enqueue', 'peak RSS while enqueueing', 'heap used after GC', 'enqueue /s', 'target'],
    PENDING.map((name) => {
      const rss = median(pick(name, 'rssMB'));
      const timers = max(pick(name, 'liveTimers'));
      return [name, int(timers), int(max(pick(name, 'maxLiveTimers'))), int(median(pick(name, 'timersArmed'))),
        range(pick(name, 'rssMB'), (x) => `${int(x)} MB`), range(pick(name, 'peakRssMB'), (x) => `${int(x)} MB`), range(pick(name, 'heapMB'), (x) => `${int(x)} MB`),
        range(pick(name, 'enqueuePerSec'), int),
        name.startsWith('mw') ? `${timers === 1 ? 'yes' : 'NO'} (1 timer), ${rss < 400 ? 'yes' : 'NO'} (< 400 MB)` : 'reference'];
    }));

  console.log(`\n### ${int(args.due)} delayed tasks due over ${args['due-spread'] / 1000} s (from +${args['due-ahead']} ms), consumed as due; lateness in ms, median of reps (min – max)\n`);
  printTable(['case', 'lateness p50', 'p99', 'max', 'min', 'max armed at once', 'all ran', 'target'],
    DUE.map((name) => {
      const p99 = median(pick(name, 'p99'));
      return [name, range(pick(name, 'p50'), (x) => fixed(x, 3)), range(pick(name, 'p99'), (x) => fixed(x, 3)),
        range(pick(name, 'max'), (x) => fixed(x, 2)), fixed(min(pick(name, 'min')), 3), int(max(pick(name, 'maxLiveTimers'))),
        results[name].every((r) => r.ok) ? 'yes' : 'NO',
        name.startsWith('mw') ? `${p99 <= 2 ? 'yes' : 'NO'} (p99 <= 2 ms)` : 'reference'];
    }));
  console.log(`\nmachine busy (all processes, both cores) during the run: ${pct(busy)}; wall ${fixed((Date.now() - t0) / 1000, 1)} s`);
}

/** Epoch ms with sub-ms resolution (Date.now() floors to whole ms). */
const epoch = () => performance.timeOrigin + performance.now();

/** A Clock (src/clock.ts) over the real one that counts the timers armed through it. */
class CountingClock {
  live = new Set();
  maxLive = 0;
  armed = 0;
  now() { return Date.now(); }
  setTimer(fn, delayMs) {
    const handle = { id: ++this.armed, timeout: undefined };
    handle.timeout = setTimeout(() => { this.live.delete(handle); fn(); }, Math.max(0, delayMs));
    this.live.add(handle);
    if (this.live.size > this.maxLive) this.maxLive = this.live.size;
    return handle;
  }
  clearTimer(handle) {
    if (this.live.delete(handle)) clearTimeout(handle.timeout);
  }
  track() {}
}

async function child(name) {
  const [who, kind] = name.split('-');
  const n = kind === 'pending' ? args.pending : args.due;
  const ahead = kind === 'pending' ? args.ahead : args['due-ahead'];
  const spread = kind === 'pending' ? args.spread : args['due-spread'];
  const lateness = new Float64Array(n);
  let ran = 0;
  let allRan;
  const finished = new Promise((resolve) => { allRan = resolve; });
  const onRun = (eta) => {
    lateness[ran++] = epoch() - eta;
    if (ran === n) allRan();
  };
  const contender = await (who === 'mw' ? millwright : who === 'heap' ? bareHeap : rawTimeouts)(onRun, kind === 'due');
  let seed = 42; // a fixed LCG: every contender gets the same ETAs
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 4294967296);
  const t0 = performance.now();
  let peakRss = 0;
  for (let i = 0; i < n; i++) {
    await contender.add(Date.now() + ahead + Math.floor(rand() * spread));
    if ((i & 16383) === 0) peakRss = Math.max(peakRss, process.memoryUsage.rss());
  }
  const enqueueMs = performance.now() - t0;
  // Steady state: a full GC, 100 ms for concurrent sweeping to hand freed pages back, another GC.
  // (Read right after a single gc() the same heap shows ~50 MB more RSS.) Peak RSS while enqueueing is reported too.
  globalThis.gc?.();
  if (kind === 'pending') await new Promise((resolve) => setTimeout(resolve, 100));
  globalThis.gc?.();
  const mem = process.memoryUsage();
  const result = {
    case: name, n, enqueuePerSec: Math.round(n / (enqueueMs / 1000)), rssMB: Math.round(mem.rss / 1e6), heapMB: Math.round(mem.heapUsed / 1e6),
    peakRssMB: Math.round(Math.max(peakRss, mem.rss) / 1e6),
    ...contender.timers(),
  };
  if (kind === 'due') {
    if (enqueueMs > ahead) process.stderr.write(`  [${name}] enqueue took ${Math.round(enqueueMs)} ms > --due-ahead ${ahead} ms: early tasks fired during enqueue\n`);
    const timeout = setTimeout(() => allRan(), ahead + spread + 30_000);
    await finished;
    clearTimeout(timeout);
    const s = summary(lateness.subarray(0, ran));
    Object.assign(result, { ok: ran === n, ran, p50: s.p50, p99: s.p99, max: s.max, min: s.min }, contender.timers());
  }
  report(result);
  await contender.close();
  process.exit(0);
}

async function millwright(onRun, withWorker) {
  const { App } = await import(new URL(`${args.dist}/src/index.js`, import.meta.url).href);
  const clock = new CountingClock();
  const app = new App({ clock });
  const tick = app.task('tick', (eta) => { onRun(eta); });
  if (withWorker) await app.worker({ concurrency: args.concurrency }).start();
  return {
    add: (eta) => app.send(tick.with({ eta }, eta)),
    timers: () => ({ liveTimers: clock.live.size, maxLiveTimers: clock.maxLive, timersArmed: clock.armed }),
    close: () => app.close(),
  };
}

/** One setTimeout per task. */
async function rawTimeouts(onRun) {
  let live = 0;
  let maxLive = 0;
  const handles = [];
  return {
    add: (eta) => {
      const task = { eta, args: [eta] };
      handles.push(setTimeout(() => { live--; onRun(task.eta); }, eta - Date.now()));
      if (++live > maxLive) maxLive = live;
    },
    timers: () => ({ liveTimers: live, maxLiveTimers: maxLive, timersArmed: handles.length }),
    close: async () => { for (const h of handles) clearTimeout(h); },
  };
}

/** A binary min-heap on parallel arrays and one setTimeout armed for its root. */
async function bareHeap(onRun) {
  const keys = [];
  const items = [];
  let timer;
  let armedFor = Infinity;
  let armed = 0;
  const push = (key, item) => {
    let i = keys.length;
    keys.push(key); items.push(item);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (keys[p] <= key) break;
      keys[i] = keys[p]; items[i] = items[p]; i = p;
    }
    keys[i] = key; items[i] = item;
  };
  const pop = () => {
    const top = items[0];
    const lastKey = keys.pop();
    const lastItem = items.pop();
    const size = keys.length;
    if (size === 0) return top;
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= size) break;
      if (c + 1 < size && keys[c + 1] < keys[c]) c++;
      if (lastKey <= keys[c]) break;
      keys[i] = keys[c]; items[i] = items[c]; i = c;
    }
    keys[i] = lastKey; items[i] = lastItem;
    return top;
  };
  const arm = () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    armedFor = keys.length === 0 ? Infinity : keys[0];
    if (armedFor === Infinity) return;
    armed++;
    timer = setTimeout(run, armedFor - Date.now());
  };
  const run = () => {
    timer = undefined;
    const now = Date.now();
    while (keys.length > 0 && keys[0] <= now) onRun(pop().eta);
    arm();
  };
  return {
    add: (eta) => {
      push(eta, { eta, args: [eta] });
      if (eta < armedFor) arm();
    },
    timers: () => ({ liveTimers: timer === undefined ? 0 : 1, maxLiveTimers: 1, timersArmed: armed }),
    close: async () => { if (timer !== undefined) clearTimeout(timer); },
  };
}

// Last: the classes and constants above must be initialised before either mode runs.
if (args.case !== '') await child(args.case);
else await parent();
