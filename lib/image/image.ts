/**
 * The `Image` API: pull, list, inspect, tag, remove, garbage-collect — over the OCI image layout at
 * `<root>/images` (readable by skopeo and umoci).
 * @module
 */
import { resolve } from 'node:path';
import { BerthError } from '../errors.js';
import { defaultRoot } from '../container/state.js';
import { parseImageConfig, parseManifest, type ImageConfig, type ImageManifest } from './manifest.js';
import { formatPlatform } from './platform.js';
import { pullImage, type PullOptions } from './pull.js';
import { parseReference } from './reference.js';
import { ImageStore, type GcResult } from './store.js';

/** No image with this reference in the store. */
export class ImageNotFoundError extends BerthError {
  constructor(reference: string) {
    super('ERR_IMAGE_NOT_FOUND', `no such image: ${reference} (pull it first)`);
  }
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

  private constructor(store: ImageStore, reference: string, digest: string, manifest: ImageManifest, config: ImageConfig) {
    this.#store = store;
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
    const store = storeFor(options.root);
    const r = await pullImage(reference, store, options);
    return new Image(store, r.reference, r.digest, r.manifest, r.config);
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

  /** Removes unreferenced blobs from the store. */
  static async gc(options: { root?: string } = {}): Promise<GcResult> {
    return storeFor(options.root).gc();
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
    await this.#store.setTag(parseReference(reference).toString(), d);
  }

  /** Removes this reference (`docker rmi`); the blobs go with the next `Image.gc()`. */
  async remove(): Promise<void> {
    if (!(await this.#store.removeTag(this.reference))) throw new ImageNotFoundError(this.reference);
  }

  #summary(): ImageSummary {
    const ref = parseReference(this.reference);
    return {
      reference: this.reference,
      familiar: ref.familiar,
      digest: this.digest,
      id: this.manifest.config.digest,
      size: this.manifest.config.size + this.manifest.layers.reduce((n, l) => n + l.size, 0),
      created: this.config.created,
      platform: formatPlatform({ os: this.config.os, architecture: this.config.architecture, ...(this.config.variant ? { variant: this.config.variant } : {}) }),
    };
  }
}
