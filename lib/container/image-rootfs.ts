/**
 * Containers from images: find (or pull) the image, unpack its layers into shared snapshots, lay out the
 * container's own overlay directories, read /etc/passwd through the layers (layered-view.ts), and apply the image config the way
 * `docker run` does (Entrypoint/Cmd, Env, WorkingDir, User, StopSignal, Labels).
 * @module
 */
import { mkdirSync } from 'node:fs';
import { join, posix } from 'node:path';
import { Image, ImageNotFoundError } from '../image/image.js';
import { chainIds, SnapshotStore } from '../image/snapshot.js';
import { ImageStore } from '../image/store.js';
import type { ValidContainerOptions } from './options.js';

/** What creating a container from an image needs. */
export interface ImageRootfs {
  image: Image;
  /** Snapshot directories, top-most layer first (overlay lowerdir order). */
  lowers: string[];
}

/** Finds the image (pulling it per `o.pull`) and makes sure every layer is unpacked. */
export async function prepareImage(o: ValidContainerOptions, root: string, signal?: AbortSignal): Promise<ImageRootfs> {
  const reference = o.image!;
  const pullOptions = {
    root,
    ...(o.registry?.mirrors ? { mirrors: o.registry.mirrors } : {}),
    ...(o.registry?.insecureRegistries ? { insecureRegistries: o.registry.insecureRegistries } : {}),
    ...(o.registry?.platform ? { platform: o.registry.platform } : {}),
    ...(signal ? { signal } : {}),
  };
  let image: Image;
  if (o.pull === 'always') image = await Image.pull(reference, pullOptions);
  else {
    try {
      image = await Image.get(reference, { root });
    } catch (e) {
      if (!(e instanceof ImageNotFoundError) || o.pull === 'never') throw e;
      image = await Image.pull(reference, pullOptions);
    }
  }
  const snapshots = await new SnapshotStore(root).ensure(image, ImageStore.open(root), signal ? { signal } : {});
  return { image, lowers: [...snapshots].reverse() };
}

/**
 * Creates `<containerDir>/{rootfs,upper,work}` (or keeps them: a container started again keeps what it wrote); the
 * overlay is mounted on rootfs by the init.
 */
export function overlayDirs(containerDir: string, lowers: string[]): { rootPath: string; overlay: { lowers: string[]; upper: string; work: string } } {
  const rootPath = join(containerDir, 'rootfs');
  const upper = join(containerDir, 'upper');
  const work = join(containerDir, 'work');
  for (const d of [rootPath, upper, work]) mkdirSync(d, { mode: 0o755, recursive: true });
  return { rootPath, overlay: { lowers, upper, work } };
}

/** What a container records about its image: for `inspect()`, and so that image removal and gc can see it. */
export function imageRecord(r: ImageRootfs): { reference: string; digest: string; chainIds: string[]; exposedPorts: string[]; volumes: string[] } {
  const c = r.image.config.config ?? {};
  return {
    reference: r.image.reference,
    digest: r.image.digest,
    chainIds: chainIds(r.image.config.rootfs.diff_ids),
    exposedPorts: Object.keys(c.ExposedPorts ?? {}).sort(),
    volumes: Object.keys(c.Volumes ?? {}).sort(),
  };
}

/** Docker's merge of the image config into the run options (the user's options win). */
export function applyImageConfig(o: ValidContainerOptions, image: Image): ValidContainerOptions {
  const c = image.config.config ?? {};
  const out: ValidContainerOptions = { ...o };
  // --entrypoint replaces the image's Entrypoint and drops its Cmd; a command replaces its Cmd.
  out.entrypoint = o.entrypoint ?? c.Entrypoint ?? [];
  out.cmd = o.cmd ?? (o.entrypoint !== undefined ? [] : (c.Cmd ?? []));
  const userEnv = Array.isArray(o.env) ? o.env : Object.entries(o.env ?? {}).map(([k, v]) => `${k}=${v}`);
  const keys = new Set(userEnv.map((e) => e.slice(0, e.indexOf('='))));
  out.env = [...(c.Env ?? []).filter((e) => !keys.has(e.slice(0, e.indexOf('=')))), ...userEnv];
  // Docker reads a relative WorkingDir from "/" (the OCI runtime needs an absolute cwd).
  if (o.workdir === undefined && c.WorkingDir) out.workdir = posix.resolve('/', c.WorkingDir);
  if (o.user === undefined && c.User) out.user = c.User;
  if (o.stopSignal === undefined && c.StopSignal) out.stopSignal = c.StopSignal;
  out.labels = { ...(c.Labels ?? {}), ...(o.labels ?? {}) };
  return out;
}
