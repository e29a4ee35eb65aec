/**
 * The local image store: an OCI image layout at `<root>/images` (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`)
 * that skopeo (`oci:<root>/images:<reference>`) and umoci (`--layout <root>/images`) read and write too.
 *
 * Several processes may use one store at once (design decision 5), so:
 * - blobs are streamed into `<root>/images/tmp`, verified (size and digest) while they arrive, fsynced, made
 *   read-only and only then linked into `blobs/`: a blob path either does not exist or holds the whole, verified
 *   content. The first writer wins; later writers of the same blob discard their copy;
 * - `index.json` is replaced by rename, so readers never see half of it and never need a lock; writers do their
 *   read-modify-write under an exclusive `flock` on `<root>/images/index.lock`, so no update is lost;
 * - garbage collection takes the same lock and never removes a blob written (or reused) in the last ten minutes,
 *   which covers a pull in progress that has stored blobs but not yet tagged its manifest.
 *
 * Tags are `org.opencontainers.image.ref.name` annotations holding the full normalized reference
 * (`docker.io/library/busybox:latest`), which is exactly the name skopeo's `oci:` transport matches. skopeo and
 * umoci do not take berth's lock: do not let them write a store while berth processes update it.
 * @module
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  constants as fsConstants,
  createReadStream,
  fstatSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { link, lstat, mkdir, open, readdir, rename, rm, stat, unlink, utimes, type FileHandle } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { AbortError, InvalidOptionsError } from '../errors.js';
import { native, type NativeHasher } from '../native.js';
import {
  BlobNotFoundError,
  DigestMismatchError,
  InvalidDigestError,
  SizeMismatchError,
  StoreLayoutError,
  StoreLockTimeoutError,
} from './errors.js';
import { INDEX_TYPES, MANIFEST_TYPES, MEDIA_TYPES } from './media-types.js';
import { isValidDigest, parseReference } from './reference.js';

/** The annotation that names a manifest in an OCI layout's index.json; berth's tags live here. */
export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';

const LAYOUT_VERSION = '1.0.0';
const INDEX_MEDIA_TYPE = MEDIA_TYPES.ociIndex;
/** A pull stores blobs before it tags the manifest; gc leaves blobs this young alone so it never races one. */
const GC_GRACE_MS = 10 * 60_000;
/** Temp files untouched this long belong to a writer that died. */
const TEMP_MAX_AGE_MS = 60 * 60_000;
/** Manifests and configs are small; a "JSON" blob larger than this is refused rather than read into memory. */
const MAX_JSON_BYTES = 32 * 1024 * 1024;
const DEFAULT_LOCK_TIMEOUT_MS = 30_000;
const HEX_LENGTH: Record<string, number> = { sha256: 64, sha512: 128 };

/** An OCI content descriptor and its platform (the manifest module's validated shapes). */
export type { Descriptor } from './manifest.js';
import type { Descriptor } from './manifest.js';
/** The platform of a descriptor. */
export type Platform = NonNullable<Descriptor['platform']>;

/** One tag of the store: the normalized reference and the manifest (or index) descriptor it points to. */
export interface TaggedImage {
  /** The `org.opencontainers.image.ref.name` value, e.g. `docker.io/library/busybox:latest`. */
  reference: string;
  descriptor: Descriptor;
}

/** Options of {@link ImageStore.writeBlob}. */
export interface WriteBlobOptions {
  /** Aborts the write (even while the source is stalled); the temp file is removed and nothing is stored. */
  signal?: AbortSignal;
  /** Called after each chunk with the number of bytes received so far. */
  onProgress?: (bytes: number) => void;
}

/** Options of {@link ImageStore.open}. */
export interface ImageStoreOptions {
  /** How long index updates and gc wait for another process's lock before failing; default 30 000 ms. */
  lockTimeoutMs?: number;
}

/** What {@link ImageStore.gc} removed. */
export interface GcResult {
  /** Blobs deleted from `blobs/`. */
  removedBlobs: number;
  /** Bytes those blobs took. */
  freedBytes: number;
}

const digestSchema = z.string().refine(isValidDigest, 'must be a digest like sha256:<64 hex characters>');
// Loose objects: fields berth does not know (urls, artifactType, data, ...) survive a read-modify-write of
// index.json, so entries written by skopeo or umoci are kept exactly.
const descriptorSchema = z.looseObject({
  mediaType: z.string().min(1),
  digest: digestSchema,
  size: z.number().int().nonnegative(),
  annotations: z.record(z.string(), z.string()).optional(),
  platform: z.looseObject({ architecture: z.string(), os: z.string() }).optional(),
});
const indexSchema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  manifests: z.array(descriptorSchema),
});
type IndexFile = z.output<typeof indexSchema>;

/** Splits a digest into algorithm and hex after validating it, so nothing unchecked ever reaches a path. */
function splitDigest(digest: string): { algorithm: string; hex: string } {
  if (typeof digest !== 'string' || !isValidDigest(digest)) throw new InvalidDigestError(String(digest));
  const colon = digest.indexOf(':');
  return { algorithm: digest.slice(0, colon), hex: digest.slice(colon + 1) };
}

function checkSize(size: unknown, what: string): asserts size is number {
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw new InvalidOptionsError(what, [{ path: 'size', message: 'must be a non-negative integer' }]);
  }
}

function errnoCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : undefined;
}

function tempName(prefix: string): string {
  return `${prefix}-${process.pid}-${randomBytes(8).toString('hex')}`;
}

/** fsync a directory so a rename or link in it survives a crash, not just the file's data. */
async function syncDir(path: string): Promise<void> {
  const fh = await open(path, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes every byte of `chunks`, in order, with as few syscalls as the kernel allows. */
async function writeAll(fh: FileHandle, chunks: Uint8Array[]): Promise<void> {
  let rest = chunks;
  while (rest.length > 0) {
    let written = (await fh.writev(rest)).bytesWritten;
    // A short write (rare on a regular file): drop what went out and write the remainder.
    const next: Uint8Array[] = [];
    for (const c of rest) {
      if (written >= c.byteLength) written -= c.byteLength;
      else {
        next.push(written > 0 ? c.subarray(written) : c);
        written = 0;
      }
    }
    rest = next;
  }
}

/**
 * Collects a stream's chunks (tens of KiB each from a socket) into writes of about 1 MiB, with one write (and the
 * hash update of the same bytes) in flight while the next fills: one thread-pool round trip per MiB instead of per
 * chunk, and receiving never waits for the disk unless a whole MiB is queued behind a write.
 */
class CoalescingWriter {
  static readonly BYTES = 1 << 20;
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #inflight: Promise<void> | undefined;
  #failure: { error: unknown } | undefined;

  constructor(
    private readonly fh: FileHandle,
    private readonly hasher: NativeHasher,
  ) {}

  async add(chunk: Uint8Array): Promise<void> {
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.byteLength;
    if (this.#pendingBytes >= CoalescingWriter.BYTES) await this.#flush();
  }

  /** Writes what is queued and waits for every write; rethrows the first write error. */
  async finish(): Promise<void> {
    await this.#flush();
    await this.#inflight;
    if (this.#failure) throw this.#failure.error;
  }

  async #flush(): Promise<void> {
    await this.#inflight;
    if (this.#failure) throw this.#failure.error;
    if (this.#pending.length === 0) return;
    const chunks = this.#pending;
    this.#pending = [];
    this.#pendingBytes = 0;
    // Errors are kept and rethrown by the next add/finish (never an unhandled rejection meanwhile).
    this.#inflight = Promise.all([writeAll(this.fh, chunks), this.hasher.update(chunks)]).then(() => undefined, (error: unknown) => {
      this.#failure ??= { error };
    });
  }
}

/**
 * Creates `path` with `content` unless it exists, atomically: two processes opening a fresh store at once must
 * not see each other's half-written file, and the loser must not overwrite the winner's.
 */
function createFileOnce(path: string, tmpDir: string, content: string): void {
  if (statSync(path, { throwIfNoEntry: false })) return; // the usual case: no temp file, no fsync
  const tmp = join(tmpDir, tempName('init'));
  const fd = openSync(tmp, 'wx', 0o644);
  try {
    writeFileSync(fd, content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(tmp, path);
  } catch (error) {
    if (errnoCode(error) !== 'EEXIST') throw error;
  } finally {
    unlinkSync(tmp);
  }
}

/**
 * The image store of one berth root. Cheap to open; holds no fds or caches between calls, so any number of
 * instances in any number of processes can share a root.
 */
export class ImageStore {
  /** `<root>/images`, the OCI layout directory. */
  readonly path: string;
  readonly #tmpDir: string;
  readonly #indexPath: string;
  readonly #lockPath: string;
  readonly #lockTimeoutMs: number;

  private constructor(path: string, options: ImageStoreOptions) {
    this.path = path;
    this.#tmpDir = join(path, 'tmp');
    this.#indexPath = join(path, 'index.json');
    this.#lockPath = join(path, 'index.lock');
    this.#lockTimeoutMs = options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
  }

  /**
   * Opens the store at `<root>/images`, creating the OCI layout if it is missing and validating it if present
   * (`oci-layout` version, `index.json` shape).
   * @throws {@link StoreLayoutError} when an existing layout is malformed.
   */
  static open(root: string, options: ImageStoreOptions = {}): ImageStore {
    const store = new ImageStore(join(resolve(root), 'images'), options);
    // Private images' layers and configs (their Env may hold secrets) are for root only.
    mkdirSync(store.path, { recursive: true, mode: 0o700 });
    chmodSync(store.path, 0o700);
    mkdirSync(join(store.path, 'blobs', 'sha256'), { recursive: true });
    mkdirSync(store.#tmpDir, { recursive: true });
    const layoutPath = join(store.path, 'oci-layout');
    createFileOnce(layoutPath, store.#tmpDir, JSON.stringify({ imageLayoutVersion: LAYOUT_VERSION }));
    createFileOnce(store.#indexPath, store.#tmpDir, JSON.stringify(emptyIndex()));
    let layout: unknown;
    try {
      layout = JSON.parse(readFileSync(layoutPath, 'utf8'));
    } catch (error) {
      throw new StoreLayoutError(`${layoutPath} is not valid JSON`, { cause: error });
    }
    const version = (layout as { imageLayoutVersion?: unknown } | null)?.imageLayoutVersion;
    // The image spec has only ever defined 1.0.0; any 1.x is read the same way, anything else is not ours to guess.
    if (typeof version !== 'string' || !/^1\.\d+\.\d+$/.test(version)) {
      throw new StoreLayoutError(`${layoutPath}: unsupported imageLayoutVersion ${JSON.stringify(version)}`);
    }
    store.#readIndex();
    return store;
  }

  /**
   * The path of a blob, whether or not it exists.
   * @throws {@link InvalidDigestError} for a malformed digest, before any path is built (CVE-2024-3727).
   */
  blobPath(digest: string): string {
    const { algorithm, hex } = splitDigest(digest);
    return join(this.path, 'blobs', algorithm, hex);
  }

  /** Whether the store holds a blob with this digest. @throws {@link InvalidDigestError} */
  hasBlob(digest: string): boolean {
    return statSync(this.blobPath(digest), { throwIfNoEntry: false })?.isFile() ?? false;
  }

  /**
   * Streams a blob into the store, verifying it on the way: the bytes go to a temp file in `<root>/images/tmp`
   * while their digest and count are computed; reading stops as soon as more bytes than `expected.size` arrive.
   * Only a complete, verified blob is fsynced, made read-only (0444) and linked into place; on any failure the
   * temp file is removed and nothing is stored. When the blob is already present (a previous pull, or another
   * process that won the race) the data is not consumed (or the late copy is discarded) and the blob's mtime is
   * refreshed so gc keeps it for a while.
   * @throws {@link DigestMismatchError}, {@link SizeMismatchError}, {@link InvalidDigestError},
   *   {@link AbortError}.
   */
  async writeBlob(
    expected: { digest: string; size: number },
    data: AsyncIterable<Uint8Array> | Uint8Array,
    options: WriteBlobOptions = {},
  ): Promise<void> {
    const { algorithm, hex } = splitDigest(expected.digest);
    checkSize(expected.size, 'blob descriptor');
    const { signal, onProgress } = options;
    if (signal?.aborted) throw new AbortError();
    const final = join(this.path, 'blobs', algorithm, hex);
    if (await this.#reuse(final, expected.size)) return;

    await mkdir(dirname(final), { recursive: true }); // blobs/sha512 is not created up front
    const tmp = join(this.#tmpDir, tempName(`blob-${hex.slice(0, 12)}`));
    // O_EXCL: the random name is never shared, and a pre-planted file or symlink there is refused, not followed.
    const fh = await open(tmp, 'wx', 0o600);
    let closed = false;
    try {
      // Hashed on the thread pool alongside the writes: a 100 MB layer keeps the event loop free for the unpacker.
      const hasher = native.hasher(algorithm as 'sha256' | 'sha512');
      const writer = new CoalescingWriter(fh, hasher);
      let received = 0;
      for await (const chunk of abortable(data, signal)) {
        if (received + chunk.byteLength > expected.size) {
          // Stop at once: a hostile or broken source must not be able to fill the disk.
          throw new SizeMismatchError(expected.digest, expected.size, received + chunk.byteLength, { overrun: true });
        }
        await writer.add(chunk);
        received += chunk.byteLength;
        onProgress?.(received);
      }
      await writer.finish();
      if (received !== expected.size) throw new SizeMismatchError(expected.digest, expected.size, received);
      const actual = `${algorithm}:${hasher.digest()}`;
      if (actual !== expected.digest) throw new DigestMismatchError(expected.digest, actual);
      // Read-only before it becomes visible, and durable before the link: a crash or a concurrent reader can
      // never see a blob path with partial content.
      await fh.chmod(0o444);
      await fh.sync();
      closed = true;
      await fh.close();
      await this.#commit(tmp, final, expected.size);
    } finally {
      if (!closed) await fh.close().catch(() => undefined);
      await unlink(tmp).catch(() => undefined); // after a commit only the temp name goes; the inode lives on
    }
  }

  /** Existing blob of the right size: nothing to write. Refreshing mtime protects it from a concurrent gc. */
  async #reuse(final: string, size: number): Promise<boolean> {
    const st = await stat(final).catch(() => undefined);
    if (!st?.isFile() || st.size !== size) return false;
    const now = new Date();
    await utimes(final, now, now).catch(() => undefined);
    return true;
  }

  /**
   * Publishes a verified temp file. `link` (unlike `rename`) fails when the target exists, so the first writer's
   * blob stays in place and every blob is committed once; a present blob of the wrong size (damaged by something
   * outside berth) is atomically replaced instead.
   */
  async #commit(tmp: string, final: string, size: number): Promise<void> {
    try {
      await link(tmp, final);
    } catch (error) {
      const code = errnoCode(error);
      if (code === 'EEXIST') {
        if (await this.#reuse(final, size)) return;
        await rename(tmp, final);
      } else if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP') {
        // Filesystems without hard links: rename is still atomic, it just lets the last writer win.
        await rename(tmp, final);
      } else {
        throw error;
      }
    }
    await syncDir(dirname(final));
  }

  /**
   * Opens a blob for reading. Committed blobs are trusted (they were verified when written); when `size` is
   * given (from the descriptor that refers to the blob) a blob whose size on disk differs is refused.
   * @throws {@link BlobNotFoundError}, {@link SizeMismatchError}, {@link InvalidDigestError}
   */
  openBlob(digest: string, options: { size?: number } = {}): Readable {
    const fd = this.#openBlobFd(digest, options.size);
    return createReadStream('', { fd, autoClose: true });
  }

  /**
   * Reads a whole blob into memory (meant for manifests and configs; stream layers with {@link openBlob}).
   * @throws {@link BlobNotFoundError}, {@link SizeMismatchError}, {@link InvalidDigestError}
   */
  async readBlob(digest: string, options: { size?: number } = {}): Promise<Buffer> {
    return readAll(this.#openBlobFd(digest, options.size));
  }

  /**
   * Reads and parses a JSON blob (manifest, index, config). Unlike {@link readBlob} the digest is checked again:
   * it is cheap for small blobs, and JSON steers everything else (which layers, which config), including JSON
   * that skopeo or umoci put into the store. The result is not schema-validated: validate it before use.
   * @throws {@link DigestMismatchError}, {@link StoreLayoutError} (too large or not JSON), {@link BlobNotFoundError}
   */
  async readJson<T = unknown>(digest: string, options: { size?: number } = {}): Promise<T> {
    const { algorithm } = splitDigest(digest);
    const data = await readAll(this.#openBlobFd(digest, options.size, MAX_JSON_BYTES));
    const actual = `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
    if (actual !== digest) throw new DigestMismatchError(digest, actual);
    try {
      return JSON.parse(data.toString('utf8')) as T;
    } catch (error) {
      throw new StoreLayoutError(`blob ${digest} is not valid JSON`, { cause: error });
    }
  }

  /**
   * Opens a blob read-only. O_NONBLOCK so that a FIFO planted in blobs/ cannot hang the process on open; the
   * fstat then refuses anything that is not a regular file.
   */
  #openBlobFd(digest: string, size: number | undefined, maxSize?: number): number {
    // (libuv opens every fd with O_CLOEXEC, so a container spawned meanwhile cannot inherit it.)
    const path = this.blobPath(digest);
    if (size !== undefined) checkSize(size, 'blob descriptor');
    let fd: number;
    try {
      fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') throw new BlobNotFoundError(digest);
      throw error;
    }
    try {
      const st = fstatSync(fd);
      if (!st.isFile()) throw new StoreLayoutError(`${path} is not a regular file`);
      if (size !== undefined && st.size !== size) {
        throw new SizeMismatchError(digest, size, st.size, { stored: true });
      }
      if (maxSize !== undefined && st.size > maxSize) {
        throw new StoreLayoutError(`blob ${digest} is ${st.size} bytes, more than the ${maxSize} allowed for JSON`);
      }
      return fd;
    } catch (error) {
      closeSync(fd);
      throw error;
    }
  }

  /**
   * Points `reference` (normalized: `busybox` → `docker.io/library/busybox:latest`) at a manifest or index that
   * is already in the store, replacing any entry with that name. Other entries, and fields berth does not know,
   * are kept as they were.
   * @throws {@link BlobNotFoundError} when the descriptor's blob is missing (no dangling tags),
   *   {@link SizeMismatchError}, {@link StoreLockTimeoutError}, `InvalidReferenceError`.
   */
  async setTag(reference: string, descriptor: Descriptor): Promise<void> {
    const name = parseReference(reference).toString();
    splitDigest(descriptor.digest);
    checkSize(descriptor.size, 'descriptor');
    // Validated like index.json is on read: one malformed entry written here would make the whole index unreadable.
    const parsed = descriptorSchema.safeParse({
      ...descriptor,
      annotations: { ...descriptor.annotations, [REF_NAME_ANNOTATION]: name },
    });
    if (!parsed.success) {
      throw new InvalidOptionsError(
        'descriptor',
        parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
      );
    }
    const entry = parsed.data;
    await this.#withLock(async () => {
      // Checked under the lock: gc holds it too, so the blob cannot vanish between this check and the write.
      const st = await stat(this.blobPath(entry.digest)).catch(() => undefined);
      if (!st?.isFile()) throw new BlobNotFoundError(entry.digest);
      if (st.size !== entry.size) throw new SizeMismatchError(entry.digest, entry.size, st.size, { stored: true });
      const index = this.#readIndex();
      let replaced = false;
      const manifests: IndexFile['manifests'] = [];
      for (const m of index.manifests) {
        if (m.annotations?.[REF_NAME_ANNOTATION] !== name) manifests.push(m);
        else if (!replaced) {
          manifests.push(entry); // in place, so the order of index.json stays stable
          replaced = true;
        } // further entries with the same name (written by hand) are dropped: a name resolves to one image
      }
      if (!replaced) manifests.push(entry);
      await this.#writeIndex({ ...index, manifests });
    });
  }

  /**
   * Removes a tag (the same entry {@link resolveTag} would return). Blobs stay until {@link gc}.
   * @returns whether a tag was removed.
   */
  async removeTag(reference: string): Promise<boolean> {
    return this.#withLock(async () => {
      const index = this.#readIndex();
      const name = findName(index, reference);
      if (name === undefined) return false;
      const manifests = index.manifests.filter((m) => m.annotations?.[REF_NAME_ANNOTATION] !== name);
      await this.#writeIndex({ ...index, manifests });
      return true;
    });
  }

  /**
   * The descriptor a reference is tagged with, or undefined. The reference is normalized first; a name that is
   * not a Docker reference (`t`, as `umoci new --image dir:t` writes) is matched exactly as a fallback.
   * Lock-free: index.json is only ever replaced whole.
   */
  resolveTag(reference: string): Descriptor | undefined {
    const index = this.#readIndex();
    const name = findName(index, reference);
    if (name === undefined) return undefined;
    return index.manifests.find((m) => m.annotations?.[REF_NAME_ANNOTATION] === name) as Descriptor | undefined;
  }

  /** Every named entry of index.json, in index order. Entries without a name (untagged) are not listed. */
  listTags(): TaggedImage[] {
    const out: TaggedImage[] = [];
    for (const m of this.#readIndex().manifests) {
      const reference = m.annotations?.[REF_NAME_ANNOTATION];
      if (reference !== undefined) out.push({ reference, descriptor: m as Descriptor });
    }
    return out;
  }

  /**
   * Deletes blobs nothing refers to. Marks from every entry of index.json (tagged or not) and from
   * `keepDigests`: an index or manifest list marks its manifests, a manifest its config and layers (OCI and
   * Docker schema 2). Blobs modified in the last ten minutes are never removed, so a pull that has stored blobs
   * but not tagged them yet is safe; temp files older than an hour (from writers that died) are removed too.
   * Runs under the index lock, so it never races a {@link setTag}.
   * @throws {@link StoreLayoutError} when a referenced manifest cannot be parsed (nothing is removed then).
   */
  async gc(options: { keepDigests?: Iterable<string> } = {}): Promise<GcResult> {
    const roots: { digest: string; mediaType: string | undefined }[] = [];
    for (const digest of options.keepDigests ?? []) {
      splitDigest(digest);
      roots.push({ digest, mediaType: undefined });
    }
    return this.#withLock(async () => {
      for (const m of this.#readIndex().manifests) roots.push({ digest: m.digest, mediaType: m.mediaType });
      const live = await this.#mark(roots);
      const result = await this.#sweepBlobs(live);
      await this.#sweepTemp();
      return result;
    });
  }

  async #mark(roots: { digest: string; mediaType: string | undefined }[]): Promise<Set<string>> {
    const live = new Set<string>();
    const queue = [...roots];
    for (let item = queue.pop(); item !== undefined; item = queue.pop()) {
      if (live.has(item.digest)) continue;
      live.add(item.digest);
      if (!this.hasBlob(item.digest)) continue; // e.g. other platforms of an index that were never pulled
      let mediaType = item.mediaType;
      if (mediaType === undefined) {
        // A keepDigests root of unknown kind: follow it if it is a manifest (it says so in its own JSON).
        if (statSync(this.blobPath(item.digest)).size > MAX_JSON_BYTES) continue;
        const json = await this.readJson<unknown>(item.digest).catch(() => undefined);
        mediaType = sniffMediaType(json);
      }
      if (!INDEX_TYPES.has(mediaType ?? '') && !MANIFEST_TYPES.has(mediaType ?? '')) continue;
      const json = await this.readJson<Record<string, unknown>>(item.digest).catch((error: unknown) => {
        // Deleting on a guess could destroy an image; stop and say which manifest is broken.
        throw new StoreLayoutError(`cannot read manifest ${item.digest} while collecting garbage`, { cause: error });
      });
      const children = INDEX_TYPES.has(mediaType!) ? asArray(json?.manifests) : [json?.config, ...asArray(json?.layers)];
      for (const child of children) {
        const c = child as { digest?: unknown; mediaType?: unknown } | null | undefined;
        // A digest that is not valid cannot name a file, so there is nothing to keep for it.
        if (typeof c?.digest !== 'string' || !isValidDigest(c.digest)) continue;
        queue.push({ digest: c.digest, mediaType: typeof c.mediaType === 'string' ? c.mediaType : undefined });
      }
    }
    return live;
  }

  async #sweepBlobs(live: Set<string>): Promise<GcResult> {
    let removedBlobs = 0;
    let freedBytes = 0;
    const now = Date.now();
    const blobs = join(this.path, 'blobs');
    for (const algorithm of await readdir(blobs)) {
      const length = HEX_LENGTH[algorithm];
      if (length === undefined) continue; // not an algorithm berth knows: leave it alone
      const hexRe = new RegExp(`^[a-f0-9]{${length}}$`);
      for (const name of await readdir(join(blobs, algorithm))) {
        // Only files named like a blob are ours to judge; anything else (another tool's temp file) is left.
        if (!hexRe.test(name) || live.has(`${algorithm}:${name}`)) continue;
        const path = join(blobs, algorithm, name);
        const st = await lstat(path).catch(() => undefined);
        if (!st?.isFile() || now - st.mtimeMs < GC_GRACE_MS) continue;
        try {
          await unlink(path);
        } catch (error) {
          if (errnoCode(error) === 'ENOENT') continue;
          throw error;
        }
        removedBlobs++;
        freedBytes += st.size;
      }
    }
    return { removedBlobs, freedBytes };
  }

  async #sweepTemp(): Promise<void> {
    const now = Date.now();
    for (const name of await readdir(this.#tmpDir).catch(() => [] as string[])) {
      const path = join(this.#tmpDir, name);
      const st = await lstat(path).catch(() => undefined);
      // A live writer's temp file has a fresh mtime (every chunk written updates it).
      if (st && now - st.mtimeMs > TEMP_MAX_AGE_MS) await rm(path, { recursive: true, force: true });
    }
  }

  /** Reads and validates index.json; a missing file (removed by hand) reads as an empty index. */
  #readIndex(): IndexFile {
    let text: string;
    try {
      text = readFileSync(this.#indexPath, 'utf8');
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') return emptyIndex();
      throw error;
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      throw new StoreLayoutError(`${this.#indexPath} is not valid JSON`, { cause: error });
    }
    const parsed = indexSchema.safeParse(json);
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
      throw new StoreLayoutError(`${this.#indexPath} is not a valid OCI image index: ${issues}`);
    }
    return parsed.data;
  }

  /** Replaces index.json atomically (temp file, fsync, rename, fsync dir): readers see the old or the new one. */
  async #writeIndex(index: IndexFile): Promise<void> {
    const content = JSON.stringify({ ...index, schemaVersion: 2, mediaType: INDEX_MEDIA_TYPE });
    const tmp = join(this.#tmpDir, tempName('index'));
    const fh = await open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(content);
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await rename(tmp, this.#indexPath);
    } catch (error) {
      await unlink(tmp).catch(() => undefined);
      throw error;
    }
    await syncDir(this.path);
  }

  /**
   * Runs `fn` holding an exclusive flock on index.lock. flock locks belong to the open file description, so
   * this also serializes callers within one process (each opens its own). The addon's flock never blocks (a
   * blocking call would stall the event loop), so this polls with a growing, jittered delay up to a deadline.
   * The lock file is never deleted: removing it would let two processes lock two different inodes.
   */
  async #withLock<T>(fn: () => Promise<T>): Promise<T> {
    const fh = await open(this.#lockPath, fsConstants.O_RDWR | fsConstants.O_CREAT, 0o644);
    try {
      const started = Date.now();
      let delay = 1;
      while (!native.flock(fh.fd, true)) {
        const waited = Date.now() - started;
        if (waited >= this.#lockTimeoutMs) {
          const holder = (await fh.readFile('utf8').catch(() => '')).trim();
          throw new StoreLockTimeoutError(this.#lockPath, waited, /^\d+$/.test(holder) ? holder : undefined);
        }
        await sleep(Math.min(delay * (0.5 + Math.random()), this.#lockTimeoutMs - waited));
        delay = Math.min(delay * 2, 50);
      }
      // Who holds it, for the timeout message of whoever waits next.
      await fh.truncate(0);
      await fh.write(`${process.pid}\n`, 0);
      return await fn();
    } finally {
      await fh.close(); // releases the lock
    }
  }
}

function emptyIndex(): IndexFile {
  return { schemaVersion: 2, mediaType: INDEX_MEDIA_TYPE, manifests: [] };
}

/** The ref name a lookup refers to: the normalized reference if tagged, else the string itself if tagged. */
function findName(index: IndexFile, reference: string): string | undefined {
  const names = new Set(index.manifests.map((m) => m.annotations?.[REF_NAME_ANNOTATION]));
  let normalized: string | undefined;
  try {
    normalized = parseReference(reference).toString();
  } catch {
    // not a Docker reference; only an exact match can apply
  }
  if (normalized !== undefined && names.has(normalized)) return normalized;
  return names.has(reference) ? reference : undefined;
}

/** Reads an open blob fd to the end without blocking the event loop, then closes it. */
async function readAll(fd: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of createReadStream('', { fd, autoClose: true })) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

/** The media type a manifest or index declares in its own JSON, or guessed from its shape (older Docker lists). */
function sniffMediaType(json: unknown): string | undefined {
  if (typeof json !== 'object' || json === null) return undefined;
  const { mediaType, manifests, layers } = json as Record<string, unknown>;
  if (typeof mediaType === 'string' && (INDEX_TYPES.has(mediaType) || MANIFEST_TYPES.has(mediaType))) return mediaType;
  if (Array.isArray(manifests)) return INDEX_MEDIA_TYPE;
  if (Array.isArray(layers)) return 'application/vnd.oci.image.manifest.v1+json';
  return undefined;
}

/**
 * Iterates a blob source, failing with an AbortError as soon as `signal` fires, even while the source is stalled
 * waiting for the network; the source is then closed (its `return()`), which releases a socket or file.
 */
async function* abortable(
  data: AsyncIterable<Uint8Array> | Uint8Array,
  signal: AbortSignal | undefined,
): AsyncGenerator<Uint8Array> {
  if (data instanceof Uint8Array) {
    if (signal?.aborted) throw new AbortError();
    yield data;
    return;
  }
  const iterator = data[Symbol.asyncIterator]();
  let finished = false;
  let onAbort: (() => void) | undefined;
  const aborted = signal
    ? new Promise<never>((_, reject) => {
        onAbort = () => reject(new AbortError());
        if (signal.aborted) onAbort();
        else signal.addEventListener('abort', onAbort, { once: true });
      })
    : undefined;
  aborted?.catch(() => undefined); // observed through the race below; never an unhandled rejection
  try {
    for (;;) {
      const next = iterator.next();
      if (aborted) next.catch(() => undefined); // the losing side of the race may reject later
      const result = aborted ? await Promise.race([next, aborted]) : await next;
      if (result.done) {
        finished = true;
        return;
      }
      if (!(result.value instanceof Uint8Array)) {
        throw new InvalidOptionsError('blob data', [{ path: '', message: 'chunks must be Uint8Array (Buffer)' }]);
      }
      yield result.value;
    }
  } finally {
    if (onAbort) signal?.removeEventListener('abort', onAbort);
    // Not awaited: a source stalled in next() would make return() wait for it too.
    if (!finished) Promise.resolve(iterator.return?.()).catch(() => undefined);
  }
}
