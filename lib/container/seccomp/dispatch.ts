/**
 * The front of every compiled filter: per architecture, a binary search over syscall numbers that answers the
 * syscalls whose rule is unconditional (most of Docker's profile) at once, ENOSYS for syscalls newer than the
 * profile (runc's rule), and hands everything else to that architecture's libseccomp program, which follows.
 *
 * Why not libseccomp alone: the kernel checks, translates and JITs every instruction of a filter when a container
 * loads it, and runs it once per syscall number to fill its action cache. libseccomp spends a comparison on every
 * allowed syscall of every architecture (about 1,300 instructions for Docker's profile on x86_64 with x86 and
 * x32); ranges of equal answers need far fewer. One libseccomp program per architecture, rather than one for all,
 * also keeps clear of libseccomp 2.5's mix-ups between architectures (with x32 covered, a rule on a syscall x32
 * lacks can make it drop conditional rules of x86_64). test/seccomp.test.ts checks, for every syscall number of
 * every covered ABI and a spread of argument values, that the result answers exactly as libseccomp's program for
 * the whole profile on that ABI (plus ENOSYS above the profile's syscalls).
 * @module
 */
import { AUDIT_ARCH, BPF, SECCOMP_RET, X32_SYSCALL_BIT, type SockFilter } from './bpf.js';

/** The architectures this front handles (others go straight to libseccomp's program). */
export type DispatchArch = 'x86_64' | 'x32' | 'x86' | 'aarch64' | 'arm';

/** What to answer for one syscall number: a seccomp return value, or "ask libseccomp's program". */
export type Outcome = number | 'defer';

/** One architecture's decisions. */
export interface ArchDecisions {
  arch: DispatchArch;
  /** Syscall number (as seen in seccomp_data, x32 with bit 30) → outcome. Numbers not listed defer. */
  table: ReadonlyMap<number, Outcome>;
  /** Numbers above this answer ENOSYS; undefined: they defer. */
  enosysAbove?: number;
}

const ENOSYS_RET = (SECCOMP_RET.ERRNO | 38) >>> 0;
const DATA_NR = 0;
const DATA_ARCH = 4;

/** An instruction whose jump to an architecture's libseccomp program is patched once the front's length is known. */
interface Pending extends SockFilter {
  toProgram?: DispatchArch;
}

interface Run {
  lo: number;
  outcome: Outcome;
}

/** Consecutive numbers with the same outcome, from `base` up, the last run open-ended. */
function runsOf(d: ArchDecisions, base: number): Run[] {
  const keys = [...d.table.keys()].filter((n) => n >= base);
  const top = Math.max(base - 1, d.enosysAbove ?? -1, ...keys);
  const runs: Run[] = [];
  for (let nr = base; nr <= top; nr++) {
    const outcome = d.table.get(nr) ?? 'defer';
    if (runs.length === 0 || runs[runs.length - 1]!.outcome !== outcome) runs.push({ lo: nr, outcome });
  }
  const tail: Outcome = d.enosysAbove !== undefined ? ENOSYS_RET : 'defer';
  if (runs.length === 0 || runs[runs.length - 1]!.outcome !== tail) runs.push({ lo: top + 1, outcome: tail });
  return runs;
}

const ja = (k: number): Pending => ({ code: BPF.JA, jt: 0, jf: 0, k });
const toProgram = (arch: DispatchArch): Pending => ({ code: BPF.JA, jt: 0, jf: 0, k: 0, toProgram: arch });

/** A conditional jump over `skip` instructions when true, in one instruction or, for long jumps, two. */
function jumpIfOver(code: number, k: number, skip: number): Pending[] {
  if (skip <= 255) return [{ code, jt: skip, jf: 0, k }];
  return [{ code, jt: 0, jf: 1, k }, ja(skip)];
}

/** A binary search over runs[i..j]: `jge` on the middle run's first number, the lower half right after it. */
function searchTree(runs: readonly Run[], i: number, j: number, arch: DispatchArch): Pending[] {
  if (i === j) {
    const o = runs[i]!.outcome;
    return [o === 'defer' ? toProgram(arch) : { code: BPF.RET_K, jt: 0, jf: 0, k: o }];
  }
  const mid = (i + j + 1) >> 1;
  const lower = searchTree(runs, i, mid - 1, arch);
  const upper = searchTree(runs, mid, j, arch);
  return [...jumpIfOver(BPF.JGE_K, runs[mid]!.lo, lower.length), ...lower, ...upper];
}

function section(d: ArchDecisions | undefined, base: number, fallback: DispatchArch): Pending[] {
  if (!d) return [toProgram(fallback)];
  const runs = runsOf(d, base);
  return searchTree(runs, 0, runs.length - 1, d.arch);
}

/**
 * The front for `archs` (at most one entry per architecture), to be followed by one libseccomp program per
 * architecture: `programs` gives, for each, its offset from the end of the front. Syscalls the front does not
 * answer jump to their architecture's program; other architectures go to the first program, whose own
 * architecture check answers them (libseccomp's bad-architecture action). Empty when `archs` is.
 */
export function dispatchFront(archs: readonly ArchDecisions[], programs: ReadonlyMap<DispatchArch, number>): SockFilter[] {
  const by = new Map(archs.map((a) => [a.arch, a]));
  const sections: { audit: number; code: Pending[] }[] = [];
  if (by.has('x86_64') || by.has('x32')) {
    // One AUDIT_ARCH for both: bit 30 of the number says x32. An ABI the filter leaves out goes to the other's
    // program, which refuses it as a foreign architecture.
    const native = section(by.get('x86_64'), 0, 'x32');
    const x32 = section(by.get('x32'), X32_SYSCALL_BIT, 'x86_64');
    sections.push({
      audit: AUDIT_ARCH.x86_64,
      code: [{ code: BPF.LD_W_ABS, jt: 0, jf: 0, k: DATA_NR }, ...jumpIfOver(BPF.JSET_K, X32_SYSCALL_BIT, native.length), ...native, ...x32],
    });
  }
  for (const arch of ['x86', 'aarch64', 'arm'] as const) {
    const d = by.get(arch);
    if (d) sections.push({ audit: AUDIT_ARCH[arch], code: [{ code: BPF.LD_W_ABS, jt: 0, jf: 0, k: DATA_NR }, ...section(d, 0, arch)] });
  }
  if (sections.length === 0) return [];

  // ld arch; per section: jeq → its code (two instructions, the code may be far); anything else → first program.
  const head: Pending[] = [{ code: BPF.LD_W_ABS, jt: 0, jf: 0, k: DATA_ARCH }];
  let at = 1 + sections.length * 2 + 1;
  for (const s of sections) {
    const jaIndex = head.length + 1;
    head.push({ code: BPF.JEQ_K, jt: 0, jf: 1, k: s.audit }, ja(at - (jaIndex + 1)));
    at += s.code.length;
  }
  head.push(toProgram(archs[0]!.arch));
  const all = [...head, ...sections.flatMap((s) => s.code)];
  return all.map((ins, i) => {
    if (!ins.toProgram) return { code: ins.code, jt: ins.jt, jf: ins.jf, k: ins.k >>> 0 };
    const offset = programs.get(ins.toProgram);
    if (offset === undefined) throw new Error(`seccomp front: no program for ${ins.toProgram}`);
    return { code: ins.code, jt: 0, jf: 0, k: all.length + offset - (i + 1) };
  });
}
