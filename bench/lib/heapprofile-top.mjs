// Prints the allocation sites of a V8 .heapprofile (from `node --heap-prof`)
// holding the most sampled bytes, by self size, aggregated per function.
//
//   node bench/lib/heapprofile-top.mjs <file.heapprofile> [--top 25]
import { readFileSync } from 'node:fs';
import { parseArgs } from './child.mjs';

const file = process.argv[2];
if (file === undefined || file.startsWith('--')) {
  console.error('usage: node bench/lib/heapprofile-top.mjs <file.heapprofile> [--top 25]');
  process.exit(2);
}
const opts = parseArgs({ top: 25 }, process.argv.slice(3));
const { head } = JSON.parse(readFileSync(file, 'utf8'));
const bySite = new Map();
let all = 0;
const walk = (node, stack) => {
  const f = node.callFrame;
  const site = `${f.functionName || '(anonymous)'}${f.url === '' ? '' : ` ${f.url.replace(/^file:\/\/.*?\/(dist|bench|node_modules)\//, '$1/')}:${f.lineNumber + 1}`}`;
  if (node.selfSize > 0) {
    all += node.selfSize;
    // Also name the nearest caller in dist/ (user-visible code), for builtins like Map.set.
    const caller = stack.findLast((s) => s.includes('dist/')) ?? '';
    const key = site.includes('dist/') || caller === '' ? site : `${site}  <- ${caller}`;
    bySite.set(key, (bySite.get(key) ?? 0) + node.selfSize);
  }
  for (const c of node.children ?? []) walk(c, [...stack, site]);
};
walk(head, []);
console.log(`${file}: ${(all / 1e6).toFixed(1)} MB sampled live`);
for (const [k, b] of [...bySite].sort((a, b) => b[1] - a[1]).slice(0, opts.top)) {
  console.log(`${(b / 1e6).toFixed(1).padStart(8)} MB ${((b / all) * 100).toFixed(1).padStart(5)}%  ${k}`);
}
