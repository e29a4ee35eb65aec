/**
 * The `Image` API: pull, list, inspect, tag, remove, garbage-collect — over the OCI image layout at
 * `<root>/images` (readable by skopeo and umoci).
 * @module
 */
import { resolve } from 'node:path';
import { BerthError } from '../errors.js';
import { defaultRoot, StateRoot } from '../container/state.js';
import { chainIds, SnapshotStore } from './snapshot.js';
import { parseImageConfig, parseManifest, type ImageConfig, type ImageManifest } from './manifest.js';
import { formatPlatform } from './platform.js';
import { pullImage, type PullEvent, type PullOptions } from './pull.js';
import { parseReference } from './reference.js';
import { ImageStore, type GcResult } from './store.js';
import { recordEvent } from '../journal/events.js';

/** No image with this reference in the store. */
export class ImageNotFoundError extends BerthError {
  constructor(reference: string) {
    super('ERR_IMAGE_NOT_FOUND', `no such image: ${reference} (pull it first)`);
  }
}

/** The image is still used by containers. */
export class ImageInUseError extends BerthError {
  /** Names of the containers that use it. */
  readonly containers: string[];

  constructor(reference: string, containers: string[]) {
    super(
      'ERR_IMAGE_IN_USE',
      `unable to remove ${reference}: container ${containers.join(', ')} uses it; remove the container first or pass { force: true }`,
    );
    this.containers = containers;
  }
}

/** The images the containers of a state root were created from. */
function containerImages(root: string): { container: string; digest: string; chainIds: string[] }[] {
  const states = new StateRoot(root);
  const out: { container: string; digest: string; chainIds: string[] }[] = [];
  for (const id of states.listIds()) {
    const s = states.readState(id);
    if (s?.image) out.push({ container: s.name, digest: s.image.digest, chainIds: s.image.chainIds });
  }
  return out;
}

/** One line of `Image.list()` (what `docker images` shows). */
export interface ImageSummary {
  /** Normalized reference, e.g. `docker.io/library/busybox:latest`. */
  reference: string;
  /** Short form, e.g. `busybox:latest`. */
  familiar: string;
  /** Manifest digest. */
  digest: string;
  /** The image id: its config digest, as Docker shows it. */
  id: string;
  /** Compressed size of config and layers, bytes. */
  size: number;
  /**
   * What its unpacked layers take on disk (the content of their files, as Docker's image size counts it), or null
   * when a layer is not unpacked (or was unpacked before berth recorded sizes).
   */
  unpackedSize: number | null;
  created: string | undefined;
  platform: string;
}

/** What `Image.inspect()` returns (`docker image inspect`). */
export interface ImageInfo extends ImageSummary {
  /** Every reference in the store that points at the same manifest. */
  repoTags: string[];
  /** The runtime defaults the image sets: User, Env, Entrypoint, Cmd, WorkingDir, ExposedPorts, Volumes, ... */
  config: NonNullable<ImageConfig['config']> | Record<string, never>;
  /** Layer digests (compressed, as stored) and their uncompressed diff IDs. */
  layers: { digest: string; size: number; mediaType: string; diffId: string }[];
  history: NonNullable<ImageConfig['history']>;
  architecture: string;
  os: string;
}

function storeFor(root: string | undefined): ImageStore {
  return ImageStore.open(resolve(root ?? defaultRoot()));
}

/** A locally stored image. */
export class Image {
  /** Normalized reference it was found by. */
  readonly reference: string;
  /** Manifest digest. */
  readonly digest: string;
  readonly manifest: ImageManifest;
  readonly config: ImageConfig;
  readonly #store: ImageStore;
  readonly #root: string;

  private constructor(store: ImageStore, reference: string, digest: string, manifest: ImageManifest, config: ImageConfig) {
    this.#store = store;
    this.#root = resolve(store.path, '..');
    this.reference = reference;
    this.digest = digest;
    this.manifest = manifest;
    this.config = config;
  }

  /**
   * Pulls an image as `docker pull` does (`busybox` means `docker.io/library/busybox:latest`), for this host's
   * platform unless `platform` says otherwise. Progress arrives through `onProgress`.
   */
  static async pull(reference: string, options: PullOptions = {}): Promise<Image> {
    const root = resolve(options.root ?? defaultRoot());
    const store = storeFor(root);
    // Unpacking comes before the 'done' event, as docker pull only says "Pull complete" once a layer is extracted.
    const snapshots = options.unpack !== false ? new SnapshotStore(root) : undefined;
    // Shared snapshots lock from the first unpack until the tag names them: gc cannot take them meanwhile.
    const release = snapshots ? await snapshots.lock(false) : () => undefined;
    try {
      return await Image.#pullLocked(reference, store, root, snapshots, options);
    } finally {
      release();
    }
  }

  static async #pullLocked(reference: string, store: ImageStore, root: string, snapshots: SnapshotStore | undefined, options: PullOptions): Promise<Image> {
    const emit = options.onProgress;
    let done: PullEvent | undefined;
    const r = await pullImage(reference, store, {
      ...options,
      ...(snapshots ? { snapshots } : {}),
      onProgress: (e) => (e.type === 'done' ? (done = e) : emit?.(e)),
    });
    const image = new Image(store, r.reference, r.digest, r.manifest, r.config);
    if (snapshots) {
      // Layers whose blobs were already stored (so not downloaded now) are unpacked from the store here.
      await snapshots.ensure(image, store, {
        ...(options.signal ? { signal: options.signal } : {}),
        onLayer: (digest, status, current, total) => emit?.({ type: 'extract', digest, status, current, total }),
      });
    }
    if (done) emit?.(done);
    recordEvent(root, 'image', 'pull', image.reference, { name: image.reference });
    return image;
  }

  /**
   * The same pull as an async iterable of progress events (what a CLI draws progress bars from); it ends after
   * the `done` event, or throws what the pull threw.
   */
  static pullEvents(reference: string, options: PullOptions = {}): AsyncIterable<PullEvent> & { image: Promise<Image> } {
    const queue: PullEvent[] = [];
    let wake: (() => void) | undefined;
    let finished = false;
    let failure: unknown;
    const image = Image.pull(reference, {
      ...options,
      onProgress: (e) => {
        queue.push(e);
        wake?.();
      },
    });
    image.then(
      () => {
        finished = true;
        wake?.();
      },
      (e) => {
        failure = e;
        finished = true;
        wake?.();
      },
    );
    image.catch(() => undefined); // observed through the iterator
    const iterator = async function* (): AsyncGenerator<PullEvent> {
      for (;;) {
        while (queue.length > 0) yield queue.shift()!;
        if (finished) {
          if (failure !== undefined) throw failure;
          return;
        }
        await new Promise<void>((r) => (wake = r));
        wake = undefined;
      }
    };
    return { [Symbol.asyncIterator]: iterator, image };
  }

  /** The image stored under `reference`, or ImageNotFoundError. */
  static async get(reference: string, options: { root?: string } = {}): Promise<Image> {
    const store = storeFor(options.root);
    const ref = parseReference(reference).toString();
    const d = store.resolveTag(ref);
    if (!d) throw new ImageNotFoundError(reference);
    const parsed = parseManifest(await store.readBlob(d.digest, { size: d.size }), d.mediaType);
    if (parsed.kind !== 'manifest') throw new ImageNotFoundError(`${reference} (the stored entry is an index, not an image)`);
    const config = parseImageConfig(await store.readBlob(parsed.manifest.config.digest, { size: parsed.manifest.config.size }));
    return new Image(store, ref, d.digest, parsed.manifest, config);
  }

  /** Every tagged image in the store. */
  static async list(options: { root?: string } = {}): Promise<ImageSummary[]> {
    const store = storeFor(options.root);
    const out: ImageSummary[] = [];
    for (const { reference } of store.listTags()) {
      try {
        out.push((await Image.get(reference, options)).#summary());
      } catch {
        // an entry another tool wrote that is not a single-platform image: not listed
      }
    }
    return out.sort((a, b) => a.reference.localeCompare(b.reference));
  }

  /**
   * Removes blobs and snapshots that no tagged image and no container (of this state root) uses any more.
   * Blobs written in the last 10 minutes are kept (a pull may be on its way to tagging them).
   */
  static async gc(options: { root?: string } = {}): Promise<GcResult & { removedSnapshots: number }> {
    const root = resolve(options.root ?? defaultRoot());
    const store = storeFor(root);
    const result = await store.gc({ keepDigests: containerImages(root).map((u) => u.digest) });
    const removedSnapshots = await new SnapshotStore(root).gc(async () => {
      const keep = new Set(containerImages(root).flatMap((u) => u.chainIds));
      for (const { reference } of store.listTags()) {
        try {
          for (const c of chainIds((await Image.get(reference, { root })).config.rootfs.diff_ids)) keep.add(c);
        } catch {
          // not a single-platform image: it has no snapshots
        }
      }
      return keep;
    });
    return { ...result, removedSnapshots };
  }

  /** Details, as `docker image inspect`. */
  inspect(): ImageInfo {
    const repoTags = this.#store.listTags().filter((t) => t.descriptor.digest === this.digest).map((t) => t.reference).sort();
    return {
      ...this.#summary(),
      repoTags,
      config: this.config.config ?? {},
      layers: this.manifest.layers.map((l, i) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType, diffId: this.config.rootfs.diff_ids[i]! })),
      history: this.config.history ?? [],
      architecture: this.config.architecture,
      os: this.config.os,
    };
  }

  /** Adds another reference for this image (`docker tag`). */
  async tag(reference: string): Promise<void> {
    const d = this.#store.resolveTag(this.reference);
    if (!d) throw new ImageNotFoundError(this.reference);
    const name = parseReference(reference).toString();
    await this.#store.setTag(name, d);
    recordEvent(this.#root, 'image', 'tag', this.manifest.config.digest, { name });
  }

  /**
   * Removes this reference (`docker rmi`); the blobs and snapshots go with the next `Image.gc()`. Like Docker, the
   * last reference to an image that a container (running or not) was created from is refused unless `force`.
   */
  async remove(options: { force?: boolean } = {}): Promise<void> {
    const others = this.#store.listTags().filter((t) => t.descriptor.digest === this.digest && t.reference !== this.reference);
    if (others.length === 0 && !options.force) {
      const users = containerImages(this.#root).filter((u) => u.digest === this.digest);
      if (users.length > 0) {
        throw new ImageInUseError(this.reference, users.map((u) => u.container));
      }
    }
    if (!(await this.#store.removeTag(this.reference))) throw new ImageNotFoundError(this.reference);
    recordEvent(this.#root, 'image', 'untag', this.manifest.config.digest, { name: this.reference });
    if (others.length === 0) recordEvent(this.#root, 'image', 'delete', this.manifest.config.digest, { name: this.reference });
  }

  #unpackedSize(): number | null {
    const snapshots = new SnapshotStore(this.#root);
    let total = 0;
    for (const chain of chainIds(this.config.rootfs.diff_ids)) {
      const n = snapshots.size(chain);
      if (n === undefined) return null;
      total += n;
    }
    return total;
  }

  #summary(): ImageSummary {
    const ref = parseReference(this.reference);
    return {
      reference: this.reference,
      familiar: ref.familiar,
      digest: this.digest,
      id: this.manifest.config.digest,
      size: this.manifest.config.size + this.manifest.layers.reduce((n, l) => n + l.size, 0),
      unpackedSize: this.#unpackedSize(),
      created: this.config.created,
      platform: formatPlatform({ os: this.config.os, architecture: this.config.architecture, ...(this.config.variant ? { variant: this.config.variant } : {}) }),
    };
  }
}
