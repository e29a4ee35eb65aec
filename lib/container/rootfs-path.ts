/**
 * Reading files of a container's root filesystem from the host without ever leaving it: symlinks inside the
 * rootfs are resolved as the container would see them (an absolute link target is relative to the rootfs, `..`
 * stops at the rootfs). The image is hostile input (DESIGN decision 6).
 * @module
 */
import { closeSync, constants, fstatSync, lstatSync, openSync, readFileSync, readlinkSync } from 'node:fs';
import { join, posix } from 'node:path';

const MAX_SYMLINKS = 40;

/**
 * Resolves `path` (absolute, container view) to a host path under `rootfs`, following symlinks inside the
 * rootfs only. Missing trailing components are kept as they are. Returns the host path.
 */
export function resolveInRootfs(rootfs: string, path: string): string {
  let pending = posix.normalize(path).split('/').filter((c) => c && c !== '.');
  const resolved: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const component = pending.shift()!;
    if (component === '..') {
      resolved.pop();
      continue;
    }
    const candidate = join(rootfs, ...resolved, component);
    let isLink = false;
    try {
      isLink = lstatSync(candidate).isSymbolicLink();
    } catch {
      resolved.push(component, ...pending.filter((c) => c !== '..'));
      break;
    }
    if (!isLink) {
      resolved.push(component);
      continue;
    }
    if (++links > MAX_SYMLINKS) throw Object.assign(new Error(`too many symlinks resolving ${path}`), { code: 'ELOOP' });
    const target = readlinkSync(candidate);
    const targetParts = target.split('/').filter((c) => c && c !== '.');
    if (target.startsWith('/')) resolved.length = 0;
    pending = [...targetParts, ...pending];
  }
  return join(rootfs, ...resolved);
}

/**
 * Reads a text file of the rootfs (container path), or returns `undefined` when it does not exist. Opened without
 * following a final symlink and without blocking, then checked on the fd: a FIFO or device swapped in by a
 * running container can neither hang the event loop nor be read.
 */
export function readRootfsFile(rootfs: string, path: string, maxBytes = 4 * 1024 * 1024): string | undefined {
  let fd: number;
  try {
    fd = openSync(resolveInRootfs(rootfs, path), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') return undefined;
    throw e;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return undefined;
    if (st.size > maxBytes) throw new Error(`${path} in the rootfs is larger than ${maxBytes} bytes`);
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}
