// The escape suite: from inside a container started with DEFAULT options, every way out that Docker closes must
// be closed here too. A static probe (test/fixtures/probe.c) makes each syscall directly and prints the errno, so
// each assertion also says WHICH layer refused: seccomp (EPERM before the kernel looks at anything), a missing
// capability, the pid namespace (ESRCH), a read-only mount (EROFS), the device cgroup, or a masked path.
//
// The kernel is shared with the host, so every probe is harmless even if it succeeded (see probe.c). The seccomp
// tests (test/seccomp.test.ts) show the other side: what these probes get without the filter or with capabilities.
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Container } from '../lib/index.js';
import { tempRoot } from './helpers/env.js';
import { buildProbe, hostBlockDevice, parseProbe } from './helpers/probe.js';

const { root, rootfs, cleanup } = tempRoot('escape');
let results: Record<string, string> = {};
let stderr = '';

beforeAll(async () => {
  const probe = buildProbe(rootfs);
  const block = hostBlockDevice();
  const args = ['--host-pid', String(process.pid), ...(block ? ['--block', block] : []), 'all'];
  // Nothing but a rootfs and a command: every other setting is berth's default, i.e. Docker's.
  const r = await Container.run({ root, rootfs, cmd: [probe, ...args] });
  expect(r.exitCode, r.stderr).toBe(0);
  results = parseProbe(r.stdout);
  stderr = r.stderr;
});
afterAll(cleanup);

const probe = (name: string) => {
  expect(results[name], `probe ${name} did not run (stderr: ${stderr})`).toBeDefined();
  return results[name];
};

describe('a default container cannot', () => {
  it('run without the seccomp filter', () => {
    expect(probe('seccomp_mode')).toBe('OK:2');
  });

  it('mount anything (refused by seccomp before the kernel even looks up the target)', () => {
    expect(probe('mount')).toBe('EPERM');
    expect(probe('mount_missing_target')).toBe('EPERM'); // without the filter: ENOENT
  });

  it('create a user namespace to mount in, by unshare or by clone, or join a namespace', () => {
    expect(probe('unshare_user')).toBe('EPERM');
    expect(probe('clone_newuser')).toBe('EPERM');
    expect(probe('setns')).toBe('EPERM');
    // clone3 hides its flags from seccomp: ENOSYS, so that libc falls back to clone, which the filter can check.
    expect(probe('clone3')).toBe('ENOSYS');
    expect(probe('clone')).toBe('OK'); // plain fork still works
  });

  it('use the kernel keyring', () => {
    expect(probe('keyctl')).toBe('EPERM');
    expect(probe('add_key')).toBe('EPERM');
  });

  it('load BPF programs, open perf events or set up io_uring', () => {
    expect(probe('bpf')).toBe('EPERM');
    expect(probe('perf_event_open')).toBe('EPERM');
    expect(probe('io_uring_setup')).toBe('EPERM');
  });

  it('ptrace, read the memory of, or get a pidfd for a process outside (it cannot even see one)', () => {
    expect(process.pid).toBeGreaterThan(50); // not a pid that exists in the container's own namespace
    expect(probe('ptrace_outside')).toBe('ESRCH');
    expect(probe('process_vm_readv_outside')).toBe('ESRCH');
    expect(probe('pidfd_open_outside')).toBe('ESRCH');
  });

  it('reach any fd of the Node process', () => {
    expect(probe('open_fds')).toBe('OK:0,1,2');
    expect(probe('fchdir_inherited')).toBe('OK:none');
    expect(probe('proc_host_fds')).toBe('ENOENT');
    expect(probe('pidfd_getfd')).toBe('EPERM'); // needs CAP_SYS_PTRACE: refused by the filter
    expect(probe('kcmp')).toBe('EPERM');
  });

  it('escape a chroot through a directory fd to above its own root', () => {
    expect(probe('chroot_escape')).toBe('OK'); // ".." from the fd ends at the container's root, not the host's
  });

  it('load a kernel (kexec_load), reboot (wrong magic: EPERM, not EINVAL) or load a module', () => {
    expect(probe('kexec_load')).toBe('EPERM');
    expect(probe('reboot')).toBe('EPERM');
    expect(probe('init_module')).toBe('EPERM');
  });

  it('open a raw block device, even one it creates with mknod', () => {
    expect(probe('dev_block_devices')).toBe('OK:0');
    if (!hostBlockDevice()) return;
    expect(probe('mknod_block')).toBe('OK'); // CAP_MKNOD is in Docker's default set, and the device rules allow it
    expect(probe('open_block')).toBe('EPERM'); // the device cgroup refuses to open it
  });

  it('write /proc/sysrq-trigger, /proc/sys, /proc/irq or /sys', () => {
    // Kernels without CONFIG_MAGIC_SYSRQ (like this VM's) have no sysrq-trigger to write to at all.
    expect(probe('write_sysrq')).toBe(existsSync('/proc/sysrq-trigger') ? 'EROFS' : 'ENOENT');
    expect(probe('write_proc_sys')).toBe('EROFS');
    if (existsSync('/proc/irq/default_smp_affinity')) expect(probe('write_proc_irq')).toBe('EROFS');
    expect(probe('write_sys')).toBe('EROFS');
    expect(probe('mkdir_sys')).toBe('EROFS');
  });

  it('read /proc/kcore or the other files Docker masks: each present one is /dev/null', () => {
    const masked = ['/proc/kcore', '/proc/keys', '/proc/timer_list', '/proc/sched_debug', '/proc/interrupts',
      '/proc/latency_stats', '/proc/timer_stats'].filter((p) => existsSync(p));
    expect(masked.length).toBeGreaterThan(0);
    const seen = probe('masked_files')!.replace(/^OK:/, '').split(';');
    expect(seen.sort()).toEqual(masked.map((p) => `${p}=0/chr1:3`).sort());
  });

  it("change the host's hostname or time", () => {
    expect(probe('sethostname')).toBe('EPERM');
    expect(probe('settimeofday')).toBe('EPERM');
    expect(probe('clock_settime')).toBe('EPERM'); // the filter: without it, EINVAL for the monotonic clock
    expect(probe('adjtimex_write')).toBe('EPERM'); // adjtimex itself is allowed; writing needs CAP_SYS_TIME
  });

  it('raise a hard rlimit', () => {
    expect(probe('raise_hard_rlimit')).toBe('EPERM');
  });

  it('open vsock or AF_ALG sockets, or change its personality, while ordinary sockets work', () => {
    expect(probe('socket_vsock')).toBe('EPERM');
    expect(probe('socket_alg')).toBe('EPERM');
    expect(probe('socket_inet')).toBe('OK');
    expect(probe('socket_unix')).toBe('OK');
    expect(probe('socket_netlink')).toBe('OK');
    expect(probe('personality_query')).toBe('OK');
    expect(probe('personality_no_randomize')).toBe('EPERM');
  });

  it('call syscalls newer than the filter knows other than with ENOSYS', () => {
    expect(probe('unknown_syscall')).toBe('ENOSYS');
  });
});

it('every probe ran and none misbehaved', () => {
  const values = Object.entries(results);
  expect(values.length).toBeGreaterThan(40);
  for (const [name, value] of values) {
    expect(value, name).not.toMatch(/^(NO_SUCH_PROBE|BROKEN|ESCAPED|SIGNAL)/);
  }
});

// The same probes from a privileged container show the privileges are really granted: each refusal above is
// berth's doing, not the kernel's or the probe's. Still harmless: the values written are those just read,
// settimeofday gets no time, reboot a wrong magic, and the block device is an unbound loop device opened read-only.
describe('a privileged container can', () => {
  let granted: Record<string, string> = {};
  let grantedErr = '';
  const loop = existsSync('/dev/loop0') ? '7:0' : undefined;
  beforeAll(async () => {
    const args = ['--host-pid', String(process.pid), ...(loop ? ['--block', loop] : []), 'all'];
    const r = await Container.run({ root, rootfs, privileged: true, cmd: ['/probe', ...args] });
    expect(r.exitCode, r.stderr).toBe(0);
    granted = parseProbe(r.stdout);
    grantedErr = r.stderr;
  });
  const got = (name: string) => {
    expect(granted[name], `probe ${name} did not run (stderr: ${grantedErr})`).toBeDefined();
    return granted[name];
  };
  const hostCaps = BigInt(`0x${/^CapBnd:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]}`);
  const hostHas = (bit: number) => ((hostCaps >> BigInt(bit)) & 1n) === 1n;

  it('run without a filter, mount, and make and join namespaces', () => {
    expect(got('seccomp_mode')).toBe('OK:0');
    expect(got('mount')).toBe('OK');
    expect(got('mount_missing_target')).toBe('ENOENT'); // the kernel got as far as looking the target up
    expect(got('unshare_user')).toBe('OK');
    expect(got('clone_newuser')).toBe('OK');
    expect(got('setns')).toBe('OK');
    expect(got('clone3')).toBe('OK');
  });

  it('use the keyring, BPF, perf events, io_uring, pidfd_getfd and kcmp (past the permission checks)', () => {
    expect(got('keyctl')).toBe('OK');
    expect(got('add_key')).toBe('OK');
    expect(got('bpf')).toBe('EINVAL'); // allowed, then refused for its deliberately invalid arguments
    expect(got('perf_event_open')).toBe('OK');
    expect(got('io_uring_setup')).toBe('EINVAL');
    expect(got('pidfd_getfd')).toBe('OK');
    expect(got('kcmp')).toBe('OK');
  });

  it('pass the capability checks of reboot, kexec_load and init_module', () => {
    expect(got('reboot')).toBe('EINVAL'); // CAP_SYS_BOOT held: only the wrong magic stops it
    expect(got('kexec_load')).not.toBe('EPERM'); // EINVAL, or ENOSYS on a kernel without kexec (this VM)
    expect(got('init_module')).not.toBe('EPERM'); // ENOEXEC for the garbage, or ENOSYS without module support
  });

  it('see and open block devices, and write /proc/sys and /sys', () => {
    expect(Number(got('dev_block_devices')!.replace(/^OK:/, ''))).toBeGreaterThan(0);
    if (loop) {
      expect(got('mknod_block')).toBe('OK');
      expect(got('open_block')).toBe('OK');
    }
    expect(got('write_proc_sys')).toBe('OK'); // core_pattern, written back unchanged
    expect(got('write_sys')).toBe('OK');
    if (existsSync('/proc/irq/default_smp_affinity')) expect(got('write_proc_irq')).toBe('OK');
    for (const entry of got('masked_files')!.replace(/^OK:/, '').split(';').filter(Boolean)) {
      expect(entry).not.toMatch(/chr1:3$/); // nothing is masked with /dev/null
    }
  });

  it('set the time (with nothing to set), its hostname, and raise hard rlimits where the host can', () => {
    expect(got('settimeofday')).toBe('OK');
    expect(got('adjtimex_write')).toBe('OK');
    expect(got('sethostname')).toBe('OK'); // its own uts namespace, its own name back
    expect(got('raise_hard_rlimit')).toBe(hostHas(24) ? 'OK' : 'EPERM'); // CAP_SYS_RESOURCE: this VM lacks it
  });

  it('still not see processes outside its pid namespace', () => {
    expect(got('ptrace_outside')).toBe('ESRCH');
  });
});
