/**
 * Reading files of a container's root filesystem from the host without ever leaving it: symlinks inside the
 * rootfs are resolved as the container would see them (an absolute link target is relative to the rootfs, `..`
 * stops at the rootfs). The image is hostile input (DESIGN decision 6).
 * @module
 */
import { lstatSync, readFileSync, readlinkSync } from 'node:fs';
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

/** Reads a text file of the rootfs (container path), or returns `undefined` when it does not exist. */
export function readRootfsFile(rootfs: string, path: string, maxBytes = 4 * 1024 * 1024): string | undefined {
  try {
    const host = resolveInRootfs(rootfs, path);
    const st = lstatSync(host);
    if (!st.isFile()) return undefined;
    if (st.size > maxBytes) throw new Error(`${path} in the rootfs is larger than ${maxBytes} bytes`);
    return readFileSync(host, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw e;
  }
}
