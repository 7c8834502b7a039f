// Runs one benchmark case in its own child process, so contenders never share
// a heap, a JIT state or a GC history (STYLE.md: "run each contender in its own
// child process"). A bench script calls `runCase` from its parent mode; in the
// child (started with `--case <name>`) it computes and calls `report(result)`.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const MARK = '@@bench-result ';

/** `--key value` / `--key=value` / `--flag` into an object over `defaults`; numeric strings become numbers. */
export function parseArgs(defaults = {}, argv = process.argv.slice(2)) {
  const out = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) continue;
    let k = a.slice(2);
    let v;
    const eq = k.indexOf('=');
    if (eq >= 0) { v = k.slice(eq + 1); k = k.slice(0, eq); }
    else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) v = argv[++i];
    else v = 'true';
    out[k] = v === 'true' ? true : v === 'false' ? false : (v !== '' && !Number.isNaN(Number(v)) ? Number(v) : v);
  }
  return out;
}

/** Called in the child: hands the case's result (a JSON-able object) to the parent. */
export function report(result) {
  process.stdout.write(`${MARK}${JSON.stringify(result)}\n`);
}

/**
 * Runs `script` (a file URL or path) with `--case name` plus `args` in a fresh
 * `node` with `nodeFlags`; resolves with the object the child passed to `report`.
 * The child's other output goes to our stderr. Rejects on a non-zero exit or
 * when the child reports nothing, or after `timeoutMs`.
 */
export function runCase(script, name, args = {}, { nodeFlags = [], timeoutMs = 180_000 } = {}) {
  const file = script instanceof URL || String(script).startsWith('file:') ? fileURLToPath(script) : String(script);
  const argv = [...nodeFlags, file, '--case', name];
  for (const [k, v] of Object.entries(args)) argv.push(`--${k}=${v}`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    let result;
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`case ${name} timed out after ${timeoutMs} ms`)); }, timeoutMs);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      out += chunk;
      let nl;
      while ((nl = out.indexOf('\n')) >= 0) {
        const line = out.slice(0, nl);
        out = out.slice(nl + 1);
        if (line.startsWith(MARK)) result = JSON.parse(line.slice(MARK.length));
        else if (line !== '') process.stderr.write(`  [${name}] ${line}\n`);
      }
    });
    child.on('error', (err) => { clearTimeout(timer); reject(err); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`case ${name} exited with ${code ?? signal}`));
      else if (result === undefined) reject(new Error(`case ${name} reported no result`));
      else resolve(result);
    });
  });
}

/**
 * Runs every case `reps` times, interleaved (rep 1: a b c, rep 2: b c a, ...)
 * so slow drift of a shared machine falls on every contender alike; one child
 * at a time. Returns { [case]: [result, ...] }.
 */
export async function runInterleaved(script, cases, { reps = 5, args = {}, nodeFlags = [], timeoutMs, log = (s) => process.stderr.write(`${s}\n`) } = {}) {
  const results = Object.fromEntries(cases.map((c) => [c, []]));
  for (let rep = 0; rep < reps; rep++) {
    const order = cases.map((_, i) => cases[(i + rep) % cases.length]);
    for (const name of order) {
      const r = await runCase(script, name, typeof args === 'function' ? args(name) : args, { nodeFlags, timeoutMs });
      results[name].push(r);
      log(`rep ${rep + 1}/${reps} ${name}: ${JSON.stringify(r)}`);
    }
  }
  return results;
}

/** The whole machine's busy share (0..1) between two `cpuSnapshot()`s, to flag noisy runs. */
export async function cpuSnapshot() {
  const { readFileSync } = await import('node:fs');
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
    return { idle: f[3] + f[4], total: f.reduce((a, b) => a + b, 0) };
  } catch {
    return { idle: NaN, total: NaN };
  }
}
export const busyShare = (a, b) => 1 - (b.idle - a.idle) / (b.total - a.total);
