// Runs every bench/*.mjs script except this one, one after another (never two
// at once: the machine has 2 cores), passing our arguments through; each prints
// its own table. `npm run bench` builds first, then runs this.
//
//   node bench/run-all.mjs [--reps 3] [--only memory,delayed]
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { basename, dirname, join } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const self = basename(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
if (argv.includes('--help') || argv.includes('-h')) { // the scripts have no --help: passed through, it would start a full run
  console.log('usage: node bench/run-all.mjs [--reps 3] [--only memory,delayed] [other options passed to every script]');
  console.log(`scripts: ${readdirSync(here).filter((f) => f.endsWith('.mjs') && f !== self).sort().join(', ')}`);
  process.exit(0);
}
const onlyAt = argv.findIndex((a) => a === '--only' || a.startsWith('--only='));
let only = null;
if (onlyAt >= 0) {
  const a = argv[onlyAt];
  const value = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[onlyAt + 1];
  argv.splice(onlyAt, a.includes('=') ? 1 : 2);
  only = new Set(String(value).split(',').map((s) => s.replace(/\.mjs$/, '')));
}
const scripts = readdirSync(here)
  .filter((f) => f.endsWith('.mjs') && f !== self && (only === null || only.has(f.replace(/\.mjs$/, ''))))
  .sort();

const failed = [];
for (const script of scripts) {
  console.log(`\n## bench/${script}\n`);
  const t0 = Date.now();
  const code = await new Promise((resolve) => {
    const child = spawn(process.execPath, [join(here, script), ...argv], { stdio: 'inherit' });
    child.on('error', () => resolve(1));
    child.on('close', (c, signal) => resolve(c ?? signal));
  });
  console.log(`\n(bench/${script}: exit ${code}, ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  if (code !== 0) failed.push(script);
}
if (failed.length > 0) {
  console.error(`\nfailed: ${failed.join(', ')}`);
  process.exitCode = 1;
}
