// Image.pull against Debian's docker-registry: Docker Hub names through a mirror, multi-platform indexes, progress,
// re-pulls, a corrupting registry, aborts, several processes pulling at once, and skopeo reading the result.
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Image, ImageNotFoundError } from '../lib/image/image.js';
import { PlatformNotFoundError, type PullEvent } from '../lib/image/pull.js';
import { DigestMismatchError } from '../lib/image/errors.js';
import { AbortError } from '../lib/errors.js';
import { proxy } from './helpers/proxy.js';
import { pushBusybox, startRegistry, type Registry } from './helpers/registry.js';

const run = promisify(execFile);

/** Bytes of the regular files under `dir`, each inode once (busybox's applets are hard links). */
function fileBytes(dir: string, seen = new Set<number>()): number {
  let total = 0;
  for (const name of readdirSync(dir)) {
    const st = lstatSync(join(dir, name));
    if (st.isDirectory()) total += fileBytes(join(dir, name), seen);
    else if (st.isFile() && !seen.has(st.ino)) {
      seen.add(st.ino);
      total += st.size;
    }
  }
  return total;
}
let registry: Registry;
let pushed: { reference: string; digest: string };
const dir = mkdtempSync(join(tmpdir(), 'berth-test-pull-'));
let n = 0;
const freshRoot = () => join(dir, `root${n++}`);

/** Uploads a blob with the registry's monolithic upload. */
async function putBlob(url: string, name: string, bytes: Buffer): Promise<string> {
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  const start = await fetch(`${url}/v2/${name}/blobs/uploads/`, { method: 'POST' });
  const location = new URL(start.headers.get('location')!, url);
  location.searchParams.set('digest', digest);
  const res = await fetch(location, { method: 'PUT', body: bytes, headers: { 'content-type': 'application/octet-stream' } });
  if (res.status !== 201) throw new Error(`blob upload: ${res.status}`);
  return digest;
}

async function putManifest(url: string, name: string, tag: string, doc: object, mediaType: string): Promise<{ digest: string; size: number }> {
  const bytes = Buffer.from(JSON.stringify(doc));
  const res = await fetch(`${url}/v2/${name}/manifests/${tag}`, { method: 'PUT', body: bytes, headers: { 'content-type': mediaType } });
  if (res.status !== 201) throw new Error(`manifest put: ${res.status} ${await res.text()}`);
  return { digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`, size: bytes.length };
}

beforeAll(async () => {
  registry = await startRegistry();
  pushed = await pushBusybox(registry, 'library/busybox');
  // A multi-platform index: the real amd64 image and an "arm64" one (same layers, config saying arm64).
  const manifest = (await (await fetch(`${registry.url}/v2/library/busybox/manifests/latest`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })).json()) as {
    config: { digest: string; size: number; mediaType: string };
  };
  const config = (await (await fetch(`${registry.url}/v2/library/busybox/blobs/${manifest.config.digest}`)).json()) as Record<string, unknown>;
  const armConfig = Buffer.from(JSON.stringify({ ...config, architecture: 'arm64' }));
  const armConfigDigest = await putBlob(registry.url, 'library/multi', armConfig);
  const amdConfig = Buffer.from(JSON.stringify(config));
  const amdConfigDigest = await putBlob(registry.url, 'library/multi', amdConfig);
  const base = (await (await fetch(`${registry.url}/v2/library/busybox/manifests/latest`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })).json()) as Record<string, unknown> & { layers: { digest: string }[] };
  // Layers must exist in the target repository: mount them across.
  for (const l of base.layers) await fetch(`${registry.url}/v2/library/multi/blobs/uploads/?mount=${l.digest}&from=library/busybox`, { method: 'POST' });
  const mt = 'application/vnd.oci.image.manifest.v1+json';
  const amd = await putManifest(registry.url, 'library/multi', 'amd64', { ...base, mediaType: mt, config: { ...manifest.config, digest: amdConfigDigest, size: amdConfig.length } }, mt);
  const arm = await putManifest(registry.url, 'library/multi', 'arm64', { ...base, mediaType: mt, config: { ...manifest.config, digest: armConfigDigest, size: armConfig.length } }, mt);
  const it = 'application/vnd.oci.image.index.v1+json';
  await putManifest(registry.url, 'library/multi', 'latest', {
    schemaVersion: 2,
    mediaType: it,
    manifests: [
      { mediaType: mt, ...arm, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      { mediaType: mt, ...amd, platform: { os: 'linux', architecture: 'amd64' } },
    ],
  }, it);
}, 120_000);
afterAll(async () => {
  await registry?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('Image.pull', () => {
  it('pulls a Docker Hub name through a registry mirror and stores a layout skopeo can read', async () => {
    const root = freshRoot();
    const events: PullEvent[] = [];
    const image = await Image.pull('busybox', { root, mirrors: [registry.url], onProgress: (e) => events.push(e) });
    expect(image.reference).toBe('docker.io/library/busybox:latest');
    expect(image.digest).toBe(pushed.digest);
    expect(image.config.config?.Cmd).toEqual(['sh']);
    expect(events[0]).toEqual({ type: 'resolving', reference: 'docker.io/library/busybox:latest' });
    expect(events.some((e) => e.type === 'blob' && e.kind === 'layer' && e.status === 'done')).toBe(true);
    // Layers are unpacked into snapshots before the pull says it is done, as docker pull does.
    const extracted = events.findIndex((e) => e.type === 'extract' && e.status === 'done');
    expect(extracted).toBeGreaterThan(0);
    expect(extracted).toBeLessThan(events.length - 1);
    expect(readdirSync(join(root, 'snapshots')).filter((d) => !d.startsWith('.'))).toHaveLength(1);
    // Snapshots (setuid binaries, device nodes) and blobs (private images) are for root only.
    expect(statSync(join(root, 'snapshots')).mode & 0o777).toBe(0o700);
    expect(statSync(join(root, 'images')).mode & 0o777).toBe(0o700);
    expect(events.at(-1)).toEqual({ type: 'done', reference: 'docker.io/library/busybox:latest', digest: pushed.digest });
    const list = await Image.list({ root });
    expect(list.map((i) => i.familiar)).toEqual(['busybox:latest']);
    const info = image.inspect();
    expect(info.repoTags).toEqual(['docker.io/library/busybox:latest']);
    expect(info.layers).toHaveLength(1);
    // Its size unpacked: the bytes of its files on disk, counted here independently of the unpacker.
    const snapshot = readdirSync(join(root, 'snapshots')).find((d) => /^[a-f0-9]{64}$/.test(d))!;
    expect(info.unpackedSize).toBe(fileBytes(join(root, 'snapshots', snapshot)));
    expect(info.unpackedSize).toBeGreaterThan(info.size); // busybox compresses well
    const { stdout } = await run('skopeo', ['inspect', '--raw', `oci:${root}/images:docker.io/library/busybox:latest`]);
    expect(createHash('sha256').update(stdout).digest('hex')).toBe(pushed.digest.slice(7));

    // Pulling again downloads nothing.
    const again: PullEvent[] = [];
    await Image.pull('busybox', { root, mirrors: [registry.url], onProgress: (e) => again.push(e) });
    const blobs = again.filter((e) => e.type === 'blob');
    expect(blobs.length).toBeGreaterThan(0);
    expect(blobs.every((e) => e.type === 'blob' && e.status === 'exists')).toBe(true);
  });

  it('reports progress as an async iterable too', async () => {
    const root = freshRoot();
    const pull = Image.pullEvents(`${registry.host}/library/busybox`, { root });
    const types: string[] = [];
    for await (const e of pull) types.push(e.type);
    expect(types[0]).toBe('resolving');
    expect(types.at(-1)).toBe('done');
    expect(types).toContain('extract');
    expect((await pull.image).digest).toBe(pushed.digest);
    const failing = Image.pullEvents(`${registry.host}/library/none`, { root });
    await expect((async () => {
      for await (const _ of failing) void _;
    })()).rejects.toThrow(/not found/);
  });

  it('picks the platform from a multi-platform index', async () => {
    const root = freshRoot();
    const amd = await Image.pull(`${registry.host}/library/multi`, { root, platform: 'linux/amd64' });
    expect(amd.config.architecture).toBe('amd64');
    const arm = await Image.pull(`${registry.host}/library/multi`, { root, platform: 'linux/aarch64' });
    expect(arm.config.architecture).toBe('arm64');
    const err = await Image.pull(`${registry.host}/library/multi`, { root, platform: 'linux/s390x' }).catch((e) => e);
    expect(err).toBeInstanceOf(PlatformNotFoundError);
    expect(err.message).toContain('available: linux/arm64/v8, linux/amd64');
  });

  it('tags, lists, removes, and collects garbage', async () => {
    const root = freshRoot();
    const image = await Image.pull(`${registry.host}/library/busybox`, { root });
    await image.tag('local/mine:v1');
    expect((await Image.list({ root })).map((i) => i.familiar).sort()).toEqual([`${registry.host}/library/busybox:latest`, 'local/mine:v1']);
    await image.remove();
    await (await Image.get('local/mine:v1', { root })).remove();
    await expect(Image.get('local/mine:v1', { root })).rejects.toBeInstanceOf(ImageNotFoundError);
    expect(await Image.list({ root })).toEqual([]);
    // Blobs younger than 10 minutes are kept (a pull may be running): nothing is collected yet, nothing breaks.
    const gc = await Image.gc({ root });
    expect(gc.removedBlobs).toBe(0);
    // The unused snapshot went, and its recorded size with it.
    expect(readdirSync(join(root, 'snapshots')).filter((d) => !d.startsWith('.'))).toEqual([]);
    expect(readdirSync(join(root, 'snapshots', '.sizes'))).toEqual([]);
  });

  it('rejects a blob with the wrong digest and stores nothing for it', async () => {
    const root = freshRoot();
    const p = await proxy(registry.url, ({ url }) => (url.includes('/blobs/') ? 'corrupt' : 'pass'));
    try {
      const err = await Image.pull(`${p.host}/library/busybox`, { root }).catch((e) => e);
      expect(err).toBeInstanceOf(DigestMismatchError);
      expect(readdirSync(join(root, 'images', 'blobs', 'sha256'))).toEqual([]);
      expect(await Image.list({ root })).toEqual([]);
    } finally {
      await p.close();
    }
  });

  it('survives a registry that drops connections mid-blob', async () => {
    const root = freshRoot();
    let cuts = 0;
    const p = await proxy(registry.url, ({ url }) => (url.includes('/blobs/') && cuts++ < 2 ? 'cut' : 'pass'));
    try {
      const image = await Image.pull(`${p.host}/library/busybox`, { root });
      expect(image.digest).toBe(pushed.digest);
      expect(cuts).toBeGreaterThanOrEqual(2);
    } finally {
      await p.close();
    }
  });

  it('honours an AbortSignal and tags nothing', async () => {
    const root = freshRoot();
    const ac = new AbortController();
    const err = await Image.pull(`${registry.host}/library/busybox`, {
      root,
      signal: ac.signal,
      onProgress: (e) => {
        if (e.type === 'resolved') ac.abort();
      },
    }).catch((e) => e);
    expect(err instanceof AbortError || err?.name === 'AbortError').toBe(true);
    expect(await Image.list({ root })).toEqual([]);
  });

  it('lets several processes pull the same image into one store at once', async () => {
    const root = freshRoot();
    const dist = new URL('../dist/lib/image/image.js', import.meta.url).pathname;
    const script = join(dir, 'pull.mjs');
    writeFileSync(script, `import { Image } from ${JSON.stringify(dist)};
      const image = await Image.pull(${JSON.stringify(`${registry.host}/library/busybox`)}, { root: ${JSON.stringify(root)} });
      console.log(image.digest);`);
    const results = await Promise.all([0, 1, 2].map(() => new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.on('exit', (code) => resolve({ code, out: out.trim() }));
    })));
    for (const r of results) expect(r).toEqual({ code: 0, out: pushed.digest });
    expect(existsSync(join(root, 'images', 'tmp')) ? readdirSync(join(root, 'images', 'tmp')) : []).toEqual([]);
    expect((await Image.list({ root })).map((i) => i.digest)).toEqual([pushed.digest]);
  });
});
