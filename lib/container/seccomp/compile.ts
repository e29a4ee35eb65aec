/**
 * OCI `linux.seccomp` → the BPF program the container's init loads. The rules are decided here with runc's
 * semantics (default errno EPERM, redundant rules skipped, syscalls unknown to libseccomp skipped, several
 * conditions on one argument each becoming a rule of their own, ENOSYS for syscalls newer than the profile).
 * Unconditional rules are answered by a compact front (dispatch.ts); libseccomp in the addon compiles the rest,
 * one program per architecture. Programs are cached, in memory and in the state root, so that only the first
 * container with a given filter on a machine pays for compiling it.
 * @module
 */
import { InvalidOptionsError, UnsupportedError } from '../../errors.js';
import { native, type NativeSeccompRule } from '../../native.js';
import { BPF_MAX_INSNS, encodeProgram, SECCOMP_RET } from './bpf.js';
import { dispatchFront, type ArchDecisions, type DispatchArch, type Outcome } from './dispatch.js';
import { readCachedProgram, writeCachedProgram } from './cache.js';
import type { OciSeccomp, SeccompAction, SeccompArch, SeccompFlag } from './profile.js';

/** A compiled filter: the program for seccomp(2) and its flags. */
export interface CompiledSeccomp {
  /** `struct sock_filter[]` in host byte order. */
  program: Buffer;
  /** `SECCOMP_FILTER_FLAG_*` bits for seccomp(SECCOMP_SET_MODE_FILTER). */
  flags: number;
  /** Syscall names of the profile that libseccomp does not know (left out, as Docker does). */
  skipped: readonly string[];
  /**
   * Instructions of berth's front at the start of `program` (unconditional rules and ENOSYS, see dispatch.ts; 0
   * when there is none); libseccomp's program for the remaining rules follows.
   */
  prologue: number;
}

const EPERM = 1;
const ENOSYS = 38;

/** The seccomp return value of an action; errno-carrying actions default to EPERM, as runc. */
export function actionValue(action: SeccompAction, errnoRet: number | undefined): number {
  switch (action) {
    case 'SCMP_ACT_KILL':
    case 'SCMP_ACT_KILL_THREAD':
      return SECCOMP_RET.KILL_THREAD;
    case 'SCMP_ACT_KILL_PROCESS':
      return SECCOMP_RET.KILL_PROCESS;
    case 'SCMP_ACT_TRAP':
      return SECCOMP_RET.TRAP;
    case 'SCMP_ACT_ERRNO':
      return (SECCOMP_RET.ERRNO | ((errnoRet ?? EPERM) & 0xffff)) >>> 0;
    case 'SCMP_ACT_TRACE':
      return (SECCOMP_RET.TRACE | ((errnoRet ?? EPERM) & 0xffff)) >>> 0;
    case 'SCMP_ACT_LOG':
      return SECCOMP_RET.LOG;
    case 'SCMP_ACT_ALLOW':
      return SECCOMP_RET.ALLOW;
    case 'SCMP_ACT_NOTIFY':
      throw new InvalidOptionsError('seccomp profile', [{ path: 'action', message: 'SCMP_ACT_NOTIFY is not supported' }]);
  }
}

/** libseccomp's name of an OCI architecture: `SCMP_ARCH_X86_64` → `x86_64`. */
export function libseccompArch(arch: SeccompArch): string {
  return arch.slice('SCMP_ARCH_'.length).toLowerCase();
}

const NODE_TO_SECCOMP: Record<string, SeccompArch> = {
  x64: 'SCMP_ARCH_X86_64',
  arm64: 'SCMP_ARCH_AARCH64',
  ia32: 'SCMP_ARCH_X86',
  arm: 'SCMP_ARCH_ARM',
  ppc64: 'SCMP_ARCH_PPC64LE',
  s390x: 'SCMP_ARCH_S390X',
  riscv64: 'SCMP_ARCH_RISCV64',
  loong64: 'SCMP_ARCH_LOONGARCH64',
};

/** The architecture this process runs as, as seccomp names it. */
export function nativeSeccompArch(): SeccompArch {
  const arch = NODE_TO_SECCOMP[process.arch];
  if (!arch) throw new UnsupportedError(`seccomp filters are not supported on ${process.arch}`);
  return arch;
}

const FLAG_BITS: Record<SeccompFlag, number> = {
  SECCOMP_FILTER_FLAG_TSYNC: 0, // the init is single-threaded when it loads the filter: nothing to synchronize
  SECCOMP_FILTER_FLAG_LOG: 2,
  SECCOMP_FILTER_FLAG_SPEC_ALLOW: 4,
  SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: 0, // refused by the schema (needs SCMP_ACT_NOTIFY)
};

/** Actions under which a syscall unknown to the filter would run anyway: no ENOSYS answers then (as runc). */
const PERMISSIVE: readonly SeccompAction[] = ['SCMP_ACT_ALLOW', 'SCMP_ACT_LOG', 'SCMP_ACT_TRACE'];

function toBigInt(v: number | string | undefined): bigint {
  return v === undefined ? 0n : BigInt(v);
}

/** The profile's rules as libseccomp takes them, with runc's semantics, and what is known about their syscalls. */
interface Rules {
  defaultAction: number;
  nativeArch: string;
  /** Covered architectures besides the native one (libseccomp names). */
  arches: string[];
  rules: NativeSeccompRule[];
  /** Every syscall name of the profile, and each one's number per covered architecture. */
  names: string[];
  numbers: Map<string, number[]>;
  unknown: Set<string>;
}

function rulesOf(s: OciSeccomp): Rules {
  const defaultAction = actionValue(s.defaultAction, s.defaultErrnoRet);
  const nativeArch = libseccompArch(nativeSeccompArch());
  const arches = [...new Set((s.architectures ?? []).map(libseccompArch))].filter((a) => a !== nativeArch);
  const names = [...new Set((s.syscalls ?? []).flatMap((r) => r.names))];
  const numbers = new Map<string, number[]>();
  for (const arch of [nativeArch, ...arches]) {
    try {
      numbers.set(arch, native.seccompInfo(arch, names).numbers ?? []);
    } catch (e) {
      throw new UnsupportedError(`cannot compile the seccomp filter: ${(e as Error).message} (libseccomp ${native.seccompInfo().version})`, { cause: e });
    }
  }
  const nativeNumbers = numbers.get(nativeArch)!;
  const unknown = new Set(names.filter((_, i) => nativeNumbers[i] === -1));

  const rules: NativeSeccompRule[] = [];
  for (const rule of s.syscalls ?? []) {
    const action = actionValue(rule.action, rule.errnoRet);
    if (action === defaultAction) continue; // redundant, and libseccomp refuses it
    const conditions = (rule.args ?? []).map((a) => ({
      index: a.index, op: a.op, value: toBigInt(a.value), valueTwo: toBigInt(a.valueTwo),
    }));
    // Several conditions on one argument cannot all hold in one rule: each becomes a rule (OR), as runc does.
    const indexes = conditions.map((c) => c.index);
    const groups = new Set(indexes).size < indexes.length ? conditions.map((c) => [c]) : [conditions];
    for (const name of rule.names) {
      if (unknown.has(name)) continue;
      for (const group of groups) rules.push({ name, action, conditions: group });
    }
  }
  return { defaultAction, nativeArch, arches, rules, names, numbers, unknown };
}

function libseccompProgram(r: Rules, rules: NativeSeccompRule[], architectures: string[]): Buffer {
  try {
    return native.compileSeccomp({ defaultAction: r.defaultAction, architectures, optimize: rules.length > 32, rules });
  } catch (e) {
    throw new InvalidOptionsError('seccomp profile', [{ path: 'syscalls', message: `libseccomp refused the filter: ${(e as Error).message}` }]);
  }
}

/**
 * libseccomp's program for the whole profile, as runc builds it before its ENOSYS patch (all architectures in
 * one program), or for one of its architectures alone: the tests' references.
 */
export function compileWithLibseccompOnly(s: OciSeccomp, arch?: string): Buffer {
  const r = rulesOf(s);
  return libseccompProgram(r, r.rules, arch ? [arch] : [r.nativeArch, ...r.arches]);
}

/**
 * x86's multiplexers, socketcall (102) and ipc (117), and the calls they carry: libseccomp turns a rule for one of
 * those calls into conditions on the multiplexer as well as a rule on the direct syscall (i386 has both since
 * Linux 4.3), so on x86 all of them are left to libseccomp.
 */
const MULTIPLEXED: Partial<Record<DispatchArch, { numbers: readonly number[]; names: ReadonlySet<string> }>> = {
  x86: {
    numbers: [102, 117],
    names: new Set([
      'socketcall', 'socket', 'bind', 'connect', 'listen', 'accept', 'getsockname', 'getpeername', 'socketpair',
      'send', 'recv', 'sendto', 'recvfrom', 'shutdown', 'setsockopt', 'getsockopt', 'sendmsg', 'recvmsg', 'accept4',
      'recvmmsg', 'sendmmsg', 'ipc', 'semop', 'semget', 'semctl', 'semtimedop', 'msgsnd', 'msgrcv', 'msgget',
      'msgctl', 'shmat', 'shmdt', 'shmget', 'shmctl',
    ]),
  },
};
const DISPATCH_ARCHES: readonly string[] = ['x86_64', 'x32', 'x86', 'aarch64', 'arm'];

/**
 * Per covered architecture, the answer for each syscall number whose rules are unconditional and agree, and the
 * rules left to libseccomp (conditions on arguments, conflicting rules, multiplexers, clashes).
 */
function decisions(s: OciSeccomp, r: Rules): { archs: ArchDecisions[]; slow: Map<DispatchArch, NativeSeccompRule[]> } {
  const byName = new Map<string, NativeSeccompRule[]>();
  for (const rule of r.rules) byName.set(rule.name, [...(byName.get(rule.name) ?? []), rule]);
  const fastEverywhere = new Map<string, number>();
  for (const [name, rules] of byName) {
    const actions = new Set(rules.map((x) => x.action));
    if (actions.size === 1 && rules.every((x) => x.conditions.length === 0)) fastEverywhere.set(name, rules[0]!.action);
  }

  const errnoDefault = s.defaultAction === 'SCMP_ACT_ERRNO' && (s.defaultErrnoRet ?? EPERM) === ENOSYS;
  const enosys = !PERMISSIVE.includes(s.defaultAction) && !errnoDefault;
  const archs: ArchDecisions[] = [];
  const slow = new Map<DispatchArch, NativeSeccompRule[]>();
  for (const arch of [r.nativeArch, ...r.arches] as DispatchArch[]) {
    const numbers = r.numbers.get(arch)!;
    const fast = new Map(fastEverywhere);
    const multiplexed = MULTIPLEXED[arch];
    if (multiplexed) for (const name of multiplexed.names) fast.delete(name);
    const table = new Map<number, Outcome>();
    r.names.forEach((name, i) => {
      const nr = numbers[i]!;
      if (nr < 0 || r.unknown.has(name) || !byName.has(name)) return; // not on this ABI, or only redundant rules
      const action = fast.get(name);
      const seen = table.get(nr);
      table.set(nr, action !== undefined && (seen === undefined || seen === action) ? action : 'defer');
    });
    for (const nr of multiplexed?.numbers ?? []) table.set(nr, 'defer');
    // A fast name on a number that ended up deferred (a clash with a slow one) goes to libseccomp too.
    r.names.forEach((name, i) => {
      if (fast.has(name) && table.get(numbers[i]!) === 'defer') fast.delete(name);
    });
    // runc's rule: above the highest syscall the profile names, ENOSYS (when the default does not allow).
    const max = Math.max(-1, ...numbers.filter((n) => n >= 0));
    archs.push({ arch, table, ...(enosys && max > 0 ? { enosysAbove: max } : {}) });
    slow.set(arch, r.rules.filter((x) => !fast.has(x.name)));
  }
  return { archs, slow };
}

/** Compiles without the cache. Throws `InvalidOptionsError` for a filter libseccomp refuses. */
export function compileUncached(s: OciSeccomp): CompiledSeccomp {
  const r = rulesOf(s);
  const covered = [r.nativeArch, ...r.arches];
  let program: Buffer;
  let prologue = 0;
  if (covered.every((a) => DISPATCH_ARCHES.includes(a))) {
    const { archs, slow } = decisions(s, r);
    // One libseccomp program per architecture, each with only the rules the front leaves to it.
    const programs = archs.map((a) => libseccompProgram(r, slow.get(a.arch)!, [a.arch]));
    const offsets = new Map<DispatchArch, number>();
    let at = 0;
    archs.forEach((a, i) => {
      offsets.set(a.arch, at);
      at += programs[i]!.length / 8;
    });
    const front = dispatchFront(archs, offsets);
    prologue = front.length;
    program = Buffer.concat([encodeProgram(front), ...programs]);
  } else {
    program = libseccompProgram(r, r.rules, covered);
  }
  if (program.length / 8 > BPF_MAX_INSNS) {
    throw new InvalidOptionsError('seccomp profile', [
      { path: 'syscalls', message: `the compiled filter has ${program.length / 8} instructions, more than the kernel's ${BPF_MAX_INSNS}` },
    ]);
  }
  const flags = (s.flags ?? []).reduce((bits, f) => bits | FLAG_BITS[f], 0);
  return { program, flags, skipped: [...r.unknown].sort(), prologue };
}

const byObject = new WeakMap<OciSeccomp, CompiledSeccomp>();
const byContent = new Map<string, CompiledSeccomp>();
const MAX_CACHED = 64;

/** Changes whenever this module would build a different program from the same filter (a cache key part). */
const COMPILER_REVISION = 4;

let libseccompVersion: string | undefined;

/**
 * Compiles `s`, or returns the program compiled earlier for the same filter: from this process's cache (same
 * object, or same content), else from `cacheDir` on disk (shared by every process using one state root). A program
 * depends only on the filter, this host's architecture and the libseccomp version, which all form the key.
 */
export function compileSeccomp(s: OciSeccomp, options: { cacheDir?: string } = {}): CompiledSeccomp {
  const hit = byObject.get(s);
  if (hit) return hit;
  const name = cacheNames.get(s);
  const content = name === undefined ? JSON.stringify(s) : undefined;
  let compiled = content === undefined ? undefined : byContent.get(content);
  if (!compiled) {
    libseccompVersion ??= native.seccompInfo().version;
    const key = `berth seccomp ${COMPILER_REVISION}\n${process.arch}\nlibseccomp ${libseccompVersion}\n${name ?? content}`;
    const stored = options.cacheDir ? readCachedProgram(options.cacheDir, key) : undefined;
    if (stored) {
      compiled = stored;
    } else {
      compiled = compileUncached(s);
      if (options.cacheDir) writeCachedProgram(options.cacheDir, key, { ...compiled, skipped: [...compiled.skipped] });
    }
    if (content !== undefined) {
      if (byContent.size >= MAX_CACHED) byContent.delete(byContent.keys().next().value!);
      byContent.set(content, compiled);
    }
  }
  byObject.set(s, compiled);
  return compiled;
}

const cacheNames = new WeakMap<OciSeccomp, string>();

/**
 * Names a (frozen) filter for the compiled-program cache, so that it is not serialized to find its program: the
 * name must stand for everything the filter holds (resolve.ts names Docker's profile by its digest, capability
 * set, architecture and kernel version).
 */
export function nameForCache(s: OciSeccomp, name: string): void {
  cacheNames.set(s, name);
}
