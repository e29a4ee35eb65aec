/**
 * The root filesystem of a container with a user namespace. Its files must look owned as they are on disk (root's
 * files owned by root inside the container), while whatever the container writes must belong to its mapped ids on
 * the host — never to the host's root.
 *
 * So the rootfs is an overlay built here, in the engine (host root), and handed to the init as a detached mount:
 * its lower layers (an image's snapshots, or the rootfs directory) are idmapped mounts (MOUNT_ATTR_IDMAP: on-disk
 * id N appears as the host id the container's N maps to), and its upper directory is a plain directory owned by
 * the container's root on the host, so new and copied-up files land with mapped ids. The snapshots and the
 * rootfs directory themselves are never written.
 *
 * Where the kernel or a filesystem cannot idmap (or `BERTH_USERNS_IDMAP=0`), each lower layer is copied with its
 * ids shifted into the map instead (Docker's userns-remap approach): correct, but it costs a full copy per
 * container, in the container's directory, removed with it.
 * @module
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, closeSync, existsSync, lchownSync, lstatSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { RootfsError, UnsupportedError } from '../../errors.js';
import { native } from '../../native.js';
import { idMapText, toHostId, type IdMaps } from './idmap.js';

/** The rootfs prepared for the init: attach `treeFd` on `rootPath`. Call `close()` once the init has it. */
export interface UsernsRootfs {
  /** The (empty) directory the overlay is attached on inside the container's mount namespace. */
  rootPath: string;
  /** A detached overlay mount. */
  treeFd: number;
  /** The overlay's upper directory (what the container wrote, with host ids). */
  upper: string;
  /** Whether the lower layers are idmapped (false: shifted copies). */
  idmapped: boolean;
  /** Closes `treeFd` (the init holds its own copy once spawned). */
  close(): void;
}

/** errnos of an idmapped mount or an fd-given overlay layer the kernel or filesystem does not support. */
const UNSUPPORTED = new Set([1 /* EPERM */, 22 /* EINVAL */, 38 /* ENOSYS */, 95 /* EOPNOTSUPP */]);

/** Whether idmapped mounts may be used (`BERTH_USERNS_IDMAP=0` forces shifted copies, e.g. to test them). */
function idmapAllowed(): boolean {
  return process.env.BERTH_USERNS_IDMAP !== '0';
}

function safeClose(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

/** The overlay over idmapped lower layers; undefined when the host cannot idmap them. */
function idmappedOverlay(lowers: readonly string[], upper: string, work: string, maps: IdMaps): number | undefined {
  let nsFd: number;
  try {
    nsFd = native.usernsFd(idMapText(maps.uidMap), idMapText(maps.gidMap));
  } catch (e) {
    throw new UnsupportedError(`cannot create a user namespace: ${(e as Error).message}`, { cause: e });
  }
  const fds: number[] = [];
  try {
    for (const dir of lowers) fds.push(native.idmapTree(dir, nsFd, false));
    return native.overlayTree(fds, upper, work);
  } catch (e) {
    const errno = (e as { errno?: number }).errno;
    if (errno !== undefined && UNSUPPORTED.has(errno)) return undefined;
    throw new RootfsError(`cannot build the container's idmapped rootfs: ${(e as Error).message}`);
  } finally {
    for (const fd of fds) safeClose(fd);
    safeClose(nsFd);
  }
}

/**
 * Copies `src` to `dst` (which must not exist) with every owner shifted into the maps: hard links, xattrs, device
 * nodes (overlay whiteouts) and times kept by `cp -a`, then each inode chowned once. Ids the map does not cover
 * are left as they are (they show as the overflow id inside, as through an idmapped mount). chown clears
 * set-id bits, so the mode is restored after it.
 */
export function shiftedCopy(src: string, dst: string, maps: IdMaps): void {
  execFileSync('cp', ['-a', '--no-target-directory', src, dst], { stdio: ['ignore', 'ignore', 'pipe'] });
  const seen = new Set<string>();
  const visit = (path: string) => {
    const st = lstatSync(path, { bigint: true });
    const key = `${st.dev}:${st.ino}`;
    if (!seen.has(key)) {
      seen.add(key);
      const uid = toHostId(maps.uidMap, Number(st.uid)) ?? Number(st.uid);
      const gid = toHostId(maps.gidMap, Number(st.gid)) ?? Number(st.gid);
      lchownSync(path, uid, gid);
      if (!st.isSymbolicLink() && (st.mode & 0o6000n) !== 0n) chmodSync(path, Number(st.mode & 0o7777n));
    }
    if (st.isDirectory()) for (const name of readdirSync(path)) visit(join(path, name));
  };
  visit(dst);
}

/**
 * Lays out `<containerDir>/{rootfs,upper,work}` and builds the overlay of `lowers` (top-most first: an image's
 * snapshots, or a rootfs directory) for a container with these maps. The overlay's root directory is the upper
 * one: `root: 'lower'` gives it the top layer's mode and (mapped) owner, as a bound rootfs directory shows its
 * own; `'image'` makes it root's 0755, as an image's container root is without a user namespace. A container
 * started again finds its directories (and shifted copies) there and keeps them as they are.
 */
export function prepareUsernsRootfs(containerDir: string, lowers: readonly string[], maps: IdMaps, root: 'lower' | 'image'): UsernsRootfs {
  const rootPath = join(containerDir, 'rootfs');
  const upper = join(containerDir, 'upper');
  const work = join(containerDir, 'work');
  const fresh = !existsSync(upper);
  for (const d of [rootPath, upper, work]) mkdirSync(d, { mode: 0o755, recursive: true });
  if (fresh) {
    const top = root === 'lower' ? statSync(lowers[0]!) : { uid: 0, gid: 0, mode: 0o755 };
    const rootUid = toHostId(maps.uidMap, top.uid) ?? toHostId(maps.uidMap, 0)!;
    const rootGid = toHostId(maps.gidMap, top.gid) ?? toHostId(maps.gidMap, 0)!;
    lchownSync(upper, rootUid, rootGid);
    chmodSync(upper, top.mode & 0o7777);
  }

  let treeFd = idmapAllowed() ? idmappedOverlay(lowers, upper, work, maps) : undefined;
  const idmapped = treeFd !== undefined;
  if (treeFd === undefined) {
    try {
      const copies = lowers.map((dir, i) => {
        const copy = join(containerDir, `lower-${i}`);
        if (!existsSync(copy)) shiftedCopy(dir, copy, maps);
        return copy;
      });
      treeFd = native.overlayTree(copies, upper, work);
    } catch (e) {
      throw new RootfsError(`cannot build the container's rootfs from id-shifted copies: ${(e as Error).message}`);
    }
  }
  const fd = treeFd;
  let closed = false;
  return {
    rootPath,
    treeFd: fd,
    upper,
    idmapped,
    close: () => {
      if (!closed) safeClose(fd);
      closed = true;
    },
  };
}
