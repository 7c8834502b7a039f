// Markdown table and number formatting for the benchmark scripts.

/** Prints a markdown table: `columns` are header strings, `rows` arrays of cells. */
export function printTable(columns, rows, out = console.log) {
  const cells = [columns, ...rows].map((r) => r.map((c) => String(c)));
  const widths = columns.map((_, i) => Math.max(3, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (r) => `| ${r.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  out(line(cells[0]));
  out(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of cells.slice(1)) out(line(r));
}

/** 412345 -> "412,345" */
export const int = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : String(x));
/** Fixed decimals, NaN-safe. */
export const fixed = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : String(x));
/** 0.4123 -> "41.2%" */
export const pct = (x) => (Number.isFinite(x) ? `${(x * 100).toFixed(1)}%` : String(x));
/** bytes -> "123.4 MB" (10^6) */
export const mb = (bytes) => (Number.isFinite(bytes) ? `${(bytes / 1e6).toFixed(1)} MB` : String(bytes));
