// Regression tests for the runtime CVE lessons in DESIGN.md that the core runtime owns.
import {
  closeSync, constants, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync, writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Container, ContainerStartError } from '../lib/index.js';
import { tempRoot } from './helpers/env.js';

const { root, rootfs: BUSYBOX, cleanup } = tempRoot('cve');
afterAll(cleanup);
const base = { root, rootfs: BUSYBOX };

describe('host binaries are never reachable (CVE-2019-5736)', () => {
  it('the init before execve is a sealed in-memory copy of berth-init, not a host file', async () => {
    await using c = await Container.create({ ...base, cmd: ['true'] });
    const exe = readlinkSync(`/proc/${c.pid}/exe`);
    expect(exe).toMatch(/^\/memfd:berth-init/);
    // Hold it read-only (as an attacker in the container would try), let the init exec away, then try to write
    // through the held file: the memfd is sealed, so not even root can change it.
    const held = openSync(`/proc/${c.pid}/exe`, constants.O_RDONLY);
    try {
      await c.start();
      await c.wait();
      const rw = openSync(`/proc/self/fd/${held}`, constants.O_RDWR);
      try {
        expect(() => writeSync(rw, 'PWNED')).toThrow(expect.objectContaining({ code: 'EPERM' }));
      } finally {
        closeSync(rw);
      }
    } finally {
      closeSync(held);
    }
  });

  it('executing /proc/self/exe from the container never runs Node', async () => {
    const r = await Container.run({ ...base, cmd: ['/proc/self/exe', '-e', 'console.log(process.version)'] }).catch((e) => e);
    const out = r instanceof Error ? r.message : r.stdout + r.stderr;
    expect(out).not.toContain(process.version);
  });
});

describe('no fd of the Node process reaches the init (CVE-2024-21626)', () => {
  it('a created init holds only stdio and its two sync pipes', async () => {
    await using c = await Container.create({ ...base, cmd: ['true'], resources: { memory: '32m' } });
    const fds = readdirSync(`/proc/${c.pid}/fd`).map(Number).sort((a, b) => a - b);
    expect(fds).toEqual([0, 1, 2, 4, 5]);
    const targets = fds.filter((fd) => fd > 2).map((fd) => readlinkSync(`/proc/${c.pid}/fd/${fd}`));
    for (const t of targets) expect(t).toMatch(/^pipe:/);
  });

  it('paths through /proc/self/fd lead nowhere', async () => {
    const r = await Container.run({ ...base, cmd: ['sh', '-c', 'ls /proc/self/fd/; ls /proc/1/fd/; cat /proc/self/fd/18/cgroup.procs 2>&1 | head -1'] });
    expect(r.stdout).not.toMatch(/^\d{2,}$/m);
  });
});

describe('sessions and limits', () => {
  it('puts the container in its own session with no controlling terminal', async () => {
    const r = await Container.run({ ...base, cmd: ['sh', '-c', 'cut -d" " -f6,7 /proc/$$/stat'] });
    expect(r.stdout.trim()).toBe('1 0'); // session id 1 (its own init), tty_nr 0
    const hostTty = readFileSync('/proc/self/stat', 'utf8');
    expect(hostTty).toBeTruthy();
  });

  it('starts with a very low open-files limit', async () => {
    const r = await Container.run({ ...base, cmd: ['sh', '-c', 'ulimit -n'], ulimits: [{ name: 'nofile', soft: 16, hard: 16 }] });
    expect(r.stdout.trim()).toBe('16');
  });
});

describe('the working directory stays inside the container (CVE-2024-21626)', () => {
  const spec = (cwd: string, rootPath = BUSYBOX) => ({
    ociVersion: '1.0.2',
    process: { user: { uid: 0, gid: 0 }, args: ['sh', '-c', 'pwd; ls -d ../../../* | head -3'], env: ['PATH=/bin'], cwd },
    root: { path: rootPath },
    mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }],
    linux: { namespaces: [{ type: 'pid' }, { type: 'mount' }] },
  });

  it('refuses a cwd that names one of the init\'s fds', async () => {
    for (const fd of [3, 4, 5, 6]) {
      const err = await Container.createFromSpec(spec(`/proc/self/fd/${fd}`), { root }).then(async (c) => {
        try {
          await c.start();
          return (await c.wait()).exitCode;
        } finally {
          await c.remove({ force: true });
        }
      }, (e: unknown) => e).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ContainerStartError);
      expect((err as Error).message).toMatch(/chdir/);
    }
  });

  it('a symlinked workdir that climbs out resolves inside the root', async () => {
    const { cpSync, mkdtempSync, rmSync, symlinkSync } = await import('node:fs');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(root, '..', 'cwd-'));
    try {
      const rootfs = join(dir, 'rootfs');
      cpSync(BUSYBOX, rootfs, { recursive: true, verbatimSymlinks: true });
      symlinkSync('../../../../../../../', join(rootfs, 'up'));
      const r = await Container.run({ root, rootfs, workdir: '/up', cmd: ['sh', '-c', 'pwd -P; ls /bin/busybox'] });
      expect(r.exitCode).toBe(0);
      expect(r.stdout.split('\n')[0]).toBe('/');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('masking only ever uses a real /dev/null (CVE-2025-31133)', () => {
  it('refuses to mask with a /dev/null that is a file or a symlink', async () => {
    const { cpSync, mkdtempSync, rmSync, symlinkSync, writeFileSync, mkdirSync } = await import('node:fs');
    const { join } = await import('node:path');
    for (const fake of ['file', 'symlink'] as const) {
      const dir = mkdtempSync(join(root, '..', 'devnull-'));
      try {
        const rootfs = join(dir, 'rootfs');
        cpSync(BUSYBOX, rootfs, { recursive: true, verbatimSymlinks: true });
        mkdirSync(join(rootfs, 'dev'), { recursive: true });
        if (fake === 'file') writeFileSync(join(rootfs, 'dev/null'), 'not a device');
        else symlinkSync('/proc/sys/kernel/core_pattern', join(rootfs, 'dev/null'));
        // No /dev tmpfs: the rootfs' own /dev/null is what masking would use.
        const err = await Container.createFromSpec(
          {
            ociVersion: '1.0.2',
            process: { user: { uid: 0, gid: 0 }, args: ['true'], env: ['PATH=/bin'], cwd: '/' },
            root: { path: rootfs },
            mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }],
            linux: { namespaces: [{ type: 'pid' }, { type: 'mount' }], maskedPaths: ['/proc/timer_list'] },
          },
          { root },
        ).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ContainerStartError);
        expect((err as Error).message).toMatch(/mask path.*ENODEV/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });
});

describe('terminals (CVE-2025-52565: never follow /dev/console; nothing in the container picks the pty)', () => {
  it('an exec -t opens the container devpts\'s own ptmx, whatever the container put at /dev/ptmx', async () => {
    // The container's root replaces /dev/ptmx with a FIFO: following it would hang the exec forever.
    await using c = await Container.create({ ...base, cmd: ['sh', '-c', 'rm /dev/ptmx && mkfifo /dev/ptmx && echo swapped > /dev/swapped; sleep 30'] });
    await c.start();
    const swapped = await c.exec({ cmd: ['sh', '-c', 'until [ -e /dev/swapped ]; do sleep 0.05; done; ls -l /dev/ptmx'] });
    let listing = '';
    swapped.stdout!.on('data', (d) => (listing += d));
    await swapped.wait();
    expect(listing).toMatch(/^p/); // a FIFO now
    const p = await c.exec({ cmd: ['tty'], tty: true });
    let out = '';
    p.stdout!.on('data', (d) => (out += d));
    expect((await p.wait()).exitCode).toBe(0);
    for (let i = 0; i < 40 && !out.includes('\n'); i++) await new Promise((r) => setTimeout(r, 25));
    expect(out).toBe('/dev/pts/0\r\n');
  });

  it('refuses a /dev/console that is a symlink instead of binding the terminal through it', async () => {
    const dev = mkdtempSync(join(tmpdir(), 'berth-test-cve-dev-'));
    const target = join(dev, 'target');
    try {
      writeFileSync(target, 'untouched');
      mkdirSync(join(dev, 'pts'));
      symlinkSync('/dev/target', join(dev, 'console'));
      // A spec whose /dev is a directory of the caller's making (bound where the tmpfs would be), with the devpts
      // mounted inside it as usual.
      const template = await Container.create({ ...base, cmd: ['true'] });
      const spec = structuredClone((await template.inspect()).spec);
      await template.remove();
      spec.process.terminal = true;
      spec.mounts = spec.mounts!.map((m) => (m.destination === '/dev' ? { destination: '/dev', type: 'bind', source: dev, options: ['rbind'] } : m));
      const err = await Container.createFromSpec(spec, { root }).then(async (c) => {
        await c.remove({ force: true });
        return undefined;
      }, (e: unknown) => e);
      expect(err).toBeInstanceOf(ContainerStartError);
      expect((err as ContainerStartError).step).toBe('set up the console (pty)');
      expect((err as ContainerStartError).errno).toBe('ELOOP');
      expect(readFileSync(target, 'utf8')).toBe('untouched');
      expect(readlinkSync(join(dev, 'console'))).toBe('/dev/target');
    } finally {
      rmSync(dev, { recursive: true, force: true });
    }
  });
});
