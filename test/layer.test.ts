// Layer application: archives built by GNU tar (the independent reference) and crafted hostile archives. Every
// hostile case must fail (or, for symlinks, stay confined to the snapshot) and write nothing outside it.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyLayer } from '../lib/image/layer.js';
import { LayerError } from '../lib/image/layer-errors.js';
import { native } from '../lib/native.js';

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'berth-test-layer-'));
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

let counter = 0;
function freshDir(label: string): string {
  const d = join(work, `${label}-${counter++}`);
  mkdirSync(d, { recursive: true });
  return d;
}

function getxattr(path: string, name: string): Buffer | undefined {
  try {
    return execFileSync('python3', [
      '-c',
      'import os,sys; sys.stdout.buffer.write(os.getxattr(sys.argv[1], sys.argv[2], follow_symlinks=False))',
      path,
      name,
    ], { stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return undefined;
  }
}

function setxattr(path: string, name: string, valueHex: string): void {
  execFileSync('python3', ['-c', 'import os,sys; os.setxattr(sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3]))', path, name, valueHex]);
}

const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function chunked(buf: Buffer, size = 7919): AsyncIterable<Uint8Array> {
  // Odd chunk sizes put header and data boundaries anywhere in a chunk.
  return (async function* () {
    for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
  })();
}

// --- a tiny tar writer for crafted archives -------------------------------------------------------------------

interface Crafted {
  name: string;
  rawName?: Buffer; // the name field as raw bytes (non-UTF-8 names)
  type?: string;
  data?: Buffer | string;
  size?: number; // override the header's size field
  linkname?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  devmajor?: number;
  devminor?: number;
}

function header(e: Crafted): Buffer {
  const h = Buffer.alloc(512);
  const octal = (v: number, off: number, len: number): void => {
    h.write(v.toString(8).padStart(len - 1, '0') + '\0', off, len, 'latin1');
  };
  if (e.rawName) e.rawName.copy(h, 0, 0, 100);
  else h.write(e.name, 0, 100, 'utf8');
  octal(e.mode ?? 0o644, 100, 8);
  octal(e.uid ?? 0, 108, 8);
  octal(e.gid ?? 0, 116, 8);
  const data = typeof e.data === 'string' ? Buffer.from(e.data) : (e.data ?? Buffer.alloc(0));
  octal(e.size ?? data.length, 124, 12);
  octal(e.mtime ?? 1_600_000_000, 136, 12);
  h.write(e.type ?? '0', 156, 1, 'latin1');
  h.write(e.linkname ?? '', 157, 100, 'utf8');
  h.write('ustar\x0000', 257, 8, 'latin1');
  octal(e.devmajor ?? 0, 329, 8);
  octal(e.devminor ?? 0, 337, 8);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const c of h) sum += c;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  return h;
}

function entry(e: Crafted): Buffer {
  const data = typeof e.data === 'string' ? Buffer.from(e.data) : (e.data ?? Buffer.alloc(0));
  return Buffer.concat([header(e), data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
}

function pax(records: Record<string, string>, forName = 'PaxHeader'): Buffer {
  let body = '';
  for (const [k, v] of Object.entries(records)) {
    const rest = ` ${k}=${v}\n`;
    let len = Buffer.byteLength(rest) + 1;
    while (String(len).length + Buffer.byteLength(rest) !== len) len++;
    body += `${len}${rest}`;
  }
  return entry({ name: forName, type: 'x', data: body });
}

const tar = (...parts: Buffer[]): Buffer => Buffer.concat([...parts, Buffer.alloc(1024)]);

// --- archives built by GNU tar ---------------------------------------------------------------------------------

// security.capability v2 blob: CAP_NET_BIND_SERVICE permitted + effective flag.
const CAP_HEX = '01000002' + '00040000' + '00000000' + '00000000' + '00000000';

function buildTree(): string {
  const src = freshDir('src');
  mkdirSync(join(src, 'etc'));
  writeFileSync(join(src, 'etc/hello.txt'), 'hello world\n');
  writeFileSync(join(src, 'etc/big.bin'), Buffer.alloc(3 * 1024 * 1024 + 17, 0x5a));
  mkdirSync(join(src, 'home/app'), { recursive: true });
  writeFileSync(join(src, 'home/app/owned'), 'mine');
  execFileSync('chown', ['-R', '1000:1000', join(src, 'home/app')]);
  execFileSync('chmod', ['0750', join(src, 'home/app')]);
  mkdirSync(join(src, 'bin'));
  writeFileSync(join(src, 'bin/suid'), '#!/bin/sh\n');
  execFileSync('chmod', ['4755', join(src, 'bin/suid')]);
  writeFileSync(join(src, 'bin/sgid'), 'x');
  execFileSync('chown', ['1000:1000', join(src, 'bin/sgid')]);
  execFileSync('chmod', ['2711', join(src, 'bin/sgid')]);
  writeFileSync(join(src, 'bin/capped'), 'cap');
  execFileSync('chown', ['1000:1000', join(src, 'bin/capped')]);
  setxattr(join(src, 'bin/capped'), 'security.capability', CAP_HEX);
  setxattr(join(src, 'etc/hello.txt'), 'user.berth', Buffer.from('xattr-value').toString('hex'));
  symlinkSync('../etc/hello.txt', join(src, 'bin/link'));
  execFileSync('chown', ['-h', '1000:1000', join(src, 'bin/link')]);
  execFileSync('ln', [join(src, 'etc/hello.txt'), join(src, 'etc/hard.txt')]);
  mkdirSync(join(src, 'dev'));
  execFileSync('mknod', ['-m', '0666', join(src, 'dev/null'), 'c', '1', '3']);
  execFileSync('mknod', ['-m', '0660', join(src, 'dev/loop9'), 'b', '7', '9']);
  execFileSync('mkfifo', ['-m', '0640', join(src, 'dev/fifo')]);
  // Times last: creating entries above changed the directories' mtimes.
  execFileSync('find', [src, '-exec', 'touch', '-h', '-d', '@1500000000', '{}', '+']);
  execFileSync('touch', ['-h', '-d', '@1400000000', join(src, 'bin/link')]);
  execFileSync('touch', ['-d', '@1300000000', join(src, 'home/app')]);
  return src;
}

function checkTree(src: string, dst: string, xattrs = true): void {
  expect(readFileSync(join(dst, 'etc/hello.txt'), 'utf8')).toBe('hello world\n');
  expect(readFileSync(join(dst, 'etc/big.bin')).equals(readFileSync(join(src, 'etc/big.bin')))).toBe(true);
  const owned = statSync(join(dst, 'home/app/owned'));
  expect([owned.uid, owned.gid]).toEqual([1000, 1000]);
  const app = statSync(join(dst, 'home/app'));
  expect(app.mode & 0o7777).toBe(0o750);
  expect([app.uid, app.gid]).toEqual([1000, 1000]);
  expect(Math.floor(app.mtimeMs / 1000)).toBe(1_300_000_000); // directory mtimes survive their contents
  const suid = statSync(join(dst, 'bin/suid'));
  expect(suid.mode & 0o7777).toBe(0o4755);
  expect([suid.uid, suid.gid]).toEqual([0, 0]);
  const sgid = statSync(join(dst, 'bin/sgid'));
  expect(sgid.mode & 0o7777).toBe(0o2711); // chmod after chown, or chown would clear setgid
  expect([sgid.uid, sgid.gid]).toEqual([1000, 1000]);
  if (xattrs) {
    // xattrs after chown, or chown would clear the capability
    expect(getxattr(join(dst, 'bin/capped'), 'security.capability')?.toString('hex')).toBe(CAP_HEX);
    expect(getxattr(join(dst, 'etc/hello.txt'), 'user.berth')?.toString()).toBe('xattr-value');
  }
  const link = lstatSync(join(dst, 'bin/link'));
  expect(link.isSymbolicLink()).toBe(true);
  expect(readlinkSync(join(dst, 'bin/link'))).toBe('../etc/hello.txt');
  expect([link.uid, link.gid]).toEqual([1000, 1000]);
  expect(Math.floor(link.mtimeMs / 1000)).toBe(1_400_000_000);
  expect(statSync(join(dst, 'etc/hard.txt')).ino).toBe(statSync(join(dst, 'etc/hello.txt')).ino);
  const nul = statSync(join(dst, 'dev/null'));
  expect(nul.isCharacterDevice()).toBe(true);
  expect(nul.rdev).toBe(statSync('/dev/null').rdev);
  expect(nul.mode & 0o7777).toBe(0o666);
  const loop = statSync(join(dst, 'dev/loop9'));
  expect(loop.isBlockDevice()).toBe(true);
  expect([Math.floor(loop.rdev / 256) & 0xfff, loop.rdev & 0xff]).toEqual([7, 9]);
  expect(lstatSync(join(dst, 'dev/fifo')).isFIFO()).toBe(true);
  expect(lstatSync(join(dst, 'dev/fifo')).mode & 0o7777).toBe(0o640);
  expect(Math.floor(statSync(join(dst, 'etc/hello.txt')).mtimeMs / 1000)).toBe(1_500_000_000);
  expect(Math.floor(statSync(join(dst, 'etc')).mtimeMs / 1000)).toBe(1_500_000_000);
}

describe('applyLayer with GNU tar archives', () => {
  let src: string;
  beforeAll(() => {
    src = buildTree();
  });

  for (const format of ['pax', 'gnu'] as const) {
    it(`applies a gzip ${format} archive with modes, owners, xattrs, links, devices and mtimes`, async () => {
      // GNU format cannot carry xattrs (GNU tar refuses --xattrs with it).
      const xattrArgs = format === 'pax' ? ['--xattrs', '--xattrs-include=*'] : [];
      const raw = execFileSync('tar', [...xattrArgs, `--format=${format}`, '-C', src, '-cf', '-', '.'], {
        maxBuffer: 64 << 20,
      });
      const gz = execFileSync('gzip', ['-c'], { input: raw, maxBuffer: 64 << 20 });
      const dst = freshDir('dst');
      const progress: number[] = [];
      const res = await applyLayer(chunked(gz), dst, { onProgress: (b) => progress.push(b) });
      expect(res.diffId).toBe(sha256(raw));
      expect(res.size).toBe(raw.length);
      expect(progress.at(-1)).toBe(gz.length);
      checkTree(src, dst, format === 'pax');
    });
  }

  it('applies a zstd archive and an uncompressed one read from a Node stream', async () => {
    const raw = execFileSync('tar', ['--xattrs', "--xattrs-include=*", '--format=pax', '-C', src, '-cf', '-', '.'], {
      maxBuffer: 64 << 20,
    });
    const zst = execFileSync('zstd', ['-c', '-q'], { input: raw, maxBuffer: 64 << 20 });
    const a = freshDir('zstd');
    const r1 = await applyLayer(chunked(zst), a);
    const sum = execFileSync('sha256sum', { input: raw }).toString().split(' ')[0];
    expect(r1.diffId).toBe(`sha256:${sum}`);
    checkTree(src, a);
    const b = freshDir('plain');
    const r2 = await applyLayer(Readable.from(chunked(raw, 65536)), b);
    expect(r2.diffId).toBe(`sha256:${sum}`);
    checkTree(src, b);
  });

  it('handles GNU and pax long names and long link targets', async () => {
    const s = freshDir('long');
    const deep = join(s, 'd'.repeat(90), 'e'.repeat(90));
    mkdirSync(deep, { recursive: true });
    const longName = 'f'.repeat(150);
    writeFileSync(join(deep, longName), 'long');
    symlinkSync('t'.repeat(200), join(deep, 'sym'));
    execFileSync('ln', [join(deep, longName), join(deep, 'h'.repeat(120))]);
    for (const format of ['gnu', 'pax']) {
      const raw = execFileSync('tar', [`--format=${format}`, '-C', s, '-cf', '-', '.']);
      const dst = freshDir(`long-${format}`);
      await applyLayer(chunked(raw, 1000), dst);
      const d = join(dst, 'd'.repeat(90), 'e'.repeat(90));
      expect(readFileSync(join(d, longName), 'utf8')).toBe('long');
      expect(readlinkSync(join(d, 'sym'))).toBe('t'.repeat(200));
      expect(statSync(join(d, 'h'.repeat(120))).ino).toBe(statSync(join(d, longName)).ino);
    }
  });

  it('reads pax mtime fractions, uid/gid and SCHILY xattrs from crafted headers', async () => {
    const raw = tar(
      pax({ path: 'paxed/file', mtime: '1700000000.123456789', uid: '70000', gid: '70001', 'SCHILY.xattr.user.k': 'v' }),
      entry({ name: 'ignored-name', data: 'p' }),
    );
    const dst = freshDir('pax');
    await applyLayer(chunked(raw), dst);
    const st = statSync(join(dst, 'paxed/file'), { bigint: true });
    expect(st.mtimeNs).toBe(1_700_000_000_123_456_789n);
    expect([st.uid, st.gid]).toEqual([70000n, 70001n]);
    expect(getxattr(join(dst, 'paxed/file'), 'user.k')?.toString()).toBe('v');
    expect(existsSync(join(dst, 'ignored-name'))).toBe(false);
  });
});

describe('whiteouts', () => {
  const layer = (): Buffer =>
    tar(
      entry({ name: 'dir/', type: '5', mode: 0o755 }),
      entry({ name: 'dir/.wh..wh..opq' }),
      entry({ name: 'dir/new', data: 'new' }),
      entry({ name: '.wh.gone', uid: 0, gid: 0 }),
      entry({ name: 'keep/.wh.tree' }),
    );

  it('records overlayfs whiteouts (0:0 char devices) and opaque directories (trusted.overlay.opaque)', async () => {
    const dst = freshDir('overlay');
    await applyLayer(chunked(layer()), dst);
    const wh = lstatSync(join(dst, 'gone'));
    expect(wh.isCharacterDevice()).toBe(true);
    expect(wh.rdev).toBe(0);
    expect(lstatSync(join(dst, 'keep/tree')).isCharacterDevice()).toBe(true);
    expect(getxattr(join(dst, 'dir'), 'trusted.overlay.opaque')?.toString()).toBe('y');
    expect(readFileSync(join(dst, 'dir/new'), 'utf8')).toBe('new');
    expect(existsSync(join(dst, '.wh.gone'))).toBe(false);
  });

  it('deletes in flat mode, keeping what the layer itself adds to an opaque directory', async () => {
    const dst = freshDir('flat');
    mkdirSync(join(dst, 'dir'));
    writeFileSync(join(dst, 'dir/old'), 'lower');
    writeFileSync(join(dst, 'gone'), 'lower');
    mkdirSync(join(dst, 'keep/tree/sub'), { recursive: true });
    writeFileSync(join(dst, 'keep/tree/sub/f'), 'lower');
    writeFileSync(join(dst, 'keep/other'), 'lower');
    await applyLayer(chunked(layer()), dst, { mode: 'flat' });
    expect(readdirSync(join(dst, 'dir'))).toEqual(['new']);
    expect(existsSync(join(dst, 'gone'))).toBe(false);
    expect(readdirSync(join(dst, 'keep'))).toEqual(['other']);
    expect(getxattr(join(dst, 'dir'), 'trusted.overlay.opaque')).toBeUndefined();
  });
});

describe('hostile archives', () => {
  // Each case gets <case>/snap as the target and <case>/outside as bait next to it.
  async function hostile(raw: Buffer | AsyncIterable<Uint8Array>, opts: { maxBytes?: number } = {}) {
    const base = freshDir('hostile');
    const snap = join(base, 'snap');
    const outside = join(base, 'outside');
    mkdirSync(snap);
    mkdirSync(outside);
    writeFileSync(join(outside, 'victim'), 'original');
    const before = listing(base, snap);
    let error: unknown;
    try {
      await applyLayer(Buffer.isBuffer(raw) ? chunked(raw) : raw, snap, opts);
    } catch (e) {
      error = e;
    }
    expect(readFileSync(join(outside, 'victim'), 'utf8')).toBe('original');
    expect(listing(base, snap)).toEqual(before);
    return { error, snap, outside };
  }

  function listing(base: string, snap: string): string[] {
    const out: string[] = [];
    const walk = (d: string): void => {
      for (const n of readdirSync(d)) {
        const p = join(d, n);
        if (p === snap) continue;
        const st = lstatSync(p);
        out.push(`${p}:${st.mode}:${st.size}:${st.uid}`);
        if (st.isDirectory()) walk(p);
      }
    };
    walk(base);
    // The parent of the case directory too: ../ escapes would land there.
    for (const n of readdirSync(join(base, '..'))) out.push(`..:${n}`);
    return out.sort();
  }

  const expectLayerError = (error: unknown, re: RegExp): void => {
    expect(error).toBeInstanceOf(LayerError);
    expect((error as LayerError).code).toBe('ERR_LAYER');
    expect((error as Error).message).toMatch(re);
  };

  it('refuses ../ paths, absolute paths and pax paths that escape', async () => {
    expectLayerError((await hostile(tar(entry({ name: '../outside/victim', data: 'pwned' })))).error, /"\.\.\/outside\/victim".*escapes/);
    expectLayerError((await hostile(tar(entry({ name: 'a/../../x', data: 'pwned' })))).error, /escapes/);
    expectLayerError((await hostile(tar(entry({ name: '/tmp/berth-abs', data: 'pwned' })))).error, /absolute/);
    expectLayerError(
      (await hostile(tar(pax({ path: '../../pwned' }), entry({ name: 'innocent', data: 'x' })))).error,
      /escapes/,
    );
  });

  it('confines a symlink pointing outside: later entries through it stay in the snapshot', async () => {
    const rel = await hostile(tar(entry({ name: 'evil', type: '2', linkname: '../..' }), entry({ name: 'evil/pwned', data: 'x' })));
    expect(rel.error).toBeUndefined();
    expect(readFileSync(join(rel.snap, 'pwned'), 'utf8')).toBe('x'); // ".." clamps at the snapshot root
    const base = freshDir('abs-target');
    const abs = await hostile(
      tar(entry({ name: 'evil', type: '2', linkname: base }), entry({ name: 'evil/pwned', data: 'x' })),
    );
    expect(existsSync(join(base, 'pwned'))).toBe(false);
    if (abs.error) expectLayerError(abs.error, /"evil\/pwned"/);
  });

  it('replaces a symlink with a later entry of the same name instead of writing through it', async () => {
    const base = freshDir('bait');
    writeFileSync(join(base, 'file'), 'original');
    const { error, snap } = await hostile(
      tar(
        entry({ name: 'link', type: '2', linkname: join(base, 'file') }),
        entry({ name: 'link', data: 'replaced', mode: 0o777 }),
        entry({ name: 'dlink', type: '2', linkname: base }),
        entry({ name: 'dlink/', type: '5', mode: 0o777, uid: 1000 }),
      ),
    );
    expect(error).toBeUndefined();
    expect(readFileSync(join(base, 'file'), 'utf8')).toBe('original');
    expect(statSync(base).mode & 0o777).not.toBe(0o777);
    expect(lstatSync(join(snap, 'link')).isFile()).toBe(true);
    expect(lstatSync(join(snap, 'dlink')).isDirectory()).toBe(true);
  });

  it('refuses hardlinks out of the root and never links a host file through a symlink', async () => {
    expectLayerError(
      (await hostile(tar(entry({ name: 'passwd', type: '1', linkname: '../../etc/passwd' })))).error,
      /"passwd".*hardlink target.*escapes/,
    );
    expectLayerError((await hostile(tar(entry({ name: 'passwd', type: '1', linkname: '/etc/passwd' })))).error, /absolute/);
    const via = await hostile(
      tar(entry({ name: 'etcl', type: '2', linkname: '/etc' }), entry({ name: 'pw', type: '1', linkname: 'etcl/passwd' })),
    );
    expectLayerError(via.error, /"pw"/);
    expect(existsSync(join(via.snap, 'pw'))).toBe(false);
  });

  it('refuses entries that retype the root', async () => {
    expectLayerError((await hostile(tar(entry({ name: '.', data: 'x' })))).error, /root directory/);
    expectLayerError((await hostile(tar(entry({ name: './', type: '2', linkname: '/etc' })))).error, /root directory/);
    expectLayerError((await hostile(tar(entry({ name: '/', type: '0' })))).error, /absolute/);
    expectLayerError((await hostile(tar(entry({ name: 'a/..', type: '1', linkname: 'x' })))).error, /root directory/);
    // "./" as a directory is normal (tar -C dir .) and sets the root's metadata.
    const ok = await hostile(tar(entry({ name: './', type: '5', mode: 0o755 })));
    expect(ok.error).toBeUndefined();
  });

  it('enforces maxBytes on declared sizes and on decompressed bytes (gzip bomb)', async () => {
    const huge = await hostile(tar(entry({ name: 'huge', size: 2 ** 40 })), { maxBytes: 1 << 30 });
    expectLayerError(huge.error, /"huge".*size limit/);
    // Each entry is under the cap; together they are not.
    const zeros = Buffer.alloc(1 << 20);
    const bomb = gzipSync(tar(...Array.from({ length: 64 }, (_, i) => entry({ name: `zeros${i}`, data: zeros }))));
    expect(bomb.length).toBeLessThan(1 << 20);
    const b = await hostile(bomb, { maxBytes: 8 << 20 });
    expectLayerError(b.error, /"zeros\d+".*size limit/);
    // Zeros after the end-of-archive marker are no entry but still decompressed bytes.
    const tail = await hostile(gzipSync(Buffer.alloc(64 << 20)), { maxBytes: 8 << 20 });
    expectLayerError(tail.error, /decompressed size exceeds the limit/);
  });

  it('refuses truncated archives, bad checksums, garbage and corrupt compression', async () => {
    const good = tar(entry({ name: 'file', data: Buffer.alloc(5000, 1) }));
    expectLayerError((await hostile(good.subarray(0, 2000))).error, /"file".*truncated/);
    expectLayerError((await hostile(good.subarray(0, 300))).error, /truncated/);
    const bad = Buffer.from(good);
    bad[10] = 0x41;
    expectLayerError((await hostile(bad)).error, /checksum/);
    expectLayerError((await hostile(Buffer.from('this is not a tar archive at all'.repeat(20)))).error, /checksum|truncated/);
    const gz = gzipSync(good);
    expectLayerError((await hostile(gz.subarray(0, gz.length - 20))).error, /decompress|truncated/);
    const zst = execFileSync('zstd', ['-c', '-q'], { input: good });
    expectLayerError((await hostile(zst.subarray(0, zst.length - 10))).error, /zstd|truncated/);
  });

  it('stops on abort', async () => {
    const ac = new AbortController();
    ac.abort();
    const dst = freshDir('abort');
    await expect(applyLayer(chunked(tar()), dst, { signal: ac.signal })).rejects.toMatchObject({ code: 'ERR_ABORTED' });
  });
});

describe('xattrs from the archive (review)', () => {
  // A pax archive made by Python's tarfile: xattr records on one file, repeated, and overlayfs-private ones.
  const paxArchive = (records: Record<string, string>): Buffer =>
    execFileSync('python3', ['-c', `
import io, sys, tarfile, json
records = json.loads(sys.argv[1])
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode='w', format=tarfile.PAX_FORMAT) as t:
    info = tarfile.TarInfo('file')
    info.size = 2
    info.pax_headers = records
    t.addfile(info, io.BytesIO(b'hi'))
sys.stdout.buffer.write(buf.getvalue())
`, JSON.stringify(records)]);

  it('drops trusted.* xattrs (overlayfs keeps its private metadata there) and keeps user.* ones', async () => {
    const dst = freshDir('xattr-trusted');
    await applyLayer(chunked(paxArchive({ 'SCHILY.xattr.trusted.overlay.redirect': '/etc', 'SCHILY.xattr.user.note': 'kept' })), dst);
    expect(getxattr(join(dst, 'file'), 'trusted.overlay.redirect')).toBeUndefined();
    expect(getxattr(join(dst, 'file'), 'user.note')?.toString()).toBe('kept');
  });

  it('refuses an xattr value beyond the kernel\'s 64 KiB', async () => {
    const dst = freshDir('xattr-big');
    await expect(applyLayer(chunked(paxArchive({ 'SCHILY.xattr.user.big': 'x'.repeat(70 * 1024) })), dst)).rejects.toThrow(/too large/);
  });
});

describe('end of archive (review)', () => {
  it('refuses entries hidden after a single zero block, as Go\'s archive/tar does', async () => {
    const real = execFileSync('python3', ['-c', `
import io, sys, tarfile
def one(name):
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode='w', format=tarfile.USTAR_FORMAT) as t:
        i = tarfile.TarInfo(name); i.size = 2; t.addfile(i, io.BytesIO(b'hi'))
    return b.getvalue()[:1024]  # header + data block, without the end marker
sys.stdout.buffer.write(one('visible') + bytes(512) + one('hidden') + bytes(1024))
`]);
    const dst = freshDir('hidden-after-zero');
    await expect(applyLayer(chunked(real), dst)).rejects.toThrow(/end-of-archive marker must be two zero blocks/);
  });
});

describe('gzip inflaters (ISA-L from Debian\'s libisal2, and zlib)', () => {
  const saved = process.env.BERTH_GZIP;
  afterAll(() => {
    if (saved === undefined) delete process.env.BERTH_GZIP;
    else process.env.BERTH_GZIP = saved;
  });
  it('ISA-L is available (test/prepare.sh installs libisal-dev), so the fast path is what the suite exercises', () => {
    expect(native.isalAvailable()).toBe(true);
    expect(native.inflater('sha256').engine).toBe('isa-l');
    expect(native.inflater('sha256', 'zlib').engine).toBe('zlib');
  });
  const expectLayerError = (error: unknown, re: RegExp): void => {
    expect(error).toBeInstanceOf(LayerError);
    expect((error as Error).message).toMatch(re);
  };
  const failure = async (gz: Buffer): Promise<unknown> => {
    try {
      await applyLayer(chunked(gz), freshDir('gzip-bad'));
    } catch (e) {
      return e;
    }
    return undefined;
  };
  for (const engine of ['isa-l', 'zlib'] as const) {
    const use = (): void => {
      if (engine === 'zlib') process.env.BERTH_GZIP = 'zlib';
      else delete process.env.BERTH_GZIP;
    };
    it(`${engine}: multi-member gzip gives the whole tar; a bad CRC, a cut stream or trailing garbage is refused`, async () => {
      use();
      const a = tar(entry({ name: 'a', data: Buffer.alloc(70_000, 7) }));
      const b = tar(entry({ name: 'b', data: Buffer.from('second member\n') }));
      // Two members: the first holds entry "a" (without end blocks), the second entry "b" and the end blocks.
      const raw = Buffer.concat([a.subarray(0, a.length - 1024), b]);
      const members = Buffer.concat([gzipSync(raw.subarray(0, 40_000)), gzipSync(raw.subarray(40_000))]);
      const dst = freshDir(`members-${engine}`);
      const res = await applyLayer(chunked(members, 4096), dst);
      expect(res.diffId).toBe(sha256(raw));
      expect(readFileSync(join(dst, 'a')).equals(Buffer.alloc(70_000, 7))).toBe(true);
      expect(readFileSync(join(dst, 'b'), 'utf8')).toBe('second member\n');

      const badCrc = Buffer.from(gzipSync(raw));
      badCrc[badCrc.length - 6]! ^= 0xff;
      expectLayerError(await failure(badCrc), /cannot decompress/);
      const cut = gzipSync(raw);
      expectLayerError(await failure(cut.subarray(0, cut.length - 12)), /cannot decompress.*truncated/);
      // Go's gzip reader (Docker) refuses bytes after the last member that are not another member.
      expectLayerError(await failure(Buffer.concat([gzipSync(raw), Buffer.from('garbage after the stream')])), /cannot decompress/);
      const flipped = Buffer.from(gzipSync(raw));
      flipped[flipped.length >> 1]! ^= 0x55;
      expectLayerError(await failure(flipped), /cannot decompress|checksum|truncated/);
    });

    it(`${engine}: a highly compressed layer comes out whole in bounded steps, with the right DiffID`, async () => {
      use();
      // 48 MiB of zeros compress ~1000:1: one 1 MiB input step yields far more than one output step may hold.
      const big = Buffer.alloc(48 << 20);
      const raw = tar(entry({ name: 'zeros', data: big }), entry({ name: 'after', data: Buffer.from('x') }));
      const dst = freshDir(`bomb-${engine}`);
      const res = await applyLayer(chunked(gzipSync(raw), 1 << 20), dst);
      expect(res.diffId).toBe(sha256(raw));
      expect(res.size).toBe(raw.length);
      expect(statSync(join(dst, 'zeros')).size).toBe(48 << 20);
      expect(readFileSync(join(dst, 'after'), 'utf8')).toBe('x');
    });
  }
});

describe('file names are bytes', () => {
  it('keeps UTF-8 and non-UTF-8 names, link targets and whiteouts byte for byte (GNU tar, gnu and pax formats)', async () => {
    const src = freshDir('names-src');
    const path = (...parts: (string | Buffer)[]): Buffer =>
      Buffer.concat(parts.flatMap((p, i) => [...(i ? [Buffer.from('/')] : []), Buffer.isBuffer(p) ? p : Buffer.from(p)]));
    const latin1Name = Buffer.from([0x6c, 0x61, 0x74, 0x69, 0x6e, 0x2d, 0xe9, 0xff, 0x2e, 0x74, 0x78, 0x74]); // "latin-\xe9\xff.txt"
    const utf8Name = 'café-ü-日本.txt';
    mkdirSync(path(src, 'd'));
    writeFileSync(path(src, 'd', utf8Name), 'utf8\n');
    writeFileSync(path(src, 'd', latin1Name), 'latin1\n');
    symlinkSync(latin1Name, path(src, 'd', 'link-to-latin1'));
    linkSync(path(src, 'd', latin1Name), path(src, 'd', 'hard'));
    writeFileSync(path(src, 'd', Buffer.concat([Buffer.from('.wh.'), latin1Name, Buffer.from('-gone')])), '');
    for (const format of ['gnu', 'pax']) {
      const raw = execFileSync('tar', [`--format=${format}`, '-C', src, '-cf', '-', '.'], { maxBuffer: 16 << 20 });
      const dst = freshDir(`names-${format}`);
      await applyLayer([raw], dst);
      const names = readdirSync(path(dst, 'd'), { encoding: 'buffer' }).map((b) => b.toString('hex')).sort();
      const expected = [
        Buffer.from(utf8Name),
        latin1Name,
        Buffer.from('link-to-latin1'),
        Buffer.from('hard'),
        Buffer.concat([latin1Name, Buffer.from('-gone')]), // recorded as an overlay whiteout
      ].map((b) => b.toString('hex')).sort();
      expect(names).toEqual(expected);
      expect(readFileSync(path(dst, 'd', utf8Name), 'utf8')).toBe('utf8\n');
      expect(readFileSync(path(dst, 'd', latin1Name), 'utf8')).toBe('latin1\n');
      expect(readlinkSync(path(dst, 'd', 'link-to-latin1'), { encoding: 'buffer' }).equals(latin1Name)).toBe(true);
      expect(statSync(path(dst, 'd', 'hard')).ino).toBe(statSync(path(dst, 'd', latin1Name)).ino);
      const wh = lstatSync(path(dst, 'd', Buffer.concat([latin1Name, Buffer.from('-gone')])));
      expect(wh.isCharacterDevice() && wh.rdev === 0).toBe(true);
    }
  });

  it('names a non-UTF-8 entry readably in errors', async () => {
    const bad = tar(entry({ name: '', rawName: Buffer.from([0x61, 0xe9, 0x2f, 0x2e, 0x2e, 0x2f, 0x2e, 0x2e, 0x2f, 0x78]), data: 'x' }));
    const err = await applyLayer([bad], freshDir('names-err')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LayerError);
    expect((err as LayerError).entry).toBe('a\ufffd/../../x');
  });
});
