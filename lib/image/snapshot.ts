/**
 * Snapshots: each layer of an image unpacked once into `<root>/snapshots/<chainID>` and shared by every container
 * (as overlayfs lower directories). A snapshot is unpacked into a temporary directory and renamed into place only
 * once its diff ID matched the image config, so a snapshot directory that exists is always complete.
 * @module
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync,
} from 'node:fs';
import { native } from '../native.js';
import { basename, join } from 'node:path';
import { BerthError } from '../errors.js';
import { applyLayer } from './layer.js';
import type { ImageConfig, ImageManifest } from './manifest.js';
import type { ImageStore } from './store.js';

/** Where each snapshot's size is recorded (a file per snapshot, named as its directory). */
const SIZES = '.sizes';

/** A layer whose content does not match the diff ID its image config declares. */
export class DiffIdMismatchError extends BerthError {
  constructor(layer: string, expected: string, actual: string) {
    super('ERR_DIFFID_MISMATCH', `layer ${layer} unpacks to ${actual}, but the image config says ${expected}; the image is corrupt`);
  }
}

/** OCI chain IDs: the first is the first diff ID; each next one is sha256("<previous chain ID> <diff ID>"). */
export function chainIds(diffIds: readonly string[]): string[] {
  const out: string[] = [];
  for (const diffId of diffIds) {
    const prev = out.at(-1);
    out.push(prev === undefined ? diffId : `sha256:${createHash('sha256').update(`${prev} ${diffId}`).digest('hex')}`);
  }
  return out;
}

/** Snapshot directories under `<root>/snapshots`. */
export class SnapshotStore {
  readonly dir: string;

  constructor(root: string) {
    this.dir = join(root, 'snapshots');
    // Root only: snapshots hold the images' setuid binaries and device nodes, and a layer can make its own root
    // directory world-writable; no host user may reach them (the overlay is mounted with root's credentials).
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    chmodSync(this.dir, 0o700);
  }

  /**
   * What a snapshot's files take (the content bytes of its layer's regular files, as Docker sizes a layer), or
   * undefined for a snapshot unpacked before berth recorded sizes.
   */
  size(chainId: string): number | undefined {
    try {
      const n = Number(readFileSync(this.#sizePath(chainId), 'utf8').trim());
      return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
    } catch {
      return undefined;
    }
  }

  #sizePath(chainId: string): string {
    return join(this.dir, SIZES, basename(this.path(chainId)));
  }

  /** The directory of a snapshot (it may not exist yet). */
  path(chainId: string): string {
    if (!/^sha256:[a-f0-9]{64}$/.test(chainId)) throw new BerthError('ERR_INVALID_DIGEST', `invalid chain ID "${chainId}"`);
    return join(this.dir, chainId.slice(7));
  }

  /**
   * Unpacks whatever layers of the image are not unpacked yet and returns the snapshot directories, bottom layer
   * first. Safe when several processes do it at once: each unpacks into its own temporary directory and the first
   * rename wins.
   */
  async ensure(
    image: { manifest: ImageManifest; config: ImageConfig },
    store: ImageStore,
    options: { signal?: AbortSignal; onLayer?: (layer: string, status: 'exists' | 'extracting' | 'done', bytes: number, total: number) => void } = {},
  ): Promise<string[]> {
    const diffIds = image.config.rootfs.diff_ids;
    const chains = chainIds(diffIds);
    const dirs: string[] = [];
    for (let i = 0; i < chains.length; i++) {
      const final = this.path(chains[i]!);
      dirs.push(final);
      const layer = image.manifest.layers[i]!;
      if (existsSync(final)) {
        options.onLayer?.(layer.digest, 'exists', layer.size, layer.size);
        continue;
      }
      options.onLayer?.(layer.digest, 'extracting', 0, layer.size);
      await this.unpack(chains[i]!, diffIds[i]!, layer.digest, store.openBlob(layer.digest, { size: layer.size }), {
        ...(options.signal ? { signal: options.signal } : {}),
        onProgress: (bytes) => options.onLayer?.(layer.digest, 'extracting', bytes, layer.size),
      });
      options.onLayer?.(layer.digest, 'done', layer.size, layer.size);
    }
    return dirs;
  }

  /**
   * Unpacks one layer stream into the snapshot `chainId`: into a temporary directory first, renamed into place only
   * when the stream's diff ID is `diffId`. If another process finished the same snapshot first, ours is dropped.
   * Used both after a download and while downloading (the pull tees the registry stream into it).
   */
  async unpack(
    chainId: string,
    diffId: string,
    layerDigest: string,
    source: AsyncIterable<Uint8Array> | NodeJS.ReadableStream,
    options: { signal?: AbortSignal; onProgress?: (bytes: number) => void } = {},
  ): Promise<void> {
    const final = this.path(chainId);
    const tmp = join(this.dir, `.tmp-${randomBytes(8).toString('hex')}`);
    mkdirSync(tmp, { mode: 0o755 });
    chmodSync(tmp, 0o755); // the umask must not decide the mode of the container's "/"
    try {
      const result = await applyLayer(source, tmp, options);
      if (result.diffId !== diffId) throw new DiffIdMismatchError(layerDigest, diffId, result.diffId);
      // Its size, recorded first: a snapshot in place always has its size.
      mkdirSync(join(this.dir, SIZES), { recursive: true, mode: 0o700 });
      writeFileSync(this.#sizePath(chainId), `${result.contentSize}\n`);
      try {
        renameSync(tmp, final);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'EEXIST' && code !== 'ENOTEMPTY') throw e;
        rmSync(tmp, { recursive: true, force: true }); // another process finished it first
      }
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      throw e;
    }
  }

  /**
   * Removes every snapshot whose chain ID is not in the set `keep` returns, and temporary directories of unpacks that died (older
   * than an hour). Returns how many snapshots were removed.
   */
  async gc(keep: () => ReadonlySet<string> | Promise<ReadonlySet<string>>): Promise<number> {
    // Exclusive against every pull and container creation using snapshots right now (they hold it shared), and
    // what to keep is decided only once holding it, so nothing made meanwhile is missed.
    const release = await this.lock(true);
    try {
      return this.#collect(await keep());
    } finally {
      release();
    }
  }

  /**
   * Takes the snapshots lock: shared while snapshots are being made or chosen for a container (until its state,
   * which names them, is written), exclusive for gc. Returns the release function.
   */
  async lock(exclusive: boolean): Promise<() => void> {
    const fd = openSync(join(this.dir, '.lock'), 'a', 0o600);
    const deadline = Date.now() + 5 * 60_000;
    while (!native.flock(fd, exclusive)) {
      if (Date.now() > deadline) {
        closeSync(fd);
        throw new BerthError('ERR_LOCK_TIMEOUT', `timed out waiting for ${this.dir}/.lock`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    return () => closeSync(fd);
  }

  #collect(keep: ReadonlySet<string>): number {
    let removed = 0;
    for (const name of readdirSync(this.dir)) {
      const path = join(this.dir, name);
      // ctime, not mtime: a layer sets its root's mtime (often to 1970); the rename into place sets ctime.
      const age = (() => {
        try {
          return Date.now() - statSync(path).ctimeMs;
        } catch {
          return 0;
        }
      })();
      if (name.startsWith('.tmp-')) {
        if (age > 60 * 60_000) rmSync(path, { recursive: true, force: true });
        continue;
      }
      if (!/^[a-f0-9]{64}$/.test(name) || keep.has(`sha256:${name}`)) continue;
      // Renamed aside first, so a container being created right now either sees the whole snapshot or none.
      const trash = join(this.dir, `.tmp-gc-${randomBytes(8).toString('hex')}`);
      try {
        renameSync(path, trash);
      } catch {
        continue;
      }
      rmSync(trash, { recursive: true, force: true });
      removed++;
    }
    // Sizes of snapshots that are gone go too.
    const sizes = join(this.dir, SIZES);
    for (const name of existsSync(sizes) ? readdirSync(sizes) : []) {
      if (/^[a-f0-9]{64}$/.test(name) && !keep.has(`sha256:${name}`)) rmSync(join(sizes, name), { force: true });
    }
    return removed;
  }
}
