/**
 * `userns: 'auto'`: every container gets a private range of host ids that no other container of the state root
 * uses. Ranges come from a pool — the subordinate ids of a user named `berth` in /etc/subuid and /etc/subgid when
 * it has any (as Docker's `dockremap` and Podman's `containers` user), else 100000 and up, skipping every range
 * /etc/subuid and /etc/subgid give to other users.
 *
 * Several processes share a state root, so allocation happens under an exclusive lock on `<root>/userns.lock`
 * and is recorded in `<root>/containers/<id>/userns.json` before the lock is released. A range is in use for as
 * long as that directory exists: removing the container frees it, and so does the cleanup of containers whose
 * owner died (it removes their directories), with no separate bookkeeping to go stale.
 * @module
 */
import { closeSync, openSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BerthError } from '../../errors.js';
import { native } from '../../native.js';
import type { StateRoot } from '../state.js';
import { hostRanges, MAX_ID, type IdMaps, type IdMapping, type UsernsOption } from './idmap.js';

/** How many ids an `'auto'` container gets: 65536, enough for every id an image's files commonly use. */
export const AUTO_SIZE = 65536;

/** The pool used when /etc/subuid has no `berth` entry: 8192 ranges of 65536 from host id 100000. */
export const DEFAULT_POOL: IdRange = { start: 100_000, size: AUTO_SIZE * 8192 };

/** A range of host ids `[start, start + size)`. */
export interface IdRange {
  start: number;
  size: number;
}

/** The user whose subordinate ids make the pool. */
export const POOL_USER = 'berth';

/** `'auto'` found no free range. */
export class UsernsExhaustedError extends BerthError {
  constructor(kind: 'uid' | 'gid', pool: IdRange[]) {
    const where = pool.map((r) => `${r.start}..${r.start + r.size - 1}`).join(', ') || 'none';
    super(
      'ERR_USERNS_EXHAUSTED',
      `no free ${kind} range of ${AUTO_SIZE} ids for userns 'auto' (pool: ${where}); remove containers or give the ` +
        `user "${POOL_USER}" more subordinate ids in /etc/sub${kind}`,
    );
  }
}

/** Parses /etc/subuid or /etc/subgid (`name-or-id:start:count` lines) into the pool user's ranges and everyone else's. */
export function parseSubordinateIds(text: string, user: string = POOL_USER, userId?: number): { own: IdRange[]; others: IdRange[] } {
  const own: IdRange[] = [];
  const others: IdRange[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*([^:#\s][^:]*):(\d+):(\d+)\s*$/.exec(line);
    if (!m) continue;
    const start = Number(m[2]);
    const size = Number(m[3]);
    if (size < 1 || start > MAX_ID) continue;
    const range = { start, size: Math.min(size, MAX_ID + 1 - start) };
    (m[1] === user || (userId !== undefined && m[1] === String(userId)) ? own : others).push(range);
  }
  return { own, others };
}

/** The pool for one kind of id, from the text of /etc/subuid or /etc/subgid (undefined when the file is missing). */
export function poolFrom(text: string | undefined): { pool: IdRange[]; avoid: IdRange[] } {
  const { own, others } = parseSubordinateIds(text ?? '');
  return own.length ? { pool: own, avoid: [] } : { pool: [DEFAULT_POOL], avoid: others };
}

/**
 * The first `size`-aligned range of `size` ids inside the pool that overlaps none of `used` (`[start, end)`
 * pairs), or undefined.
 */
export function firstFree(pool: readonly IdRange[], used: readonly [number, number][], size = AUTO_SIZE): number | undefined {
  const sorted = [...used].sort((a, b) => a[0] - b[0]);
  for (const r of pool) {
    const end = r.start + r.size;
    let start = r.start;
    while (start + size <= end) {
      const clash = sorted.find(([s, e]) => s < start + size && e > start);
      if (!clash) return start;
      // Jump past the clash (keeping the pool's alignment) instead of walking range by range.
      start = r.start + Math.ceil((clash[1] - r.start) / size) * size;
    }
  }
  return undefined;
}

/** What a container records about its user namespace (`userns.json` in its directory). */
export interface UsernsRecord extends IdMaps {
  /** Whether the range was allocated for `'auto'`. */
  auto: boolean;
}

const RECORD = 'userns.json';

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** The user namespace records of every container of the root except `exceptId`. */
function recordsInUse(root: StateRoot, exceptId: string): UsernsRecord[] {
  const out: UsernsRecord[] = [];
  let ids: string[] = [];
  try {
    ids = readdirSync(root.containersDir).filter((d) => /^[0-9a-f]{64}$/.test(d) && d !== exceptId);
  } catch {
    return out;
  }
  for (const id of ids) {
    const text = readText(join(root.containerDir(id), RECORD));
    if (!text) continue;
    try {
      const r = JSON.parse(text) as UsernsRecord;
      if (Array.isArray(r.uidMap) && Array.isArray(r.gidMap)) out.push(r);
    } catch {
      // never half-written (renamed into place); unreadable means not ours
    }
  }
  return out;
}

/** Runs `f` holding the exclusive allocation lock of the state root. Waits (asynchronously) up to 10 s. */
async function withLock<T>(root: StateRoot, f: () => T): Promise<T> {
  const fd = openSync(join(root.path, 'userns.lock'), 'a', 0o600);
  try {
    const deadline = Date.now() + 10_000;
    while (!native.flock(fd, true)) {
      if (Date.now() > deadline) throw new BerthError('ERR_LOCK_TIMEOUT', `timed out waiting for ${root.path}/userns.lock`);
      await new Promise((r) => setTimeout(r, 2));
    }
    return f();
  } finally {
    closeSync(fd); // releases the lock
  }
}

/** Where the pools come from; the files are read on every allocation, so edits apply without a restart. */
export interface PoolSources {
  subuid?: string;
  subgid?: string;
}

/**
 * Resolves a container's `userns` option to maps and records them in its directory (which must exist). `'auto'`
 * picks the first range of {@link AUTO_SIZE} ids in the pool that no other container of the root uses (its uids
 * and gids are allocated separately, from /etc/subuid and /etc/subgid). Explicit maps are recorded as given, so
 * that `'auto'` keeps away from them.
 */
export async function reserveUserns(
  root: StateRoot,
  id: string,
  request: UsernsOption,
  sources: PoolSources = { subuid: '/etc/subuid', subgid: '/etc/subgid' },
): Promise<UsernsRecord> {
  return withLock(root, () => {
    let record: UsernsRecord;
    if (request === 'auto') {
      const others = recordsInUse(root, id);
      const pick = (kind: 'uid' | 'gid'): IdMapping[] => {
        const { pool, avoid } = poolFrom(readText((kind === 'uid' ? sources.subuid : sources.subgid) ?? ''));
        const used: [number, number][] = [
          ...others.flatMap((r) => hostRanges(kind === 'uid' ? r.uidMap : r.gidMap)),
          ...avoid.map((r): [number, number] => [r.start, r.start + r.size]),
        ];
        const start = firstFree(pool, used);
        if (start === undefined) throw new UsernsExhaustedError(kind, pool);
        return [{ containerID: 0, hostID: start, size: AUTO_SIZE }];
      };
      record = { uidMap: pick('uid'), gidMap: pick('gid'), auto: true };
    } else {
      record = { uidMap: request.uidMap.map((m) => ({ ...m })), gidMap: request.gidMap.map((m) => ({ ...m })), auto: false };
    }
    const dir = root.containerDir(id);
    const tmp = join(dir, `.${RECORD}.${process.pid}`);
    writeFileSync(tmp, JSON.stringify(record), { mode: 0o600 });
    renameSync(tmp, join(dir, RECORD));
    return record;
  });
}
