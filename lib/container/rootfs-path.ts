/**
 * Reading files of a container's root filesystem from the host without ever leaving it: symlinks inside the
 * rootfs are resolved as the container would see them (an absolute link target is relative to the rootfs, `..`
 * stops at the rootfs). The image is hostile input (DESIGN decision 6).
 * @module
 */
import { closeSync, fstatSync, readFileSync } from 'node:fs';
import { native } from '../native.js';

/**
 * Reads a text file of the rootfs (container path), or returns `undefined` when it does not exist. Opened without
 * blocking and checked on the fd: a FIFO or device swapped in by a running container can neither hang the event
 * loop nor be read.
 */
export function readRootfsFile(rootfs: string, path: string, maxBytes = 4 * 1024 * 1024): string | undefined {
  let fd: number;
  try {
    // Resolved by the kernel inside the rootfs in one step (openat2 RESOLVE_IN_ROOT): no window in which a
    // running container sharing this rootfs could swap a component for a symlink out of it.
    fd = native.openInRoot(rootfs, path);
  } catch (e) {
    const errno = (e as { errno?: number }).errno;
    // ENOENT, ENOTDIR, ELOOP, ENODEV (not a regular file: never opened)
    if (errno === 2 || errno === 20 || errno === 40 || errno === 19) return undefined;
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
