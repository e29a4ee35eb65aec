// privileged, host devices, device cgroup rules and the masked/read-only path overrides. Every probe is harmless
// even when it succeeds: mounts happen in the container's own mount namespace, device files are opened and closed,
// /proc/kcore is read for a few bytes, nothing on the host is written.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { Container, InvalidOptionsError } from '../lib/index.js';
import { hostCapabilities } from '../lib/container/privileges.js';
import { tempRoot } from './helpers/env.js';

const { root, rootfs, cleanup } = tempRoot('privileged');
afterAll(cleanup);
const base = { root, rootfs };

const hostCapBnd = /^CapBnd:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]!;
const sh = async (script: string, extra: Record<string, unknown> = {}) =>
  Container.run({ ...base, ...extra, cmd: ['sh', '-c', script] });

describe('privileged', () => {
  it('starts with every capability this process holds, even where the host lacks some (no "unable to apply caps")', async () => {
    const r = await sh('grep -E "^Cap(Eff|Prm|Bnd|Inh|Amb)" /proc/self/status', { privileged: true });
    expect(r.exitCode).toBe(0);
    const caps = Object.fromEntries(r.stdout.trim().split('\n').map((l) => l.split(/:\s*/)));
    expect(caps.CapEff).toBe(hostCapBnd);
    expect(caps.CapPrm).toBe(hostCapBnd);
    expect(caps.CapBnd).toBe(hostCapBnd);
    expect(caps.CapInh).toBe('0000000000000000'); // CVE-2022-29162: inheritable stays empty
    expect(caps.CapAmb).toBe('0000000000000000');
  });

  it('can mount (in its own mount namespace), read /proc/kcore, and sees nothing masked or read-only', async () => {
    const r = await sh(
      [
        'mkdir -p /mnt/probe && mount -t tmpfs probe /mnt/probe && echo mounted',
        // This kernel may lack /proc/kcore; where it has one, the first bytes are the ELF magic.
        '[ -e /proc/kcore ] && head -c 4 /proc/kcore | od -An -c | tr -d " \\n"; echo',
        'grep -c "" /proc/timer_list | grep -qv "^0$" && echo timer_list-visible',
        'grep " /proc/sys " /proc/self/mountinfo || echo proc-sys-not-remounted',
        'grep " /sys " /proc/self/mountinfo | grep -q " rw," && echo sys-rw',
      ].join('; '),
      { privileged: true },
    );
    expect(r.stdout).toContain('mounted');
    if (existsSync('/proc/kcore')) expect(r.stdout).toContain('177ELF'); // the ELF magic (this kernel may have none)
    expect(r.stdout).toContain('timer_list-visible');
    expect(r.stdout).toContain('proc-sys-not-remounted');
    expect(r.stdout).toContain('sys-rw');
  });

  it('gets the host\'s devices with full device cgroup access', async () => {
    const r = await sh('ls -l /dev/loop-control /dev/fuse /dev/loop0 && exec 3<>/dev/fuse && echo fuse-opened', { privileged: true });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^c.* 10,\s*237 .*\/dev\/loop-control$/m);
    expect(r.stdout).toMatch(/^b.* 7,\s*0 .*\/dev\/loop0$/m);
    expect(r.stdout).toContain('fuse-opened');
  });

  it('is not what a default container gets', async () => {
    const r = await sh('mount -t tmpfs probe /mnt 2>&1 || echo mount-refused; ls /dev/fuse 2>&1 || echo no-fuse; wc -c < /proc/timer_list');
    expect(r.stdout).toContain('mount-refused');
    expect(r.stdout).toContain('no-fuse');
    expect(r.stdout.trim().split('\n').at(-1)).toBe('0'); // masked with /dev/null
  });
});

describe('privileged and user namespaces', () => {
  it('refuses privileged with userns, as Docker does', async () => {
    const err = await Container.create({ ...base, cmd: ['true'], privileged: true, userns: 'auto' }).catch((e) => e);
    expect(err).toBeInstanceOf(InvalidOptionsError);
    expect(err.message).toMatch(/privileged cannot be combined with userns/);
  });
});

describe('capabilities the host cannot grant', () => {
  const missing = ['CAP_SYS_RESOURCE', 'CAP_SYS_ADMIN', 'CAP_SYS_TIME'].find((c) => !hostCapabilities().includes(c as never));
  it.skipIf(!missing)('refuses an explicit capAdd of one, by name, before anything starts', async () => {
    const err = await Container.create({ ...base, cmd: ['true'], capAdd: [missing!] }).catch((e) => e);
    expect(err).toBeInstanceOf(InvalidOptionsError);
    expect(err.message).toContain(missing);
    expect(err.message).toMatch(/bounding set/);
  });

  it('capAdd ALL means every capability this process holds', async () => {
    const r = await sh('grep ^CapEff /proc/self/status', { capAdd: ['ALL'] });
    expect(r.stdout.trim().split(/\s+/)[1]).toBe(hostCapBnd);
  });
});

describe('devices', () => {
  it('passes a host device in, at its own path or another, with the cgroup permissions asked for', async () => {
    const fuse = statSync('/dev/fuse');
    expect(fuse.isCharacterDevice()).toBe(true);
    const rw = await sh('ls -l /dev/fuse && exec 3<>/dev/fuse && echo opened-rw', { devices: ['/dev/fuse'] });
    expect(rw.stdout).toMatch(/^c.* 10,\s*229 .*\/dev\/fuse$/m);
    expect(rw.stdout).toContain('opened-rw');
    // Read-only in the cgroup: opening for writing is refused by the kernel, reading is allowed.
    const ro = await sh('exec 3</dev/myfuse && echo opened-r; (exec 4<>/dev/myfuse) 2>&1 || echo write-refused', {
      devices: ['/dev/fuse:/dev/myfuse:r'],
    });
    expect(ro.stdout).toContain('opened-r');
    expect(ro.stdout).toContain('write-refused');
    const objectForm = await sh('ls /dev/sub/fuse', { devices: [{ path: '/dev/fuse', containerPath: '/dev/sub/fuse' }] });
    expect(objectForm.exitCode).toBe(0);
  });

  it('deviceCgroupRules allow a node the container creates itself (mknod needs the m right)', async () => {
    // In /dev: the container's /dev is the one mount without nodev.
    const script = 'mknod /dev/f c 10 229 && (exec 3<>/dev/f) && echo usable || echo refused';
    expect((await sh(script)).stdout).toContain('refused');
    expect((await sh(script, { deviceCgroupRules: ['c 10:229 rwm'] })).stdout).toContain('usable');
  });

  it('refuses what is not a device, and malformed entries, naming them', async () => {
    for (const [devices, re] of [
      [['/dev/nonexistent'], /nonexistent.*ENOENT/],
      [['/etc/passwd'], /not a character or block device/],
      [['/dev/fuse:/dev/fuse:rwx'], /permissions combine r, w and m/],
      [['/dev/fuse:/etc/fuse'], /under \/dev/],
      [['dev/fuse'], /absolute/],
    ] as const) {
      const err = await Container.create({ ...base, cmd: ['true'], devices: [...devices] }).catch((e) => e);
      expect(err).toBeInstanceOf(InvalidOptionsError);
      expect(err.message).toMatch(re);
    }
    const bad = await Container.create({ ...base, cmd: ['true'], deviceCgroupRules: ['c 10:229 rwx'] }).catch((e) => e);
    expect(bad).toBeInstanceOf(InvalidOptionsError);
    expect(bad.message).toMatch(/deviceCgroupRules/);
  });
});

describe('masked and read-only path overrides', () => {
  it('maskedPaths replaces the defaults', async () => {
    const probe = 'wc -c < /proc/timer_list';
    expect((await sh(probe)).stdout.trim()).toBe('0');
    expect(Number((await sh(probe, { maskedPaths: [] })).stdout.trim())).toBeGreaterThan(0);
    const custom = await sh('wc -c < /etc/passwd; wc -c < /proc/timer_list', { maskedPaths: ['/etc/passwd'] });
    expect(custom.stdout.trim().split('\n')).toEqual(['0', expect.not.stringMatching(/^0$/)]);
  });

  it('readonlyPaths replaces the defaults', async () => {
    const probe = 'grep -E " /proc/(sys|bus) " /proc/self/mountinfo | grep -c " ro,"';
    expect((await sh(probe)).stdout.trim()).toBe('2');
    expect((await sh(probe, { readonlyPaths: [] })).stdout.trim()).toBe('0');
    expect((await sh(probe, { readonlyPaths: ['/proc/bus'] })).stdout.trim()).toBe('1');
  });
});

describe('privileged and seccomp', () => {
  it('runs without a syscall filter, as Docker does', async () => {
    expect((await sh('grep ^Seccomp: /proc/self/status')).stdout).toMatch(/Seccomp:\s*2/);
    expect((await sh('grep ^Seccomp: /proc/self/status', { privileged: true })).stdout).toMatch(/Seccomp:\s*0/);
  });
});
