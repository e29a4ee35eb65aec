// What a container sees: its own pid 1, hostname, mounts, capabilities, masked and read-only paths, fds.
import { hostname } from 'node:os';
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { Container, DOCKER_DEFAULT_CAPABILITIES, CAPABILITY_NAMES } from '../lib/index.js';
import { tempRoot } from './helpers/env.js';

const { root, rootfs: BUSYBOX, cleanup } = tempRoot('isolation');
afterAll(cleanup);

const sh = (script: string, extra: Record<string, unknown> = {}) =>
  Container.run({ root, rootfs: BUSYBOX, cmd: ['sh', '-c', script], ...extra });

describe('isolation', () => {
  it('runs the command as pid 1 and hides host processes', async () => {
    const r = await sh('echo $$; ls /proc | grep -E "^[0-9]+$" | sort -n | tr "\\n" " "');
    expect(r.exitCode).toBe(0);
    const [pid, procs] = r.stdout.trim().split('\n');
    expect(pid).toBe('1');
    // Only the shell (1) and the ls/grep/sort/tr pipeline it started: no host process is visible.
    const seen = procs!.trim().split(' ').map(Number);
    expect(seen[0]).toBe(1);
    expect(seen.length).toBeLessThanOrEqual(6);
    expect(seen).not.toContain(process.pid);
  });

  it('has its own hostname and leaves the host\'s alone', async () => {
    const before = hostname();
    // Without CAP_SYS_ADMIN (Docker's default) the container cannot even change its own.
    const r = await sh('hostname; hostname changed-inside 2>/dev/null; hostname', { hostname: 'box-1' });
    expect(r.stdout.trim().split('\n')).toEqual(['box-1', 'box-1']);
    const admin = await sh('hostname changed-inside; hostname', { hostname: 'box-1', capAdd: ['SYS_ADMIN'] });
    expect(admin.stdout.trim()).toBe('changed-inside');
    expect(hostname()).toBe(before);
    const d = await sh('hostname');
    expect(d.stdout.trim()).toBe(d.id.slice(0, 12)); // Docker's default: the short id
  });

  it('sees only its own mounts', async () => {
    const r = await sh('cat /proc/self/mountinfo');
    const targets = r.stdout.trim().split('\n').map((l) => l.split(' ')[4]);
    expect(targets[0]).toBe('/');
    for (const t of ['/proc', '/dev', '/dev/pts', '/sys', '/dev/mqueue', '/dev/shm', '/sys/fs/cgroup']) {
      expect(targets).toContain(t);
    }
    // Nothing of the host's tree: no /work, /var/lib, /tmp of the test process.
    for (const t of targets) expect(t).toMatch(/^\/(proc|dev|sys)?/);
    expect(targets.filter((t) => t!.startsWith('/tmp') || t!.startsWith('/work') || t!.startsWith('/var'))).toEqual([]);
    expect(r.stdout).toMatch(/ \/proc rw,nosuid,nodev,noexec/);
    expect(r.stdout).toMatch(/ \/sys ro,nosuid,nodev,noexec/);
    expect(r.stdout).toMatch(/ \/dev\/pts rw,nosuid,noexec.* devpts .*gid=5,mode=620,ptmxmode=666/);
  });

  it('holds exactly Docker\'s default capabilities, none inheritable or ambient', async () => {
    const r = await sh('grep ^Cap /proc/self/status');
    const field = (name: string) => BigInt('0x' + new RegExp(`^${name}:\\s+([0-9a-f]+)`, 'm').exec(r.stdout)![1]);
    let expected = 0n;
    for (const c of DOCKER_DEFAULT_CAPABILITIES) expected |= 1n << BigInt(CAPABILITY_NAMES.indexOf(c));
    expect(field('CapEff')).toBe(expected);
    expect(field('CapPrm')).toBe(expected);
    expect(field('CapBnd')).toBe(expected);
    expect(field('CapInh')).toBe(0n);
    expect(field('CapAmb')).toBe(0n);
  });

  it('applies capAdd and capDrop by name', async () => {
    const r = await sh('grep ^CapEff /proc/self/status', { capAdd: ['net_admin'], capDrop: ['CAP_CHOWN', 'MKNOD'] });
    const eff = BigInt('0x' + r.stdout.split(/\s+/)[1]);
    expect(eff & (1n << 12n)).toBe(1n << 12n); // NET_ADMIN
    expect(eff & 1n).toBe(0n); // CHOWN
    expect(eff & (1n << 27n)).toBe(0n); // MKNOD
    const none = await sh('grep ^CapEff /proc/self/status', { capDrop: ['ALL'] });
    expect(none.stdout).toMatch(/CapEff:\s+0000000000000000/);
  });

  it('masks and write-protects the paths Docker does', async () => {
    const r = await sh(
      [
        'ls -A /proc/acpi | wc -l',
        'wc -c < /proc/timer_list',
        'echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo wrote-sys || echo ro-sys',
        'echo h > /proc/sysrq-trigger 2>/dev/null && echo wrote-sysrq || echo ro-sysrq',
        'touch /sys/x 2>/dev/null && echo wrote-sysfs || echo ro-sysfs',
        'stat -c %t:%T /proc/kcore 2>/dev/null || echo no-kcore',
      ].join('; '),
    );
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe('0'); // an empty read-only tmpfs over /proc/acpi
    expect(lines[1]).toBe('0'); // /dev/null over /proc/timer_list
    expect(lines.slice(2, 5)).toEqual(['ro-sys', 'ro-sysrq', 'ro-sysfs']);
    if (lines[5] !== 'no-kcore') expect(lines[5]).toBe('1:3');
    const mounts = (await sh('cat /proc/self/mountinfo')).stdout;
    expect(mounts).toMatch(/ \/proc\/sys ro,/);
    expect(mounts).toMatch(/ \/proc\/timer_list (rw|ro),/);
  });

  it('passes no file descriptor of the Node process into the container', async () => {
    // ls itself is pid 1 here; its only extra fd (3) is the directory it is listing.
    const r = await Container.run({ root, rootfs: BUSYBOX, cmd: ['ls', '/proc/self/fd'] });
    expect(r.stdout.trim().split('\n')).toEqual(['0', '1', '2', '3']);
    const shell = await sh('ls /proc/1/fd; sleep 0.05');
    expect(shell.stdout.trim().split('\n')).toEqual(['0', '1', '2']);
  });

  it('gets Docker\'s default devices and /dev links', async () => {
    const r = await sh('ls -l /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty | cut -c1,35-; readlink /dev/ptmx; readlink /dev/fd; echo ok > /dev/null && echo wrote');
    expect(r.stdout).toMatch(/^c.*\/dev\/null$/m);
    expect(r.stdout).toContain('pts/ptmx');
    expect(r.stdout).toContain('/proc/self/fd');
    expect(r.stdout).toContain('wrote');
  });

  it('has loopback up in its own network namespace and no other interface', async () => {
    const r = await sh('ip -o link | cut -d: -f2 | tr -d " "; ip -o addr show lo | grep -c "127.0.0.1"');
    expect(r.stdout.trim().split('\n')).toEqual(['lo', '1']);
  });

  it('shows its cgroup as the root of its cgroup namespace', async () => {
    const r = await sh('cat /proc/self/cgroup');
    for (const line of r.stdout.trim().split('\n')) expect(line.endsWith(':/')).toBe(true);
    const host = readFileSync('/proc/self/cgroup', 'utf8');
    expect(host).toBeTruthy();
  });
});
