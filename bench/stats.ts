/**
 * Small statistics and formatting helpers for the benchmarks.
 * @module
 */

/** Latency distribution of one runtime, in milliseconds. */
export interface LatencySummary {
  n: number;
  median: number;
  p10: number;
  p90: number;
  min: number;
  max: number;
}

/**
 * The q-quantile (0..1) of ascending `sorted`, interpolating linearly between the two nearest samples, so that
 * p10/p90 of a few dozen samples do not jump from one sample to the next.
 */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  const a = sorted[lo]!;
  const b = sorted[hi]!;
  return a + (b - a) * (pos - lo);
}

export function summarize(samples: readonly number[]): LatencySummary {
  const sorted = [...samples].sort((x, y) => x - y);
  return {
    n: sorted.length,
    median: quantile(sorted, 0.5),
    p10: quantile(sorted, 0.1),
    p90: quantile(sorted, 0.9),
    min: sorted[0] ?? Number.NaN,
    max: sorted[sorted.length - 1] ?? Number.NaN,
  };
}

/** A number for a table cell: fixed decimals, or "-" when there is no value. */
export function cell(value: number | undefined, decimals = 2): string {
  return value === undefined || !Number.isFinite(value) ? '-' : value.toFixed(decimals);
}

/** Left-aligns the first column and right-aligns the others, each to its widest cell. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows
    .map((row) => row.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '))
    .join('\n');
}
