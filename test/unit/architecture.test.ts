/** Standing rules of the code base: dependencies point inwards, no cycles, time and randomness injected. */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

function files(dir: string): string[] {
  return readdirSync(join(root, dir)).flatMap((name) => {
    const path = join(dir, name);
    return statSync(join(root, path)).isDirectory() ? files(path) : path.endsWith('.ts') ? [path] : [];
  });
}

function imports(file: string): string[] {
  const text = readFileSync(join(root, file), 'utf8');
  return [...text.matchAll(/^(?:import|export)[^'"]*from\s+'(\.[^']+)'/gm)].map((m) => relative(root, resolve(root, dirname(file), (m[1] as string).replace(/\.js$/, '.ts'))));
}

const sources = [...files('src'), ...files('transports')];

describe('architecture', () => {
  it('src/ imports a transport only from the composition root (src/app.ts)', () => {
    const offenders = files('src').filter((f) => f !== 'src/app.ts' && imports(f).some((i) => i.startsWith('transports/')));
    expect(offenders).toEqual([]);
  });

  it('has no import cycles', () => {
    const graph = new Map(sources.map((f) => [f, imports(f).filter((i) => sources.includes(i))]));
    const cycles: string[] = [];
    const state = new Map<string, 'visiting' | 'done'>();
    const visit = (f: string, path: string[]): void => {
      if (state.get(f) === 'done') return;
      if (state.get(f) === 'visiting') { cycles.push([...path.slice(path.indexOf(f)), f].join(' -> ')); return; }
      state.set(f, 'visiting');
      for (const next of graph.get(f) ?? []) visit(next, [...path, f]);
      state.set(f, 'done');
    };
    for (const f of sources) visit(f, []);
    expect(cycles).toEqual([]);
  });

  it('no Date.now, setTimeout or Math.random in src/ outside the clock and rng modules', () => {
    const allowed = new Set(['src/clock.ts', 'src/rng.ts']);
    const offenders = files('src').filter((f) => !allowed.has(f)).filter((f) => {
      const code = readFileSync(join(root, f), 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
      return /\bDate\.now\(|\bsetTimeout\(|\bsetInterval\(|\bMath\.random\(/.test(code);
    });
    expect(offenders).toEqual([]);
  });

  it('no `any` in src/ or transports/', () => {
    const offenders = sources.filter((f) => /(:\s*any\b|as any\b|<any>)/.test(readFileSync(join(root, f), 'utf8')));
    expect(offenders).toEqual([]);
  });
});
