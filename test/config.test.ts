// What the options configure inside the container: user and groups, env, workdir, mounts, read-only root,
// ulimits, sysctls, stdio streams, and raw OCI specs.
import { mkdtempSync, readFileSync, rmSync, writeFileSync, statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Container, InvalidOptionsError } from '../lib/index.js';
import { tempRoot } from './helpers/env.js';

const { root, rootfs: BUSYBOX, cleanup } = tempRoot('config');
afterAll(cleanup);
const base = { root, rootfs: BUSYBOX };
const run = (cmd: string, extra: Record<string, unknown> = {}) => Container.run({ ...base, cmd: ['sh', '-c', cmd], ...extra });

describe('user, groups, env, workdir', () => {
  it('resolves a user name from the image\'s /etc/passwd with its groups from /etc/group', async () => {
    const r = await run('id', { user: 'app' });
    expect(r.stdout.trim()).toBe('uid=1000(app) gid=1000(app) groups=29(audio),50(staff)');
  });

  it('accepts uid:gid, name:group and extra groups', async () => {
    expect((await run('id -u; id -g; id -G', { user: '4242:4343' })).stdout.trim().split('\n')).toEqual(['4242', '4343', '4343']);
    expect((await run('id -un; id -gn', { user: 'app:staff' })).stdout.trim().split('\n')).toEqual(['app', 'staff']);
    expect((await run('id -G', { user: 'daemon', groupAdd: ['audio', '777'] })).stdout.trim()).toBe('1 29 50 777');
  });

  it('fails clearly for a user or group the image does not have', async () => {
    await expect(run('true', { user: 'ghost' })).rejects.toThrow(/unable to find user ghost/);
    await expect(run('true', { user: 'app:ghosts' })).rejects.toThrow(/unable to find group ghosts/);
  });

  it('drops privileges for a non-root user: no capabilities left', async () => {
    const r = await run('grep -E "^Cap(Eff|Prm)" /proc/self/status; touch /etc/x 2>/dev/null || echo denied', { user: 'app' });
    expect(r.stdout).toMatch(/CapPrm:\s+0000000000000000/);
    expect(r.stdout).toMatch(/CapEff:\s+0000000000000000/);
    expect(r.stdout).toContain('denied');
  });

  it('sets PATH and HOME as Docker does and passes the environment', async () => {
    const r = await run('echo $PATH; echo $HOME; echo $GREETING', { user: 'app', env: { GREETING: 'hello world' } });
    expect(r.stdout.trim().split('\n')).toEqual([
      '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      '/home/app',
      'hello world',
    ]);
    const list = await run('env | sort', { env: ['A=1', 'PATH=/bin'] });
    expect(list.stdout).toContain('A=1\n');
    expect(list.stdout).toContain('PATH=/bin\n');
  });

  it('runs in the working directory, creating it if missing', async () => {
    const r = await run('pwd; stat -c "%a %u" .', { workdir: '/srv/app/data' });
    expect(r.stdout.trim().split('\n')).toEqual(['/srv/app/data', '755 0']);
  });
});

describe('filesystem', () => {
  it('binds host directories (read-write and read-only) and mounts tmpfs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-bind-'));
    try {
      writeFileSync(join(dir, 'in.txt'), 'from host\n');
      const r = await run(
        'cat /data/in.txt; echo out > /data/out.txt; cat /ro/in.txt; echo x > /ro/y 2>/dev/null || echo ro-denied; ' +
          'echo t > /scratch/t && grep " /scratch " /proc/self/mountinfo | cut -d" " -f5,6',
        {
          mounts: [
            { type: 'bind', source: dir, target: '/data' },
            { type: 'bind', source: dir, target: '/ro', readonly: true },
            { type: 'tmpfs', target: '/scratch', size: '1m', mode: 0o1777 },
          ],
        },
      );
      expect(r.stdout.trim().split('\n')).toEqual(['from host', 'from host', 'ro-denied', '/scratch rw,nosuid,nodev,noexec,relatime']);
      expect(readFileSync(join(dir, 'out.txt'), 'utf8')).toBe('out\n');
      expect(existsSync(join(dir, 'y'))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('binds a single file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-bindfile-'));
    try {
      writeFileSync(join(dir, 'conf'), 'key=value\n');
      const r = await run('cat /etc/app.conf', { mounts: [{ type: 'bind', source: join(dir, 'conf'), target: '/etc/app.conf', readonly: true }] });
      expect(r.stdout).toBe('key=value\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('makes the root filesystem read-only with readonlyRootfs', async () => {
    const r = await run('touch /x 2>/dev/null && echo wrote || echo ro; echo t > /dev/shm/ok && echo shm-ok', { readonlyRootfs: true });
    expect(r.stdout.trim().split('\n')).toEqual(['ro', 'shm-ok']);
  });

  it('resolves mount targets through the image\'s symlinks inside the rootfs, never outside it', async () => {
    // /evil points at an absolute path that exists on the host but not in the image; /inside points at /tmp,
    // which exists in both. Resolution must happen in the rootfs: nothing may appear on the host.
    const rootfs = mkdtempSync(join(tmpdir(), 'berth-evil-'));
    const outside = mkdtempSync(join(tmpdir(), 'berth-outside-'));
    try {
      const { cpSync, symlinkSync } = await import('node:fs');
      cpSync(BUSYBOX, rootfs, { recursive: true, verbatimSymlinks: true });
      symlinkSync(outside, join(rootfs, 'evil'));
      symlinkSync('/tmp', join(rootfs, 'inside'));
      const bad = await Container.run({ root, rootfs, cmd: ['true'], mounts: [{ type: 'tmpfs', target: '/evil/target' }] }).catch((e) => e);
      expect(bad.message).toBe('container init failed: resolve mount target /evil/target: ENOENT (no such file or directory)');
      expect(existsSync(join(outside, 'target'))).toBe(false);
      const good = await Container.run({
        root, rootfs, cmd: ['sh', '-c', 'grep -c " /tmp/target " /proc/self/mountinfo'],
        mounts: [{ type: 'tmpfs', target: '/inside/target' }],
      });
      expect(good.stdout.trim()).toBe('1');
      expect(statSync(join(rootfs, 'tmp', 'target')).isDirectory()).toBe(true);
      expect(existsSync('/tmp/target')).toBe(false);
    } finally {
      rmSync(rootfs, { recursive: true, force: true });
      rmSync(outside, { recursive: true, force: true });
    }
  });
});

describe('limits and kernel parameters', () => {
  it('sets ulimits', async () => {
    const r = await run('ulimit -n; ulimit -Hn', { ulimits: [{ name: 'nofile', soft: 512, hard: 1024 }] });
    expect(r.stdout.trim().split('\n')).toEqual(['512', '1024']);
  });

  it('sets namespaced sysctls and refuses host-wide ones', async () => {
    const r = await run('cat /proc/sys/net/ipv4/ip_unprivileged_port_start', { sysctls: { 'net.ipv4.ip_unprivileged_port_start': '1024' } });
    expect(r.stdout.trim()).toBe('1024');
    await expect(run('true', { sysctls: { 'kernel.panic': '1' } })).rejects.toBeInstanceOf(InvalidOptionsError);
  });

  it('sets no_new_privs when asked', async () => {
    expect((await run('grep NoNewPrivs /proc/self/status')).stdout).toMatch(/NoNewPrivs:\s+0/);
    expect((await run('grep NoNewPrivs /proc/self/status', { noNewPrivileges: true })).stdout).toMatch(/NoNewPrivs:\s+1/);
  });
});

describe('stdio', () => {
  it('streams stdin to the container and stdout/stderr back', async () => {
    await using c = await Container.create({ ...base, cmd: ['sh', '-c', 'tr a-z A-Z; echo err >&2'], stdin: 'pipe' });
    await c.start();
    let out = '';
    let err = '';
    c.stdout!.on('data', (d) => (out += d));
    c.stderr!.on('data', (d) => (err += d));
    c.stdin!.end('hello container\n');
    expect((await c.wait()).exitCode).toBe(0);
    await new Promise((r) => setTimeout(r, 20));
    expect(out).toBe('HELLO CONTAINER\n');
    expect(err).toBe('err\n');
  });

  it('writes to a caller-provided file descriptor', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-fd-'));
    const { openSync, closeSync } = await import('node:fs');
    const fd = openSync(join(dir, 'log'), 'w');
    try {
      await Container.run({ ...base, cmd: ['echo', 'to a file'], stdout: fd });
      expect(readFileSync(join(dir, 'log'), 'utf8')).toBe('to a file\n');
    } finally {
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('raw OCI runtime spec', () => {
  it('runs a config.json as runc would', async () => {
    const spec = {
      ociVersion: '1.0.2',
      process: { user: { uid: 0, gid: 0 }, args: ['sh', '-c', 'hostname; id -u; echo $FOO'], env: ['PATH=/bin', 'FOO=bar'], cwd: '/' },
      root: { path: BUSYBOX, readonly: true },
      hostname: 'oci-box',
      mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }],
      linux: { namespaces: [{ type: 'pid' }, { type: 'mount' }, { type: 'uts' }, { type: 'ipc' }, { type: 'network' }] },
    };
    await using c = await Container.createFromSpec(spec, { root });
    await c.start();
    let out = '';
    c.stdout!.on('data', (d) => (out += d));
    expect((await c.wait()).exitCode).toBe(0);
    await new Promise((r) => setTimeout(r, 20));
    expect(out).toBe('oci-box\n0\nbar\n');
  });

  it('rejects an invalid spec naming the field', async () => {
    const err = await Container.createFromSpec({ ociVersion: '1.0.2', process: { args: [] }, root: { path: BUSYBOX } }, { root }).catch((e) => e);
    expect(err).toBeInstanceOf(InvalidOptionsError);
    expect(err.message).toMatch(/process\.(args|user|cwd)/);
  });
});

describe('Docker compatibility details', () => {
  it('exports HOSTNAME like Docker', async () => {
    const r = await run('echo $HOSTNAME', { hostname: 'web-1' });
    expect(r.stdout.trim()).toBe('web-1');
  });

  it('accepts atime options on bind mounts (raw OCI spec)', async () => {
    const spec = {
      ociVersion: '1.0.2',
      process: { user: { uid: 0, gid: 0 }, args: ['sh', '-c', 'grep " /b " /proc/self/mountinfo | cut -d" " -f6'], cwd: '/' },
      root: { path: BUSYBOX },
      mounts: [
        { destination: '/proc', type: 'proc', source: 'proc' },
        { destination: '/b', type: 'bind', source: '/var/tmp', options: ['rbind', 'ro', 'noatime'] },
      ],
      linux: { namespaces: [{ type: 'pid' }, { type: 'mount' }] },
    };
    await using c = await Container.createFromSpec(spec, { root });
    let out = '';
    c.stdout!.on('data', (d) => (out += d));
    await c.start();
    expect((await c.wait()).exitCode).toBe(0);
    await new Promise((r) => setTimeout(r, 20));
    expect(out.trim()).toBe('ro,noatime');
  });

  it('refuses network sysctls when the network namespace is not the container\'s own', async () => {
    await expect(run('true', { namespaces: { network: 'host' }, sysctls: { 'net.ipv4.ip_forward': '1' } })).rejects.toBeInstanceOf(InvalidOptionsError);
  });

  it('reads the rootfs\' /etc/passwd without following a FIFO or a symlink out', async () => {
    const { mkdtempSync: mk, cpSync, rmSync: rm, unlinkSync, symlinkSync } = await import('node:fs');
    const { execFileSync } = await import('node:child_process');
    const dir = mk(join(tmpdir(), 'berth-fifo-'));
    try {
      cpSync(BUSYBOX, dir, { recursive: true, verbatimSymlinks: true });
      unlinkSync(join(dir, 'etc/passwd'));
      execFileSync('mkfifo', [join(dir, 'etc/passwd')]);
      await expect(Container.run({ root, rootfs: dir, cmd: ['true'], user: 'app' })).rejects.toThrow(/unable to find user app/);
      unlinkSync(join(dir, 'etc/passwd'));
      symlinkSync('/etc/passwd', join(dir, 'etc/passwd')); // resolves inside the rootfs: to itself, a loop
      await expect(Container.run({ root, rootfs: dir, cmd: ['true'], user: 'root' })).rejects.toThrow(/unable to find user root/);
    } finally {
      rm(dir, { recursive: true, force: true });
    }
  });
});
