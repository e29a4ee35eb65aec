/**
 * The pull benchmark's image: a Debian bookworm minbase tree made by debootstrap, packed by umoci into a one-layer
 * OCI image. Both are cached under the cache directory (default /var/tmp/berth-bench) and rebuilt only when
 * missing; every step builds into a `.tmp` sibling that is renamed into place once complete, so a directory that
 * exists is always whole.
 * @module
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mounts } from './host.js';
import { run } from './proc.js';

export const SUITE = 'bookworm';
export const MIRROR = 'http://deb.debian.org/debian';
const TAG = 'latest';

/** The cached image and what the report says about it. */
export interface MinbaseImage {
  /** The debootstrap tree. */
  rootfs: string;
  /** The OCI image layout holding the image under tag `latest`. */
  layout: string;
  /** `<layout>:latest`, for umoci and skopeo's `oci:` transport. */
  image: string;
  manifestDigest: string;
  layer: {
    digest: string;
    mediaType: string;
    /** Compressed size in bytes. */
    size: number;
    diffId: string;
    /** Size of the uncompressed tar stream in bytes. */
    tarSize: number;
    /** Entries in the tar stream (files, directories, symlinks, hardlinks...). */
    entries: number;
    /** Path of the layer blob in the layout. */
    path: string;
  };
  /** The image config's architecture, e.g. `amd64`. */
  architecture: string;
  /** What this run had to build: empty when everything came from the cache. */
  built: string[];
}

/** Apt packages the benchmark needs for each binary; installed with apt-get when the binary is missing. */
export const PACKAGES: Record<string, string> = {
  debootstrap: 'debootstrap',
  umoci: 'umoci',
  skopeo: 'skopeo',
  'docker-registry': 'docker-registry',
  containerd: 'containerd',
  ctr: 'containerd',
  unpigz: 'pigz',
};

export function haveBinary(bin: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Installs the packages of the missing binaries (apt-get, non-interactive). Throws when apt-get fails. */
export async function installMissing(bins: readonly string[], log: (m: string) => void): Promise<void> {
  const pkgs = [...new Set(bins.filter((b) => !haveBinary(b)).map((b) => PACKAGES[b] ?? b))];
  if (pkgs.length === 0) return;
  log(`installing ${pkgs.join(' ')} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  await run('apt-get', ['update', '-qq'], { env });
  await run('apt-get', ['install', '-y', '-qq', ...pkgs], { env });
}

/** Unmounts whatever is mounted under `dir`, deepest first (debootstrap mounts /proc in its target while it runs). */
function unmountUnder(dir: string): string[] {
  const targets = mounts().map((m) => m.target).filter((t) => t === dir || t.startsWith(`${dir}/`));
  for (const t of targets.sort((a, b) => b.length - a.length)) execFileSync('umount', ['-l', t], { stdio: 'ignore' });
  return targets;
}

async function debootstrap(rootfs: string, log: (m: string) => void): Promise<void> {
  const tmp = `${rootfs}.tmp`;
  unmountUnder(tmp);
  rmSync(tmp, { recursive: true, force: true });
  log(`debootstrap --variant=minbase ${SUITE} ${tmp} ${MIRROR} (a few minutes, once)`);
  try {
    await run('debootstrap', ['--variant=minbase', SUITE, tmp, MIRROR], { timeoutMs: 30 * 60_000 });
  } finally {
    const left = unmountUnder(tmp);
    if (left.length > 0) log(`unmounted what debootstrap left mounted: ${left.join(', ')}`);
  }
  renameSync(tmp, rootfs);
}

/**
 * umoci init/new/unpack, the bundle's rootfs replaced by a copy of the debootstrap tree, umoci repack: one layer.
 * /dev is emptied as in Docker's Debian images (the runtime provides /dev); everything else is as debootstrap left it.
 */
async function packImage(rootfs: string, layout: string, log: (m: string) => void): Promise<void> {
  const tmp = `${layout}.tmp`;
  const work = `${layout}.work`;
  rmSync(tmp, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work);
  const image = `${tmp}:${TAG}`;
  const bundle = join(work, 'bundle');
  log(`umoci: packing ${rootfs} into ${layout}`);
  try {
    await run('umoci', ['init', '--layout', tmp]);
    await run('umoci', ['new', '--image', image]);
    await run('umoci', ['unpack', '--image', image, bundle]);
    const target = join(bundle, 'rootfs');
    for (const name of readdirSync(target)) rmSync(join(target, name), { recursive: true, force: true });
    await run('cp', ['-a', `${rootfs}/.`, `${target}/`]);
    const dev = join(target, 'dev');
    if (existsSync(dev)) for (const name of readdirSync(dev)) rmSync(join(dev, name), { recursive: true, force: true });
    await run('umoci', ['repack', '--image', image, bundle]);
    await run('umoci', ['config', '--image', image, '--config.cmd', 'bash']);
    await run('umoci', ['gc', '--layout', tmp]);
    renameSync(tmp, layout);
  } finally {
    rmSync(work, { recursive: true, force: true });
    rmSync(tmp, { recursive: true, force: true });
  }
}

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

function blobPath(layout: string, digest: string): string {
  return join(layout, 'blobs', ...digest.split(':'));
}

function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

type LayerFacts = Pick<MinbaseImage['layer'], 'tarSize' | 'entries'>;

/** Uncompressed size and entry count of a gzip layer: GNU tar lists it once, cached next to the layout. */
async function layerFacts(layout: string, layerDigest: string): Promise<LayerFacts> {
  const cachePath = join(layout, '..', 'layer-facts.json');
  try {
    const cached = readJson<LayerFacts & { digest: string }>(cachePath);
    if (cached.digest === layerDigest) return { tarSize: cached.tarSize, entries: cached.entries };
  } catch {
    // not computed yet
  }
  const blob = blobPath(layout, layerDigest);
  // --totals prints "Total bytes read: N (...)" on stderr: the tar stream's size, end-of-archive blocks included.
  const { stdout, stderr } = await run('sh', ['-c', 'tar --totals -tzf "$1" | wc -l', 'sh', blob]);
  const entries = Number(stdout.trim());
  const total = /Total bytes read: (\d+)/.exec(stderr)?.[1];
  const facts: LayerFacts = { tarSize: Number(total ?? Number.NaN), entries };
  writeFileSync(cachePath, JSON.stringify({ digest: layerDigest, ...facts }));
  return facts;
}

/**
 * The cached image, building what is missing: the debootstrap tree (network: Debian's mirror), then the OCI layout.
 * When the tree is rebuilt, the layout is rebuilt from it.
 */
export async function ensureMinbase(cache: string, log: (m: string) => void): Promise<MinbaseImage> {
  const dir = join(cache, `minbase-${SUITE}`);
  mkdirSync(dir, { recursive: true });
  const rootfs = join(dir, 'rootfs');
  const layout = join(dir, 'oci');
  const built: string[] = [];
  if (!existsSync(rootfs)) {
    rmSync(layout, { recursive: true, force: true });
    await installMissing(['debootstrap'], log);
    await debootstrap(rootfs, log);
    built.push('debootstrap tree');
  }
  if (!existsSync(layout)) {
    await packImage(rootfs, layout, log);
    built.push('OCI image');
  }

  const index = readJson<{ manifests: Descriptor[] }>(join(layout, 'index.json'));
  const desc = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === TAG);
  if (!desc) throw new Error(`${layout}: no "${TAG}" tag in index.json; remove ${dir} to rebuild`);
  const manifest = readJson<{ config: Descriptor; layers: Descriptor[] }>(blobPath(layout, desc.digest));
  const config = readJson<{ architecture: string; rootfs: { diff_ids: string[] } }>(blobPath(layout, manifest.config.digest));
  const layer = manifest.layers[0];
  const diffId = config.rootfs.diff_ids[0];
  if (manifest.layers.length !== 1 || !layer || !diffId) {
    throw new Error(`${layout}: expected one layer, found ${manifest.layers.length}; remove ${dir} to rebuild`);
  }
  const facts = await layerFacts(layout, layer.digest);
  return {
    rootfs,
    layout,
    image: `${layout}:${TAG}`,
    manifestDigest: desc.digest,
    layer: { digest: layer.digest, mediaType: layer.mediaType, size: layer.size, diffId, path: blobPath(layout, layer.digest), ...facts },
    architecture: config.architecture,
    built,
  };
}
