/**
 * Classic BPF as seccomp runs it: the instruction encoding, and the small prologue that makes syscalls newer than
 * the filter answer ENOSYS instead of the default EPERM, as runc does. libseccomp compiles the profile itself.
 * @module
 */
import { endianness } from 'node:os';

/** One `struct sock_filter`. */
export interface SockFilter {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

/** seccomp return values (the top 16 bits say what to do, the low 16 bits carry the errno or a tracer's data). */
export const SECCOMP_RET = {
  KILL_PROCESS: 0x8000_0000,
  KILL_THREAD: 0x0000_0000,
  TRAP: 0x0003_0000,
  ERRNO: 0x0005_0000,
  TRACE: 0x7ff0_0000,
  LOG: 0x7ffc_0000,
  ALLOW: 0x7fff_0000,
} as const;

/** `AUDIT_ARCH_*`: what the kernel reports as `seccomp_data.arch`. x32 shares x86_64's, with bit 30 in the nr. */
export const AUDIT_ARCH = {
  x86_64: 0xc000_003e,
  x86: 0x4000_0003,
  aarch64: 0xc000_00b7,
  arm: 0x4000_0028,
} as const;
/** The bit that marks an x32 syscall number. */
export const X32_SYSCALL_BIT = 0x4000_0000;
/** The kernel refuses programs longer than this (BPF_MAXINSNS). */
export const BPF_MAX_INSNS = 4096;

const ENOSYS = 38;

/** The classic BPF opcodes the prologue uses (BPF_LD|BPF_W|BPF_ABS, BPF_JMP|BPF_JA, BPF_JMP|…|BPF_K, BPF_RET|BPF_K). */
export const BPF = { LD_W_ABS: 0x20, JA: 0x05, JEQ_K: 0x15, JGT_K: 0x25, JGE_K: 0x35, JSET_K: 0x45, RET_K: 0x06 } as const;

/** Offsets in `struct seccomp_data`. */
const DATA_NR = 0;
const DATA_ARCH = 4;

const LE = endianness() === 'LE';

/** Encodes instructions as the kernel reads them (host byte order, 8 bytes each). */
export function encodeProgram(insns: readonly SockFilter[]): Buffer {
  const out = Buffer.alloc(insns.length * 8);
  insns.forEach((ins, i) => {
    const o = i * 8;
    if (LE) {
      out.writeUInt16LE(ins.code, o);
      out.writeUInt32LE(ins.k >>> 0, o + 4);
    } else {
      out.writeUInt16BE(ins.code, o);
      out.writeUInt32BE(ins.k >>> 0, o + 4);
    }
    out.writeUInt8(ins.jt, o + 2);
    out.writeUInt8(ins.jf, o + 3);
  });
  return out;
}

/** Decodes a program (the inverse of {@link encodeProgram}). */
export function decodeProgram(buf: Buffer): SockFilter[] {
  const out: SockFilter[] = [];
  for (let o = 0; o + 8 <= buf.length; o += 8) {
    out.push({
      code: LE ? buf.readUInt16LE(o) : buf.readUInt16BE(o),
      jt: buf.readUInt8(o + 2),
      jf: buf.readUInt8(o + 3),
      k: LE ? buf.readUInt32LE(o + 4) : buf.readUInt32BE(o + 4),
    });
  }
  return out;
}

/** The highest syscall number a filter knows, per libseccomp architecture name (x86_64, x32, x86, aarch64, arm). */
export type LastSyscalls = Partial<Record<'x86_64' | 'x32' | 'x86' | 'aarch64' | 'arm', number>>;

interface Pending {
  code: number;
  k?: number;
  jt?: string;
  jf?: string;
  ja?: string;
  label?: string;
}

/**
 * The ENOSYS prologue: for each covered architecture, a syscall number above the highest one the filter knows
 * returns ENOSYS, so that libc falls back to an older syscall (as it does on an older kernel) instead of failing
 * with the default EPERM. Everything else falls through to the filter that follows. Empty when nothing is known.
 */
export function enosysPrologue(last: LastSyscalls): SockFilter[] {
  const code: Pending[] = [];
  const sections: Pending[][] = [];
  const archJumps: Pending[] = [];
  const x86Family = last.x86_64 !== undefined || last.x32 !== undefined;
  if (x86Family) {
    const s: Pending[] = [{ code: BPF.LD_W_ABS, k: DATA_NR, label: 'x86_64' }];
    // x32 calls carry bit 30; without an x32 limit they go to the filter untouched.
    s.push({ code: BPF.JSET_K, k: X32_SYSCALL_BIT, jt: last.x32 !== undefined ? 'x32' : 'filter' });
    if (last.x86_64 !== undefined) s.push({ code: BPF.JGT_K, k: last.x86_64, jt: 'enosys', jf: 'filter' });
    else s.push({ code: BPF.JA, ja: 'filter' });
    if (last.x32 !== undefined) s.push({ code: BPF.JGT_K, k: last.x32, jt: 'enosys', jf: 'filter', label: 'x32' });
    sections.push(s);
    archJumps.push({ code: BPF.JEQ_K, k: AUDIT_ARCH.x86_64, jt: 'x86_64' });
  }
  for (const arch of ['x86', 'aarch64', 'arm'] as const) {
    const max = last[arch];
    if (max === undefined) continue;
    sections.push([
      { code: BPF.LD_W_ABS, k: DATA_NR, label: arch },
      { code: BPF.JGT_K, k: max, jt: 'enosys', jf: 'filter' },
    ]);
    archJumps.push({ code: BPF.JEQ_K, k: AUDIT_ARCH[arch], jt: arch });
  }
  if (sections.length === 0) return [];
  code.push({ code: BPF.LD_W_ABS, k: DATA_ARCH }, ...archJumps, { code: BPF.JA, ja: 'filter' });
  for (const s of sections) code.push(...s);
  code.push({ code: BPF.RET_K, k: SECCOMP_RET.ERRNO | ENOSYS, label: 'enosys' });

  const labels = new Map<string, number>();
  code.forEach((ins, i) => ins.label && labels.set(ins.label, i));
  labels.set('filter', code.length);
  const offset = (from: number, label: string | undefined, wide = false): number => {
    if (label === undefined) return 0;
    const to = labels.get(label);
    if (to === undefined) throw new Error(`seccomp prologue: no label ${label}`);
    const d = to - (from + 1);
    if (d < 0 || (!wide && d > 255)) throw new Error(`seccomp prologue: jump to ${label} out of range`);
    return d;
  };
  return code.map((ins, i) => ({
    code: ins.code,
    jt: ins.code === BPF.JA ? 0 : offset(i, ins.jt),
    jf: ins.code === BPF.JA ? 0 : offset(i, ins.jf),
    k: ins.code === BPF.JA ? offset(i, ins.ja, true) : (ins.k ?? 0),
  }));
}
