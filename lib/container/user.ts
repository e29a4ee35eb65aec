/**
 * Resolves Docker's `--user` syntax against the container's own /etc/passwd and /etc/group, parsed here: nothing
 * from the image is ever loaded or executed on the host (no NSS).
 * @module
 */
import { InvalidOptionsError } from '../errors.js';
import { readRootfsFile } from './rootfs-path.js';

/** The identity a container process runs with. */
export interface ResolvedUser {
  uid: number;
  gid: number;
  /** Supplementary groups: the user's groups from /etc/group plus `groupAdd`. */
  additionalGids: number[];
  /** Home directory from /etc/passwd, `/` when unknown (Docker's fallback). */
  home: string;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

/** Parses /etc/passwd text, skipping malformed lines. */
export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const f = line.split(':');
    if (f.length < 7) continue;
    const uid = Number(f[2]);
    const gid = Number(f[3]);
    if (!Number.isInteger(uid) || !Number.isInteger(gid) || uid < 0 || gid < 0) continue;
    out.push({ name: f[0]!, uid, gid, home: f[5] || '/' });
  }
  return out;
}

/** Parses /etc/group text, skipping malformed lines. */
export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const f = line.split(':');
    if (f.length < 4) continue;
    const gid = Number(f[2]);
    if (!Number.isInteger(gid) || gid < 0) continue;
    out.push({ name: f[0]!, gid, members: f[3] ? f[3].split(',').map((m) => m.trim()).filter(Boolean) : [] });
  }
  return out;
}

const isNumeric = (s: string) => /^\d+$/.test(s);
const MAX_ID = 0xffffffff - 1;

function numericId(s: string, what: string): number {
  const n = Number(s);
  if (n > MAX_ID) throw new InvalidOptionsError('container options', [{ path: 'user', message: `${what} ${s} is out of range` }]);
  return n;
}

/**
 * Resolves `user` (`name`, `uid`, `name:group`, `uid:gid`, ...) and `groupAdd` as Docker does, reading
 * /etc/passwd and /etc/group from a rootfs directory or through a reader (an image's layers): a numeric uid not
 * in /etc/passwd is allowed (gid 0 unless given); a name must exist; the user's supplementary groups come from
 * /etc/group membership.
 */
export function resolveUser(
  rootfs: string | ((path: string) => string | undefined),
  user: string | undefined,
  groupAdd: readonly string[] = [],
): ResolvedUser {
  const read = typeof rootfs === 'string' ? (path: string) => readRootfsFile(rootfs, path) : rootfs;
  const passwd = parsePasswd(read('/etc/passwd') ?? '');
  const groups = parseGroup(read('/etc/group') ?? '');
  const fail = (message: string) => new InvalidOptionsError('container options', [{ path: 'user', message }]);

  const [userPart = 'root', groupPart] = (user ?? '0').split(':');
  let entry: PasswdEntry | undefined;
  let uid: number;
  if (isNumeric(userPart)) {
    uid = numericId(userPart, 'uid');
    entry = passwd.find((p) => p.uid === uid);
  } else {
    entry = passwd.find((p) => p.name === userPart);
    if (!entry) throw fail(`unable to find user ${userPart}: no matching entries in passwd file`);
    uid = entry.uid;
  }

  let gid = entry?.gid ?? 0;
  if (groupPart !== undefined) {
    if (isNumeric(groupPart)) gid = numericId(groupPart, 'gid');
    else {
      const g = groups.find((x) => x.name === groupPart);
      if (!g) throw fail(`unable to find group ${groupPart}: no matching entries in group file`);
      gid = g.gid;
    }
  }

  const additional = new Set<number>();
  // Docker adds the user's /etc/group memberships only when no explicit group was given.
  if (entry && groupPart === undefined) {
    for (const g of groups) if (g.members.includes(entry.name) && g.gid !== gid) additional.add(g.gid);
  }
  for (const extra of groupAdd) {
    if (isNumeric(extra)) additional.add(numericId(extra, 'gid'));
    else {
      const g = groups.find((x) => x.name === extra);
      if (!g) {
        throw new InvalidOptionsError('container options', [
          { path: 'groupAdd', message: `unable to find group ${extra}: no matching entries in group file` },
        ]);
      }
      additional.add(g.gid);
    }
  }
  return { uid, gid, additionalGids: [...additional].sort((a, b) => a - b), home: entry?.home ?? '/' };
}
