// Seccomp: Docker's default profile and its conditions, the compiled filter's answers (interpreted here, without
// loading it), custom profiles in Docker's and the OCI format, validation, the cache, and containers that run with
// them. The escape suite (test/escape.test.ts) checks the default filter from inside a container.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  CAPABILITY_NAMES, Container, ContainerStartError, DOCKER_DEFAULT_CAPABILITIES, DOCKER_DEFAULT_SECCOMP_PROFILE, InvalidOptionsError, parseOciSpec,
  type SeccompProfile,
} from '../lib/index.js';
import { AUDIT_ARCH, SECCOMP_RET, X32_SYSCALL_BIT } from '../lib/container/seccomp/bpf.js';
import { compileSeccomp, compileUncached, compileWithLibseccompOnly, nativeSeccompArch } from '../lib/container/seccomp/compile.js';
import {
  defaultSeccompProfile, parseOciSeccomp, parseSeccompProfile, profileToOci, seccompForOptions,
} from '../lib/container/seccomp/resolve.js';
import type { OciSeccomp } from '../lib/container/seccomp/profile.js';
import { DOCKER_DEFAULT_SECCOMP_PROFILE_DIGEST } from '../lib/container/seccomp/default-profile.js';
import { native } from '../lib/native.js';
import { stateJson } from '../lib/container/state-json.js';
import { runFilter } from './helpers/bpf.js';
import { tempRoot } from './helpers/env.js';
import { buildProbe, parseProbe } from './helpers/probe.js';

const { root, rootfs, cleanup } = tempRoot('seccomp');
let probe: string;
beforeAll(() => {
  probe = buildProbe(rootfs);
});
afterAll(cleanup);

const EPERM = (SECCOMP_RET.ERRNO | 1) >>> 0;
const ENOSYS = (SECCOMP_RET.ERRNO | 38) >>> 0;
const ALLOW = SECCOMP_RET.ALLOW;

const isX86 = process.arch === 'x64';
/** This host's libseccomp architecture, its AUDIT_ARCH, and the 32-bit one Docker's profile adds. */
const host = isX86
  ? { arch: 'x86_64', audit: AUDIT_ARCH.x86_64, sub: 'x86', subAudit: AUDIT_ARCH.x86 }
  : { arch: 'aarch64', audit: AUDIT_ARCH.aarch64, sub: 'arm', subAudit: AUDIT_ARCH.arm };

/** Syscall numbers from libseccomp's tables, so the tests hold on either architecture. */
function nr(name: string, arch = host.arch): number {
  const n = native.seccompInfo(arch, [name]).numbers![0]!;
  if (n < 0) throw new Error(`${name} is not a syscall on ${arch}`);
  return n;
}

function answer(program: Buffer, name: string, args: (number | bigint)[] = [], arch = host.arch): number {
  const audit = arch === host.arch ? host.audit : arch === host.sub ? host.subAudit : AUDIT_ARCH.x86_64;
  return runFilter(program, { nr: nr(name, arch), arch: audit, args });
}

const names = (s: OciSeccomp) => (s.syscalls ?? []).flatMap((r) => r.names);
const defaultFor = (caps: readonly string[]) =>
  profileToOci(defaultSeccompProfile(), { capabilities: caps, arch: nativeSeccompArch(), kernel: [6, 18] });

describe("Docker's default profile, resolved for a container", () => {
  it('is a valid profile, already in validated form, and its digest is current', () => {
    expect(parseSeccompProfile(DOCKER_DEFAULT_SECCOMP_PROFILE)).toEqual(DOCKER_DEFAULT_SECCOMP_PROFILE);
    expect(defaultSeccompProfile()).toEqual(DOCKER_DEFAULT_SECCOMP_PROFILE);
    expect(Object.isFrozen(DOCKER_DEFAULT_SECCOMP_PROFILE.syscalls![0]!.names)).toBe(true);
    // The program cache names the profile by this digest: a change to the profile must change it.
    expect(createHash('sha256').update(JSON.stringify(DOCKER_DEFAULT_SECCOMP_PROFILE)).digest('hex')).toBe(DOCKER_DEFAULT_SECCOMP_PROFILE_DIGEST);
  });

  it('covers the host architecture and its 32-bit sub-architectures, as Docker does', () => {
    const s = defaultFor(DOCKER_DEFAULT_CAPABILITIES);
    expect(s.defaultAction).toBe('SCMP_ACT_ERRNO');
    expect(s.defaultErrnoRet).toBe(1);
    expect(s.architectures).toEqual(isX86 ? ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'] : ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM']);
    const arm = profileToOci(defaultSeccompProfile(), { capabilities: [], arch: 'SCMP_ARCH_AARCH64', kernel: [6, 18] });
    expect(arm.architectures).toEqual(['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM']);
    expect(names(arm)).toContain('set_tls');
    expect(names(arm)).not.toContain('arch_prctl');
    const amd = profileToOci(defaultSeccompProfile(), { capabilities: [], arch: 'SCMP_ARCH_X86_64', kernel: [6, 18] });
    expect(names(amd)).toEqual(expect.arrayContaining(['arch_prctl', 'modify_ldt']));
    expect(names(amd)).not.toContain('set_tls');
  });

  it('allows the everyday syscalls and none of the dangerous ones with the default capabilities', () => {
    const n = names(defaultFor(DOCKER_DEFAULT_CAPABILITIES));
    expect(n).toEqual(expect.arrayContaining(['read', 'execve', 'clone', 'chroot', 'ptrace', 'socket', 'personality']));
    for (const denied of ['mount', 'umount2', 'unshare', 'setns', 'keyctl', 'add_key', 'request_key', 'bpf', 'perf_event_open',
      'kexec_load', 'reboot', 'init_module', 'finit_module', 'settimeofday', 'clock_settime', 'sethostname', 'kcmp',
      'pidfd_getfd', 'io_uring_setup', 'pivot_root', 'open_by_handle_at', 'userfaultfd', 'swapon', 'acct']) {
      expect(n, denied).not.toContain(denied);
    }
    const clone3 = defaultFor(DOCKER_DEFAULT_CAPABILITIES).syscalls!.find((r) => r.names.includes('clone3'));
    expect(clone3).toEqual({ names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 });
  });

  it('follows the capabilities: CAP_SYS_ADMIN, CAP_SYS_PTRACE, CAP_SYS_BOOT, CAP_SYS_TIME, CAP_BPF, CAP_PERFMON...', () => {
    const admin = defaultFor([...DOCKER_DEFAULT_CAPABILITIES, 'CAP_SYS_ADMIN']);
    expect(names(admin)).toEqual(expect.arrayContaining(['mount', 'umount2', 'unshare', 'setns', 'clone3', 'bpf', 'sethostname']));
    // The clone argument filter and clone3's ENOSYS are for containers without CAP_SYS_ADMIN only.
    expect(admin.syscalls!.filter((r) => r.names.includes('clone')).every((r) => !r.args)).toBe(true);
    expect(admin.syscalls!.some((r) => r.names.includes('clone3') && r.action !== 'SCMP_ACT_ALLOW')).toBe(false);
    const more = (cap: string) => names(defaultFor([...DOCKER_DEFAULT_CAPABILITIES, cap]));
    expect(more('CAP_SYS_PTRACE')).toEqual(expect.arrayContaining(['kcmp', 'pidfd_getfd', 'process_madvise']));
    expect(more('CAP_SYS_BOOT')).toContain('reboot');
    expect(more('CAP_SYS_MODULE')).toEqual(expect.arrayContaining(['init_module', 'finit_module', 'delete_module']));
    expect(more('CAP_SYS_TIME')).toEqual(expect.arrayContaining(['settimeofday', 'clock_settime']));
    expect(more('CAP_BPF')).toContain('bpf');
    expect(more('CAP_PERFMON')).toContain('perf_event_open');
    expect(more('CAP_BPF')).not.toContain('mount');
    // Dropping CAP_SYS_CHROOT takes chroot away too.
    expect(names(defaultFor(DOCKER_DEFAULT_CAPABILITIES.filter((c) => c !== 'CAP_SYS_CHROOT')))).not.toContain('chroot');
  });

  it('honours minKernel and the s390 clone argument order', () => {
    const old = profileToOci(defaultSeccompProfile(), { capabilities: [], arch: 'SCMP_ARCH_X86_64', kernel: [4, 7] });
    expect(names(old)).not.toContain('ptrace');
    const s390 = profileToOci(defaultSeccompProfile(), { capabilities: [], arch: 'SCMP_ARCH_S390X', kernel: [6, 1] });
    const clone = s390.syscalls!.filter((r) => r.names.includes('clone'));
    expect(clone).toHaveLength(1);
    expect(clone[0]!.args![0]!.index).toBe(1);
  });
});

describe('the compiled default filter', () => {
  const program = () => compileSeccomp(seccompForOptions(undefined, DOCKER_DEFAULT_CAPABILITIES)!).program;

  it('allows, refuses and filters arguments as the profile says', () => {
    const p = program();
    expect(answer(p, 'read')).toBe(ALLOW);
    expect(answer(p, 'execve')).toBe(ALLOW);
    expect(answer(p, 'mount')).toBe(EPERM);
    expect(answer(p, 'keyctl')).toBe(EPERM);
    expect(answer(p, 'unshare')).toBe(EPERM);
    expect(answer(p, 'io_uring_setup')).toBe(EPERM);
    expect(answer(p, 'clone3')).toBe(ENOSYS);
    // clone: argument 0 holds the flags on x86_64 and aarch64.
    expect(answer(p, 'clone', [17 /* SIGCHLD */])).toBe(ALLOW);
    expect(answer(p, 'clone', [0x3d0f00 /* CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT_SETTID|CHILD_CLEARTID */])).toBe(ALLOW);
    for (const ns of [0x10000000, 0x20000, 0x4000000, 0x8000000, 0x20000000, 0x40000000, 0x2000000]) {
      expect(answer(p, 'clone', [ns | 17]), `clone flag ${ns.toString(16)}`).toBe(EPERM);
    }
    expect(answer(p, 'socket', [2 /* AF_INET */])).toBe(ALLOW);
    expect(answer(p, 'socket', [10 /* AF_INET6 */])).toBe(ALLOW);
    expect(answer(p, 'socket', [16 /* AF_NETLINK */])).toBe(ALLOW);
    expect(answer(p, 'socket', [40 /* AF_VSOCK */])).toBe(EPERM);
    expect(answer(p, 'socket', [38 /* AF_ALG */])).toBe(EPERM);
    expect(answer(p, 'socket', [12 /* AF_DECnet */])).toBe(EPERM);
    expect(answer(p, 'socket', [0x1_0000_0002n])).toBe(EPERM); // the whole 64-bit argument is compared
    expect(answer(p, 'personality', [0xffffffff])).toBe(ALLOW);
    expect(answer(p, 'personality', [0x8 /* PER_LINUX32 */])).toBe(ALLOW);
    expect(answer(p, 'personality', [0x40000 /* ADDR_NO_RANDOMIZE */])).toBe(EPERM);
  });

  it('covers the 32-bit ABIs too (x86 and x32, or arm)', () => {
    const p = program();
    expect(answer(p, 'getpid', [], host.sub)).toBe(ALLOW);
    expect(answer(p, 'mount', [], host.sub)).toBe(EPERM);
    if (isX86) {
      expect(runFilter(p, { nr: X32_SYSCALL_BIT | nr('read'), arch: AUDIT_ARCH.x86_64 })).toBe(ALLOW);
      expect(runFilter(p, { nr: X32_SYSCALL_BIT | nr('mount'), arch: AUDIT_ARCH.x86_64 })).toBe(EPERM);
    }
    // An architecture the filter does not cover kills the thread.
    expect(runFilter(p, { nr: 0, arch: 0x8000_0016 /* s390x */ })).toBe(SECCOMP_RET.KILL_THREAD);
  });

  it('answers exactly as libseccomp\'s program for the whole profile, and ENOSYS above its syscalls', () => {
    const c = compileUncached(seccompForOptions(undefined, DOCKER_DEFAULT_CAPABILITIES)!);
    expect(c.prologue).toBeGreaterThan(0);
    expectSameAsLibseccomp(seccompForOptions(undefined, DOCKER_DEFAULT_CAPABILITIES)!);
    // ...and as the single program runc would load with the same libseccomp.
    expectSameAsLibseccomp(seccompForOptions(undefined, DOCKER_DEFAULT_CAPABILITIES)!, true);
    // Much shorter than libseccomp's program alone: less for the kernel to check, translate and JIT per container.
    const reference = compileWithLibseccompOnly(seccompForOptions(undefined, DOCKER_DEFAULT_CAPABILITIES)!);
    expect(c.program.length).toBeLessThan(reference.length * 0.75);
  });

  it('answers exactly as libseccomp for every capability set, and for random profiles', () => {
    expectSameAsLibseccomp(seccompForOptions(undefined, [])!);
    expectSameAsLibseccomp(seccompForOptions(undefined, CAPABILITY_NAMES)!);
    const random = seededRandom(4); // SECCOMP_RANDOM=250 for a longer run
    for (let i = 0; i < Number(process.env.SECCOMP_RANDOM ?? 12); i++) expectSameAsLibseccomp(randomProfile(random));
  });

  it('allows mount, unshare and namespace flags on clone once the container has CAP_SYS_ADMIN', () => {
    const p = compileSeccomp(seccompForOptions(undefined, [...DOCKER_DEFAULT_CAPABILITIES, 'CAP_SYS_ADMIN'])!).program;
    expect(answer(p, 'mount')).toBe(ALLOW);
    expect(answer(p, 'unshare')).toBe(ALLOW);
    expect(answer(p, 'clone', [0x10000000 | 17])).toBe(ALLOW);
    expect(answer(p, 'clone3')).toBe(ALLOW);
    expect(answer(p, 'keyctl')).toBe(EPERM);
  });

  it('is compiled once: the same container shape gets the same program without compiling again', () => {
    const a = seccompForOptions(undefined, DOCKER_DEFAULT_CAPABILITIES)!;
    const b = seccompForOptions('default', [...DOCKER_DEFAULT_CAPABILITIES].reverse())!;
    expect(b).toBe(a);
    expect(Object.isFrozen(a.syscalls)).toBe(true);
    expect(compileSeccomp(a)).toBe(compileSeccomp(b));
    // A filter from elsewhere (a raw spec) is found again by its content.
    const raw = () => parseOciSeccomp({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['read', 'write', 'getppid'], action: 'SCMP_ACT_ALLOW' }] });
    const first = compileSeccomp(raw());
    const t0 = performance.now();
    const again = compileSeccomp(raw());
    expect(performance.now() - t0).toBeLessThan(5);
    expect(again).toBe(first);
  });
});

describe('state records', () => {
  it('serialize a shared filter once and still write exactly the state', async () => {
    const spec = { ociVersion: '1.2.0', linux: { namespaces: [{ type: 'pid' }], seccomp: seccompForOptions(undefined, DOCKER_DEFAULT_CAPABILITIES) }, hostname: 'h' };
    const state = { id: 'x', status: 'created', spec, labels: { a: 'b' } };
    expect(JSON.parse(stateJson(state))).toEqual(JSON.parse(JSON.stringify(state)));
    const loose = { ...state, spec: { ...spec, linux: { ...spec.linux, seccomp: JSON.parse(JSON.stringify(spec.linux.seccomp)) } } };
    expect(stateJson(loose)).toBe(JSON.stringify(loose)); // not frozen: serialized as it is, every time
    expect(JSON.parse(stateJson({ id: 'y', spec: { linux: {} } }))).toEqual({ id: 'y', spec: { linux: {} } });
    await using c = await Container.create({ root, rootfs, cmd: ['true'] });
    const recorded = JSON.parse(readFileSync(join(root, 'containers', c.id, 'state.json'), 'utf8'));
    expect(recorded.spec.linux.seccomp).toEqual(seccompForOptions(undefined, DOCKER_DEFAULT_CAPABILITIES));
  });
});

describe('the cache in the state root', () => {
  it('hands a program compiled by one process to the next, and recompiles a damaged entry', async () => {
    const dir = join(root, '..', 'seccomp-cache-test');
    const filter = parseOciSeccomp({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [
      { names: ['read', 'write', 'exit_group'], action: 'SCMP_ACT_ALLOW' },
      { names: ['getpid'], action: 'SCMP_ACT_ERRNO', errnoRet: 77 },
    ] });
    const first = compileSeccomp(filter, { cacheDir: dir });
    expect(readdirSync(dir)).toHaveLength(1);
    expect(statSync(dir).mode & 0o777).toBe(0o700);

    // A fresh module instance is another process as far as the in-memory cache goes.
    const freshCompiler = async () => {
      vi.resetModules();
      const { native: freshNative } = await import('../lib/native.js');
      const compile = (await import('../lib/container/seccomp/compile.js')).compileSeccomp;
      return { compile, spy: vi.spyOn(freshNative, 'compileSeccomp') };
    };
    const a = await freshCompiler();
    const again = a.compile(JSON.parse(JSON.stringify(filter)) as OciSeccomp, { cacheDir: dir });
    expect(a.spy).not.toHaveBeenCalled();
    expect(again.program.equals(first.program)).toBe(true);
    expect(again.prologue).toBe(first.prologue);

    const file = join(dir, readdirSync(dir)[0]!);
    const entry = JSON.parse(readFileSync(file, 'utf8'));
    const bytes = Buffer.from(entry.program, 'base64');
    bytes[bytes.length - 4]! ^= 0xff; // the last RET now answers something else
    writeFileSync(file, JSON.stringify({ ...entry, program: bytes.toString('base64') }));
    const b = await freshCompiler();
    const rebuilt = b.compile(JSON.parse(JSON.stringify(filter)) as OciSeccomp, { cacheDir: dir });
    expect(b.spy).toHaveBeenCalledTimes(1);
    expect(rebuilt.program.equals(first.program)).toBe(true);
    expect(JSON.parse(readFileSync(file, 'utf8')).program).toBe(entry.program);
  });

  it('is where containers keep what they compiled', async () => {
    const seccomp: SeccompProfile = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['acct'], action: 'SCMP_ACT_ERRNO', errnoRet: 93 }] };
    const before = existsSync(join(root, 'seccomp-cache')) ? readdirSync(join(root, 'seccomp-cache')).length : 0;
    await Container.run({ root, rootfs, cmd: ['true'], seccomp });
    expect(readdirSync(join(root, 'seccomp-cache')).filter((n) => n.endsWith('.json'))).toHaveLength(before + 1);
  });
});

describe('custom profiles', () => {
  const compile = (p: SeccompProfile) => compileSeccomp(seccompForOptions(parseSeccompProfile(p), DOCKER_DEFAULT_CAPABILITIES)!);

  it('returns the errno a rule asks for and lets the rest through; no ENOSYS where the default allows', () => {
    const c = compile({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 }] });
    expect(answer(c.program, 'mkdirat')).toBe((SECCOMP_RET.ERRNO | 13) >>> 0);
    expect(answer(c.program, 'read')).toBe(ALLOW);
    expect(runFilter(c.program, { nr: 999, arch: host.audit })).toBe(ALLOW);
    // No architectures listed: only the native one, others are killed (as runc).
    expect(runFilter(c.program, { nr: 1, arch: host.subAudit })).toBe(SECCOMP_RET.KILL_THREAD);
  });

  it('ORs several conditions on one argument and ANDs conditions on different ones, as runc does', () => {
    const or = compile({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [
      { names: ['socket'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 2, op: 'SCMP_CMP_EQ' }, { index: 0, value: 10, op: 'SCMP_CMP_EQ' }] },
    ] });
    expect(answer(or.program, 'socket', [2])).toBe(ALLOW);
    expect(answer(or.program, 'socket', [10])).toBe(ALLOW);
    expect(answer(or.program, 'socket', [1])).toBe(EPERM);
    const and = compile({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [
      { names: ['socket'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 2, op: 'SCMP_CMP_EQ' }, { index: 1, value: 2, op: 'SCMP_CMP_EQ' }] },
    ] });
    expect(answer(and.program, 'socket', [2, 2])).toBe(ALLOW);
    expect(answer(and.program, 'socket', [2, 1])).toBe(EPERM);
  });

  it('compares 64-bit values given as strings or bigints, masked and not', () => {
    const c = compile({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [
      { names: ['ioctl'], action: 'SCMP_ACT_ERRNO', errnoRet: 22, args: [{ index: 1, value: '0xffffffff00000000', valueTwo: 0x1_0000_0000n, op: 'SCMP_CMP_MASKED_EQ' }] },
      { names: ['lseek'], action: 'SCMP_ACT_KILL_PROCESS', args: [{ index: 1, value: '18446744073709551615', op: 'SCMP_CMP_EQ' }] },
    ] });
    expect(answer(c.program, 'ioctl', [0, 0x1_0000_5401n])).toBe((SECCOMP_RET.ERRNO | 22) >>> 0);
    expect(answer(c.program, 'ioctl', [0, 0x5401])).toBe(ALLOW);
    expect(answer(c.program, 'lseek', [0, 0xffff_ffff_ffff_ffffn])).toBe(SECCOMP_RET.KILL_PROCESS);
    expect(answer(c.program, 'lseek', [0, 5])).toBe(ALLOW);
  });

  it('maps every action, skips rules equal to the default and syscalls libseccomp does not know', () => {
    const c = compile({ defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: 95, syscalls: [
      { names: ['read', 'write'], action: 'SCMP_ACT_ALLOW' },
      { names: ['getpid'], action: 'SCMP_ACT_LOG' },
      { names: ['getppid'], action: 'SCMP_ACT_TRAP' },
      { names: ['gettid'], action: 'SCMP_ACT_TRACE', errnoRet: 7 },
      { names: ['getuid'], action: 'SCMP_ACT_KILL' },
      { names: ['getgid'], action: 'SCMP_ACT_KILL_PROCESS' },
      { names: ['close'], action: 'SCMP_ACT_ERRNO', errnoRet: 95 }, // same as the default: skipped, not an error
      { names: ['no_such_syscall'], action: 'SCMP_ACT_ALLOW' },
    ] });
    expect(answer(c.program, 'write')).toBe(ALLOW);
    expect(answer(c.program, 'getpid')).toBe(SECCOMP_RET.LOG);
    expect(answer(c.program, 'getppid')).toBe(SECCOMP_RET.TRAP);
    expect(answer(c.program, 'gettid')).toBe((SECCOMP_RET.TRACE | 7) >>> 0);
    expect(answer(c.program, 'getuid')).toBe(SECCOMP_RET.KILL_THREAD);
    expect(answer(c.program, 'getgid')).toBe(SECCOMP_RET.KILL_PROCESS);
    expect(answer(c.program, 'close')).toBe((SECCOMP_RET.ERRNO | 95) >>> 0);
    expect(c.skipped).toEqual(['no_such_syscall']);
  });

  it('turns flags into seccomp(2) flags', () => {
    expect(compile({ defaultAction: 'SCMP_ACT_ALLOW', flags: ['SECCOMP_FILTER_FLAG_LOG', 'SECCOMP_FILTER_FLAG_SPEC_ALLOW'] }).flags).toBe(6);
    expect(compile({ defaultAction: 'SCMP_ACT_ALLOW', flags: ['SECCOMP_FILTER_FLAG_TSYNC'] }).flags).toBe(0);
  });
});

describe('bad profiles are refused, naming the field', () => {
  const refused = async (seccomp: unknown, field: RegExp) => {
    const err = await Container.create({ root, rootfs, cmd: ['true'], seccomp: seccomp as never }).catch((e) => e);
    expect(err).toBeInstanceOf(InvalidOptionsError);
    expect(err.message).toMatch(field);
  };

  it('in the options', async () => {
    await refused({ defaultAction: 'SCMP_ACT_DENY' }, /seccomp\.defaultAction/);
    await refused({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALOW' }] }, /seccomp\.syscalls\.0\.action/);
    await refused({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW', args: [{ index: 6, value: 1, op: 'SCMP_CMP_EQ' }] }] }, /seccomp\.syscalls\.0\.args\.0\.index: must be 0\.\.5/);
    await refused({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 1, op: 'SCMP_CMP_LIKE' }] }] }, /args\.0\.op/);
    await refused({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ name: 'read', names: ['write'], action: 'SCMP_ACT_ALLOW' }] }, /syscalls\.0\.names: give either/);
    await refused({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ action: 'SCMP_ACT_ALLOW' }] }, /syscalls\.0\.names: must name/);
    await refused({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW', errnoRet: 1 }] }, /syscalls\.0\.errnoRet: errnoRet only applies/);
    await refused({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['read'], action: 'SCMP_ACT_NOTIFY' }] }, /SCMP_ACT_NOTIFY needs a seccomp agent/);
    await refused({ defaultAction: 'SCMP_ACT_ERRNO', listenerPath: '/run/agent.sock' }, /seccomp\.listenerPath/);
    await refused({ defaultAction: 'SCMP_ACT_ERRNO', architectures: ['SCMP_ARCH_X86'], archMap: [{ architecture: 'SCMP_ARCH_X86_64', subArchitectures: [] }] }, /seccomp\.archMap: give either/);
    await refused({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['mount'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_ADMN'] } }] }, /includes\.caps\.0: unknown capability/);
    await refused({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 2 ** 60, op: 'SCMP_CMP_EQ' }] }] }, /args\.0\.value: is above 2\^53-1/);
    await refused({ defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: 5000 }, /seccomp\.defaultErrnoRet: must be at most 4095/);
    await refused({ defualtAction: 'SCMP_ACT_ERRNO' }, /seccomp/);
    await refused({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['Read!'], action: 'SCMP_ACT_ALLOW' }] }, /syscalls\.0\.names\.0: must be a syscall name/);
  });

  it('in a profile file, which must exist and be JSON', async () => {
    const dir = join(root, '..');
    await refused(join(dir, 'missing.json'), /cannot read the seccomp profile .*missing\.json: ENOENT/);
    writeFileSync(join(dir, 'broken.json'), '{ "defaultAction": ');
    await refused(join(dir, 'broken.json'), /broken\.json is not valid JSON/);
    writeFileSync(join(dir, 'bad.json'), JSON.stringify({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['read'], action: 'nope' }] }));
    const err = await Container.create({ root, rootfs, cmd: ['true'], seccomp: join(dir, 'bad.json') }).catch((e) => e);
    expect(err).toBeInstanceOf(InvalidOptionsError);
    expect(err.message).toMatch(/invalid seccomp profile .*bad\.json: syscalls\.0\.action/);
  });

  it('in an OCI spec', () => {
    const spec = { ociVersion: '1.2.0', process: { user: { uid: 0, gid: 0 }, args: ['true'], cwd: '/' }, root: { path: rootfs } };
    expect(() => parseOciSpec({ ...spec, linux: { seccomp: { defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: [], action: 'SCMP_ACT_ALLOW' }] } } }))
      .toThrow(/linux\.seccomp\.syscalls\.0\.names: must name at least one syscall/);
    expect(() => parseOciSpec({ ...spec, linux: { seccomp: { defaultAction: 'SCMP_ACT_ERRNO', architectures: ['SCMP_ARCH_Z80'] } } }))
      .toThrow(/linux\.seccomp\.architectures\.0/);
    expect(() => parseOciSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', includes: {} })).toThrow(/Unrecognized key/);
  });
});

describe('containers', () => {
  const run = async (args: string[], options: Partial<Parameters<typeof Container.run>[0]> = {}) => {
    const r = await Container.run({ root, rootfs, cmd: [probe, ...args], ...options });
    expect(r.exitCode, r.stderr).toBe(0);
    return parseProbe(r.stdout);
  };

  it('runs with the default filter unless asked otherwise (Seccomp: 2)', async () => {
    expect((await run(['seccomp_mode'])).seccomp_mode).toBe('OK:2');
    expect((await run(['seccomp_mode'], { seccomp: 'default' })).seccomp_mode).toBe('OK:2');
    const r = await Container.run({ root, rootfs, cmd: ['grep', '-E', '^Seccomp(_filters)?:', '/proc/self/status'] });
    expect(r.stdout).toMatch(/^Seccomp:\s+2$/m);
    expect(r.stdout).toMatch(/^Seccomp_filters:\s+1$/m);
  });

  it("'unconfined' runs without a filter: what only the filter refused goes through", async () => {
    const confined = await run(['seccomp_mode', 'keyctl', 'io_uring_setup', 'mount_missing_target', 'set_time', 'add_key']);
    const free = await run(['seccomp_mode', 'keyctl', 'io_uring_setup', 'mount_missing_target', 'set_time', 'add_key'], { seccomp: 'unconfined' });
    expect(free.seccomp_mode).toBe('OK:0');
    expect(confined.keyctl).toBe('EPERM');
    expect(free.keyctl).toBe('OK');
    expect(confined.add_key).toBe('EPERM');
    expect(free.add_key).toBe('OK');
    expect(confined.io_uring_setup).toBe('EPERM');
    expect(free.io_uring_setup).toBe('EINVAL'); // zero entries: the kernel's own answer
    // Without the filter the kernel gets to look the mount target up before refusing for lack of CAP_SYS_ADMIN.
    expect(confined.mount_missing_target).toBe('EPERM');
    expect(free.mount_missing_target).toBe('ENOENT');
    expect(confined.clock_settime).toBe('EPERM');
    expect(free.clock_settime).toBe('EINVAL');
    // CAP_SYS_TIME is still missing: the capability alone keeps the clock safe.
    expect(free.settimeofday).toBe('EPERM');
  });

  it('applies a custom profile given as an object or as a file: mkdir fails with EACCES, the rest works', async () => {
    const profile: SeccompProfile = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 }] };
    const file = join(root, '..', 'no-mkdir.json');
    writeFileSync(file, JSON.stringify(profile));
    for (const seccomp of [profile, file]) {
      const r = await Container.run({ root, rootfs, seccomp, cmd: ['sh', '-c', 'mkdir /tmp/d; echo mkdir=$?; touch /tmp/f && echo touch=$?; grep ^Seccomp: /proc/self/status'] });
      expect(r.stdout).toContain('mkdir=1');
      expect(r.stderr).toMatch(/mkdir: can't create directory '\/tmp\/d': Permission denied/);
      expect(r.stdout).toContain('touch=0');
      expect(r.stdout).toMatch(/Seccomp:\s+2/);
    }
  });

  it('applies linux.seccomp of a raw OCI spec (Container.createFromSpec)', async () => {
    const spec = {
      ociVersion: '1.2.0',
      process: { user: { uid: 0, gid: 0 }, args: ['sh', '-c', 'mkdir /tmp/oci; echo mkdir=$?; echo ok > /tmp/oci-file && cat /tmp/oci-file'], cwd: '/', env: ['PATH=/bin'] },
      root: { path: rootfs },
      mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }],
      linux: {
        namespaces: [{ type: 'pid' }, { type: 'mount' }, { type: 'ipc' }, { type: 'uts' }, { type: 'network' }],
        seccomp: { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }] },
      },
    };
    await using c = await Container.createFromSpec(spec, { root });
    let out = '';
    c.stdout!.on('data', (d) => (out += d));
    await c.start();
    expect((await c.wait()).exitCode).toBe(0);
    await new Promise((r) => setTimeout(r, 20));
    expect(out).toBe('mkdir=1\nok\n');
    expect((await c.inspect()).spec.linux?.seccomp?.defaultAction).toBe('SCMP_ACT_ALLOW');
  });

  it('records the resolved filter in the spec, as Docker hands it to runc', async () => {
    await using c = await Container.create({ root, rootfs, cmd: ['true'], capAdd: ['SYS_PTRACE'] });
    const s = (await c.inspect()).spec.linux!.seccomp!;
    expect(s.defaultAction).toBe('SCMP_ACT_ERRNO');
    expect(names(s)).toContain('kcmp');
    await using plain = await Container.create({ root, rootfs, cmd: ['true'], seccomp: 'unconfined' });
    expect((await plain.inspect()).spec.linux!.seccomp).toBeUndefined();
  });

  it('follows capAdd: CAP_SYS_PTRACE allows kcmp and pidfd_getfd, CAP_SYS_BOOT reboot (a wrong magic: EINVAL)', async () => {
    const plain = await run(['kcmp', 'pidfd_getfd', 'reboot']);
    expect(plain).toMatchObject({ kcmp: 'EPERM', pidfd_getfd: 'EPERM', reboot: 'EPERM' });
    const ptrace = await run(['kcmp', 'pidfd_getfd'], { capAdd: ['SYS_PTRACE'] });
    expect(ptrace).toMatchObject({ kcmp: 'OK', pidfd_getfd: 'OK' });
    // The filter now lets reboot through; the kernel checks the magic numbers and refuses.
    expect((await run(['reboot'], { capAdd: ['SYS_BOOT'] })).reboot).toBe('EINVAL');
  });

  it('follows capAdd: CAP_SYS_TIME lets clock calls through to the kernel (which changes nothing here)', async () => {
    const timed = await run(['set_time'], { capAdd: ['SYS_TIME'] });
    expect(timed.settimeofday).toBe('OK'); // settimeofday(NULL, NULL): permitted, and a no-op
    expect(timed.clock_settime).toBe('EINVAL'); // the monotonic clock cannot be set
  });

  it('follows capAdd: CAP_SYS_ADMIN allows unshare, mount and clone3 in the container', async () => {
    const admin = await run(['unshare_user', 'clone_newuser', 'clone3', 'mount', 'setns'], { capAdd: ['SYS_ADMIN'] });
    expect(admin).toMatchObject({ unshare_user: 'OK', clone_newuser: 'OK', clone3: 'OK', mount: 'OK', setns: 'OK' });
  });

  it('loads the filter late with noNewPrivileges, and with the profile\'s flags', async () => {
    expect(await run(['seccomp_mode', 'keyctl'], { noNewPrivileges: true })).toMatchObject({ seccomp_mode: 'OK:2', keyctl: 'EPERM' });
    const flagged: SeccompProfile = { defaultAction: 'SCMP_ACT_ALLOW', flags: ['SECCOMP_FILTER_FLAG_SPEC_ALLOW', 'SECCOMP_FILTER_FLAG_LOG'],
      syscalls: [{ names: ['keyctl'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }] };
    expect(await run(['seccomp_mode', 'keyctl'], { seccomp: flagged })).toMatchObject({ seccomp_mode: 'OK:2', keyctl: 'EPERM' });
  });

  it('says which setup step a profile that refuses too much broke', async () => {
    const onlyWrite: SeccompProfile = { defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: 13, syscalls: [{ names: ['write'], action: 'SCMP_ACT_ALLOW' }] };
    const err = await Container.create({ root, rootfs, cmd: ['true'], seccomp: onlyWrite }).catch((e) => e);
    expect(err).toBeInstanceOf(ContainerStartError);
    // prctl's number is above write's, the highest the profile names: ENOSYS from the prologue, as runc answers.
    expect(err.message).toMatch(/container init failed: drop bounding capabilities: ENOSYS; the seccomp profile is already in force at this step/);
    // Without write() the init cannot even report the step.
    const mute = await Container.create({ root, rootfs, cmd: ['true'], seccomp: { defaultAction: 'SCMP_ACT_ERRNO' } }).catch((e) => e);
    expect(mute).toBeInstanceOf(ContainerStartError);
    expect(mute.message).toMatch(/exited during setup without saying why: a seccomp profile that refuses write\(\)/);
    // With no_new_privs the filter comes last, right before execve, which it then refuses.
    const late = await Container.create({ root, rootfs, cmd: ['true'], noNewPrivileges: true, seccomp: onlyWrite })
      .then(async (c) => { await using _ = c; return await c.start(); }).catch((e) => e);
    expect(late).toBeInstanceOf(ContainerStartError);
    expect(late).toMatchObject({ step: 'exec', errno: 'ENOSYS' });
  });

  it('follows capDrop: without CAP_SYS_CHROOT the filter refuses chroot', async () => {
    const r = await Container.run({ root, rootfs, capDrop: ['SYS_CHROOT'], cmd: ['chroot', '/', 'true'] });
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toMatch(/Operation not permitted/);
  });
});

/** Seeded PRNG (mulberry32), so a failing random profile can be reproduced. */
function seededRandom(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) >>> 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const POOL = [
  'read', 'write', 'open', 'openat', 'close', 'mmap', 'mprotect', 'clone', 'clone3', 'socket', 'socketcall', 'bind',
  'connect', 'sendmsg', 'shmget', 'shmat', 'msgget', 'semop', 'ipc', 'ioctl', 'prctl', 'personality', 'mount', 'keyctl',
  'getpid', 'kill', 'mkdir', 'mkdirat', 'unlink', 'chmod', 'fchmodat2', 'arch_prctl', 'set_tls', 'futex', 'statx',
  'set_mempolicy_home_node', 'no_such_call', 'listen', 'accept4', 'getsockopt', 'recvmmsg_time64', 'fcntl64',
];
const ACTIONS = ['SCMP_ACT_ALLOW', 'SCMP_ACT_ERRNO', 'SCMP_ACT_KILL', 'SCMP_ACT_TRAP', 'SCMP_ACT_LOG', 'SCMP_ACT_KILL_PROCESS'] as const;
const OPS = ['SCMP_CMP_NE', 'SCMP_CMP_LT', 'SCMP_CMP_LE', 'SCMP_CMP_EQ', 'SCMP_CMP_GE', 'SCMP_CMP_GT', 'SCMP_CMP_MASKED_EQ'] as const;

/** A profile of random rules over a pool that includes x86's multiplexed calls (socketcall, ipc and their subcalls). */
function randomProfile(random: () => number): OciSeccomp {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)]!;
  const used = new Set<string>();
  const syscalls: NonNullable<OciSeccomp['syscalls']> = [];
  const n = 3 + Math.floor(random() * 20);
  for (let i = 0; i < n; i++) {
    // One action per syscall name (libseccomp refuses two unconditional actions for one syscall, as runc would).
    const names = [pick(POOL), pick(POOL)].filter((x) => !used.has(x));
    if (names.length === 0) continue;
    names.forEach((x) => used.add(x));
    const action = pick(ACTIONS);
    const entry: NonNullable<OciSeccomp['syscalls']>[number] = { names: [...new Set(names)], action };
    if (action === 'SCMP_ACT_ERRNO') entry.errnoRet = 1 + Math.floor(random() * 100);
    if (random() < 0.4) {
      entry.args = Array.from({ length: 1 + Math.floor(random() * 2) }, () => {
        const op = pick(OPS);
        const value = pick([0, 1, 2, 10, 17, 40, 0x7e020000, 0xffffffff, 2 ** 40]);
        return op === 'SCMP_CMP_MASKED_EQ' ? { index: Math.floor(random() * 3), value, valueTwo: value & 0xff, op } : { index: Math.floor(random() * 3), value, op };
      });
    }
    syscalls.push(entry);
  }
  const defaultAction = pick(['SCMP_ACT_ERRNO', 'SCMP_ACT_ALLOW', 'SCMP_ACT_KILL_PROCESS', 'SCMP_ACT_LOG'] as const);
  return {
    defaultAction,
    ...(defaultAction === 'SCMP_ACT_ERRNO' && random() < 0.3 ? { defaultErrnoRet: 38 } : {}),
    architectures: isX86 ? ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'] : ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'],
    syscalls,
  };
}

/**
 * Runs berth's program and libseccomp's program for the whole profile (what runc loads before its ENOSYS patch)
 * on every syscall number of every covered ABI, a few far ones, an uncovered architecture, and argument values
 * around every value the profile compares with: the answers must be the same, except ENOSYS above the profile's
 * highest syscall where the default does not allow.
 */
function expectSameAsLibseccomp(s: OciSeccomp, oneProgram = false): void {
  let whole: Buffer;
  try {
    whole = compileWithLibseccompOnly(s);
  } catch {
    expect(() => compileUncached(s)).toThrow();
    return;
  }
  const program = compileUncached(s).program;
  // libseccomp's program for each ABI alone, or (oneProgram) its single program for all of them, as runc loads it.
  const referenceFor = (arch: string, covered: boolean) => (oneProgram || !covered ? whole : compileWithLibseccompOnly(s, arch));
  const values = new Set<bigint>([0n, 17n, 0xffffffffn, 0x1_0000_0000n, 0xffff_ffff_ffff_ffffn]);
  for (const r of s.syscalls ?? []) {
    for (const a of r.args ?? []) {
      for (const v of [BigInt(a.value), BigInt(a.valueTwo ?? 0)]) {
        for (const d of [-1n, 0n, 1n]) values.add(BigInt.asUintN(64, v + d));
      }
    }
  }
  const argSets = [...values].flatMap((v) => [[v, v, v], [v, 0n, 0n], [0n, v, 0n], [0n, 0n, v]]);
  const enosys = !['SCMP_ACT_ALLOW', 'SCMP_ACT_LOG', 'SCMP_ACT_TRACE'].includes(s.defaultAction) &&
    !(s.defaultAction === 'SCMP_ACT_ERRNO' && (s.defaultErrnoRet ?? 1) === 38);
  const all = [...new Set((s.syscalls ?? []).flatMap((r) => r.names))];
  const withArgs = [...new Set((s.syscalls ?? []).filter((r) => r.args?.length).flatMap((r) => r.names))];
  const abis = isX86
    ? [['x86_64', AUDIT_ARCH.x86_64, 0], ['x86', AUDIT_ARCH.x86, 0], ['x32', AUDIT_ARCH.x86_64, X32_SYSCALL_BIT]] as const
    : [['aarch64', AUDIT_ARCH.aarch64, 0], ['arm', AUDIT_ARCH.arm, 0]] as const;
  for (const [arch, audit, bit] of abis) {
    const covered = (s.architectures ?? []).some((a) => a.slice('SCMP_ARCH_'.length).toLowerCase() === arch) || arch === host.arch;
    const max = Math.max(-1, ...(native.seccompInfo(arch, all).numbers ?? []).filter((n) => n >= 0)) - bit;
    // Every argument set for the syscalls with conditions (and x86's multiplexers); two for the others.
    const argSensitive = new Set([...(native.seccompInfo(arch, withArgs).numbers ?? []), ...(arch === 'x86' ? [102, 117] : [])]);
    const reference = referenceFor(arch, covered);
    const numbers = [...Array.from({ length: Math.max(max, 0) + 41 }, (_, i) => bit + i), bit + 1000, bit + 0x3fff_ffff];
    if (arch !== 'x86_64') numbers.push(0xffff_ffff); // on x86_64 that number is x32's
    for (const nr of numbers) {
      for (const args of argSensitive.has(nr) ? argSets : argSets.slice(0, 2)) {
        const data = { nr: nr >>> 0, arch: audit, args };
        const got = runFilter(program, data);
        // runc's rule: above the highest syscall the profile names, ENOSYS.
        const want = covered && enosys && max > 0 && (nr >>> 0) - bit > max ? ENOSYS : runFilter(reference, data);
        if (got !== want) {
          expect({ arch, nr, args: args.map(String), got, want, profile: JSON.stringify(s) }).toEqual({ arch, nr, args: args.map(String), got: want, want, profile: JSON.stringify(s) });
        }
      }
    }
  }
  // An architecture the profile does not cover: libseccomp's answer (the kill), whatever the number.
  for (const nr of [0, 1, 59, 1000]) {
    expect(runFilter(program, { nr, arch: 0x8000_0016 })).toBe(runFilter(whole, { nr, arch: 0x8000_0016 }));
  }
}
