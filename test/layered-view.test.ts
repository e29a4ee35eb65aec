// The merged view of image layers that User resolution reads /etc/passwd through: layers made by GNU tar and
// unpacked by applyLayer (overlay mode), so whiteouts and opaque directories are the real overlayfs markers.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { applyLayer } from '../lib/image/layer.js';
import { layeredReader } from '../lib/container/layered-view.js';

const base = mkdtempSync(join(tmpdir(), 'berth-test-layered-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));
let n = 0;

/** A layer from a description: `'text'` is a file, `{ link }` a symlink, `{}` an empty directory. */
async function layer(files: Record<string, string | { link: string } | Record<string, never>>): Promise<string> {
  const src = join(base, `src${++n}`);
  mkdirSync(src);
  for (const [path, what] of Object.entries(files)) {
    const p = join(src, path);
    mkdirSync(dirname(p), { recursive: true });
    if (typeof what === 'string') writeFileSync(p, what);
    else if ('link' in what) symlinkSync(what.link as string, p);
    else mkdirSync(p, { recursive: true });
  }
  const snap = join(base, `snap${n}`);
  mkdirSync(snap);
  const tarball = execFileSync('tar', ['-C', src, '-cf', '-', '.'], { maxBuffer: 16 << 20 });
  await applyLayer([tarball], snap);
  return snap;
}

describe('layeredReader (overlayfs rules over snapshot directories)', () => {
  it('reads the top-most copy and skips layers without the file', async () => {
    const l0 = await layer({ 'etc/passwd': 'lower\n', 'etc/group': 'g-lower\n' });
    const l1 = await layer({ 'etc/passwd': 'upper\n' });
    const l2 = await layer({ 'usr/bin/x': 'x' });
    const read = layeredReader([l2, l1, l0]);
    expect(read('/etc/passwd')).toBe('upper\n');
    expect(read('/etc/group')).toBe('g-lower\n');
    expect(read('/etc/missing')).toBeUndefined();
    expect(read('/etc')).toBeUndefined(); // a directory is not a file to parse
  });

  it('stops at whiteouts of the file and of a parent directory', async () => {
    const l0 = await layer({ 'etc/passwd': 'lower\n', 'etc/group': 'g\n' });
    const l1 = await layer({ 'etc/.wh.passwd': '' });
    expect(layeredReader([l1, l0])('/etc/passwd')).toBeUndefined();
    expect(layeredReader([l1, l0])('/etc/group')).toBe('g\n');
    const l2 = await layer({ '.wh.etc': '' });
    expect(layeredReader([l2, l1, l0])('/etc/group')).toBeUndefined();
    // A directory re-created above its whiteout starts empty.
    const l3 = await layer({ 'etc/group': 'new\n' });
    expect(layeredReader([l3, l2, l1, l0])('/etc/group')).toBe('new\n');
    expect(layeredReader([l3, l2, l1, l0])('/etc/passwd')).toBeUndefined();
  });

  it('hides lower contents of an opaque directory', async () => {
    const l0 = await layer({ 'etc/passwd': 'lower\n', 'etc/group': 'g-lower\n' });
    const l1 = await layer({ 'etc/.wh..wh..opq': '', 'etc/group': 'g-upper\n' });
    const read = layeredReader([l1, l0]);
    expect(read('/etc/passwd')).toBeUndefined();
    expect(read('/etc/group')).toBe('g-upper\n');
  });

  it('hides a lower directory replaced by a file', async () => {
    const l0 = await layer({ 'etc/passwd': 'lower\n' });
    const l1 = await layer({ etc: 'now a file\n' });
    expect(layeredReader([l1, l0])('/etc/passwd')).toBeUndefined();
    expect(layeredReader([l1, l0])('/etc')).toBe('now a file\n');
  });

  it('follows symlinks through the merged view, confined to the root', async () => {
    const l0 = await layer({ 'private/etc/passwd': 'via link\n', 'secret': 'inside\n' });
    const l1 = await layer({ etc: { link: '/private/etc' }, 'a/b': { link: '../../../../../../secret' } });
    const l2 = await layer({ 'loop/x': { link: 'y' }, 'loop/y': { link: 'x' }, 'rel': { link: 'private/etc' } });
    const read = layeredReader([l2, l1, l0]);
    expect(read('/etc/passwd')).toBe('via link\n');
    expect(read('/rel/passwd')).toBe('via link\n');
    expect(read('/a/b')).toBe('inside\n'); // ".." stops at the root: never the host's /secret
    expect(read('/loop/x')).toBeUndefined();
    expect(read('/../../etc/passwd')).toBe('via link\n');
  });
});
