/**
 * `docker pull`: resolve a reference to the manifest for this platform, download the config and the layers that
 * are missing (several at once, each verified as it streams into the store), then tag it. Nothing is tagged
 * until every blob it needs is committed, so an interrupted pull leaves no half image behind.
 * @module
 */
import { AbortError, BerthError } from '../errors.js';
import { ManifestError, parseImageConfig, parseManifest, type Descriptor, type ImageConfig, type ImageManifest } from './manifest.js';
import { formatPlatform, hostPlatform, matchPlatform, parsePlatform, type Platform } from './platform.js';
import { parseReference, type ImageReference } from './reference.js';
import { RegistryClient, RegistryError, type RegistryOptions } from './registry.js';
import { ImageStore } from './store.js';
import { DigestMismatchError, SizeMismatchError } from './errors.js';
import { chainIds, type SnapshotStore } from './snapshot.js';
import { existsSync } from 'node:fs';
import { Channel } from './channel.js';

/** Progress of a pull, per image and per blob (what a CLI draws progress bars from). */
export type PullEvent =
  | { type: 'resolving'; reference: string }
  | { type: 'resolved'; reference: string; digest: string; platform: string; layers: { digest: string; size: number }[] }
  | { type: 'blob'; digest: string; kind: 'config' | 'layer'; status: 'exists' | 'downloading' | 'retrying' | 'done'; current: number; total: number }
  /** Unpacking a layer into its snapshot; `current`/`total` count compressed bytes read. */
  | { type: 'extract'; digest: string; status: 'exists' | 'extracting' | 'done'; current: number; total: number }
  | { type: 'done'; reference: string; digest: string };

/** Options of a pull. */
export interface PullOptions extends RegistryOptions {
  /** State root (default `BERTH_ROOT` or /var/lib/berth); images live in `<root>/images`. */
  root?: string;
  /** The platform to pull from a multi-platform image, e.g. `linux/arm64`. Default: this host's. */
  platform?: string | Platform;
  /** Blobs downloaded at once (default 3, as Docker's max-concurrent-downloads). */
  concurrency?: number;
  signal?: AbortSignal;
  onProgress?: (event: PullEvent) => void;
  /** Unpack the layers into snapshots as part of the pull, as `docker pull` does (default true). */
  unpack?: boolean;
  /** Where layers are unpacked while they download (set by Image.pull when unpacking). */
  snapshots?: SnapshotStore;
}

/** What a pull produced. */
export interface PullResult {
  /** The normalized reference that was tagged. */
  reference: string;
  /** Digest of the platform manifest stored and tagged. */
  digest: string;
  /** Digest of the multi-platform index it was chosen from, when there was one. */
  indexDigest: string | undefined;
  platform: Platform;
  manifest: ImageManifest;
  config: ImageConfig;
}

/** The requested platform is not in the image's index. */
export class PlatformNotFoundError extends BerthError {
  constructor(reference: string, wanted: Platform, available: string[]) {
    super(
      'ERR_PLATFORM_NOT_FOUND',
      `no matching manifest for ${formatPlatform(wanted)} in ${reference} (available: ${available.join(', ') || 'none'}); ` +
        'pass { platform } to pull another one',
    );
  }
}

const BLOB_ATTEMPTS = 4;
/** Image configs are small JSON; a declared size beyond this is refused before anything is downloaded. */
const MAX_CONFIG_BYTES = 32 * 1024 * 1024;

/** Pulls `reference` into the image store of `options.root`. */
export async function pullImage(reference: string | ImageReference, store: ImageStore, options: PullOptions = {}): Promise<PullResult> {
  const ref = typeof reference === 'string' ? parseReference(reference) : reference;
  const wanted = options.platform === undefined ? hostPlatform() : typeof options.platform === 'string' ? parsePlatform(options.platform) : options.platform;
  const emit = options.onProgress ?? (() => undefined);
  const signal = options.signal;
  const client = new RegistryClient(ref.domain, options);
  emit({ type: 'resolving', reference: ref.toString() });

  const top = await client.getManifest(ref.path, ref.digest ?? ref.tag ?? 'latest', signal);
  let parsed = parseManifest(top.bytes, top.mediaType);
  let indexDigest: string | undefined;
  let manifestBytes = top.bytes;
  let manifestDigest = top.digest;
  let manifestType = parsed.mediaType;
  let platform = wanted;
  if (parsed.kind === 'index') {
    indexDigest = top.digest;
    const entries = parsed.index.manifests;
    const chosen = matchPlatform(entries.map((m) => m.platform), wanted);
    if (chosen < 0) {
      throw new PlatformNotFoundError(ref.toString(), wanted, entries.filter((m) => m.platform).map((m) => formatPlatform(m.platform!)));
    }
    const entry = entries[chosen]!;
    platform = { os: entry.platform!.os, architecture: entry.platform!.architecture, ...(entry.platform!.variant ? { variant: entry.platform!.variant } : {}) };
    const sub = await client.getManifest(ref.path, entry.digest, signal);
    manifestBytes = sub.bytes;
    manifestDigest = sub.digest;
    parsed = parseManifest(sub.bytes, sub.mediaType);
    manifestType = parsed.mediaType;
    if (parsed.kind !== 'manifest') throw new ManifestError(`${ref.toString()}: an index entry points to another index`);
  }
  if (parsed.kind !== 'manifest') throw new ManifestError(`${ref.toString()}: expected an image manifest`);
  const manifest = parsed.manifest;
  emit({
    type: 'resolved',
    reference: ref.toString(),
    digest: manifestDigest,
    platform: formatPlatform(platform),
    layers: manifest.layers.map((l) => ({ digest: l.digest, size: l.size })),
  });

  if (manifest.config.size > MAX_CONFIG_BYTES) {
    throw new ManifestError(`${ref.toString()}: the image config is ${manifest.config.size} bytes, more than the ${MAX_CONFIG_BYTES} allowed`);
  }
  // Foreign-layer URLs are never followed (CVE-2020-15157): every blob comes from the registry by digest.
  // The config first: its diff IDs let each layer be unpacked (and verified) while it downloads.
  await fetchBlob(client, store, ref.path, manifest.config, 'config', emit, signal);
  const config = parseImageConfig(await store.readBlob(manifest.config.digest, { size: manifest.config.size }));
  if (config.rootfs.diff_ids.length !== manifest.layers.length) {
    throw new ManifestError(
      `${ref.toString()}: the config lists ${config.rootfs.diff_ids.length} layer diff IDs but the manifest has ${manifest.layers.length} layers`,
    );
  }
  const chains = chainIds(config.rootfs.diff_ids);
  const snapshots = options.snapshots;
  await runLimited(manifest.layers.map((d, i) => ({ d, i })), options.concurrency ?? 3, signal, ({ d, i }) => {
    const chain = chains[i]!;
    const unpack = snapshots && !existsSync(snapshots.path(chain))
      ? (stream: AsyncIterable<Uint8Array>) => {
          emit({ type: 'extract', digest: d.digest, status: 'extracting', current: 0, total: d.size });
          return snapshots.unpack(chain, config.rootfs.diff_ids[i]!, d.digest, stream, {
            ...(signal ? { signal } : {}),
            onProgress: (bytes) => emit({ type: 'extract', digest: d.digest, status: 'extracting', current: bytes, total: d.size }),
          }).then(() => emit({ type: 'extract', digest: d.digest, status: 'done', current: d.size, total: d.size }));
        }
      : undefined;
    return fetchBlob(client, store, ref.path, d, 'layer', emit, signal, unpack);
  });
  // The manifest goes in last, then the tag: a store never points at an image with missing blobs.
  await store.writeBlob({ digest: manifestDigest, size: manifestBytes.length }, manifestBytes, signal ? { signal } : {});
  await store.setTag(ref.toString(), {
    mediaType: manifestType,
    digest: manifestDigest,
    size: manifestBytes.length,
    platform: { os: platform.os, architecture: platform.architecture, ...(platform.variant ? { variant: platform.variant } : {}) },
  });
  emit({ type: 'done', reference: ref.toString(), digest: manifestDigest });
  return { reference: ref.toString(), digest: manifestDigest, indexDigest, platform, manifest, config };
}

/** Downloads one blob into the store unless present, retrying dropped connections and bad bytes a few times. */
async function fetchBlob(
  client: RegistryClient,
  store: ImageStore,
  repository: string,
  d: Descriptor,
  kind: 'config' | 'layer',
  emit: (e: PullEvent) => void,
  signal: AbortSignal | undefined,
  unpack?: (stream: AsyncIterable<Uint8Array>) => Promise<void>,
): Promise<void> {
  if (store.hasBlob(d.digest)) {
    emit({ type: 'blob', digest: d.digest, kind, status: 'exists', current: d.size, total: d.size });
    return;
  }
  for (let attempt = 1; ; attempt++) {
    try {
      emit({ type: 'blob', digest: d.digest, kind, status: 'downloading', current: 0, total: d.size });
      const blob = await client.blob(repository, d.digest, signal);
      const write = (body: AsyncIterable<Uint8Array>) =>
        store.writeBlob({ digest: d.digest, size: d.size }, body, {
          ...(signal ? { signal } : {}),
          onProgress: (current) => emit({ type: 'blob', digest: d.digest, kind, status: 'downloading', current, total: d.size }),
        });
      if (unpack) await tee(blob.body, write, unpack);
      else await write(blob.body);
      emit({ type: 'blob', digest: d.digest, kind, status: 'done', current: d.size, total: d.size });
      return;
    } catch (e) {
      if (signal?.aborted) throw new AbortError();
      // A 4xx will not get better; wrong bytes or a cut connection might (a flaky proxy or mirror).
      const retriable = !(e instanceof RegistryError && e.status !== undefined && e.status < 500);
      if (!retriable || attempt >= BLOB_ATTEMPTS) {
        if (e instanceof DigestMismatchError || e instanceof SizeMismatchError) throw e;
        throw e instanceof BerthError ? e : new RegistryError(`downloading ${d.digest} failed: ${(e as Error).message}`, undefined, { cause: e });
      }
      emit({ type: 'blob', digest: d.digest, kind, status: 'retrying', current: 0, total: d.size });
      await new Promise((r) => setTimeout(r, 200 * attempt));
    }
  }
}

/**
 * Feeds one stream to two consumers at once (the blob store and the layer unpacker), at the pace of the slower.
 * If either fails, both are stopped; the first error wins.
 */
async function tee(
  source: AsyncIterable<Uint8Array>,
  a: (s: AsyncIterable<Uint8Array>) => Promise<void>,
  b: (s: AsyncIterable<Uint8Array>) => Promise<void>,
): Promise<void> {
  const left = new Channel(4 << 20);
  const right = new Channel(4 << 20);
  let stopped = false;
  const stop = (e: unknown) => {
    if (stopped) return;
    stopped = true;
    left.fail(e);
    right.fail(e);
  };
  const pump = (async () => {
    try {
      for await (const chunk of source) {
        if (stopped) break;
        await Promise.all([left.push(chunk), right.push(chunk)]);
      }
      left.end();
      right.end();
    } catch (e) {
      stop(e);
    }
  })();
  const results = await Promise.allSettled([
    a(left).catch((e) => {
      stop(e);
      throw e;
    }),
    b(right).catch((e) => {
      stop(e);
      throw e;
    }),
  ]);
  await pump;
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/** Runs `work` over `items` with at most `limit` in flight; the first failure aborts the rest. */
async function runLimited<T>(items: readonly T[], limit: number, signal: AbortSignal | undefined, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown;
  const worker = async () => {
    while (failed === undefined && next < items.length) {
      if (signal?.aborted) throw new AbortError();
      const item = items[next++]!;
      try {
        await work(item);
      } catch (e) {
        failed ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failed !== undefined) throw failed;
}
