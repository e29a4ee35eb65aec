// The image store: an OCI layout written atomically and verified, shared by several processes, readable by
// skopeo and umoci (and able to read what they write).
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BlobNotFoundError,
  DigestMismatchError,
  InvalidDigestError,
  SizeMismatchError,
  StoreLayoutError,
  StoreLockTimeoutError,
} from '../lib/image/errors.js';
import { ImageStore, REF_NAME_ANNOTATION, type Descriptor } from '../lib/image/store.js';
import { AbortError } from '../lib/errors.js';
import { native } from '../lib/native.js';

const base = mkdtempSync(join(tmpdir(), 'berth-test-store-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

let counter = 0;
/** A fresh berth root for one test. */
function freshRoot(): string {
  const root = join(base, `root${++counter}`);
  mkdirSync(root);
  return root;
}

function sha256(data: Uint8Array): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

function blob(data: Uint8Array | string): { data: Buffer; digest: string; size: number } {
  const buf = Buffer.from(data);
  return { data: buf, digest: sha256(buf), size: buf.length };
}

async function* chunked(data: Buffer, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

/** Stores a JSON document as a blob and returns its descriptor. */
async function putJson(store: ImageStore, value: unknown, mediaType: string): Promise<Descriptor> {
  const b = blob(JSON.stringify(value));
  await store.writeBlob(b, b.data);
  return { mediaType, digest: b.digest, size: b.size };
}

/** A small image: a config, two layers, a manifest. */
async function putImage(store: ImageStore, seed: string, manifestType = OCI_MANIFEST) {
  const layers = [blob(`layer-a-${seed}`), blob(`layer-b-${seed}`)];
  for (const l of layers) await store.writeBlob(l, l.data);
  const config = await putJson(store, { architecture: 'amd64', os: 'linux', seed }, 'application/vnd.oci.image.config.v1+json');
  const manifest = await putJson(
    store,
    {
      schemaVersion: 2,
      mediaType: manifestType,
      config,
      layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: l.digest, size: l.size })),
    },
    manifestType,
  );
  return { manifest, config, layers };
}

function tmpEntries(root: string): string[] {
  return readdirSync(join(root, 'images', 'tmp'));
}

/** Two hours ago: older than gc's grace period for blobs and its age limit for temp files. */
const old = new Date(Date.now() - 2 * 3600_000);
const age = (store: ImageStore, digest: string) => utimesSync(store.blobPath(digest), old, old);

const distStore = new URL('../dist/lib/image/store.js', import.meta.url).pathname;
const scripts = join(base, 'scripts');

/** Runs an ESM script in a separate Node process that imports the compiled store as `ImageStore`. */
function node(body: string, args: string[] = []): Promise<{ code: number | null; stdout: string; stderr: string }> {
  mkdirSync(scripts, { recursive: true });
  const file = join(scripts, `s${randomBytes(6).toString('hex')}.mjs`);
  writeFileSync(file, `import { ImageStore } from ${JSON.stringify(distStore)};\n${body}`);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [file, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

beforeAll(() => {
  // The multi-process tests run the compiled library; a stale build would test old code.
  const src = new URL('../lib/image/store.ts', import.meta.url).pathname;
  if (!existsSync(distStore) || statSync(distStore).mtimeMs < statSync(src).mtimeMs) {
    throw new Error(`${distStore} is missing or older than lib/image/store.ts: run "npx tsc -p tsconfig.json" (npm test does)`);
  }
});

describe('layout', () => {
  it('creates an OCI layout and reopens it', () => {
    const root = freshRoot();
    const store = ImageStore.open(root);
    expect(store.path).toBe(join(root, 'images'));
    expect(JSON.parse(readFileSync(join(root, 'images', 'oci-layout'), 'utf8'))).toEqual({ imageLayoutVersion: '1.0.0' });
    expect(JSON.parse(readFileSync(join(root, 'images', 'index.json'), 'utf8'))).toEqual({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [],
    });
    expect(statSync(join(root, 'images', 'blobs', 'sha256')).isDirectory()).toBe(true);
    expect(ImageStore.open(root).listTags()).toEqual([]);
    expect(tmpEntries(root)).toEqual([]);
  });

  it('refuses a malformed layout', () => {
    const root = freshRoot();
    ImageStore.open(root);
    writeFileSync(join(root, 'images', 'index.json'), '{"schemaVersion":2,"manifests":[{"digest":"sha256:../../etc"}]}');
    expect(() => ImageStore.open(root)).toThrow(StoreLayoutError);
    writeFileSync(join(root, 'images', 'index.json'), '{not json');
    expect(() => ImageStore.open(root)).toThrow(/not valid JSON/);
    writeFileSync(join(root, 'images', 'index.json'), '{"schemaVersion":2,"manifests":[]}');
    writeFileSync(join(root, 'images', 'oci-layout'), '{"imageLayoutVersion":"2.0.0"}');
    expect(() => ImageStore.open(root)).toThrow(/unsupported imageLayoutVersion/);
  });
});

describe('blobs', () => {
  it('writes and reads blobs, read-only, with progress', async () => {
    const root = freshRoot();
    const store = ImageStore.open(root);
    const b = blob(randomBytes(300_000));
    const progress: number[] = [];
    await store.writeBlob(b, chunked(b.data, 65536), { onProgress: (n) => progress.push(n) });
    expect(progress).toEqual([65536, 131072, 196608, 262144, 300_000]);
    expect(store.hasBlob(b.digest)).toBe(true);
    expect(store.blobPath(b.digest)).toBe(join(root, 'images', 'blobs', 'sha256', b.digest.slice(7)));
    expect(statSync(store.blobPath(b.digest)).mode & 0o777).toBe(0o444);
    expect((await store.readBlob(b.digest)).equals(b.data)).toBe(true);
    expect((await store.readBlob(b.digest, { size: b.size })).equals(b.data)).toBe(true);
    const chunks: Buffer[] = [];
    for await (const c of store.openBlob(b.digest, { size: b.size })) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).equals(b.data)).toBe(true);
    expect(tmpEntries(root)).toEqual([]);

    const small = blob('hello');
    await store.writeBlob(small, small.data);
    expect((await store.readBlob(small.digest)).toString()).toBe('hello');
    const doc = await putJson(store, { a: [1, 2] }, 'application/json');
    expect(await store.readJson(doc.digest)).toEqual({ a: [1, 2] });
  });

  it('refuses a recorded size that differs from the blob on disk, and a missing blob', async () => {
    const store = ImageStore.open(freshRoot());
    const b = blob('twelve bytes');
    await store.writeBlob(b, b.data);
    await expect(store.readBlob(b.digest, { size: 13 })).rejects.toThrow(SizeMismatchError);
    expect(() => store.openBlob(b.digest, { size: 11 })).toThrow(SizeMismatchError);
    const missing = blob('not stored');
    await expect(store.readBlob(missing.digest)).rejects.toThrow(BlobNotFoundError);
    expect(() => store.openBlob(missing.digest)).toThrow(BlobNotFoundError);
    expect(store.hasBlob(missing.digest)).toBe(false);
  });

  it('stores nothing when the digest or the size is wrong', async () => {
    const root = freshRoot();
    const store = ImageStore.open(root);
    const b = blob(randomBytes(100_000));
    const other = blob('something else');
    const err = await store.writeBlob({ digest: other.digest, size: b.size }, chunked(b.data, 4096)).catch((e) => e);
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect(err).toMatchObject({ code: 'ERR_DIGEST_MISMATCH', expected: other.digest, actual: b.digest });
    expect(store.hasBlob(other.digest)).toBe(false);
    expect(store.hasBlob(b.digest)).toBe(false);

    const short = await store.writeBlob({ digest: b.digest, size: b.size + 1 }, b.data).catch((e) => e);
    expect(short).toBeInstanceOf(SizeMismatchError);
    expect(short).toMatchObject({ code: 'ERR_SIZE_MISMATCH', expected: b.size + 1, actual: b.size, overrun: false });
    expect(store.hasBlob(b.digest)).toBe(false);
    expect(readdirSync(join(root, 'images', 'blobs', 'sha256'))).toEqual([]);
    expect(tmpEntries(root)).toEqual([]);
  });

  it('cuts off a blob larger than declared and closes the source', async () => {
    const root = freshRoot();
    const store = ImageStore.open(root);
    let pulled = 0;
    let closed = false;
    async function* endless(): AsyncGenerator<Uint8Array> {
      try {
        for (;;) {
          pulled++;
          yield Buffer.alloc(1024, 1);
        }
      } finally {
        closed = true;
      }
    }
    const declared = blob(Buffer.alloc(10_000, 1));
    const err = await store.writeBlob(declared, endless()).catch((e) => e);
    expect(err).toBeInstanceOf(SizeMismatchError);
    expect(err.overrun).toBe(true);
    expect(err.message).toMatch(/more than 10000 bytes arrived/);
    expect(pulled).toBe(10); // 9 whole chunks fit, the 10th overruns: reading stopped there
    await new Promise((r) => setImmediate(r));
    expect(closed).toBe(true);
    expect(store.hasBlob(declared.digest)).toBe(false);
    expect(tmpEntries(root)).toEqual([]);
  });

  it('refuses invalid digests before touching the filesystem', async () => {
    const root = freshRoot();
    const store = ImageStore.open(root);
    // With the layout gone, any filesystem access would fail with ENOENT or BlobNotFound, not InvalidDigest.
    rmSync(join(root, 'images'), { recursive: true, force: true });
    const bad = [
      'sha256:../../etc',
      'sha256:../../../etc/passwd',
      `sha256:${'a'.repeat(63)}/`,
      `sha256:${'A'.repeat(64)}`,
      `sha256:${'a'.repeat(65)}`,
      `../sha256:${'a'.repeat(64)}`,
      `md5:${'a'.repeat(32)}`,
      `sha256/${'a'.repeat(64)}`,
      '',
    ];
    for (const digest of bad) {
      let pulled = false;
      async function* source(): AsyncGenerator<Uint8Array> {
        pulled = true;
        yield Buffer.from('x');
      }
      expect(() => store.blobPath(digest), digest).toThrow(InvalidDigestError);
      expect(() => store.hasBlob(digest), digest).toThrow(InvalidDigestError);
      expect(() => store.openBlob(digest), digest).toThrow(InvalidDigestError);
      await expect(store.readBlob(digest), digest).rejects.toThrow(InvalidDigestError);
      await expect(store.readJson(digest), digest).rejects.toThrow(InvalidDigestError);
      await expect(store.writeBlob({ digest, size: 1 }, source()), digest).rejects.toMatchObject({ code: 'ERR_INVALID_DIGEST' });
      await expect(store.setTag('x', { mediaType: OCI_MANIFEST, digest, size: 1 })).rejects.toThrow(InvalidDigestError);
      await expect(store.gc({ keepDigests: [digest] })).rejects.toThrow(InvalidDigestError);
      expect(pulled).toBe(false);
    }
    expect(existsSync(join(root, 'images'))).toBe(false);
    // A valid digest does reach the filesystem (and finds nothing).
    await expect(store.readBlob(`sha256:${'a'.repeat(64)}`)).rejects.toThrow(BlobNotFoundError);
  });

  it('aborts a write whose source is stalled; nothing is stored', async () => {
    const root = freshRoot();
    const store = ImageStore.open(root);
    const b = blob(randomBytes(8192));
    async function* stalled(): AsyncGenerator<Uint8Array> {
      yield b.data.subarray(0, 4096);
      await new Promise(() => undefined); // never resolves, like a dead connection
    }
    const controller = new AbortController();
    const writing = store.writeBlob(b, stalled(), { signal: controller.signal, onProgress: () => controller.abort() });
    await expect(writing).rejects.toThrow(AbortError);
    expect(store.hasBlob(b.digest)).toBe(false);
    expect(tmpEntries(root)).toEqual([]);
    await expect(store.writeBlob(b, b.data, { signal: AbortSignal.abort() })).rejects.toThrow(AbortError);
  });

  it('does not consume the data of a blob it already has', async () => {
    const store = ImageStore.open(freshRoot());
    const b = blob('present');
    await store.writeBlob(b, b.data);
    utimesSync(store.blobPath(b.digest), new Date(0), new Date(0));
    let pulled = false;
    async function* source(): AsyncGenerator<Uint8Array> {
      pulled = true;
      yield b.data;
    }
    await store.writeBlob(b, source());
    expect(pulled).toBe(false);
    // Reuse refreshes the mtime, so a gc running alongside the pull keeps the blob.
    expect(Date.now() - statSync(store.blobPath(b.digest)).mtimeMs).toBeLessThan(60_000);
  });

  it('several processes writing one blob at once end with one intact blob', async () => {
    const root = freshRoot();
    ImageStore.open(root);
    const b = blob(randomBytes(6 * 1024 * 1024));
    const file = join(base, 'big.bin');
    writeFileSync(file, b.data);
    const startAt = Date.now() + 1500; // all children start streaming at the same moment
    const body = `
      import { createReadStream } from 'node:fs';
      const [root, file, digest, size, startAt] = process.argv.slice(2);
      const store = ImageStore.open(root);
      while (Date.now() < Number(startAt)) await new Promise((r) => setTimeout(r, 5));
      async function* slow() {
        for await (const chunk of createReadStream(file, { highWaterMark: 64 * 1024 })) {
          yield chunk;
          await new Promise((r) => setImmediate(r));
        }
      }
      let received = 0;
      await store.writeBlob({ digest, size: Number(size) }, slow(), { onProgress: (n) => (received = n) });
      console.log(received);`;
    const path = join(root, 'images', 'blobs', 'sha256', b.digest.slice(7));
    // Meanwhile, whenever the blob path exists it must already be complete.
    let checks = 0;
    let torn = 0;
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const st = statSync(path, { throwIfNoEntry: false });
        if (st) {
          checks++;
          if (st.size !== b.size) torn++;
        }
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    const results = await Promise.all(
      Array.from({ length: 6 }, () => node(body, [root, file, b.digest, String(b.size), String(startAt)])),
    );
    watching = false;
    await watcher;
    for (const r of results) {
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    }
    // A real race: several writers streamed the whole blob before the first one committed it.
    expect(results.filter((r) => Number(r.stdout) === b.size).length).toBeGreaterThan(1);
    expect(torn).toBe(0);
    expect(checks).toBeGreaterThan(0);
    expect(sha256(readFileSync(path))).toBe(b.digest);
    expect(statSync(path).mode & 0o777).toBe(0o444);
    expect(readdirSync(join(root, 'images', 'blobs', 'sha256'))).toEqual([b.digest.slice(7)]);
    expect(tmpEntries(root)).toEqual([]);
  });
});

describe('tags', () => {
  it('sets, resolves, replaces, lists and removes tags by normalized reference', async () => {
    const root = freshRoot();
    const store = ImageStore.open(root);
    const one = await putImage(store, 'one');
    const two = await putImage(store, 'two');
    await store.setTag('busybox', one.manifest);
    await store.setTag('localhost:5000/team/app:v1', {
      ...two.manifest,
      platform: { architecture: 'amd64', os: 'linux' },
      annotations: { 'org.example': 'kept' },
    });
    const index = JSON.parse(readFileSync(join(root, 'images', 'index.json'), 'utf8'));
    expect(index).toMatchObject({ schemaVersion: 2, mediaType: OCI_INDEX });
    expect(index.manifests.map((m: Descriptor) => m.annotations?.[REF_NAME_ANNOTATION])).toEqual([
      'docker.io/library/busybox:latest',
      'localhost:5000/team/app:v1',
    ]);
    expect(store.resolveTag('busybox:latest')?.digest).toBe(one.manifest.digest);
    expect(store.resolveTag('docker.io/library/busybox')?.digest).toBe(one.manifest.digest);
    expect(store.resolveTag('localhost:5000/team/app:v1')).toEqual({
      ...two.manifest,
      platform: { architecture: 'amd64', os: 'linux' },
      annotations: { 'org.example': 'kept', [REF_NAME_ANNOTATION]: 'localhost:5000/team/app:v1' },
    });
    expect(store.resolveTag('busybox:1.36')).toBeUndefined();

    // Re-tagging replaces the entry in place.
    await store.setTag('docker.io/library/busybox:latest', two.manifest);
    expect(store.listTags().map((t) => [t.reference, t.descriptor.digest])).toEqual([
      ['docker.io/library/busybox:latest', two.manifest.digest],
      ['localhost:5000/team/app:v1', two.manifest.digest],
    ]);

    expect(await store.removeTag('busybox')).toBe(true);
    expect(await store.removeTag('busybox')).toBe(false);
    expect(store.listTags().map((t) => t.reference)).toEqual(['localhost:5000/team/app:v1']);
    expect(store.hasBlob(two.manifest.digest)).toBe(true); // blobs stay until gc
    expect(tmpEntries(root)).toEqual([]);
  });

  it('refuses dangling tags, wrong sizes and malformed references', async () => {
    const store = ImageStore.open(freshRoot());
    const img = await putImage(store, 'x');
    const absent = blob('absent');
    await expect(store.setTag('a', { mediaType: OCI_MANIFEST, digest: absent.digest, size: absent.size })).rejects.toThrow(
      BlobNotFoundError,
    );
    await expect(store.setTag('a', { ...img.manifest, size: img.manifest.size + 1 })).rejects.toThrow(SizeMismatchError);
    await expect(store.setTag('Not Valid', img.manifest)).rejects.toMatchObject({ code: 'ERR_INVALID_REFERENCE' });
    await expect(
      store.setTag('a', { ...img.manifest, annotations: { x: 1 as unknown as string } }),
    ).rejects.toMatchObject({ code: 'ERR_INVALID_OPTIONS' });
    expect(store.listTags()).toEqual([]);
  });

  it('keeps every tag when several processes tag at once', async () => {
    const root = freshRoot();
    const store = ImageStore.open(root);
    const img = await putImage(store, 'shared');
    await store.setTag('before:1', img.manifest);
    const startAt = Date.now() + 1500;
    const body = `
      const [root, n, desc, startAt] = process.argv.slice(2);
      const store = ImageStore.open(root);
      while (Date.now() < Number(startAt)) await new Promise((r) => setTimeout(r, 5));
      for (let i = 0; i < 25; i++) await store.setTag('localhost:5000/p' + n + ':t' + i, JSON.parse(desc));
      console.log('ok');`;
    const results = await Promise.all(
      [1, 2, 3, 4].map((n) => node(body, [root, String(n), JSON.stringify(img.manifest), String(startAt)])),
    );
    for (const r of results) expect(r).toMatchObject({ code: 0, stdout: 'ok\n', stderr: '' });
    const tags = store.listTags().map((t) => t.reference);
    expect(tags).toHaveLength(101);
    expect(tags).toContain('docker.io/library/before:1');
    for (const n of [1, 2, 3, 4]) for (let i = 0; i < 25; i++) expect(tags).toContain(`localhost:5000/p${n}:t${i}`);
    expect(tmpEntries(root)).toEqual([]);
  });

  it('fails clearly when another process holds the lock too long', async () => {
    const root = freshRoot();
    const store = ImageStore.open(root, { lockTimeoutMs: 300 });
    const img = await putImage(store, 'lock');
    await store.setTag('first', img.manifest); // also writes our pid into the lock file
    const fd = openSync(join(root, 'images', 'index.lock'), 'r+');
    try {
      expect(native.flock(fd, true)).toBe(true);
      const started = Date.now();
      const err = await store.setTag('second', img.manifest).catch((e) => e);
      expect(err).toBeInstanceOf(StoreLockTimeoutError);
      expect(err.message).toMatch(new RegExp(`index\\.lock \\(last taken by pid ${process.pid}\\)`));
      expect(Date.now() - started).toBeGreaterThanOrEqual(290);
      expect(Date.now() - started).toBeLessThan(2000);
      expect(store.resolveTag('first')?.digest).toBe(img.manifest.digest); // readers need no lock
    } finally {
      closeSync(fd);
    }
    await store.setTag('second', img.manifest);
    expect(store.listTags()).toHaveLength(2);
  });
});

describe('gc', () => {

  it('removes only blobs nothing refers to', async () => {
    const root = freshRoot();
    const store = ImageStore.open(root);
    // A tagged index of two platforms (one pulled), a tagged Docker schema 2 image, an untagged manifest in
    // index.json, an unreferenced image, a stray blob kept by keepDigests and a fresh stray blob.
    const amd = await putImage(store, 'amd64');
    const absentArm = blob('arm64 manifest, never pulled');
    const list = await putJson(
      store,
      {
        schemaVersion: 2,
        mediaType: OCI_INDEX,
        manifests: [
          { ...amd.manifest, platform: { architecture: 'amd64', os: 'linux' } },
          { mediaType: OCI_MANIFEST, digest: absentArm.digest, size: absentArm.size, platform: { architecture: 'arm64', os: 'linux' } },
        ],
      },
      OCI_INDEX,
    );
    const docker = await putImage(store, 'docker', 'application/vnd.docker.distribution.manifest.v2+json');
    const untagged = await putImage(store, 'untagged');
    const garbage = await putImage(store, 'garbage');
    const kept = blob('kept by a pull in progress');
    const stray = blob('stray');
    const fresh = blob('fresh stray');
    for (const b of [kept, stray, fresh]) await store.writeBlob(b, b.data);
    await store.setTag('multi:1', list);
    await store.setTag('docker:1', docker.manifest);
    // An untagged entry, as a tool may leave in index.json.
    const indexPath = join(root, 'images', 'index.json');
    const index = JSON.parse(readFileSync(indexPath, 'utf8'));
    index.manifests.push(untagged.manifest);
    writeFileSync(indexPath, JSON.stringify(index));

    const all = readdirSync(join(root, 'images', 'blobs', 'sha256'));
    for (const hex of all) if (hex !== fresh.digest.slice(7)) age(store, `sha256:${hex}`);
    const staleTemp = join(root, 'images', 'tmp', 'blob-dead-writer');
    const liveTemp = join(root, 'images', 'tmp', 'blob-live-writer');
    writeFileSync(staleTemp, 'partial');
    utimesSync(staleTemp, old, old);
    writeFileSync(liveTemp, 'partial');

    const garbageDigests = [garbage.manifest, garbage.config, ...garbage.layers].map((d) => d.digest).concat(stray.digest);
    const garbageBytes = [garbage.manifest, garbage.config, ...garbage.layers, stray].reduce((n, d) => n + d.size, 0);
    expect(await store.gc({ keepDigests: [kept.digest] })).toEqual({ removedBlobs: 5, freedBytes: garbageBytes });
    const left = new Set(readdirSync(join(root, 'images', 'blobs', 'sha256')).map((h) => `sha256:${h}`));
    expect(left.size).toBe(all.length - 5);
    for (const d of garbageDigests) expect(left.has(d)).toBe(false);
    for (const img of [amd, docker, untagged]) {
      for (const d of [img.manifest, img.config, ...img.layers]) expect(left.has(d.digest)).toBe(true);
    }
    for (const d of [list.digest, kept.digest, fresh.digest]) expect(left.has(d)).toBe(true);
    expect(tmpEntries(root)).toEqual(['blob-live-writer']);

    // Untag everything: the old blobs go, the fresh one (a pull in progress) stays.
    rmSync(liveTemp);
    await store.removeTag('multi:1');
    await store.removeTag('docker:1');
    writeFileSync(indexPath, JSON.stringify({ schemaVersion: 2, manifests: [] }));
    const second = await store.gc();
    expect(second.removedBlobs).toBe(all.length - 5 - 1);
    expect(readdirSync(join(root, 'images', 'blobs', 'sha256'))).toEqual([fresh.digest.slice(7)]);
  });

  it('follows a keepDigests manifest to its config and layers', async () => {
    const store = ImageStore.open(freshRoot());
    const img = await putImage(store, 'pulling');
    for (const d of [img.manifest, img.config, ...img.layers]) age(store, d.digest);
    expect(await store.gc({ keepDigests: [img.manifest.digest] })).toEqual({ removedBlobs: 0, freedBytes: 0 });
    expect(await store.gc()).toMatchObject({ removedBlobs: 4 });
  });

  it('removes nothing when a referenced manifest is corrupt', async () => {
    const root = freshRoot();
    const store = ImageStore.open(root);
    const img = await putImage(store, 'corrupt');
    const stray = blob('stray');
    await store.writeBlob(stray, stray.data);
    await store.setTag('c:1', img.manifest);
    const path = store.blobPath(img.manifest.digest);
    rmSync(path);
    writeFileSync(path, 'x'.repeat(img.manifest.size)); // same size, other content
    for (const hex of readdirSync(join(root, 'images', 'blobs', 'sha256'))) age(store, `sha256:${hex}`);
    await expect(store.gc()).rejects.toThrow(StoreLayoutError);
    expect(store.hasBlob(stray.digest)).toBe(true);
  });
});

describe('interop with skopeo and umoci', () => {
  const tool = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  let work: string;
  let layout: string; // an image built by umoci, tagged "t"

  beforeAll(() => {
    for (const t of ['umoci', 'skopeo']) {
      try {
        execFileSync(t, ['--version'], { stdio: 'ignore' });
      } catch {
        throw new Error(`${t} is missing: apt-get install umoci skopeo`);
      }
    }
    work = join(base, 'interop');
    mkdirSync(work);
    layout = join(work, 'umoci');
    const bundle = join(work, 'bundle');
    tool('umoci', ['init', '--layout', layout]);
    tool('umoci', ['new', '--image', `${layout}:t`]);
    tool('umoci', ['unpack', '--image', `${layout}:t`, bundle]);
    writeFileSync(join(bundle, 'rootfs', 'busybox'), readFileSync('/bin/busybox'), { mode: 0o755 });
    tool('umoci', ['repack', '--image', `${layout}:t`, bundle]);
    rmSync(bundle, { recursive: true, force: true });
  });

  it('reads a store that skopeo copied an image into, and its own gc keeps it', async () => {
    const root = freshRoot();
    const store = ImageStore.open(root);
    tool('skopeo', ['copy', '-q', `oci:${layout}:t`, `oci:${store.path}:docker.io/library/x:t`]);
    const tags = store.listTags();
    expect(tags.map((t) => t.reference)).toEqual(['docker.io/library/x:t']);
    const desc = store.resolveTag('x:t');
    expect(desc).toMatchObject({ mediaType: OCI_MANIFEST, digest: tags[0]!.descriptor.digest });
    const manifest = await store.readJson<{ config: Descriptor; layers: Descriptor[] }>(desc!.digest, { size: desc!.size });
    expect(manifest.layers).toHaveLength(1);
    const layer = await store.readBlob(manifest.layers[0]!.digest, { size: manifest.layers[0]!.size });
    expect(sha256(layer)).toBe(manifest.layers[0]!.digest);
    const img = await putImage(store, 'alongside');
    await store.setTag('y:1', img.manifest); // berth's update keeps skopeo's entry
    expect(store.listTags().map((t) => t.reference)).toEqual(['docker.io/library/x:t', 'docker.io/library/y:1']);
    await store.removeTag('y:1');
    for (const hex of readdirSync(join(store.path, 'blobs', 'sha256'))) age(store, `sha256:${hex}`);
    expect(await store.gc()).toEqual({
      removedBlobs: 4,
      freedBytes: [img.manifest, img.config, ...img.layers].reduce((n, d) => n + d.size, 0),
    });
    expect(tool('skopeo', ['inspect', '--raw', `oci:${store.path}:docker.io/library/x:t`])).toContain(manifest.layers[0]!.digest);
  });

  it('reads a layout umoci wrote (no index mediaType, a short ref name)', async () => {
    const root = freshRoot();
    tool('cp', ['-a', layout, join(root, 'images')]);
    const store = ImageStore.open(root);
    expect(store.listTags().map((t) => t.reference)).toEqual(['t']);
    const desc = store.resolveTag('t');
    expect(desc?.mediaType).toBe(OCI_MANIFEST);
    expect(await store.readJson(desc!.digest)).toMatchObject({ schemaVersion: 2 });
  });

  it('writes a layout that skopeo and umoci read', async () => {
    const root = freshRoot();
    const store = ImageStore.open(root);
    // Copy umoci's image blob by blob through writeBlob, as a pull would.
    const source = ImageStore.open(join(work, 'as-root'));
    rmSync(source.path, { recursive: true });
    tool('cp', ['-a', layout, source.path]);
    const src = source.resolveTag('t')!;
    const manifest = await source.readJson<{ config: Descriptor; layers: Descriptor[] }>(src.digest);
    for (const d of [manifest.config, ...manifest.layers, src]) {
      await store.writeBlob(d, source.openBlob(d.digest, { size: d.size }));
    }
    const ref = 'localhost:5000/team/app:v1';
    await store.setTag(ref, { mediaType: src.mediaType, digest: src.digest, size: src.size });
    await store.setTag('busybox', { mediaType: src.mediaType, digest: src.digest, size: src.size });

    const inspect = JSON.parse(tool('skopeo', ['inspect', `oci:${store.path}:${ref}`]));
    expect(inspect.Digest).toBe(src.digest);
    expect(inspect.Layers).toEqual(manifest.layers.map((l) => l.digest));
    expect(tool('skopeo', ['inspect', '--raw', `oci:${store.path}:docker.io/library/busybox:latest`])).toBe(
      (await store.readBlob(src.digest)).toString(),
    );
    expect(tool('umoci', ['ls', '--layout', store.path]).trim().split('\n').sort()).toEqual([
      'docker.io/library/busybox:latest',
      ref,
    ]);
    // umoci verifies every blob it reads while unpacking.
    const bundle = join(work, 'unpacked');
    tool('umoci', ['unpack', '--image', `${store.path}:${ref}`, bundle]);
    expect(readFileSync(join(bundle, 'rootfs', 'busybox')).equals(readFileSync('/bin/busybox'))).toBe(true);
    rmSync(bundle, { recursive: true, force: true });
    // And skopeo can copy out of it.
    const out = join(work, 'copied');
    tool('skopeo', ['copy', '-q', `oci:${store.path}:${ref}`, `oci:${out}:again`]);
    expect(JSON.parse(readFileSync(join(out, 'index.json'), 'utf8')).manifests[0].digest).toBe(src.digest);
  });
});
