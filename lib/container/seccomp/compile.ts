/**
 * OCI `linux.seccomp` → the BPF program the container's init loads. The rules are decided here with runc's
 * semantics (default errno EPERM, redundant rules skipped, syscalls unknown to libseccomp skipped, several
 * conditions on one argument each becoming a rule of their own, the ENOSYS prologue); libseccomp in the addon
 * compiles them. Programs are cached by content, in memory and in the state root, so that only the first container
 * with a given filter on a machine pays for compiling it.
 * @module
 */
import { InvalidOptionsError, UnsupportedError } from '../../errors.js';
import { native, type NativeSeccompRule } from '../../native.js';
import { BPF_MAX_INSNS, encodeProgram, enosysPrologue, SECCOMP_RET, type LastSyscalls } from './bpf.js';
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
  /** Instructions of the ENOSYS prologue at the start of `program` (0 when there is none); libseccomp's follow. */
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

/** Actions under which a syscall unknown to the filter would run anyway: no ENOSYS prologue then (as runc). */
const PERMISSIVE: readonly SeccompAction[] = ['SCMP_ACT_ALLOW', 'SCMP_ACT_LOG', 'SCMP_ACT_TRACE'];

function toBigInt(v: number | string | undefined): bigint {
  return v === undefined ? 0n : BigInt(v);
}

/** Compiles without the cache. Throws `InvalidOptionsError` for a filter libseccomp refuses. */
export function compileUncached(s: OciSeccomp): CompiledSeccomp {
  const defaultAction = actionValue(s.defaultAction, s.defaultErrnoRet);
  const nativeArch = libseccompArch(nativeSeccompArch());
  const arches = [...new Set((s.architectures ?? []).map(libseccompArch))].filter((a) => a !== nativeArch);

  const names = [...new Set((s.syscalls ?? []).flatMap((r) => r.names))];
  const numbersOn = (arch: string): number[] => {
    try {
      return native.seccompInfo(arch, names).numbers ?? [];
    } catch (e) {
      throw new UnsupportedError(`cannot compile the seccomp filter: ${(e as Error).message} (libseccomp ${native.seccompInfo().version})`, { cause: e });
    }
  };
  const nativeNumbers = numbersOn(nativeArch);
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

  let program: Buffer;
  try {
    program = native.compileSeccomp({ defaultAction, architectures: arches, optimize: rules.length > 32, rules });
  } catch (e) {
    throw new InvalidOptionsError('seccomp profile', [{ path: 'syscalls', message: `libseccomp refused the filter: ${(e as Error).message}` }]);
  }

  let prologue = 0;
  const errnoDefault = s.defaultAction === 'SCMP_ACT_ERRNO' && (s.defaultErrnoRet ?? EPERM) === ENOSYS;
  if (!PERMISSIVE.includes(s.defaultAction) && !errnoDefault && names.length > 0) {
    const last: LastSyscalls = {};
    for (const arch of [nativeArch, ...arches]) {
      if (!['x86_64', 'x32', 'x86', 'aarch64', 'arm'].includes(arch)) continue;
      const numbers = arch === nativeArch ? nativeNumbers : numbersOn(arch);
      const max = Math.max(-1, ...numbers.filter((n) => n >= 0));
      if (max > 0) last[arch as keyof LastSyscalls] = max;
    }
    const stub = enosysPrologue(last);
    prologue = stub.length;
    program = Buffer.concat([encodeProgram(stub), program]);
  }
  if (program.length / 8 > BPF_MAX_INSNS) {
    throw new InvalidOptionsError('seccomp profile', [
      { path: 'syscalls', message: `the compiled filter has ${program.length / 8} instructions, more than the kernel's ${BPF_MAX_INSNS}` },
    ]);
  }
  const flags = (s.flags ?? []).reduce((bits, f) => bits | FLAG_BITS[f], 0);
  return { program, flags, skipped: [...unknown].sort(), prologue };
}

const byObject = new WeakMap<OciSeccomp, CompiledSeccomp>();
const byContent = new Map<string, CompiledSeccomp>();
const MAX_CACHED = 64;

/** Changes whenever this module would build a different program from the same filter (a cache key part). */
const COMPILER_REVISION = 1;

let libseccompVersion: string | undefined;

/**
 * Compiles `s`, or returns the program compiled earlier for the same filter: from this process's cache (same
 * object, or same content), else from `cacheDir` on disk (shared by every process using one state root). A program
 * depends only on the filter, this host's architecture and the libseccomp version, which all form the key.
 */
export function compileSeccomp(s: OciSeccomp, options: { cacheDir?: string } = {}): CompiledSeccomp {
  const hit = byObject.get(s);
  if (hit) return hit;
  const content = JSON.stringify(s);
  let compiled = byContent.get(content);
  if (!compiled) {
    libseccompVersion ??= native.seccompInfo().version;
    const key = `berth seccomp ${COMPILER_REVISION}\n${process.arch}\nlibseccomp ${libseccompVersion}\n${content}`;
    const stored = options.cacheDir ? readCachedProgram(options.cacheDir, key) : undefined;
    if (stored) {
      compiled = stored;
    } else {
      compiled = compileUncached(s);
      if (options.cacheDir) writeCachedProgram(options.cacheDir, key, { ...compiled, skipped: [...compiled.skipped] });
    }
    if (byContent.size >= MAX_CACHED) byContent.delete(byContent.keys().next().value!);
    byContent.set(content, compiled);
  }
  byObject.set(s, compiled);
  return compiled;
}
