/** Command-line helpers shared by the benchmarks. */

/** An integer option (`--name N`) with a fallback, refusing anything below `min`. */
export function count(name: string, text: string | undefined, fallback: number, min: number): number {
  if (text === undefined || text === '') return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min} (got "${text}")`);
  return n;
}

/** A comma-separated `--only` list, each name one of `known` (`what` names them in the error). */
export function parseOnly<T extends string>(text: string, known: readonly T[], what: string): T[] {
  const names = text.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = names.filter((n) => !(known as readonly string[]).includes(n));
  if (unknown.length > 0) throw new Error(`--only: unknown ${what} ${unknown.join(', ')} (known: ${known.join(', ')})`);
  return names as T[];
}
