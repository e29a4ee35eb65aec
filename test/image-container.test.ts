// Containers from images: layers unpacked once into snapshots, an overlay rootfs per container, the image config
// applied as docker run does, whiteouts honoured, pulled on demand.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Container } from '../lib/index.js';
import { chainIds } from '../lib/image/snapshot.js';
import { pushBusybox, startRegistry, type Registry } from './helpers/registry.js';

let registry: Registry;
const dir = mkdtempSync(join(tmpdir(), 'berth-test-imgctr-'));
const root = join(dir, 'state');
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function putBlob(name: string, bytes: Buffer): Promise<string> {
  const digest = sha(bytes);
  const start = await fetch(`${registry.url}/v2/${name}/blobs/uploads/`, { method: 'POST' });
  const location = new URL(start.headers.get('location')!, registry.url);
  location.searchParams.set('digest', digest);
  const res = await fetch(location, { method: 'PUT', body: bytes });
  if (res.status !== 201) throw new Error(`blob upload ${res.status}`);
  return digest;
}

/** Pushes busybox plus extra layers (tars; gzip or zstd) with its config patched. */
async function pushVariant(name: string, patch: Record<string, unknown>, extra?: Buffer | { tar: Buffer; zstd?: boolean }[]): Promise<void> {
  const mt = 'application/vnd.oci.image.manifest.v1+json';
  const base = (await (await fetch(`${registry.url}/v2/library/busybox/manifests/latest`, { headers: { accept: mt } })).json()) as {
    config: { digest: string; size: number; mediaType: string };
    layers: { digest: string; size: number; mediaType: string }[];
  };
  const config = (await (await fetch(`${registry.url}/v2/library/busybox/blobs/${base.config.digest}`)).json()) as {
    config?: Record<string, unknown>;
    rootfs: { diff_ids: string[] };
  };
  for (const l of base.layers) await fetch(`${registry.url}/v2/${name}/blobs/uploads/?mount=${l.digest}&from=library/busybox`, { method: 'POST' });
  const layers = [...base.layers];
  const extras = extra === undefined ? [] : Buffer.isBuffer(extra) ? [{ tar: extra }] : extra;
  for (const { tar, zstd } of extras) {
    const blob = zstd ? execFileSync('zstd', ['-q', '-c'], { input: tar }) : gzipSync(tar);
    const mediaType = `application/vnd.oci.image.layer.v1.tar+${zstd ? 'zstd' : 'gzip'}`;
    layers.push({ mediaType, digest: await putBlob(name, blob), size: blob.length });
    config.rootfs.diff_ids.push(sha(tar));
  }
  const cfg = Buffer.from(JSON.stringify({ ...config, config: { ...(config.config ?? {}), ...patch } }));
  const manifest = { schemaVersion: 2, mediaType: mt, config: { ...base.config, digest: await putBlob(name, cfg), size: cfg.length }, layers };
  const res = await fetch(`${registry.url}/v2/${name}/manifests/latest`, { method: 'PUT', body: JSON.stringify(manifest), headers: { 'content-type': mt } });
  if (res.status !== 201) throw new Error(`manifest put ${res.status}`);
}

/** A tar (GNU tar, pax) of a staging directory. */
function tarOf(build: (stage: string) => void): Buffer {
  const stage = mkdtempSync(join(dir, 'stage-'));
  build(stage);
  const out = join(dir, `layer-${Math.random().toString(36).slice(2)}.tar`);
  execFileSync('tar', ['--format=pax', '--numeric-owner', '-C', stage, '-cf', out, '.']);
  return readFileSync(out);
}

beforeAll(async () => {
  registry = await startRegistry();
  await pushBusybox(registry, 'library/busybox');
  await pushVariant('team/configured', {
    Entrypoint: ['/bin/sh', '-c'],
    Cmd: ['echo "$GREETING from $(pwd) as $(id -u):$(id -g)"'],
    Env: ['PATH=/bin', 'GREETING=hello'],
    WorkingDir: '/srv/app',
    User: '1000:1000',
    StopSignal: 'SIGUSR1',
  });
  // A second layer that deletes /bin/vi (whiteout), makes /data opaque, and adds a file.
  await pushVariant('team/layered', { Cmd: ['sh'] }, tarOf((s) => {
    mkdirSync(join(s, 'bin'));
    writeFileSync(join(s, 'bin', '.wh.vi'), '');
    mkdirSync(join(s, 'etc'));
    writeFileSync(join(s, 'etc', 'motd'), 'from layer two\n');
  }));
  // Users from the image's own /etc/passwd; an opaque directory; a zstd-compressed layer.
  await pushVariant('team/users', { User: 'app', Cmd: ['sh'] }, [
    {
      tar: tarOf((st) => {
        mkdirSync(join(st, 'etc'));
        writeFileSync(join(st, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\napp:x:1234:4321:app:/home/app:/bin/sh\n');
        writeFileSync(join(st, 'etc', 'group'), 'root:x:0:\napp:x:4321:\nextra:x:777:app\n');
        mkdirSync(join(st, 'data'));
        writeFileSync(join(st, 'data', 'old'), 'hidden by the next layer\n');
        mkdirSync(join(st, 'opt', 'dir'), { recursive: true });
        writeFileSync(join(st, 'opt', 'dir', 'file'), 'deleted with its directory\n');
        writeFileSync(join(st, 'opt', 'kept'), 'stays\n');
      }),
    },
    {
      zstd: true,
      tar: tarOf((st) => {
        mkdirSync(join(st, 'data'));
        writeFileSync(join(st, 'data', '.wh..wh..opq'), '');
        writeFileSync(join(st, 'data', 'new'), 'zstd layer\n');
        mkdirSync(join(st, 'opt'));
        writeFileSync(join(st, 'opt', '.wh.dir'), '');
      }),
    },
  ]);
}, 120_000);
afterAll(async () => {
  for (const info of await Container.list({ root, all: true }).catch(() => [])) {
    await (await Container.get(info.id, { root })).remove({ force: true });
  }
  await registry?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('containers from images', () => {
  it('pulls on demand and runs a command in the image', async () => {
    const r = await Container.run({ root, image: `${registry.host}/library/busybox`, cmd: ['sh', '-c', 'echo hi; readlink /proc/self/exe; awk \'$5 == "/" { for (i = 7; i <= NF; i++) if ($i == "-") print $(i + 1) }\' /proc/self/mountinfo'] });
    expect(r.exitCode).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual(['hi', '/bin/busybox', 'overlay']);
  });

  it('applies the image config: entrypoint, cmd, env, workdir (created), user, stop signal', async () => {
    const r = await Container.run({ root, image: `${registry.host}/team/configured` });
    expect(r.stdout.trim()).toBe('hello from /srv/app as 1000:1000');
    const o = await Container.run({ root, image: `${registry.host}/team/configured`, cmd: ['echo $GREETING again'], env: { GREETING: 'hi' }, user: '0' });
    expect(o.stdout.trim()).toBe('hi again');
    await using c = await Container.create({ root, image: `${registry.host}/team/configured` });
    expect((await c.inspect()).spec.process.args).toEqual(['/bin/sh', '-c', 'echo "$GREETING from $(pwd) as $(id -u):$(id -g)"']);
    const e = await Container.run({ root, image: `${registry.host}/team/configured`, entrypoint: ['echo'] });
    expect(e.stdout).toBe('\n'); // --entrypoint drops the image's Cmd
  });

  it('honours whiteouts of upper layers and sees their files', async () => {
    const r = await Container.run({ root, image: `${registry.host}/team/layered`, cmd: ['sh', '-c', 'ls /bin/vi 2>&1 || true; cat /etc/motd; ls /bin/sh'] });
    expect(r.stdout).toContain('No such file or directory');
    expect(r.stdout).toContain('from layer two');
    expect(r.stdout).toContain('/bin/sh');
  });

  it('keeps each container\'s writes in its own upper directory; the snapshots never change', async () => {
    const w = await Container.run({ root, image: `${registry.host}/library/busybox`, cmd: ['sh', '-c', 'echo mine > /bin/newfile; rm /bin/ls; echo done'] });
    expect(w.stdout.trim()).toBe('done');
    const r = await Container.run({ root, image: `${registry.host}/library/busybox`, cmd: ['sh', '-c', 'ls /bin/newfile 2>&1; ls /bin/ls'] });
    expect(r.stdout).toContain('No such file');
    expect(r.stdout).toContain('/bin/ls');
  });

  it('unpacks each layer once, keyed by chain ID, shared by every image that has it', async () => {
    const snapshots = readdirSync(join(root, 'snapshots')).filter((d) => !d.startsWith('.'));
    const busybox = (await import('../lib/image/image.js')).Image;
    const img = await busybox.get(`${registry.host}/team/layered`, { root });
    const chains = chainIds(img.config.rootfs.diff_ids).map((c) => c.slice(7));
    for (const c of chains) expect(snapshots).toContain(c);
    // busybox's single layer is shared by all three images: 1 + the second layer of team/layered.
    expect(snapshots.length).toBe(2);
  });

  it('resolves the image\'s user by name from its /etc/passwd, hides an opaque directory, reads a zstd layer', async () => {
    const r = await Container.run({ root, image: `${registry.host}/team/users`, cmd: ['sh', '-c', 'id; echo $HOME; ls /data; cat /data/new; ls /opt'] });
    expect(r.stdout.trim().split('\n')).toEqual(['uid=1234(app) gid=4321(app) groups=777(extra)', '/home/app', 'new', 'zstd layer', 'kept']);
  });

  it('refuses to pull when told never to', async () => {
    await expect(Container.run({ root, image: `${registry.host}/library/absent`, cmd: ['true'], pull: 'never' })).rejects.toThrow(/no such image/);
  });
});

describe('image removal and garbage collection with containers', () => {
  it('refuses to remove the last reference to an image a container uses, unless forced; gc keeps its snapshots', async () => {
    const { Image, ImageInUseError } = await import('../lib/image/image.js');
    const ref = `${registry.host}/team/layered`;
    await using c = await Container.create({ root, image: ref, cmd: ['true'] });
    expect((await c.inspect()).image).toBe(`${ref}:latest`);
    const image = await Image.get(ref, { root });
    await image.tag('local/layered:keep');
    await image.remove(); // another reference remains: fine
    const last = await Image.get('local/layered:keep', { root });
    const err = await last.remove().catch((e) => e);
    expect(err).toBeInstanceOf(ImageInUseError);
    expect(err.containers).toEqual([c.name]);
    await last.remove({ force: true });
    // Untagged, but the container still stands on its snapshots: gc must keep them.
    const before = readdirSync(join(root, 'snapshots')).filter((d) => !d.startsWith('.'));
    await Image.gc({ root });
    expect(readdirSync(join(root, 'snapshots')).filter((d) => !d.startsWith('.'))).toEqual(before);
    await c.remove();
    const after = await Image.gc({ root });
    // Now only the layers of images still tagged remain (busybox's shared one); team/layered's second layer goes.
    expect(after.removedSnapshots).toBe(1);
  });
});

describe('snapshot gc against pulls and creates in progress', () => {
  it('waits while a pull or container creation holds the snapshots', async () => {
    const { SnapshotStore } = await import('../lib/image/snapshot.js');
    const { Image } = await import('../lib/image/image.js');
    const release = await new SnapshotStore(root).lock(false); // what a create holds until its state is written
    let finished = false;
    const gc = Image.gc({ root }).then(() => (finished = true));
    await new Promise((r) => setTimeout(r, 200));
    expect(finished).toBe(false);
    release();
    await gc;
    expect(finished).toBe(true);
  });
});
