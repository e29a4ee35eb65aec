/**
 * Reads a file of an image as a container will see it, before any container exists: through the stack of
 * snapshot directories that overlayfs will merge, with overlayfs's rules. Used to read /etc/passwd and /etc/group
 * to resolve `User` (never through NSS, never by running anything from the image).
 *
 * The rules modelled, from the top-most layer down:
 *  - a whiteout (char device 0:0) at a path, or at any of its parents, hides that path in every lower layer;
 *  - a non-directory at a parent cuts the lower layers off below it (a file replacing a directory);
 *  - an opaque directory (`trusted.overlay.opaque=y`) hides what lower layers have inside it;
 *  - symlinks are followed in the merged view (an upper layer's `/etc` symlink leads into whichever layer holds
 *    its target), never out of the root: `..` stops at `/`, absolute targets restart at the root.
 * @module
 */
import { closeSync, fstatSync, lstatSync, readFileSync, readlinkSync, type Stats } from 'node:fs';
import { native } from '../native.js';

/** Symlinks followed in one lookup before giving up (the kernel's own limit). */
const MAX_SYMLINKS = 40;
/** Larger files are not what we are looking for (passwd, group). */
const MAX_FILE_BYTES = 4 * 1024 * 1024;

type Found = { layer: string; st: Stats };

/**
 * A reader over overlay lower directories, top-most first. The returned function gives the text of a regular file
 * at an absolute path as the merged view shows it, or undefined when the path is missing, deleted, not a regular
 * file, too large, or a symlink loop.
 */
export function layeredReader(lowers: readonly string[]): (path: string) => string | undefined {
  return (path) => {
    const found = resolveMerged(lowers, path);
    if (!found || !found.st.isFile() || found.st.size > MAX_FILE_BYTES) return undefined;
    return readInLayer(found.layer, found.rel);
  };
}

/** Finds what the merged view shows at `path` (following symlinks), with the layer that supplies it. */
function resolveMerged(lowers: readonly string[], path: string): (Found & { rel: string }) | undefined {
  let pending = split(path);
  const resolved: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const name = pending.shift()!;
    if (name === '..') {
      resolved.pop(); // ".." of "/" is "/"
      continue;
    }
    const found = lookup(lowers, [...resolved, name]);
    if (!found) return undefined;
    if (found.st.isSymbolicLink()) {
      if (++links > MAX_SYMLINKS) return undefined;
      const target = readlinkSync(`${found.layer}/${[...resolved, name].join('/')}`);
      if (target.startsWith('/')) resolved.length = 0;
      pending = [...split(target), ...pending];
      continue;
    }
    resolved.push(name);
    if (pending.length === 0) return { ...found, rel: resolved.join('/') };
    if (!found.st.isDirectory()) return undefined; // a file where a directory was expected: ENOTDIR
  }
  return undefined; // the root itself is not a file
}

/**
 * The top-most entry at `parts` (a path whose parents are directories in the merged view), applying whiteouts,
 * non-directory parents and opaque directories. Never follows a symlink: each layer is walked with lstat.
 */
function lookup(lowers: readonly string[], parts: string[]): Found | undefined {
  for (const layer of lowers) {
    let cutBelow = false; // an opaque parent in this layer hides the layers below
    let blocked = false; // this layer has a non-directory at a parent: nothing of it (or below) is visible
    let prefix = layer;
    for (let i = 0; i < parts.length - 1; i++) {
      prefix = `${prefix}/${parts[i]}`;
      const st = lstatOrUndefined(prefix);
      if (!st) break; // this layer has nothing under here; lower layers may
      if (isWhiteout(st) || !st.isDirectory()) {
        blocked = true;
        break;
      }
      if (isOpaque(prefix)) cutBelow = true;
    }
    if (blocked) return undefined;
    const st = lstatOrUndefined(`${layer}/${parts.join('/')}`);
    if (st) return isWhiteout(st) ? undefined : { layer, st };
    if (cutBelow) return undefined;
  }
  return undefined;
}

function readInLayer(layer: string, rel: string): string | undefined {
  let fd: number;
  try {
    // Opened inside the layer (openat2 RESOLVE_IN_ROOT), regular files only: no FIFO or device is ever opened.
    fd = native.openInRoot(layer, rel);
  } catch {
    return undefined;
  }
  try {
    if (fstatSync(fd).size > MAX_FILE_BYTES) return undefined;
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

function split(path: string): string[] {
  return path.split('/').filter((p) => p !== '' && p !== '.');
}

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}

/** overlayfs records a deletion as a character device 0:0. */
function isWhiteout(st: Stats): boolean {
  return st.isCharacterDevice() && st.rdev === 0;
}

function isOpaque(dir: string): boolean {
  return native.lgetxattr(dir, 'trusted.overlay.opaque')?.toString() === 'y';
}
