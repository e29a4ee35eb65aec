/**
 * Compiled seccomp programs on disk, in the state root: a process that starts one container (the CLI) would
 * otherwise compile Docker's profile every time (tens of milliseconds with libseccomp). Keyed by everything the
 * program depends on; written atomically; each entry carries its program's digest, so a damaged file is a miss.
 * @module
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** What is stored for one filter. */
export interface CachedProgram {
  program: Buffer;
  flags: number;
  prologue: number;
  skipped: string[];
}

const FORMAT = 1;
/** Entries kept per cache directory; the oldest go first. */
const MAX_ENTRIES = 64;

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

/** The cache file for a filter's key (the key must name everything the program depends on). */
function entryPath(dir: string, key: string): string {
  return join(dir, `${sha256(`${FORMAT}\n${key}`)}.json`);
}

/** The cached program for `key`, or undefined (missing, unreadable, or damaged). */
export function readCachedProgram(dir: string, key: string): CachedProgram | undefined {
  let entry: { format?: unknown; key?: unknown; program?: unknown; sha256?: unknown; flags?: unknown; prologue?: unknown; skipped?: unknown };
  try {
    entry = JSON.parse(readFileSync(entryPath(dir, key), 'utf8'));
  } catch {
    return undefined;
  }
  if (entry.format !== FORMAT || entry.key !== key || typeof entry.program !== 'string') return undefined;
  const program = Buffer.from(entry.program, 'base64');
  if (program.length === 0 || program.length % 8 !== 0 || sha256(program) !== entry.sha256) return undefined;
  if (typeof entry.flags !== 'number' || typeof entry.prologue !== 'number' || !Array.isArray(entry.skipped)) return undefined;
  return { program, flags: entry.flags, prologue: entry.prologue, skipped: entry.skipped.map(String) };
}

/** Stores a program for `key` (best effort: a full or read-only disk only costs a recompile next time). */
export function writeCachedProgram(dir: string, key: string, value: CachedProgram): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const path = entryPath(dir, key);
    const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    const entry = {
      format: FORMAT, key, flags: value.flags, prologue: value.prologue, skipped: value.skipped,
      sha256: sha256(value.program), program: value.program.toString('base64'),
    };
    writeFileSync(tmp, JSON.stringify(entry), { mode: 0o600 });
    renameSync(tmp, path);
    prune(dir);
  } catch {
    // not cached; nothing else depends on it
  }
}

/** Keeps the newest MAX_ENTRIES entries (and removes temporary files of writers that died). */
function prune(dir: string): void {
  const entries = readdirSync(dir)
    .map((name) => {
      try {
        return { name, mtime: statSync(join(dir, name)).mtimeMs };
      } catch {
        return undefined;
      }
    })
    .filter((e): e is { name: string; mtime: number } => e !== undefined);
  const stale = entries.filter((e) => e.name.endsWith('.tmp') && Date.now() - e.mtime > 60_000);
  const kept = entries.filter((e) => e.name.endsWith('.json')).sort((a, b) => b.mtime - a.mtime);
  for (const e of [...stale, ...kept.slice(MAX_ENTRIES)]) {
    try {
      unlinkSync(join(dir, e.name));
    } catch {
      // removed by another process meanwhile
    }
  }
}
