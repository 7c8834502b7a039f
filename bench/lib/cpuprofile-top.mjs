// Prints the top functions of a V8 .cpuprofile (from `node --cpu-prof`) by self
// time, and by inclusive ("total") time for functions under a path filter.
//
//   node bench/lib/cpuprofile-top.mjs <file.cpuprofile> [--top 30] [--filter /src/]
import { readFileSync } from 'node:fs';
import { parseArgs } from './child.mjs';

const file = process.argv[2];
if (file === undefined || file.startsWith('--')) {
  console.error('usage: node bench/lib/cpuprofile-top.mjs <file.cpuprofile> [--top 30] [--filter substring]');
  process.exit(2);
}
const opts = parseArgs({ top: 30, filter: '' }, process.argv.slice(3));
const profile = JSON.parse(readFileSync(file, 'utf8'));
const nodes = new Map(profile.nodes.map((n) => [n.id, n]));

// Self time per node from the samples and their time deltas (us).
const selfUs = new Map();
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i];
  selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
}
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const label = (n) => {
  const f = n.callFrame;
  const where = f.url === '' ? '' : ` ${f.url.replace(/^file:\/\/.*?\/(dist|bench|node_modules)\//, '$1/')}:${f.lineNumber + 1}`;
  return `${f.functionName || '(anonymous)'}${where}`;
};

// Aggregate by function (name + location), not by call-tree node.
const self = new Map();
const total = new Map();
let all = 0;
for (const [id, us] of selfUs) {
  all += us;
  const key = label(nodes.get(id));
  self.set(key, (self.get(key) ?? 0) + us);
  // Inclusive: every distinct function on the stack gets the sample once.
  const seen = new Set();
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const k = label(nodes.get(cur));
    if (seen.has(k)) continue;
    seen.add(k);
    total.set(k, (total.get(k) ?? 0) + us);
  }
}
const idle = [...self].filter(([k]) => /^\((idle|program|garbage collector)\)/.test(k));
const row = (k, us) => `${(us / 1000).toFixed(1).padStart(9)} ms ${((us / all) * 100).toFixed(1).padStart(5)}%  ${k}`;
console.log(`${file}: ${(all / 1000).toFixed(0)} ms sampled; ${idle.map(([k, us]) => `${k} ${((us / all) * 100).toFixed(1)}%`).join(', ')}`);
console.log(`\nTop ${opts.top} by self time:`);
for (const [k, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, opts.top)) console.log(row(k, us));
if (opts.filter !== '') {
  console.log(`\nTop ${opts.top} by total (inclusive) time, matching "${opts.filter}":`);
  for (const [k, us] of [...total].filter(([k]) => k.includes(opts.filter)).sort((a, b) => b[1] - a[1]).slice(0, opts.top)) console.log(row(k, us));
}
