/**
 * Part 3 of the demo: a TCP broker (in this process) and two worker
 * processes started through the CLI, on loopback. A chord runs across both
 * workers, then a throughput run and an idle send -> result latency.
 * Children are always stopped (SIGTERM, then SIGKILL past a deadline), even
 * when a step fails.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { App } from '../src/app.js';
import { chord, group, signature } from '../src/signature.js';
import { BrokerServer, TcpTransport } from '../transports/tcp/index.js';

const CLI = fileURLToPath(new URL('../transports/tcp/cli.js', import.meta.url));
const TASKS = fileURLToPath(new URL('./tasks.js', import.meta.url));
const THROUGHPUT_TASKS = 20_000;
const WINDOW = 1_000;
const LATENCY_SAMPLES = 300;

/** A worker child process and the promise of its exit code. */
interface Child { readonly proc: ChildProcess; readonly exited: Promise<number | null> }

function startWorker(port: number): Promise<Child> {
  const proc = spawn(process.execPath, [CLI, 'worker', '--connect', `127.0.0.1:${port}`, '--tasks', TASKS, '--concurrency', '64', '--prefetch', '64'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const child: Child = { proc, exited };
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: proc.stdout as NodeJS.ReadableStream });
    lines.on('line', (line) => { if (line.startsWith('millwright worker ready')) resolve(child); });
    void exited.then((code) => reject(Object.assign(new Error(`worker ${proc.pid ?? '?'} exited with ${String(code)} before it was ready`), { child })));
  });
}

async function stopChild(child: Child): Promise<void> {
  if (child.proc.exitCode !== null || child.proc.signalCode !== null) return;
  child.proc.kill('SIGTERM');
  const timer = setTimeout(() => child.proc.kill('SIGKILL'), 5_000);
  await child.exited;
  clearTimeout(timer);
}

const percentile = (sorted: readonly number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? Number.NaN;

async function chordAcrossWorkers(app: App): Promise<void> {
  const members = Array.from({ length: 20 }, (_, i) => signature('addPid', [i, i]));
  const handle = await app.send(chord(group(...members), signature('tally')));
  const { total, byPid, callbackPid } = (await handle.get({ timeout: 10_000 })) as { total: number; byPid: Record<string, number>; callbackPid: number };
  const split = Object.entries(byPid).map(([pid, n]) => `pid ${pid}: ${n}`).join(', ');
  console.log(`chord(20 x addPid(i, i)) -> tally = ${total} (expected 380); members ran on ${split}; callback on pid ${callbackPid}`);
}

async function throughput(app: App): Promise<void> {
  const byPid = new Map<number, number>();
  let next = 0;
  const started = performance.now();
  const lane = async (): Promise<void> => {
    while (next < THROUGHPUT_TASKS) {
      next++;
      const pid = (await (await app.send(signature('pid'))).get()) as number;
      byPid.set(pid, (byPid.get(pid) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: WINDOW }, lane));
  const seconds = (performance.now() - started) / 1000;
  const split = [...byPid].map(([pid, n]) => `pid ${pid}: ${n}`).join(', ');
  console.log(`throughput: ${THROUGHPUT_TASKS} trivial tasks, ${WINDOW} in flight, in ${(seconds * 1000).toFixed(0)} ms = ${Math.round(THROUGHPUT_TASKS / seconds)} tasks/s (${split})`);
  console.log('  (3 processes on this machine\'s cores, broker and producer sharing this one, code still warming up;');
  console.log('   `node bench/tcp.mjs` runs broker, producer and worker apart after a warm-up: 75-85k tasks/s here)');
}

async function idleLatency(app: App): Promise<void> {
  const samples: number[] = [];
  for (let i = 0; i < LATENCY_SAMPLES; i++) {
    const t = performance.now();
    await (await app.send(signature('add', [i, 1]))).get();
    samples.push(performance.now() - t);
  }
  samples.sort((a, b) => a - b);
  console.log(`idle send -> result, one at a time (${LATENCY_SAMPLES} samples): p50 ${percentile(samples, 0.5).toFixed(3)} ms, p99 ${percentile(samples, 0.99).toFixed(3)} ms`);
}

/** Part 3 of the demo: a TCP broker and two worker processes on loopback. */
export async function tcpDemo(): Promise<void> {
  console.log('\n== 3. TCP broker + two worker processes on loopback ==');
  const server = new BrokerServer({ host: '127.0.0.1', port: 0 });
  await server.listen();
  const { port } = server.address();
  console.log(`broker listening on 127.0.0.1:${port} (in this process, pid ${process.pid})`);
  const children: Child[] = [];
  // Kill whatever is left if this process dies on the way (the finally below is the normal path).
  const killAll = (): void => { for (const c of children) c.proc.kill('SIGKILL'); };
  process.once('exit', killAll);
  let app: App | undefined;
  try {
    const started = await Promise.allSettled([startWorker(port), startWorker(port)]);
    for (const s of started) {
      if (s.status === 'fulfilled') children.push(s.value);
      else if ((s.reason as { child?: Child }).child !== undefined) children.push((s.reason as { child: Child }).child);
    }
    const failed = started.find((s) => s.status === 'rejected');
    if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
    console.log(`workers ready: pids ${children.map((c) => c.proc.pid ?? '?').join(', ')} (millwright worker --concurrency 64 --prefetch 64)`);
    // sendTimeout is also the connect deadline: keep it short so a demo that cannot
    // connect fails in 2 s, not 30 s.
    app = new App({ transport: new TcpTransport({ host: '127.0.0.1', port, sendTimeout: 2_000 }) });
    await chordAcrossWorkers(app);
    await throughput(app);
    await idleLatency(app);
  } finally {
    await app?.close();
    await Promise.all(children.map(stopChild));
    console.log(`workers stopped (exit codes ${(await Promise.all(children.map((c) => c.exited))).join(', ')})`);
    await server.close();
    process.removeListener('exit', killAll);
    console.log('broker closed');
  }
}
